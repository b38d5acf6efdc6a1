//! The baselines end to end on the synthetic class-incremental stream: SeqLoRA forgets
//! (negative BWT), cumulative MTL does not, replay sits in between, joint MTL is the upper bound
//! with one row; parameter accounting is right.

use cl_core::baselines::{Baseline, BaselineConfig, LoraBaseline};
use cl_core::conformance::{TestBackend, backbone, run_config, stream};
use cl_core::stream::Scenario;
use cl_core::{Method, Protocol, RunReport, run};

fn cfg() -> BaselineConfig {
    BaselineConfig {
        lora: cl_core::conformance::lora_config(),
        optimizer: cl_core::conformance::optimizer_config(),
        ..BaselineConfig::default()
    }
}

fn run_baseline(kind: Baseline) -> (RunReport, cl_core::ParamCounts) {
    let stream = stream(Scenario::ClassIncremental);
    let mut method =
        LoraBaseline::<TestBackend, _>::new(kind, cfg(), backbone(), stream.num_classes(), 0)
            .unwrap();
    let report = run(&mut method, &stream, &run_config(0), &Default::default()).unwrap();
    eprintln!("{}", report.summary());
    (report, method.param_counts())
}

#[test]
fn seq_lora_forgets_and_mtl_does_not() {
    let (seq, _) = run_baseline(Baseline::SeqLora);
    let (mtl, _) = run_baseline(Baseline::MtlCumulative);
    let (replay, _) = run_baseline(Baseline::LoraReplay);
    let seq_bwt = seq.bwt.unwrap();
    let mtl_bwt = mtl.bwt.unwrap();
    assert!(
        seq_bwt < -0.3,
        "SeqLoRA must forget on class-incremental data: BWT {seq_bwt}"
    );
    assert!(mtl_bwt > -0.1, "MTL must not forget: BWT {mtl_bwt}");
    assert!(
        replay.bwt.unwrap() > seq_bwt,
        "replay must forget less than SeqLoRA"
    );
    assert!(
        mtl.op.unwrap() > seq.op.unwrap() + 0.2,
        "MTL is the upper bound"
    );
}

#[test]
fn joint_mtl_trains_once_on_the_union() {
    let (joint, counts) = run_baseline(Baseline::Mtl);
    let (seq, _) = run_baseline(Baseline::SeqLora);
    assert_eq!(joint.matrix.protocol(), Protocol::Joint);
    assert_eq!(
        joint.matrix.rows().len(),
        1,
        "one row after the joint training"
    );
    assert_eq!((joint.bwt, joint.fwt, joint.forgetting), (None, None, None));
    assert_eq!(joint.tasks.len(), 1);
    // As many optimiser steps as the sequential run over the whole stream (each task's 96
    // training rows divide by the batch of 16), on batches that mix the tasks.
    let seq_steps: usize = seq.tasks.iter().map(|t| t.steps).sum();
    assert_eq!(joint.tasks[0].steps, seq_steps);
    assert!(joint.tasks[0].name.starts_with("joint("));
    assert_eq!(counts.stored_examples, 0);
    let row = &joint.matrix.rows()[0];
    assert!(
        row.iter().all(|a| *a > 0.5),
        "every task learnt jointly: {row:?}"
    );
    assert!(
        joint.op.unwrap() > seq.op.unwrap() + 0.2,
        "MTL is the upper bound"
    );
}

#[test]
fn parameter_accounting() {
    // MLP 16 → 32 → 32, rank 4 on both layers: (16·4 + 4·32) + (32·4 + 4·32) = 448 LoRA params;
    // head 32·6 + 6 = 198.
    let (_, seq) = run_baseline(Baseline::SeqLora);
    assert_eq!(seq.trainable, 448 + 198);
    assert_eq!(seq.stored, 448 + 198);
    assert_eq!(seq.stored_examples, 0);

    let (_, inc) = run_baseline(Baseline::IncLora);
    assert_eq!(
        inc.trainable,
        448 + 198,
        "only the last task's adapters train"
    );
    assert_eq!(
        inc.stored,
        3 * 448 + 198,
        "one adapter set per task is kept"
    );

    let (_, replay) = run_baseline(Baseline::LoraReplay);
    assert_eq!(
        replay.stored_examples,
        3 * 2,
        "2% of 96 rounds to 2 per task"
    );
}

/// The runner's evaluation shares batches across tasks without a task id; the accuracies and
/// exact matches are those of evaluating each task alone (the tiny decoder's prompts have one
/// length, so batching changes no padding).
#[test]
fn evaluating_every_task_in_shared_batches_equals_evaluating_each_alone() {
    use cl_core::conformance::{CausalLmFixture, Fixture};
    use cl_core::runner::{evaluate_all, evaluate_with_greedy};
    for scenario in [Scenario::ClassIncremental, Scenario::TaskIncremental] {
        let stream = CausalLmFixture::stream(scenario);
        let model = CausalLmFixture::model(stream.num_classes());
        let method = LoraBaseline::<TestBackend, _>::from_model(
            Baseline::SeqLora,
            BaselineConfig::default(),
            model,
            3,
        )
        .unwrap();
        // 7 prompts a batch: batches straddle the tasks' boundaries.
        let shared = evaluate_all::<TestBackend, _>(&method, &stream, 7).unwrap();
        let alone: Vec<(f64, Option<f64>)> = stream
            .tasks()
            .iter()
            .map(|t| evaluate_with_greedy::<TestBackend, _>(&method, t, &stream, 64).unwrap())
            .collect();
        assert_eq!(shared, alone, "{scenario:?}");
        assert!(shared.iter().all(|(_, em)| em.is_some()));
    }
}
