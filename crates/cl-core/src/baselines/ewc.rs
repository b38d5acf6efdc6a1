//! Elastic weight consolidation on the trainable parameters (LoRA and head).
//!
//! At the end of task `t`: the diagonal Fisher `F_t = mean over the task's training batches of
//! g ⊙ g` (`g` the gradient of the batch's mean cross-entropy), accumulated online
//! `F ← γ·F + F_t` (γ = 1: the plain sum over tasks), and the anchor `θ* ← θ`. While training
//! later tasks the loss gains `λ/2 · Σ F ⊙ (θ − θ*)²`.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};

use crate::error::{ClError, Result};
use crate::params::{PathTensors, from_named, to_named};
use crate::peft::peft_format::{read_safetensors, write_safetensors};

/// EWC's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EwcConfig {
    /// λ, the penalty's weight (default 1e6: the Fisher of a batch-mean loss is small; on text5
    /// order 1, λ = 1e4 left EWC at SeqLoRA's accuracy, 1e6 kept the earlier tasks).
    pub lambda: f64,
    /// γ, the decay of the accumulated Fisher (online EWC); 1 = plain sum over tasks.
    pub gamma: f64,
}

impl Default for EwcConfig {
    fn default() -> Self {
        Self {
            lambda: 1e6,
            gamma: 1.0,
        }
    }
}

impl EwcConfig {
    /// The defaults on `backbone`: λ = 1e4 on the synthetic MLP, whose gradients (and so
    /// Fisher) are far larger than MiniLM's (the default 1e6 freezes it: task 2 of the
    /// synthetic stream then scores 6%), 1e6 elsewhere.
    pub fn for_backbone(backbone: crate::registry::BackboneKind) -> Self {
        match backbone {
            crate::registry::BackboneKind::SyntheticMlp => Self {
                lambda: 1e4,
                ..Self::default()
            },
            _ => Self::default(),
        }
    }

    /// Checks every field; errors name it.
    pub fn validate(&self) -> Result<()> {
        if !(self.lambda >= 0.0 && self.lambda.is_finite()) {
            return Err(ClError::config(
                "ewc.lambda",
                format!("{} must be a non-negative number", self.lambda),
            ));
        }
        if !(0.0..=1.0).contains(&self.gamma) {
            return Err(ClError::config(
                "ewc.gamma",
                format!("{} is not in [0, 1]", self.gamma),
            ));
        }
        Ok(())
    }
}

/// The accumulated Fisher and the anchor, by parameter path (`[numel]` each).
#[derive(Debug, Clone)]
pub struct EwcState<B: Backend> {
    /// `F`.
    pub fisher: PathTensors<B>,
    /// `θ*`.
    pub anchor: PathTensors<B>,
}

impl<B: Backend> EwcState<B> {
    /// No task consolidated yet.
    pub fn empty() -> Self {
        Self {
            fisher: BTreeMap::new(),
            anchor: BTreeMap::new(),
        }
    }

    /// Consolidates a finished task: `F ← γ·F + mean_b(g_b ⊙ g_b)` over its batches' gradients,
    /// `θ* ← θ`.
    pub fn consolidate(
        &mut self,
        gamma: f64,
        batch_grads: &[PathTensors<B>],
        params: PathTensors<B>,
    ) -> Result<()> {
        let n = batch_grads.len().max(1) as f64;
        let mut task: PathTensors<B> = BTreeMap::new();
        for grads in batch_grads {
            for (path, g) in grads {
                let sq = g.clone().powi_scalar(2);
                let sum = match task.remove(path) {
                    Some(acc) => acc + sq,
                    None => sq,
                };
                task.insert(path.clone(), sum);
            }
        }
        for (path, sum) in task {
            let fresh = sum.div_scalar(n);
            let fisher = match self.fisher.remove(&path) {
                Some(old) => old.mul_scalar(gamma) + fresh,
                None => fresh,
            };
            self.fisher.insert(path, fisher);
        }
        self.anchor = params;
        Ok(())
    }

    /// `λ/2 · Σ F ⊙ (θ − θ*)²` over every consolidated path of `params` (autodiff tensors of
    /// the current parameters); `None` before the first consolidation.
    pub fn penalty<AB>(
        &self,
        lambda: f64,
        params: &PathTensors<AB>,
    ) -> Result<Option<Tensor<AB, 1>>>
    where
        AB: AutodiffBackend<InnerBackend = B>,
    {
        let mut total: Option<Tensor<AB, 1>> = None;
        for (path, fisher) in &self.fisher {
            let theta = params.get(path).ok_or_else(|| ClError::MissingTensor {
                tensor: path.clone(),
                context: " among the trainable parameters (EWC penalty)".into(),
            })?;
            let anchor = self
                .anchor
                .get(path)
                .ok_or_else(|| ClError::MissingTensor {
                    tensor: path.clone(),
                    context: " in the EWC anchor".into(),
                })?;
            let diff = theta.clone() - Tensor::from_inner(anchor.clone());
            let term = (Tensor::<AB, 1>::from_inner(fisher.clone()) * diff.powi_scalar(2)).sum();
            total = Some(match total {
                Some(t) => t + term,
                None => term,
            });
        }
        Ok(total.map(|t| t.mul_scalar(lambda / 2.0)))
    }

    /// Writes `F` and `θ*` (`fisher/<path>`, `anchor/<path>`) to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut all = to_named("fisher", &self.fisher);
        all.extend(to_named("anchor", &self.anchor));
        write_safetensors(path, &all, None)
    }

    /// Reads what [`EwcState::save`] wrote.
    pub fn load(path: &Path, device: &B::Device) -> Result<Self> {
        let [fisher, anchor]: [PathTensors<B>; 2] =
            from_named(read_safetensors(path)?, &["fisher", "anchor"], device)
                .map_err(|name| ClError::Record {
                    path: path.to_path_buf(),
                    reason: format!("unexpected tensor `{name}` in an EWC state"),
                })?
                .try_into()
                .expect("one map per prefix");
        Ok(Self { fisher, anchor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    type I = NdArray<f32>;
    type B = Autodiff<I>;

    fn t(v: &[f32]) -> Tensor<I, 1> {
        Tensor::from_data(
            burn::tensor::TensorData::new(v.to_vec(), [v.len()]),
            &Default::default(),
        )
    }

    fn map(v: &[f32]) -> PathTensors<I> {
        BTreeMap::from([("w".to_string(), t(v))])
    }

    fn host(x: Tensor<I, 1>) -> Vec<f32> {
        x.into_data().to_vec().unwrap()
    }

    #[test]
    fn fisher_and_penalty_by_hand() {
        let mut state = EwcState::<I>::empty();
        // Two batches with gradients [1, 2] and [3, 0]: F = ([1, 4] + [9, 0]) / 2 = [5, 2].
        state
            .consolidate(
                1.0,
                &[map(&[1.0, 2.0]), map(&[3.0, 0.0])],
                map(&[0.5, -1.0]),
            )
            .unwrap();
        assert_eq!(host(state.fisher["w"].clone()), vec![5.0, 2.0]);
        // θ = [1.5, 0]: λ/2 · (5·1² + 2·1²) = 7 with λ = 2.
        let theta: PathTensors<B> = BTreeMap::from([(
            "w".to_string(),
            Tensor::from_inner(t(&[1.5, 0.0])).require_grad(),
        )]);
        let penalty = state.penalty(2.0, &theta).unwrap().unwrap();
        assert!((penalty.clone().into_scalar() - 7.0).abs() < 1e-6);
        // Its gradient: λ·F·(θ − θ*) = 2·[5, 2]·[1, 1] = [10, 4].
        let grads = penalty.backward();
        let g = theta["w"].grad(&grads).unwrap();
        assert_eq!(host(g), vec![10.0, 4.0]);
        // Online accumulation with γ = 0.5: F = 0.5·[5, 2] + [4, 4] = [6.5, 5].
        state
            .consolidate(0.5, &[map(&[2.0, 2.0])], map(&[0.0, 0.0]))
            .unwrap();
        assert_eq!(host(state.fisher["w"].clone()), vec![6.5, 5.0]);
        assert_eq!(host(state.anchor["w"].clone()), vec![0.0, 0.0]);
        // Round trip.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ewc.safetensors");
        state.save(&file).unwrap();
        let back = EwcState::<I>::load(&file, &Default::default()).unwrap();
        assert_eq!(host(back.fisher["w"].clone()), vec![6.5, 5.0]);
        // Nothing consolidated: no penalty; a missing parameter is named.
        assert!(
            EwcState::<I>::empty()
                .penalty(1.0, &theta)
                .unwrap()
                .is_none()
        );
        let err = state
            .penalty(1.0, &BTreeMap::<String, Tensor<B, 1>>::new())
            .unwrap_err();
        assert!(err.to_string().contains("`w`"), "{err}");
        assert!(
            EwcConfig {
                gamma: 2.0,
                ..EwcConfig::default()
            }
            .validate()
            .is_err()
        );
    }
}
