//! Configuration of cl-modulation (JSON; unknown keys are errors).

use cl_core::baselines::OptimizerConfig;
use cl_core::error::{ClError, Result};
use serde::{Deserialize, Serialize};

use crate::interpolate::Interpolation;

/// What a task learns on top of the frozen weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TransformKind {
    /// The method: a per-task grid `M_t` (initialised to 1), interpolated to `(out, in)` and
    /// multiplied with the frozen weight, broadcast over the kernel.
    #[default]
    Modulation,
    /// Piggyback-style baseline: per-task real-valued scores (initialised to `mask_init`),
    /// thresholded at `mask_threshold` into a binary mask (straight-through gradient), resized by
    /// nearest neighbour and multiplied with the frozen weight.
    Mask,
    /// Forgetting reference: one additive update of every weight, shared by all tasks and trained
    /// task after task (per-task heads and statistics as the others).
    Finetune,
}

impl TransformKind {
    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            TransformKind::Modulation => "modulation",
            TransformKind::Mask => "piggyback",
            TransformKind::Finetune => "finetune",
        }
    }
}

/// Size of the grid of a weight `[out, in, kh, kw]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// `(m₁, m₂)` for every weight (capped at `(out, in)`), resized to `(out, in)` and broadcast
    /// over the kernel.
    Fixed([usize; 2]),
    /// `(round(f · out), round(f · in))`, at least 1: the grid grows with the layer.
    Proportional(f64),
    /// One value per weight element, `[out, in · kh · kw]` (Piggyback's original masks); no
    /// interpolation.
    Full,
}

impl Default for Resolution {
    fn default() -> Self {
        Resolution::Fixed([4, 4])
    }
}

impl Resolution {
    /// The grid of a weight `[out, in, kh, kw]`, and whether it spans the kernel axes too.
    pub fn grid(self, [out, inp, kh, kw]: [usize; 4]) -> ([usize; 2], bool) {
        match self {
            Resolution::Fixed([m1, m2]) => ([m1.min(out), m2.min(inp)], false),
            Resolution::Proportional(f) => {
                let size = |n: usize| ((n as f64 * f).round() as usize).clamp(1, n);
                ([size(out), size(inp)], false)
            }
            Resolution::Full => ([out, inp * kh * kw], true),
        }
    }
}

/// How batch norms behave per task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Statistics {
    /// Training normalises with batch statistics and updates the task's own running statistics
    /// (started from the pre-trained ones); evaluation uses the task's stored statistics.
    #[default]
    PerTask,
    /// The pre-trained running statistics everywhere (evaluation-mode batch norm).
    Frozen,
}

/// Batch-norm settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormConfig {
    /// Statistics per task or frozen.
    #[serde(default)]
    pub statistics: Statistics,
    /// Train a per-task `γ`, `β` (started from the pre-trained ones).
    #[serde(default = "yes")]
    pub affine: bool,
    /// Running-statistics momentum (PyTorch's convention: `r ← (1 − m) r + m · batch`).
    #[serde(default = "momentum")]
    pub momentum: f64,
}

fn yes() -> bool {
    true
}

fn momentum() -> f64 {
    0.1
}

impl Default for NormConfig {
    fn default() -> Self {
        Self {
            statistics: Statistics::PerTask,
            affine: true,
            momentum: momentum(),
        }
    }
}

/// Everything cl-modulation reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModulationConfig {
    /// Modulation (the method), mask (Piggyback) or finetune.
    #[serde(default)]
    pub kind: TransformKind,
    /// Grid size; default `(4, 4)`.
    #[serde(default)]
    pub resolution: Resolution,
    /// Kernel resizing a modulation grid (masks always use nearest neighbour).
    #[serde(default)]
    pub interpolation: Interpolation,
    /// Initial mask score (Piggyback: 1e-2).
    #[serde(default = "mask_init")]
    pub mask_init: f64,
    /// Mask threshold (Piggyback: 5e-3): every weight is kept at the start.
    #[serde(default = "mask_threshold")]
    pub mask_threshold: f64,
    /// Batch norms.
    #[serde(default)]
    pub norm: NormConfig,
    /// AdamW over the task's norms and head (and grids unless `grid_lr` is set), with
    /// `optimizer.schedule` over each task's steps and `optimizer.max_grad_norm` clipping the
    /// global norm of all the task's gradients.
    #[serde(default = "optimizer")]
    pub optimizer: OptimizerConfig,
    /// Learning rate of the grids (their own AdamW), when it differs from `optimizer.lr`
    /// (Piggyback trains its mask scores at 1e-4 while the head needs a larger rate).
    #[serde(default)]
    pub grid_lr: Option<f64>,
}

fn mask_init() -> f64 {
    1e-2
}

fn mask_threshold() -> f64 {
    5e-3
}

fn optimizer() -> OptimizerConfig {
    OptimizerConfig {
        lr: 5e-3,
        ..OptimizerConfig::default()
    }
}

impl Default for ModulationConfig {
    fn default() -> Self {
        Self {
            kind: TransformKind::Modulation,
            resolution: Resolution::default(),
            interpolation: Interpolation::Bicubic,
            mask_init: mask_init(),
            mask_threshold: mask_threshold(),
            norm: NormConfig::default(),
            optimizer: optimizer(),
            grid_lr: None,
        }
    }
}

impl ModulationConfig {
    /// Checks every field; errors name it.
    pub fn validate(&self) -> Result<()> {
        match self.resolution {
            Resolution::Fixed([m1, m2]) if m1 == 0 || m2 == 0 => {
                return Err(ClError::config(
                    "resolution.fixed",
                    "both grid sizes must be at least 1",
                ));
            }
            Resolution::Proportional(f) if !(f > 0.0 && f <= 1.0) => {
                return Err(ClError::config(
                    "resolution.proportional",
                    format!("{f} is not in (0, 1]"),
                ));
            }
            _ => {}
        }
        self.optimizer.validate("optimizer")?;
        if let Some(lr) = self.grid_lr
            && !(lr > 0.0 && lr.is_finite())
        {
            return Err(ClError::config("grid_lr", "must be a positive number"));
        }
        if !(0.0..=1.0).contains(&self.norm.momentum) {
            return Err(ClError::config("norm.momentum", "must be in [0, 1]"));
        }
        if self.kind == TransformKind::Mask && self.mask_init <= self.mask_threshold {
            return Err(ClError::config(
                "mask_init",
                "must exceed mask_threshold (every weight kept at the start)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_are_capped_proportional_or_full() {
        let depthwise = [96, 1, 3, 3];
        assert_eq!(Resolution::Fixed([4, 4]).grid(depthwise), ([4, 1], false));
        assert_eq!(
            Resolution::Proportional(0.05).grid([1280, 320, 1, 1]),
            ([64, 16], false)
        );
        assert_eq!(
            Resolution::Proportional(0.05).grid(depthwise),
            ([5, 1], false)
        );
        assert_eq!(Resolution::Full.grid(depthwise), ([96, 9], true));
    }

    #[test]
    fn json_round_trip_and_errors_name_fields() {
        let cfg: ModulationConfig = serde_json::from_str(
            r#"{"kind": "mask", "resolution": "full", "norm": {"affine": false}}"#,
        )
        .unwrap();
        assert_eq!(cfg.kind, TransformKind::Mask);
        assert_eq!(cfg.resolution, Resolution::Full);
        assert!(!cfg.norm.affine && cfg.norm.momentum == 0.1);
        let fixed: ModulationConfig =
            serde_json::from_str(r#"{"resolution": {"fixed": [8, 8]}}"#).unwrap();
        assert_eq!(fixed.resolution, Resolution::Fixed([8, 8]));
        let unknown = serde_json::from_str::<ModulationConfig>(r#"{"resolutoin": 4}"#)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("resolutoin"), "{unknown}");
        let zero = ModulationConfig {
            resolution: Resolution::Fixed([0, 4]),
            ..Default::default()
        };
        assert!(
            zero.validate()
                .unwrap_err()
                .to_string()
                .contains("resolution.fixed")
        );
    }
}
