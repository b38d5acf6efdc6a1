//! `cl run`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;
use cl_core::backbone::MlpBackboneConfig;
use cl_core::baselines::{Baseline, BaselineConfig, LoraBaseline};
use cl_core::checkpoint::read_json;
use cl_core::stream::Scenario;
use cl_core::stream::synthetic::{SyntheticStreamConfig, synthetic_stream};
use cl_core::{RunConfig, run as run_stream};
use clap::Args;

use crate::backend::{self, OnBackend};

/// Methods `--method` accepts.
pub const METHOD_NAMES: [&str; 4] = ["seq-lora", "inc-lora", "replay", "mtl"];
/// Streams `--stream` accepts.
pub const STREAM_NAMES: [&str; 1] = ["synthetic"];

/// Arguments of `cl run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Method: seq-lora, inc-lora, replay, mtl.
    #[arg(long)]
    method: String,
    /// Task stream.
    #[arg(long, default_value = "synthetic")]
    stream: String,
    /// Task order: 1 is the stream's own order, 2 and 3 fixed permutations of it.
    #[arg(long, default_value_t = 1)]
    order: usize,
    /// Seed of data order, initialisation and sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Passes over each task's training split.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Training batch size.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Keep at most this many training examples per task (seeded, stratified).
    #[arg(long)]
    max_train: Option<usize>,
    /// Task-incremental (task id at evaluation) instead of class-incremental.
    #[arg(long)]
    task_incremental: bool,
    /// Method configuration (JSON: lora, optimizer, replay); unknown keys are errors.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output directory for report.json and checkpoints.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Resume from `<out>/checkpoint` if present.
    #[arg(long)]
    resume: bool,
    /// Backend: ndarray (default), wgpu or cuda (each needs its cargo feature).
    #[arg(long, default_value_t = backend::default_name().to_string())]
    backend: String,
}

/// Runs `cl run`.
pub fn run(args: RunArgs) -> Result<()> {
    let Some(kind) = Baseline::from_name(&args.method) else {
        bail!(
            "unknown method `{}`; choose one of {}",
            args.method,
            METHOD_NAMES.join(", ")
        );
    };
    if !STREAM_NAMES.contains(&args.stream.as_str()) {
        bail!(
            "unknown stream `{}`; choose one of {}",
            args.stream,
            STREAM_NAMES.join(", ")
        );
    }
    let method_cfg: BaselineConfig = match &args.config {
        Some(path) => {
            read_json(path).with_context(|| format!("method config `{}`", path.display()))?
        }
        None => synthetic_method_config(),
    };
    backend::dispatch(
        &args.backend.clone(),
        Job {
            args,
            kind,
            method_cfg,
        },
    )
}

/// Defaults that suit the synthetic stream's MLP backbone.
fn synthetic_method_config() -> BaselineConfig {
    let mut cfg = BaselineConfig::default();
    cfg.lora.rank = 4;
    cfg.lora.alpha = 8.0;
    cfg.lora.targets = vec!["layers.*".into()];
    cfg.optimizer.lr = 1e-2;
    cfg
}

struct Job {
    args: RunArgs,
    kind: Baseline,
    method_cfg: BaselineConfig,
}

impl OnBackend for Job {
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<()> {
        let args = self.args;
        let scenario = if args.task_incremental {
            Scenario::TaskIncremental
        } else {
            Scenario::ClassIncremental
        };
        let stream_cfg = SyntheticStreamConfig {
            num_tasks: 5,
            scenario,
            ..SyntheticStreamConfig::default()
        };
        let mut stream = synthetic_stream(&stream_cfg)?;
        let order = task_order(args.order, stream.num_tasks())?;
        stream = stream.reordered(&order)?;
        if let Some(n) = args.max_train {
            stream = stream.with_max_train(n, args.seed);
        }
        let backbone = MlpBackboneConfig {
            input_dim: stream_cfg.input_dim,
            hidden: vec![32, 32],
            seed: 11,
        }
        .init::<B>(&device)?;
        let mut method = LoraBaseline::new(
            self.kind,
            self.method_cfg,
            backbone,
            stream.num_classes(),
            args.seed,
        )?;
        let run_cfg = RunConfig {
            epochs: args.epochs,
            batch_size: args.batch_size,
            eval_batch_size: 64,
            seed: args.seed,
            out_dir: args.out.clone(),
            resume: args.resume,
            progress: true,
            stop_after: None,
        };
        let report = run_stream(&mut method, &stream, &run_cfg, &device)?;
        print!("{}", report.summary());
        if let Some(out) = &args.out {
            println!("report: {}", out.join("report.json").display());
        }
        Ok(())
    }
}

/// Task order `k`: 1 = as given, 2 = reversed, 3 = the tasks at odd positions, then those at even
/// positions (for 5 tasks: 1, 3, 0, 2, 4).
pub fn task_order(k: usize, n: usize) -> Result<Vec<usize>> {
    Ok(match k {
        1 => (0..n).collect(),
        2 => (0..n).rev().collect(),
        3 => (1..n).step_by(2).chain((0..n).step_by(2)).collect(),
        _ => bail!("--order must be 1, 2 or 3 (got {k})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_orders_are_permutations() {
        assert_eq!(task_order(1, 5).unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(task_order(2, 5).unwrap(), vec![4, 3, 2, 1, 0]);
        assert_eq!(task_order(3, 5).unwrap(), vec![1, 3, 0, 2, 4]);
        assert!(task_order(4, 5).is_err());
    }
}
