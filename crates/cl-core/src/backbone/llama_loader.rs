//! Loading a [`LlamaModel`]: from a GGUF file (configuration from its metadata, every tensor
//! dequantised to f32, llama.cpp's Q/K row permutation undone as transformers' GGUF loader does,
//! the tokenizer rebuilt from the metadata), or from a Hugging Face checkpoint directory
//! (`config.json` + `model.safetensors`, F32/F16/BF16).
//!
//! Weights arrive in PyTorch's `[out, in]` layout and are transposed on the host to Burn's
//! `[in, out]`.

use std::path::Path;

use burn::module::Param;
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use cl_gguf::{Gguf, unpermute_rope_rows};
use safetensors::SafeTensors;

use super::llama::{LlamaAttention, LlamaConfig, LlamaLayer, LlamaMlp, LlamaModel};
use super::llama_generate::TextGenerator;
use crate::checkpoint::read_json;
use crate::error::{ClError, Result};
use crate::peft::LoraLinear;
use crate::weights::float_values;

/// Where the tensors come from: a name in the checkpoint's own naming → `[out, in]` (or `[n]`)
/// f32 values, shape-checked.
trait TensorSource {
    fn values(&self, name: &Names, shape: &[usize]) -> Result<Vec<f32>>;
    fn has(&self, name: &Names) -> bool;
}

/// One tensor under its GGUF and Hugging Face names.
#[derive(Debug, Clone)]
struct Names {
    gguf: String,
    hf: String,
}

fn names(gguf: impl Into<String>, hf: impl Into<String>) -> Names {
    Names {
        gguf: gguf.into(),
        hf: hf.into(),
    }
}

/// The decoder's configuration from GGUF metadata (`general.architecture` must be `llama`).
pub fn llama_config_from_gguf(g: &Gguf) -> Result<LlamaConfig> {
    let arch = g.str_key("general.architecture")?;
    if arch != "llama" {
        return Err(ClError::config(
            format!("{}: general.architecture", g.path().display()),
            format!("is `{arch}`; only `llama` is read"),
        ));
    }
    let key = |k: &str| format!("llama.{k}");
    let opt_count = |k: &str| -> Result<Option<usize>> {
        match g.get(&key(k)) {
            None => Ok(None),
            Some(_) => Ok(Some(g.count_key(&key(k))?)),
        }
    };
    let opt_f64 = |k: &str| -> Result<Option<f64>> {
        match g.get(&key(k)) {
            None => Ok(None),
            Some(_) => Ok(Some(g.f64_key(&key(k))?)),
        }
    };
    let heads = g.count_key(&key("attention.head_count"))?;
    let hidden = g.count_key(&key("embedding_length"))?;
    let head_dim = opt_count("attention.key_length")?;
    let vocab = g.tensor("token_embd.weight")?.shape()[0];
    if let Some(kind) = g.get(&key("rope.scaling.type"))
        && g.str_key(&key("rope.scaling.type"))? != "none"
    {
        return Err(ClError::config(
            format!("{}: llama.rope.scaling.type", g.path().display()),
            format!("{kind:?}: RoPE scaling is not supported"),
        ));
    }
    let cfg = LlamaConfig {
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: g.count_key(&key("feed_forward_length"))?,
        num_hidden_layers: g.count_key(&key("block_count"))?,
        num_attention_heads: heads,
        num_key_value_heads: opt_count("attention.head_count_kv")?,
        head_dim,
        rms_norm_eps: g.f64_key(&key("attention.layer_norm_rms_epsilon"))?,
        rope_theta: opt_f64("rope.freq_base")?.unwrap_or(10_000.0),
        max_position_embeddings: opt_count("context_length")?.unwrap_or(2048),
        tie_word_embeddings: !g.tensors().iter().any(|t| t.name == "output.weight"),
        hidden_act: "silu".into(),
        rope_scaling: None,
        attention_bias: false,
        mlp_bias: false,
    };
    let rot = opt_count("rope.dimension_count")?.unwrap_or(cfg.head_width());
    if rot != cfg.head_width() {
        return Err(ClError::config(
            format!("{}: llama.rope.dimension_count", g.path().display()),
            format!(
                "{rot} differs from the head width {}: partial rotary embeddings are not supported",
                cfg.head_width()
            ),
        ));
    }
    cfg.validate().map_err(|e| at_file(e, g.path()))?;
    Ok(cfg)
}

fn at_file(e: ClError, path: &Path) -> ClError {
    match e {
        ClError::InvalidConfig { field, reason } => ClError::InvalidConfig {
            field: format!("{}: {field}", path.display()),
            reason,
        },
        other => other,
    }
}

struct GgufSource<'a> {
    g: &'a Gguf,
    cfg: &'a LlamaConfig,
}

impl TensorSource for GgufSource<'_> {
    fn values(&self, name: &Names, shape: &[usize]) -> Result<Vec<f32>> {
        let values = self.g.dequantize_shaped(&name.gguf, shape)?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(ClError::Record {
                path: self.g.path().to_path_buf(),
                reason: format!(
                    "tensor `{}` dequantises to a non-finite value at flat index {i}",
                    name.gguf
                ),
            });
        }
        let hd = self.cfg.head_width();
        // Q has `heads` groups of `hd` rows, K `kv_heads`: both are `rows / hd`.
        Ok(
            if name.gguf.ends_with(".attn_q.weight") || name.gguf.ends_with(".attn_k.weight") {
                unpermute_rope_rows(&values, shape[0], shape[1], shape[0] / hd)
            } else {
                values
            },
        )
    }

    fn has(&self, name: &Names) -> bool {
        self.g.tensors().iter().any(|t| t.name == name.gguf)
    }
}

struct SafetensorsSource<'a> {
    path: &'a Path,
    file: SafeTensors<'a>,
}

impl TensorSource for SafetensorsSource<'_> {
    fn values(&self, name: &Names, shape: &[usize]) -> Result<Vec<f32>> {
        let view = self
            .file
            .tensor(&name.hf)
            .map_err(|_| ClError::MissingTensor {
                tensor: name.hf.clone(),
                context: format!(" in `{}`", self.path.display()),
            })?;
        if view.shape() != shape {
            return Err(ClError::ShapeMismatch {
                tensor: format!("{} in `{}`", name.hf, self.path.display()),
                expected: shape.to_vec(),
                actual: view.shape().to_vec(),
            });
        }
        float_values(self.path, &name.hf, &view)
    }

    fn has(&self, name: &Names) -> bool {
        self.file.names().iter().any(|n| **n == name.hf)
    }
}

/// `[out, in]` row-major values → a frozen `[in, out]` Burn linear layer without bias.
fn linear<B: Backend>(
    values: Vec<f32>,
    out: usize,
    inp: usize,
    device: &B::Device,
) -> LoraLinear<B> {
    let mut t = vec![0f32; values.len()];
    for o in 0..out {
        for i in 0..inp {
            t[i * out + o] = values[o * inp + i];
        }
    }
    LoraLinear::frozen(Linear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(t, [inp, out]), device)),
        bias: None,
    })
}

fn vector<B: Backend>(values: Vec<f32>, device: &B::Device) -> Param<Tensor<B, 1>> {
    let n = values.len();
    Param::from_tensor(Tensor::from_data(TensorData::new(values, [n]), device))
        .set_require_grad(false)
}

fn norm<B: Backend>(values: Vec<f32>, eps: f64, device: &B::Device) -> RmsNorm<B> {
    RmsNorm {
        gamma: vector(values, device),
        epsilon: eps,
    }
}

/// Builds the model tensor by tensor from `src` (no random initialisation of the big matrices).
fn build<B: Backend>(
    cfg: &LlamaConfig,
    src: &dyn TensorSource,
    device: &B::Device,
) -> Result<LlamaModel<B>> {
    cfg.validate()?;
    let d = cfg.hidden_size;
    let (h, kvh, hd, ffn) = (
        cfg.num_attention_heads,
        cfg.kv_heads(),
        cfg.head_width(),
        cfg.intermediate_size,
    );
    // Shapes are PyTorch's `[out, in]`.
    let emb = src.values(
        &names("token_embd.weight", "model.embed_tokens.weight"),
        &[cfg.vocab_size, d],
    )?;
    let embed_tokens = Embedding {
        weight: Param::from_tensor(Tensor::from_data(
            TensorData::new(emb, [cfg.vocab_size, d]),
            device,
        ))
        .set_require_grad(false),
    };
    let final_norm = norm(
        src.values(&names("output_norm.weight", "model.norm.weight"), &[d])?,
        cfg.rms_norm_eps,
        device,
    );
    let head = names("output.weight", "lm_head.weight");
    let lm_head = if cfg.tie_word_embeddings {
        None
    } else {
        if !src.has(&head) {
            return Err(ClError::MissingTensor {
                tensor: format!("{} / {}", head.gguf, head.hf),
                context: " (the config says the LM head is not tied to the embeddings)".into(),
            });
        }
        Some(linear(
            src.values(&head, &[cfg.vocab_size, d])?,
            cfg.vocab_size,
            d,
            device,
        ))
    };
    let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
    for i in 0..cfg.num_hidden_layers {
        let t = |g: &str, hf: &str| {
            names(
                format!("blk.{i}.{g}.weight"),
                format!("model.layers.{i}.{hf}.weight"),
            )
        };
        let proj = |g: &str, hf: &str, out: usize, inp: usize| -> Result<LoraLinear<B>> {
            Ok(linear(
                src.values(&t(g, hf), &[out, inp])?,
                out,
                inp,
                device,
            ))
        };
        layers.push(LlamaLayer {
            input_layernorm: norm(
                src.values(&t("attn_norm", "input_layernorm"), &[d])?,
                cfg.rms_norm_eps,
                device,
            ),
            self_attn: LlamaAttention {
                q_proj: proj("attn_q", "self_attn.q_proj", h * hd, d)?,
                k_proj: proj("attn_k", "self_attn.k_proj", kvh * hd, d)?,
                v_proj: proj("attn_v", "self_attn.v_proj", kvh * hd, d)?,
                o_proj: proj("attn_output", "self_attn.o_proj", d, h * hd)?,
                num_heads: h,
                num_kv_heads: kvh,
                head_dim: hd,
            },
            post_attention_layernorm: norm(
                src.values(&t("ffn_norm", "post_attention_layernorm"), &[d])?,
                cfg.rms_norm_eps,
                device,
            ),
            mlp: LlamaMlp {
                gate_proj: proj("ffn_gate", "mlp.gate_proj", ffn, d)?,
                up_proj: proj("ffn_up", "mlp.up_proj", ffn, d)?,
                down_proj: proj("ffn_down", "mlp.down_proj", d, ffn)?,
            },
        });
    }
    Ok(LlamaModel {
        embed_tokens,
        layers,
        norm: final_norm,
        lm_head,
        rope_theta: cfg.rope_theta,
        max_positions: cfg.max_position_embeddings,
    })
}

/// The decoder of GGUF file `g` (see the module doc).
pub fn load_llama_gguf_model<B: Backend>(g: &Gguf, device: &B::Device) -> Result<LlamaModel<B>> {
    let cfg = llama_config_from_gguf(g)?;
    build(&cfg, &GgufSource { g, cfg: &cfg }, device)
}

/// The decoder and tokenizer of the GGUF file at `path`, ready to generate. BOS is prepended when
/// `tokenizer.ggml.add_bos_token` says so; EOS is `tokenizer.ggml.eos_token_id`; padding is
/// `tokenizer.ggml.padding_token_id`, else EOS.
pub fn load_llama_gguf<B: Backend>(path: &Path, device: &B::Device) -> Result<TextGenerator<B>> {
    let g = Gguf::open(path)?;
    let model = load_llama_gguf_model(&g, device)?;
    let (tokenizer, special) = cl_gguf::tokenizer::tokenizer(&g)?;
    let add_bos = match g.get("tokenizer.ggml.add_bos_token") {
        Some(cl_gguf::Value::Bool(b)) => *b,
        _ => false,
    };
    let eos: Vec<u32> = special.eos.into_iter().collect();
    Ok(TextGenerator {
        model,
        tokenizer,
        bos: if add_bos { special.bos } else { None },
        pad: special.pad.or(special.eos).unwrap_or(0),
        eos,
    })
}

/// The decoder of a Hugging Face checkpoint directory: `config.json` and one `model.safetensors`.
pub fn load_llama_safetensors<B: Backend>(dir: &Path, device: &B::Device) -> Result<LlamaModel<B>> {
    let config = dir.join("config.json");
    let cfg: LlamaConfig = read_json(&config)?;
    cfg.validate().map_err(|e| at_file(e, &config))?;
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).map_err(|e| ClError::io("reading weights", &path, e))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| ClError::Record {
        path: path.clone(),
        reason: format!("not a safetensors file: {e}"),
    })?;
    build(&cfg, &SafetensorsSource { path: &path, file }, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::Backbone;
    use crate::backbone::llama::tests::{B, tiny, tiny_config};
    use crate::backbone::llama::{PadSide, PaddedBatch};
    use safetensors::tensor::{Dtype, TensorView};

    /// A tensor's shape and little-endian f32 bytes.
    type Raw = (Vec<usize>, Vec<u8>);

    /// `[in, out]` Burn weight → PyTorch `[out, in]` f32 bytes.
    fn torch_bytes(layer: &LoraLinear<B>) -> Raw {
        let [i, o] = layer.dims();
        let w: Vec<f32> = layer.base.weight.val().into_data().into_vec().unwrap();
        let mut t = vec![0f32; i * o];
        for r in 0..i {
            for c in 0..o {
                t[c * i + r] = w[r * o + c];
            }
        }
        (vec![o, i], t.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn bytes_of(t: Tensor<B, 1>) -> Raw {
        let v: Vec<f32> = t.into_data().into_vec().unwrap();
        (
            vec![v.len()],
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        )
    }

    /// Writes `model` as a transformers checkpoint directory (HF names, `[out, in]`, F32).
    fn save_hf(model: &LlamaModel<B>, dir: &Path, drop: Option<&str>) {
        let mut tensors: Vec<(String, Raw)> = Vec::new();
        let emb: Vec<f32> = model
            .embed_tokens
            .weight
            .val()
            .into_data()
            .into_vec()
            .unwrap();
        let [v, d] = model.embed_tokens.weight.dims();
        tensors.push((
            "model.embed_tokens.weight".into(),
            (
                vec![v, d],
                emb.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        ));
        tensors.push(("model.norm.weight".into(), bytes_of(model.norm.gamma.val())));
        for (i, l) in model.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            tensors.push((
                format!("{p}.input_layernorm.weight"),
                bytes_of(l.input_layernorm.gamma.val()),
            ));
            tensors.push((
                format!("{p}.post_attention_layernorm.weight"),
                bytes_of(l.post_attention_layernorm.gamma.val()),
            ));
        }
        for (path, layer) in model.lora_layers() {
            tensors.push((
                format!("{}.weight", model.checkpoint_path_of(&path)),
                torch_bytes(layer),
            ));
        }
        tensors.retain(|(n, _)| Some(n.as_str()) != drop);
        let views: Vec<(String, TensorView<'_>)> = tensors
            .iter()
            .map(|(n, (s, b))| {
                (
                    n.clone(),
                    TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_string(&tiny_config()).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn a_transformers_checkpoint_directory_loads_to_the_same_logits() {
        let model = tiny(21);
        let dir = tempfile::tempdir().unwrap();
        save_hf(&model, dir.path(), None);
        let loaded = load_llama_safetensors::<B>(dir.path(), &Default::default()).unwrap();
        let batch = PaddedBatch::new(&[&[1, 2, 3, 4], &[5, 6]], 0, PadSide::Right);
        let diff = (model.forward_batch(&batch) - loaded.forward_batch(&batch))
            .abs()
            .max()
            .into_scalar();
        assert!(diff < 1e-6, "reloaded logits differ by {diff}");

        save_hf(
            &model,
            dir.path(),
            Some("model.layers.1.mlp.up_proj.weight"),
        );
        let err = load_llama_safetensors::<B>(dir.path(), &Default::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("model.layers.1.mlp.up_proj.weight") && err.contains("model.safetensors"),
            "{err}"
        );

        let mut cfg = tiny_config();
        cfg.intermediate_size = 80;
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::to_string(&cfg).unwrap(),
        )
        .unwrap();
        save_hf(&model, dir.path(), None);
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::to_string(&cfg).unwrap(),
        )
        .unwrap();
        let err = load_llama_safetensors::<B>(dir.path(), &Default::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("shape") && err.contains("gate_proj"), "{err}");

        std::fs::write(dir.path().join("model.safetensors"), b"not safetensors").unwrap();
        let err = load_llama_safetensors::<B>(dir.path(), &Default::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("model.safetensors"), "{err}");
    }
}
