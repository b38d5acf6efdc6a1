//! A smaller copy of a BERT checkpoint for a known set of inputs (the GPU bundle): the
//! word-embedding table cut to the token ids some streams use, renumbered in ascending order of
//! the original ids (so `[PAD]` = 0, which padding relies on, stays 0), every float tensor
//! optionally stored as f16 (the loader reads it back as f32). On inputs remapped with the same
//! [`VocabularyMap`], an f32 copy computes exactly what the full model does: an embedding lookup
//! is a row gather.

use std::collections::BTreeSet;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{ClError, Result};
use crate::weights::{float_values, is_float};

/// The token ids kept, in ascending order; position = the new id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VocabularyMap {
    kept: Vec<u32>,
}

impl VocabularyMap {
    /// Keeps `used` and id 0 (padding).
    pub fn new(used: impl IntoIterator<Item = u32>) -> Self {
        let mut set: BTreeSet<u32> = used.into_iter().collect();
        set.insert(0);
        Self {
            kept: set.into_iter().collect(),
        }
    }

    /// Number of ids kept (the new vocabulary size).
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Always `false`: id 0 is always kept.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The kept original ids, ascending (`kept()[new] = old`).
    pub fn kept(&self) -> &[u32] {
        &self.kept
    }

    /// `ids` in the new numbering; an id that was not kept is an error naming it.
    pub fn remap(&self, ids: &[u32]) -> Result<Vec<u32>> {
        ids.iter()
            .map(|id| {
                self.kept.binary_search(id).map(|i| i as u32).map_err(|_| {
                    ClError::config(
                        "token id",
                        format!("{id} is not in the pruned vocabulary of {} ids", self.len()),
                    )
                })
            })
            .collect()
    }
}

/// How the copy stores its float tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreDtype {
    /// As f32 (exact).
    F32,
    /// As f16 (half the bytes; read back as f32).
    F16,
}

/// Writes `out_dir/model.safetensors` and `out_dir/config.json`: the checkpoint `weights` +
/// `config` with the word-embedding table (`*word_embeddings.weight`, `[vocab, d]`) cut to
/// `map`'s rows and `vocab_size` set to their number. Returns the bytes written for the weights.
pub fn write_pruned_bert(
    weights: &Path,
    config: &Path,
    map: &VocabularyMap,
    dtype: StoreDtype,
    out_dir: &Path,
) -> Result<u64> {
    let bytes = std::fs::read(weights).map_err(|e| ClError::io("reading weights", weights, e))?;
    let bad = |reason: String| ClError::Record {
        path: weights.to_path_buf(),
        reason,
    };
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut found = false;
    for (name, view) in file.tensors() {
        let shape = view.shape().to_vec();
        if !is_float(view.dtype()) {
            tensors.push((name, view.dtype(), shape, view.data().to_vec()));
            continue;
        }
        let mut values = float_values(weights, &name, &view)?;
        let mut shape = shape;
        if name.ends_with("word_embeddings.weight") {
            let [vocab, d] = shape[..] else {
                return Err(bad(format!(
                    "`{name}` has shape {shape:?}, expected [vocab, d]"
                )));
            };
            if let Some(&last) = map.kept().last()
                && last as usize >= vocab
            {
                return Err(bad(format!(
                    "token id {last} is outside `{name}` ({vocab} rows)"
                )));
            }
            values = map
                .kept()
                .iter()
                .flat_map(|&id| {
                    values[id as usize * d..(id as usize + 1) * d]
                        .iter()
                        .copied()
                })
                .collect();
            shape = vec![map.len(), d];
            found = true;
        }
        let (dtype, raw) = match dtype {
            StoreDtype::F32 => (
                Dtype::F32,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            StoreDtype::F16 => (
                Dtype::F16,
                values
                    .iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                    .collect(),
            ),
        };
        tensors.push((name, dtype, shape, raw));
    }
    if !found {
        return Err(bad("no `word_embeddings.weight` tensor to prune".into()));
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, raw)| {
            TensorView::new(*dtype, shape.clone(), raw)
                .map(|v| (name.clone(), v))
                .map_err(|e| bad(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let out = safetensors::serialize(views, None).map_err(|e| bad(e.to_string()))?;
    std::fs::create_dir_all(out_dir).map_err(|e| ClError::io("creating", out_dir, e))?;
    let dst = out_dir.join("model.safetensors");
    std::fs::write(&dst, &out).map_err(|e| ClError::io("writing weights", &dst, e))?;

    let text = std::fs::read_to_string(config).map_err(|e| ClError::io("reading", config, e))?;
    let mut cfg: serde_json::Value = serde_json::from_str(&text).map_err(|e| ClError::Record {
        path: config.to_path_buf(),
        reason: format!("not JSON: {e}"),
    })?;
    let Some(obj) = cfg.as_object_mut() else {
        return Err(ClError::Record {
            path: config.to_path_buf(),
            reason: "not a JSON object".into(),
        });
    };
    obj.insert("vocab_size".into(), map.len().into());
    let dst_cfg = out_dir.join("config.json");
    std::fs::write(
        &dst_cfg,
        serde_json::to_string_pretty(&cfg).unwrap_or_default(),
    )
    .map_err(|e| ClError::io("writing", &dst_cfg, e))?;
    Ok(out.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_keeps_padding_and_names_missing_ids() {
        let map = VocabularyMap::new([7, 3, 7, 12]);
        assert_eq!(map.kept(), &[0, 3, 7, 12]);
        assert_eq!(map.remap(&[0, 12, 3, 7]).unwrap(), vec![0, 3, 1, 2]);
        let err = map.remap(&[5]).unwrap_err().to_string();
        assert!(err.contains('5') && err.contains("4 ids"), "{err}");
    }

    #[test]
    fn rows_are_gathered_and_stored_in_the_chosen_dtype() {
        let dir = tempfile::tempdir().unwrap();
        // A "checkpoint": a 4 × 2 embedding table and one other tensor.
        let table: Vec<f32> = (0..8).map(|v| v as f32 + 0.1).collect();
        let other = [1.0f32, -2.0];
        let raw = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let (t, o) = (raw(&table), raw(&other));
        let views = vec![
            (
                "embeddings.word_embeddings.weight".to_string(),
                TensorView::new(Dtype::F32, vec![4, 2], &t).unwrap(),
            ),
            (
                "pooler.bias".to_string(),
                TensorView::new(Dtype::F32, vec![2], &o).unwrap(),
            ),
        ];
        let weights = dir.path().join("w.safetensors");
        std::fs::write(&weights, safetensors::serialize(views, None).unwrap()).unwrap();
        let config = dir.path().join("config.json");
        std::fs::write(&config, r#"{"vocab_size": 4, "hidden_size": 2}"#).unwrap();
        let map = VocabularyMap::new([2]);
        for (dtype, out) in [(StoreDtype::F32, "f32"), (StoreDtype::F16, "f16")] {
            let out = dir.path().join(out);
            write_pruned_bert(&weights, &config, &map, dtype, &out).unwrap();
            let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
            let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let emb = file.tensor("embeddings.word_embeddings.weight").unwrap();
            assert_eq!(emb.shape(), &[2, 2]);
            let values = float_values(&weights, "emb", &emb).unwrap();
            // Rows 0 and 2 of the table; f16 rounds 4.1 and 5.1 to the nearest half.
            let expected = [0.1, 1.1, 4.1, 5.1];
            let tolerance = if dtype == StoreDtype::F16 { 4e-3 } else { 0.0 };
            for (v, e) in values.iter().zip(expected) {
                assert!((v - e).abs() <= tolerance, "{dtype:?}: {values:?}");
            }
            let cfg: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                    .unwrap();
            assert_eq!(cfg["vocab_size"], 2);
            assert_eq!(cfg["hidden_size"], 2);
        }
        let err = write_pruned_bert(
            &weights,
            &config,
            &VocabularyMap::new([9]),
            StoreDtype::F32,
            &dir.path().join("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("token id 9") && err.contains("w.safetensors"),
            "{err}"
        );
    }
}
