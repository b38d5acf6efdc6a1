//! One training step of I-LoRA against one step of LoRAReplay on the same batch (16 current +
//! 16 replayed texts, 24–64 tokens) over a MiniLM-shaped encoder (all-MiniLM-L6-v2's shapes;
//! random weights, which do not change the cost), LoRA r = 8 on query and value, ndarray.
//!
//! Both methods draw the replay batch from the same filled reservoir (32 examples of a finished
//! task). I-LoRA adds one no-grad forward of the slow learner on the replay half, the
//! consistency loss on the last hidden state, and the on-device EMA; the target is ≤ 1.6× the
//! LoRAReplay step. The ratio is printed from one process (`ratio ilora/replay: …`) as well as
//! the criterion timings.

use std::time::Instant;

use benchmarks::{after_first_task, minilm, optimizer, texts};
use burn::backend::{Autodiff, NdArray};
use cl_core::Method;
use cl_core::baselines::{Baseline, BaselineConfig, LoraBaseline};
use cl_core::stream::replay::{MemoryKind, ReplayConfig};
use cl_ilora::{EmaConfig, EmaSchedule, ILora, ILoraConfig};
use criterion::{Criterion, criterion_group, criterion_main};

type B = Autodiff<NdArray<f32>>;

fn buffer() -> ReplayConfig {
    ReplayConfig {
        memory: MemoryKind::Reservoir,
        capacity: 32,
        ..ReplayConfig::default()
    }
}

fn step(c: &mut Criterion) {
    let batch = texts(16, 1, 2);
    let mut replay = after_first_task(
        LoraBaseline::new(
            Baseline::LoraReplay,
            BaselineConfig {
                optimizer: optimizer(),
                replay: buffer(),
                ..BaselineConfig::default()
            },
            minilm::<B>(),
            8,
            0,
        )
        .unwrap(),
    );
    let mut ilora = after_first_task(
        ILora::new(
            ILoraConfig {
                optimizer: optimizer(),
                replay: buffer(),
                ema: EmaConfig {
                    schedule: EmaSchedule::Capped,
                    alpha: 0.25,
                },
                ..ILoraConfig::default()
            },
            minilm::<B>(),
            8,
            0,
        )
        .unwrap(),
    );

    // Side by side in one process: alternate the two, 10 steps each after 2 warm-up steps.
    let time = |m: &mut dyn FnMut()| {
        let start = Instant::now();
        m();
        start.elapsed().as_secs_f64()
    };
    let (mut t_replay, mut t_ilora) = (0.0, 0.0);
    for i in 0..12 {
        let r = time(&mut || {
            replay.train_step(&batch).unwrap();
        });
        let l = time(&mut || {
            ilora.train_step(&batch).unwrap();
        });
        if i >= 2 {
            t_replay += r;
            t_ilora += l;
        }
    }
    println!(
        "ratio ilora/replay: {:.3} (replay {:.1} ms, ilora {:.1} ms per step, mean of 10)",
        t_ilora / t_replay,
        t_replay * 100.0,
        t_ilora * 100.0
    );

    let mut group = c.benchmark_group("ndarray/train_step_minilm_16+16x64");
    group.sample_size(10);
    group.bench_function("lora_replay", |b| {
        b.iter(|| replay.train_step(&batch).unwrap())
    });
    group.bench_function("ilora", |b| b.iter(|| ilora.train_step(&batch).unwrap()));
    group.finish();
}

criterion_group!(benches, step);
criterion_main!(benches);
