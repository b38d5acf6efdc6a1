//! `cargo xtask gpu-bundle [--out DIR] [--cpu-check]`: a self-contained folder for the GPU
//! machine (no Rust, no network, no cargo cache; docs/benchmarks.md "The GPU bundle"):
//!
//! - `bin/cl.xz`, `bin/lora_step.xz`: release binaries with cuda + wgpu (+ ndarray), stripped
//!   and xz-compressed (run.sh unpacks them, and `data/model.safetensors.xz`, with Python's
//!   lzma);
//! - `data/`: text5 as prepared streams (`agree.json`: the fixed small SeqLoRA run;
//!   `paper.json`: the reproduction's sizes) and MiniLM cut to the token ids they use, stored as
//!   f16 (`cl export`, `cl prune-model`);
//! - `expected/agree-ndarray.json`: the small run's report on ndarray, computed here;
//! - `configs/`, `scripts/` (peft_step.py, speed_vs_peft.py, summarize.py), `lib/` (the Vulkan
//!   loader and an NVIDIA ICD file for wgpu, when the machine building the bundle can get them),
//!   `bundle.json` (what run.sh does) and `run.sh`.
//!
//! The bundle and the source tree must fit in 64 MiB together (what one device call carries):
//! checked, with the sizes printed. `--cpu-check` builds the same bundle for the CPU (ndarray
//! only, tiny sizes) and runs `run.sh` on it, as CI does, so the bundle cannot rot between GPU
//! runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::agree::AGREE_SIZES;

/// What one device call carries at most (bundle plus source tree), bytes.
const CARRY_LIMIT: u64 = 64 * 1024 * 1024;

/// The text5 runs of the reproduction, in the order run.sh tries them: `method:config`
/// (`-`: the method's defaults), as `configs/` and `cargo xtask reproduce` use them.
const PAPER_RUNS: [&str; 5] = [
    "seq-lora:-",
    "replay:baselines/replay-2pct.json",
    "ilora:ilora/text5.json",
    "rkif:rkif/text5.json",
    "arith:arith/text5.json",
];

/// Sizes and backends of one kind of bundle.
struct Kind {
    cpu_check: bool,
    backends: &'static [&'static str],
    /// `backend:precisions` for the speed step.
    speed: &'static [&'static str],
    /// `cl export` size flags of `data/paper.json`.
    paper_sizes: &'static [&'static str],
    speed_sizes: (usize, usize, usize, usize),
    budget_s: u64,
    min_run_s: u64,
}

const GPU: Kind = Kind {
    cpu_check: false,
    backends: &["cuda", "wgpu"],
    speed: &["cuda:f32,bf16", "wgpu:f32"],
    paper_sizes: &["--preset", "paper"],
    // batch, seq, steps, rounds
    speed_sizes: (32, 128, 10, 3),
    budget_s: 450,
    min_run_s: 40,
};

const CPU_CHECK: Kind = Kind {
    cpu_check: true,
    backends: &["ndarray"],
    speed: &["ndarray:f32"],
    paper_sizes: &[
        "--max-train",
        "16",
        "--test-per-task",
        "8",
        "--max-len",
        "16",
    ],
    speed_sizes: (2, 16, 1, 1),
    budget_s: 900,
    min_run_s: 5,
};

pub fn gpu_bundle(args: &[String]) -> Result<()> {
    let root = crate::workspace_root();
    let mut out = None;
    let mut kind = &GPU;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--out" => {
                out = Some(PathBuf::from(
                    args.get(i + 1).context("--out needs a directory")?,
                ));
                i += 1;
            }
            "--cpu-check" => kind = &CPU_CHECK,
            "--help" | "-h" => {
                println!(
                    "cargo xtask gpu-bundle [--out DIR (target/gpu-bundle, target/gpu-bundle-cpu)] [--cpu-check]"
                );
                return Ok(());
            }
            other => bail!("unknown gpu-bundle option `{other}`; try --help"),
        }
        i += 1;
    }
    let out = out.unwrap_or_else(|| {
        root.join(if kind.cpu_check {
            "target/gpu-bundle-cpu"
        } else {
            "target/gpu-bundle"
        })
    });
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    for sub in ["bin", "data", "expected", "configs", "scripts", "lib"] {
        std::fs::create_dir_all(out.join(sub))?;
    }

    // Binaries.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(&cargo);
    build.current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "cl-cli",
        "-p",
        "benchmarks",
        "--bin",
        "cl",
        "--bin",
        "lora_step",
    ]);
    if !kind.cpu_check {
        build.args([
            "--features",
            "cl-cli/cuda,cl-cli/wgpu,benchmarks/cuda,benchmarks/wgpu",
        ]);
    }
    crate::run(&mut build)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    for bin in ["cl", "lora_step"] {
        let dst = out.join("bin").join(bin);
        std::fs::copy(target.join("release").join(bin), &dst)
            .with_context(|| format!("copying {bin}"))?;
        // Symbols are most of an unstripped binary; `strip` is binutils'.
        if Command::new("strip").arg(&dst).status().is_err() {
            eprintln!("warning: `strip` not found; {bin} is not stripped");
        }
    }
    let cl = out.join("bin/cl");

    // Data: the streams, MiniLM cut to their tokens, and the ndarray reference.
    let streams = out.join("streams-full");
    std::fs::create_dir_all(&streams)?;
    let export = |name: &str, sizes: &[&str]| -> Result<()> {
        let mut cmd = Command::new(&cl);
        cmd.args(["export", "--stream", "text5", "--seed", "0", "--out"])
            .arg(streams.join(name))
            .args(sizes);
        crate::run(&mut cmd)
    };
    export("agree.json", &AGREE_SIZES)?;
    export("paper.json", kind.paper_sizes)?;
    crate::run(
        Command::new(&cl)
            .args(["prune-model", "--store", "f16", "--out"])
            .arg(out.join("data"))
            .arg("--streams")
            .arg(streams.join("agree.json"))
            .arg(streams.join("paper.json")),
    )?;
    std::fs::remove_dir_all(&streams)?;
    let reference = out.join("expected/agree-run");
    crate::run(
        Command::new(&cl)
            .args([
                "run",
                "--method",
                "seq-lora",
                "--epochs",
                "1",
                "--backend",
                "ndarray",
            ])
            .arg("--stream-file")
            .arg(out.join("data/agree.json"))
            .arg("--model-dir")
            .arg(out.join("data"))
            .arg("--out")
            .arg(&reference)
            .env("CI", "true"),
    )?;
    std::fs::copy(
        reference.join("report.json"),
        out.join("expected/agree-ndarray.json"),
    )?;
    std::fs::remove_dir_all(&reference)?;

    // Scripts, configs, run.sh, bundle.json.
    for (src, dst) in [
        ("benchmarks/peft_step.py", "scripts/peft_step.py"),
        ("benchmarks/speed_vs_peft.py", "scripts/speed_vs_peft.py"),
        ("xtask/bundle/summarize.py", "scripts/summarize.py"),
        ("xtask/bundle/run.sh", "run.sh"),
    ] {
        std::fs::copy(root.join(src), out.join(dst)).with_context(|| format!("copying {src}"))?;
    }
    for run in PAPER_RUNS {
        let config = run.split_once(':').map_or("-", |(_, c)| c);
        if config != "-" {
            let dst = out.join("configs").join(config);
            std::fs::create_dir_all(dst.parent().unwrap_or(&out))?;
            std::fs::copy(root.join("configs").join(config), &dst)
                .with_context(|| format!("copying configs/{config}"))?;
        }
    }
    if !kind.cpu_check {
        vulkan_loader(&out.join("lib"));
    }
    let (batch, seq, steps, rounds) = kind.speed_sizes;
    let built = String::from_utf8(
        Command::new("git")
            .current_dir(&root)
            .args(["describe", "--always", "--dirty"])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    let config = json!({
        "built": format!("{} {}", built.trim(), if kind.cpu_check { "cpu-check" } else { "gpu" }),
        "backends": kind.backends,
        "speed": kind.speed,
        "torch_device": if kind.cpu_check { "cpu" } else { "cuda" },
        "speed_batch": batch, "speed_seq": seq, "speed_steps": steps, "speed_rounds": rounds,
        "paper_runs": PAPER_RUNS,
        "paper_backend": kind.backends[0],
        "budget_s": kind.budget_s,
        "min_run_s": kind.min_run_s,
    });
    std::fs::write(
        out.join("bundle.json"),
        serde_json::to_string_pretty(&config)?,
    )?;

    // The binaries (cuda + wgpu + ndarray kernels: ~60 and ~47 MB stripped) and the weights
    // are carried xz-compressed; run.sh unpacks them with Python's lzma before anything runs.
    for file in ["bin/cl", "bin/lora_step", "data/model.safetensors"] {
        crate::run(
            Command::new("xz")
                .args(["-T2", "-6", "-f"])
                .arg(out.join(file)),
        )?;
    }
    let bundle = dir_size(&out)?;
    let source = source_tree_size(&root)?;
    println!(
        "gpu bundle {}: {:.1} MiB (bin {:.1}, data {:.1}); with the source tree ({:.1} MiB) {:.1} of {:.0} MiB",
        out.display(),
        mib(bundle),
        mib(dir_size(&out.join("bin"))?),
        mib(dir_size(&out.join("data"))?),
        mib(source),
        mib(bundle + source),
        mib(CARRY_LIMIT)
    );
    if !kind.cpu_check && bundle + source > CARRY_LIMIT {
        bail!(
            "the bundle and the source tree are {:.1} MiB, over the {:.0} MiB one device call carries",
            mib(bundle + source),
            mib(CARRY_LIMIT)
        );
    }
    if kind.cpu_check {
        cpu_check(&out, &root)?;
    }
    Ok(())
}

/// Runs `run.sh` on the CPU bundle and checks what it wrote.
fn cpu_check(bundle: &Path, root: &Path) -> Result<()> {
    let results = root.join("target/gpu-bundle-check");
    let work = root.join("target/gpu-bundle-check-work");
    for dir in [&results, &work] {
        let _ = std::fs::remove_dir_all(dir);
    }
    crate::run(
        Command::new(bundle.join("run.sh"))
            .env("OUT", &results)
            .env("WORK", &work),
    )?;
    // The speed step needs PyTorch, which CI does not have: the Burn side alone must run
    // (run.sh has unpacked it).
    crate::run(Command::new(bundle.join("bin/lora_step")).args([
        "--backend",
        "ndarray",
        "--batch",
        "2",
        "--seq",
        "16",
        "--steps",
        "1",
        "--warmup",
        "0",
    ]))?;
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.join("summary.json"))
            .context("run.sh wrote no summary")?,
    )?;
    let agree = &summary["agree"]["ndarray"];
    if agree["ok"] != true || agree["max_cell_points"].as_f64() != Some(0.0) {
        bail!("the bundle's ndarray run does not reproduce its own reference: {agree}");
    }
    let paper = summary["paper"]
        .as_object()
        .context("no text5 runs in the summary")?;
    let done = paper.values().filter(|r| r["completed"] == true).count();
    if done != PAPER_RUNS.len() {
        bail!(
            "{done} of {} text5 runs completed: {}",
            PAPER_RUNS.len(),
            results.join("log.txt").display()
        );
    }
    let files = std::fs::read_dir(&results)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .count();
    if files > 8 {
        bail!("run.sh wrote {files} files into $OUT; the device returns at most 8");
    }
    println!(
        "cpu check: run.sh reproduced the ndarray reference and completed {done} text5 runs; {}",
        results.join("summary.md").display()
    );
    Ok(())
}

/// The Vulkan loader (Debian's libvulkan1, fetched with apt-get, never executed) and an ICD
/// file naming NVIDIA's driver library, for wgpu on a machine that has the driver but no loader.
/// Best effort: without them the bundle still runs cuda, and wgpu fails with its own message.
fn vulkan_loader(lib: &Path) {
    let tmp = lib.join("deb");
    let fetched = std::fs::create_dir_all(&tmp).is_ok()
        && Command::new("apt-get")
            .current_dir(&tmp)
            .args(["download", "libvulkan1"])
            .status()
            .is_ok_and(|s| s.success());
    let deb = std::fs::read_dir(&tmp).ok().and_then(|entries| {
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
    });
    match deb {
        Some(deb) if fetched => {
            let unpacked = tmp.join("x");
            let ok = Command::new("dpkg-deb")
                .arg("-x")
                .arg(&deb)
                .arg(&unpacked)
                .status()
                .is_ok_and(|s| s.success());
            let so = unpacked.join("usr/lib/x86_64-linux-gnu");
            if let (true, Ok(entries)) = (ok, std::fs::read_dir(&so)) {
                for e in entries.filter_map(|e| e.ok()) {
                    let name = e.file_name();
                    if name.to_string_lossy().starts_with("libvulkan.so.1") {
                        // Resolve the symlink chain into one real file named like the soname.
                        let _ = std::fs::copy(so.join(&name), lib.join("libvulkan.so.1"));
                    }
                }
            }
        }
        _ => eprintln!("warning: could not fetch libvulkan1; wgpu needs the machine's own loader"),
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let icd = json!({
        "file_format_version": "1.0.0",
        "ICD": {"library_path": "libGLX_nvidia.so.0", "api_version": "1.3"}
    });
    let _ = std::fs::write(
        lib.join("nvidia_icd.json"),
        serde_json::to_string_pretty(&icd).unwrap_or_default(),
    );
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Bytes of the files git tracks (what a device call copies besides carried paths).
fn source_tree_size(root: &Path) -> Result<u64> {
    let listing = Command::new("git")
        .current_dir(root)
        .args(["ls-files", "-z"])
        .output()
        .context("running git ls-files")?;
    Ok(listing
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .filter_map(|p| std::fs::metadata(root.join(String::from_utf8_lossy(p).as_ref())).ok())
        .map(|m| m.len())
        .sum())
}
