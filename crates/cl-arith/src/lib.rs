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

cl_core::lora_method! {
    name: "arith",
    summary: "one LoRA per task, merged by task arithmetic with λ chosen on validation data (no task id, no stored data)",
    config: ArithConfig,
    method: Arith,
}
