//! `cargo xtask agree`: one small fixed run on several backends, compared with ndarray.
//!
//! The run is SeqLoRA on text5 with the CI sizes of `reproduce --quick` (32 training and 32
//! test rows a task, 32 tokens, one epoch, seed 0). Backends differ in summation order and
//! fused kernels, so results are compared within tolerances: every accuracy-matrix cell within
//! `--cell-tolerance` points (default 6.25: two of a task's 32 test rows) and every task's last
//! training loss within `--loss-tolerance` relative (default 1e-2). A backend whose binary or
//! device is missing fails with the error of `cl`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The fixed run's sizes (also the GPU bundle's `data/agree.json`): 32 training and 32 test
/// rows a task, 32 tokens.
pub(crate) const AGREE_SIZES: [&str; 6] = [
    "--max-train",
    "32",
    "--test-per-task",
    "32",
    "--max-len",
    "32",
];

/// What is compared between two backends' reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Largest |ΔR[t][j]| in points.
    pub max_cell: f64,
    /// Largest relative difference of a task's last-epoch loss.
    pub max_loss: f64,
}

/// Compares two `report.json` values (accuracies as fractions, as `cl` writes them).
pub fn compare(a: &Value, b: &Value) -> Result<Comparison> {
    let rows = |v: &Value| -> Result<Vec<Vec<f64>>> {
        Ok(v.pointer("/matrix/rows")
            .and_then(Value::as_array)
            .context("report without matrix.rows")?
            .iter()
            .map(|r| {
                r.as_array()
                    .map(|r| r.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default()
            })
            .collect())
    };
    let losses = |v: &Value| -> Vec<f64> {
        v.get("tasks")
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| t.get("last_epoch_loss").and_then(Value::as_f64))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (ra, rb) = (rows(a)?, rows(b)?);
    if ra.len() != rb.len() || ra.iter().zip(&rb).any(|(x, y)| x.len() != y.len()) {
        bail!("the accuracy matrices have different shapes");
    }
    let max_cell = ra
        .iter()
        .flatten()
        .zip(rb.iter().flatten())
        .map(|(x, y)| (x - y).abs() * 100.0)
        .fold(0.0, f64::max);
    let max_loss = losses(a)
        .iter()
        .zip(losses(b))
        .map(|(x, y)| (x - y).abs() / x.abs().max(1e-12))
        .fold(0.0, f64::max);
    Ok(Comparison { max_cell, max_loss })
}

/// Runs `cargo xtask agree`.
pub fn agree(args: &[String]) -> Result<()> {
    let mut backends = vec!["ndarray".to_string(), "wgpu".into(), "cuda".into()];
    let mut cell_tol = 6.25;
    let mut loss_tol = 1e-2;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--backends" => backends = value.split(',').map(String::from).collect(),
            "--cell-tolerance" => cell_tol = value.parse().context("--cell-tolerance")?,
            "--loss-tolerance" => loss_tol = value.parse().context("--loss-tolerance")?,
            other => bail!(
                "unknown argument `{other}`; usage: cargo xtask agree [--backends ndarray,wgpu,cuda] \
                 [--cell-tolerance 6.25] [--loss-tolerance 0.01]"
            ),
        }
    }
    if backends.first().map(String::as_str) != Some("ndarray") {
        backends.insert(0, "ndarray".into());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("workspace root")?;
    let gpu: Vec<&str> = backends
        .iter()
        .map(String::as_str)
        .filter(|b| *b != "ndarray")
        .collect();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&root)
        .args(["build", "--release", "-p", "cl-cli"]);
    if !gpu.is_empty() {
        build.args(["--features", &gpu.join(",")]);
    }
    crate::run(&mut build)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let cl = target.join("release").join("cl");
    let out = root.join("target/repro/agree");
    let mut reports = Vec::new();
    for backend in &backends {
        let dir = out.join(backend);
        let _ = std::fs::remove_dir_all(&dir);
        let mut cmd = Command::new(&cl);
        cmd.current_dir(&root).args([
            "run",
            "--method",
            "seq-lora",
            "--stream",
            "text5",
            "--seed",
            "0",
            "--epochs",
            "1",
            "--backend",
            backend,
        ]);
        cmd.args(AGREE_SIZES);
        cmd.arg("--out").arg(&dir);
        crate::run(&mut cmd)?;
        let path = dir.join("report.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        reports.push(serde_json::from_str::<Value>(&text)?);
    }
    let mut failed = Vec::new();
    for (backend, report) in backends.iter().zip(&reports).skip(1) {
        let c = compare(&reports[0], report)?;
        let ok = c.max_cell <= cell_tol && c.max_loss <= loss_tol;
        println!(
            "agree: {backend} vs ndarray: max |ΔR| {:.2} points (≤ {cell_tol}), max relative Δloss {:.2e} (≤ {loss_tol:.0e}): {}",
            c.max_cell,
            c.max_loss,
            if ok { "agree" } else { "DISAGREE" }
        );
        if !ok {
            failed.push(backend.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} disagree with ndarray beyond the tolerances",
            failed.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_reports_the_largest_cell_and_loss_differences() {
        let a: Value = serde_json::from_str(
            r#"{"matrix": {"rows": [[0.5, 0.0], [0.25, 0.75]]},
                "tasks": [{"last_epoch_loss": 2.0}, {"last_epoch_loss": 1.0}]}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            r#"{"matrix": {"rows": [[0.5, 0.0], [0.28125, 0.75]]},
                "tasks": [{"last_epoch_loss": 2.0}, {"last_epoch_loss": 1.01}]}"#,
        )
        .unwrap();
        let c = compare(&a, &b).unwrap();
        assert!((c.max_cell - 3.125).abs() < 1e-9);
        assert!((c.max_loss - 0.01).abs() < 1e-9);
        let short: Value = serde_json::from_str(r#"{"matrix": {"rows": [[0.5]]}}"#).unwrap();
        assert!(compare(&a, &short).is_err());
    }
}
