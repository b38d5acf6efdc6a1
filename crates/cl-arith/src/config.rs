//! Configuration of cl-arith (JSON; unknown keys are errors).

use cl_core::baselines::OptimizerConfig;
use cl_core::peft::{AdapterConfig, LoraConfig, MergeStrategy};
use cl_core::{ClError, Result};
use serde::{Deserialize, Serialize};

/// Which PEFT module each task trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModuleKind {
    /// LoRA on the layers `lora.targets` selects.
    #[default]
    Lora,
    /// Houlsby adapters (`adapter.bottleneck`) after the attention and FFN blocks of every
    /// layer; merged in parameter space (`level` does not apply).
    Adapter,
}

/// Where each task's module starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitFrom {
    /// From the same seeded initialisation for every task (`A` random, `B = 0`): the paper's
    /// isolation.
    #[default]
    Pretrained,
    /// From the module the previous task ended with.
    PreviousTask,
}

/// Where LoRA task vectors are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MergeLevel {
    /// Per layer, `ΔW_t = (α/r)·A_t·B_t − ΔW_before` is merged and folded into the frozen weight:
    /// the exact task arithmetic of the weight updates.
    #[default]
    DeltaW,
    /// The factors are merged separately (`A = A_init + Σ λ_t τ_{A,t}`, likewise `B`) into one
    /// LoRA; cheaper to store, not equal to merging ΔW (the product is not linear).
    Factors,
}

/// How the merge weights λ_t are set. The default, `mean`, keeps no data of any task (seed
/// 000's claim); the `search*` choices keep validation rows, counted in the report's
/// `stored_examples`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LambdaChoice {
    /// λ_t = 1/t after t finished tasks: the mean of the task vectors (after the first task its
    /// own vector in full). Uses no data.
    #[default]
    Mean,
    /// One λ for every task, the grid value with the best validation accuracy on the *current*
    /// task's rows only (held while the task ends, dropped afterwards: no past-task data kept).
    SearchCurrent {
        /// Candidates.
        grid: Vec<f64>,
        /// Validation rows of the current task used (the first ones of its split).
        max_valid_per_task: usize,
    },
    /// One λ for every task.
    Shared {
        /// λ.
        value: f64,
    },
    /// One λ per task, in stream order (the list must cover every task).
    PerTask {
        /// λ_t.
        values: Vec<f64>,
    },
    /// One λ for every task, the grid value with the best mean validation accuracy over the
    /// finished tasks (first on ties).
    Search {
        /// Candidates.
        grid: Vec<f64>,
        /// Validation rows per task used (the first ones of its split).
        max_valid_per_task: usize,
    },
    /// Per-task λ_t by one round of coordinate search over the grid, starting from the best
    /// shared λ (each task's λ_t in turn, the others fixed).
    SearchPerTask {
        /// Candidates.
        grid: Vec<f64>,
        /// Validation rows per task used.
        max_valid_per_task: usize,
    },
}

/// Everything cl-arith needs besides the backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArithConfig {
    /// LoRA or adapters.
    #[serde(default)]
    pub module: ModuleKind,
    /// LoRA of every task (shape, targets), when `module` is `lora`.
    #[serde(default)]
    pub lora: LoraConfig,
    /// Adapter size, when `module` is `adapter`.
    #[serde(default = "default_adapter")]
    pub adapter: AdapterConfig,
    /// AdamW, reset at every task.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Where each task's module starts.
    #[serde(default)]
    pub init: InitFrom,
    /// ΔW or factor space.
    #[serde(default)]
    pub level: MergeLevel,
    /// Task arithmetic, TIES or DARE.
    #[serde(default = "task_arithmetic")]
    pub strategy: MergeStrategy,
    /// Merge weights.
    #[serde(default)]
    pub lambda: LambdaChoice,
}

impl Default for ArithConfig {
    fn default() -> Self {
        Self {
            module: ModuleKind::default(),
            lora: LoraConfig::default(),
            adapter: default_adapter(),
            optimizer: OptimizerConfig::default(),
            init: InitFrom::default(),
            level: MergeLevel::default(),
            strategy: task_arithmetic(),
            lambda: LambdaChoice::default(),
        }
    }
}

fn default_adapter() -> AdapterConfig {
    AdapterConfig { bottleneck: 64 }
}

fn task_arithmetic() -> MergeStrategy {
    MergeStrategy::TaskArithmetic
}

impl ArithConfig {
    /// Checks every field; errors name it.
    pub fn validate(&self) -> Result<()> {
        match self.module {
            ModuleKind::Lora => self.lora.validate()?,
            ModuleKind::Adapter => self.adapter.validate()?,
        }
        self.strategy.validate()?;
        self.optimizer.validate("optimizer")?;
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        match &self.lambda {
            LambdaChoice::Shared { value } if !value.is_finite() => {
                Err(ClError::config("lambda.value", "must be finite"))
            }
            LambdaChoice::PerTask { values } if values.is_empty() || !finite(values) => {
                Err(ClError::config(
                    "lambda.values",
                    "must be a non-empty list of finite numbers",
                ))
            }
            LambdaChoice::Search {
                grid,
                max_valid_per_task,
            }
            | LambdaChoice::SearchCurrent {
                grid,
                max_valid_per_task,
            }
            | LambdaChoice::SearchPerTask {
                grid,
                max_valid_per_task,
            } if grid.is_empty() || !finite(grid) || *max_valid_per_task == 0 => {
                Err(ClError::config(
                    "lambda.grid",
                    "needs at least one finite candidate and max_valid_per_task > 0",
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_unknown_keys() {
        let cfg: ArithConfig = serde_json::from_str(
            r#"{"level": "factors", "strategy": {"kind": "ties", "density": 0.2},
                "lambda": {"kind": "shared", "value": 0.5}}"#,
        )
        .unwrap();
        assert_eq!(cfg.level, MergeLevel::Factors);
        assert_eq!(cfg.strategy, MergeStrategy::Ties { density: 0.2 });
        cfg.validate().unwrap();
        let err = serde_json::from_str::<ArithConfig>(r#"{"lamda": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("lamda"), "{err}");
        let bad = ArithConfig {
            lambda: LambdaChoice::Search {
                grid: vec![],
                max_valid_per_task: 4,
            },
            ..ArithConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("lambda.grid")
        );
        assert_eq!(
            ArithConfig::default().strategy,
            MergeStrategy::TaskArithmetic
        );
        // No stored data by default.
        assert_eq!(ArithConfig::default().lambda, LambdaChoice::Mean);
        let current: ArithConfig = serde_json::from_str(
            r#"{"lambda": {"kind": "search-current", "grid": [0.5, 1.0], "max_valid_per_task": 8}}"#,
        )
        .unwrap();
        current.validate().unwrap();
    }
}
