//! `cl export` and `cl prune-model`: prepared text streams and a smaller MiniLM for a machine
//! that has neither the raw datasets, nor the tokenizer, nor room for the full model (the GPU
//! bundle, docs/benchmarks.md). `cl run --stream-file <file> --model-dir <dir>` runs on them and
//! computes what the same run from the cache computes (bit for bit with `--store f32`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cl_core::backbone::TokenIds;
use cl_core::backbone::bert_vocab::{StoreDtype, VocabularyMap, write_pruned_bert};
use cl_core::stream::file::{StreamMeta, load_stream, save_stream};
use cl_data::manifest::MINILM;
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::run::text_streams;
use crate::streams::{SizeArgs, StreamName, minilm_dir, tokenized_text_stream};

/// Arguments of `cl export`.
#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Text stream.
    #[arg(long, value_enum, default_value_t = StreamName::Text5)]
    stream: StreamName,
    /// Sizes and seed, as `cl run`'s (a run on the file must use the same `--seed`).
    #[command(flatten)]
    sizes: SizeArgs,
    /// The stream file to write (JSON).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `cl export`: the stream as `cl run` would build it (in the stream's own task order;
/// `--order` applies when a run reads it), tokenized, written with how it was made.
pub fn export(args: &ExportArgs) -> Result<()> {
    let Some(kind) = args.stream.text_kind() else {
        bail!(
            "cl export writes text streams ({}), not `{}`",
            text_streams().join(", "),
            args.stream.name()
        );
    };
    args.sizes.check()?;
    let sizes = args.sizes.preset.sizes(args.stream.backbone());
    let max_len = args.sizes.max_len.unwrap_or(sizes.max_len);
    crate::fetch::ensure(args.stream.packages())?;
    let cfg = args
        .sizes
        .split(sizes, args.stream.scenario(args.sizes.task_incremental));
    let cache = cl_data::fetch::cache_dir();
    let stream = tokenized_text_stream(kind, &cache, &cfg, max_len)?;
    let mut meta: StreamMeta = BTreeMap::new();
    meta.insert("stream".into(), args.stream.name().into());
    meta.insert("preset".into(), args.sizes.preset.name().into());
    meta.insert("train_per_task".into(), cfg.train_per_task.into());
    meta.insert("test_per_task".into(), cfg.test_per_task.into());
    meta.insert("max_len".into(), max_len.into());
    meta.insert("epochs".into(), sizes.epochs.into());
    meta.insert("seed".into(), args.sizes.seed.into());
    meta.insert(
        "tokenizer.sha256".into(),
        cl_data::fetch::sha256_file(&minilm_dir(&cache).join("tokenizer.json"))?.into(),
    );
    for pkg in args.stream.packages() {
        meta.insert(
            format!("data.{}", pkg.id),
            format!("{} sha256:{}", pkg.spec, pkg.sha256).into(),
        );
    }
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating `{}`", parent.display()))?;
    }
    save_stream(&stream, &meta, &args.out)?;
    let examples: usize = stream
        .tasks()
        .iter()
        .map(|t| t.train.len() + t.valid.len() + t.test.len())
        .sum();
    println!(
        "wrote {} ({} tasks, {examples} examples, {max_len} tokens)",
        args.out.display(),
        stream.num_tasks()
    );
    Ok(())
}

/// How `cl prune-model` stores the copy's floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Store {
    /// Half the bytes; the loader reads them back as f32 (values rounded to f16).
    F16,
    /// Exact: runs compute bit for bit what the full model computes.
    F32,
}

/// Arguments of `cl prune-model`.
#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    /// Stream files written by `cl export` whose token ids the copy must cover.
    #[arg(long, num_args = 1.., required = true)]
    streams: Vec<PathBuf>,
    /// Output directory: `model.safetensors`, `config.json`, and each stream file with its token
    /// ids renumbered for the copy (same file names).
    #[arg(long)]
    out: PathBuf,
    /// How the copy stores its float tensors.
    #[arg(long, value_enum, default_value = "f16")]
    store: Store,
}

/// Runs `cl prune-model`: MiniLM with only the word embeddings the streams use.
pub fn prune(args: &PruneArgs) -> Result<()> {
    let mut streams = Vec::new();
    for path in &args.streams {
        let (stream, meta) = load_stream::<TokenIds>(path)?;
        if meta.contains_key("vocabulary") {
            bail!(
                "stream file `{}` already has pruned token ids ({}): prune from the files `cl export` wrote",
                path.display(),
                meta["vocabulary"]
            );
        }
        let name = path
            .file_name()
            .with_context(|| format!("`{}` has no file name", path.display()))?;
        let dst = args.out.join(name);
        if dst.canonicalize().ok() == Some(path.canonicalize()?) {
            bail!(
                "--out `{}` would overwrite the input `{}`",
                args.out.display(),
                path.display()
            );
        }
        if streams.iter().any(|(d, _, _): &(PathBuf, _, _)| d == &dst) {
            bail!(
                "two --streams share the file name `{}`",
                name.to_string_lossy()
            );
        }
        streams.push((dst, stream, meta));
    }
    let map = VocabularyMap::new(streams.iter().flat_map(|(_, stream, _)| {
        stream
            .tasks()
            .iter()
            .flat_map(|t| t.train.iter().chain(&t.valid).chain(&t.test))
            .flat_map(|e| e.input.iter().copied())
    }));
    crate::fetch::ensure(&[MINILM])?;
    let src = minilm_dir(&cl_data::fetch::cache_dir());
    let store = match args.store {
        Store::F16 => StoreDtype::F16,
        Store::F32 => StoreDtype::F32,
    };
    let bytes = write_pruned_bert(
        &src.join("model.safetensors"),
        &src.join("config.json"),
        &map,
        store,
        &args.out,
    )?;
    let weights_sha = cl_data::fetch::sha256_file(&args.out.join("model.safetensors"))?;
    let vocabulary: Value = format!(
        "{} of MiniLM's ids, {:?}, model.safetensors sha256:{weights_sha}",
        map.len(),
        args.store
    )
    .into();
    for (dst, stream, mut meta) in streams {
        let remapped = stream.map_inputs(|inputs| {
            inputs
                .iter()
                .map(|ids| map.remap(ids))
                .collect::<cl_core::Result<Vec<_>>>()
        })?;
        meta.insert("vocabulary".into(), vocabulary.clone());
        save_stream(&remapped, &meta, &dst)?;
        println!("wrote {}", dst.display());
    }
    println!(
        "wrote {} ({} of MiniLM's token ids, {:?}: {:.1} MB)",
        args.out.join("model.safetensors").display(),
        map.len(),
        args.store,
        bytes as f64 / 1e6
    );
    Ok(())
}
