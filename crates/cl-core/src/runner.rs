//! The one loop: train each task, evaluate every task after each, fill the accuracy matrix, and
//! write `report.json` plus a checkpoint after every task so a run can resume from the last
//! finished task.
//!
//! Layout of `out_dir`: `report.json` (rewritten after every task; `completed` says whether the
//! run finished) and `checkpoint/` (`state.json` + `method/`, replaced atomically).
//!
//! Results are never lost or mixed: a run refuses an `out_dir` that holds another run's files
//! unless it resumes ([`RunConfig::resume`], which checks that the saved run is the same
//! experiment, field by field of [`RunConfig::description`]) or overwrites
//! ([`RunConfig::overwrite`]); the directory is checked for writability before any training;
//! and a resume rewrites `report.json` from the checkpoint, so a report left stale or missing
//! by a kill between the checkpoint and the report is always brought back in line.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{existing_dir, read_json, replace_dir, sibling, write_json};
use crate::error::{ClError, Result};
use crate::method::{EvalContext, Method, ParamCounts};
use crate::metrics::{AccuracyMatrix, Protocol};
use crate::model::{argmax_host, label_space_mask, normalize_answer};
use crate::stream::{
    Example, Scenario, Scoring, Task, TaskId, TaskInfo, TaskStream, epoch_batches, mix_seed,
};
use crate::text_metrics::TextMetric;

/// How a run trains and where it writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Passes over each task's training split.
    pub epochs: usize,
    /// Training batch size.
    pub batch_size: usize,
    /// Evaluation batch size.
    pub eval_batch_size: usize,
    /// Seed of data order, initialisation and sampling.
    pub seed: u64,
    /// Where `report.json` and `checkpoint/` go; `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// Continue from `out_dir/checkpoint` when it exists.
    pub resume: bool,
    /// Show progress bars (never under `CI` or without a terminal).
    pub progress: bool,
    /// Stop (as if interrupted) after this many tasks have finished in total.
    pub stop_after: Option<usize>,
    /// Replace the results of an earlier run found in `out_dir` (without it, and without
    /// `resume`, such a directory is refused).
    #[serde(default)]
    pub overwrite: bool,
    /// Everything else that defines the experiment, as the caller resolved it (flat dotted
    /// keys: command-line values, the whole method config, data and weight hashes, backend,
    /// binary version). Saved in the checkpoint and `report.json`; a resume whose description
    /// differs in any key is refused, naming each key with both values.
    #[serde(default)]
    pub description: BTreeMap<String, serde_json::Value>,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 16,
            eval_batch_size: 64,
            seed: 0,
            out_dir: None,
            resume: false,
            progress: false,
            stop_after: None,
            overwrite: false,
            description: BTreeMap::new(),
        }
    }
}

impl RunConfig {
    /// Checks ranges; errors name the field.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(ClError::config("run.epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(ClError::config("run.batch_size", "must be at least 1"));
        }
        if self.eval_batch_size == 0 {
            return Err(ClError::config("run.eval_batch_size", "must be at least 1"));
        }
        if self.resume && self.out_dir.is_none() {
            return Err(ClError::config(
                "run.resume",
                "needs run.out_dir to find the checkpoint",
            ));
        }
        if let Some(dir) = &self.out_dir
            && dir.to_str().is_none()
        {
            return Err(ClError::config(
                "run.out_dir",
                format!(
                    "`{}` is not valid UTF-8; reports and checkpoints record their directory as text: choose a UTF-8 --out",
                    dir.display()
                ),
            ));
        }
        if self.resume && self.overwrite {
            return Err(ClError::config(
                "run.overwrite",
                "cannot be combined with run.resume (resume continues the saved run, overwrite discards it)",
            ));
        }
        Ok(())
    }

    /// The settings that define the experiment, by name: the training fields and every
    /// [`RunConfig::description`] entry (`out_dir`, `resume`, `overwrite`, `progress` and
    /// `stop_after` are how a run is carried out, not what it computes).
    fn identity(&self) -> BTreeMap<String, serde_json::Value> {
        let mut fields = self.description.clone();
        for (key, value) in [
            ("run.epochs", self.epochs as u64),
            ("run.batch_size", self.batch_size as u64),
            ("run.eval_batch_size", self.eval_batch_size as u64),
            ("run.seed", self.seed),
        ] {
            fields.insert(key.into(), value.into());
        }
        fields
    }

    /// Every field in which `saved` (a checkpoint's settings) and `self` differ, as
    /// "`field`: saved X, now Y".
    pub fn differences(&self, saved: &RunConfig) -> Vec<String> {
        let (now, before) = (self.identity(), saved.identity());
        let missing = serde_json::Value::String("(absent)".into());
        let mut keys: Vec<&String> = now.keys().chain(before.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|key| {
                let (a, b) = (
                    before.get(key).unwrap_or(&missing),
                    now.get(key).unwrap_or(&missing),
                );
                (a != b).then(|| format!("`{key}`: saved {a}, now {b}"))
            })
            .collect()
    }
}

/// The files a run owns in its `out_dir`.
const RUN_FILES: [&str; 5] = [
    "report.json",
    "checkpoint",
    "checkpoint.old",
    "checkpoint.staged",
    "report.json.tmp",
];

/// Makes `cfg.out_dir` ready before anything is trained: refuses a directory that holds an
/// earlier run's files unless `resume` or `overwrite` is set (overwrite removes them), creates
/// it, and checks that it is writable. Callers may run it early (before loading data and
/// weights); [`run`] runs it again.
pub fn prepare_out_dir(cfg: &RunConfig) -> Result<()> {
    cfg.validate()?;
    let Some(out) = &cfg.out_dir else {
        return Ok(());
    };
    if out.exists() && !out.is_dir() {
        return Err(ClError::OutputDir {
            path: out.clone(),
            reason: "it exists and is not a directory".into(),
        });
    }
    let present: Vec<&str> = RUN_FILES
        .into_iter()
        .filter(|name| out.join(name).exists())
        .collect();
    if !present.is_empty() && !cfg.resume {
        if !cfg.overwrite {
            return Err(ClError::OutputDir {
                path: out.clone(),
                reason: format!(
                    "it holds an earlier run ({}); pass --resume to continue it, --overwrite to replace it, or choose another --out",
                    present.join(", ")
                ),
            });
        }
        for name in present {
            let path = out.join(name);
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| ClError::io("removing (--overwrite)", &path, e))?;
        }
    }
    std::fs::create_dir_all(out).map_err(|e| ClError::io("creating output directory", out, e))?;
    let probe = out.join(".write-test");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| ClError::io("writing into output directory", out, e))?;
    Ok(())
}

/// What happened on one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Task index.
    pub task: usize,
    /// Task name.
    pub name: String,
    /// Optimiser steps taken.
    pub steps: usize,
    /// Mean training loss over the last epoch.
    pub last_epoch_loss: f64,
    /// Wall time of training the task (begin_task .. end_task), seconds.
    pub train_seconds: f64,
    /// Wall time of evaluating every task afterwards, seconds.
    pub eval_seconds: f64,
    /// Parameter counts after the task.
    pub params: ParamCounts,
}

/// The result of a run, written as `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Method name.
    pub method: String,
    /// Stream name.
    pub stream: String,
    /// Scenario.
    pub scenario: Scenario,
    /// Seed.
    pub seed: u64,
    /// Task names in training order.
    pub task_names: Vec<String>,
    /// `R[t][j]`, accuracy on task `j` after training task `t` (for a task scored on generated
    /// text, its metric: see [`RunReport::text_metrics`]).
    pub matrix: AccuracyMatrix,
    /// Each task's metric where its answers are scored as generated text (`None`: the accuracy
    /// of class scores); empty when every task is scored by class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub text_metrics: Vec<Option<TextMetric>>,
    /// Overall performance (mean accuracy after the last finished task).
    pub op: Option<f64>,
    /// Backward transfer (over `T − 1` tasks).
    pub bwt: Option<f64>,
    /// Forward transfer against `initial_accuracy`.
    pub fwt: Option<f64>,
    /// Average forgetting.
    pub forgetting: Option<f64>,
    /// `b_j`: accuracy of the untrained model (frozen backbone, random head) on each task, the
    /// reference of FWT.
    pub initial_accuracy: Vec<f64>,
    /// Per-task records.
    pub tasks: Vec<TaskRecord>,
    /// For methods whose model generates its answers (the causal LM): the exact-match matrix
    /// of greedy decoding (`R[t][j]`: the share of task `j`'s test inputs whose greedy answer
    /// is exactly their label's tokens then end-of-text, after training task `t`), with its
    /// OP and BWT; `initial` is the untrained model's row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<ExactMatch>,
    /// `true` once every task has finished.
    pub completed: bool,
    /// Run settings.
    pub config: RunConfig,
}

/// The exact-match metrics of a generating model (see [`RunReport::exact_match`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExactMatch {
    /// `R[t][j]`.
    pub matrix: AccuracyMatrix,
    /// Each task's exact match before any training.
    pub initial: Vec<f64>,
    /// Overall performance.
    pub op: Option<f64>,
    /// Backward transfer.
    pub bwt: Option<f64>,
}

impl RunReport {
    fn refresh_metrics(&mut self) {
        if let Some(em) = &mut self.exact_match {
            em.op = em.matrix.op();
            em.bwt = em.matrix.bwt();
        }
        self.op = self.matrix.op();
        self.bwt = self.matrix.bwt();
        self.fwt = self.matrix.fwt(&self.initial_accuracy);
        self.forgetting = self.matrix.forgetting();
        self.completed = self.matrix.is_complete();
    }

    /// Which score each task's column holds, where some task is scored on generated text.
    fn metrics_line(&self) -> String {
        if self.text_metrics.is_empty() {
            return String::new();
        }
        let names: Vec<String> = self
            .task_names
            .iter()
            .zip(&self.text_metrics)
            .map(|(task, m)| format!("{task}: {}", m.map_or("accuracy", TextMetric::name)))
            .collect();
        format!("scores (of greedy answers): {}\n", names.join(", "))
    }

    /// A short human summary: matrix, OP, BWT, FWT, forgetting.
    pub fn summary(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:+.2}", 100.0 * v));
        format!(
            "{} on {} ({:?}, seed {})\n{}OP {}  BWT {}  FWT {}  forgetting {}  (percentage points)\n",
            self.method,
            self.stream,
            self.scenario,
            self.seed,
            self.matrix.to_table(),
            pct(self.op),
            pct(self.bwt),
            pct(self.fwt),
            pct(self.forgetting),
        ) + &self.metrics_line()
            + &match &self.exact_match {
                Some(em) => format!(
                    "exact match of greedy answers:\n{}OP {}  BWT {}\n",
                    em.matrix.to_table(),
                    pct(em.op),
                    pct(em.bwt)
                ),
                None => String::new(),
            }
    }
}

/// What the checkpoint's `state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    finished: Vec<TaskInfo>,
    report: RunReport,
}

/// Runs `method` over `stream`: see the module docs.
pub fn run<B, M>(
    method: &mut M,
    stream: &TaskStream<M::Input>,
    cfg: &RunConfig,
    device: &B::Device,
) -> Result<RunReport>
where
    B: AutodiffBackend,
    M: Method<B>,
{
    prepare_out_dir(cfg)?;
    let (mut report, mut finished) = match resume_state(method, stream, cfg)? {
        Some(state) => {
            // The report is rebuilt from the checkpoint: a kill between writing the two may
            // have left it one task behind, or missing.
            if let Some(dir) = &cfg.out_dir {
                write_json(&dir.join("report.json"), &state.report)?;
            }
            (state.report, state.finished)
        }
        None => {
            let initial = evaluate_all::<B, M>(method, stream, cfg.eval_batch_size)?;
            let initial_accuracy = initial.iter().map(|(a, _)| *a).collect();
            let exact_match = initial
                .iter()
                .map(|(_, em)| *em)
                .collect::<Option<Vec<f64>>>()
                .map(|initial| ExactMatch {
                    matrix: AccuracyMatrix::for_protocol(stream.num_tasks(), method.protocol()),
                    initial,
                    op: None,
                    bwt: None,
                });
            let report = RunReport {
                method: method.name(),
                stream: stream.name().to_string(),
                scenario: stream.scenario(),
                seed: cfg.seed,
                task_names: stream.tasks().iter().map(|t| t.info.name.clone()).collect(),
                matrix: AccuracyMatrix::for_protocol(stream.num_tasks(), method.protocol()),
                text_metrics: text_metrics(stream),
                op: None,
                bwt: None,
                fwt: None,
                forgetting: None,
                initial_accuracy,
                tasks: Vec::new(),
                exact_match,
                completed: false,
                config: cfg.clone(),
            };
            (report, Vec::new())
        }
    };

    let show_progress =
        cfg.progress && std::env::var_os("CI").is_none() && std::io::stderr().is_terminal();
    // What is trained before each evaluation: one task at a time, or (joint) all of them.
    let units: Vec<&[Task<M::Input>]> = match method.protocol() {
        Protocol::Sequential => stream.tasks().chunks(1).collect(),
        Protocol::Joint => vec![stream.tasks()],
    };
    for unit in units.into_iter().skip(report.matrix.num_finished()) {
        if cfg.stop_after.is_some_and(|n| finished.len() >= n) {
            break;
        }
        let record = train_tasks::<B, M>(method, unit, finished.len(), cfg, device, show_progress)?;
        let eval_start = Instant::now();
        let both = evaluate_all::<B, M>(method, stream, cfg.eval_batch_size)?;
        report
            .matrix
            .push_row(both.iter().map(|(a, _)| *a).collect());
        if let Some(em) = &mut report.exact_match {
            em.matrix
                .push_row(both.iter().map(|(_, e)| e.unwrap_or(f64::NAN)).collect());
        }
        report.tasks.push(TaskRecord {
            eval_seconds: eval_start.elapsed().as_secs_f64(),
            params: method.param_counts(),
            ..record
        });
        report.refresh_metrics();
        finished.extend(unit.iter().map(|t| t.info.clone()));
        if show_progress {
            let last = &unit[unit.len() - 1].info;
            eprintln!(
                "task {}/{} `{}`: accuracy on it {:.1}%, OP so far {:.1}%",
                finished.len(),
                stream.num_tasks(),
                record_name(unit),
                100.0
                    * report
                        .matrix
                        .get(report.matrix.num_finished() - 1, last.id)
                        .unwrap_or(f64::NAN),
                100.0 * report.op.unwrap_or(f64::NAN)
            );
        }
        if let Some(dir) = &cfg.out_dir {
            write_checkpoint(method, dir, &finished, &report)?;
        }
    }
    Ok(report)
}

/// Each task's text metric, or nothing where every task is scored by class.
fn text_metrics<X>(stream: &TaskStream<X>) -> Vec<Option<TextMetric>> {
    let metrics: Vec<Option<TextMetric>> = (0..stream.num_tasks())
        .map(|t| stream.scoring(t).text_metric())
        .collect();
    if metrics.iter().all(Option::is_none) {
        Vec::new()
    } else {
        metrics
    }
}

/// The seed path of a joint training's data order (sequential tasks use their id).
const JOINT_ORDER: usize = usize::MAX;

/// A unit's name in records: the task's, or `joint(a+b+...)`.
fn record_name<X>(unit: &[Task<X>]) -> String {
    match unit {
        [task] => task.info.name.clone(),
        _ => format!(
            "joint({})",
            unit.iter()
                .map(|t| t.info.name.as_str())
                .collect::<Vec<_>>()
                .join("+")
        ),
    }
}

/// Trains one unit: a single task (sequential), or every task at once on the union of their
/// training splits (joint; see [`Method`]). `position` counts the tasks finished before it.
fn train_tasks<B, M>(
    method: &mut M,
    unit: &[Task<M::Input>],
    position: usize,
    cfg: &RunConfig,
    device: &B::Device,
    show: bool,
) -> Result<TaskRecord>
where
    B: AutodiffBackend,
    M: Method<B>,
{
    let start = Instant::now();
    let first = &unit[0].info;
    let order_id = if unit.len() == 1 {
        first.id
    } else {
        JOINT_ORDER
    };
    B::seed(device, mix_seed(cfg.seed, &[4, order_id as u64]));
    let train: Vec<&Example<M::Input>> = unit.iter().flat_map(|t| &t.train).collect();
    let batches_per_epoch = train.len().div_ceil(cfg.batch_size);
    let name = record_name(unit);
    for task in unit {
        method.plan_steps(cfg.epochs * batches_per_epoch);
        method.begin_task(&task.info, &task.train)?;
    }
    let bar = progress_bar(show, (cfg.epochs * batches_per_epoch) as u64, &name);
    let mut steps = 0;
    let mut last_epoch_loss = f64::NAN;
    for epoch in 0..cfg.epochs {
        let mut sum = 0.0;
        let batches = epoch_batches(train.len(), cfg.batch_size, cfg.seed, order_id, epoch);
        for indices in &batches {
            let batch: Vec<_> = indices.iter().map(|&i| train[i].clone()).collect();
            let stats = method.train_step(&batch)?;
            if !stats.loss.is_finite() {
                bar.abandon();
                return Err(ClError::NonFiniteLoss {
                    before_any_update: position == 0 && steps == 0,
                    method: method.name(),
                    task: first.id,
                    step: steps,
                    loss: stats.loss,
                });
            }
            sum += stats.loss;
            steps += 1;
            bar.set_message(format!("loss {:.4}", stats.loss));
            bar.inc(1);
        }
        last_epoch_loss = sum / batches.len() as f64;
    }
    for task in unit {
        method.observe_validation(&task.info, &task.valid)?;
        method.end_task(&task.info, &task.train)?;
    }
    bar.finish_and_clear();
    Ok(TaskRecord {
        task: first.id,
        name,
        steps,
        last_epoch_loss,
        train_seconds: start.elapsed().as_secs_f64(),
        eval_seconds: 0.0,
        params: ParamCounts {
            trainable: 0,
            stored: 0,
            stored_examples: 0,
        },
    })
}

/// Accuracy of `method` on `task`'s test split (its score, for a task scored on generated text:
/// see [`evaluate_all`]). In the task-incremental scenario the logits are restricted to the
/// task's classes and the context carries its id; otherwise neither.
pub fn evaluate<B, M>(
    method: &M,
    task: &Task<M::Input>,
    stream: &TaskStream<M::Input>,
    batch_size: usize,
) -> Result<f64>
where
    B: AutodiffBackend,
    M: Method<B>,
{
    Ok(evaluate_with_greedy::<B, M>(method, task, stream, batch_size)?.0)
}

/// [`evaluate`], and the exact match of the greedy answers where the method generates them
/// ([`Method::predictions`]; never restricted to the task's classes: the answer is generated).
pub fn evaluate_with_greedy<B, M>(
    method: &M,
    task: &Task<M::Input>,
    stream: &TaskStream<M::Input>,
    batch_size: usize,
) -> Result<(f64, Option<f64>)>
where
    B: AutodiffBackend,
    M: Method<B>,
{
    let ctx = EvalContext::new(stream.scenario(), task.info.id);
    let examples: Vec<EvalExample<'_, M::Input>> = (0..task.test.len())
        .map(|i| (task.info.id, i, &task.test[i]))
        .collect();
    Ok(score_examples::<B, M>(method, stream, &ctx, &examples, batch_size)?[&task.info.id])
}

/// [`evaluate_with_greedy`] on every task of the stream, in task order: each task's score (the
/// accuracy of its class scores, or, for a task scored on generated text
/// ([`Scoring::Text`]), the mean of its metric over the greedy answers) and exact match.
/// Without a task id (class-incremental) the tasks' test examples share batches of
/// `batch_size`, so that a small test split per task does not cost one pass per task: the
/// decoder's evaluation is dominated by reading its weights once per pass. Per task otherwise.
pub fn evaluate_all<B, M>(
    method: &M,
    stream: &TaskStream<M::Input>,
    batch_size: usize,
) -> Result<Vec<(f64, Option<f64>)>>
where
    B: AutodiffBackend,
    M: Method<B>,
{
    let tasks = stream.tasks();
    let Some(first) = tasks.first() else {
        return Ok(Vec::new());
    };
    let ctx = EvalContext::new(stream.scenario(), first.info.id);
    if ctx.task_id().is_some() {
        return tasks
            .iter()
            .map(|task| evaluate_with_greedy::<B, M>(method, task, stream, batch_size))
            .collect();
    }
    let examples: Vec<EvalExample<'_, M::Input>> = tasks
        .iter()
        .flat_map(|task| {
            task.test
                .iter()
                .enumerate()
                .map(move |(i, e)| (task.info.id, i, e))
        })
        .collect();
    let scores = score_examples::<B, M>(method, stream, &ctx, &examples, batch_size)?;
    Ok(tasks.iter().map(|t| scores[&t.info.id]).collect())
}

/// A test example with its task and its index in the task's test split.
type EvalExample<'a, X> = (TaskId, usize, &'a Example<X>);

/// Each task's (score, exact match) over `examples`, evaluated in batches of `batch_size`
/// under `ctx` (see [`evaluate_all`]).
fn score_examples<B, M>(
    method: &M,
    stream: &TaskStream<M::Input>,
    ctx: &EvalContext,
    examples: &[EvalExample<'_, M::Input>],
    batch_size: usize,
) -> Result<BTreeMap<TaskId, (f64, Option<f64>)>>
where
    B: AutodiffBackend,
    M: Method<B>,
{
    // Per task: the sum of scores, the exact matches (None once a batch has no greedy
    // answers), the example count.
    let mut totals: BTreeMap<TaskId, (f64, Option<usize>, usize)> = BTreeMap::new();
    for chunk in examples.chunks(batch_size.max(1)) {
        let inputs: Vec<&M::Input> = chunk.iter().map(|(_, _, e)| &e.input).collect();
        let predictions = method.predictions(&inputs, ctx)?;
        let predicted = match &predictions.scores {
            Some(scores) => Some(predicted_classes::<B, M>(
                method, stream, ctx, chunk, scores,
            )?),
            None => None,
        };
        for (row, &(t, i, example)) in chunk.iter().enumerate() {
            let task = stream.task(t);
            let greedy = predictions.greedy.as_ref().map(|g| &g[row]);
            let (score, exact) = match stream.scoring(t) {
                Scoring::Classes => {
                    let Some(predicted) = &predicted else {
                        return Err(ClError::config(
                            format!("task `{}`", task.info.name),
                            format!(
                                "is scored by class, and `{}` gives no class scores (its answers are free text)",
                                method.name()
                            ),
                        ));
                    };
                    (
                        f64::from(u8::from(predicted[row] == example.label)),
                        greedy.map(|g| g.class == Some(example.label)),
                    )
                }
                Scoring::Text { metric, sources } => {
                    let Some(text) = greedy.and_then(|g| g.text.as_deref()) else {
                        return Err(ClError::config(
                            format!("task `{}`", task.info.name),
                            format!(
                                "is scored on generated text ({}), and `{}` generates none",
                                metric.name(),
                                method.name()
                            ),
                        ));
                    };
                    let reference = label_text(&task.info, example.label)?;
                    let source = sources.get(i).map_or("", String::as_str);
                    (
                        metric.score(text, reference, source),
                        Some(normalize_answer(text) == normalize_answer(reference)),
                    )
                }
            };
            let entry = totals.entry(t).or_insert((0.0, Some(0), 0));
            entry.0 += score;
            entry.1 = match (entry.1, exact) {
                (Some(n), Some(hit)) => Some(n + usize::from(hit)),
                _ => None,
            };
            entry.2 += 1;
        }
    }
    Ok(totals
        .into_iter()
        .map(|(t, (sum, exact, n))| {
            let n = n as f64;
            (t, (sum / n, exact.map(|e| e as f64 / n)))
        })
        .collect())
}

/// The argmax class of each row of `scores` (`[chunk, num_classes]`, checked), restricted to
/// the row's task's classes where the context carries a task id.
fn predicted_classes<B, M>(
    method: &M,
    stream: &TaskStream<M::Input>,
    ctx: &EvalContext,
    chunk: &[EvalExample<'_, M::Input>],
    scores: &Tensor<B::InnerBackend, 2>,
) -> Result<Vec<usize>>
where
    B: AutodiffBackend,
    M: Method<B>,
{
    let [rows, cols] = scores.dims();
    if rows != chunk.len() || cols != stream.num_classes() {
        return Err(ClError::ShapeMismatch {
            tensor: format!("logits of `{}`", method.name()),
            expected: vec![chunk.len(), stream.num_classes()],
            actual: vec![rows, cols],
        });
    }
    let scores = match ctx.task_id() {
        Some(_) => {
            let allowed: Vec<&[usize]> = chunk
                .iter()
                .map(|(t, _, _)| stream.task(*t).info.classes.as_slice())
                .collect();
            let device = scores.device();
            scores.clone() + label_space_mask::<B::InnerBackend>(&allowed, cols, &device)
        }
        None => scores.clone(),
    };
    Ok(argmax_host::<B::InnerBackend>(scores))
}

/// The label text of `class` in `info` (the reference answer of a free-text task).
fn label_text(info: &TaskInfo, class: usize) -> Result<&str> {
    info.classes
        .binary_search(&class)
        .ok()
        .and_then(|i| info.labels.get(i))
        .map(String::as_str)
        .ok_or_else(|| {
            ClError::config(
                format!("task `{}`", info.name),
                format!("class {class} has no label text to score a generated answer against"),
            )
        })
}

fn progress_bar(show: bool, len: u64, name: &str) -> ProgressBar {
    if !show {
        return ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(name.to_string());
    bar
}

fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

fn write_checkpoint<B: AutodiffBackend, M: Method<B>>(
    method: &M,
    out: &Path,
    finished: &[TaskInfo],
    report: &RunReport,
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| ClError::io("creating", out, e))?;
    let dst = checkpoint_dir(out);
    let staged = sibling(&dst, "staged");
    if staged.exists() {
        std::fs::remove_dir_all(&staged).map_err(|e| ClError::io("removing", &staged, e))?;
    }
    let method_dir = staged.join("method");
    std::fs::create_dir_all(&method_dir).map_err(|e| ClError::io("creating", &method_dir, e))?;
    method.save_checkpoint(&method_dir)?;
    let state = RunState {
        finished: finished.to_vec(),
        report: report.clone(),
    };
    write_json(&staged.join("state.json"), &state)?;
    replace_dir(&staged, &dst)?;
    write_json(&out.join("report.json"), report)
}

fn resume_state<B, M>(
    method: &mut M,
    stream: &TaskStream<M::Input>,
    cfg: &RunConfig,
) -> Result<Option<RunState>>
where
    B: AutodiffBackend,
    M: Method<B>,
{
    let Some(out) = cfg.out_dir.as_deref().filter(|_| cfg.resume) else {
        return Ok(None);
    };
    let Some(dir) = existing_dir(&checkpoint_dir(out)) else {
        return Ok(None);
    };
    let state: RunState = read_json(&dir.join("state.json"))?;
    let differences = cfg.differences(&state.report.config);
    if state.report.method == method.name() && !differences.is_empty() {
        return Err(ClError::CheckpointMismatch {
            path: dir.clone(),
            reason: format!(
                "{} (resume only continues the same experiment; use another --out, or --overwrite to discard the saved run)",
                differences.join("; ")
            ),
        });
    }
    let mut state = load_state(method, stream, &dir, state)?;
    state.report.config = cfg.clone();
    Ok(Some(state))
}

/// Restores `method` to the last checkpoint of the run in `run_dir` (its `checkpoint/`, or
/// `checkpoint.old` after an interrupted write), as a resumed run would be: for evaluating or
/// using a finished or interrupted run (`cl eval`, `cl predict`). `stream` must be the run's
/// (same tasks, in the same order). Returns the saved report and the tasks it had finished.
pub fn restore<B, M>(
    method: &mut M,
    stream: &TaskStream<M::Input>,
    run_dir: &Path,
) -> Result<(RunReport, Vec<TaskInfo>)>
where
    B: AutodiffBackend,
    M: Method<B>,
{
    let Some(dir) = existing_dir(&checkpoint_dir(run_dir)) else {
        return Err(ClError::io(
            "reading the checkpoint of",
            run_dir,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no checkpoint/ (is it the --out directory of a `cl run`?)",
            ),
        ));
    };
    let state: RunState = read_json(&dir.join("state.json"))?;
    let state = load_state(method, stream, &dir, state)?;
    Ok((state.report, state.finished))
}

/// Checks a saved state against `method` and `stream` and loads it into `method`.
fn load_state<B, M>(
    method: &mut M,
    stream: &TaskStream<M::Input>,
    dir: &Path,
    state: RunState,
) -> Result<RunState>
where
    B: AutodiffBackend,
    M: Method<B>,
{
    let mismatch = |reason: String| ClError::CheckpointMismatch {
        path: dir.to_path_buf(),
        reason,
    };
    let saved = &state.report;
    let names: Vec<String> = stream.tasks().iter().map(|t| t.info.name.clone()).collect();
    if saved.method != method.name() {
        return Err(mismatch(format!(
            "method: saved `{}`, now `{}`",
            saved.method,
            method.name()
        )));
    }
    if saved.stream != stream.name() || saved.task_names != names {
        return Err(mismatch(format!(
            "stream: saved `{}` with tasks {:?}, now `{}` with tasks {names:?}",
            saved.stream,
            saved.task_names,
            stream.name()
        )));
    }
    if saved.matrix.protocol() != method.protocol() {
        return Err(mismatch(format!(
            "protocol: saved {:?}, now {:?}",
            saved.matrix.protocol(),
            method.protocol()
        )));
    }
    let tasks_per_row = match saved.matrix.protocol() {
        Protocol::Sequential => 1,
        Protocol::Joint => stream.num_tasks(),
    };
    if state.finished.len() != saved.matrix.num_finished() * tasks_per_row {
        return Err(mismatch("finished tasks and matrix rows disagree".into()));
    }
    for info in &state.finished {
        method.observe_validation(info, &stream.task(info.id).valid)?;
    }
    method.load_checkpoint(&dir.join("method"), &state.finished)?;
    Ok(state)
}

/// Convenience for callers that hold an inner-backend device only.
pub fn seed_backend<B: Backend>(device: &B::Device, seed: u64) {
    B::seed(device, seed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_in(dir: &Path) -> RunConfig {
        RunConfig {
            out_dir: Some(dir.to_path_buf()),
            ..RunConfig::default()
        }
    }

    #[test]
    fn an_earlier_run_is_refused_unless_resumed_or_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        prepare_out_dir(&cfg_in(&out)).unwrap();
        assert!(out.is_dir(), "created");
        prepare_out_dir(&cfg_in(&out)).expect("an empty directory is free to use");
        std::fs::write(out.join("report.json"), "{}").unwrap();
        std::fs::create_dir_all(out.join("checkpoint.old")).unwrap();
        let err = prepare_out_dir(&cfg_in(&out)).unwrap_err().to_string();
        assert!(
            err.contains("--resume")
                && err.contains("--overwrite")
                && err.contains("report.json, checkpoint.old"),
            "{err}"
        );
        let resume = RunConfig {
            resume: true,
            ..cfg_in(&out)
        };
        prepare_out_dir(&resume).expect("resume may use it");
        assert!(out.join("report.json").exists(), "resume removes nothing");
        let overwrite = RunConfig {
            overwrite: true,
            ..cfg_in(&out)
        };
        prepare_out_dir(&overwrite).unwrap();
        assert!(!out.join("report.json").exists() && !out.join("checkpoint.old").exists());
        let both = RunConfig {
            overwrite: true,
            ..resume
        };
        assert!(prepare_out_dir(&both).is_err());
    }

    #[test]
    fn an_unusable_out_dir_is_found_before_training() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = prepare_out_dir(&cfg_in(&file)).unwrap_err().to_string();
        assert!(
            err.contains("not a directory") && err.contains("file"),
            "{err}"
        );
        let below = file.join("run");
        let err = prepare_out_dir(&cfg_in(&below)).unwrap_err().to_string();
        assert!(err.contains("creating output directory"), "{err}");
    }

    #[test]
    fn a_non_utf8_out_dir_is_refused_before_training() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"run-\xff"));
        let err = prepare_out_dir(&cfg_in(&odd)).unwrap_err().to_string();
        assert!(
            err.contains("run.out_dir") && err.contains("UTF-8"),
            "{err}"
        );
        assert!(!odd.exists(), "nothing created");
    }

    #[test]
    fn differences_name_each_field_with_both_values() {
        let mut saved = RunConfig::default();
        saved.description.insert("cli.order".into(), 1.into());
        saved
            .description
            .insert("config.lora.rank".into(), 8.into());
        let mut now = saved.clone();
        assert!(now.differences(&saved).is_empty());
        now.seed = 3;
        now.description.insert("cli.order".into(), 2.into());
        now.description.remove("config.lora.rank");
        now.description.insert("cli.max_len".into(), 32.into());
        now.out_dir = Some("elsewhere".into());
        now.progress = true;
        let diff = now.differences(&saved);
        assert_eq!(
            diff,
            vec![
                "`cli.max_len`: saved \"(absent)\", now 32",
                "`cli.order`: saved 1, now 2",
                "`config.lora.rank`: saved 8, now \"(absent)\"",
                "`run.seed`: saved 0, now 3",
            ]
        );
    }
}
