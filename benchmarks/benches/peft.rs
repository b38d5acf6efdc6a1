//! Criterion benches of the PEFT hot paths on ndarray: LoRA forward, forward+backward, merge, and
//! task-vector arithmetic. Results are read after `B::sync`, so the timed work has finished.
//! Names: `<backend>/<case>`.

use burn::backend::{Autodiff, NdArray};
use burn::module::Module;
use burn::nn::LinearConfig;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use cl_core::peft::{LoraConfig, LoraLinear, ParamFilter, TaskVector};
use criterion::{Criterion, criterion_group, criterion_main};

type Inner = NdArray<f32>;
type Ad = Autodiff<Inner>;

/// A MiniLM-sized projection (384 → 384, rank 8) and a batch of 32 × 128 tokens.
fn layer<B: Backend>() -> LoraLinear<B> {
    let device = Default::default();
    let mut l = LoraLinear::frozen(LinearConfig::new(384, 384).init::<B>(&device));
    l.push_adapter(
        &LoraConfig {
            rank: 8,
            alpha: 16.0,
            dropout: 0.0,
            targets: vec!["*".into()],
        },
        0,
    );
    l
}

fn lora(c: &mut Criterion) {
    let device = Default::default();
    let x = Tensor::<Inner, 3>::random([32, 128, 384], Distribution::Normal(0.0, 1.0), &device);
    let l = layer::<Inner>();
    c.bench_function("ndarray/lora_forward_32x128x384_r8", |b| {
        b.iter(|| {
            let y = l.forward(x.clone());
            Inner::sync(&device).unwrap();
            y
        })
    });

    let xa = Tensor::<Ad, 3>::random([32, 128, 384], Distribution::Normal(0.0, 1.0), &device);
    let la = layer::<Ad>();
    c.bench_function("ndarray/lora_forward_backward_32x128x384_r8", |b| {
        b.iter(|| {
            let grads = la.forward(xa.clone()).mean().backward();
            Ad::sync(&device).unwrap();
            grads
        })
    });

    c.bench_function("ndarray/lora_merge_384x384_r8", |b| {
        b.iter(|| {
            let merged = l.clone().merge();
            Inner::sync(&device).unwrap();
            merged
        })
    });

    let tau = TaskVector::snapshot(&l, &ParamFilter::Lora);
    c.bench_function("ndarray/task_vector_scale_add_apply", |b| {
        b.iter(|| {
            let sum = tau.add(&tau.scale(0.5)).unwrap();
            let out = sum.apply(l.clone(), 1.0).unwrap();
            Inner::sync(&device).unwrap();
            out.num_params()
        })
    });
}

criterion_group!(benches, lora);
criterion_main!(benches);
