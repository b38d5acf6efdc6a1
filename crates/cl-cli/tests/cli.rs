//! The `cl` binary end to end on the synthetic stream (seconds), and its argument errors.

use std::process::Command;

fn cl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cl"))
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
fn bad_arguments_are_one_clear_line() {
    for (args, expected) in [
        (
            vec!["run", "--method", "ewc", "--stream", "synthetic"],
            "unknown method `ewc`",
        ),
        (
            vec!["run", "--method", "replay", "--stream", "text99"],
            "unknown stream `text99`",
        ),
        (
            vec!["run", "--method", "replay", "--preset", "huge"],
            "unknown preset `huge`",
        ),
        (
            vec!["run", "--method", "replay", "--stream", "vision6"],
            "no LoRA layers",
        ),
        (
            vec!["run", "--method", "modulation", "--stream", "text5"],
            "use --stream vision6 or synthetic",
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
    ] {
        let result = cl().args(&args).env("CI", "true").output().unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
