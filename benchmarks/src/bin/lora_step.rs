//! One LoRA training step of MiniLM in Burn, to compare with `benchmarks/peft_step.py` (PyTorch +
//! peft) on the same machine: all-MiniLM-L6-v2's shapes (random weights: the cost depends on
//! shapes only), LoRA r = 8, α = 16 on query and value, mean pooling, a linear head over 8
//! classes, cross-entropy, AdamW lr 5e-3; a batch of `--batch` texts of exactly `--seq` tokens.
//!
//! Prints one JSON line: milliseconds per training step (forward + backward + AdamW, loss read
//! back to the host) and per no-grad forward of the same batch, both the median of `--steps`
//! timed repetitions after `--warmup` untimed ones, and examples per second of training.
//!
//! ```text
//! cargo run --release -p benchmarks --bin lora_step -- --backend ndarray --batch 32 --seq 128
//! cargo run --release -p benchmarks --features cuda --bin lora_step -- --backend cuda --precision f16
//! ```

use std::time::Instant;

use benchmarks::{minilm, optimizer, task};
use burn::tensor::backend::AutodiffBackend;
use cl_core::Method;
use cl_core::baselines::{Baseline, BaselineConfig, LoraBaseline};
use cl_core::method::EvalContext;
use cl_core::stream::{Example, Scenario};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Args {
    backend: String,
    precision: String,
    batch: usize,
    seq: usize,
    steps: usize,
    warmup: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        backend: "ndarray".into(),
        precision: "f32".into(),
        batch: 32,
        seq: 128,
        steps: 10,
        warmup: 2,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .clone();
        let number = || {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag} takes a positive integer, got `{value}`"))
        };
        match flag.as_str() {
            "--backend" => a.backend = value.clone(),
            "--precision" => a.precision = value.clone(),
            "--batch" => a.batch = number()?,
            "--seq" => a.seq = number()?.max(2),
            "--steps" => a.steps = number()?,
            "--warmup" => a.warmup = value.parse().map_err(|_| format!("--warmup: `{value}`"))?,
            other => {
                return Err(format!(
                    "unknown argument `{other}`; usage: lora_step [--backend ndarray|cuda|wgpu] \
                     [--precision f32|f16|bf16] [--batch 32] [--seq 128] [--steps 10] [--warmup 2]"
                ));
            }
        }
    }
    Ok(a)
}

/// `n` texts of exactly `len` tokens ([CLS] … [SEP]), labels 0..8.
fn batch(n: usize, len: usize) -> Vec<Example<Vec<u32>>> {
    let mut rng = StdRng::seed_from_u64(7);
    (0..n)
        .map(|i| {
            let mut ids: Vec<u32> = (0..len).map(|_| rng.random_range(1000..30000)).collect();
            ids[0] = 101;
            ids[len - 1] = 102;
            Example {
                input: ids,
                label: i % 8,
                task: 0,
            }
        })
        .collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n.is_multiple_of(2) {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    } else {
        xs[n / 2]
    }
}

fn measure<B: AutodiffBackend>(args: &Args) -> Result<(f64, f64), String> {
    let mut method = LoraBaseline::new(
        Baseline::SeqLora,
        BaselineConfig {
            optimizer: optimizer(),
            ..BaselineConfig::default()
        },
        minilm::<B>(),
        8,
        0,
    )
    .map_err(|e| e.to_string())?;
    let texts = batch(args.batch, args.seq);
    let mut info = task(0);
    info.classes = (0..8).collect();
    method
        .begin_task(&info, &texts)
        .map_err(|e| e.to_string())?;
    let mut train = Vec::new();
    for i in 0..args.warmup + args.steps {
        let t = Instant::now();
        method.train_step(&texts).map_err(|e| e.to_string())?;
        if i >= args.warmup {
            train.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let inputs: Vec<&Vec<u32>> = texts.iter().map(|e| &e.input).collect();
    let ctx = EvalContext::new(Scenario::ClassIncremental, 0);
    let mut forward = Vec::new();
    for i in 0..args.warmup + args.steps {
        let t = Instant::now();
        let logits = method.predict(&inputs, &ctx).map_err(|e| e.to_string())?;
        // Wait for the device: read the logits back, as the training step reads its loss.
        let _ = logits.into_data();
        if i >= args.warmup {
            forward.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok((median(train), median(forward)))
}

fn run(args: &Args) -> Result<(f64, f64), String> {
    use burn::backend::Autodiff;
    match (args.backend.as_str(), args.precision.as_str()) {
        ("ndarray", "f32") => measure::<Autodiff<burn::backend::NdArray<f32>>>(args),
        #[cfg(feature = "cuda")]
        ("cuda", "f32") => measure::<Autodiff<burn::backend::Cuda<f32>>>(args),
        #[cfg(feature = "cuda")]
        ("cuda", "f16") => measure::<Autodiff<burn::backend::Cuda<burn::tensor::f16>>>(args),
        #[cfg(feature = "cuda")]
        ("cuda", "bf16") => measure::<Autodiff<burn::backend::Cuda<burn::tensor::bf16>>>(args),
        #[cfg(feature = "wgpu")]
        ("wgpu", "f32") => measure::<Autodiff<burn::backend::Wgpu<f32>>>(args),
        #[cfg(feature = "wgpu")]
        ("wgpu", "f16") => measure::<Autodiff<burn::backend::Wgpu<burn::tensor::f16>>>(args),
        (b, p) => Err(format!(
            "backend `{b}` at precision `{p}` is not compiled in (ndarray: f32; cuda: f32, f16, bf16; \
             wgpu: f32, f16; GPU backends need `--features cuda` / `--features wgpu`)"
        )),
    }
}

fn main() {
    // As `cl` does: freed tensor memory stays mapped for the next step.
    cl_alloc::reuse_freed_memory();
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("lora_step: {e}");
            std::process::exit(2);
        }
    };
    match run(&args) {
        Ok((train_ms, forward_ms)) => println!(
            "{{\"framework\": \"burn\", \"backend\": \"{}\", \"precision\": \"{}\", \"batch\": {}, \"seq\": {}, \
             \"train_ms\": {train_ms:.2}, \"forward_ms\": {forward_ms:.2}, \"train_examples_per_s\": {:.2}}}",
            args.backend,
            args.precision,
            args.batch,
            args.seq,
            args.batch as f64 / (train_ms / 1e3)
        ),
        Err(e) => {
            eprintln!("lora_step: {e}");
            std::process::exit(1);
        }
    }
}
