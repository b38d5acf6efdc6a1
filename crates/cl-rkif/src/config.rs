//! Configuration of cl-rkif (JSON; unknown keys are errors).

use cl_core::baselines::{OptimizerConfig, Schedule};
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
    /// Soft masks (weights ∝ scores): `w_in = s_in / (s_in + s_out)`, `w_out = s_out / (s_in +
    /// s_out)` per element (0.5 each where both scores are 0).
    Soft,
    /// "+ Adaptive" as the official `adamerg`: each loop's scores min–max normalised over all
    /// parameters, then `w_in = exp(ŝ_in/τ) / (exp(ŝ_in/τ) + exp(ŝ_out/τ))`, `w_out = 1 − w_in`
    /// (τ = `temperature`).
    Adaptive,
}

/// What one step's importance `I` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportanceKind {
    /// `I = |θ ⊙ ∇θ|` (the paper's).
    #[default]
    ThetaGrad,
    /// `I = |∇θ|` (Appendix B.6's variant).
    Grad,
}

/// How long the outer (historical) scores live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OuterScores {
    /// Reset when a task begins, kept across that task's cycles (the official trainer builds a
    /// new allocator per task).
    #[default]
    PerTask,
    /// Kept across tasks for the whole run.
    AcrossTasks,
}

/// Which scores the mask threshold is the quantile of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuantileScope {
    /// One threshold per loop: `q_in` over the inner scores, `q_out` over the outer ones (the
    /// official code).
    #[default]
    PerLoop,
    /// One threshold over the inner and outer scores together.
    Joint,
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
    /// `I = |θ ⊙ ∇θ|` or `|∇θ|`.
    pub importance: ImportanceKind,
    /// `false` ("no smoothing", Appendix B.6): the score is the last step's raw `I`; `β₁`, `β₂`
    /// and `bias_correction` are then unused.
    pub smoothing: bool,
    /// `β₁`: smoothing of the mean importance `Ī`.
    pub beta1: f64,
    /// `β₂`: smoothing of the deviation `U`.
    pub beta2: f64,
    /// Share of the scores that counts as important: masks are `[s > q]` with `q` the
    /// `(1 − top_fraction)`-quantile (of each loop's scores, or of both, per `quantile`).
    pub top_fraction: f64,
    /// One threshold per loop (default, official) or one joint threshold.
    pub quantile: QuantileScope,
    /// Reset the outer scores at every task (default, official) or keep them for the run.
    pub outer_scores: OuterScores,
    /// τ of the `adaptive` fusion rule.
    pub temperature: f64,
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
            // The official runs: lr 3e-4, 50 warm-up steps then linear decay, clipping at 1.
            optimizer: OptimizerConfig {
                lr: 3e-4,
                schedule: Schedule::Linear { warmup_steps: 50 },
                max_grad_norm: Some(1.0),
                ..OptimizerConfig::default()
            },
            replay: ReplayConfig::default(),
            inner_steps: 8,
            outer_steps: 4,
            importance: ImportanceKind::ThetaGrad,
            smoothing: true,
            beta1: 0.85,
            beta2: 0.85,
            top_fraction: 0.2,
            quantile: QuantileScope::PerLoop,
            outer_scores: OuterScores::PerTask,
            temperature: 1.0,
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
        self.optimizer.validate("optimizer")?;
        self.replay.validate("replay")?;
        if self.inner_steps == 0 {
            return Err(ClError::config("inner_steps", "must be at least 1"));
        }
        if self.smoothing {
            for (field, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
                if beta == 0.0 {
                    return Err(ClError::config(
                        field,
                        "0 makes U = |I − Ī| = 0 and so every score 0; for the raw importance as the score (no smoothing) set \"smoothing\": false",
                    ));
                }
                if !(0.0..1.0).contains(&beta) {
                    return Err(ClError::config(field, format!("{beta} is not in (0, 1)")));
                }
            }
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(ClError::config(
                "temperature",
                format!("{} must be a positive number", self.temperature),
            ));
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
        // β = 0 would silently zero every score: an error that names the variant instead.
        let zero = RkifConfig {
            beta1: 0.0,
            ..RkifConfig::default()
        };
        let err = zero.validate().unwrap_err().to_string();
        assert!(err.contains("beta1") && err.contains("smoothing"), "{err}");
        RkifConfig {
            smoothing: false,
            ..zero
        }
        .validate()
        .unwrap();
        // The official defaults.
        assert_eq!(
            cfg.optimizer.schedule,
            Schedule::Linear { warmup_steps: 50 }
        );
        assert_eq!(cfg.optimizer.max_grad_norm, Some(1.0));
        assert_eq!(
            (cfg.quantile, cfg.outer_scores, cfg.importance),
            (
                QuantileScope::PerLoop,
                OuterScores::PerTask,
                ImportanceKind::ThetaGrad
            )
        );
    }
}
