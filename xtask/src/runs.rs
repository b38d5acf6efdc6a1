//! What `cargo xtask reproduce` runs: its [`Options`] and one [`Run`] (a row on a stream, order
//! and seed), shared by the runner ([`crate::reproduce`]) and the tables ([`crate::report`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::plan::{PAPER_IDS, Row};

/// Options of `cargo xtask reproduce`.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Papers to reproduce.
    pub papers: Vec<String>,
    /// ndarray, wgpu or cuda.
    pub backend: String,
    /// Seeds 0..seeds.
    pub seeds: u64,
    /// Task orders 1..=orders for the main rows (ablations: order 1).
    pub orders: usize,
    /// CI-sized runs: one seed, order 1, main rows, tiny data.
    pub quick: bool,
    /// `cl run --preset` when not `quick`.
    pub preset: String,
    /// Only these streams (all of the plan's when empty).
    pub streams: Vec<String>,
    /// Skip the ablation rows.
    pub main_only: bool,
    /// Runs at once.
    pub jobs: usize,
    /// Print the plan and the commands, run nothing.
    pub dry_run: bool,
    /// Write the tables and plots from the runs already finished, run nothing.
    pub report_only: bool,
}

const USAGE: &str = "cargo xtask reproduce [--paper arith|ilora|rkif|modulation|all] \
[--backend ndarray|wgpu|cuda] [--seeds N] [--orders N] [--quick] [--preset quick|paper] \
[--streams text5,text15,vision6] [--main-only] [--jobs N] [--dry-run] [--report-only]";

impl Options {
    /// Parses the arguments after `reproduce`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut o = Options {
            papers: PAPER_IDS.iter().map(|s| s.to_string()).collect(),
            backend: "ndarray".into(),
            seeds: 3,
            orders: 3,
            quick: false,
            preset: "quick".into(),
            streams: Vec::new(),
            main_only: false,
            jobs: 1,
            dry_run: false,
            report_only: false,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .map(String::as_str)
                    .with_context(|| format!("{flag} needs a value; usage: {USAGE}"))
            };
            match flag.as_str() {
                "--paper" => {
                    let v = value()?;
                    o.papers = if v == "all" {
                        PAPER_IDS.iter().map(|s| s.to_string()).collect()
                    } else if PAPER_IDS.contains(&v) {
                        vec![v.to_string()]
                    } else {
                        bail!(
                            "unknown paper `{v}`; choose {} or all",
                            PAPER_IDS.join(", ")
                        )
                    };
                }
                "--backend" => {
                    let v = value()?;
                    if !["ndarray", "wgpu", "cuda"].contains(&v) {
                        bail!("unknown backend `{v}` (ndarray, wgpu, cuda)");
                    }
                    o.backend = v.into();
                }
                "--seeds" => o.seeds = positive(flag, value()?)? as u64,
                "--orders" => o.orders = positive(flag, value()?)?.min(3),
                "--jobs" => o.jobs = positive(flag, value()?)?,
                "--preset" => {
                    let v = value()?;
                    if !["quick", "paper"].contains(&v) {
                        bail!("unknown preset `{v}` (quick, paper)");
                    }
                    o.preset = v.into();
                }
                "--streams" => o.streams = value()?.split(',').map(String::from).collect(),
                "--quick" => o.quick = true,
                "--main-only" => o.main_only = true,
                "--dry-run" => o.dry_run = true,
                "--report-only" => o.report_only = true,
                "--help" | "-h" => bail!("usage: {USAGE}"),
                other => bail!("unknown argument `{other}`; usage: {USAGE}"),
            }
        }
        if o.quick {
            o.seeds = 1;
            o.orders = 1;
            o.main_only = true;
        }
        Ok(o)
    }

    /// The folder name of the run sizes.
    pub fn sizes_tag(&self) -> String {
        if self.quick {
            "quick".into()
        } else {
            format!("preset-{}", self.preset)
        }
    }

    /// The `cl run` flags of the run sizes on `stream`.
    fn size_args(&self, stream: &str) -> Vec<String> {
        let flags: &[&str] = if !self.quick {
            &["--preset", &self.preset]
        } else if stream == "vision6" {
            // 32 images a task at 32×32, one epoch: seconds a task on one core.
            &[
                "--max-train",
                "32",
                "--test-per-task",
                "32",
                "--image-size",
                "32",
                "--epochs",
                "1",
            ]
        } else if crate::plan::is_decoder_stream(stream) {
            // 4 prompts a task of at most 64 tokens, one step each, 2 test prompts: the
            // 135M-parameter decoder in one to two minutes a run here.
            &[
                "--max-train",
                "4",
                "--test-per-task",
                "2",
                "--max-len",
                "64",
                "--epochs",
                "1",
                "--batch-size",
                "4",
            ]
        } else if stream == "text15" {
            // Evaluation after every task on all 14 test splits is most of a text15 run
            // (97 of 135 s with 32 rows a split): 16 test rows a task halve it.
            &[
                "--max-train",
                "32",
                "--test-per-task",
                "16",
                "--max-len",
                "32",
                "--epochs",
                "1",
            ]
        } else {
            &[
                "--max-train",
                "32",
                "--test-per-task",
                "32",
                "--max-len",
                "32",
                "--epochs",
                "1",
            ]
        };
        flags.iter().map(|s| s.to_string()).collect()
    }

    /// The command that reproduces these options.
    pub fn command(&self) -> String {
        let mut cmd = String::from("cargo xtask reproduce");
        if self.papers.len() == 1 {
            cmd += &format!(" --paper {}", self.papers[0]);
        }
        if self.backend != "ndarray" {
            cmd += &format!(" --backend {}", self.backend);
        }
        if self.quick {
            cmd += " --quick";
        } else {
            cmd += &format!(" --seeds {} --orders {}", self.seeds, self.orders);
            if self.preset != "quick" {
                cmd += &format!(" --preset {}", self.preset);
            }
            if self.main_only {
                cmd += " --main-only";
            }
        }
        if !self.streams.is_empty() {
            cmd += &format!(" --streams {}", self.streams.join(","));
        }
        cmd
    }
}

fn positive(flag: &str, v: &str) -> Result<usize> {
    match v.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("{flag} takes a positive integer, got `{v}`"),
    }
}

/// One `cl run` of a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The row it belongs to.
    pub row: Row,
    /// Stream.
    pub stream: String,
    /// Task order (1..=3).
    pub order: usize,
    /// Seed.
    pub seed: u64,
}

impl Run {
    /// The run's folder under the runs root.
    pub fn dir(&self, runs: &Path) -> PathBuf {
        runs.join(&self.stream)
            .join(&self.row.label)
            .join(format!("o{}-s{}", self.order, self.seed))
    }

    /// `cl run` arguments, `--out` and `--resume` excepted.
    pub fn args(&self, options: &Options) -> Vec<String> {
        let mut args: Vec<String> = [
            "run",
            "--method",
            &self.row.method,
            "--stream",
            &self.stream,
            "--order",
            &self.order.to_string(),
            "--seed",
            &self.seed.to_string(),
            "--backend",
            &options.backend,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(cfg) = self.row.config_for(&self.stream) {
            args.extend(["--config".to_string(), cfg]);
        }
        args.extend(options.size_args(&self.stream));
        args
    }

    /// What identifies the run's result: its arguments and its config file's text.
    pub(crate) fn identity(&self, options: &Options, root: &Path) -> Result<Value> {
        let config = match self.row.config_for(&self.stream) {
            Some(cfg) => Some(
                std::fs::read_to_string(root.join(&cfg))
                    .with_context(|| format!("reading config {cfg}"))?,
            ),
            None => None,
        };
        Ok(json!({ "args": self.args(options), "config": config }))
    }
}
