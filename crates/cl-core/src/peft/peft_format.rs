//! Hugging Face PEFT's LoRA file format: `adapter_model.safetensors` + `adapter_config.json`.
//!
//! PEFT names a LoRA on module `m` of the base model `base_model.model.<m>.lora_A.weight`
//! (`[r, d_in]`) and `base_model.model.<m>.lora_B.weight` (`[d_out, r]`), with the update
//! `(lora_alpha / r)·B·A`. Our factors are the transposes (`A: [d_in, r]`, `B: [r, d_out]`), and
//! our layer paths map to the checkpoint's module names through
//! [`Backbone::checkpoint_path`] (for MiniLM, `layers.0.attention.query` ↔
//! `encoder.layer.0.attention.self.query`). Export writes `target_modules` as the exact module
//! names, so the file loads in PEFT with `PeftModel.from_pretrained` onto the same base model;
//! import accepts what PEFT writes for plain LoRA (no DoRA, no rsLoRA, no bias, no
//! `fan_in_fan_out`) in float32.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use super::lora::LoraAdapter;
use crate::backbone::Backbone;
use crate::checkpoint::{read_json, write_json};
use crate::error::{ClError, Result};

/// File names PEFT uses.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// File names PEFT uses.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
const PREFIX: &str = "base_model.model.";

/// The fields of PEFT's `adapter_config.json` that define a plain LoRA (PEFT writes many more;
/// they are ignored on import).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeftLoraConfig {
    /// Must be `LORA`.
    pub peft_type: String,
    /// Rank.
    pub r: usize,
    /// Scale numerator.
    pub lora_alpha: f64,
    /// Dropout on the adapter input during training.
    #[serde(default)]
    pub lora_dropout: f64,
    /// Module names (or suffixes) the adapter was put on.
    pub target_modules: Vec<String>,
    /// Must be `none`.
    #[serde(default = "none")]
    pub bias: String,
    /// Must be false.
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// Must be false (the scale would be `alpha / √r`).
    #[serde(default)]
    pub use_rslora: bool,
    /// Must be false.
    #[serde(default)]
    pub use_dora: bool,
    /// The base model the adapter belongs to.
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// PEFT's task type (`null` for a bare encoder).
    #[serde(default)]
    pub task_type: Option<String>,
    /// Whether the adapter is saved for inference.
    #[serde(default)]
    pub inference_mode: bool,
}

fn none() -> String {
    "none".into()
}

/// One float32 tensor read from or written to a safetensors file: name, dims, values.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Writes float32 tensors to a safetensors file (sorted by name; `metadata` goes into the header).
pub fn write_safetensors(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape, values)| {
            let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), shape.clone(), raw)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, raw)| {
            TensorView::new(Dtype::F32, shape.clone(), raw)
                .map(|v| (name.clone(), v))
                .map_err(|e| ClError::Record {
                    path: path.to_path_buf(),
                    reason: format!("tensor `{name}`: {e}"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let data = safetensors::serialize(views, metadata).map_err(|e| ClError::Record {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| ClError::io("creating", parent, e))?;
    }
    std::fs::write(path, data).map_err(|e| ClError::io("writing", path, e))
}

/// Reads every tensor of a safetensors file as float32 (errors name the file and the tensor).
pub fn read_safetensors(path: &Path) -> Result<Vec<NamedTensor>> {
    let bytes = std::fs::read(path).map_err(|e| ClError::io("reading", path, e))?;
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| ClError::Record {
        path: path.to_path_buf(),
        reason: format!("not a valid safetensors file: {e}"),
    })?;
    let mut out = Vec::new();
    for (name, view) in file.tensors() {
        let values = crate::weights::float_values(path, &name, &view)?;
        out.push((name, view.shape().to_vec(), values));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn host<B: Backend>(t: Tensor<B, 2>) -> (Vec<usize>, Vec<f32>) {
    let data = t.into_data().convert::<f32>();
    let shape = data.shape.to_vec();
    (shape, data.to_vec().expect("float32 data"))
}

/// Writes adapter number `adapter` of every layer that has one as a PEFT LoRA into `dir`
/// (`adapter_model.safetensors`, `adapter_config.json`). Every exported adapter must share one
/// rank and scale. Returns the number of layers written.
pub fn export_peft_lora<B: Backend, M: Backbone<B>>(
    backbone: &M,
    adapter: usize,
    base_model: &str,
    dir: &Path,
) -> Result<usize> {
    let mut tensors = Vec::new();
    let mut targets = Vec::new();
    let mut shape: Option<(usize, f64, f64)> = None;
    for (path, layer) in backbone.lora_layers() {
        let Some(a) = layer.adapters.get(adapter) else {
            continue;
        };
        let this = (a.rank(), a.scaling, a.dropout);
        match shape {
            None => shape = Some(this),
            Some(s) if s.0 != this.0 || (s.1 - this.1).abs() > 1e-12 => {
                return Err(ClError::config(
                    "peft export",
                    format!(
                        "layer `{path}` has rank {} and scale {}, others {} and {}",
                        this.0, this.1, s.0, s.1
                    ),
                ));
            }
            Some(_) => {}
        }
        let module = backbone.checkpoint_path(&path);
        let (a_shape, a_vals) = host(a.lora_a.val().transpose());
        let (b_shape, b_vals) = host(a.lora_b.val().transpose());
        tensors.push((format!("{PREFIX}{module}.lora_A.weight"), a_shape, a_vals));
        tensors.push((format!("{PREFIX}{module}.lora_B.weight"), b_shape, b_vals));
        targets.push(module);
    }
    let Some((r, scaling, dropout)) = shape else {
        return Err(ClError::config(
            "peft export",
            format!("no layer has adapter number {adapter}"),
        ));
    };
    std::fs::create_dir_all(dir).map_err(|e| ClError::io("creating", dir, e))?;
    write_safetensors(&dir.join(ADAPTER_WEIGHTS), &tensors, None)?;
    let config = PeftLoraConfig {
        peft_type: "LORA".into(),
        r,
        lora_alpha: scaling * r as f64,
        lora_dropout: dropout,
        target_modules: targets.clone(),
        bias: none(),
        fan_in_fan_out: false,
        use_rslora: false,
        use_dora: false,
        base_model_name_or_path: Some(base_model.to_string()),
        task_type: None,
        inference_mode: true,
    };
    write_json(&dir.join(ADAPTER_CONFIG), &config)?;
    Ok(targets.len())
}

/// Reads a PEFT LoRA from `dir` and appends one adapter per adapted layer to `backbone`.
/// Every tensor of the file must belong to a layer of the backbone with the right shape; errors
/// name the file and the tensor. Returns the config and the number of layers adapted.
pub fn import_peft_lora<B: Backend, M: Backbone<B>>(
    backbone: &mut M,
    dir: &Path,
) -> Result<(PeftLoraConfig, usize)> {
    let config_path = dir.join(ADAPTER_CONFIG);
    let cfg: PeftLoraConfig = read_json(&config_path)?;
    let bad = |field: &str, reason: String| {
        ClError::config(format!("{}: {field}", config_path.display()), reason)
    };
    if cfg.peft_type != "LORA" {
        return Err(bad("peft_type", format!("`{}` is not LORA", cfg.peft_type)));
    }
    if cfg.use_dora || cfg.use_rslora || cfg.fan_in_fan_out || cfg.bias != "none" {
        return Err(bad(
            "use_dora / use_rslora / fan_in_fan_out / bias",
            "only plain LoRA (no DoRA, no rsLoRA, no bias, fan_in_fan_out false) is supported"
                .into(),
        ));
    }
    if cfg.r == 0 {
        return Err(bad("r", "must be positive".into()));
    }
    let weights = dir.join(ADAPTER_WEIGHTS);
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)> = read_safetensors(&weights)?
        .into_iter()
        .map(|(name, shape, values)| (name, (shape, values)))
        .collect();
    let device = backbone.device();
    let scaling = cfg.lora_alpha / cfg.r as f64;
    let mut count = 0;
    // Checkpoint names first (needs `&backbone`), then the layers in the same order, mutably.
    let modules: Vec<String> = backbone
        .lora_layers()
        .into_iter()
        .map(|(path, _)| backbone.checkpoint_path(&path))
        .collect();
    for (module, (_, layer)) in modules.into_iter().zip(backbone.lora_layers_mut()) {
        let key_a = format!("{PREFIX}{module}.lora_A.weight");
        let key_b = format!("{PREFIX}{module}.lora_B.weight");
        let (Some(a), Some(b)) = (tensors.remove(&key_a), tensors.remove(&key_b)) else {
            continue;
        };
        let [d_in, d_out] = layer.dims();
        for (key, (shape, _), expected) in
            [(&key_a, &a, [cfg.r, d_in]), (&key_b, &b, [d_out, cfg.r])]
        {
            if shape.as_slice() != expected {
                return Err(ClError::ShapeMismatch {
                    tensor: format!("{key} (in `{}`)", weights.display()),
                    expected: expected.to_vec(),
                    actual: shape.clone(),
                });
            }
        }
        let a = Tensor::<B, 2>::from_data(TensorData::new(a.1, [cfg.r, d_in]), &device).transpose();
        let b =
            Tensor::<B, 2>::from_data(TensorData::new(b.1, [d_out, cfg.r]), &device).transpose();
        layer.adapters.push(LoraAdapter {
            lora_a: Param::from_tensor(a),
            lora_b: Param::from_tensor(b),
            scaling,
            dropout: cfg.lora_dropout,
        });
        count += 1;
    }
    if let Some(name) = tensors.keys().next() {
        return Err(ClError::Record {
            path: weights,
            reason: format!(
                "tensor `{name}` matches no layer of the backbone (and {} more unmatched)",
                tensors.len() - 1
            ),
        });
    }
    if count == 0 {
        return Err(ClError::Record {
            path: weights,
            reason: "no LoRA tensors".into(),
        });
    }
    Ok((cfg, count))
}
