//! cl-arith: parameter isolation then combination (seed 000, "Neural Networks Remember More").
//!
//! Every task trains a fresh LoRA or Houlsby adapters (from one shared initialisation, or from the previous task's
//! module) plus its own classifier columns on the frozen backbone, in isolation. Its task vector
//! `τ_t = θ_t − θ_before` is stored; no data is kept. After every task ("any-time" evaluation)
//! the finished task vectors are combined, `θ = θ_init + Σ_t λ_t·τ_t`, into one model that
//! predicts with no task id. λ is fixed or chosen on the tasks' validation splits (never test).
//!
//! - [`config`]: [`ArithConfig`] (LoRA, optimiser, merge level and strategy, λ).
//! - [`merge`]: building the merged model in ΔW space (exact) or factor space.
//! - [`method`]: the [`Arith`] method (the `Method` trait), checkpoints and PEFT export.
//! - [`store`]: task vectors on disk (one safetensors file per task and a JSON manifest).

pub mod config;
pub mod merge;
pub mod method;
pub mod store;

pub use config::{ArithConfig, InitFrom, LambdaChoice, MergeLevel, ModuleKind};
pub use method::Arith;

use burn::tensor::backend::AutodiffBackend;
use cl_core::backbone::TrainableBackbone;
use cl_core::registry::{
    BackboneKind, BoxedMethod, LoraMethodConfig, MethodEntry, default_lora, default_optimizer,
    lora_entry,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The registry entry of `arith` (see [`cl_core::registry`]).
pub fn entry<B: AutodiffBackend>() -> MethodEntry<B> {
    lora_entry::<B, ArithConfig>(
        "arith",
        "one LoRA per task, merged by task arithmetic with λ chosen on validation data (no task id, no stored data)",
        env!("CARGO_PKG_NAME"),
    )
}

impl<B: AutodiffBackend> LoraMethodConfig<B> for ArithConfig {
    fn defaults(backbone: BackboneKind) -> Self {
        ArithConfig {
            lora: default_lora(backbone),
            optimizer: default_optimizer(backbone),
            ..ArithConfig::default()
        }
    }

    fn check(&self) -> cl_core::Result<()> {
        self.validate()
    }

    fn build<M>(
        self,
        backbone: M,
        classes: usize,
        seed: u64,
    ) -> cl_core::Result<BoxedMethod<B, M::Input>>
    where
        M: TrainableBackbone<B> + 'static,
        M::Input: Serialize + DeserializeOwned,
    {
        Ok(Box::new(Arith::new(self, backbone, classes, seed)?))
    }
}
