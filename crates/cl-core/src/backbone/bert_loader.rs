//! Loading Hugging Face `BertModel` checkpoints (`model.safetensors` + `config.json`) into
//! [`BertEncoder`] through burn-store, with the one table of name remaps below.
//!
//! burn-store's `PyTorchToBurnAdapter` transposes linear weights (`[out, in]` → `[in, out]`) and
//! maps LayerNorm `weight`/`bias` to `gamma`/`beta`; the table maps the module paths.

use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_store::{ApplyError, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};

use super::bert::{BertConfig, BertEncoder};
use crate::checkpoint::read_json;
use crate::error::{ClError, Result};

/// Hugging Face name (regex) → our module path. Every name of a `BertModel` checkpoint that we
/// use is covered; `embeddings.position_ids` and `pooler.*` are not used.
pub const BERT_KEY_REMAP: [(&str, &str); 8] = [
    (
        r"^embeddings\.LayerNorm\.(weight|bias)$",
        "embeddings.layer_norm.$1",
    ),
    (
        r"^embeddings\.(word|position|token_type)_embeddings\.weight$",
        "embeddings.${1}_embeddings.weight",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.(weight|bias)$",
        "layers.$1.attention.$2.base.$3",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)$",
        "layers.$1.attention.output.base.$2",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.(weight|bias)$",
        "layers.$1.attention.output_norm.$2",
    ),
    (
        r"^encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)$",
        "layers.$1.intermediate.base.$2",
    ),
    (
        r"^encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)$",
        "layers.$1.output.base.$2",
    ),
    (
        r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.(weight|bias)$",
        "layers.$1.output_norm.$2",
    ),
];

/// Reads `config.json` (errors name the file and the bad field).
pub fn read_bert_config(path: &Path) -> Result<BertConfig> {
    let cfg: BertConfig = read_json(path)?;
    cfg.validate().map_err(|e| match e {
        ClError::InvalidConfig { field, reason } => ClError::InvalidConfig {
            field: format!("{}: {field}", path.display()),
            reason,
        },
        other => other,
    })?;
    Ok(cfg)
}

/// Builds the encoder `config` describes and fills it from `weights` (safetensors). Every
/// parameter must be present with the right shape; the result is frozen.
pub fn load_bert<B: Backend>(
    weights: &Path,
    config: &Path,
    device: &B::Device,
) -> Result<BertEncoder<B>> {
    let cfg = read_bert_config(config)?;
    let mut encoder = cfg.init::<B>(device)?;
    if !weights.is_file() {
        return Err(ClError::io(
            "reading weights",
            weights,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    // F16 / BF16 files are read as f32; non-finite values are refused, naming the tensor.
    let bytes = crate::weights::f32_safetensors(weights)?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .with_from_adapter(PyTorchToBurnAdapter)
        .validate(false)
        .allow_partial(true);
    for (from, to) in BERT_KEY_REMAP {
        store = store.with_key_remapping(from, to);
    }
    let result = encoder.load_from(&mut store).map_err(|e| ClError::Record {
        path: weights.to_path_buf(),
        reason: e.to_string(),
    })?;
    if let Some(err) = result.errors.first() {
        return Err(match err {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => ClError::ShapeMismatch {
                tensor: format!(
                    "{path} (in `{}`, config `{}`)",
                    weights.display(),
                    config.display()
                ),
                expected: expected.to_vec(),
                actual: found.to_vec(),
            },
            other => ClError::Record {
                path: weights.to_path_buf(),
                reason: format!("{other:?}"),
            },
        });
    }
    if let Some((path, _)) = result.missing.first() {
        return Err(ClError::MissingTensor {
            tensor: path.clone(),
            context: format!(
                " in `{}` ({} of the encoder's tensors are absent)",
                weights.display(),
                result.missing.len()
            ),
        });
    }
    // burn-store lists names before its adapter renames LayerNorm `weight` / `bias` to
    // `gamma` / `beta`: such a name counts as used when its renamed tensor was applied.
    let applied: std::collections::HashSet<&str> =
        result.applied.iter().map(String::as_str).collect();
    let renamed_and_applied = |name: &str| {
        [(".weight", ".gamma"), (".bias", ".beta")]
            .iter()
            .any(|(from, to)| {
                name.strip_suffix(from)
                    .is_some_and(|stem| applied.contains(format!("{stem}{to}").as_str()))
            })
    };
    let unused: Vec<&String> = result
        .unused
        .iter()
        .filter(|name| !BERT_UNUSED.iter().any(|prefix| name.starts_with(prefix)))
        .filter(|name| !renamed_and_applied(name))
        .collect();
    if !unused.is_empty() {
        let shown: Vec<String> = unused.iter().take(6).map(|n| format!("`{n}`")).collect();
        return Err(ClError::Record {
            path: weights.to_path_buf(),
            reason: format!(
                "{} tensors in the file are not used by the encoder that `{}` describes ({} layers), e.g. {}{}: the config and the weights do not belong together",
                unused.len(),
                config.display(),
                cfg.num_hidden_layers,
                shown.join(", "),
                if unused.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            ),
        });
    }
    Ok(encoder.no_grad())
}

/// Tensors of a `BertModel` checkpoint that the encoder does not use (by name prefix).
const BERT_UNUSED: [&str; 2] = ["embeddings.position_ids", "pooler."];
