//! Tables, claims and plots of a paper's reproduction from its runs' `report.json`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::plan::{Claim, Paper, Row};
use crate::runs::{Options, Run};

/// What a finished run measured (accuracies in %).
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// The run.
    pub run: Run,
    /// Overall performance after the last task.
    pub op: f64,
    /// Backward transfer (none for a single task).
    pub bwt: Option<f64>,
    /// `matrix[t][j]`: accuracy on task `j` after training task `t`.
    pub matrix: Vec<Vec<f64>>,
    /// Task names in training order.
    pub task_names: Vec<String>,
    /// Parameters the method stores beyond the frozen backbone after the last task.
    pub stored_params: usize,
    /// Seconds of training, all tasks.
    pub train_seconds: f64,
    /// Seconds of evaluation, all tasks.
    pub eval_seconds: f64,
}

/// Reads a completed `report.json` of `cl run`.
pub fn load(path: &Path, run: Run) -> Result<RunResult> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if v.get("completed").and_then(Value::as_bool) != Some(true) {
        bail!("{}: the run has not finished", path.display());
    }
    let field = |name: &str| {
        v.get(name)
            .with_context(|| format!("{}: no field `{name}`", path.display()))
    };
    let op = field("op")?
        .as_f64()
        .with_context(|| format!("{}: `op` is not a number", path.display()))?;
    let matrix: Vec<Vec<f64>> = field("matrix")?
        .get("rows")
        .and_then(Value::as_array)
        .with_context(|| format!("{}: no `matrix.rows`", path.display()))?
        .iter()
        .map(|row| {
            row.as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_f64)
                        .map(|a| a * 100.0)
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    let tasks = field("tasks")?.as_array().cloned().unwrap_or_default();
    let sum = |key: &str| -> f64 {
        tasks
            .iter()
            .filter_map(|t| t.get(key).and_then(Value::as_f64))
            .sum()
    };
    Ok(RunResult {
        run,
        op: op * 100.0,
        bwt: v.get("bwt").and_then(Value::as_f64).map(|b| b * 100.0),
        task_names: field("task_names")?
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        matrix,
        stored_params: tasks
            .last()
            .and_then(|t| t.pointer("/params/stored"))
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize,
        train_seconds: sum("train_seconds"),
        eval_seconds: sum("eval_seconds"),
    })
}

/// Mean and sample standard deviation (`None` for one value).
pub fn mean_std(values: &[f64]) -> Option<(f64, Option<f64>)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.len() > 1)
        .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    Some((mean, std))
}

/// `mean ± std` with one decimal, `mean` for one value, `–` for none.
pub fn format_cell(values: &[f64], signed: bool) -> String {
    match mean_std(values) {
        None => "–".into(),
        Some((m, s)) => {
            let m = if signed {
                format!("{m:+.1}")
            } else {
                format!("{m:.1}")
            };
            match s {
                Some(s) => format!("{m} ± {s:.1}"),
                None => m,
            }
        }
    }
}

/// Aggregates of one (row, stream).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    /// OP per run.
    pub op: Vec<f64>,
    /// BWT per run.
    pub bwt: Vec<f64>,
    /// Train + eval seconds per run.
    pub seconds: Vec<f64>,
}

/// The runs of `row` on `stream`.
pub fn cell<'a>(results: &'a [RunResult], row: &str, stream: &str) -> Vec<&'a RunResult> {
    results
        .iter()
        .filter(|r| r.run.row.label == row && r.run.stream == stream)
        .collect()
}

fn aggregate(results: &[&RunResult]) -> Cell {
    Cell {
        op: results.iter().map(|r| r.op).collect(),
        bwt: results.iter().filter_map(|r| r.bwt).collect(),
        seconds: results
            .iter()
            .map(|r| r.train_seconds + r.eval_seconds)
            .collect(),
    }
}

/// Element-wise mean of the runs' matrices (by task position); `None` without runs or when
/// their sizes differ.
pub fn mean_matrix(results: &[&RunResult]) -> Option<Vec<Vec<f64>>> {
    let first = results.first()?;
    let mut sum = first.matrix.clone();
    for r in &results[1..] {
        if r.matrix.len() != sum.len() {
            return None;
        }
        for (acc, row) in sum.iter_mut().zip(&r.matrix) {
            if acc.len() != row.len() {
                return None;
            }
            for (a, v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
    }
    let n = results.len() as f64;
    Some(
        sum.into_iter()
            .map(|row| row.into_iter().map(|v| v / n).collect())
            .collect(),
    )
}

/// Writes a drawn plot to `path`.
fn write_plot(path: &Path, svg: cl_plot::Result<String>) -> Result<()> {
    std::fs::write(path, svg?).with_context(|| format!("writing {}", path.display()))
}

/// Checks a claim on mean OP / BWT of `stream`; `None` when a row has no runs.
pub fn check(claim: &Claim, results: &[RunResult], stream: &str) -> Option<(bool, String)> {
    let mean_of = |label: &str, bwt: bool| -> Option<f64> {
        let c = aggregate(&cell(results, label, stream));
        mean_std(if bwt { &c.bwt } else { &c.op }).map(|(m, _)| m)
    };
    match claim {
        Claim::OpOrder(labels) => {
            let means: Vec<f64> = labels
                .iter()
                .map(|l| mean_of(l, false))
                .collect::<Option<_>>()?;
            let broken: Vec<String> = labels
                .windows(2)
                .zip(means.windows(2))
                .filter(|(_, m)| m[0] <= m[1])
                .map(|(l, m)| format!("{} {:.1} ≤ {} {:.1}", l[0], m[0], l[1], m[1]))
                .collect();
            let text = format!("OP {}", labels.join(" > "));
            Some(if broken.is_empty() {
                (true, text)
            } else {
                (false, format!("{text} (broken: {})", broken.join("; ")))
            })
        }
        Claim::BwtAbove(a, b) => {
            let (x, y) = (mean_of(a, true)?, mean_of(b, true)?);
            Some((x > y, format!("BWT {a} ({x:+.1}) above {b} ({y:+.1})")))
        }
        Claim::ZeroBwt(a) => {
            let c = aggregate(&cell(results, a, stream));
            if c.bwt.is_empty() {
                return None;
            }
            let worst = c
                .bwt
                .iter()
                .fold(0.0f64, |w, b| if b.abs() > w.abs() { *b } else { w });
            Some((
                c.bwt.iter().all(|b| *b == 0.0),
                format!("BWT of {a} exactly 0 in every run (largest |BWT| {worst:+.2})"),
            ))
        }
    }
}

/// Writes the paper's `README.md`, `runs.csv` and PNGs into `dir`; returns the markdown.
pub fn write_paper(
    paper: &Paper,
    results: &[RunResult],
    options: &Options,
    dir: &Path,
) -> Result<String> {
    let streams: Vec<&str> = paper
        .streams
        .iter()
        .copied()
        .filter(|s| options.streams.is_empty() || options.streams.iter().any(|o| o == s))
        .collect();
    let mut md = String::new();
    let command = Options {
        papers: vec![paper.id.to_string()],
        streams: if streams.len() == paper.streams.len() {
            Vec::new()
        } else {
            streams.iter().map(|s| s.to_string()).collect()
        },
        ..options.clone()
    }
    .command();
    writeln!(md, "## {}\n", paper.title)?;
    writeln!(
        md,
        "Command: `{command}` (backend `{}`, {}). {} finished runs.\n",
        options.backend,
        if options.quick {
            "CI sizes: 32 training and 32 test rows a task (16 test rows on text15), 32 tokens or 32×32 pixels, one epoch"
                .to_string()
        } else {
            format!("`cl run --preset {}` sizes", options.preset)
        },
        results.len()
    )?;

    // Main table.
    let main: Vec<&Row> = paper.rows.iter().filter(|r| !r.ablation).collect();
    let quoted_streams: Vec<&str> = streams
        .iter()
        .copied()
        .filter(|s| paper.quoted.iter().any(|q| q.stream == *s))
        .collect();
    writeln!(
        md,
        "OP and BWT in %, mean ± sample std over seeds × task orders (runs per cell in `n`).{}\n",
        if quoted_streams.is_empty() {
            String::new()
        } else {
            " Columns marked *paper* quote the paper's own figures: its data and backbone differ from ours."
                .into()
        }
    )?;
    let mut header = String::from("| Method |");
    let mut rule = String::from("|---|");
    for s in &streams {
        header += &format!(" {s} OP | {s} BWT | n |");
        rule += "---|---|---|";
        if quoted_streams.contains(s) {
            header += " *paper* OP | *paper* BWT |";
            rule += "---|---|";
        }
    }
    header += " s / run |";
    rule += "---|";
    writeln!(md, "{header}\n{rule}")?;
    for row in &main {
        let mut line = format!("| {} |", row.name);
        let mut seconds = Vec::new();
        for s in &streams {
            let c = aggregate(&cell(results, &row.label, s));
            seconds.extend(c.seconds.iter().copied());
            line += &format!(
                " {} | {} | {} |",
                format_cell(&c.op, false),
                format_cell(&c.bwt, true),
                c.op.len()
            );
            if quoted_streams.contains(s) {
                let q = paper
                    .quoted
                    .iter()
                    .find(|q| q.label == row.label && q.stream == *s);
                line += &format!(
                    " {} | {} |",
                    q.and_then(|q| q.op)
                        .map_or("–".into(), |v| format!("{v:.1}")),
                    q.and_then(|q| q.bwt)
                        .map_or("–".into(), |v| format!("{v:+.1}"))
                );
            }
        }
        line += &format!(
            " {} |",
            mean_std(&seconds).map_or("–".into(), |(m, _)| format!("{m:.0}"))
        );
        writeln!(md, "{line}")?;
    }
    writeln!(
        md,
        "\n`s / run`: train + evaluation seconds of one run as measured (runs may share the machine). \
         *Paper*: {}.\n",
        paper.paper_setting
    )?;

    // Claims.
    writeln!(md, "Does the paper's ordering hold here?\n")?;
    for s in &streams {
        for claim in &paper.claims {
            let line = match check(claim, results, s) {
                Some((true, text)) => format!("- {s}: {text}: **holds**"),
                Some((false, text)) => format!("- {s}: {text}: **does not hold**"),
                None => format!("- {s}: {claim:?}: not measured"),
            };
            writeln!(md, "{line}")?;
        }
    }

    // Configs.
    writeln!(
        md,
        "\nRows and their `cl run` (plus `--stream --order --seed` and the sizes):\n"
    )?;
    for row in &paper.rows {
        // The configs of the streams the row runs on (ablations: the first one only).
        let cfg = streams
            .iter()
            .filter(|s| paper.rows_on(s).any(|r| r == row))
            .filter_map(|s| row.config_for(s))
            .collect::<Vec<_>>();
        let mut cfg_unique = cfg.clone();
        cfg_unique.dedup();
        writeln!(
            md,
            "- {}: `--method {}`{}",
            row.name,
            row.method,
            if cfg_unique.is_empty() {
                String::new()
            } else {
                format!(" `--config {}`", cfg_unique.join("` / `"))
            }
        )?;
    }

    // Ablations.
    let ablations: Vec<&Row> = paper.rows.iter().filter(|r| r.ablation).collect();
    if let (false, Some(first)) = (ablations.is_empty() || options.main_only, streams.first())
        && paper.streams.first() == Some(first)
    {
        // The paper's method is the main row named like the paper.
        let base = main.iter().copied().find(|r| r.label == paper.id);
        let base_op = base.and_then(|b| {
            let rs: Vec<&RunResult> = cell(results, &b.label, first)
                .into_iter()
                .filter(|r| r.run.order == 1)
                .collect();
            mean_std(&rs.iter().map(|r| r.op).collect::<Vec<_>>()).map(|(m, _)| m)
        });
        writeln!(
            md,
            "\nAblations on {first}, task order 1 (Δ OP against {} on order 1, the same seeds):\n",
            base.map_or("the method", |b| b.name.as_str())
        )?;
        writeln!(
            md,
            "| Config | OP | BWT | Δ OP | n |\n|---|---|---|---|---|"
        )?;
        for row in ablations {
            let c = aggregate(&cell(results, &row.label, first));
            let delta = match (mean_std(&c.op), base_op) {
                (Some((m, _)), Some(b)) => format!("{:+.1}", m - b),
                _ => "–".into(),
            };
            writeln!(
                md,
                "| `{}` | {} | {} | {delta} | {} |",
                row.config.clone().unwrap_or_default(),
                format_cell(&c.op, false),
                format_cell(&c.bwt, true),
                c.op.len()
            )?;
        }
    }

    // Plots (SVG, cl-plot).
    writeln!(md)?;
    for s in &streams {
        let mut series = Vec::new();
        for row in &main {
            let runs = cell(results, &row.label, s);
            let Some(m) = mean_matrix(&runs) else {
                continue;
            };
            // Columns are task positions; they carry names when every run saw one order.
            let names = match runs.first() {
                Some(first) if runs.iter().all(|r| r.task_names == first.task_names) => {
                    first.task_names.clone()
                }
                _ => Vec::new(),
            };
            let heat = format!("heatmap-{s}-{}.svg", row.label);
            let title = format!("{} on {s} (N={})", row.name, runs.len());
            write_plot(&dir.join(&heat), cl_plot::heatmap(&title, &m, &names))?;
            writeln!(md, "![{} on {s}]({}/{heat})", row.name, paper.id)?;
            if m.len() == 1 && m[0].len() > 1 {
                // A joint training (MTL) has no "after task t": one row, no curve.
                continue;
            }
            let matrices: Vec<&[Vec<f64>]> = runs.iter().map(|r| r.matrix.as_slice()).collect();
            series.push(cl_plot::Series::seen_accuracy(row.name.clone(), &matrices));
        }
        if !series.is_empty() {
            let file = format!("curves-{s}.svg");
            write_plot(
                &dir.join(&file),
                cl_plot::curves(
                    &format!("{} rows on {s}", paper.id),
                    "mean accuracy on the tasks seen (%)",
                    &series,
                ),
            )?;
            writeln!(
                md,
                "\n![accuracy against tasks on {s}]({}/{file})\n\nCurves ({s}): mean over the runs (seeds × orders), band ± one standard deviation; heatmaps average the runs' matrices by task position.\n",
                paper.id,
            )?;
        }
    }

    // Stored parameters against OP, every row with runs on the first stream (the modulation
    // resolutions, the LoRA ranks...).
    if let Some(first) = streams.first() {
        let mut points = Vec::new();
        for row in &paper.rows {
            let runs = cell(results, &row.label, first);
            let stored: Vec<f64> = runs.iter().map(|r| r.stored_params as f64).collect();
            if let (Some((op, _)), Some((params, _))) = (
                mean_std(&runs.iter().map(|r| r.op).collect::<Vec<_>>()),
                mean_std(&stored),
            ) && params > 0.0
            {
                points.push(cl_plot::Point {
                    label: row.label.clone(),
                    x: params,
                    y: op,
                    group: usize::from(row.ablation),
                });
            }
        }
        if points.len() >= 2 {
            let file = format!("params-{first}.svg");
            write_plot(
                &dir.join(&file),
                cl_plot::scatter(
                    &format!("{} on {first}: stored parameters against OP", paper.id),
                    "parameters stored beyond the backbone after the last task (log)",
                    "OP (%)",
                    &points,
                    true,
                ),
            )?;
            writeln!(
                md,
                "![stored parameters against OP on {first}]({}/{file})\n\nMain rows in blue, ablations in orange; each point is the mean over its runs.\n",
                paper.id
            )?;
        }
    }

    // Raw runs.
    let mut csv = String::from("row,stream,order,seed,op,bwt,train_seconds,eval_seconds,tasks\n");
    for r in results {
        writeln!(
            csv,
            "{},{},{},{},{:.2},{},{:.1},{:.1},{}",
            r.run.row.label,
            r.run.stream,
            r.run.order,
            r.run.seed,
            r.op,
            r.bwt.map_or(String::new(), |b| format!("{b:.2}")),
            r.train_seconds,
            r.eval_seconds,
            r.task_names.join(" ")
        )?;
    }
    std::fs::write(dir.join("runs.csv"), csv)
        .with_context(|| format!("writing {}", dir.join("runs.csv").display()))?;
    std::fs::write(
        dir.join("README.md"),
        md.replace(&format!("]({}/", paper.id), "]("),
    )
    .with_context(|| format!("writing {}", dir.join("README.md").display()))?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan;

    fn result(label: &str, stream: &str, order: usize, op: f64, bwt: f64) -> RunResult {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let paper = plan::paper("rkif", &root).unwrap();
        let row = paper
            .rows
            .iter()
            .find(|r| r.label == label)
            .unwrap()
            .clone();
        RunResult {
            run: Run {
                row,
                stream: stream.into(),
                order,
                seed: 0,
            },
            op,
            bwt: Some(bwt),
            matrix: vec![vec![80.0, 10.0], vec![60.0, 90.0]],
            task_names: vec!["a".into(), "b".into()],
            stored_params: 1000 * label.len(),
            train_seconds: 1.0,
            eval_seconds: 1.0,
        }
    }

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 3.0]).unwrap();
        assert_eq!(m, 2.0);
        assert!((s.unwrap() - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[5.0]), Some((5.0, None)));
        assert_eq!(mean_std(&[]), None);
        assert_eq!(format_cell(&[1.0, 3.0], false), "2.0 ± 1.4");
        assert_eq!(format_cell(&[-2.0], true), "-2.0");
        assert_eq!(format_cell(&[], true), "–");
    }

    #[test]
    fn mean_matrix_averages_runs_of_the_same_shape() {
        let a = result("rkif", "text5", 1, 50.0, -1.0);
        let mut b = a.clone();
        b.matrix = vec![vec![60.0, 30.0], vec![40.0, 70.0]];
        assert_eq!(
            mean_matrix(&[&a, &b]).unwrap(),
            vec![vec![70.0, 20.0], vec![50.0, 80.0]]
        );
        b.matrix.pop();
        assert_eq!(mean_matrix(&[&a, &b]), None);
    }

    #[test]
    fn claims_report_where_the_ordering_breaks() {
        let results = vec![
            result("rkif", "text5", 1, 60.0, -2.0),
            result("rkif", "text5", 2, 62.0, -4.0),
            result("replay-2pct", "text5", 1, 65.0, -10.0),
            result("seq-lora", "text5", 1, 20.0, -60.0),
        ];
        let (holds, text) = check(
            &Claim::OpOrder(vec!["rkif", "replay-2pct", "seq-lora"]),
            &results,
            "text5",
        )
        .unwrap();
        assert!(!holds);
        assert!(text.contains("rkif 61.0 ≤ replay-2pct 65.0"), "{text}");
        let (holds, _) = check(&Claim::BwtAbove("rkif", "replay-2pct"), &results, "text5").unwrap();
        assert!(holds);
        let (holds, _) = check(&Claim::ZeroBwt("rkif"), &results, "text5").unwrap();
        assert!(!holds);
        assert_eq!(check(&Claim::ZeroBwt("mtl"), &results, "text5"), None);
        assert_eq!(
            check(&Claim::OpOrder(vec!["rkif", "mtl"]), &results, "text5"),
            None
        );
    }

    #[test]
    fn write_paper_writes_the_table_the_quotes_the_claims_and_the_plots() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let paper = plan::paper("rkif", &root).unwrap();
        let results = vec![
            result("rkif", "text5", 1, 60.0, -2.0),
            result("rkif", "text5", 2, 62.0, -4.0),
            result("replay-2pct", "text5", 1, 50.0, -10.0),
            result("rkif-average", "text5", 1, 55.0, -3.0),
        ];
        let options = Options::parse(&["--seeds".to_string(), "1".into()]).unwrap();
        let dir = std::env::temp_dir().join(format!("xtask-paper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let md = write_paper(&paper, &results, &options, &dir).unwrap();
        // Our mean ± std, n, then the paper's Table 1 figures for text5; text15 has no runs.
        assert!(
            md.contains("| Recurrent-KIF (cl-rkif) | 61.0 ± 1.4 | -3.0 ± 1.4 | 2 | 78.4 | -2.8 | – | – | 0 | 77.8 | -3.6 |"),
            "{md}"
        );
        assert!(md.contains("text5: BWT rkif (-3.0) above replay-2pct (-10.0): **holds**"));
        assert!(md.contains("| `configs/rkif/ablations/average.json` | 55.0 | -3.0 | -5.0 | 1 |"));
        // Each row lists the configs of the streams it runs on: ablations the first one only.
        assert!(md.contains(
            "`--config configs/rkif/text5.json` / `configs/rkif/text15.json` / `configs/decoder/rkif.json`"
        ));
        assert!(
            md.contains("`--config configs/rkif/ablations/average.json`\n"),
            "{md}"
        );
        for file in [
            "README.md",
            "runs.csv",
            "curves-text5.svg",
            "heatmap-text5-rkif.svg",
            "params-text5.svg",
        ] {
            assert!(dir.join(file).is_file(), "{file}");
        }
        assert!(!dir.join("curves-text15.svg").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_reads_a_cl_report_and_refuses_an_unfinished_one() {
        let dir = std::env::temp_dir().join(format!("xtask-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("report.json");
        let run = result("rkif", "text5", 1, 0.0, 0.0).run;
        std::fs::write(
            &path,
            r#"{"completed": true, "op": 0.5, "bwt": -0.25, "task_names": ["a", "b"],
                "matrix": {"num_tasks": 2, "rows": [[0.5, 0.0], [0.25, 0.75]]},
                "tasks": [{"train_seconds": 2.0, "eval_seconds": 1.0},
                          {"train_seconds": 3.0, "eval_seconds": 1.0}]}"#,
        )
        .unwrap();
        let r = load(&path, run.clone()).unwrap();
        assert_eq!((r.op, r.bwt, r.train_seconds), (50.0, Some(-25.0), 5.0));
        assert_eq!(r.matrix, vec![vec![50.0, 0.0], vec![25.0, 75.0]]);
        std::fs::write(&path, r#"{"completed": false}"#).unwrap();
        let err = load(&path, run).unwrap_err().to_string();
        assert!(err.contains("not finished"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
