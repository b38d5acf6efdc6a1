//! The slow learner's exponential moving average, `θ_l ← α_t·θ_l + (1 − α_t)·θ_w`.
//!
//! The update runs on the device: the fast learner's trainable tensors are read (detached, on the
//! inner backend, no copy) and combined with the slow learner's by two scalar multiplies and an
//! add per tensor. Nothing goes through the host.

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use cl_core::Result;
use cl_core::peft::{ParamFilter, TaskVector};

use crate::config::{EmaConfig, EmaSchedule};

/// `α_t` at optimiser step `step` (0-based, counted over the run).
pub fn alpha_at(cfg: &EmaConfig, step: u64) -> f64 {
    match cfg.schedule {
        EmaSchedule::Constant => cfg.alpha,
        EmaSchedule::Capped => (1.0 - 1.0 / (step as f64 + 1.0)).min(cfg.alpha),
    }
}

/// One EMA step: every trainable parameter of `fast` (LoRA factors and head) pulls the
/// parameter at the same path of `slow` to `α·slow + (1 − α)·fast`. `slow` must have the
/// structure of `fast.valid()`; a missing path or another shape is an error naming the tensor.
pub fn ema_update<B, M>(slow: M::InnerModule, fast: &M, alpha: f64) -> Result<M::InnerModule>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    TaskVector::snapshot(fast, &ParamFilter::Trainable)
        .inner()
        .interpolate_into(slow, 1.0 - alpha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::nn::LinearConfig;
    use cl_core::peft::{LoraConfig, LoraLinear};

    type B = Autodiff<NdArray<f32>>;

    #[test]
    fn schedules() {
        let constant = EmaConfig::default();
        assert_eq!(alpha_at(&constant, 0), 0.999);
        assert_eq!(alpha_at(&constant, 1000), 0.999);
        let capped = EmaConfig {
            schedule: EmaSchedule::Capped,
            alpha: 0.25,
        };
        assert_eq!(
            alpha_at(&capped, 0),
            0.0,
            "first step copies the fast learner"
        );
        assert_eq!(alpha_at(&capped, 1), 0.25);
        let long = EmaConfig {
            schedule: EmaSchedule::Capped,
            alpha: 0.99,
        };
        assert_eq!(alpha_at(&long, 1), 0.5);
        assert!((alpha_at(&long, 9) - 0.9).abs() < 1e-12);
        assert_eq!(alpha_at(&long, 1000), 0.99);
    }

    #[test]
    fn slow_learner_converges_to_a_fixed_fast_learner_and_frozen_weights_stay() {
        let device = Default::default();
        let mut fast = LoraLinear::frozen(LinearConfig::new(4, 3).init::<B>(&device));
        fast.push_adapter(&LoraConfig::default(), 1);
        let mut slow = fast.valid();
        let start = slow.adapters[0].lora_a.val();
        // Give the fast learner other values (B = 0 at init, so set A and B to 2·A-shaped values).
        let shifted = TaskVector::snapshot(&fast, &ParamFilter::Trainable).scale(2.0);
        let fast = shifted.assign(fast).unwrap();
        let target = fast.adapters[0].lora_a.val().inner();
        for _ in 0..10 {
            slow = ema_update::<B, _>(slow, &fast, 0.5).unwrap();
        }
        // After n steps with α = 0.5 the gap is 2^-n of the initial one.
        let gap = (slow.adapters[0].lora_a.val() - target.clone())
            .abs()
            .max()
            .into_scalar();
        let initial = (start - target).abs().max().into_scalar();
        assert!((gap - initial / 1024.0).abs() < 1e-6, "{gap} vs {initial}");
        let frozen = (slow.base.weight.val() - fast.base.weight.val().inner())
            .abs()
            .max()
            .into_scalar();
        assert_eq!(frozen, 0.0);
    }
}
