//! Loaders for two published data layouts of LLM continual-learning benchmarks, as instruction
//! examples (`instruction`, `input`, `output`).
//!
//! # `CL_Benchmark` (O-LoRA, Wang et al. 2023)
//!
//! The `CL_Benchmark` folder of the O-LoRA repository (github.com/cmnfriend/O-LoRA) groups the
//! datasets by task type:
//!
//! ```text
//! CL_Benchmark/<task type>/<dataset>/{train,dev,test,labels}.json
//! configs/instruction_config.json        (beside CL_Benchmark, in the repository root)
//! ```
//!
//! The 15 datasets are `TC/{agnews,dbpedia,yahoo}`, `SC/{amazon,yelp,IMDB,SST-2}`,
//! `NLI/{MNLI,CB,RTE}`, `QQP/QQP`, `BoolQA/BoolQA`, `COPA/COPA`, `MultiRC/MultiRC` and `WiC/WiC`.
//! Each split file is a JSON list of `{"sentence": ..., "label": ...}` objects, both strings
//! (`sentence` already carries its field markers, e.g. `"Title: ...\nText: ...\n"` or
//! `"sentence 1: ...\nsentence 2: ..."`); `labels.json` is the JSON list of the dataset's label
//! strings (the closed answer set). In the published data `dev.json` and `test.json` are the same
//! file.
//!
//! The instruction depends on the task type only. `configs/instruction_config.json` maps each task
//! type to a list of `{"instruction_type": "zero-shot", "instruction": ...}`; O-LoRA's scripts use
//! the first zero-shot one (`--instruction_strategy single`). This loader reads that file when it
//! is where O-LoRA puts it, `<root>/../configs/instruction_config.json` (`root` being the
//! `CL_Benchmark` folder), and otherwise uses [`CL_BENCHMARK_INSTRUCTIONS`], the same texts
//! copied from the repository's file. O-LoRA builds the prompt as
//! `instruction + "Option: " + labels.join(", ") + " \n" + sentence + "\nAnswer:"`, except for
//! COPA, whose sentence already holds the question and options (`sentence + "\nAnswer:"`).
//! Here [`InstructionExample::instruction`] is everything before the sentence (empty for COPA),
//! `input` the sentence, `output` the label, and [`Layout::prompt`] puts them together. (O-LoRA's
//! scripts also pass `--add_task_name True --add_dataset_name True`, which prefix the prompt with
//! `"Task:<task type>\nDataset:<dataset>\n"`; that prefix is left to the caller.)
//!
//! The task orders are [`CL_BENCHMARK_ORDERS`]: orders 1-3 are the 4-task standard CL benchmark
//! (O-LoRA `scripts/order_{1,2,3}.sh`), orders 4-6 the 15-task long sequence of the O-LoRA paper
//! (taken from Progressive Prompts, Razdaibiedina et al. 2023; order 6 is O-LoRA's
//! `scripts/long.sh`, orders 4 and 5 are not scripted in that repository).
//!
//! # TRACE (Wang et al. 2023)
//!
//! The TRACE benchmark (github.com/BeyonderXX/TRACE, data from its README's download link) has one
//! folder per task:
//!
//! ```text
//! <root>/<task>/{train,eval,test}.json
//! ```
//!
//! with the tasks `C-STANCE`, `FOMC`, `MeetingBank`, `Py150`, `ScienceQA`, `NumGLUE-cm`,
//! `NumGLUE-ds` and `20Minuten` ([`TRACE_ORDER`], the order of its training scripts). Each file is
//! a JSON list of `{"prompt": ..., "answer": ...}` objects, both strings; the prompt already
//! contains the task instruction and ends with the answer cue (e.g. `"...\nStance:"`), so
//! `instruction` is empty, `input` is the prompt and `output` the answer. There is no label file.
//!
//! Errors name the file; a bad record is named by its 0-based index and the missing or ill-typed
//! key. A missing split is an error, and so is an empty one.

use std::fs;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use cl_core::stream::{Example, Scoring, Task, TaskInfo, TaskStream, mix_seed};
use cl_core::text_metrics::TextMetric;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::Value;

use crate::error::{DataError, Result};
use crate::text::TextStreamConfig;

/// One instruction-tuning example.
#[derive(Debug, Clone, PartialEq)]
pub struct InstructionExample {
    /// The task instruction shown before the input (empty when the input already contains it).
    pub instruction: String,
    /// The example's own text.
    pub input: String,
    /// The expected answer.
    pub output: String,
}

/// One dataset of a benchmark with its three splits.
#[derive(Debug, Clone, PartialEq)]
pub struct InstructionTask {
    /// The dataset's folder name (`agnews`, `FOMC`, ...).
    pub name: String,
    /// Training examples.
    pub train: Vec<InstructionExample>,
    /// Validation examples (`dev.json` in `CL_Benchmark`, `eval.json` in TRACE).
    pub valid: Vec<InstructionExample>,
    /// Test examples.
    pub test: Vec<InstructionExample>,
    /// The closed label set, in the file's order, when the layout gives one (`labels.json`).
    pub labels: Option<Vec<String>>,
}

/// Which published layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// O-LoRA's `CL_Benchmark/<task type>/<dataset>/{train,dev,test,labels}.json`.
    ClBenchmark,
    /// TRACE's `<task>/{train,eval,test}.json`.
    Trace,
}

impl Layout {
    /// Layout name.
    pub fn name(self) -> &'static str {
        match self {
            Layout::ClBenchmark => "cl-benchmark",
            Layout::Trace => "trace",
        }
    }

    /// Parses [`Layout::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Layout::ClBenchmark, Layout::Trace]
            .into_iter()
            .find(|l| l.name() == name)
    }

    /// Loads one dataset of this layout ([`load_cl_benchmark`] or [`load_trace`]).
    pub fn load(self, root: &Path, dataset: &str) -> Result<InstructionTask> {
        match self {
            Layout::ClBenchmark => load_cl_benchmark(root, dataset),
            Layout::Trace => load_trace(root, dataset),
        }
    }

    /// The model input as the benchmark's code builds it: `instruction + input + "\nAnswer:"` for
    /// `CL_Benchmark`, `instruction + input` (that is, the prompt) for TRACE.
    pub fn prompt(self, example: &InstructionExample) -> String {
        let suffix = match self {
            Layout::ClBenchmark => CL_BENCHMARK_ANSWER_CUE,
            Layout::Trace => "",
        };
        format!("{}{}{suffix}", example.instruction, example.input)
    }
}

/// What O-LoRA appends after the sentence.
pub const CL_BENCHMARK_ANSWER_CUE: &str = "\nAnswer:";

/// Where O-LoRA keeps its instructions, relative to the folder holding `CL_Benchmark`.
pub const CL_BENCHMARK_INSTRUCTION_FILE: &str = "configs/instruction_config.json";

/// The zero-shot instruction of each `CL_Benchmark` task type, as in O-LoRA's
/// `configs/instruction_config.json` (used when that file is not beside the data). COPA has none:
/// its sentences hold the question.
pub const CL_BENCHMARK_INSTRUCTIONS: &[(&str, &str)] = &[
    (
        "NLI",
        "What is the logical relationship between the \"sentence 1\" and the \"sentence 2\"? Choose one from the option.\n",
    ),
    (
        "QQP",
        "Whether the \"first sentence\" and the \"second sentence\" have the same meaning? Choose one from the option.\n",
    ),
    (
        "SC",
        "What is the sentiment of the following paragraph? Choose one from the option.\n",
    ),
    (
        "TC",
        "What is the topic of the following paragraph? Choose one from the option.\n",
    ),
    (
        "BoolQA",
        "According to the following passage, is the question true or false? Choose one from the option.\n",
    ),
    (
        "MultiRC",
        "According to the following passage and question, is the candidate answer true or false? Choose one from the option.\n",
    ),
    (
        "WiC",
        "Given a word and two sentences, whether the word is used with the same sense in both sentence? Choose one from the option.\n",
    ),
];

/// The `CL_Benchmark` task type whose prompt is the bare sentence.
const COPA: &str = "COPA";

/// The `CL_Benchmark` task orders 1-6 (dataset folder names). 1-3: the standard 4-task benchmark;
/// 4-6: the 15-task long sequence.
pub const CL_BENCHMARK_ORDERS: [&[&str]; 6] = [
    &["dbpedia", "amazon", "yahoo", "agnews"],
    &["dbpedia", "amazon", "agnews", "yahoo"],
    &["yahoo", "amazon", "agnews", "dbpedia"],
    &[
        "MNLI", "CB", "WiC", "COPA", "QQP", "BoolQA", "RTE", "IMDB", "yelp", "amazon", "SST-2",
        "dbpedia", "agnews", "MultiRC", "yahoo",
    ],
    &[
        "MultiRC", "BoolQA", "WiC", "MNLI", "CB", "COPA", "QQP", "RTE", "IMDB", "SST-2", "dbpedia",
        "agnews", "yelp", "amazon", "yahoo",
    ],
    &[
        "yelp", "amazon", "MNLI", "CB", "COPA", "QQP", "RTE", "IMDB", "SST-2", "dbpedia", "agnews",
        "yahoo", "MultiRC", "BoolQA", "WiC",
    ],
];

/// TRACE's task order (folder names), as in its training and inference scripts.
pub const TRACE_ORDER: &[&str] = &[
    "C-STANCE",
    "FOMC",
    "MeetingBank",
    "Py150",
    "ScienceQA",
    "NumGLUE-cm",
    "NumGLUE-ds",
    "20Minuten",
];

/// The metric TRACE scores each of its tasks with (its `evaluations/eval_<task>.py`; see
/// [`cl_core::text_metrics`]).
pub const TRACE_METRICS: &[(&str, TextMetric)] = &[
    ("C-STANCE", TextMetric::ExactString),
    ("FOMC", TextMetric::ExactString),
    ("MeetingBank", TextMetric::RougeL),
    ("Py150", TextMetric::CodeSimilarity),
    ("ScienceQA", TextMetric::FirstChar),
    ("NumGLUE-cm", TextMetric::ExactString),
    ("NumGLUE-ds", TextMetric::ExactString),
    ("20Minuten", TextMetric::Sari),
];

/// The metric of the TRACE task `task` ([`TRACE_METRICS`]); errors for another name.
pub fn trace_metric(task: &str) -> Result<TextMetric> {
    TRACE_METRICS
        .iter()
        .find(|(name, _)| *name == task)
        .map(|(_, metric)| *metric)
        .ok_or_else(|| {
            DataError::format(
                task,
                format!(
                    "is not a TRACE task, so it has no metric; TRACE's tasks are {}",
                    TRACE_ORDER.join(", ")
                ),
            )
        })
}

/// Loads the `CL_Benchmark` dataset `dataset` (e.g. `agnews`) from `root`, the `CL_Benchmark`
/// folder: finds `root/<task type>/<dataset>/`, reads `train.json`, `dev.json`, `test.json` and
/// `labels.json` (optional here; O-LoRA requires it), and takes the task type's instruction from
/// `root/../configs/instruction_config.json` when that file exists, else from
/// [`CL_BENCHMARK_INSTRUCTIONS`]. See the module documentation for the layout.
pub fn load_cl_benchmark(root: &Path, dataset: &str) -> Result<InstructionTask> {
    check_name(root, dataset)?;
    let (task_type, dir) = find_cl_dataset(root, dataset)?;
    let labels_path = dir.join("labels.json");
    let labels = if labels_path.is_file() {
        Some(read_labels(&labels_path)?)
    } else {
        None
    };
    let instruction = if task_type == COPA {
        String::new()
    } else {
        let base = cl_instruction(root, &task_type)?;
        match &labels {
            Some(labels) => format!("{base}Option: {} \n", labels.join(", ")),
            None => base,
        }
    };
    let split = |file: &str| read_split(&dir.join(file), "sentence", "label", &instruction);
    Ok(InstructionTask {
        name: dataset.to_string(),
        train: split("train.json")?,
        valid: split("dev.json")?,
        test: split("test.json")?,
        labels,
    })
}

/// Loads the TRACE task `task` (e.g. `FOMC`) from `root/<task>/{train,eval,test}.json`:
/// `prompt` becomes the input, `answer` the output, the instruction is empty (the prompt holds
/// it) and there are no labels.
pub fn load_trace(root: &Path, task: &str) -> Result<InstructionTask> {
    check_name(root, task)?;
    let dir = root.join(task);
    if !dir.is_dir() {
        let available = subdirs(root)?
            .into_iter()
            .map(|(name, _)| name)
            .collect::<Vec<_>>();
        return Err(DataError::format(
            root,
            format!(
                "no TRACE task `{task}` (expected `{task}/{{train,eval,test}}.json` in this folder); available: {}",
                list(&available)
            ),
        ));
    }
    let split = |file: &str| read_split(&dir.join(file), "prompt", "answer", "");
    Ok(InstructionTask {
        name: task.to_string(),
        train: split("train.json")?,
        valid: split("eval.json")?,
        test: split("test.json")?,
        labels: None,
    })
}

/// Loads `tasks` of `layout` from `root`, in the given order.
pub fn load_order(layout: Layout, root: &Path, tasks: &[&str]) -> Result<Vec<InstructionTask>> {
    tasks.iter().map(|task| layout.load(root, task)).collect()
}

/// A closed-label benchmark as a stream of texts to prompt: task `i` is `tasks[i]`, its classes
/// its `labels.json` labels (in the file's order, numbered on from the previous task's), its
/// rows drawn (seeded by `cfg.seed` and the task's position) from the published splits: at most
/// `cfg.train_per_task` from `train`, `cfg.valid_per_task` from the validation split and
/// `cfg.test_per_task` from `test`. The inputs are the examples' `input`s; the second value is
/// each task's instruction (what goes before the input; the first training example's).
///
/// Errors name the dataset when it has no label set (TRACE's free-text answers are not
/// classes), and the dataset, split and index of an answer outside its labels.
pub fn instruction_stream(
    name: &str,
    tasks: Vec<InstructionTask>,
    cfg: &TextStreamConfig,
) -> Result<(TaskStream<String>, Vec<String>)> {
    let mut next_class = 0usize;
    let mut built = Vec::with_capacity(tasks.len());
    let mut instructions = Vec::with_capacity(tasks.len());
    for (id, task) in tasks.into_iter().enumerate() {
        let Some(labels) = task.labels else {
            return Err(DataError::format(
                &task.name,
                "has no label set (labels.json): its answers are free text, not classes",
            ));
        };
        let class_of = |label: &str| labels.iter().position(|l| l == label);
        let mut rng = StdRng::seed_from_u64(mix_seed(cfg.seed, &[id as u64]));
        let mut draw = |split: &str,
                        rows: Vec<InstructionExample>,
                        n: usize|
         -> Result<Vec<Example<String>>> {
            drawn(rows.len(), n, &mut rng)
                .into_iter()
                .map(|i| {
                    let row = &rows[i];
                    let class = class_of(&row.output).ok_or_else(|| {
                        DataError::format(
                            format!("{}/{split}", task.name),
                            format!(
                                "record {i} answers {:?}, which is not one of its labels {labels:?}",
                                row.output
                            ),
                        )
                    })?;
                    Ok(Example {
                        input: row.input.clone(),
                        label: next_class + class,
                        task: id,
                    })
                })
                .collect()
        };
        instructions.push(
            task.train
                .first()
                .map(|e| e.instruction.clone())
                .unwrap_or_default(),
        );
        let train = draw("train", task.train, cfg.train_per_task)?;
        let valid = draw("valid", task.valid, cfg.valid_per_task)?;
        let test = draw("test", task.test, cfg.test_per_task)?;
        built.push(Task {
            info: TaskInfo {
                id,
                name: task.name,
                classes: (next_class..next_class + labels.len()).collect(),
                scenario: cfg.scenario,
                num_train: train.len(),
                labels: labels.clone(),
            },
            train,
            valid,
            test,
        });
        next_class += labels.len();
    }
    let stream = TaskStream::new(name, cfg.scenario, next_class, built).map_err(DataError::from)?;
    Ok((stream, instructions))
}

/// A benchmark with free-text answers (TRACE) as a stream of prompts: task `i` is `tasks[i]`,
/// scored by `metrics[i]`, with `cfg.train_per_task`, `cfg.valid_per_task` and
/// `cfg.test_per_task` rows drawn with a seed from its published splits. The inputs are the
/// prompts ([`Layout::prompt`] of `layout`); each distinct answer text of the stream is one class
/// (its label), so training reads each example's own answer and the runner scores generations
/// against it ([`Scoring::Text`]; the sources of a metric that reads them are the test prompts).
///
/// Errors when the counts of tasks and metrics differ, and name the task whose drawn rows give
/// fewer than two distinct answers.
pub fn free_text_stream(
    name: &str,
    layout: Layout,
    tasks: Vec<InstructionTask>,
    metrics: &[TextMetric],
    cfg: &TextStreamConfig,
) -> Result<TaskStream<String>> {
    if tasks.len() != metrics.len() {
        return Err(DataError::format(
            name,
            format!("{} tasks but {} metrics", tasks.len(), metrics.len()),
        ));
    }
    let mut class_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut built = Vec::with_capacity(tasks.len());
    let mut scoring = Vec::with_capacity(tasks.len());
    for (id, (task, &metric)) in tasks.into_iter().zip(metrics).enumerate() {
        let mut rng = StdRng::seed_from_u64(mix_seed(cfg.seed, &[id as u64]));
        let mut used: BTreeMap<usize, String> = BTreeMap::new();
        let mut draw = |rows: &[InstructionExample], n: usize| -> Vec<Example<String>> {
            drawn(rows.len(), n, &mut rng)
                .into_iter()
                .map(|i| {
                    let row = &rows[i];
                    let next = class_of.len();
                    let label = *class_of.entry(row.output.clone()).or_insert(next);
                    used.insert(label, row.output.clone());
                    Example {
                        input: layout.prompt(row),
                        label,
                        task: id,
                    }
                })
                .collect()
        };
        let train = draw(&task.train, cfg.train_per_task);
        let valid = draw(&task.valid, cfg.valid_per_task);
        let test = draw(&task.test, cfg.test_per_task);
        if used.len() < 2 {
            return Err(DataError::format(
                &task.name,
                format!(
                    "its {} drawn rows have {} distinct answer(s); a task needs at least 2",
                    train.len() + valid.len() + test.len(),
                    used.len()
                ),
            ));
        }
        scoring.push(Scoring::Text {
            metric,
            sources: if metric.needs_source() {
                test.iter().map(|e| e.input.clone()).collect()
            } else {
                Vec::new()
            },
        });
        built.push(Task {
            info: TaskInfo {
                id,
                name: task.name,
                classes: used.keys().copied().collect(),
                scenario: cfg.scenario,
                num_train: train.len(),
                labels: used.into_values().collect(),
            },
            train,
            valid,
            test,
        });
    }
    let stream = TaskStream::new(name, cfg.scenario, class_of.len(), built)
        .and_then(|s| s.with_scoring(scoring))
        .map_err(DataError::from)?;
    Ok(stream)
}

/// `n` of `0..len` in a seeded random order (all of them when `n ≥ len`).
fn drawn(len: usize, n: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(rng);
    order.truncate(n);
    order
}

/// Rejects names that are not a single folder name.
fn check_name(root: &Path, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']) {
        return Err(DataError::format(
            root,
            format!("`{name}` is not a dataset folder name"),
        ));
    }
    Ok(())
}

/// Finds `root/<task type>/<dataset>/`, returning the task type and the folder.
fn find_cl_dataset(root: &Path, dataset: &str) -> Result<(String, PathBuf)> {
    let mut found = Vec::new();
    let mut available = Vec::new();
    for (task_type, type_dir) in subdirs(root)? {
        for (name, dir) in subdirs(&type_dir)? {
            available.push(format!("{task_type}/{name}"));
            if name == dataset {
                found.push((task_type.clone(), dir));
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(DataError::format(
            root,
            format!(
                "no CL_Benchmark dataset `{dataset}` (expected `<task type>/{dataset}/` in this folder); available: {}",
                list(&available)
            ),
        )),
        _ => Err(DataError::format(
            root,
            format!(
                "dataset `{dataset}` is ambiguous: found under task types {}",
                list(&found.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>())
            ),
        )),
    }
}

/// The instruction of `task_type`: from O-LoRA's config file when it is beside `root`, else the
/// built-in copy.
fn cl_instruction(root: &Path, task_type: &str) -> Result<String> {
    let config = instruction_config_path(root);
    if config.is_file() {
        return config_instruction(&config, task_type);
    }
    CL_BENCHMARK_INSTRUCTIONS
        .iter()
        .find(|(t, _)| *t == task_type)
        .map(|(_, text)| text.to_string())
        .ok_or_else(|| {
            DataError::format(
                root,
                format!(
                    "no instruction for task type `{task_type}`: `{}` does not exist and the built-in instructions cover {}",
                    config.display(),
                    list(
                        &CL_BENCHMARK_INSTRUCTIONS
                            .iter()
                            .map(|(t, _)| t.to_string())
                            .collect::<Vec<_>>()
                    )
                ),
            )
        })
}

/// `root/../configs/instruction_config.json`, written without `..` where `root` has a parent.
fn instruction_config_path(root: &Path) -> PathBuf {
    match (root.file_name(), root.parent()) {
        (Some(_), Some(parent)) => parent.join(CL_BENCHMARK_INSTRUCTION_FILE),
        _ => root.join("..").join(CL_BENCHMARK_INSTRUCTION_FILE),
    }
}

/// The first zero-shot instruction of `task_type` in an O-LoRA instruction file.
fn config_instruction(path: &Path, task_type: &str) -> Result<String> {
    let value = read_json(path)?;
    let Some(map) = value.as_object() else {
        return Err(DataError::format(
            path,
            format!(
                "expected a JSON object mapping task types to instruction lists, found {}",
                kind(&value)
            ),
        ));
    };
    let Some(entries) = map.get(task_type) else {
        return Err(DataError::format(
            path,
            format!(
                "has no instructions for task type `{task_type}` (it has {})",
                list(&map.keys().cloned().collect::<Vec<_>>())
            ),
        ));
    };
    let Some(entries) = entries.as_array() else {
        return Err(DataError::format(
            path,
            format!(
                "`{task_type}` is {}, not a list of instructions",
                kind(entries)
            ),
        ));
    };
    let what = format!("`{task_type}` entry");
    for (i, entry) in entries.iter().enumerate() {
        if string_field(path, &what, i, entry, "instruction_type")? == "zero-shot" {
            return string_field(path, &what, i, entry, "instruction");
        }
    }
    Err(DataError::format(
        path,
        format!("`{task_type}` has no zero-shot instruction"),
    ))
}

/// `labels.json`: a non-empty JSON list of strings.
fn read_labels(path: &Path) -> Result<Vec<String>> {
    let value = read_json(path)?;
    let Some(items) = value.as_array() else {
        return Err(DataError::format(
            path,
            format!(
                "expected a JSON list of label strings, found {}",
                kind(&value)
            ),
        ));
    };
    if items.is_empty() {
        return Err(DataError::format(path, "has no labels"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(DataError::format(
                path,
                format!("label {i} (0-based) is {}, not a string", kind(other)),
            )),
        })
        .collect()
}

/// One split file: a non-empty JSON list of objects with string `input_key` and `output_key`.
fn read_split(
    path: &Path,
    input_key: &str,
    output_key: &str,
    instruction: &str,
) -> Result<Vec<InstructionExample>> {
    let value = read_json(path)?;
    let Some(records) = value.as_array() else {
        return Err(DataError::format(
            path,
            format!("expected a JSON list of records, found {}", kind(&value)),
        ));
    };
    if records.is_empty() {
        return Err(DataError::format(path, "has no records (empty split)"));
    }
    records
        .iter()
        .enumerate()
        .map(|(i, record)| -> Result<InstructionExample> {
            Ok(InstructionExample {
                instruction: instruction.to_string(),
                input: string_field(path, "record", i, record, input_key)?,
                output: string_field(path, "record", i, record, output_key)?,
            })
        })
        .collect()
}

/// The string under `key` of the `index`-th object (`what` names the kind of entry).
fn string_field(path: &Path, what: &str, index: usize, value: &Value, key: &str) -> Result<String> {
    let Some(object) = value.as_object() else {
        return Err(DataError::format(
            path,
            format!(
                "{what} {index} (0-based) is {}, not a JSON object",
                kind(value)
            ),
        ));
    };
    match object.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(DataError::format(
            path,
            format!(
                "{what} {index} (0-based): key `{key}` is {}, not a string",
                kind(other)
            ),
        )),
        None => Err(DataError::format(
            path,
            format!("{what} {index} (0-based): missing key `{key}`"),
        )),
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).map_err(|e| DataError::io("reading", path, e))?;
    serde_json::from_str(&text).map_err(|e| DataError::format(path, format!("not valid JSON: {e}")))
}

/// The sub-folders of `dir` with UTF-8 names, sorted by name.
fn subdirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DataError::io("listing", dir, e))? {
        let entry = entry.map_err(|e| DataError::io("listing", dir, e))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if !name.starts_with('.') {
            out.push((name.to_string(), path));
        }
    }
    out.sort();
    Ok(out)
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name)
    }

    fn cl_root() -> PathBuf {
        fixture("cl_benchmark/CL_Benchmark")
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// A `CL_Benchmark/TC/agnews` folder in a temporary directory with valid files.
    fn temp_cl() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("CL_Benchmark");
        let dir = root.join("TC").join("agnews");
        let records = r#"[{"label": "World", "sentence": "Title: A\nText: B\n"}]"#;
        for split in ["train.json", "dev.json", "test.json"] {
            write(&dir.join(split), records);
        }
        write(&dir.join("labels.json"), r#"["World", "Sports"]"#);
        (tmp, root)
    }

    #[test]
    fn cl_benchmark_datasets_load_with_instructions_and_labels() {
        let agnews = load_cl_benchmark(&cl_root(), "agnews").unwrap();
        assert_eq!(agnews.name, "agnews");
        assert_eq!(
            (agnews.train.len(), agnews.valid.len(), agnews.test.len()),
            (4, 2, 3)
        );
        assert_eq!(
            agnews.labels.as_deref().unwrap(),
            ["World", "Sports", "Business", "Science or Technology"]
        );
        let first = &agnews.train[0];
        assert_eq!(
            first.instruction,
            "What is the topic of the following paragraph? Choose one from the option.\n\
             Option: World, Sports, Business, Science or Technology \n"
        );
        assert_eq!(
            first.input,
            "Title: Town opens a new library\nText: The small town opened its first public library on Monday.\n"
        );
        assert_eq!(first.output, "World");
        assert_eq!(agnews.test[2].output, "Science or Technology");
        let prompt = Layout::ClBenchmark.prompt(first);
        assert!(
            prompt.starts_with("What is the topic")
                && prompt.contains("Option: World, Sports")
                && prompt.ends_with("on Monday.\n\nAnswer:"),
            "{prompt:?}"
        );

        let amazon = load_cl_benchmark(&cl_root(), "amazon").unwrap();
        assert_eq!(
            (amazon.train.len(), amazon.valid.len(), amazon.test.len()),
            (3, 2, 2)
        );
        assert_eq!(amazon.labels.as_ref().unwrap().len(), 5);
        assert!(
            amazon.train[0]
                .instruction
                .starts_with("What is the sentiment of the following paragraph?"),
            "{:?}",
            amazon.train[0].instruction
        );
        assert_eq!(amazon.train[0].output, "very positive");
        assert!(amazon.valid[1].input.starts_with("Title: "));
    }

    #[test]
    fn cl_benchmark_builtin_instructions_match_the_config_file() {
        // Without `configs/instruction_config.json` beside the data the built-in copy is used;
        // it must give what the (O-LoRA) file in the fixture gives.
        let (_tmp, root) = temp_cl();
        let builtin = load_cl_benchmark(&root, "agnews").unwrap();
        assert_eq!(
            builtin.train[0].instruction,
            "What is the topic of the following paragraph? Choose one from the option.\n\
             Option: World, Sports \n"
        );
        for (task_type, text) in CL_BENCHMARK_INSTRUCTIONS {
            let from_file = config_instruction(
                &fixture("cl_benchmark/configs/instruction_config.json"),
                task_type,
            )
            .unwrap();
            assert_eq!(from_file, *text, "{task_type}");
        }
    }

    #[test]
    fn cl_benchmark_reads_the_instruction_file_beside_the_data() {
        let (tmp, root) = temp_cl();
        let config = tmp.path().join(CL_BENCHMARK_INSTRUCTION_FILE);
        write(
            &config,
            r#"{"TC": [{"instruction_type": "few-shot", "instruction": "no"},
                       {"instruction_type": "zero-shot", "instruction": "Name the topic.\n"}]}"#,
        );
        let task = load_cl_benchmark(&root, "agnews").unwrap();
        assert_eq!(
            task.train[0].instruction,
            "Name the topic.\nOption: World, Sports \n"
        );
        write(&config, r#"{"SC": []}"#);
        let err = load_cl_benchmark(&root, "agnews").unwrap_err().to_string();
        assert!(
            err.contains("instruction_config.json") && err.contains("`TC`"),
            "{err}"
        );
    }

    #[test]
    fn copa_prompt_is_the_bare_sentence() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("CL_Benchmark").join("COPA").join("COPA");
        let records = r#"[{"label": "A", "sentence": "Which is the cause? A: x B: y"}]"#;
        for split in ["train.json", "dev.json", "test.json"] {
            write(&dir.join(split), records);
        }
        write(&dir.join("labels.json"), r#"["A", "B"]"#);
        let task = load_cl_benchmark(&tmp.path().join("CL_Benchmark"), "COPA").unwrap();
        assert_eq!(task.train[0].instruction, "");
        assert_eq!(
            Layout::ClBenchmark.prompt(&task.train[0]),
            "Which is the cause? A: x B: y\nAnswer:"
        );
        assert_eq!(task.labels.unwrap(), ["A", "B"]);
    }

    #[test]
    fn trace_tasks_load_prompt_and_answer() {
        let root = fixture("trace");
        let fomc = load_trace(&root, "FOMC").unwrap();
        assert_eq!(
            (fomc.train.len(), fomc.valid.len(), fomc.test.len()),
            (3, 2, 2)
        );
        assert_eq!(fomc.labels, None);
        let first = &fomc.train[0];
        assert_eq!(first.instruction, "");
        assert!(
            first
                .input
                .starts_with("What is the monetary policy stance for the following text?")
                && first.input.ends_with("\nStance:"),
            "{:?}",
            first.input
        );
        assert_eq!(first.output, "dovish");
        assert_eq!(Layout::Trace.prompt(first), first.input);

        let meetings = load_trace(&root, "MeetingBank").unwrap();
        assert_eq!(
            (
                meetings.train.len(),
                meetings.valid.len(),
                meetings.test.len()
            ),
            (2, 2, 2)
        );
        assert!(meetings.test[1].input.ends_with("\nSummary:"));
        assert!(!meetings.test[1].output.is_empty());
    }

    #[test]
    fn orders_are_permutations_and_load_in_order() {
        let lens: Vec<usize> = CL_BENCHMARK_ORDERS.iter().map(|o| o.len()).collect();
        assert_eq!(lens, [4, 4, 4, 15, 15, 15]);
        fn sorted(order: &[&'static str]) -> Vec<&'static str> {
            let mut v = order.to_vec();
            v.sort_unstable();
            v
        }
        for order in &CL_BENCHMARK_ORDERS[1..3] {
            assert_eq!(sorted(order), sorted(CL_BENCHMARK_ORDERS[0]));
        }
        for order in &CL_BENCHMARK_ORDERS[4..] {
            assert_eq!(sorted(order), sorted(CL_BENCHMARK_ORDERS[3]));
        }
        let long = sorted(CL_BENCHMARK_ORDERS[3]);
        assert!(long.windows(2).all(|w| w[0] != w[1]), "no repeats");
        assert!(CL_BENCHMARK_ORDERS[0].iter().all(|t| long.contains(t)));
        assert_eq!(TRACE_ORDER.len(), 8);

        // Order 1 restricted to the fixture's datasets: amazon before agnews.
        let order: Vec<&str> = CL_BENCHMARK_ORDERS[0]
            .iter()
            .copied()
            .filter(|t| ["agnews", "amazon"].contains(t))
            .collect();
        let tasks = load_order(Layout::ClBenchmark, &cl_root(), &order).unwrap();
        let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["amazon", "agnews"]);

        let order: Vec<&str> = TRACE_ORDER
            .iter()
            .copied()
            .filter(|t| ["FOMC", "MeetingBank"].contains(t))
            .collect();
        let tasks = load_order(Layout::Trace, &fixture("trace"), &order).unwrap();
        let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["FOMC", "MeetingBank"]);
        assert_eq!(Layout::from_name(Layout::Trace.name()), Some(Layout::Trace));
        assert_eq!(
            Layout::from_name(Layout::ClBenchmark.name()),
            Some(Layout::ClBenchmark)
        );
    }

    #[test]
    fn missing_datasets_are_named_with_the_available_ones() {
        let err = load_cl_benchmark(&cl_root(), "yahoo")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`yahoo`") && err.contains("SC/amazon") && err.contains("TC/agnews"),
            "{err}"
        );
        let err = load_trace(&fixture("trace"), "Py150")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`Py150`") && err.contains("FOMC, MeetingBank"),
            "{err}"
        );
        let err = load_order(Layout::Trace, &fixture("trace"), &["FOMC", "C-STANCE"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`C-STANCE`"), "{err}");
        let err = load_trace(&fixture("trace"), "../trace")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a dataset folder name"), "{err}");
        let err = load_cl_benchmark(Path::new("/nonexistent/CL_Benchmark"), "agnews")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/CL_Benchmark"), "{err}");
    }

    #[test]
    fn bad_records_name_file_index_and_key() {
        let (_tmp, root) = temp_cl();
        let train = root.join("TC/agnews/train.json");
        write(
            &train,
            r#"[{"label": "World", "sentence": "ok"}, {"sentence": "no label"}]"#,
        );
        let err = load_cl_benchmark(&root, "agnews").unwrap_err().to_string();
        assert!(
            err.contains("TC/agnews/train.json")
                && err.contains("record 1 ")
                && err.contains("missing key `label`"),
            "{err}"
        );
        write(&train, r#"[{"label": 3, "sentence": "ill-typed"}]"#);
        let err = load_cl_benchmark(&root, "agnews").unwrap_err().to_string();
        assert!(
            err.contains("record 0 ") && err.contains("`label` is a number"),
            "{err}"
        );
        write(&train, r#"{"label": "World"}"#);
        let err = load_cl_benchmark(&root, "agnews").unwrap_err().to_string();
        assert!(err.contains("JSON list"), "{err}");
        write(&train, r#"[{"label": "World""#);
        let err = load_cl_benchmark(&root, "agnews").unwrap_err().to_string();
        assert!(err.contains("not valid JSON"), "{err}");
        write(&train, "[]");
        let err = load_cl_benchmark(&root, "agnews").unwrap_err().to_string();
        assert!(err.contains("train.json") && err.contains("empty"), "{err}");
        write(&train, r#"[{"label": "World", "sentence": "ok"}]"#);
        write(&root.join("TC/agnews/labels.json"), r#"["World", null]"#);
        let err = load_cl_benchmark(&root, "agnews").unwrap_err().to_string();
        assert!(
            err.contains("labels.json") && err.contains("label 1 "),
            "{err}"
        );

        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("FOMC");
        write(
            &dir.join("train.json"),
            r#"[{"prompt": "p", "answer": "a"}]"#,
        );
        write(
            &dir.join("eval.json"),
            r#"[{"prompt": "p", "answer": "a"}]"#,
        );
        write(
            &dir.join("test.json"),
            r#"[{"prompt": "p", "answer": "a"}, {"prompt": "p", "answer": "a"}, {"answer": "a"}]"#,
        );
        let err = load_trace(tmp.path(), "FOMC").unwrap_err().to_string();
        assert!(
            err.contains("FOMC/test.json")
                && err.contains("record 2 ")
                && err.contains("missing key `prompt`"),
            "{err}"
        );
    }

    #[test]
    fn a_closed_label_order_becomes_a_stream_of_its_published_splits() {
        let root = fixture("cl_benchmark/CL_Benchmark");
        let tasks = load_order(Layout::ClBenchmark, &root, &["agnews", "amazon"]).unwrap();
        let cfg = TextStreamConfig {
            train_per_task: 3,
            valid_per_task: 1,
            test_per_task: 100,
            ..TextStreamConfig::default()
        };
        let (stream, instructions) = instruction_stream("cl", tasks.clone(), &cfg).unwrap();
        assert_eq!(stream.num_tasks(), 2);
        let agnews = &stream.tasks()[0];
        assert_eq!(agnews.info.labels, tasks[0].labels.clone().unwrap());
        assert_eq!(agnews.info.classes, vec![0, 1, 2, 3]);
        assert_eq!((agnews.train.len(), agnews.valid.len()), (3, 1));
        // All 3 test records, each labelled with its answer's class.
        assert_eq!(agnews.test.len(), tasks[0].test.len());
        for e in &agnews.test {
            let row = tasks[0].test.iter().find(|r| r.input == e.input).unwrap();
            assert_eq!(agnews.info.labels[e.label], row.output);
        }
        let amazon = &stream.tasks()[1];
        assert_eq!(amazon.info.classes[0], 4);
        assert!(amazon.test.iter().all(|e| e.label >= 4 && e.task == 1));
        assert_eq!(instructions[0], tasks[0].train[0].instruction);
        // The same seed draws the same rows.
        let (again, _) = instruction_stream("cl", tasks.clone(), &cfg).unwrap();
        let inputs = |s: &TaskStream<String>| -> Vec<String> {
            s.tasks()[0].train.iter().map(|e| e.input.clone()).collect()
        };
        assert_eq!(inputs(&again), inputs(&stream));
        // An answer outside the labels, and a task without labels, are named.
        let mut bad = tasks.clone();
        bad[1].test[1].output = "meh".into();
        let err = instruction_stream("cl", bad, &cfg).unwrap_err().to_string();
        assert!(
            err.contains("amazon/test") && err.contains("\"meh\""),
            "{err}"
        );
        let trace = load_order(Layout::Trace, &fixture("trace"), &["FOMC"]).unwrap();
        let err = instruction_stream("t", trace, &cfg)
            .unwrap_err()
            .to_string();
        assert!(err.contains("FOMC") && err.contains("free text"), "{err}");
    }

    #[test]
    fn trace_tasks_become_a_free_text_stream_scored_by_their_metrics() {
        let names = ["FOMC", "MeetingBank"];
        let tasks = load_order(Layout::Trace, &fixture("trace"), &names).unwrap();
        let metrics: Vec<TextMetric> = names.iter().map(|n| trace_metric(n).unwrap()).collect();
        assert_eq!(metrics, [TextMetric::ExactString, TextMetric::RougeL]);
        let cfg = TextStreamConfig {
            train_per_task: 100,
            valid_per_task: 100,
            test_per_task: 100,
            ..TextStreamConfig::default()
        };
        let stream =
            free_text_stream("trace", Layout::Trace, tasks.clone(), &metrics, &cfg).unwrap();
        assert_eq!(stream.num_tasks(), 2);
        // FOMC answers dovish / hawkish / neutral; MeetingBank has six distinct summaries.
        assert_eq!(stream.num_classes(), 3 + 6);
        for (task, rows) in stream.tasks().iter().zip(&tasks) {
            assert_eq!(task.test.len(), rows.test.len());
            for e in task.train.iter().chain(&task.test) {
                let row = rows
                    .train
                    .iter()
                    .chain(&rows.test)
                    .find(|r| r.input == e.input)
                    .unwrap();
                let k = task.info.classes.binary_search(&e.label).unwrap();
                assert_eq!(task.info.labels[k], row.output);
            }
        }
        assert_eq!(
            stream.scoring(1),
            &Scoring::Text {
                metric: TextMetric::RougeL,
                sources: Vec::new()
            }
        );
        // SARI reads each test prompt as its source.
        let sari = [TextMetric::ExactString, TextMetric::Sari];
        let stream = free_text_stream("trace", Layout::Trace, tasks.clone(), &sari, &cfg).unwrap();
        let Scoring::Text { sources, .. } = stream.scoring(1) else {
            panic!("text scoring")
        };
        let prompts: Vec<&String> = stream.tasks()[1].test.iter().map(|e| &e.input).collect();
        assert_eq!(sources.iter().collect::<Vec<_>>(), prompts);
        // A task whose rows all give one answer, and a name outside TRACE, are errors.
        let mut same = tasks.clone();
        let fomc = &mut same[0];
        for row in fomc
            .train
            .iter_mut()
            .chain(&mut fomc.valid)
            .chain(&mut fomc.test)
        {
            row.output = "dovish".into();
        }
        let err = free_text_stream("t", Layout::Trace, same, &metrics, &cfg)
            .unwrap_err()
            .to_string();
        assert!(err.contains("FOMC") && err.contains("1 distinct"), "{err}");
        let err = trace_metric("MNLI").unwrap_err().to_string();
        assert!(err.contains("MNLI") && err.contains("20Minuten"), "{err}");
    }

    #[test]
    fn missing_split_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("MeetingBank");
        write(
            &dir.join("train.json"),
            r#"[{"prompt": "p", "answer": "a"}]"#,
        );
        let err = load_trace(tmp.path(), "MeetingBank")
            .unwrap_err()
            .to_string();
        assert!(err.contains("MeetingBank/eval.json"), "{err}");

        let (_tmp, root) = temp_cl();
        fs::remove_file(root.join("TC/agnews/dev.json")).unwrap();
        let err = load_cl_benchmark(&root, "agnews").unwrap_err().to_string();
        assert!(err.contains("TC/agnews/dev.json"), "{err}");

        // labels.json is optional here: without it there is no label set and no option line.
        let (_tmp, root) = temp_cl();
        fs::remove_file(root.join("TC/agnews/labels.json")).unwrap();
        let task = load_cl_benchmark(&root, "agnews").unwrap();
        assert_eq!(task.labels, None);
        assert!(!task.train[0].instruction.contains("Option:"));
    }
}
