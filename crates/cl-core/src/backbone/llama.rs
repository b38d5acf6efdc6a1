//! A LLaMA-architecture decoder (SmolLM2, LLaMA-2/3, TinyLlama and other `LlamaForCausalLM`
//! checkpoints): RMSNorm, rotary position embeddings (Hugging Face's rotate-half form),
//! grouped-query attention with a causal mask and padding, a SwiGLU MLP and an LM head tied to
//! the embeddings or not. Every linear layer is a [`LoraLinear`], so every LoRA method, task
//! vectors and the PEFT export/import work on it as on MiniLM.
//!
//! Module paths (used by LoRA targets and task vectors; the checkpoint's names are `model.` +
//! these, see [`LlamaModel::checkpoint_path`]):
//! `layers.{i}.self_attn.{q_proj,k_proj,v_proj,o_proj}`, `layers.{i}.mlp.{gate_proj,up_proj,down_proj}`.
//!
//! Padding: every row's positions count its real tokens only (`position = cumsum(mask) − 1`), so
//! left- and right-padded batches give each row the logits it has alone; padded keys are masked.
//! Generation with a KV cache lives in [`super::llama_generate`]; loading in [`super::llama_loader`].

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::bert::TokenIds;
use super::{Backbone, HiddenStates};
use crate::error::{ClError, Result};
use crate::peft::LoraLinear;

/// Score added to masked attention logits: finite, so rows whose keys are all padding (the pad
/// positions of a left-padded batch) stay finite instead of turning into NaN.
const MASKED: f32 = -1.0e9;

/// The fields of a Hugging Face `LlamaConfig` (`config.json`) that define the decoder; other keys
/// are ignored. The GGUF loader fills the same struct from the file's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width `d`.
    pub hidden_size: usize,
    /// SwiGLU width.
    pub intermediate_size: usize,
    /// Number of decoder blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); absent means as many as query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Width of one head; absent means `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base θ.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// Longest context the model was trained for (generation stops there).
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// Whether the LM head is the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Activation of the MLP; only `silu` is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// RoPE scaling (LLaMA-3.1 style); only its absence is supported.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// Biases on the attention projections; only `false` is supported.
    #[serde(default)]
    pub attention_bias: bool,
    /// Biases on the MLP; only `false` is supported.
    #[serde(default)]
    pub mlp_bias: bool,
}

fn default_rms_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_max_positions() -> usize {
    2048
}
fn default_act() -> String {
    "silu".into()
}

impl LlamaConfig {
    /// A 2-block decoder for tests: d 64, 4 query / 2 key-value heads, MLP 96, 64 positions,
    /// `vocab` tokens, tied embeddings.
    pub fn tiny(vocab: usize) -> Self {
        Self {
            vocab_size: vocab,
            hidden_size: 64,
            intermediate_size: 96,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(2),
            head_dim: None,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            max_position_embeddings: 64,
            tie_word_embeddings: true,
            hidden_act: "silu".into(),
            rope_scaling: None,
            attention_bias: false,
            mlp_bias: false,
        }
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Width of one head.
    pub fn head_width(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Checks the configuration; errors name the field.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("head_dim", self.head_width()),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v == 0 {
                return Err(ClError::config(
                    format!("llama.{field}"),
                    "must be positive",
                ));
            }
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            return Err(ClError::config(
                "llama.num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads {}",
                    self.kv_heads(),
                    self.num_attention_heads
                ),
            ));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(ClError::config(
                "llama.num_attention_heads",
                format!(
                    "{} does not divide hidden_size {} (and no head_dim is given)",
                    self.num_attention_heads, self.hidden_size
                ),
            ));
        }
        if !self.head_width().is_multiple_of(2) {
            return Err(ClError::config(
                "llama.head_dim",
                format!("{} is odd; rotary embeddings need pairs", self.head_width()),
            ));
        }
        if !(self.rms_norm_eps > 0.0 && self.rms_norm_eps.is_finite()) {
            return Err(ClError::config("llama.rms_norm_eps", "must be positive"));
        }
        if !(self.rope_theta > 0.0 && self.rope_theta.is_finite()) {
            return Err(ClError::config("llama.rope_theta", "must be positive"));
        }
        if self.hidden_act != "silu" {
            return Err(ClError::config(
                "llama.hidden_act",
                format!("`{}` is not supported (only silu)", self.hidden_act),
            ));
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ClError::config(
                "llama.rope_scaling",
                "RoPE scaling is not supported; only plain rotary embeddings are",
            ));
        }
        if self.attention_bias || self.mlp_bias {
            return Err(ClError::config(
                if self.attention_bias {
                    "llama.attention_bias"
                } else {
                    "llama.mlp_bias"
                },
                "biases are not supported (LLaMA has none)",
            ));
        }
        Ok(())
    }

    /// A decoder with this shape and freshly initialised (frozen) weights; loading replaces them.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<LlamaModel<B>> {
        self.validate()?;
        let d = self.hidden_size;
        let (heads, kv_heads, hd) = (self.num_attention_heads, self.kv_heads(), self.head_width());
        let norm = || {
            RmsNormConfig::new(d)
                .with_epsilon(self.rms_norm_eps)
                .init(device)
                .no_grad()
        };
        let linear = |i: usize, o: usize| {
            LoraLinear::frozen(LinearConfig::new(i, o).with_bias(false).init(device))
        };
        let layers = (0..self.num_hidden_layers)
            .map(|_| LlamaLayer {
                input_layernorm: norm(),
                self_attn: LlamaAttention {
                    q_proj: linear(d, heads * hd),
                    k_proj: linear(d, kv_heads * hd),
                    v_proj: linear(d, kv_heads * hd),
                    o_proj: linear(heads * hd, d),
                    num_heads: heads,
                    num_kv_heads: kv_heads,
                    head_dim: hd,
                },
                post_attention_layernorm: norm(),
                mlp: LlamaMlp {
                    gate_proj: linear(d, self.intermediate_size),
                    up_proj: linear(d, self.intermediate_size),
                    down_proj: linear(self.intermediate_size, d),
                },
            })
            .collect();
        Ok(LlamaModel {
            embed_tokens: EmbeddingConfig::new(self.vocab_size, d)
                .init(device)
                .no_grad(),
            layers,
            norm: norm(),
            lm_head: (!self.tie_word_embeddings).then(|| linear(d, self.vocab_size)),
            rope_theta: self.rope_theta,
            max_positions: self.max_position_embeddings,
        })
    }
}

/// Grouped-query self-attention.
#[derive(Module, Debug)]
pub struct LlamaAttention<B: Backend> {
    /// `[d, heads·head_dim]`.
    pub q_proj: LoraLinear<B>,
    /// `[d, kv_heads·head_dim]`.
    pub k_proj: LoraLinear<B>,
    /// `[d, kv_heads·head_dim]`.
    pub v_proj: LoraLinear<B>,
    /// `[heads·head_dim, d]`.
    pub o_proj: LoraLinear<B>,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (each serves `num_heads / num_kv_heads` query heads).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

/// The SwiGLU MLP: `down(silu(gate(x)) ⊙ up(x))`.
#[derive(Module, Debug)]
pub struct LlamaMlp<B: Backend> {
    /// `[d, ffn]`.
    pub gate_proj: LoraLinear<B>,
    /// `[d, ffn]`.
    pub up_proj: LoraLinear<B>,
    /// `[ffn, d]`.
    pub down_proj: LoraLinear<B>,
}

/// One pre-norm decoder block.
#[derive(Module, Debug)]
pub struct LlamaLayer<B: Backend> {
    /// RMSNorm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// Self-attention.
    pub self_attn: LlamaAttention<B>,
    /// RMSNorm before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
    /// MLP.
    pub mlp: LlamaMlp<B>,
}

/// The decoder with its LM head.
#[derive(Module, Debug)]
pub struct LlamaModel<B: Backend> {
    /// `[vocab, d]`.
    pub embed_tokens: Embedding<B>,
    /// Decoder blocks.
    pub layers: Vec<LlamaLayer<B>>,
    /// Final RMSNorm.
    pub norm: RmsNorm<B>,
    /// `[d, vocab]`; `None` when the head is tied to `embed_tokens`.
    pub lm_head: Option<LoraLinear<B>>,
    /// RoPE base θ.
    pub rope_theta: f64,
    /// Longest context the model supports.
    pub max_positions: usize,
}

/// The keys and values one block has seen so far (after RoPE, before the heads are repeated):
/// each `[batch, kv_heads, cached, head_dim]`.
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    /// Keys.
    pub keys: Tensor<B, 4>,
    /// Values.
    pub values: Tensor<B, 4>,
}

/// What one forward call needs besides the token ids, built on the host: rotary tables for the
/// new positions and the attention bias over every key (cached and new).
#[derive(Debug, Clone)]
pub struct AttentionInputs<B: Backend> {
    /// `[batch, 1, new, head_dim]`.
    pub cos: Tensor<B, 4>,
    /// `[batch, 1, new, head_dim]`.
    pub sin: Tensor<B, 4>,
    /// `[batch, 1, new, cached + new]`: 0 where the query may look, a large negative elsewhere.
    pub bias: Tensor<B, 4>,
}

impl<B: Backend> AttentionInputs<B> {
    /// For a batch whose key mask (1 real, 0 padding) over all `total` positions is `mask`
    /// (`[batch][total]`, row-major) and whose last `new` positions are being computed now.
    /// Positions count real tokens only: `cumsum(mask) − 1` (0 at padding).
    pub fn new(
        mask: &[f32],
        batch: usize,
        total: usize,
        new: usize,
        head_dim: usize,
        theta: f64,
        device: &B::Device,
    ) -> Self {
        let past = total - new;
        let half = head_dim / 2;
        // As transformers: inv_freq and the angles in f32.
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(batch * new * head_dim);
        let mut sin = Vec::with_capacity(batch * new * head_dim);
        let mut bias = vec![MASKED; batch * new * total];
        for b in 0..batch {
            let row = &mask[b * total..(b + 1) * total];
            let mut count = 0i64;
            let positions: Vec<i64> = row
                .iter()
                .map(|&m| {
                    if m > 0.5 {
                        count += 1;
                        count - 1
                    } else {
                        0
                    }
                })
                .collect();
            for q in 0..new {
                let pos = positions[past + q] as f32;
                for _ in 0..2 {
                    for &f in &inv_freq {
                        let angle = pos * f;
                        cos.push(angle.cos());
                        sin.push(angle.sin());
                    }
                }
                let out = &mut bias[(b * new + q) * total..(b * new + q + 1) * total];
                for (k, slot) in out.iter_mut().enumerate().take(past + q + 1) {
                    if row[k] > 0.5 {
                        *slot = 0.0;
                    }
                }
            }
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [batch, 1, new, head_dim]), device),
            sin: Tensor::from_data(TensorData::new(sin, [batch, 1, new, head_dim]), device),
            bias: Tensor::from_data(TensorData::new(bias, [batch, 1, new, total]), device),
        }
    }
}

/// `x: [batch, heads, len, head_dim]` rotated: `x·cos + rotate_half(x)·sin`, with
/// `rotate_half([x₁, x₂]) = [−x₂, x₁]` (the halves of each head).
fn rope<B: Backend>(x: Tensor<B, 4>, cos: Tensor<B, 4>, sin: Tensor<B, 4>) -> Tensor<B, 4> {
    let hd = x.dims()[3];
    let half = hd / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos + rotated * sin
}

impl<B: Backend> LlamaAttention<B> {
    /// `x: [batch, new, d]` → `[batch, new, d]`; appends this call's keys and values to `cache`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        inputs: &AttentionInputs<B>,
        cache: Option<&mut Option<LayerCache<B>>>,
    ) -> Tensor<B, 3> {
        let [batch, len, _] = x.dims();
        let (h, kvh, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let split =
            |t: Tensor<B, 3>, heads: usize| t.reshape([batch, len, heads, hd]).swap_dims(1, 2);
        let q = split(self.q_proj.forward(x.clone()), h);
        let k = split(self.k_proj.forward(x.clone()), kvh);
        let v = split(self.v_proj.forward(x), kvh);
        let q = rope(q, inputs.cos.clone(), inputs.sin.clone());
        let mut k = rope(k, inputs.cos.clone(), inputs.sin.clone());
        let mut v = v;
        if let Some(slot) = cache {
            if let Some(past) = slot.take() {
                k = Tensor::cat(vec![past.keys, k], 2);
                v = Tensor::cat(vec![past.values, v], 2);
            }
            *slot = Some(LayerCache {
                keys: k.clone(),
                values: v.clone(),
            });
        }
        let (k, v) = (repeat_kv(k, h / kvh), repeat_kv(v, h / kvh));
        let scores =
            q.matmul(k.swap_dims(2, 3)).div_scalar((hd as f64).sqrt()) + inputs.bias.clone();
        let context = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, len, h * hd]);
        self.o_proj.forward(context)
    }
}

/// `[batch, kv_heads, len, hd]` → `[batch, kv_heads·rep, len, hd]`; query head `i` reads key/value
/// head `i / rep` (transformers' `repeat_kv`).
fn repeat_kv<B: Backend>(x: Tensor<B, 4>, rep: usize) -> Tensor<B, 4> {
    if rep == 1 {
        return x;
    }
    let [batch, kvh, len, hd] = x.dims();
    x.reshape([batch, kvh, 1, len, hd])
        .repeat_dim(2, rep)
        .reshape([batch, kvh * rep, len, hd])
}

impl<B: Backend> LlamaMlp<B> {
    /// `[.., d]` → `[.., d]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}

impl<B: Backend> LlamaLayer<B> {
    /// `[batch, new, d]` → `[batch, new, d]`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        inputs: &AttentionInputs<B>,
        cache: Option<&mut Option<LayerCache<B>>>,
    ) -> Tensor<B, 3> {
        let h = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), inputs, cache);
        h.clone() + self.mlp.forward(self.post_attention_layernorm.forward(h))
    }
}

/// Token ids padded to one length, with their mask, on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct PaddedBatch {
    /// `[batch][len]`, row-major.
    pub ids: Vec<i64>,
    /// `[batch][len]`: 1 at real tokens, 0 at padding.
    pub mask: Vec<f32>,
    /// Rows.
    pub batch: usize,
    /// Columns.
    pub len: usize,
}

/// Which side padding goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadSide {
    /// Before the tokens (generation: every row's last token is in the last column).
    Left,
    /// After the tokens (scoring and classification).
    Right,
}

impl PaddedBatch {
    /// Pads `rows` to the longest with `pad_id` on `side` (an empty batch or rows give length 1).
    pub fn new(rows: &[&[u32]], pad_id: u32, side: PadSide) -> Self {
        let len = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![i64::from(pad_id); rows.len() * len];
        let mut mask = vec![0f32; rows.len() * len];
        for (b, row) in rows.iter().enumerate() {
            let start = match side {
                PadSide::Left => len - row.len(),
                PadSide::Right => 0,
            };
            for (j, &t) in row.iter().enumerate() {
                ids[b * len + start + j] = i64::from(t);
                mask[b * len + start + j] = 1.0;
            }
        }
        Self {
            ids,
            mask,
            batch: rows.len(),
            len,
        }
    }
}

impl<B: Backend> LlamaModel<B> {
    /// Model width `d`.
    pub fn hidden_size(&self) -> usize {
        self.embed_tokens.weight.dims()[1]
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.embed_tokens.weight.dims()[0]
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.layers.first().map_or(0, |l| l.self_attn.head_dim)
    }

    /// Final-norm hidden states `[batch, new, d]` of `ids: [batch, new]`, and the states `keep`
    /// selects (0 = embedding output, `i` = output of block `i`, un-normed as transformers'
    /// `output_hidden_states` except the last, which is normed there as here), each
    /// `[batch, new, d]`. With `cache` (one slot per block) the keys and values of earlier calls
    /// are attended to and this call's are appended; `inputs` must cover cached + new keys.
    pub fn hidden(
        &self,
        ids: Tensor<B, 2, Int>,
        inputs: &AttentionInputs<B>,
        mut cache: Option<&mut [Option<LayerCache<B>>]>,
        keep: &[usize],
    ) -> (Tensor<B, 3>, Vec<Tensor<B, 3>>) {
        let mut h = self.embed_tokens.forward(ids);
        let last = self.layers.len();
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
            let slot = cache.as_deref_mut().map(|c| &mut c[i]);
            h = layer.forward(h, inputs, slot);
            if i + 1 < last {
                record(i + 1, &h);
            }
        }
        let h = self.norm.forward(h);
        record(last, &h);
        let states = states
            .into_iter()
            .zip(keep)
            .map(|(s, k)| {
                s.unwrap_or_else(|| panic!("hidden state {k} does not exist ({last} blocks)"))
            })
            .collect();
        (h, states)
    }

    /// Logits `[batch, len, vocab]` of final-norm hidden states `[batch, len, d]`.
    pub fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => {
                let [batch, len, d] = hidden.dims();
                let w = self.embed_tokens.weight.val();
                let vocab = w.dims()[0];
                // `E·hᵀ` then a transpose of the small result: transposing the `[vocab, d]`
                // table instead would copy it on every call.
                w.matmul(hidden.reshape([batch * len, d]).transpose())
                    .transpose()
                    .reshape([batch, len, vocab])
            }
        }
    }

    /// Logits `[batch, len, vocab]` of a padded batch, no cache.
    pub fn forward_batch(&self, batch: &PaddedBatch) -> Tensor<B, 3> {
        let device = self.device();
        let inputs = AttentionInputs::new(
            &batch.mask,
            batch.batch,
            batch.len,
            batch.len,
            self.head_dim(),
            self.rope_theta,
            &device,
        );
        let ids = ids_tensor(batch, &device);
        self.logits(self.hidden(ids, &inputs, None, &[]).0)
    }

    /// The checkpoint's module name of layer `path`: `model.` + path (`lm_head` stays).
    pub fn checkpoint_path_of(&self, path: &str) -> String {
        if path == "lm_head" {
            path.to_string()
        } else {
            format!("model.{path}")
        }
    }
}

/// `[batch, len]` ids of a padded batch on `device`.
pub fn ids_tensor<B: Backend>(batch: &PaddedBatch, device: &B::Device) -> Tensor<B, 2, Int> {
    Tensor::from_data(
        TensorData::new(batch.ids.clone(), [batch.batch, batch.len]),
        device,
    )
}

impl<B: Backend> Backbone<B> for LlamaModel<B> {
    type Input = TokenIds;

    fn feature_dim(&self) -> usize {
        self.hidden_size()
    }

    /// The final-norm hidden state of each row's last token (as `LlamaForSequenceClassification`
    /// pools): `[batch, d]`.
    fn features(&self, inputs: &[&TokenIds]) -> Tensor<B, 2> {
        self.layer_states(inputs, &[]).features
    }

    /// `num_hidden_layers + 1` states: the embedding output, each block's output (the last one
    /// after the final norm).
    fn num_layer_states(&self) -> usize {
        self.layers.len() + 1
    }

    fn layer_states(&self, inputs: &[&TokenIds], layers: &[usize]) -> HiddenStates<B> {
        let device = self.device();
        let rows: Vec<&[u32]> = inputs.iter().map(|r| r.as_slice()).collect();
        let batch = PaddedBatch::new(&rows, 0, PadSide::Right);
        let att = AttentionInputs::new(
            &batch.mask,
            batch.batch,
            batch.len,
            batch.len,
            self.head_dim(),
            self.rope_theta,
            &device,
        );
        let (h, states) = self.hidden(ids_tensor(&batch, &device), &att, None, layers);
        let last: Vec<i64> = rows
            .iter()
            .map(|r| r.len().saturating_sub(1) as i64)
            .collect();
        let d = self.hidden_size();
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(last, [rows.len()]), &device)
            .reshape([rows.len(), 1, 1])
            .repeat_dim(2, d);
        let features = h.gather(1, index).reshape([rows.len(), d]);
        HiddenStates {
            features,
            layers: states,
            mask: Tensor::from_data(
                TensorData::new(batch.mask, [batch.batch, batch.len]),
                &device,
            ),
        }
    }

    fn lora_layers(&self) -> Vec<(String, &LoraLinear<B>)> {
        let mut out = Vec::with_capacity(self.layers.len() * 7 + 1);
        for (i, l) in self.layers.iter().enumerate() {
            let (a, m) = (&l.self_attn, &l.mlp);
            out.push((format!("layers.{i}.self_attn.q_proj"), &a.q_proj));
            out.push((format!("layers.{i}.self_attn.k_proj"), &a.k_proj));
            out.push((format!("layers.{i}.self_attn.v_proj"), &a.v_proj));
            out.push((format!("layers.{i}.self_attn.o_proj"), &a.o_proj));
            out.push((format!("layers.{i}.mlp.gate_proj"), &m.gate_proj));
            out.push((format!("layers.{i}.mlp.up_proj"), &m.up_proj));
            out.push((format!("layers.{i}.mlp.down_proj"), &m.down_proj));
        }
        if let Some(head) = &self.lm_head {
            out.push(("lm_head".into(), head));
        }
        out
    }

    fn lora_layers_mut(&mut self) -> Vec<(String, &mut LoraLinear<B>)> {
        let mut out = Vec::with_capacity(self.layers.len() * 7 + 1);
        for (i, l) in self.layers.iter_mut().enumerate() {
            let (a, m) = (&mut l.self_attn, &mut l.mlp);
            out.push((format!("layers.{i}.self_attn.q_proj"), &mut a.q_proj));
            out.push((format!("layers.{i}.self_attn.k_proj"), &mut a.k_proj));
            out.push((format!("layers.{i}.self_attn.v_proj"), &mut a.v_proj));
            out.push((format!("layers.{i}.self_attn.o_proj"), &mut a.o_proj));
            out.push((format!("layers.{i}.mlp.gate_proj"), &mut m.gate_proj));
            out.push((format!("layers.{i}.mlp.up_proj"), &mut m.up_proj));
            out.push((format!("layers.{i}.mlp.down_proj"), &mut m.down_proj));
        }
        if let Some(head) = &mut self.lm_head {
            out.push(("lm_head".into(), head));
        }
        out
    }

    fn device(&self) -> B::Device {
        self.embed_tokens.weight.device()
    }

    fn checkpoint_path(&self, path: &str) -> String {
        self.checkpoint_path_of(path)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backbone::add_lora;
    use crate::peft::LoraConfig;
    use burn::backend::NdArray;
    use burn::module::Param;
    use burn::tensor::Distribution;

    pub(crate) type B = NdArray<f32>;

    pub(crate) fn tiny_config() -> LlamaConfig {
        LlamaConfig::tiny(50)
    }

    /// A random 2-block decoder (d 64, 4 query / 2 key-value heads, vocab 50).
    pub(crate) fn tiny(seed: u64) -> LlamaModel<B> {
        let device = Default::default();
        B::seed(&device, seed);
        tiny_config().init::<B>(&device).unwrap()
    }

    /// Logits of each row's real positions: `[row][position][vocab]`.
    fn logits(model: &LlamaModel<B>, rows: &[&[u32]], side: PadSide) -> Vec<Vec<Vec<f32>>> {
        let batch = PaddedBatch::new(rows, 0, side);
        let out = model.forward_batch(&batch);
        let v = out.dims()[2];
        let flat: Vec<f32> = out.into_data().into_vec().unwrap();
        rows.iter()
            .enumerate()
            .map(|(b, r)| {
                let start = match side {
                    PadSide::Left => batch.len - r.len(),
                    PadSide::Right => 0,
                };
                (start..start + r.len())
                    .map(|p| flat[(b * batch.len + p) * v..(b * batch.len + p + 1) * v].to_vec())
                    .collect()
            })
            .collect()
    }

    fn max_diff(a: &[Vec<Vec<f32>>], b: &[Vec<Vec<f32>>]) -> f32 {
        a.iter()
            .flatten()
            .flatten()
            .zip(b.iter().flatten().flatten())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn padding_on_either_side_changes_nothing() {
        let model = tiny(1);
        let rows: [&[u32]; 3] = [&[3, 14, 15, 9, 26], &[5, 35], &[8]];
        let alone: Vec<Vec<Vec<f32>>> = rows
            .iter()
            .map(|r| logits(&model, &[r], PadSide::Right).remove(0))
            .collect();
        for side in [PadSide::Right, PadSide::Left] {
            let batched = logits(&model, &rows, side);
            let diff = max_diff(&alone, &batched);
            assert!(diff < 1e-4, "{side:?} padding changes logits by {diff}");
        }
        // Pooled features: the last real token's state, whatever the padding.
        let inputs: Vec<TokenIds> = rows.iter().map(|r| r.to_vec()).collect();
        let refs: Vec<&TokenIds> = inputs.iter().collect();
        let batched = model.features(&refs);
        for (i, r) in refs.iter().enumerate() {
            let one = model.features(&[r]);
            let diff = (batched.clone().narrow(0, i, 1) - one)
                .abs()
                .max()
                .into_scalar();
            assert!(
                diff < 1e-4,
                "features of row {i} differ by {diff} in a batch"
            );
        }
    }

    #[test]
    fn later_tokens_do_not_change_earlier_logits() {
        let model = tiny(2);
        let a = logits(&model, &[&[1, 2, 3, 4, 5]], PadSide::Right).remove(0);
        let b = logits(&model, &[&[1, 2, 3, 40, 41]], PadSide::Right).remove(0);
        let diff = max_diff(&[a[..3].to_vec()], &[b[..3].to_vec()]);
        assert!(
            diff < 1e-5,
            "a later token leaks into earlier positions: {diff}"
        );
        let last = max_diff(&[a[3..].to_vec()], &[b[3..].to_vec()]);
        assert!(last > 1e-3, "different tokens gave the same logits");
    }

    #[test]
    fn merged_lora_equals_unmerged_on_every_projection() {
        let mut model = tiny(3);
        let cfg = LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: vec!["*".into()],
        };
        assert_eq!(add_lora(&mut model, &cfg, 7).unwrap(), 14);
        let device = Default::default();
        for (_, layer) in model.lora_layers_mut() {
            let d_out = layer.dims()[1];
            let b = Tensor::<B, 2>::random([4, d_out], Distribution::Normal(0.0, 0.3), &device);
            layer.adapters[0].lora_b = Param::from_tensor(b);
        }
        let rows: [&[u32]; 2] = [&[4, 8, 15, 16, 23, 42], &[7, 7]];
        let before = logits(&tiny(3), &rows, PadSide::Right);
        let unmerged = logits(&model, &rows, PadSide::Right);
        assert!(
            max_diff(&before, &unmerged) > 1e-2,
            "the adapters change nothing"
        );
        for (_, layer) in model.lora_layers_mut() {
            let merged = layer.clone().merge();
            *layer = LoraLinear::frozen(merged);
        }
        let merged = logits(&model, &rows, PadSide::Right);
        let diff = max_diff(&unmerged, &merged);
        assert!(diff < 1e-4, "merged LoRA differs by {diff}");
    }

    #[test]
    fn untied_head_is_a_lora_layer_and_paths_map_to_the_checkpoint() {
        let device = Default::default();
        let cfg = LlamaConfig {
            tie_word_embeddings: false,
            ..tiny_config()
        };
        let model = cfg.init::<B>(&device).unwrap();
        let paths: Vec<String> = model.lora_layers().into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths.len(), 15);
        assert_eq!(paths[0], "layers.0.self_attn.q_proj");
        assert_eq!(paths[13], "layers.1.mlp.down_proj");
        assert_eq!(paths[14], "lm_head");
        assert_eq!(
            model.checkpoint_path_of("layers.1.mlp.up_proj"),
            "model.layers.1.mlp.up_proj"
        );
        assert_eq!(model.checkpoint_path_of("lm_head"), "lm_head");
        assert_eq!(model.layers[0].self_attn.k_proj.dims(), [64, 32]);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let err = |cfg: LlamaConfig| cfg.validate().unwrap_err().to_string();
        let c = LlamaConfig {
            num_key_value_heads: Some(3),
            ..tiny_config()
        };
        assert!(err(c).contains("llama.num_key_value_heads"));
        let c = LlamaConfig {
            rope_scaling: Some(serde_json::json!({"rope_type": "llama3"})),
            ..tiny_config()
        };
        assert!(err(c).contains("llama.rope_scaling"));
        let c = LlamaConfig {
            hidden_act: "gelu".into(),
            ..tiny_config()
        };
        assert!(err(c).contains("llama.hidden_act"));
        let c = LlamaConfig {
            hidden_size: 0,
            ..tiny_config()
        };
        assert!(err(c).contains("llama.hidden_size"));
        let json = r#"{"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 1, "num_attention_heads": 2, "rope_scaling": null}"#;
        let c: LlamaConfig = serde_json::from_str(json).unwrap();
        c.validate().unwrap();
        assert_eq!((c.kv_heads(), c.head_width()), (2, 4));
    }
}
