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

/// Each task's (score, exact match) from `evaluate_all` in batches of 7 (straddling the tasks'
/// boundaries), checked equal to evaluating each task alone.
fn shared_batches_equal_each_task_alone<M>(
    method: &M,
    stream: &cl_core::stream::TaskStream<M::Input>,
) -> Vec<(f64, Option<f64>)>
where
    M: Method<TestBackend>,
{
    use cl_core::runner::{evaluate_all, evaluate_with_greedy};
    let shared = evaluate_all::<TestBackend, _>(method, stream, 7).unwrap();
    let alone: Vec<(f64, Option<f64>)> = stream
        .tasks()
        .iter()
        .map(|t| evaluate_with_greedy::<TestBackend, _>(method, t, stream, 64).unwrap())
        .collect();
    assert_eq!(shared, alone, "{:?}", stream.scenario());
    shared
}

/// The runner's evaluation shares batches across tasks without a task id; the accuracies and
/// exact matches are those of evaluating each task alone (the tiny decoder's prompts have one
/// length, so batching changes no padding).
#[test]
fn evaluating_every_task_in_shared_batches_equals_evaluating_each_alone() {
    use cl_core::conformance::{CausalLmFixture, Fixture};
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
        let shared = shared_batches_equal_each_task_alone(&method, &stream);
        assert!(shared.iter().all(|(_, em)| em.is_some()));
    }
}

/// Free-text answers (TRACE's): the runner scores each task's greedy answers with its text
/// metric against the label text of the example's class (SARI with the prompt as source),
/// in batches shared across tasks or task by task alike; the report names the metrics.
#[test]
fn free_text_tasks_are_scored_on_the_decoded_greedy_answers() {
    use cl_core::backbone::{GenerationConfig, TokenIds, generate};
    use cl_core::conformance::{tiny_decoder, token_stream};
    use cl_core::model::{CausalLm, GENERATION_SLACK, Verbalizer};
    use cl_core::runner::evaluate_all;
    use cl_core::stream::{Scoring, Task, TaskInfo, TaskStream};
    use cl_core::text_metrics::TextMetric;

    // A word-level tokenizer over the fixture's 50 ids: id i is the word `w<i>`.
    let vocab: Vec<String> = (0..50).map(|i| format!("\"w{i}\":{i}")).collect();
    let tokenizer: tokenizers::Tokenizer = format!(
        r#"{{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
        "normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,
        "model":{{"type":"WordLevel","unk_token":"w0","vocab":{{{}}}}}}}"#,
        vocab.join(",")
    )
    .parse()
    .unwrap();
    let text = |ids: &[u32]| tokenizer.decode(ids, true).unwrap();
    // Class c answers `w<20 + c> w<21 + c>`, then EOS (id 2).
    let answers: Vec<Vec<u32>> = (0..6).map(|c| vec![20 + c, 21 + c, 2]).collect();
    let base = token_stream(Scenario::ClassIncremental);
    let tasks: Vec<Task<TokenIds>> = base
        .tasks()
        .iter()
        .map(|t| Task {
            info: TaskInfo {
                labels: t
                    .info
                    .classes
                    .iter()
                    .map(|&c| text(&answers[c][..2]))
                    .collect(),
                ..t.info.clone()
            },
            ..t.clone()
        })
        .collect();
    let metrics = [
        TextMetric::ExactString,
        TextMetric::RougeL,
        TextMetric::Sari,
    ];
    let scoring: Vec<Scoring> = tasks
        .iter()
        .zip(metrics)
        .map(|(t, metric)| Scoring::Text {
            metric,
            sources: if metric.needs_source() {
                t.test.iter().map(|e| text(&e.input)).collect()
            } else {
                Vec::new()
            },
        })
        .collect();
    let stream = TaskStream::new("free", Scenario::ClassIncremental, 6, tasks)
        .unwrap()
        .with_scoring(scoring.clone())
        .unwrap();
    let verbalizer = Verbalizer::new(answers.clone(), 0, vec![2])
        .unwrap()
        .free_text(tokenizer.clone());
    let model = CausalLm::new(tiny_decoder(), verbalizer);
    let method =
        LoraBaseline::<TestBackend, _>::from_model(Baseline::SeqLora, cfg(), model, 3).unwrap();

    let shared = shared_batches_equal_each_task_alone(&method, &stream);

    // By hand: greedy continuations of the frozen decoder (the fresh LoRA adds nothing).
    let cfg = GenerationConfig::greedy(3 + GENERATION_SLACK, vec![2], 0);
    for (t, task) in stream.tasks().iter().enumerate() {
        let prompts: Vec<&[u32]> = task.test.iter().map(|e| e.input.as_slice()).collect();
        let made = generate(&tiny_decoder(), &prompts, &cfg, |_, _| false).unwrap();
        let mut sum = 0.0;
        for (e, g) in task.test.iter().zip(&made) {
            let answer = text(g.tokens.strip_suffix(&[2]).unwrap_or(&g.tokens));
            let k = task.info.classes.binary_search(&e.label).unwrap();
            let source = if metrics[t].needs_source() {
                text(&e.input)
            } else {
                String::new()
            };
            sum += metrics[t].score(&answer, &task.info.labels[k], &source);
        }
        let expected = sum / task.test.len() as f64;
        assert!(
            (shared[t].0 - expected).abs() < 1e-12,
            "task {t}: {} vs {expected}",
            shared[t].0
        );
        assert!(shared[t].1.is_some());
    }

    // SARI credits what the answer keeps of nothing and deletes of the prompt: above 0.
    assert!(shared[2].0 > 0.0, "{shared:?}");

    // A class-scored task of a free-text model is refused by name.
    let mut mixed = scoring;
    mixed[0] = Scoring::Classes;
    let stream = stream.with_scoring(mixed).unwrap();
    let err = evaluate_all::<TestBackend, _>(&method, &stream, 7)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tokens-0") && err.contains("free text"),
        "{err}"
    );
}
