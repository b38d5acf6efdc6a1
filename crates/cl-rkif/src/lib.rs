//! cl-rkif: Recurrent-KIF (seed 002, "Recurrent Knowledge Identification and Fusion for
//! Language Model Continual Learning").
//!
//! One LoRA (and the head) is carried across tasks. Training a task is a sequence of cycles:
//! `K` inner optimiser steps on current-task batches, then `M` outer steps on replay batches;
//! every step updates a per-element importance `s = Ī ⊙ U` of `I = |θ ⊙ ∇L|` (EMA-smoothed
//! mean `Ī` and deviation `U`). At the end of a cycle the two loops' updates `Δ_in`, `Δ_out` are
//! fused element by element according to whether each element is in the global top 20% of the
//! scores: `θ ← θ_s + w_in ⊙ Δ_in + w_out ⊙ Δ_out`.
//!
//! - [`config`]: [`RkifConfig`] (LoRA, optimiser, memory, `K`, `M`, β, threshold, ablations).
//! - [`importance`]: gradients by parameter path and the smoothed importance scores.
//! - [`fusion`]: the on-device quantile, the masks and the fusion rules.
//! - [`method`]: the [`Rkif`] method (the `Method` trait) and its checkpoints.

pub mod config;
pub mod fusion;
pub mod importance;
pub mod method;

pub use config::{FusionRule, RkifConfig};
pub use method::Rkif;

cl_core::lora_method! {
    name: "rkif",
    summary: "Recurrent-KIF: inner/outer loops, smoothed |θ·∇θ| importance, masked fusion of task knowledge",
    config: RkifConfig,
    method: Rkif,
}
