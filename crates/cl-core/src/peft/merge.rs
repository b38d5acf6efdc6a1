//! Combining task vectors: task arithmetic, TIES and DARE as pure functions over
//! [`TaskVector`]s (every tensor stays on the device).
//!
//! Each function takes `T` task vectors with the same paths and shapes and `T` weights `λ_t`, and
//! returns one vector. Element-wise, with `τ_t` the flattened tensor of one path:
//! - [`MergeStrategy::TaskArithmetic`]: `Σ_t λ_t·τ_t`.
//! - [`MergeStrategy::Ties`] (Yadav et al. 2023, as Hugging Face PEFT's `ties`): per tensor and
//!   task, keep the `density` fraction of entries with the largest magnitude (trim); elect per
//!   element the sign of `Σ_t trimmed_t` (ties count as `+`); average `λ_t·trimmed_t` over the
//!   tasks whose sign agrees with the elected one (disjoint mean).
//! - [`MergeStrategy::Dare`] (Yu et al. 2024, PEFT's `dare_linear`): drop each entry of `τ_t` with
//!   probability `drop_rate`, rescale the survivors by `1/(1 − drop_rate)`, then `Σ_t λ_t·τ_t`.
//!   The drop masks are drawn from a host RNG seeded with `(seed, path index, task)`.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::task_vector::{ParamTensor, TaskVector};
use crate::error::{ClError, Result};
use crate::stream::mix_seed;

/// How task vectors are combined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MergeStrategy {
    /// `Σ_t λ_t·τ_t`.
    TaskArithmetic,
    /// TIES: trim to the top `density` fraction by magnitude, elect sign, disjoint mean.
    Ties {
        /// Fraction of each tensor's entries kept per task, in `(0, 1]`.
        density: f64,
    },
    /// DARE: random drop with rate `drop_rate`, rescale by `1/(1 − drop_rate)`, then sum.
    Dare {
        /// Drop probability, in `[0, 1)`.
        drop_rate: f64,
        /// Seed of the drop masks.
        seed: u64,
    },
}

impl MergeStrategy {
    /// Checks the parameters; errors name the field.
    pub fn validate(&self) -> Result<()> {
        match *self {
            MergeStrategy::TaskArithmetic => Ok(()),
            MergeStrategy::Ties { density } if !(density > 0.0 && density <= 1.0) => {
                Err(ClError::config(
                    "merge.density",
                    format!("must be in (0, 1] (got {density})"),
                ))
            }
            MergeStrategy::Dare { drop_rate, .. } if !(0.0..1.0).contains(&drop_rate) => {
                Err(ClError::config(
                    "merge.drop_rate",
                    format!("must be in [0, 1) (got {drop_rate})"),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Merges `vectors` with weights `weights` (one per vector) by `strategy`. Every vector must
/// have the same paths and shapes; an error names the first path that differs.
pub fn merge_task_vectors<B: Backend>(
    vectors: &[TaskVector<B>],
    weights: &[f64],
    strategy: &MergeStrategy,
) -> Result<TaskVector<B>> {
    strategy.validate()?;
    let Some(first) = vectors.first() else {
        return Err(ClError::config("merge", "no task vectors to merge"));
    };
    if weights.len() != vectors.len() {
        return Err(ClError::config(
            "merge.weights",
            format!(
                "{} weights for {} task vectors",
                weights.len(),
                vectors.len()
            ),
        ));
    }
    if let Some(extra) = vectors
        .iter()
        .flat_map(|v| v.paths())
        .find(|p| !first.entries().contains_key(*p))
    {
        return Err(ClError::MissingTensor {
            tensor: extra.to_string(),
            context: " in task vector 0 (merging)".into(),
        });
    }
    let mut merged = std::collections::BTreeMap::new();
    for (index, (path, entry)) in first.entries().iter().enumerate() {
        let mut tensors = Vec::with_capacity(vectors.len());
        for (t, vector) in vectors.iter().enumerate() {
            let other = vector
                .entries()
                .get(path)
                .ok_or_else(|| ClError::MissingTensor {
                    tensor: path.clone(),
                    context: format!(" in task vector {t} (merging)"),
                })?;
            if other.shape != entry.shape {
                return Err(ClError::ShapeMismatch {
                    tensor: format!("{path} (task vector {t})"),
                    expected: entry.shape.clone(),
                    actual: other.shape.clone(),
                });
            }
            tensors.push(other.value.clone());
        }
        let value = merge_tensors(&tensors, weights, strategy, index as u64)?;
        merged.insert(
            path.clone(),
            ParamTensor {
                value,
                shape: entry.shape.clone(),
            },
        );
    }
    Ok(TaskVector::from_entries(merged))
}

/// Merges `T` flattened tensors `[n]` into one `[n]` (see the module docs); `salt` varies DARE's
/// masks between tensors.
pub fn merge_tensors<B: Backend>(
    tensors: &[Tensor<B, 1>],
    weights: &[f64],
    strategy: &MergeStrategy,
    salt: u64,
) -> Result<Tensor<B, 1>> {
    strategy.validate()?;
    let Some(first) = tensors.first() else {
        return Err(ClError::config("merge", "no tensors to merge"));
    };
    if weights.len() != tensors.len() {
        return Err(ClError::config(
            "merge.weights",
            format!("{} weights for {} tensors", weights.len(), tensors.len()),
        ));
    }
    let device = first.device();
    let [n] = first.dims();
    let t = tensors.len();
    // `[T, n]` and the weights as `[T, 1]`.
    let stacked = Tensor::stack::<2>(tensors.to_vec(), 0);
    let lambda = Tensor::<B, 2>::from_data(
        TensorData::new(weights.iter().map(|&w| w as f32).collect(), [t, 1]),
        &device,
    );
    Ok(match *strategy {
        MergeStrategy::TaskArithmetic => (stacked * lambda).sum_dim(0).reshape([n]),
        MergeStrategy::Ties { density } => {
            // As PEFT's `magnitude_based_pruning`: exactly k = int(density · n) entries per task
            // (k may be 0), the largest by magnitude; among equal magnitudes at the threshold
            // the lowest indices are kept.
            let keep = ((density * n as f64).floor() as usize).min(n);
            let trimmed = if keep == 0 {
                stacked.zeros_like()
            } else if keep < n {
                let magnitude = stacked.clone().abs();
                // The keep-th largest magnitude of each task, `[T, 1]` (Burn's topk needs k < n).
                let threshold = magnitude
                    .clone()
                    .topk(keep, 1)
                    .narrow(1, keep - 1, 1)
                    .expand([t, n]);
                let above = magnitude.clone().greater(threshold.clone()).float();
                let at = magnitude.equal(threshold).float();
                // Room left at the threshold, and each tied entry's rank (1, 2, ...) by index.
                let room = above.clone().sum_dim(1).neg().add_scalar(keep as f64);
                let rank = at.clone().cumsum(1);
                let tied_kept = at * rank.lower_equal(room.expand([t, n])).float();
                stacked * (above + tied_kept)
            } else {
                stacked
            };
            let total = trimmed.clone().sum_dim(0);
            let elected = total
                .greater_equal_elem(0.0)
                .float()
                .mul_scalar(2.0)
                .sub_scalar(1.0);
            let agrees = trimmed.clone().sign().equal(elected.expand([t, n])).float();
            let kept = agrees.clone().sum_dim(0).clamp_min(1.0);
            ((trimmed * lambda) * agrees)
                .sum_dim(0)
                .div(kept)
                .reshape([n])
        }
        MergeStrategy::Dare { drop_rate, seed } => {
            let keep = 1.0 - drop_rate;
            // Drawn on the host from their own seeded RNG: the backend RNG is global, so another
            // thread drawing from it would change the masks.
            let mut mask = Vec::with_capacity(t * n);
            for task in 0..t {
                let mut rng = StdRng::seed_from_u64(mix_seed(seed, &[salt, task as u64]));
                mask.extend((0..n).map(|_| f32::from(u8::from(rng.random_bool(keep)))));
            }
            let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [t, n]), &device);
            ((stacked * mask).div_scalar(keep) * lambda)
                .sum_dim(0)
                .reshape([n])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    fn t(values: &[f32]) -> Tensor<B, 1> {
        Tensor::from_floats(values, &Default::default())
    }

    fn host(x: Tensor<B, 1>) -> Vec<f32> {
        x.into_data().to_vec().unwrap()
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn task_arithmetic_is_the_weighted_sum() {
        let merged = merge_tensors(
            &[t(&[1.0, 2.0, -3.0]), t(&[0.5, -1.0, 1.0])],
            &[0.5, 2.0],
            &MergeStrategy::TaskArithmetic,
            0,
        )
        .unwrap();
        close(&host(merged), &[1.5, -1.0, 0.5]);
    }

    #[test]
    fn ties_by_hand() {
        // Task 0: [4, -1, 0.5, -3] → top 50% by magnitude: [4, 0, 0, -3].
        // Task 1: [-2, 2, 1, -1]   → top 50%: [-2, 2, 0, 0] (ties at |1|... keep the two largest).
        // Sign of the sum of trimmed: [+2 → +, +2 → +, 0 → +, -3 → -].
        // Agreeing entries, weighted by λ = [1, 0.5]: e0: only task 0 (4·1) → 4;
        // e1: only task 1 (2·0.5) → 1; e2: none → 0; e3: only task 0 (−3) → −3.
        let merged = merge_tensors(
            &[t(&[4.0, -1.0, 0.5, -3.0]), t(&[-2.0, 2.0, 1.0, -1.0])],
            &[1.0, 0.5],
            &MergeStrategy::Ties { density: 0.5 },
            0,
        )
        .unwrap();
        close(&host(merged), &[4.0, 1.0, 0.0, -3.0]);
        // Density 1 and agreeing signs: the weighted mean of the agreeing tasks.
        let merged = merge_tensors(
            &[t(&[2.0, -2.0]), t(&[4.0, -6.0])],
            &[1.0, 1.0],
            &MergeStrategy::Ties { density: 1.0 },
            0,
        )
        .unwrap();
        close(&host(merged), &[3.0, -4.0]);
    }

    /// Against Hugging Face PEFT's own `merge_utils.ties`, on random values, values with many
    /// equal magnitudes, 2-D tensors and negative weights (fixture from
    /// `benchmarks/parity/peft_ties_fixture.py`): equal to PEFT's output wherever no equal
    /// magnitudes straddle a trim threshold, and always equal to PEFT's election and disjoint
    /// merge after a lowest-index trim (where magnitudes tie, PEFT keeps whichever entries
    /// torch.topk's selection algorithm happens to return).
    #[test]
    fn ties_equals_peft() {
        let text = include_str!("../../fixtures/peft_ties.json");
        let fixture: serde_json::Value = serde_json::from_str(text).unwrap();
        let cases = fixture["cases"].as_array().unwrap();
        assert!(cases.len() >= 10);
        let floats = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        };
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let tensors: Vec<Tensor<B, 1>> = case["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| t(&floats(v)))
                .collect();
            let weights: Vec<f64> = floats(&case["weights"]).iter().map(|&w| w as f64).collect();
            let density = case["density"].as_f64().unwrap();
            let merged =
                merge_tensors(&tensors, &weights, &MergeStrategy::Ties { density }, 0).unwrap();
            let ours = host(merged);
            let mut expected = vec![(
                "expected_stable_trim",
                floats(&case["expected_stable_trim"]),
            )];
            if !case["ties_at_threshold"].as_bool().unwrap() {
                expected.push(("expected", floats(&case["expected"])));
            }
            for (key, peft) in expected {
                assert_eq!(ours.len(), peft.len(), "{name}");
                for (i, (a, b)) in ours.iter().zip(&peft).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                        "{name}: entry {i}: ours {a}, PEFT ({key}) {b}"
                    );
                }
            }
        }
        let checked_exactly = cases
            .iter()
            .filter(|c| !c["ties_at_threshold"].as_bool().unwrap())
            .count();
        assert!(checked_exactly >= 7, "{checked_exactly} cases without ties");
    }

    #[test]
    fn ties_keeps_int_density_n_entries_and_breaks_ties_by_index() {
        // n = 5, density 0.5 → int(2.5) = 2 entries (ceil would keep 3). Magnitudes
        // [1, 3, 1, 1, 2]: keep 3 and 2, then nothing else.
        let merged = merge_tensors(
            &[t(&[1.0, -3.0, 1.0, 1.0, 2.0])],
            &[1.0],
            &MergeStrategy::Ties { density: 0.5 },
            0,
        )
        .unwrap();
        close(&host(merged), &[0.0, -3.0, 0.0, 0.0, 2.0]);
        // Ties at the threshold: [1, -1, 1, 2], density 0.5 → 2 entries: 2 and the first 1.
        let merged = merge_tensors(
            &[t(&[1.0, -1.0, 1.0, 2.0])],
            &[1.0],
            &MergeStrategy::Ties { density: 0.5 },
            0,
        )
        .unwrap();
        close(&host(merged), &[1.0, 0.0, 0.0, 2.0]);
        // density · n < 1 keeps nothing (PEFT's k = 0).
        let merged = merge_tensors(
            &[t(&[1.0, 2.0, 3.0])],
            &[1.0],
            &MergeStrategy::Ties { density: 0.2 },
            0,
        )
        .unwrap();
        close(&host(merged), &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn dare_rescales_and_is_seeded() {
        let ones = t(&vec![1.0; 20_000]);
        let strategy = MergeStrategy::Dare {
            drop_rate: 0.75,
            seed: 3,
        };
        let a = host(merge_tensors(std::slice::from_ref(&ones), &[1.0], &strategy, 0).unwrap());
        let b = host(merge_tensors(std::slice::from_ref(&ones), &[1.0], &strategy, 0).unwrap());
        assert_eq!(a, b, "same seed, same masks");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 4.0).abs() < 1e-6));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!(
            (mean - 1.0).abs() < 0.05,
            "rescaling keeps the expectation: {mean}"
        );
        let c = host(merge_tensors(&[ones], &[1.0], &strategy, 1).unwrap());
        assert_ne!(a, c, "another tensor, other masks");
        // Drop rate 0 is task arithmetic.
        let d = merge_tensors(
            &[t(&[1.0, 2.0]), t(&[3.0, 4.0])],
            &[1.0, 1.0],
            &MergeStrategy::Dare {
                drop_rate: 0.0,
                seed: 0,
            },
            0,
        )
        .unwrap();
        close(&host(d), &[4.0, 6.0]);
    }

    #[test]
    fn bad_inputs_name_the_problem() {
        let err = merge_tensors(&[t(&[1.0])], &[1.0, 2.0], &MergeStrategy::TaskArithmetic, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("merge.weights"), "{err}");
        let err = MergeStrategy::Ties { density: 0.0 }
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("merge.density"), "{err}");
        let mut a = std::collections::BTreeMap::new();
        a.insert(
            "x".to_string(),
            ParamTensor {
                value: t(&[1.0, 2.0]),
                shape: vec![2],
            },
        );
        let mut b = a.clone();
        b.get_mut("x").unwrap().shape = vec![1, 2];
        let err = merge_task_vectors(
            &[TaskVector::from_entries(a), TaskVector::from_entries(b)],
            &[1.0, 1.0],
            &MergeStrategy::TaskArithmetic,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains('x') && err.contains("task vector 1"), "{err}");
    }
}
