//! `cargo xtask reproduce`: builds `cl` for a backend, runs every (row, stream, order, seed) of
//! the chosen papers' plans, skipping runs already finished with the same arguments, and writes
//! tables and plots under `target/repro/`.
//!
//! Layout (`<sizes>` is `quick` for `--quick`, else `preset-<name>`):
//! - `target/repro/runs/<backend>/<sizes>/<stream>/<label>/o<order>-s<seed>/`: `run.json` (the
//!   arguments and the config's text), `log.txt`, `report.json` and checkpoints of `cl run`;
//! - `target/repro[/quick]/<paper>/`: `README.md` (tables, claims, commands), `curves-<stream>.svg`,
//!   `heatmap-<stream>-<label>.svg` (cl-plot); `target/repro[/quick]/REPRODUCIBILITY.md` joins the papers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::plan::{self, Paper};
use crate::report::{self, RunResult};
use crate::runs::{Options, Run};
use crate::workspace_root;

/// Every run of `paper` under `options`, main rows first.
pub fn runs_of(paper: &Paper, options: &Options) -> Vec<Run> {
    let mut runs = Vec::new();
    for stream in &paper.streams {
        if !options.streams.is_empty() && !options.streams.iter().any(|s| s == stream) {
            continue;
        }
        for row in paper.rows_on(stream) {
            if row.ablation && options.main_only {
                continue;
            }
            // CI's time: on the decoder, --quick runs only the paper's method and SeqLoRA.
            if options.quick
                && plan::is_decoder_stream(stream)
                && !quick_on_decoder(paper, &row.label)
            {
                continue;
            }
            let orders = if row.ablation { 1 } else { options.orders };
            for order in 1..=orders {
                for seed in 0..options.seeds {
                    runs.push(Run {
                        row: row.clone(),
                        stream: stream.to_string(),
                        order,
                        seed,
                    });
                }
            }
        }
    }
    runs
}

/// Whether `--quick` runs the row `label` of `paper` on a decoder stream: the paper's own method
/// and the sequential baseline (the decoder's runs take minutes each on CI's CPU).
fn quick_on_decoder(paper: &Paper, label: &str) -> bool {
    label == paper.id || label == "seq-lora"
}

/// Runs `cargo xtask reproduce`.
pub fn reproduce(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let root = workspace_root();
    let repro = root.join("target/repro");
    let runs_root = repro
        .join("runs")
        .join(&options.backend)
        .join(options.sizes_tag());
    let out_root = if options.quick {
        repro.join("quick")
    } else {
        repro.clone()
    };
    let papers: Vec<Paper> = options
        .papers
        .iter()
        .map(|id| plan::paper(id, &root))
        .collect::<Result<_>>()?;

    // One run per folder: rows shared by several papers (SeqLoRA, MTL, ...) run once.
    let mut all: Vec<Run> = Vec::new();
    for paper in &papers {
        for run in runs_of(paper, &options) {
            if !all.iter().any(|r| r.dir(&runs_root) == run.dir(&runs_root)) {
                all.push(run);
            }
        }
    }
    let mut pending = Vec::new();
    for run in &all {
        if !is_finished(run, &options, &root, &runs_root)? {
            pending.push(run.clone());
        }
    }
    println!(
        "reproduce: {} papers, {} runs, {} already finished, {} to run ({} at once) under {}",
        papers.len(),
        all.len(),
        all.len() - pending.len(),
        pending.len(),
        options.jobs,
        runs_root.display()
    );
    if options.report_only && !pending.is_empty() {
        println!("reproduce: --report-only: the tables hold the finished runs");
    }
    if options.dry_run {
        for run in &pending {
            println!("cl {}", run.args(&options).join(" "));
        }
        return Ok(());
    }

    let failures = if pending.is_empty() || options.report_only {
        Vec::new()
    } else {
        let cl = build_cl(&options, &root, &repro)?;
        execute(&cl, &pending, &options, &root, &runs_root)
    };

    std::fs::create_dir_all(&out_root)
        .with_context(|| format!("creating {}", out_root.display()))?;
    let mut index = format!(
        "# Reproduction ({})\n\nProduced by `{}` with the `{}` backend; runs in `{}`.\n\n",
        if options.quick {
            "quick, CI sizes"
        } else {
            "full"
        },
        options.command(),
        options.backend,
        runs_root
            .strip_prefix(&root)
            .unwrap_or(&runs_root)
            .display()
    );
    for paper in &papers {
        let results: Vec<RunResult> = runs_of(paper, &options)
            .into_iter()
            .filter_map(|run| {
                let dir = run.dir(&runs_root);
                report::load(&dir.join("report.json"), run).ok()
            })
            .collect();
        let dir = out_root.join(paper.id);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let markdown = report::write_paper(paper, &results, &options, &dir)?;
        index += &markdown;
        index += "\n";
        println!("reproduce: wrote {}", dir.display());
    }
    let index_path = out_root.join("REPRODUCIBILITY.md");
    std::fs::write(&index_path, index)
        .with_context(|| format!("writing {}", index_path.display()))?;
    println!("reproduce: wrote {}", index_path.display());
    if !failures.is_empty() {
        bail!(
            "{} runs failed (their logs: {}); the tables hold the runs that finished",
            failures.len(),
            failures.join(", ")
        );
    }
    Ok(())
}

/// The workspace root (the parent of `xtask/`).
/// Whether `run` has a completed report made with the same arguments and config.
fn is_finished(run: &Run, options: &Options, root: &Path, runs_root: &Path) -> Result<bool> {
    let dir = run.dir(runs_root);
    let Ok(saved) = std::fs::read_to_string(dir.join("run.json")) else {
        return Ok(false);
    };
    let same = serde_json::from_str::<Value>(&saved).ok() == Some(run.identity(options, root)?);
    let completed = std::fs::read_to_string(dir.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.get("completed").and_then(Value::as_bool))
        .unwrap_or(false);
    Ok(same && completed)
}

/// Builds `cl` in release mode with the backend's feature and copies it to
/// `target/repro/bin/`, so that later builds do not change the binary under running runs.
fn build_cl(options: &Options, root: &Path, repro: &Path) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "-p", "cl-cli"]);
    if options.backend != "ndarray" {
        cmd.args(["--features", &options.backend]);
    }
    crate::run(&mut cmd)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let built = target
        .join("release")
        .join(format!("cl{}", std::env::consts::EXE_SUFFIX));
    let bin = repro.join("bin");
    std::fs::create_dir_all(&bin)?;
    let copy = bin.join(format!(
        "cl-{}{}",
        options.backend,
        std::env::consts::EXE_SUFFIX
    ));
    // Replace, not overwrite: a running copy keeps its own file.
    let _ = std::fs::remove_file(&copy);
    std::fs::copy(&built, &copy)
        .with_context(|| format!("copying {} to {}", built.display(), copy.display()))?;
    Ok(copy)
}

/// Runs `pending` with `options.jobs` at once; returns the log paths of failed runs.
fn execute(
    cl: &Path,
    pending: &[Run],
    options: &Options,
    root: &Path,
    runs_root: &Path,
) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.min(pending.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(run) = pending.get(i) else { break };
                    let t = Instant::now();
                    let outcome = execute_one(cl, run, options, root, runs_root);
                    let what = format!(
                        "[{}/{}] {} {} o{} s{}",
                        i + 1,
                        pending.len(),
                        run.row.label,
                        run.stream,
                        run.order,
                        run.seed
                    );
                    match outcome {
                        Ok(summary) => println!(
                            "{what}: {summary} ({:.0} s; {:.0} s so far)",
                            t.elapsed().as_secs_f64(),
                            started.elapsed().as_secs_f64()
                        ),
                        Err(e) => {
                            eprintln!("{what}: FAILED: {e:#}");
                            let log = run.dir(runs_root).join("log.txt");
                            failures
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(log.display().to_string());
                        }
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// One `cl run`, its output in `log.txt`; resumes from a checkpoint a stopped run left.
fn execute_one(
    cl: &Path,
    run: &Run,
    options: &Options,
    root: &Path,
    runs_root: &Path,
) -> Result<String> {
    let dir = run.dir(runs_root);
    let identity = run.identity(options, root)?;
    let saved = std::fs::read_to_string(dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
    if saved.as_ref().is_some_and(|s| s != &identity) {
        // Made with other arguments or another config: start over.
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join("run.json"),
        serde_json::to_string_pretty(&identity)?,
    )?;
    let log = std::fs::File::create(dir.join("log.txt"))?;
    let mut cmd = Command::new(cl);
    cmd.current_dir(root)
        .args(run.args(options))
        .arg("--out")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Continues a stopped run (`cl` starts afresh when there is no checkpoint yet, and
        // refuses a checkpoint made with other settings).
        .arg("--resume");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{status}; see {}", dir.join("log.txt").display());
    }
    let result = report::load(&dir.join("report.json"), run.clone())?;
    Ok(format!(
        "OP {:.1} BWT {}",
        result.op,
        result
            .bwt
            .map_or_else(|| "n/a".to_string(), |b| format!("{b:+.1}"))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quick_is_one_seed_one_order_main_rows() {
        let o = Options::parse(&strings(&["--quick", "--seeds", "5"])).unwrap();
        assert_eq!((o.seeds, o.orders, o.main_only), (1, 1, true));
        assert_eq!(o.papers.len(), 4);
        assert_eq!(o.command(), "cargo xtask reproduce --quick");
        let full = Options::parse(&strings(&["--paper", "rkif", "--seeds", "2"])).unwrap();
        assert_eq!(
            full.command(),
            "cargo xtask reproduce --paper rkif --seeds 2 --orders 3"
        );
        assert!(Options::parse(&strings(&["--paper", "x"])).is_err());
        assert!(Options::parse(&strings(&["--seeds", "0"])).is_err());
        assert!(Options::parse(&strings(&["--backend", "metal"])).is_err());
        assert!(Options::parse(&strings(&["--frobnicate"])).is_err());
        assert!(Options::parse(&strings(&["--seeds"])).is_err());
    }

    #[test]
    fn runs_cover_orders_seeds_and_ablations_on_the_first_stream() {
        let root = workspace_root();
        let rkif = plan::paper("rkif", &root).unwrap();
        let o = Options::parse(&strings(&["--seeds", "2", "--orders", "3"])).unwrap();
        let runs = runs_of(&rkif, &o);
        let main_rows = rkif.rows.iter().filter(|r| !r.ablation).count();
        let ablations = rkif.rows.len() - main_rows;
        // Main rows: 3 streams × 3 orders × 2 seeds; ablations: text5, order 1, 2 seeds.
        assert_eq!(runs.len(), main_rows * 3 * 3 * 2 + ablations * 2);
        assert!(
            runs.iter()
                .filter(|r| r.row.ablation)
                .all(|r| r.stream == "text5" && r.order == 1)
        );
        let quick = Options::parse(&strings(&["--quick", "--streams", "text5"])).unwrap();
        let runs = runs_of(&rkif, &quick);
        assert_eq!(runs.len(), main_rows);
        let args = runs[0].args(&quick).join(" ");
        assert!(args.contains("--stream text5 --order 1 --seed 0 --backend ndarray"));
        assert!(args.ends_with("--max-len 32 --epochs 1"), "{args}");
        let rkif_run = runs.iter().find(|r| r.row.label == "rkif").unwrap();
        assert!(
            rkif_run
                .args(&quick)
                .join(" ")
                .contains("--config configs/rkif/text5.json")
        );
        // The decoder's stream: its own configs (where the row has one) and sizes.
        let decoder = Options::parse(&strings(&["--quick", "--streams", "text5-gen"])).unwrap();
        let runs = runs_of(&rkif, &decoder);
        let labels: Vec<&str> = runs.iter().map(|r| r.row.label.as_str()).collect();
        assert_eq!(labels, ["seq-lora", "rkif"]);
        let full = Options::parse(&strings(&[
            "--streams",
            "text5-gen",
            "--orders",
            "1",
            "--seeds",
            "1",
        ]))
        .unwrap();
        let runs_full = runs_of(&rkif, &full);
        assert_eq!(runs_full.len(), main_rows);
        let runs = runs_full;
        for run in &runs {
            let args = run.args(&decoder).join(" ");
            assert!(args.contains("--max-len 64"), "{args}");
            if let Some(cfg) = run.row.config_for("text5-gen") {
                assert_eq!(cfg, format!("configs/decoder/{}.json", run.row.label));
                let text = std::fs::read_to_string(root.join(&cfg)).unwrap();
                assert!(text.contains("q_proj"), "{cfg}: {text}");
            }
        }
    }

    #[test]
    fn a_run_is_finished_only_with_a_completed_report_of_the_same_arguments() {
        let root = workspace_root();
        let tmp = std::env::temp_dir().join(format!("xtask-finished-{}", std::process::id()));
        let o = Options::parse(&strings(&["--quick"])).unwrap();
        let run = runs_of(&plan::paper("rkif", &root).unwrap(), &o)
            .into_iter()
            .find(|r| r.row.label == "rkif")
            .unwrap();
        let dir = run.dir(&tmp);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!is_finished(&run, &o, &root, &tmp).unwrap());
        let identity = run.identity(&o, &root).unwrap();
        std::fs::write(dir.join("run.json"), identity.to_string()).unwrap();
        std::fs::write(dir.join("report.json"), r#"{"completed": false}"#).unwrap();
        assert!(!is_finished(&run, &o, &root, &tmp).unwrap());
        std::fs::write(dir.join("report.json"), r#"{"completed": true}"#).unwrap();
        assert!(is_finished(&run, &o, &root, &tmp).unwrap());
        // Another seed count does not change this run, another backend does.
        let gpu = Options {
            backend: "cuda".into(),
            ..o.clone()
        };
        assert!(!is_finished(&run, &gpu, &root, &tmp).unwrap());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
