//! cl-modulation's hot pieces on MobileNetV2 (random weights, ndarray): building the 52 task
//! weights from their grids (`R_out · M · R_inᵀ` resized, multiplied into `W`) at resolutions
//! (4, 4), (16, 16) and full, against one whole training step (8 images of 32×32, forward,
//! backward, AdamW) of the same method. Printed side by side from one process: the share of a
//! step spent building the weights.

use std::time::Instant;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use cl_core::Method;
use cl_core::backbone::{Image, MobileNetV2};
use cl_core::stream::{Example, Scenario, TaskInfo};
use cl_modulation::modulated::{LayerPlan, TaskModule, resamplers};
use cl_modulation::{ModulatableBackbone, Modulation, ModulationConfig, Resolution};
use criterion::{Criterion, criterion_group, criterion_main};

type B = Autodiff<NdArray<f32>>;

fn images(n: usize) -> Vec<Example<Image>> {
    let device = Default::default();
    NdArray::<f32>::seed(&device, 3);
    (0..n)
        .map(|i| Example {
            input: Image {
                pixels: Tensor::<NdArray<f32>, 1>::random(
                    [3 * 32 * 32],
                    Distribution::Normal(0.0, 1.0),
                    &device,
                )
                .into_data()
                .to_vec()
                .unwrap(),
                height: 32,
                width: 32,
            },
            label: i % 2,
            task: 0,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let device = Default::default();
    let net = MobileNetV2::<B>::random(&device);
    let weights: Vec<_> = net.weights();
    let shapes: Vec<(String, [usize; 4])> =
        weights.iter().map(|(p, w)| (p.clone(), w.dims())).collect();
    let frozen: Vec<Tensor<B, 4>> = weights.into_iter().map(|(_, w)| w).collect();
    let mut build_times = Vec::new();
    for (name, resolution) in [
        ("4x4", Resolution::Fixed([4, 4])),
        ("16x16", Resolution::Fixed([16, 16])),
        ("full", Resolution::Full),
    ] {
        let cfg = ModulationConfig {
            resolution,
            ..ModulationConfig::default()
        };
        let plans = LayerPlan::all(&shapes, &cfg);
        let task = TaskModule::<B>::new(&plans, &net.norms(), &cfg, 1280, 2, 0, &device);
        let r = resamplers::<B>(&plans, cfg.kind, cfg.interpolation, &device);
        let build = || {
            let w = TaskModule::weights(&task.grids, &frozen, &r, &cfg);
            // Force the lazy values.
            w.last().unwrap().clone().sum().into_scalar()
        };
        c.bench_function(&format!("modulated weights {name}"), |b| b.iter(build));
        let start = Instant::now();
        for _ in 0..5 {
            build();
        }
        build_times.push((name, start.elapsed().as_secs_f64() / 5.0));
    }

    let batch = images(8);
    let info = TaskInfo {
        id: 0,
        name: "t".into(),
        classes: vec![0, 1],
        scenario: Scenario::TaskIncremental,
        num_train: 8,
        labels: Vec::new(),
    };
    let mut method = Modulation::new(ModulationConfig::default(), net, 2, 0).unwrap();
    method.begin_task(&info, &batch).unwrap();
    method.train_step(&batch).unwrap();
    let start = Instant::now();
    for _ in 0..3 {
        method.train_step(&batch).unwrap();
    }
    let step = start.elapsed().as_secs_f64() / 3.0;
    for (name, t) in &build_times {
        println!(
            "modulated weights {name}: {:.1} ms = {:.1}% of a training step ({:.0} ms, 8 images 32×32)",
            1e3 * t,
            100.0 * t / step,
            1e3 * step
        );
    }
    c.bench_function("modulation train step (8 × 32×32)", |b| {
        b.iter(|| method.train_step(&batch).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
