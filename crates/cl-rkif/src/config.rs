//! Configuration of cl-rkif (JSON; unknown keys are errors).

use cl_core::baselines::OptimizerConfig;
use cl_core::peft::LoraConfig;
use cl_core::stream::replay::ReplayConfig;
use cl_core::{ClError, Result};
use serde::{Deserialize, Serialize};

/// How a cycle's inner and outer updates are combined, per element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FusionRule {
    /// Binary masks `m = [s > q]` at the global top-`top_fraction` threshold `q`, and the four
    /// cases: (1,0) → (1, 0); (0,1) → (0, 1); (1,1) → (0.4, 0.6); (0,0) → (0.5, 0.5).
    #[default]
    Masks,
    /// No knowledge identification ("− KI"): `(0.5, 0.5)` everywhere.
    Average,
    /// Global importance-weighted merge ("+ GM"): `w_in = Σs_in / (Σs_in + Σs_out)`,
    /// `w_out = 1 − w_in`, one pair for all elements.
    Global,
    /// Soft masks ("+ Adaptive"): `w_in = s_in / (s_in + s_out)`, `w_out = s_out / (s_in + s_out)`
    /// per element (0.5 each where both scores are 0).
    Soft,
}

/// Configuration of a Recurrent-KIF run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RkifConfig {
    /// LoRA shape and targets (the paper: r 8, α 32, dropout 0.05 on query/value).
    pub lora: LoraConfig,
    /// AdamW, shared by the inner and outer steps of a task, reset at each task (paper lr 3e-4).
    pub optimizer: OptimizerConfig,
    /// Replay memory (default: 2% of each finished task, class-stratified, seeded).
    pub replay: ReplayConfig,
    /// `K`: inner steps per cycle (current-task batches).
    pub inner_steps: usize,
    /// `M`: outer steps per cycle (replay batches), when the memory is not empty.
    pub outer_steps: usize,
    /// `β₁`: smoothing of the mean importance `Ī`.
    pub beta1: f64,
    /// `β₂`: smoothing of the deviation `U`.
    pub beta2: f64,
    /// Share of the scores (inner and outer together) that counts as important: masks are
    /// `[s > q]` with `q` the `(1 − top_fraction)`-quantile.
    pub top_fraction: f64,
    /// Fusion rule (ablations `average`, `global`, `soft`).
    pub fusion: FusionRule,
    /// `false` ("− Share"): elements important to both loops keep `θ_s` (weights (0, 0)).
    pub update_shared: bool,
    /// Divide scores by `(1 − β₁ⁿ)(1 − β₂ⁿ)` after `n` updates (default `true`), so that inner
    /// scores (restarted every cycle) and outer scores (persisting) are on one scale for the
    /// global quantile; `false` uses the raw zero-initialised EMAs.
    pub bias_correction: bool,
    /// `true` ("− DIE"): the outer (historical) importance is estimated in the first cycle of
    /// each task and then held fixed, instead of re-estimated at every outer step.
    pub static_importance: bool,
}

impl Default for RkifConfig {
    fn default() -> Self {
        Self {
            lora: LoraConfig {
                rank: 8,
                alpha: 32.0,
                dropout: 0.05,
                targets: vec!["query".into(), "value".into()],
            },
            optimizer: OptimizerConfig {
                lr: 3e-4,
                weight_decay: 0.0,
            },
            replay: ReplayConfig::default(),
            inner_steps: 8,
            outer_steps: 4,
            beta1: 0.85,
            beta2: 0.85,
            top_fraction: 0.2,
            fusion: FusionRule::Masks,
            update_shared: true,
            bias_correction: true,
            static_importance: false,
        }
    }
}

impl RkifConfig {
    /// Checks every field; errors name it.
    pub fn validate(&self) -> Result<()> {
        self.lora.validate()?;
        if !(self.optimizer.lr > 0.0 && self.optimizer.lr.is_finite()) {
            return Err(ClError::config("optimizer.lr", "must be a positive number"));
        }
        self.replay.validate("replay")?;
        if self.inner_steps == 0 {
            return Err(ClError::config("inner_steps", "must be at least 1"));
        }
        for (field, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(ClError::config(field, "must be in [0, 1)"));
            }
        }
        if !(self.top_fraction > 0.0 && self.top_fraction < 1.0) {
            return Err(ClError::config("top_fraction", "must be in (0, 1)"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_spec_and_errors_name_fields() {
        let cfg = RkifConfig::default();
        cfg.validate().unwrap();
        assert_eq!((cfg.inner_steps, cfg.outer_steps), (8, 4));
        assert_eq!((cfg.beta1, cfg.beta2, cfg.top_fraction), (0.85, 0.85, 0.2));
        assert_eq!(cfg.replay.fraction, 0.02);
        let parsed: RkifConfig =
            serde_json::from_str(r#"{"fusion": "soft", "top_fraction": 0.1}"#).unwrap();
        assert_eq!(parsed.fusion, FusionRule::Soft);
        let err = serde_json::from_str::<RkifConfig>(r#"{"inner_step": 3}"#).unwrap_err();
        assert!(err.to_string().contains("inner_step"), "{err}");
        let bad = RkifConfig {
            top_fraction: 1.0,
            ..RkifConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("top_fraction")
        );
        let bad = RkifConfig {
            beta2: 1.0,
            ..RkifConfig::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("beta2"));
    }
}
