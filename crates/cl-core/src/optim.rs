//! The optimiser every method and baseline trains with: AdamW, a learning-rate schedule over a
//! task's steps and optional gradient-norm clipping, all from one [`OptimizerConfig`].
//!
//! Schedules follow Hugging Face `transformers` (`get_*_schedule_with_warmup`), which the
//! official Recurrent-KIF and I-LoRA runs use: the multiplier at optimiser step `k` (0-based, the
//! `k`-th update of the task) over a task of `n` steps with `w` warm-up steps is
//!
//! - `constant`: 1;
//! - `constant-with-warmup`: `k / w` for `k < w`, then 1;
//! - `linear`: `k / w` for `k < w`, then `max(0, (n − k) / (n − w))`;
//! - `cosine`: `k / w` for `k < w`, then `max(0, ½(1 + cos(π·(k − w)/(n − w))))`.
//!
//! So the first step of a warm-up runs at learning rate 0, as there. Clipping is by the global
//! norm over every parameter's gradient, as `torch.nn.utils.clip_grad_norm_`: with
//! `N = sqrt(Σ‖g‖²)`, every gradient is multiplied by `max_norm / (N + 1e-6)` when that is < 1.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ClError, Result};

/// Learning-rate schedule over one task's optimiser steps (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum Schedule {
    /// The configured learning rate throughout.
    #[default]
    Constant,
    /// Linear warm-up from 0, then constant.
    ConstantWithWarmup {
        /// Warm-up steps.
        warmup_steps: usize,
    },
    /// Linear warm-up from 0, then linear decay to 0 at the task's last step.
    Linear {
        /// Warm-up steps.
        warmup_steps: usize,
    },
    /// Linear warm-up from 0, then half a cosine down to 0 at the task's last step.
    Cosine {
        /// Warm-up steps.
        warmup_steps: usize,
    },
}

impl Schedule {
    /// The multiplier of the learning rate at step `step` of a task of `total` steps.
    pub fn factor(self, step: usize, total: usize) -> f64 {
        let (k, n) = (step as f64, total as f64);
        let warm = |w: usize| (w > 0 && step < w).then(|| k / w as f64);
        match self {
            Schedule::Constant => 1.0,
            Schedule::ConstantWithWarmup { warmup_steps } => warm(warmup_steps).unwrap_or(1.0),
            Schedule::Linear { warmup_steps } => warm(warmup_steps).unwrap_or_else(|| {
                let w = warmup_steps as f64;
                if n <= w {
                    0.0
                } else {
                    ((n - k) / (n - w)).max(0.0)
                }
            }),
            Schedule::Cosine { warmup_steps } => warm(warmup_steps).unwrap_or_else(|| {
                let w = warmup_steps as f64;
                if n <= w {
                    0.0
                } else {
                    let progress = (k - w) / (n - w);
                    (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
                }
            }),
        }
    }
}

/// Optimiser settings (AdamW, schedule, clipping).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Decoupled weight decay.
    #[serde(default)]
    pub weight_decay: f32,
    /// Learning-rate schedule over each task's steps (default constant).
    #[serde(default)]
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value (default: no clipping).
    #[serde(default)]
    pub max_grad_norm: Option<f64>,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            max_grad_norm: None,
        }
    }
}

impl OptimizerConfig {
    /// Checks every field; errors name it (under `prefix`, e.g. `optimizer`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(ClError::config(
                format!("{prefix}.lr"),
                format!("{} must be a positive number", self.lr),
            ));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(ClError::config(
                format!("{prefix}.weight_decay"),
                "must be a non-negative number",
            ));
        }
        if let Some(norm) = self.max_grad_norm
            && !(norm > 0.0 && norm.is_finite())
        {
            return Err(ClError::config(
                format!("{prefix}.max_grad_norm"),
                format!("{norm} must be a positive number (or absent for no clipping)"),
            ));
        }
        Ok(())
    }

    /// A fresh AdamW with this weight decay for module `M` (the learning rate is passed at each
    /// step).
    pub fn adamw<B: AutodiffBackend, M: AutodiffModule<B>>(&self) -> OptimizerAdaptor<AdamW, M, B> {
        AdamWConfig::new()
            .with_weight_decay(self.weight_decay)
            .init()
    }

    /// The learning rate at step `step` of a task of `total` steps.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        self.lr * self.schedule.factor(step, total)
    }

    /// A fresh optimiser for one task of `total_steps` updates.
    pub fn for_task<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
        total_steps: usize,
    ) -> TaskOptimizer<B, M> {
        TaskOptimizer {
            cfg: self.clone(),
            adamw: self.adamw(),
            step: 0,
            total: total_steps,
        }
    }
}

/// AdamW for one task with the schedule and clipping of its [`OptimizerConfig`].
pub struct TaskOptimizer<B: AutodiffBackend, M: AutodiffModule<B>> {
    cfg: OptimizerConfig,
    adamw: OptimizerAdaptor<AdamW, M, B>,
    step: usize,
    total: usize,
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> TaskOptimizer<B, M> {
    /// One update of `module` from `grads` (clipped first when configured), at the scheduled
    /// learning rate; returns the updated module.
    pub fn step(&mut self, module: M, grads: GradientsParams) -> M {
        let module = self.step_held(module, grads);
        self.step += 1;
        module
    }

    /// One update like [`TaskOptimizer::step`] at the current scheduled learning rate, without
    /// advancing the schedule (Recurrent-KIF's outer steps: the official trainer runs them with
    /// the inner optimiser and never steps the scheduler for them).
    pub fn step_held(&mut self, module: M, grads: GradientsParams) -> M {
        let grads = match self.cfg.max_grad_norm {
            Some(max) => clip_grad_norm::<B, M>(&module, grads, max).0,
            None => grads,
        };
        let lr = self.cfg.lr_at(self.step, self.total);
        self.adamw.step(lr, module, grads)
    }

    /// Updates taken so far in this task.
    pub fn steps_taken(&self) -> usize {
        self.step
    }

    /// The learning rate the next update will use.
    pub fn next_lr(&self) -> f64 {
        self.cfg.lr_at(self.step, self.total)
    }
}

/// Scales every gradient of `module`'s parameters so that their global norm is at most `max`
/// (as `torch.nn.utils.clip_grad_norm_`); returns the gradients and the norm before clipping.
pub fn clip_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    mut grads: GradientsParams,
    max: f64,
) -> (GradientsParams, f64) {
    struct SquaredNorm<'a, B: AutodiffBackend> {
        grads: &'a GradientsParams,
        sum: Option<Tensor<B::InnerBackend, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
                let s = g.powi_scalar(2).sum();
                self.sum = Some(match self.sum.take() {
                    Some(acc) => acc + s,
                    None => s,
                });
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                self.grads.register(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    let mut norm = SquaredNorm::<B> {
        grads: &grads,
        sum: None,
    };
    module.visit(&mut norm);
    let Some(sum) = norm.sum else {
        return (grads, 0.0);
    };
    let total = sum.into_scalar().elem::<f64>().sqrt();
    let factor = max / (total + 1e-6);
    if factor < 1.0 {
        let mut scale = Scale {
            grads: &mut grads,
            factor,
        };
        module.visit(&mut scale);
    }
    (grads, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};

    type B = Autodiff<NdArray<f32>>;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn schedules_match_hand_values() {
        // n = 10 steps, w = 2 warm-up steps.
        let linear = Schedule::Linear { warmup_steps: 2 };
        let f: Vec<f64> = (0..10).map(|k| linear.factor(k, 10)).collect();
        // warm-up 0, 1/2; then (10 − k)/8 for k = 2..9.
        let want = [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125];
        assert!(f.iter().zip(want).all(|(a, b)| close(*a, b)), "{f:?}");
        let cosine = Schedule::Cosine { warmup_steps: 2 };
        assert!(close(cosine.factor(1, 10), 0.5));
        assert!(close(cosine.factor(2, 10), 1.0));
        // progress (6 − 2)/8 = ½ → ½(1 + cos(π/2)) = ½.
        assert!(close(cosine.factor(6, 10), 0.5));
        assert!(close(cosine.factor(10, 10), 0.0));
        let warm = Schedule::ConstantWithWarmup { warmup_steps: 4 };
        assert!(close(warm.factor(1, 10), 0.25) && close(warm.factor(7, 10), 1.0));
        assert!(close(Schedule::Constant.factor(0, 10), 1.0));
        // Fewer steps than warm-up: the warm-up never ends.
        assert!(close(linear.factor(1, 1), 0.5));
        let cfg = OptimizerConfig {
            lr: 3e-4,
            schedule: linear,
            ..OptimizerConfig::default()
        };
        assert!(close(cfg.lr_at(4, 10), 3e-4 * 0.75));
    }

    #[test]
    fn config_parses_schedules_and_rejects_bad_values() {
        let cfg: OptimizerConfig = serde_json::from_str(
            r#"{"lr": 3e-4, "schedule": {"kind": "linear", "warmup_steps": 50}, "max_grad_norm": 1.0}"#,
        )
        .unwrap();
        assert_eq!(cfg.schedule, Schedule::Linear { warmup_steps: 50 });
        assert_eq!(cfg.max_grad_norm, Some(1.0));
        let plain: OptimizerConfig = serde_json::from_str(r#"{"lr": 1e-3}"#).unwrap();
        assert_eq!(plain, OptimizerConfig::default());
        let bad = OptimizerConfig {
            max_grad_norm: Some(0.0),
            ..OptimizerConfig::default()
        };
        let err = bad.validate("optimizer").unwrap_err().to_string();
        assert!(err.contains("optimizer.max_grad_norm"), "{err}");
        let err = serde_json::from_str::<OptimizerConfig>(
            r#"{"lr": 1e-3, "schedule": {"kind": "step"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("step"), "{err}");
    }

    #[test]
    fn clipping_scales_to_the_global_norm() {
        let device = Default::default();
        let layer: Linear<B> = LinearConfig::new(2, 1).init(&device);
        // loss = 10·Σ w + 10·b: every gradient is 10; the weight has 2 entries, the bias 1.
        let x = Tensor::<B, 2>::ones([1, 2], &device);
        let loss = layer.forward(x).sum().mul_scalar(10.0);
        let grads = GradientsParams::from_grads(loss.backward(), &layer);
        // Global norm sqrt(3·100) = 17.32...; clipped to 1 → each gradient 10/17.32.
        let (clipped, norm) = clip_grad_norm::<B, _>(&layer, grads, 1.0);
        assert!((norm - 300f64.sqrt()).abs() < 1e-4, "{norm}");
        let w = clipped
            .get::<NdArray<f32>, 2>(layer.weight.id)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let want = 10.0 / (300f64.sqrt() + 1e-6);
        assert!(
            w.iter().all(|g| (f64::from(*g) - want).abs() < 1e-5),
            "{w:?}"
        );
        // Below the limit nothing changes.
        let loss = layer
            .forward(Tensor::<B, 2>::ones([1, 2], &device))
            .sum()
            .mul_scalar(0.01);
        let grads = GradientsParams::from_grads(loss.backward(), &layer);
        let (kept, _) = clip_grad_norm::<B, _>(&layer, grads, 1.0);
        let b = kept
            .get::<NdArray<f32>, 1>(layer.bias.as_ref().unwrap().id)
            .unwrap()
            .into_scalar();
        assert!((b - 0.01).abs() < 1e-7, "{b}");
        let _ = layer.num_params();
    }
}
