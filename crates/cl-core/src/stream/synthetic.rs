//! A synthetic stream of Gaussian class clusters, for unit tests and the conformance suite only.
//! Real runs use the text and image streams.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{Example, Scenario, Task, TaskInfo, TaskStream, mix_seed};
use crate::error::Result;

/// Shape of a synthetic stream: `num_tasks` tasks of `classes_per_task` disjoint classes, each
/// class an isotropic Gaussian (σ = 1) around a random centre at distance `separation` from 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticStreamConfig {
    /// Number of tasks.
    pub num_tasks: usize,
    /// Classes per task (disjoint across tasks).
    pub classes_per_task: usize,
    /// Dimension of each input vector.
    pub input_dim: usize,
    /// Training examples per class.
    pub train_per_class: usize,
    /// Validation examples per class.
    pub valid_per_class: usize,
    /// Test examples per class.
    pub test_per_class: usize,
    /// Distance of class centres from the origin.
    pub separation: f32,
    /// Scenario.
    pub scenario: Scenario,
    /// Seed for centres and samples.
    pub seed: u64,
}

impl Default for SyntheticStreamConfig {
    fn default() -> Self {
        Self {
            num_tasks: 3,
            classes_per_task: 2,
            input_dim: 16,
            train_per_class: 48,
            valid_per_class: 8,
            test_per_class: 32,
            separation: 6.0,
            scenario: Scenario::ClassIncremental,
            seed: 0,
        }
    }
}

/// Builds the synthetic stream; inputs are `Vec<f32>` of length `input_dim`.
pub fn synthetic_stream(cfg: &SyntheticStreamConfig) -> Result<TaskStream<Vec<f32>>> {
    let num_classes = cfg.num_tasks * cfg.classes_per_task;
    let mut rng = StdRng::seed_from_u64(mix_seed(cfg.seed, &[0]));
    let centres: Vec<Vec<f32>> = (0..num_classes)
        .map(|_| {
            let v: Vec<f32> = (0..cfg.input_dim).map(|_| gaussian(&mut rng)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            v.into_iter().map(|x| x / norm * cfg.separation).collect()
        })
        .collect();
    let tasks = (0..cfg.num_tasks)
        .map(|t| {
            let classes: Vec<usize> =
                (t * cfg.classes_per_task..(t + 1) * cfg.classes_per_task).collect();
            let split = |per_class: usize, salt: u64| {
                let mut rng = StdRng::seed_from_u64(mix_seed(cfg.seed, &[1, t as u64, salt]));
                let mut out = Vec::with_capacity(per_class * classes.len());
                for _ in 0..per_class {
                    for &c in &classes {
                        let input = centres[c].iter().map(|m| m + gaussian(&mut rng)).collect();
                        out.push(Example {
                            input,
                            label: c,
                            task: t,
                        });
                    }
                }
                out
            };
            let train = split(cfg.train_per_class, 0);
            let valid = split(cfg.valid_per_class, 1);
            let test = split(cfg.test_per_class, 2);
            Task {
                info: TaskInfo {
                    id: t,
                    name: format!("synthetic-{t}"),
                    classes: classes.clone(),
                    scenario: cfg.scenario,
                    num_train: train.len(),
                    labels: Vec::new(),
                },
                train,
                valid,
                test,
            }
        })
        .collect();
    TaskStream::new("synthetic", cfg.scenario, num_classes, tasks)
}

/// One standard normal draw (Box–Muller).
pub(crate) fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_labels() {
        let cfg = SyntheticStreamConfig::default();
        let s = synthetic_stream(&cfg).unwrap();
        assert_eq!(s.num_tasks(), 3);
        assert_eq!(s.num_classes(), 6);
        assert_eq!(s.task(1).info.classes, vec![2, 3]);
        assert_eq!(s.task(1).train.len(), 96);
        assert_eq!(s.task(2).test[0].input.len(), 16);
    }

    #[test]
    fn seeded() {
        let cfg = SyntheticStreamConfig::default();
        let a = synthetic_stream(&cfg).unwrap();
        let b = synthetic_stream(&cfg).unwrap();
        assert_eq!(a.task(0).train, b.task(0).train);
    }
}
