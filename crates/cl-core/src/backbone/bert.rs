//! A BERT-architecture text encoder (all-MiniLM-L6-v2 and other `BertModel` checkpoints) with
//! LoRA-capable linear layers, optional Houlsby adapters, and mean pooling.
//!
//! Module paths (used by LoRA targets and task vectors):
//! `embeddings.{word_embeddings,position_embeddings,token_type_embeddings,layer_norm}`,
//! `layers.{i}.attention.{query,key,value,output,output_norm,adapter}`,
//! `layers.{i}.{intermediate,output,output_norm,adapter}`.
//! Loading a Hugging Face checkpoint maps its names onto these in `bert_loader.rs`.
//!
//! Dropout inside the frozen encoder is off (evaluation-mode backbone); PEFT layers carry their
//! own dropout.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, LinearConfig};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::{Backbone, HiddenStates};
use crate::error::{ClError, Result};
use crate::peft::{Adapter, AdapterConfig, LoraLinear};
use crate::stream::mix_seed;

/// The fields of a Hugging Face `config.json` that define a BERT encoder (other keys are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size `d`.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads (must divide `hidden_size`).
    pub num_attention_heads: usize,
    /// FFN width.
    pub intermediate_size: usize,
    /// Longest sequence the position table covers.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Activation; only `gelu` (exact, erf-based) is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

impl BertConfig {
    /// Checks the configuration; errors name the field.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v == 0 {
                return Err(ClError::config(format!("bert.{field}"), "must be positive"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(ClError::config(
                "bert.num_attention_heads",
                format!(
                    "{} does not divide hidden_size {}",
                    self.num_attention_heads, self.hidden_size
                ),
            ));
        }
        if self.hidden_act != "gelu" {
            return Err(ClError::config(
                "bert.hidden_act",
                format!("`{}` is not supported (only gelu)", self.hidden_act),
            ));
        }
        Ok(())
    }

    /// An encoder with this shape and freshly initialised (frozen) weights; loading replaces them.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<BertEncoder<B>> {
        self.validate()?;
        let d = self.hidden_size;
        let norm = || {
            LayerNormConfig::new(d)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
                .no_grad()
        };
        let linear = |i: usize, o: usize| LoraLinear::frozen(LinearConfig::new(i, o).init(device));
        let embeddings = BertEmbeddings {
            word_embeddings: EmbeddingConfig::new(self.vocab_size, d)
                .init(device)
                .no_grad(),
            position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, d)
                .init(device)
                .no_grad(),
            token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, d)
                .init(device)
                .no_grad(),
            layer_norm: norm(),
        };
        let layers = (0..self.num_hidden_layers)
            .map(|_| BertLayer {
                attention: BertAttention {
                    query: linear(d, d),
                    key: linear(d, d),
                    value: linear(d, d),
                    output: linear(d, d),
                    output_norm: norm(),
                    adapter: None,
                    num_heads: self.num_attention_heads,
                },
                intermediate: linear(d, self.intermediate_size),
                output: linear(self.intermediate_size, d),
                output_norm: norm(),
                adapter: None,
            })
            .collect();
        Ok(BertEncoder { embeddings, layers })
    }
}

/// Token, position and segment embeddings, summed and normalised.
#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    /// `[vocab, d]`.
    pub word_embeddings: Embedding<B>,
    /// `[max_positions, d]`.
    pub position_embeddings: Embedding<B>,
    /// `[type_vocab, d]`.
    pub token_type_embeddings: Embedding<B>,
    /// LayerNorm over `d`.
    pub layer_norm: LayerNorm<B>,
}

/// Multi-head self-attention with its output projection, residual and LayerNorm.
#[derive(Module, Debug)]
pub struct BertAttention<B: Backend> {
    /// `[d, d]`.
    pub query: LoraLinear<B>,
    /// `[d, d]`.
    pub key: LoraLinear<B>,
    /// `[d, d]`.
    pub value: LoraLinear<B>,
    /// Output projection `[d, d]`.
    pub output: LoraLinear<B>,
    /// LayerNorm after the residual.
    pub output_norm: LayerNorm<B>,
    /// Houlsby adapter on the projected output, before the residual.
    pub adapter: Option<Adapter<B>>,
    /// Number of heads.
    pub num_heads: usize,
}

/// One encoder layer: attention, then the FFN with residual and LayerNorm.
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    /// Self-attention block.
    pub attention: BertAttention<B>,
    /// FFN up-projection `[d, ffn]`.
    pub intermediate: LoraLinear<B>,
    /// FFN down-projection `[ffn, d]`.
    pub output: LoraLinear<B>,
    /// LayerNorm after the residual.
    pub output_norm: LayerNorm<B>,
    /// Houlsby adapter on the FFN output, before the residual.
    pub adapter: Option<Adapter<B>>,
}

/// The encoder.
#[derive(Module, Debug)]
pub struct BertEncoder<B: Backend> {
    /// Embedding block.
    pub embeddings: BertEmbeddings<B>,
    /// Encoder layers.
    pub layers: Vec<BertLayer<B>>,
}

impl<B: Backend> BertAttention<B> {
    /// `x: [batch, len, d]`, `mask_bias: [batch, 1, 1, len]` (0 keep, −10⁴ pad) → `[batch, len, d]`.
    fn forward(&self, x: Tensor<B, 3>, mask_bias: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, len, d] = x.dims();
        let heads = self.num_heads;
        let head_dim = d / heads;
        let split = |t: Tensor<B, 3>| t.reshape([batch, len, heads, head_dim]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x.clone()));
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .div_scalar((head_dim as f64).sqrt())
            + mask_bias;
        let context = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, len, d]);
        let mut out = self.output.forward(context);
        if let Some(adapter) = &self.adapter {
            out = adapter.forward(out);
        }
        self.output_norm.forward(out + x)
    }
}

impl<B: Backend> BertLayer<B> {
    fn forward(&self, x: Tensor<B, 3>, mask_bias: Tensor<B, 4>) -> Tensor<B, 3> {
        let h = self.attention.forward(x, mask_bias);
        let mut out = self
            .output
            .forward(gelu(self.intermediate.forward(h.clone())));
        if let Some(adapter) = &self.adapter {
            out = adapter.forward(out);
        }
        self.output_norm.forward(out + h)
    }
}

impl<B: Backend> BertEncoder<B> {
    /// Hidden size `d`.
    pub fn hidden_size(&self) -> usize {
        self.embeddings.word_embeddings.weight.dims()[1]
    }

    /// Longest supported sequence.
    pub fn max_positions(&self) -> usize {
        self.embeddings.position_embeddings.weight.dims()[0]
    }

    /// Last hidden states `[batch, len, d]` for `ids: [batch, len]` and `mask: [batch, len]`
    /// (1 for tokens, 0 for padding).
    pub fn hidden_states(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        self.all_hidden_states(ids, mask, &[]).0
    }

    /// Last hidden states (as [`BertEncoder::hidden_states`]) and the states `keep` selects,
    /// numbered as Hugging Face's `output_hidden_states`: 0 = embedding output, `i` = output of
    /// layer `i` (so `num_hidden_layers` is the last). Each is `[batch, len, d]`.
    pub fn all_hidden_states(
        &self,
        ids: Tensor<B, 2, Int>,
        mask: Tensor<B, 2>,
        keep: &[usize],
    ) -> (Tensor<B, 3>, Vec<Tensor<B, 3>>) {
        let [batch, len] = ids.dims();
        let device = ids.device();
        let positions = Tensor::<B, 1, Int>::arange(0..len as i64, &device)
            .reshape([1, len])
            .repeat_dim(0, batch);
        let types = Tensor::<B, 2, Int>::zeros([batch, len], &device);
        let e = &self.embeddings;
        let x = e.word_embeddings.forward(ids)
            + e.position_embeddings.forward(positions)
            + e.token_type_embeddings.forward(types);
        let mut h = e.layer_norm.forward(x);
        let mask_bias = mask
            .neg()
            .add_scalar(1.0)
            .mul_scalar(-10_000.0)
            .reshape([batch, 1, 1, len]);
        let mut states: Vec<Option<Tensor<B, 3>>> = vec![None; keep.len()];
        let mut record = |index: usize, h: &Tensor<B, 3>| {
            for (slot, &k) in states.iter_mut().zip(keep) {
                if k == index {
                    *slot = Some(h.clone());
                }
            }
        };
        record(0, &h);
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(h, mask_bias.clone());
            record(i + 1, &h);
        }
        let states = states
            .into_iter()
            .zip(keep)
            .map(|(s, k)| {
                s.unwrap_or_else(|| {
                    panic!(
                        "hidden state {k} does not exist ({} layers)",
                        self.layers.len()
                    )
                })
            })
            .collect();
        (h, states)
    }

    /// Masked mean over tokens of `h: [batch, len, d]` with `mask: [batch, len]`: `[batch, d]`.
    fn mean_pool(h: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
        let [batch, len] = mask.dims();
        let m = mask.reshape([batch, len, 1]);
        let summed = (h * m.clone()).sum_dim(1).squeeze_dim::<2>(1);
        let counts = m.sum_dim(1).squeeze_dim::<2>(1).clamp_min(1e-9);
        summed / counts
    }

    /// Mean of the hidden states over real tokens: `[batch, d]`.
    pub fn mean_pooled(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
        let h = self.hidden_states(ids, mask.clone());
        Self::mean_pool(h, mask)
    }
}

/// Token ids of one text, already truncated (with `[CLS]` … `[SEP]`).
pub type TokenIds = Vec<u32>;

/// Pads a batch to its longest sequence: ids `[batch, len]` (pad id 0) and mask `[batch, len]`.
pub fn pad_batch<B: Backend>(
    inputs: &[&TokenIds],
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2>) {
    let len = inputs.iter().map(|x| x.len()).max().unwrap_or(0).max(1);
    let mut ids = vec![0i64; inputs.len() * len];
    let mut mask = vec![0f32; inputs.len() * len];
    for (row, seq) in inputs.iter().enumerate() {
        for (col, &id) in seq.iter().enumerate() {
            ids[row * len + col] = i64::from(id);
            mask[row * len + col] = 1.0;
        }
    }
    (
        Tensor::from_data(TensorData::new(ids, [inputs.len(), len]), device),
        Tensor::from_data(TensorData::new(mask, [inputs.len(), len]), device),
    )
}

impl<B: Backend> Backbone<B> for BertEncoder<B> {
    type Input = TokenIds;

    fn feature_dim(&self) -> usize {
        self.hidden_size()
    }

    fn features(&self, inputs: &[&TokenIds]) -> Tensor<B, 2> {
        let (ids, mask) = pad_batch::<B>(inputs, &self.device());
        self.mean_pooled(ids, mask)
    }

    /// `num_hidden_layers + 1` states: the embedding output, then each layer's output.
    fn num_layer_states(&self) -> usize {
        self.layers.len() + 1
    }

    /// Token states `[batch, len, d]` of the padded batch; `mask` marks the real tokens.
    fn layer_states(&self, inputs: &[&TokenIds], layers: &[usize]) -> HiddenStates<B> {
        let (ids, mask) = pad_batch::<B>(inputs, &self.device());
        let (last, states) = self.all_hidden_states(ids, mask.clone(), layers);
        HiddenStates {
            features: Self::mean_pool(last, mask.clone()),
            layers: states,
            mask,
        }
    }

    fn lora_layers(&self) -> Vec<(String, &LoraLinear<B>)> {
        let mut out = Vec::with_capacity(self.layers.len() * 6);
        for (i, l) in self.layers.iter().enumerate() {
            let a = &l.attention;
            out.push((format!("layers.{i}.attention.query"), &a.query));
            out.push((format!("layers.{i}.attention.key"), &a.key));
            out.push((format!("layers.{i}.attention.value"), &a.value));
            out.push((format!("layers.{i}.attention.output"), &a.output));
            out.push((format!("layers.{i}.intermediate"), &l.intermediate));
            out.push((format!("layers.{i}.output"), &l.output));
        }
        out
    }

    fn lora_layers_mut(&mut self) -> Vec<(String, &mut LoraLinear<B>)> {
        let mut out = Vec::with_capacity(self.layers.len() * 6);
        for (i, l) in self.layers.iter_mut().enumerate() {
            let a = &mut l.attention;
            out.push((format!("layers.{i}.attention.query"), &mut a.query));
            out.push((format!("layers.{i}.attention.key"), &mut a.key));
            out.push((format!("layers.{i}.attention.value"), &mut a.value));
            out.push((format!("layers.{i}.attention.output"), &mut a.output));
            out.push((format!("layers.{i}.intermediate"), &mut l.intermediate));
            out.push((format!("layers.{i}.output"), &mut l.output));
        }
        out
    }

    fn device(&self) -> B::Device {
        self.embeddings.word_embeddings.weight.device()
    }

    fn checkpoint_path(&self, path: &str) -> String {
        hf_module_path(path)
    }

    /// Puts a fresh Houlsby adapter after the attention and FFN blocks of every layer (replacing
    /// any there), drawn from the backend RNG.
    fn add_adapters(&mut self, cfg: &AdapterConfig, seed: u64) -> Result<usize> {
        cfg.validate()?;
        let d = self.hidden_size();
        let device = self.embeddings.word_embeddings.weight.device();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let k = 2 * i as u64;
            layer.attention.adapter = Some(cfg.init(d, mix_seed(seed, &[k]), &device));
            layer.adapter = Some(cfg.init(d, mix_seed(seed, &[k + 1]), &device));
        }
        Ok(2 * self.layers.len())
    }
}

/// The Hugging Face module name of one of our layer paths (the inverse of the module part of
/// `bert_loader::BERT_KEY_REMAP`, which the loader applies): `layers.{i}.attention.{query,key,value}` →
/// `encoder.layer.{i}.attention.self.{..}`, `layers.{i}.attention.output` →
/// `encoder.layer.{i}.attention.output.dense`, `layers.{i}.{intermediate,output}` →
/// `encoder.layer.{i}.{intermediate,output}.dense`. Other paths are returned unchanged.
pub fn hf_module_path(path: &str) -> String {
    let Some(rest) = path.strip_prefix("layers.") else {
        return path.to_string();
    };
    let Some((index, sub)) = rest.split_once('.') else {
        return path.to_string();
    };
    let hf = match sub {
        "attention.query" | "attention.key" | "attention.value" => {
            format!("attention.self.{}", &sub["attention.".len()..])
        }
        "attention.output" => "attention.output.dense".into(),
        "intermediate" => "intermediate.dense".into(),
        "output" => "output.dense".into(),
        _ => return path.to_string(),
    };
    format!("encoder.layer.{index}.{hf}")
}

#[cfg(test)]
mod tests {
    use super::hf_module_path;

    #[test]
    fn module_paths_map_to_hugging_face_names() {
        assert_eq!(
            hf_module_path("layers.3.attention.query"),
            "encoder.layer.3.attention.self.query"
        );
        assert_eq!(
            hf_module_path("layers.0.attention.output"),
            "encoder.layer.0.attention.output.dense"
        );
        assert_eq!(
            hf_module_path("layers.5.intermediate"),
            "encoder.layer.5.intermediate.dense"
        );
        assert_eq!(
            hf_module_path("layers.5.output"),
            "encoder.layer.5.output.dense"
        );
        assert_eq!(hf_module_path("head"), "head");
    }
}
