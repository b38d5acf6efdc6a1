//! Merging T task vectors of a MiniLM LoRA (r = 8 on query and value of 6 layers, the shapes of
//! all-MiniLM-L6-v2; weights random, which does not change the cost) into one model, T = 5 and
//! 15: ΔW-space and factor-space task arithmetic, TIES and DARE. Peak heap memory of one merge
//! (above what was allocated before it) is measured with a counting allocator and printed as
//! `peak <case>: <MiB>`.

use burn::backend::NdArray;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use cl_arith::merge::merged_classifier;
use cl_arith::{InitFrom, MergeLevel};
use cl_core::backbone::{BertEncoder, add_lora};
use cl_core::model::PeftClassifier;
use cl_core::peft::{LoraConfig, MergeStrategy, ParamFilter, ParamTensor, TaskVector};
use criterion::{Criterion, criterion_group, criterion_main};
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

type B = NdArray<f32>;
type Model = PeftClassifier<B, BertEncoder<B>>;

fn minilm_template() -> Model {
    let encoder = benchmarks::minilm::<B>();
    let mut model = PeftClassifier::new(encoder, 18, 0);
    add_lora(&mut model.backbone, &LoraConfig::default(), 1).expect("query and value exist");
    model
}

fn random_taus(init: &TaskVector<B>, t: usize) -> Vec<TaskVector<B>> {
    let device = Default::default();
    (0..t)
        .map(|task| {
            B::seed(&device, task as u64);
            let entries = init
                .entries()
                .iter()
                .map(|(path, p)| {
                    let n: usize = p.shape.iter().product();
                    let value = Tensor::random([n], Distribution::Normal(0.0, 0.02), &device);
                    (
                        path.clone(),
                        ParamTensor {
                            value,
                            shape: p.shape.clone(),
                        },
                    )
                })
                .collect();
            TaskVector::from_entries(entries)
        })
        .collect()
}

fn merges(c: &mut Criterion) {
    let template = minilm_template();
    let init = TaskVector::snapshot(&template, &ParamFilter::Lora);
    let device = Default::default();
    let cases = [
        (
            "delta_w_task_arithmetic",
            MergeLevel::DeltaW,
            MergeStrategy::TaskArithmetic,
        ),
        (
            "factors_task_arithmetic",
            MergeLevel::Factors,
            MergeStrategy::TaskArithmetic,
        ),
        (
            "delta_w_ties_0.2",
            MergeLevel::DeltaW,
            MergeStrategy::Ties { density: 0.2 },
        ),
        (
            "delta_w_dare_0.9",
            MergeLevel::DeltaW,
            MergeStrategy::Dare {
                drop_rate: 0.9,
                seed: 0,
            },
        ),
    ];
    for t in [5, 15] {
        let taus = random_taus(&init, t);
        let weights = vec![1.0 / t as f64; t];
        for (name, level, strategy) in &cases {
            let merge = || {
                let m = merged_classifier(
                    template.clone(),
                    &init,
                    &taus,
                    InitFrom::Pretrained,
                    &weights,
                    *level,
                    strategy,
                )
                .expect("merge");
                B::sync(&device).expect("sync");
                m
            };
            let before = ALLOC.current_usage();
            ALLOC.reset_peak_usage();
            drop(merge());
            let peak = ALLOC.peak_usage().saturating_sub(before);
            eprintln!(
                "peak ndarray/arith_merge_{name}_T{t}: {:.1} MiB",
                peak as f64 / (1 << 20) as f64
            );
            c.bench_function(&format!("ndarray/arith_merge_{name}_T{t}"), |b| {
                b.iter(merge)
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = merges
}
criterion_main!(benches);
