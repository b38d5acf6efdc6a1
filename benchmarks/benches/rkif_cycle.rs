//! Recurrent-KIF's overhead per cycle: one cycle (K = 8 inner steps on current batches, M = 4
//! outer steps on replay batches, importance after every step, quantile + fusion at the end)
//! against the K + M plain optimiser steps of that cycle (SeqLoRA steps on batches of the same
//! size), on a MiniLM-shaped encoder (random weights), LoRA r = 8 on query and value, batches of
//! 16 texts of 24–64 tokens, ndarray. Target ≤ 1.15×; the paper reports ≈ 1.0–1.37× end to end.
//!
//! The ratio is printed from one process, the two alternating (`ratio rkif/plain: …`), and both
//! are also timed by criterion.

use std::time::Instant;

use benchmarks::{after_first_task, minilm, optimizer, texts};
use burn::backend::{Autodiff, NdArray};
use cl_core::Method;
use cl_core::baselines::{Baseline, BaselineConfig, LoraBaseline};
use cl_core::stream::replay::ReplayConfig;
use cl_rkif::{Rkif, RkifConfig};
use criterion::{Criterion, criterion_group, criterion_main};

type B = Autodiff<NdArray<f32>>;

const K: usize = 8;
const M: usize = 4;

fn cycle(c: &mut Criterion) {
    let batch = texts(16, 1, 2);
    let mut plain = after_first_task(
        LoraBaseline::new(
            Baseline::SeqLora,
            BaselineConfig {
                optimizer: optimizer(),
                ..BaselineConfig::default()
            },
            minilm::<B>(),
            8,
            0,
        )
        .unwrap(),
    );
    let mut rkif = after_first_task(
        Rkif::new(
            RkifConfig {
                lora: cl_core::peft::LoraConfig::default(),
                optimizer: optimizer(),
                replay: ReplayConfig {
                    min_per_task: 16,
                    ..ReplayConfig::default()
                },
                inner_steps: K,
                outer_steps: M,
                ..RkifConfig::default()
            },
            minilm::<B>(),
            8,
            0,
        )
        .unwrap(),
    );
    let mut plain_cycle = || {
        for _ in 0..K + M {
            plain.train_step(&batch).unwrap();
        }
    };
    let mut rkif_cycle = || {
        for _ in 0..K {
            rkif.train_step(&batch).unwrap();
        }
    };

    // Side by side: alternate, 1 warm-up cycle each, then 5 timed.
    let (mut t_plain, mut t_rkif) = (0.0, 0.0);
    for i in 0..6 {
        let start = Instant::now();
        plain_cycle();
        let p = start.elapsed().as_secs_f64();
        let start = Instant::now();
        rkif_cycle();
        let r = start.elapsed().as_secs_f64();
        if i > 0 {
            t_plain += p;
            t_rkif += r;
        }
    }
    println!(
        "ratio rkif/plain: {:.3} (plain {:.0} ms, rkif {:.0} ms per cycle of {} steps, mean of 5)",
        t_rkif / t_plain,
        t_plain * 200.0,
        t_rkif * 200.0,
        K + M
    );

    let mut group = c.benchmark_group("ndarray/cycle_minilm_k8_m4_16x64");
    group.sample_size(10);
    group.bench_function("plain_steps", |b| b.iter(&mut plain_cycle));
    group.bench_function("rkif", |b| b.iter(&mut rkif_cycle));
    group.finish();
}

criterion_group!(benches, cycle);
criterion_main!(benches);
