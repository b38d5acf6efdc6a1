//! cl-modulation: adaptive weight modulation of a frozen CNN for task-incremental learning with
//! zero forgetting (seed 003).
//!
//! For task `t` and every conv / linear weight `W: [out, in, kh, kw]` of the frozen backbone, a
//! grid `M_t: [m₁, m₂]` (initialised to 1) is interpolated to `(out, in)` (bicubic by default),
//! broadcast over the kernel and multiplied in: the task's weight is `W ⊙ interp(M_t)`. Each task
//! also trains its own head and batch norms (running statistics from its own batches, `γ`/`β` by
//! config), stored at the end of the task and used whenever it is evaluated. Evaluating task `j`
//! touches nothing later tasks change, so its logits after any number of further tasks are
//! bit-identical to those right after it (tested).
//!
//! - [`config`]: [`ModulationConfig`] (kind, resolution, interpolation, norms, optimiser).
//! - [`interpolate`]: grids resized as `R_out · M · R_inᵀ` (bicubic / bilinear / nearest,
//!   PyTorch's `align_corners=False` convention).
//! - [`modulated`]: a task's [`TaskModule`] and the weights it produces (modulation, Piggyback
//!   mask with a straight-through estimator, fine-tuning update).
//! - [`network`]: what a backbone exposes to be modulated (MobileNetV2, the synthetic MLP).
//! - [`method`]: the [`Modulation`] method (`Method` trait), checkpoints.

pub mod config;
pub mod interpolate;
pub mod method;
pub mod modulated;
pub mod network;

pub use config::{ModulationConfig, NormConfig, Resolution, Statistics, TransformKind};
pub use interpolate::Interpolation;
pub use method::Modulation;
pub use modulated::{LayerPlan, TaskModule};
pub use network::{ModulatableBackbone, ModulationBackbone};
