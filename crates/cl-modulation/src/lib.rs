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

use burn::tensor::backend::AutodiffBackend;
use cl_core::ClError;
use cl_core::registry::{
    BackboneKind, BuiltMethod, HostBackbone, MethodEntry, MethodInfo, config_from_json,
    config_to_json, default_optimizer,
};
use cl_core::stream::Scenario;

impl TransformKind {
    /// Every kind, in listing order.
    pub const ALL: [TransformKind; 3] = [
        TransformKind::Modulation,
        TransformKind::Mask,
        TransformKind::Finetune,
    ];

    /// One line: what it does (`cl methods`).
    pub fn summary(self) -> &'static str {
        match self {
            TransformKind::Modulation => {
                "per-task low-resolution modulation of the frozen weights, per-task batch norms and heads (zero forgetting)"
            }
            TransformKind::Mask => "Piggyback: per-task binary masks of the frozen weights",
            TransformKind::Finetune => {
                "one additive update of every weight shared by all tasks (the forgetting reference)"
            }
        }
    }

    /// The registry entry of this kind (see [`cl_core::registry`]).
    pub fn entry<B: AutodiffBackend>(self) -> MethodEntry<B> {
        MethodEntry {
            info: MethodInfo {
                name: self.name(),
                summary: self.summary(),
                crate_name: env!("CARGO_PKG_NAME"),
                scenarios: &[Scenario::TaskIncremental],
                backbones: &[BackboneKind::MobileNetV2, BackboneKind::SyntheticMlp],
            },
            default_config: Box::new(move |backbone| {
                config_to_json(&ModulationConfig {
                    kind: self,
                    optimizer: default_optimizer(backbone),
                    ..ModulationConfig::default()
                })
            }),
            parse_config: Box::new(move |config| {
                let cfg = self.config(config)?;
                Ok(config_to_json(&cfg))
            }),
            build: Box::new(move |config, backbone, classes, seed| {
                let cfg = self.config(config)?;
                Ok(match backbone {
                    HostBackbone::MobileNetV2(b) => {
                        BuiltMethod::MobileNetV2(Box::new(Modulation::new(cfg, b, classes, seed)?))
                    }
                    HostBackbone::SyntheticMlp(b) => {
                        BuiltMethod::SyntheticMlp(Box::new(Modulation::new(cfg, b, classes, seed)?))
                    }
                    other => {
                        return Err(ClError::config(
                            "backbone",
                            format!(
                                "{} modulates conv / linear weights of mobilenet-v2 or synthetic-mlp, not {}",
                                self.name(),
                                other.kind().name()
                            ),
                        ));
                    }
                })
            }),
        }
    }

    /// `config` parsed and checked; its `kind` must be this one (the method name decides what
    /// is learnt per task).
    fn config(self, config: serde_json::Value) -> cl_core::Result<ModulationConfig> {
        let cfg: ModulationConfig = config_from_json(config)?;
        if cfg.kind != self {
            return Err(ClError::config(
                "kind",
                format!(
                    "{} is what --method {} learns, but --method {} learns {}: remove `kind`, or run the method that config is for",
                    config_to_json(&cfg.kind),
                    cfg.kind.name(),
                    self.name(),
                    config_to_json(&self)
                ),
            ));
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The registry entries of cl-modulation: modulation, piggyback, finetune.
pub fn entries<B: AutodiffBackend>() -> Vec<MethodEntry<B>> {
    TransformKind::ALL
        .into_iter()
        .map(TransformKind::entry)
        .collect()
}
