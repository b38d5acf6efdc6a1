//! The shared conformance suite: properties every [`Method`] must have, checked on the synthetic
//! stream and MLP backbone with the ndarray backend. A method crate plugs in with one line in a
//! test file:
//!
//! ```ignore
//! cl_core::conformance_suite!(|backbone, num_classes, seed| my_method::MyMethod::new(cfg(), backbone, num_classes, seed).unwrap());
//! ```
//!
//! The closure receives a fresh frozen [`MlpBackbone`], the stream's class count and the run
//! seed, and returns the method. Each property is its own `#[test]`. Methods that need the task
//! id at evaluation use `conformance_suite!(task_incremental: |backbone, num_classes, seed| ...)`:
//! the same properties on the task-incremental stream.

use burn::backend::{Autodiff, NdArray};

use crate::backbone::{MlpBackbone, MlpBackboneConfig};
use crate::baselines::OptimizerConfig;
use crate::error::ClError;
use crate::method::Method;
use crate::metrics::Protocol;
use crate::peft::LoraConfig;
use crate::runner::{RunConfig, RunReport, run};
use crate::stream::synthetic::{SyntheticStreamConfig, synthetic_stream};
use crate::stream::{Scenario, TaskStream};

/// The backend the suite runs on.
pub type TestBackend = Autodiff<NdArray<f32>>;

/// The stream the suite trains on: 3 tasks × 2 classes, 16-dim inputs.
pub fn stream(scenario: Scenario) -> TaskStream<Vec<f32>> {
    let cfg = SyntheticStreamConfig {
        scenario,
        ..SyntheticStreamConfig::default()
    };
    synthetic_stream(&cfg).expect("the synthetic stream is valid")
}

/// A fresh frozen backbone matching [`stream`].
pub fn backbone() -> MlpBackbone<TestBackend> {
    MlpBackboneConfig {
        input_dim: 16,
        hidden: vec![32, 32],
        seed: 11,
    }
    .init(&Default::default())
    .expect("valid MLP config")
}

/// LoRA settings that learn the suite's stream in a few steps: rank 4, α = 8, no dropout, on every
/// layer of the MLP.
pub fn lora_config() -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: vec!["layers.*".into()],
    }
}

/// AdamW settings for the suite's stream: lr 1e-2, no weight decay.
pub fn optimizer_config() -> OptimizerConfig {
    OptimizerConfig {
        lr: 1e-2,
        ..OptimizerConfig::default()
    }
}

/// Run settings of the suite (small, deterministic).
pub fn run_config(seed: u64) -> RunConfig {
    RunConfig {
        epochs: 5,
        batch_size: 16,
        eval_batch_size: 64,
        seed,
        ..RunConfig::default()
    }
}

fn run_once<M, F>(
    make: &F,
    stream: &TaskStream<Vec<f32>>,
    cfg: &RunConfig,
) -> (M, Result<RunReport, ClError>)
where
    M: Method<TestBackend, Input = Vec<f32>>,
    F: Fn(MlpBackbone<TestBackend>, usize, u64) -> M,
{
    let mut method = make(backbone(), stream.num_classes(), cfg.seed);
    let report = run(&mut method, stream, cfg, &Default::default());
    (method, report)
}

/// The run completes, the matrix is full and in `[0, 1]`, every task was learnt above chance,
/// and the report's metrics are present (both scenarios).
pub fn learns_every_task<M, F>(make: F)
where
    M: Method<TestBackend, Input = Vec<f32>>,
    F: Fn(MlpBackbone<TestBackend>, usize, u64) -> M,
{
    learns_every_task_in(
        make,
        &[Scenario::ClassIncremental, Scenario::TaskIncremental],
    );
}

/// [`learns_every_task`] in the given scenarios only (task-incremental methods).
pub fn learns_every_task_in<M, F>(make: F, scenarios: &[Scenario])
where
    M: Method<TestBackend, Input = Vec<f32>>,
    F: Fn(MlpBackbone<TestBackend>, usize, u64) -> M,
{
    for &scenario in scenarios {
        let stream = stream(scenario);
        let (method, report) = run_once(&make, &stream, &run_config(0));
        let report = report.expect("run succeeds");
        assert!(report.completed && report.matrix.is_complete());
        assert_eq!(report.method, method.name());
        let joint = report.matrix.protocol() == Protocol::Joint;
        for (t, row) in report.matrix.rows().iter().enumerate() {
            assert!(
                row.iter().all(|a| (0.0..=1.0).contains(a)),
                "row {t}: {row:?}"
            );
            // Chance is 1/6 (class-incremental: 6 classes) or 1/2 (task-incremental: 2 classes).
            let threshold = match scenario {
                Scenario::ClassIncremental => 0.5,
                Scenario::TaskIncremental => 0.75,
            };
            // A sequential row `t` must have learnt task `t`; a joint row, every task.
            let learnt = if joint { 0..row.len() } else { t..t + 1 };
            for j in learnt {
                assert!(
                    row[j] > threshold,
                    "{scenario:?}: task {j} accuracy after training it is {}",
                    row[j]
                );
            }
        }
        if joint {
            assert!(report.op.is_some() && report.bwt.is_none() && report.forgetting.is_none());
            assert_eq!(report.matrix.num_finished(), 1);
            assert_eq!(report.tasks.len(), 1);
        } else {
            assert!(report.op.is_some() && report.bwt.is_some() && report.fwt.is_some());
            assert_eq!(report.tasks.len(), 3);
        }
        assert!(
            report
                .tasks
                .iter()
                .all(|t| t.steps > 0 && t.params.trainable > 0)
        );
    }
}

/// The frozen backbone parameters are bit-identical before and after a whole run.
pub fn backbone_stays_frozen<M, F>(make: F)
where
    M: Method<TestBackend, Input = Vec<f32>>,
    F: Fn(MlpBackbone<TestBackend>, usize, u64) -> M,
{
    backbone_stays_frozen_in(make, Scenario::ClassIncremental);
}

/// [`backbone_stays_frozen`] on the stream of `scenario`.
pub fn backbone_stays_frozen_in<M, F>(make: F, scenario: Scenario)
where
    M: Method<TestBackend, Input = Vec<f32>>,
    F: Fn(MlpBackbone<TestBackend>, usize, u64) -> M,
{
    let stream = stream(scenario);
    let mut method = make(backbone(), stream.num_classes(), 0);
    let before = method.backbone_params();
    assert!(
        !before.is_empty(),
        "backbone_params must cover the pre-trained weights"
    );
    run(&mut method, &stream, &run_config(0), &Default::default()).expect("run succeeds");
    let after = method.backbone_params();
    assert_eq!(
        before.paths().collect::<Vec<_>>(),
        after.paths().collect::<Vec<_>>()
    );
    for ((path, a), (_, b)) in before.entries().iter().zip(after.entries()) {
        let (a, b) = (a.value.to_data(), b.value.to_data());
        assert_eq!(
            a.as_slice::<f32>().unwrap(),
            b.as_slice::<f32>().unwrap(),
            "`{path}` changed"
        );
    }
}

/// Same seed, same backend → the same accuracy matrix; another seed → (almost surely) another.
pub fn deterministic<M, F>(make: F)
where
    M: Method<TestBackend, Input = Vec<f32>>,
    F: Fn(MlpBackbone<TestBackend>, usize, u64) -> M,
{
    deterministic_in(make, Scenario::ClassIncremental);
}

/// [`deterministic`] on the stream of `scenario`.
pub fn deterministic_in<M, F>(make: F, scenario: Scenario)
where
    M: Method<TestBackend, Input = Vec<f32>>,
    F: Fn(MlpBackbone<TestBackend>, usize, u64) -> M,
{
    let stream = stream(scenario);
    let a = run_once(&make, &stream, &run_config(5))
        .1
        .expect("run succeeds");
    let b = run_once(&make, &stream, &run_config(5))
        .1
        .expect("run succeeds");
    assert_eq!(a.matrix, b.matrix, "same seed must give the same matrix");
}

/// A run interrupted after task 1 and resumed from its checkpoint ends with the same matrix as an
/// uninterrupted run; `report.json` is written after every task.
pub fn resume_matches_uninterrupted<M, F>(make: F)
where
    M: Method<TestBackend, Input = Vec<f32>>,
    F: Fn(MlpBackbone<TestBackend>, usize, u64) -> M,
{
    resume_matches_uninterrupted_in(make, Scenario::ClassIncremental);
}

/// [`resume_matches_uninterrupted`] on the stream of `scenario`.
pub fn resume_matches_uninterrupted_in<M, F>(make: F, scenario: Scenario)
where
    M: Method<TestBackend, Input = Vec<f32>>,
    F: Fn(MlpBackbone<TestBackend>, usize, u64) -> M,
{
    let stream = stream(scenario);
    let full = run_once(&make, &stream, &run_config(3))
        .1
        .expect("run succeeds");

    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = run_config(3);
    cfg.out_dir = Some(dir.path().to_path_buf());
    cfg.stop_after = Some(1);
    let partial = run_once(&make, &stream, &cfg)
        .1
        .expect("first part succeeds");
    assert_eq!(partial.matrix.num_finished(), 1);
    assert!(
        dir.path().join("report.json").exists()
            && dir.path().join("checkpoint/state.json").exists()
    );

    // The same directory is refused to a fresh run, and to a resume of another experiment.
    cfg.stop_after = None;
    let refused = run_once(&make, &stream, &cfg)
        .1
        .expect_err("fresh run into a used --out");
    assert!(refused.to_string().contains("--resume"), "{refused}");
    cfg.resume = true;
    let mut other = cfg.clone();
    other.description.insert("lora.rank".into(), 99.into());
    let refused = run_once(&make, &stream, &other)
        .1
        .expect_err("resume of another experiment");
    assert!(refused.to_string().contains("`lora.rank`"), "{refused}");

    // A missing report (a kill between checkpoint and report) is rebuilt by the resume.
    std::fs::remove_file(dir.path().join("report.json")).expect("remove report");
    let resumed = run_once(&make, &stream, &cfg)
        .1
        .expect("resumed part succeeds");
    assert_eq!(
        resumed.matrix, full.matrix,
        "resumed run must reproduce the uninterrupted matrix"
    );
    let report_path = dir.path().join("report.json");
    let on_disk: RunReport = crate::checkpoint::read_json(&report_path).expect("report.json");
    assert_eq!(on_disk.matrix, full.matrix);
    assert!(on_disk.completed);

    // A stale report beside a finished checkpoint is rewritten by a resume that trains nothing.
    std::fs::write(&report_path, serde_json::to_string(&partial).expect("json"))
        .expect("stale report");
    run_once(&make, &stream, &cfg)
        .1
        .expect("resume of a finished run");
    let on_disk: RunReport = crate::checkpoint::read_json(&report_path).expect("report.json");
    assert!(on_disk.completed && on_disk.matrix == full.matrix);
}

/// A NaN in the data makes the run stop with [`ClError::NonFiniteLoss`] naming the task.
pub fn non_finite_loss_stops_the_run<M, F>(make: F)
where
    M: Method<TestBackend, Input = Vec<f32>>,
    F: Fn(MlpBackbone<TestBackend>, usize, u64) -> M,
{
    non_finite_loss_stops_the_run_in(make, Scenario::ClassIncremental);
}

/// [`non_finite_loss_stops_the_run`] on the stream of `scenario`.
pub fn non_finite_loss_stops_the_run_in<M, F>(make: F, scenario: Scenario)
where
    M: Method<TestBackend, Input = Vec<f32>>,
    F: Fn(MlpBackbone<TestBackend>, usize, u64) -> M,
{
    let stream = stream(scenario);
    let mut tasks = stream.tasks().to_vec();
    for ex in &mut tasks[0].train {
        ex.input[0] = f32::NAN;
    }
    let poisoned =
        TaskStream::new("poisoned", scenario, stream.num_classes(), tasks).expect("valid");
    let err = run_once(&make, &poisoned, &run_config(0))
        .1
        .expect_err("NaN data must stop the run");
    let text = err.to_string();
    match err {
        ClError::NonFiniteLoss {
            task,
            before_any_update,
            ..
        } => {
            assert_eq!(task, 0);
            // NaN on the very first step is the data's (or the weights') fault, not the
            // learning rate's, and the message says so.
            assert!(before_any_update, "{text}");
            assert!(
                text.contains("nothing has been trained yet") && !text.contains("learning rate"),
                "{text}"
            );
        }
        other => panic!("expected NonFiniteLoss, got {other}"),
    }
}

/// Generates the suite's tests for a method constructor
/// `|backbone: MlpBackbone<TestBackend>, num_classes: usize, seed: u64| -> impl Method`.
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn learns_every_task() {
                $crate::conformance::learns_every_task($make);
            }

            #[test]
            fn backbone_stays_frozen() {
                $crate::conformance::backbone_stays_frozen($make);
            }

            #[test]
            fn deterministic() {
                $crate::conformance::deterministic($make);
            }

            #[test]
            fn resume_matches_uninterrupted() {
                $crate::conformance::resume_matches_uninterrupted($make);
            }

            #[test]
            fn non_finite_loss_stops_the_run() {
                $crate::conformance::non_finite_loss_stops_the_run($make);
            }
        }
    };
    (task_incremental: $make:expr) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            use $crate::stream::Scenario::TaskIncremental;

            #[test]
            fn learns_every_task() {
                $crate::conformance::learns_every_task_in($make, &[TaskIncremental]);
            }

            #[test]
            fn backbone_stays_frozen() {
                $crate::conformance::backbone_stays_frozen_in($make, TaskIncremental);
            }

            #[test]
            fn deterministic() {
                $crate::conformance::deterministic_in($make, TaskIncremental);
            }

            #[test]
            fn resume_matches_uninterrupted() {
                $crate::conformance::resume_matches_uninterrupted_in($make, TaskIncremental);
            }

            #[test]
            fn non_finite_loss_stops_the_run() {
                $crate::conformance::non_finite_loss_stops_the_run_in($make, TaskIncremental);
            }
        }
    };
}
