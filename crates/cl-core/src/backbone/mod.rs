//! Frozen pre-trained backbones with LoRA-capable linear layers.
//!
//! A backbone turns a batch of host-side inputs into pooled features `[batch, feature_dim]` and
//! exposes its linear layers by module path, so a method can put adapters on the layers that its
//! LoRA targets select, freeze them or merge them, without knowing the architecture.

pub mod bert;
pub mod bert_loader;
pub mod bert_vocab;
pub mod conv;
pub mod llama;
pub mod llama_generate;
pub mod llama_lm;
pub mod llama_loader;
pub mod mlp;
pub mod mobilenet_loader;
pub mod mobilenet_v2;
pub mod tokenizer;

use burn::module::{AutodiffModule, Module, ModuleDisplay};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::error::{ClError, Result};
use crate::peft::{AdapterConfig, LoraConfig, LoraLinear, matches_target};
use crate::stream::mix_seed;

pub use bert::{BertConfig, BertEncoder, TokenIds};
pub use bert_loader::load_bert;
pub use llama::{LlamaConfig, LlamaModel, PadSide, PaddedBatch};
pub use llama_generate::{
    Finish, Generated, GenerationConfig, Prefill, Sampling, TextGenerator, continue_generation,
    generate, prefill,
};
pub use llama_lm::{
    AnswerForward, answer_forward, answer_log_probs, answer_loss, per_row_mean_nll,
    score_continuations,
};
pub use llama_loader::{llama_config_from_gguf, load_llama_gguf, load_llama_safetensors};
pub use mlp::{MlpBackbone, MlpBackboneConfig};
pub use mobilenet_loader::load_mobilenet_v2;
pub use mobilenet_v2::{Image, MobileNetV2};
pub use tokenizer::TextTokenizer;

/// A frozen feature extractor whose linear layers are [`LoraLinear`]s.
pub trait Backbone<B: Backend>: Module<B> + ModuleDisplay {
    /// One example's input as it lives on the host (token ids, pixels, a feature vector...).
    type Input: Clone + Send + Sync + std::fmt::Debug + 'static;

    /// Width of [`Backbone::features`].
    fn feature_dim(&self) -> usize;

    /// Pooled features of a batch: `[batch, feature_dim]`, on the backbone's device.
    fn features(&self, inputs: &[&Self::Input]) -> Tensor<B, 2>;

    /// How many hidden states [`Backbone::layer_states`] can return (indices `0..n`).
    /// The default exposes one: the pooled features.
    fn num_layer_states(&self) -> usize {
        1
    }

    /// Pooled features and the hidden states `layers` selects, in one forward pass (for
    /// consistency losses such as I-LoRA's). The default's only state, index 0, is the pooled
    /// features as `[batch, 1, feature_dim]`. Indices must be below [`Backbone::num_layer_states`]
    /// (methods check this once, with [`resolve_layer_states`]).
    fn layer_states(&self, inputs: &[&Self::Input], layers: &[usize]) -> HiddenStates<B> {
        let features = self.features(inputs);
        let [batch, dim] = features.dims();
        let state = features.clone().reshape([batch, 1, dim]);
        HiddenStates {
            layers: layers.iter().map(|_| state.clone()).collect(),
            mask: Tensor::ones([batch, 1], &features.device()),
            features,
        }
    }

    /// Every LoRA-capable linear layer with its module path (e.g. `layers.0.attention.query`).
    fn lora_layers(&self) -> Vec<(String, &LoraLinear<B>)>;

    /// Mutable access to the same layers, in the same order.
    fn lora_layers_mut(&mut self) -> Vec<(String, &mut LoraLinear<B>)>;

    /// Device holding the backbone's parameters.
    fn device(&self) -> B::Device;

    /// The module name of layer `path` in the original checkpoint (for MiniLM, the Hugging Face
    /// name: `layers.0.attention.query` → `encoder.layer.0.attention.self.query`), used by the
    /// PEFT-format export and import. Defaults to `path` itself.
    fn checkpoint_path(&self, path: &str) -> String {
        path.to_string()
    }

    /// Inserts fresh Houlsby adapters (identity at initialisation) where the architecture has
    /// slots for them; returns how many. Adapter `k` (in slot order) is drawn from
    /// `mix_seed(seed, [k])` on the host. Their parameter paths contain `.adapter.`
    /// ([`ADAPTER_PARAMS`]). The default has no slots and says so.
    fn add_adapters(&mut self, _cfg: &AdapterConfig, _seed: u64) -> Result<usize> {
        Err(ClError::config(
            "module",
            "this backbone has no adapter slots (use LoRA)",
        ))
    }
}

/// A batch's pooled features with some of its hidden states (see [`Backbone::layer_states`]).
#[derive(Debug, Clone)]
pub struct HiddenStates<B: Backend> {
    /// Pooled features `[batch, feature_dim]`, exactly what [`Backbone::features`] returns.
    pub features: Tensor<B, 2>,
    /// One tensor per requested state, `[batch, positions, width]` (positions: tokens of a
    /// padded text batch; 1 for a vector input).
    pub layers: Vec<Tensor<B, 3>>,
    /// `[batch, positions]`: 1 at real positions, 0 at padding.
    pub mask: Tensor<B, 2>,
}

/// Resolves configured hidden-state indices against a backbone with `available` states:
/// `i ≥ 0` is state `i`, `-k` the `k`-th from the end (`-1` = last). Errors name `field`.
pub fn resolve_layer_states(field: &str, wanted: &[i64], available: usize) -> Result<Vec<usize>> {
    if wanted.is_empty() {
        return Err(ClError::config(field, "lists no hidden state"));
    }
    wanted
        .iter()
        .map(|&i| {
            let resolved = if i < 0 { available as i64 + i } else { i };
            if resolved < 0 || resolved >= available as i64 {
                Err(ClError::config(
                    field,
                    format!("hidden state {i} does not exist; the backbone has {available} (0..{available}, or -1 for the last)"),
                ))
            } else {
                Ok(resolved as usize)
            }
        })
        .collect()
}

/// Pattern of the parameter paths of Houlsby adapters (for [`crate::peft::ParamFilter::Patterns`]).
pub const ADAPTER_PARAMS: &str = "*.adapter.*";

/// A backbone that can be trained under autodiff and evaluated on the inner backend with the
/// same inputs: what every method's model needs. Implemented for every such backbone.
pub trait TrainableBackbone<B: AutodiffBackend>: Backbone<B>
    + AutodiffModule<B, InnerModule: Backbone<B::InnerBackend, Input = <Self as Backbone<B>>::Input>>
{
}

impl<B, M> TrainableBackbone<B> for M
where
    B: AutodiffBackend,
    M: Backbone<B> + AutodiffModule<B>,
    M::InnerModule: Backbone<B::InnerBackend, Input = M::Input>,
{
}

/// Puts one fresh adapter on every layer that `cfg.targets` selects; returns how many layers got
/// one. Layer `i`'s `A` factor is drawn from `mix_seed(seed, [i])`. Errors if no layer matches,
/// listing the available paths.
pub fn add_lora<B: Backend, M: Backbone<B>>(
    backbone: &mut M,
    cfg: &LoraConfig,
    seed: u64,
) -> Result<usize> {
    cfg.validate()?;
    let mut count = 0;
    let mut available = Vec::new();
    for (i, (path, layer)) in backbone.lora_layers_mut().into_iter().enumerate() {
        if cfg.targets.iter().any(|p| matches_target(&path, p)) {
            layer.push_adapter(cfg, mix_seed(seed, &[i as u64]));
            count += 1;
        }
        available.push(path);
    }
    if count == 0 {
        return Err(ClError::config(
            "lora.targets",
            format!(
                "{:?} selects no layer; the backbone's layers are {available:?}",
                cfg.targets
            ),
        ));
    }
    Ok(count)
}

/// Stops gradients to every adapter present (IncLoRA freezes the earlier tasks' adapters).
pub fn freeze_adapters<B: Backend, M: Backbone<B>>(backbone: &mut M) {
    for (_, layer) in backbone.lora_layers_mut() {
        layer.freeze_adapters();
    }
}

/// Number of adapters on each LoRA layer, by path (for checkpoints and tests).
pub fn adapter_counts<B: Backend, M: Backbone<B>>(backbone: &M) -> Vec<(String, usize)> {
    backbone
        .lora_layers()
        .into_iter()
        .map(|(path, layer)| (path, layer.adapters.len()))
        .collect()
}
