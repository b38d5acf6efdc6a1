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
//!
//! The same properties run on the causal language model ([`crate::model::CausalLm`]) with
//! `conformance_suite!(causal_lm: |model, seed| MyMethod::from_model(cfg(), model, seed).unwrap())`:
//! the closure gets a fresh seeded tiny decoder whose answers are the stream's classes, trained on
//! a stream of token prompts ([`token_stream`]). Each property is generic over the
//! [`Fixture`] (stream, model, how to poison an input), written once.

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backbone::{LlamaConfig, MlpBackbone, MlpBackboneConfig, TokenIds};
use crate::baselines::OptimizerConfig;
use crate::error::ClError;
use crate::method::Method;
use crate::metrics::Protocol;
use crate::model::{CausalLm, Verbalizer};
use crate::peft::LoraConfig;
use crate::runner::{RunConfig, RunReport, run};
use crate::stream::synthetic::{SyntheticStreamConfig, synthetic_stream};
use crate::stream::{Example, Scenario, Task, TaskInfo, TaskStream, mix_seed};

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

/// What the suite needs of a kind of model: its stream, a fresh model for a run, and a way to
/// make an input give a non-finite loss.
pub trait Fixture {
    /// One example's input.
    type Input: Clone + Send + Sync + std::fmt::Debug + Serialize + DeserializeOwned + 'static;
    /// What the method's constructor receives besides the seed.
    type Model;
    /// The stream of `scenario`: 3 tasks × 2 classes.
    fn stream(scenario: Scenario) -> TaskStream<Self::Input>;
    /// A fresh model for a stream of `num_classes` classes.
    fn model(num_classes: usize) -> Self::Model;
    /// Makes `input`'s loss non-finite.
    fn poison(input: &mut Self::Input);
    /// Whether the model generates its answers (the report then has an exact-match matrix).
    const GENERATES: bool;
}

/// The classifier: the synthetic Gaussian stream and a fresh MLP backbone with the class count
/// (the method adds its head).
pub struct ClassifierFixture;

impl Fixture for ClassifierFixture {
    type Input = Vec<f32>;
    type Model = (MlpBackbone<TestBackend>, usize);

    fn stream(scenario: Scenario) -> TaskStream<Vec<f32>> {
        stream(scenario)
    }

    fn model(num_classes: usize) -> Self::Model {
        (backbone(), num_classes)
    }

    fn poison(input: &mut Vec<f32>) {
        input[0] = f32::NAN;
    }

    const GENERATES: bool = false;
}

/// The causal LM: [`token_stream`] and [`tiny_decoder`] answering class `c` with
/// `[ANSWER_BASE + c, EOS]`.
pub struct CausalLmFixture;

/// Vocabulary of the suite's decoder.
const LM_VOCAB: usize = 50;
/// Token ids of the token stream: BOS, EOS, the separator before the answer, the first class
/// key, the first answer, the first noise token, and the token whose embedding is NaN.
const BOS: u32 = 1;
const EOS: u32 = 2;
const SEP: u32 = 3;
const KEY_BASE: u32 = 10;
const ANSWER_BASE: u32 = 20;
const NOISE_BASE: u32 = 30;
const POISON: u32 = 49;

impl Fixture for CausalLmFixture {
    type Input = TokenIds;
    type Model = CausalLm<TestBackend>;

    fn stream(scenario: Scenario) -> TaskStream<TokenIds> {
        token_stream(scenario)
    }

    fn model(num_classes: usize) -> CausalLm<TestBackend> {
        let answers = (0..num_classes as u32)
            .map(|c| vec![ANSWER_BASE + c, EOS])
            .collect();
        let verbalizer = Verbalizer::new(answers, 0, vec![EOS]).expect("non-empty answers");
        CausalLm::new(tiny_decoder(), verbalizer)
    }

    fn poison(input: &mut TokenIds) {
        input[1] = POISON;
    }

    const GENERATES: bool = true;
}

/// 3 tasks × 2 classes of token prompts `[BOS, n, n, n, SEP, KEY_BASE + c]` (`n`: noise tokens
/// drawn per example; the class key last, where the answer is predicted, so that the suite's
/// 30 steps a task suffice), 48 / 8 / 32 examples per class in train / valid / test.
pub fn token_stream(scenario: Scenario) -> TaskStream<TokenIds> {
    let tasks = (0..3)
        .map(|t| {
            let classes = vec![2 * t, 2 * t + 1];
            let split = |per_class: usize, salt: u64| {
                let mut rng = StdRng::seed_from_u64(mix_seed(7, &[t as u64, salt]));
                let mut out = Vec::with_capacity(per_class * 2);
                for _ in 0..per_class {
                    for &c in &classes {
                        let mut input = vec![BOS];
                        input.extend((0..3).map(|_| NOISE_BASE + rng.random_range(0..16u32)));
                        input.extend([SEP, KEY_BASE + c as u32]);
                        out.push(Example {
                            input,
                            label: c,
                            task: t,
                        });
                    }
                }
                out
            };
            let (train, valid, test) = (split(48, 0), split(8, 1), split(32, 2));
            Task {
                info: TaskInfo {
                    id: t,
                    name: format!("tokens-{t}"),
                    classes: classes.clone(),
                    scenario,
                    num_train: train.len(),
                    labels: Vec::new(),
                },
                train,
                valid,
                test,
            }
        })
        .collect();
    TaskStream::new("tokens", scenario, 6, tasks).expect("the token stream is valid")
}

/// A 2-block Llama decoder (d 64, 4 query / 2 key-value heads, vocab 50, untied LM head), its
/// weights drawn from a fixed seed on the host (N(0, 0.1), norms at 1) so that every call
/// gives the same model whatever else runs; token [`POISON`]'s embedding is NaN.
pub fn tiny_decoder() -> crate::backbone::LlamaModel<TestBackend> {
    let cfg = LlamaConfig {
        tie_word_embeddings: false,
        ..LlamaConfig::tiny(LM_VOCAB)
    };
    struct Seeded {
        rng: StdRng,
        stack: Vec<String>,
    }
    impl ModuleMapper<TestBackend> for Seeded {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.stack.pop();
        }
        fn map_float<const D: usize>(
            &mut self,
            param: Param<Tensor<TestBackend, D>>,
        ) -> Param<Tensor<TestBackend, D>> {
            let path = self.stack.join(".");
            let dims = param.dims();
            let n: usize = dims.iter().product();
            let mut values: Vec<f32> = if D == 1 {
                vec![1.0; n]
            } else {
                (0..n)
                    .map(|_| 0.1 * crate::stream::synthetic::gaussian(&mut self.rng))
                    .collect()
            };
            if path == "embed_tokens.weight" {
                let d = dims[1];
                let row = POISON as usize * d;
                values[row..row + d].fill(f32::NAN);
            }
            param.map(|t| {
                let grad = t.is_require_grad();
                Tensor::from_data(TensorData::new(values, dims), &t.device()).set_require_grad(grad)
            })
        }
    }
    let model = cfg
        .init::<TestBackend>(&Default::default())
        .expect("valid decoder config");
    model.map(&mut Seeded {
        rng: StdRng::seed_from_u64(17),
        stack: Vec::new(),
    })
}

fn run_once<X, M, F>(
    make: &F,
    stream: &TaskStream<X::Input>,
    cfg: &RunConfig,
) -> (M, Result<RunReport, ClError>)
where
    X: Fixture,
    M: Method<TestBackend, Input = X::Input>,
    F: Fn(X::Model, u64) -> M,
{
    let mut method = make(X::model(stream.num_classes()), cfg.seed);
    let report = run(&mut method, stream, cfg, &Default::default());
    (method, report)
}

/// A classifier constructor `|backbone, num_classes, seed|` as a fixture constructor.
fn classifier<M>(
    make: impl Fn(MlpBackbone<TestBackend>, usize, u64) -> M,
) -> impl Fn((MlpBackbone<TestBackend>, usize), u64) -> M {
    move |(backbone, classes), seed| make(backbone, classes, seed)
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
    learns_every_task_on::<ClassifierFixture, _, _>(classifier(make), scenarios);
}

/// [`learns_every_task`] on fixture `X` in the given scenarios.
pub fn learns_every_task_on<X, M, F>(make: F, scenarios: &[Scenario])
where
    X: Fixture,
    M: Method<TestBackend, Input = X::Input>,
    F: Fn(X::Model, u64) -> M,
{
    for &scenario in scenarios {
        let stream = X::stream(scenario);
        let (method, report) = run_once::<X, _, _>(&make, &stream, &run_config(0));
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
        // A generating model has an exact-match matrix, and its greedy answers are exact on
        // the first task once learnt (later rows may fall: merging or replay can keep the
        // ranking of the answers right while greedy decoding leaves them).
        assert_eq!(report.exact_match.is_some(), X::GENERATES);
        if let Some(em) = &report.exact_match {
            assert!(em.matrix.is_complete() && em.op.is_some(), "{em:?}");
            let rows = em.matrix.rows();
            assert!(
                rows.iter().flatten().all(|a| (0.0..=1.0).contains(a)),
                "{rows:?}"
            );
            assert!(
                rows[0][0] > 0.25,
                "{scenario:?}: task 0 exact match {} after learning it",
                rows[0][0]
            );
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
    backbone_stays_frozen_on::<ClassifierFixture, _, _>(classifier(make), scenario);
}

/// [`backbone_stays_frozen`] on fixture `X` and the stream of `scenario`.
pub fn backbone_stays_frozen_on<X, M, F>(make: F, scenario: Scenario)
where
    X: Fixture,
    M: Method<TestBackend, Input = X::Input>,
    F: Fn(X::Model, u64) -> M,
{
    let stream = X::stream(scenario);
    let mut method = make(X::model(stream.num_classes()), 0);
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
        // Bit patterns, so that a NaN weight (the decoder's poison token) compares equal.
        let bits = |t: &Tensor<
            <TestBackend as burn::tensor::backend::AutodiffBackend>::InnerBackend,
            1,
        >| {
            let data = t.to_data();
            data.as_slice::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<u32>>()
        };
        assert_eq!(bits(&a.value), bits(&b.value), "`{path}` changed");
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
    deterministic_on::<ClassifierFixture, _, _>(classifier(make), scenario);
}

/// [`deterministic`] on fixture `X` and the stream of `scenario`.
pub fn deterministic_on<X, M, F>(make: F, scenario: Scenario)
where
    X: Fixture,
    M: Method<TestBackend, Input = X::Input>,
    F: Fn(X::Model, u64) -> M,
{
    let stream = X::stream(scenario);
    let a = run_once::<X, _, _>(&make, &stream, &run_config(5))
        .1
        .expect("run succeeds");
    let b = run_once::<X, _, _>(&make, &stream, &run_config(5))
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
    resume_matches_uninterrupted_on::<ClassifierFixture, _, _>(classifier(make), scenario);
}

/// [`resume_matches_uninterrupted`] on fixture `X` and the stream of `scenario`.
pub fn resume_matches_uninterrupted_on<X, M, F>(make: F, scenario: Scenario)
where
    X: Fixture,
    M: Method<TestBackend, Input = X::Input>,
    F: Fn(X::Model, u64) -> M,
{
    let stream = X::stream(scenario);
    let full = run_once::<X, _, _>(&make, &stream, &run_config(3))
        .1
        .expect("run succeeds");

    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = run_config(3);
    cfg.out_dir = Some(dir.path().to_path_buf());
    cfg.stop_after = Some(1);
    let partial = run_once::<X, _, _>(&make, &stream, &cfg)
        .1
        .expect("first part succeeds");
    assert_eq!(partial.matrix.num_finished(), 1);
    assert!(
        dir.path().join("report.json").exists()
            && dir.path().join("checkpoint/state.json").exists()
    );

    // The same directory is refused to a fresh run, and to a resume of another experiment.
    cfg.stop_after = None;
    let refused = run_once::<X, _, _>(&make, &stream, &cfg)
        .1
        .expect_err("fresh run into a used --out");
    assert!(refused.to_string().contains("--resume"), "{refused}");
    cfg.resume = true;
    let mut other = cfg.clone();
    other.description.insert("lora.rank".into(), 99.into());
    let refused = run_once::<X, _, _>(&make, &stream, &other)
        .1
        .expect_err("resume of another experiment");
    assert!(refused.to_string().contains("`lora.rank`"), "{refused}");

    // A missing report (a kill between checkpoint and report) is rebuilt by the resume.
    std::fs::remove_file(dir.path().join("report.json")).expect("remove report");
    let resumed = run_once::<X, _, _>(&make, &stream, &cfg)
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
    run_once::<X, _, _>(&make, &stream, &cfg)
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
    non_finite_loss_stops_the_run_on::<ClassifierFixture, _, _>(classifier(make), scenario);
}

/// [`non_finite_loss_stops_the_run`] on fixture `X` and the stream of `scenario`.
pub fn non_finite_loss_stops_the_run_on<X, M, F>(make: F, scenario: Scenario)
where
    X: Fixture,
    M: Method<TestBackend, Input = X::Input>,
    F: Fn(X::Model, u64) -> M,
{
    let stream = X::stream(scenario);
    let mut tasks = stream.tasks().to_vec();
    for ex in &mut tasks[0].train {
        X::poison(&mut ex.input);
    }
    let poisoned =
        TaskStream::new("poisoned", scenario, stream.num_classes(), tasks).expect("valid");
    let err = run_once::<X, _, _>(&make, &poisoned, &run_config(0))
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
/// `|backbone: MlpBackbone<TestBackend>, num_classes: usize, seed: u64| -> impl Method`
/// (`task_incremental:` for task-incremental methods), or, with `causal_lm:`, for
/// `|model: CausalLm<TestBackend>, seed: u64| -> impl Method` on the decoder fixture.
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
    (causal_lm: $make:expr) => {
        mod conformance_causal_lm {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance::CausalLmFixture as X;
            use $crate::stream::Scenario::{ClassIncremental, TaskIncremental};

            #[test]
            fn learns_every_task() {
                $crate::conformance::learns_every_task_on::<X, _, _>(
                    $make,
                    &[ClassIncremental, TaskIncremental],
                );
            }

            #[test]
            fn backbone_stays_frozen() {
                $crate::conformance::backbone_stays_frozen_on::<X, _, _>($make, ClassIncremental);
            }

            #[test]
            fn deterministic() {
                $crate::conformance::deterministic_on::<X, _, _>($make, ClassIncremental);
            }

            #[test]
            fn resume_matches_uninterrupted() {
                $crate::conformance::resume_matches_uninterrupted_on::<X, _, _>(
                    $make,
                    ClassIncremental,
                );
            }

            #[test]
            fn non_finite_loss_stops_the_run() {
                $crate::conformance::non_finite_loss_stops_the_run_on::<X, _, _>(
                    $make,
                    ClassIncremental,
                );
            }
        }
    };
}
