//! `cl report`: finished (or interrupted) runs side by side, and their plots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cl_core::RunReport;
use cl_core::metrics::Protocol;
use clap::Args;

/// Arguments of `cl report`.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Run directories (each with the `report.json` that `cl run --out` writes).
    #[arg(num_args = 1.., required = true)]
    runs: Vec<PathBuf>,
    /// Also draw the plots (SVG) into this directory: each run's accuracy-matrix heatmap, and
    /// per stream the accuracy-vs-tasks curves, one line per method (a band of ± one standard
    /// deviation where several runs of a method differ in seed or order).
    #[arg(long)]
    plots: Option<PathBuf>,
}

/// A run directory's report.
struct Loaded {
    dir: PathBuf,
    report: RunReport,
}

/// Reads `<dir>/report.json`.
fn load(dir: &Path) -> Result<Loaded> {
    let path = dir.join("report.json");
    if !path.is_file() {
        bail!(
            "`{}` has no report.json: pass the --out directory of a `cl run`",
            dir.display()
        );
    }
    let report: RunReport = cl_core::checkpoint::read_json(&path)
        .with_context(|| format!("run report `{}`", path.display()))?;
    Ok(Loaded {
        dir: dir.to_path_buf(),
        report,
    })
}

/// `v` (a fraction) in percent with one decimal, `–` when absent.
fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1}", 100.0 * v))
}

/// Runs `cl report`.
pub fn report(args: &ReportArgs) -> Result<()> {
    let runs = args
        .runs
        .iter()
        .map(|d| load(d))
        .collect::<Result<Vec<_>>>()?;
    print!("{}", table(&runs));
    if let Some(dir) = &args.plots {
        for path in plots(&runs, dir)? {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// The markdown table of `runs`: one line each.
fn table(runs: &[Loaded]) -> String {
    let mut out = String::from(
        "| run | method | stream | scenario | order | seed | OP | BWT | FWT | forgetting | trainable | stored | train s | eval s | done |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for run in runs {
        let r = &run.report;
        let last = r.tasks.last().map(|t| t.params);
        let seconds =
            |f: fn(&cl_core::runner::TaskRecord) -> f64| -> f64 { r.tasks.iter().map(f).sum() };
        let order = r
            .config
            .description
            .get("cli.order")
            .map_or("–".to_string(), |v| v.to_string());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {order} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {} |\n",
            run.dir.display(),
            r.method,
            r.stream,
            r.scenario.name(),
            r.seed,
            pct(r.op),
            pct(r.bwt),
            pct(r.fwt),
            pct(r.forgetting),
            last.map_or("–".into(), |p| p.trainable.to_string()),
            last.map_or("–".into(), |p| p.stored.to_string()),
            seconds(|t| t.train_seconds),
            seconds(|t| t.eval_seconds),
            if r.completed {
                "yes".to_string()
            } else {
                format!("{} of {} tasks", r.matrix.rows().len(), r.task_names.len())
            },
        ));
    }
    out
}

/// Each method's accuracy matrices (in %) on one stream, a matrix per run.
type MatricesByMethod<'a> = BTreeMap<&'a str, Vec<Vec<Vec<f64>>>>;

/// Writes the heatmaps and curves of `runs` into `dir`; returns the files written.
fn plots(runs: &[Loaded], dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    let mut written = Vec::new();
    let mut write = |name: String, svg: cl_plot::Result<String>| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, svg?).with_context(|| format!("writing `{}`", path.display()))?;
        written.push(path);
        Ok(())
    };
    // Curves per stream, one series per method, over that method's runs.
    let mut by_stream: BTreeMap<&str, MatricesByMethod> = BTreeMap::new();
    for (i, run) in runs.iter().enumerate() {
        let r = &run.report;
        let rows: Vec<Vec<f64>> = r.matrix.rows().to_vec();
        if rows.is_empty() {
            continue;
        }
        let percent: Vec<Vec<f64>> = rows
            .iter()
            .map(|row| row.iter().map(|a| 100.0 * a).collect())
            .collect();
        let name = run
            .dir
            .file_name()
            .map_or(format!("run{i}"), |n| n.to_string_lossy().into_owned());
        write(
            format!("heatmap-{i}-{name}.svg"),
            cl_plot::heatmap(
                &format!("{} on {} ({name})", r.method, r.stream),
                &percent,
                &r.task_names,
            ),
        )?;
        if r.matrix.protocol() == Protocol::Sequential {
            by_stream
                .entry(r.stream.as_str())
                .or_default()
                .entry(r.method.as_str())
                .or_default()
                .push(percent);
        }
    }
    for (stream, methods) in by_stream {
        let series: Vec<cl_plot::Series> = methods
            .into_iter()
            .map(|(method, matrices)| {
                let matrices: Vec<&[Vec<f64>]> = matrices.iter().map(Vec::as_slice).collect();
                cl_plot::Series::seen_accuracy(
                    format!("{method} (n={})", matrices.len()),
                    &matrices,
                )
            })
            .collect();
        write(
            format!("curves-{stream}.svg"),
            cl_plot::curves(
                &format!("accuracy on the tasks seen, {stream}"),
                "mean accuracy on the tasks seen (%)",
                &series,
            ),
        )?;
    }
    Ok(written)
}
