//! `cargo xtask <task>`: project automation, cheapest checks first.
//!
//! - `ci`: what `.ci/run` runs: fmt check, clippy `-D warnings`, the test suite, and a build of
//!   the `cl` binary with the `cuda` and `wgpu` backends (compile only: CI has no GPU).
//! - `test [--backend ndarray|wgpu|cuda]`: the test suite (ndarray), or for a GPU backend a build
//!   of `cl` with that feature plus a short run on it when a device is present.
//! - `fetch-data`: download MiniLM and the text datasets into the cache (`cl fetch`).
//! - `bench`: the criterion benches.
//! - `reproduce [--paper …] [--backend …] [--seeds N] [--quick] …`: the papers' tables and plots
//!   from runs of `cl` (see [`reproduce`]).
//! - `agree [--backends ndarray,wgpu,cuda]`: one small fixed run per backend, compared with
//!   ndarray within stated tolerances (see [`agree`]).
//! - `gpu-bundle [--out DIR] [--cpu-check]`: the self-contained folder a GPU machine without
//!   Rust runs with one command (see [`gpu_bundle`]).

mod agree;
mod gpu_bundle;
mod plan;
mod report;
mod reproduce;
mod runs;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace's root directory (the parent of xtask's).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("help");
    match task {
        "ci" => ci(),
        "test" => {
            let backend = flag_value(&args, "--backend").unwrap_or("ndarray");
            test(backend)
        }
        "bench" => cargo(&["bench", "-p", "benchmarks"]),
        "reproduce" => reproduce::reproduce(&args[1..]),
        "agree" => agree::agree(&args[1..]),
        "gpu-bundle" => gpu_bundle::gpu_bundle(&args[1..]),
        "fetch-data" => cargo(&["run", "--release", "-p", "cl-cli", "--", "fetch"]),
        "help" | "--help" | "-h" => {
            println!(
                "cargo xtask ci | test [--backend ndarray|wgpu|cuda] | fetch-data | bench | reproduce [--help] | agree [--backends …] | gpu-bundle [--out DIR] [--cpu-check]"
            );
            Ok(())
        }
        other => bail!("unknown xtask `{other}`; try `cargo xtask help`"),
    }
}

fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn ci() -> Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    test("ndarray")?;
    cargo(&["build", "-p", "cl-cli", "--features", "cuda,wgpu"])
}

fn test(backend: &str) -> Result<()> {
    match backend {
        "ndarray" => cargo(&["test", "--workspace"]),
        "wgpu" | "cuda" => {
            cargo(&["build", "--release", "-p", "cl-cli", "--features", backend])?;
            if std::env::var_os("CL_GPU").is_some() {
                let exe = format!("target/release/cl{}", std::env::consts::EXE_SUFFIX);
                run(Command::new(exe).args(["run", "--method", "seq-lora", "--backend", backend]))
            } else {
                println!(
                    "built `cl` with `{backend}`; set CL_GPU=1 on a machine with a GPU to run on it"
                );
                Ok(())
            }
        }
        other => bail!("unknown backend `{other}` (ndarray, wgpu, cuda)"),
    }
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo).args(args))
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}
