//! `cl eval` and `cl predict`: a finished (or interrupted) run used afterwards. The run's
//! arguments and method configuration come back from its report's description, its stream
//! from the data (the same seed draws the same rows), its state from its checkpoint, exactly
//! as `cl run --resume` would restore it; nothing is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;
use cl_core::backbone::{Image, TextTokenizer, TokenIds};
use cl_core::stream::{Scenario, TaskStream};
use cl_core::{EvalContext, Method, RunReport};
use clap::{Args, Parser};
use serde_json::Value;

use crate::backend::BackendName;
use crate::run::{Action, RunArgs, on_saved_run};
use crate::streams::minilm_dir;

/// Arguments of `cl eval`.
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// The run's directory (`cl run --out`).
    #[arg(long)]
    run: PathBuf,
    /// Backend (each needs its cargo feature).
    #[arg(long, value_enum, default_value_t = BackendName::default_compiled())]
    backend: BackendName,
}

/// Arguments of `cl predict`.
#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    /// The run's directory (`cl run --out`).
    #[arg(long)]
    run: PathBuf,
    /// The task id (0-based) to tell the method: required by task-incremental runs, refused by
    /// class-incremental ones (their methods never see one).
    #[arg(long)]
    task: Option<usize>,
    /// What to label: texts (text streams, the decoder's prompt streams), whole prompts
    /// (trace), PNG files (vision6) or comma-separated numbers (synthetic).
    #[arg(num_args = 1.., required = true, allow_hyphen_values = true)]
    inputs: Vec<String>,
    /// The decoder's prompt streams (text5-gen, text15-gen, cl-benchmark): the task whose
    /// instruction and options frame the texts, by name (e.g. `yelp`). This picks the prompt
    /// only: a class-incremental method is still not told the task.
    #[arg(long)]
    prompt_of: Option<String>,
    /// Backend (each needs its cargo feature).
    #[arg(long, value_enum, default_value_t = BackendName::default_compiled())]
    backend: BackendName,
}

/// Runs `cl eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    on_saved_run(&args.run, Action::Eval(args.run.clone()), args.backend)
}

/// Runs `cl predict`.
pub fn predict_command(args: &PredictArgs) -> Result<()> {
    on_saved_run(
        &args.run,
        Action::Predict {
            dir: args.run.clone(),
            task: args.task,
            inputs: args.inputs.clone(),
            prompt_of: args.prompt_of.clone(),
        },
        args.backend,
    )
}

/// `<dir>/report.json`.
pub(crate) fn read_report(dir: &Path) -> Result<RunReport> {
    let path = dir.join("report.json");
    if !path.is_file() {
        bail!(
            "`{}` has no report.json: pass the --out directory of a `cl run`",
            dir.display()
        );
    }
    cl_core::checkpoint::read_json(&path)
        .with_context(|| format!("run report `{}`", path.display()))
}

/// `cl run`'s arguments as the run in a description was made with (the backend is the one
/// asked for now).
pub(crate) fn run_args(
    d: &BTreeMap<String, Value>,
    seed: u64,
    backend: BackendName,
) -> Result<RunArgs> {
    #[derive(Parser)]
    struct Saved {
        #[command(flatten)]
        run: RunArgs,
    }
    let text = |key: &str| -> Option<String> {
        d.get(key).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let method = text("cli.method").context("the run's description has no `cli.method`")?;
    let mut argv: Vec<String> = vec!["cl".into(), "--method".into(), method];
    fn push(argv: &mut Vec<String>, flag: &str, value: Option<String>) {
        if let Some(v) = value {
            argv.push(flag.into());
            argv.push(v);
        }
    }
    match text("cli.stream_file") {
        Some(file) => {
            // "<path> sha256:<hash>"
            let path = file
                .rsplit_once(" sha256:")
                .map_or(file.as_str(), |(p, _)| p);
            push(&mut argv, "--stream-file", Some(path.to_string()));
            push(&mut argv, "--model-dir", text("cli.model_dir"));
        }
        None => {
            push(&mut argv, "--stream", text("cli.stream"));
            push(&mut argv, "--preset", text("cli.preset"));
            push(&mut argv, "--max-train", text("cli.max_train"));
            push(&mut argv, "--test-per-task", text("cli.test_per_task"));
            push(&mut argv, "--max-len", text("cli.max_len"));
            push(&mut argv, "--max-answer-len", text("cli.max_answer_len"));
            push(&mut argv, "--image-size", text("cli.image_size"));
            push(&mut argv, "--model-dir", text("cli.model_dir"));
            push(&mut argv, "--data-dir", text("cli.data_dir"));
            if d.get("cli.task_incremental") == Some(&Value::Bool(true)) {
                argv.push("--task-incremental".into());
            }
        }
    }
    push(&mut argv, "--order", text("cli.order"));
    push(&mut argv, "--seed", Some(seed.to_string()));
    push(&mut argv, "--backend", Some(backend.name().to_string()));
    let saved = Saved::try_parse_from(&argv)
        .map_err(|e| anyhow::anyhow!("the run's saved arguments ({}): {e}", argv[1..].join(" ")))?;
    Ok(saved.run)
}

/// The object the dotted keys under `prefix.` describe (`config.lora.rank` → `{"lora":
/// {"rank": …}}`): the inverse of the flattening `cl run` writes.
pub(crate) fn unflatten(d: &BTreeMap<String, Value>, prefix: &str) -> Value {
    let mut root = serde_json::Map::new();
    let start = format!("{prefix}.");
    for (key, value) in d {
        let Some(path) = key.strip_prefix(&start) else {
            continue;
        };
        let mut node = &mut root;
        let parts: Vec<&str> = path.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            let slot = node
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Default::default()));
            if !slot.is_object() {
                *slot = Value::Object(Default::default());
            }
            node = slot.as_object_mut().expect("made an object above");
        }
        node.insert(parts[parts.len() - 1].to_string(), value.clone());
    }
    Value::Object(root)
}

/// Texts tokenized as the run's were (MiniLM's tokenizer, the run's token count).
pub(crate) fn texts(
    args: &RunArgs,
    d: &BTreeMap<String, Value>,
    texts: &[String],
) -> Result<Vec<TokenIds>> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    if args.stream_file.is_some() && args.model_dir.is_some() {
        bail!(
            "this run's model was pruned to its streams' token ids (`cl prune-model`): new texts cannot be tokenized for it; predict with a run on the full model"
        );
    }
    let max_len = d
        .get("cli.max_len")
        .or_else(|| d.get("stream.max_len"))
        .and_then(Value::as_u64)
        .context("the run's description has no token count (`cli.max_len`)")?;
    let dir = match &args.model_dir {
        Some(dir) if dir.join("tokenizer.json").is_file() => dir.clone(),
        _ => minilm_dir(&cl_data::fetch::cache_dir()),
    };
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), max_len as usize)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    Ok(tokenizer.encode_batch(&refs)?)
}

/// PNG files as MobileNetV2 inputs of `size` pixels (as the run's).
pub(crate) fn images(paths: &[String], size: usize) -> Result<Vec<Image>> {
    paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).with_context(|| format!("reading image `{p}`"))?;
            let raw = cl_data::images::decode_png(&bytes)
                .map_err(|e| anyhow::anyhow!("image `{p}`: {e}"))?;
            Ok(cl_data::vision::to_backbone_input(&raw, size))
        })
        .collect()
}

/// Comma-separated numbers as feature vectors of `dim` values (the synthetic stream).
pub(crate) fn vectors(inputs: &[String], dim: usize) -> Result<Vec<Vec<f32>>> {
    inputs
        .iter()
        .map(|s| {
            let v = s
                .split(',')
                .map(|x| {
                    x.trim()
                        .parse::<f32>()
                        .with_context(|| format!("input `{s}`: `{x}` is not a number"))
                })
                .collect::<Result<Vec<f32>>>()?;
            if v.len() != dim {
                bail!(
                    "input `{s}` has {} numbers; the run's backbone takes {dim}",
                    v.len()
                );
            }
            Ok(v)
        })
        .collect()
}

/// Restores `method` from the run in `dir` and evaluates it on every task's test split,
/// beside the accuracies the run's report recorded last.
pub(crate) fn evaluate<B, M>(
    method: &mut M,
    stream: &TaskStream<M::Input>,
    dir: &Path,
) -> Result<()>
where
    B: AutodiffBackend,
    M: Method<B>,
{
    let (saved, finished) = cl_core::runner::restore(method, stream, dir)?;
    let recorded = saved.matrix.rows().last().cloned().unwrap_or_default();
    println!(
        "{} on {} ({}), restored after {} of {} tasks",
        saved.method,
        saved.stream,
        stream.scenario().name(),
        saved.matrix.rows().len(),
        stream.num_tasks()
    );
    println!("| task | name | test rows | accuracy | in report.json |\n|---|---|---|---|---|");
    let mut sum = 0.0;
    for task in stream.tasks() {
        let accuracy = cl_core::runner::evaluate(&*method, task, stream, 64)?;
        sum += accuracy;
        let was = recorded
            .get(task.info.id)
            .map_or("–".to_string(), |a| format!("{:.1}", 100.0 * a));
        println!(
            "| {} | {} | {} | {:.1} | {was} |",
            task.info.id,
            task.info.name,
            task.test.len(),
            100.0 * accuracy
        );
    }
    println!(
        "mean accuracy over the {} tasks: {:.1} ({} trained)",
        stream.num_tasks(),
        100.0 * sum / stream.num_tasks().max(1) as f64,
        finished.len()
    );
    Ok(())
}

/// The name of global class `class`: its task's label for it, or `class <c>`.
fn class_name<X>(stream: &TaskStream<X>, class: usize) -> String {
    for task in stream.tasks() {
        if let Some(pos) = task.info.classes.iter().position(|&c| c == class) {
            return match task.info.labels.get(pos) {
                Some(label) => format!("{label} ({})", task.info.name),
                None => format!("class {class} ({})", task.info.name),
            };
        }
    }
    format!("class {class}")
}

/// Restores `method` from the run in `dir` and prints, for each input, its three most likely
/// classes with their softmax scores (over the task's classes when a task id is given; over
/// the answers' log-likelihoods for the decoder), and the decoder's greedy answer.
pub(crate) fn predict<B, M>(
    method: &mut M,
    stream: &TaskStream<M::Input>,
    dir: &Path,
    task: Option<usize>,
    inputs: &[M::Input],
    given: &[String],
) -> Result<()>
where
    B: AutodiffBackend,
    M: Method<B>,
{
    let ctx = match (stream.scenario(), task) {
        (Scenario::TaskIncremental, None) => bail!(
            "the run is task-incremental: give the task with --task (0 to {})",
            stream.num_tasks() - 1
        ),
        (Scenario::ClassIncremental, Some(_)) => bail!(
            "the run is class-incremental: its method never sees a task id, so --task does not apply"
        ),
        (_, Some(t)) if t >= stream.num_tasks() => bail!(
            "--task {t}: the stream has tasks 0 to {}",
            stream.num_tasks() - 1
        ),
        (scenario, t) => EvalContext::new(scenario, t.unwrap_or(0)),
    };
    cl_core::runner::restore(method, stream, dir)?;
    let refs: Vec<&M::Input> = inputs.iter().collect();
    let predictions = method.predictions(&refs, &ctx)?;
    let greedy = |r: usize| -> String {
        match predictions
            .greedy
            .as_ref()
            .and_then(|g| g[r].text.as_deref())
        {
            Some(text) => format!("greedy answer {text:?}"),
            None => String::new(),
        }
    };
    let Some(logits) = predictions.scores.clone() else {
        // Free-text answers: the greedy answer is the prediction.
        for (r, input) in given.iter().enumerate() {
            println!("{input:?} -> {}", greedy(r));
        }
        return Ok(());
    };
    let [rows, cols] = logits.dims();
    let values = logits
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading the logits: {e:?}"))?;
    let allowed: Vec<usize> = match ctx.task_id() {
        Some(t) => stream.task(t).info.classes.clone(),
        None => (0..cols).collect(),
    };
    for (r, input) in given.iter().enumerate().take(rows) {
        let row = &values[r * cols..(r + 1) * cols];
        let top = allowed
            .iter()
            .map(|&c| row[c] as f64)
            .fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = allowed.iter().map(|&c| (row[c] as f64 - top).exp()).sum();
        let mut scored: Vec<(usize, f64)> = allowed
            .iter()
            .map(|&c| (c, (row[c] as f64 - top).exp() / z))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let best: Vec<String> = scored
            .iter()
            .take(3)
            .map(|(c, p)| format!("{} {:.3}", class_name(stream, *c), p))
            .collect();
        let answer = greedy(r);
        if answer.is_empty() {
            println!("{input:?} -> {}", best.join("; "));
        } else {
            println!("{input:?} -> {} | {answer}", best.join("; "));
        }
    }
    Ok(())
}
