//! Configuration of cl-ilora (JSON; unknown keys are errors).

use cl_core::baselines::OptimizerConfig;
use cl_core::peft::LoraConfig;
use cl_core::stream::replay::{MemoryKind, ReplayConfig, ReplayFeed};
use cl_core::{ClError, Result};
use serde::{Deserialize, Serialize};

/// How the EMA coefficient `α_t` evolves with the optimiser step `t` (counted over the whole run
/// from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmaSchedule {
    /// `α_t = α` (the paper's code family; default `α = 0.999`).
    #[default]
    Constant,
    /// `α_t = min(1 − 1/(t + 1), α)` (the official script, with `α = 0.25`): the slow learner
    /// copies the fast one at the first step, then follows it with weight `1 − α`.
    Capped,
}

/// The slow learner's EMA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmaConfig {
    /// Schedule of `α_t`.
    pub schedule: EmaSchedule,
    /// `α` in `[0, 1]`: the weight the slow learner keeps of itself.
    pub alpha: f64,
}

impl Default for EmaConfig {
    fn default() -> Self {
        Self {
            schedule: EmaSchedule::Constant,
            alpha: 0.999,
        }
    }
}

/// The embedding-consistency loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsistencyConfig {
    /// `γ ≥ 0`; 0 turns the loss (and the slow forward pass) off.
    pub weight: f64,
    /// Hidden states compared: `"all"` (the default, as the official code: the embedding
    /// output and every layer's output) or a list of indices into the backbone's states (for
    /// MiniLM: 0 = embedding output, `i` = output of layer `i`; negative counts from the end,
    /// `[-1]` = the last hidden state only). The loss is the mean of the per-state MSEs.
    pub layers: LayerChoice,
}

/// Which hidden states a consistency loss compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LayerChoice {
    /// Every hidden state the backbone has (`"all"`).
    All(AllStates),
    /// These indices.
    Indices(Vec<i64>),
}

/// The word `"all"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AllStates {
    /// Every state.
    All,
}

impl LayerChoice {
    /// The indices to resolve against a backbone with `available` states.
    pub fn indices(&self, available: usize) -> Vec<i64> {
        match self {
            LayerChoice::All(_) => (0..available as i64).collect(),
            LayerChoice::Indices(list) => list.clone(),
        }
    }
}

impl Default for ConsistencyConfig {
    fn default() -> Self {
        Self {
            weight: 1.0,
            layers: LayerChoice::All(AllStates::All),
        }
    }
}

/// Configuration of an I-LoRA run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ILoraConfig {
    /// LoRA shape and targets (both learners).
    pub lora: LoraConfig,
    /// Optimiser of the fast learner (AdamW, reset at each task).
    pub optimizer: OptimizerConfig,
    /// Replay memory (default: a reservoir of 500 examples, the paper's).
    pub replay: ReplayConfig,
    /// Slow learner's EMA.
    pub ema: EmaConfig,
    /// Embedding consistency.
    pub consistency: ConsistencyConfig,
    /// `false` drops the slow learner (ablation): no EMA, no consistency loss, the fast learner
    /// is evaluated — plain replay with the loss `½(CE current + CE replay)`.
    pub slow_learner: bool,
}

impl Default for ILoraConfig {
    fn default() -> Self {
        Self {
            lora: LoraConfig::default(),
            optimizer: OptimizerConfig::default(),
            replay: ReplayConfig {
                memory: MemoryKind::Reservoir,
                capacity: 500,
                feed: ReplayFeed::EveryStep,
                ..ReplayConfig::default()
            },
            ema: EmaConfig::default(),
            consistency: ConsistencyConfig::default(),
            slow_learner: true,
        }
    }
}

impl ILoraConfig {
    /// Checks every field; errors name it.
    pub fn validate(&self) -> Result<()> {
        self.lora.validate()?;
        self.optimizer.validate("optimizer")?;
        self.replay.validate("replay")?;
        if !(0.0..=1.0).contains(&self.ema.alpha) {
            return Err(ClError::config("ema.alpha", "must be in [0, 1]"));
        }
        if !(self.consistency.weight >= 0.0 && self.consistency.weight.is_finite()) {
            return Err(ClError::config(
                "consistency.weight",
                "must be a non-negative number",
            ));
        }
        if self.consistency.layers == LayerChoice::Indices(Vec::new()) {
            return Err(ClError::config(
                "consistency.layers",
                "lists no hidden state",
            ));
        }
        Ok(())
    }

    /// `true` when steps run the slow forward pass and the consistency loss.
    pub fn uses_consistency(&self) -> bool {
        self.slow_learner && self.consistency.weight > 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_spec() {
        let cfg = ILoraConfig::default();
        assert_eq!(cfg.ema.alpha, 0.999);
        assert_eq!(cfg.ema.schedule, EmaSchedule::Constant);
        assert_eq!(cfg.consistency.weight, 1.0);
        assert_eq!(cfg.consistency.layers, LayerChoice::All(AllStates::All));
        assert_eq!(
            cfg.consistency.layers.indices(7),
            (0..7).collect::<Vec<i64>>()
        );
        assert_eq!(
            cfg.replay.feed,
            cl_core::stream::replay::ReplayFeed::EveryStep
        );
        let last: ILoraConfig =
            serde_json::from_str(r#"{"consistency": {"layers": [-1]}}"#).unwrap();
        assert_eq!(last.consistency.layers, LayerChoice::Indices(vec![-1]));
        let all: ILoraConfig =
            serde_json::from_str(r#"{"consistency": {"layers": "all"}}"#).unwrap();
        assert_eq!(all.consistency.layers, cfg.consistency.layers);
        assert!(
            serde_json::from_str::<ILoraConfig>(r#"{"consistency": {"layers": "most"}}"#).is_err()
        );
        assert_eq!(cfg.replay.memory, MemoryKind::Reservoir);
        assert_eq!(cfg.replay.capacity, 500);
        cfg.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_field() {
        let err = serde_json::from_str::<ILoraConfig>(r#"{"ema": {"alfa": 0.9}}"#).unwrap_err();
        assert!(err.to_string().contains("alfa"), "{err}");
        let cfg: ILoraConfig =
            serde_json::from_str(r#"{"ema": {"schedule": "capped", "alpha": 0.25}}"#).unwrap();
        assert_eq!(cfg.ema.schedule, EmaSchedule::Capped);
        let bad = ILoraConfig {
            ema: EmaConfig {
                alpha: 1.5,
                ..EmaConfig::default()
            },
            ..ILoraConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("ema.alpha")
        );
        let bad = ILoraConfig {
            consistency: ConsistencyConfig {
                weight: -1.0,
                ..ConsistencyConfig::default()
            },
            ..ILoraConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("consistency.weight")
        );
    }
}
