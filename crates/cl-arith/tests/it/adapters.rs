//! cl-arith with Houlsby adapters as the per-task module, on a tiny random-weight BERT encoder
//! and a synthetic token stream (the marker token decides the class): the module is the adapters
//! only, the frozen encoder is untouched, the run is deterministic and learns.
//!
//! Adapters are drawn from host RNGs seeded per run (`Backbone::add_adapters`), so the
//! determinism check holds beside other tests that seed Burn's global backend RNG in parallel
//! threads of this binary; the random encoder is built once and cloned for the same reason.

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use cl_arith::{Arith, ArithConfig, LambdaChoice, ModuleKind};
use cl_core::backbone::{BertConfig, BertEncoder};
use cl_core::baselines::OptimizerConfig;
use cl_core::peft::{AdapterConfig, ParamFilter, TaskVector};
use cl_core::stream::{Example, Scenario, Task, TaskInfo, TaskStream};
use cl_core::{Method, RunConfig, RunReport, run};

type B = Autodiff<NdArray<f32>>;

fn encoder() -> BertEncoder<B> {
    <B as burn::tensor::backend::Backend>::seed(&Default::default(), 7);
    BertConfig {
        vocab_size: 40,
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 32,
        max_position_embeddings: 16,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        hidden_act: "gelu".into(),
    }
    .init::<B>(&Default::default())
    .unwrap()
}

/// Two tasks of two classes; class `c` sequences carry marker token `3 + c` among fillers.
fn stream() -> TaskStream<Vec<u32>> {
    let mut state = 12345u64;
    let mut next = move |n: u32| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % u64::from(n)) as u32
    };
    let mut tasks = Vec::new();
    for id in 0..2 {
        let classes = vec![2 * id, 2 * id + 1];
        let mut split = |n: usize| -> Vec<Example<Vec<u32>>> {
            (0..n)
                .map(|i| {
                    let label = classes[i % 2];
                    let len = 4 + next(4) as usize;
                    let mut ids: Vec<u32> = (0..len).map(|_| 10 + next(30)).collect();
                    let at = next(len as u32) as usize;
                    ids[at] = 3 + label as u32;
                    let mut seq = vec![1];
                    seq.extend(ids);
                    seq.push(2);
                    Example {
                        input: seq,
                        label,
                        task: id,
                    }
                })
                .collect()
        };
        let (train, valid, test) = (split(48), split(8), split(32));
        tasks.push(Task {
            info: TaskInfo {
                id,
                name: format!("markers-{id}"),
                classes: classes.clone(),
                scenario: Scenario::ClassIncremental,
                num_train: 48,
                labels: Vec::new(),
            },
            train,
            valid,
            test,
        });
    }
    TaskStream::new("markers", Scenario::ClassIncremental, 4, tasks).unwrap()
}

fn cfg() -> ArithConfig {
    ArithConfig {
        module: ModuleKind::Adapter,
        adapter: AdapterConfig { bottleneck: 8 },
        optimizer: OptimizerConfig {
            lr: 3e-2,
            ..OptimizerConfig::default()
        },
        lambda: LambdaChoice::Shared { value: 1.0 },
        ..ArithConfig::default()
    }
}

fn run_once(
    encoder: &BertEncoder<B>,
) -> (
    Arith<B, cl_core::model::PeftClassifier<B, BertEncoder<B>>>,
    RunReport,
) {
    let stream = stream();
    let mut method = Arith::new(cfg(), encoder.clone(), 4, 0).unwrap();
    let run_cfg = RunConfig {
        epochs: 20,
        batch_size: 8,
        eval_batch_size: 32,
        ..RunConfig::default()
    };
    let report = run(&mut method, &stream, &run_cfg, &Default::default()).unwrap();
    (method, report)
}

#[test]
fn adapters_are_the_module_and_the_encoder_stays_frozen() {
    let encoder = encoder();
    let frozen_before = TaskVector::snapshot(&encoder.valid(), &ParamFilter::Pretrained);
    let (method, report) = run_once(&encoder);
    eprintln!("{}", report.summary());
    assert!(report.completed);
    let tau = &method.task_vectors()[0];
    assert!(
        tau.paths().all(|p| p.contains(".adapter.")),
        "only adapter parameters"
    );
    assert_eq!(
        tau.len(),
        2 * 2 * 4,
        "2 layers × 2 adapters × (down, up) × (weight, bias)"
    );
    assert!(method.task_vectors().iter().all(|t| t.l2_norm() > 0.0));
    let frozen_after = method.backbone_params();
    assert_eq!(
        frozen_after.sub(&frozen_before).unwrap().l2_norm(),
        0.0,
        "encoder bit-identical"
    );
    assert!(
        report.matrix.rows()[0][0] > 0.6,
        "task 1 learnt: {:?}",
        report.matrix.rows()[0]
    );
    let (_, again) = run_once(&encoder);
    assert_eq!(again.matrix, report.matrix, "deterministic");
}
