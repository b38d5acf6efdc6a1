//! Per-element importance `I = |θ ⊙ ∇L|` with Recurrent-KIF's smoothing, kept on the device.
//!
//! After every optimiser step of a loop, with `θ` the updated parameters and `∇L` the step's
//! gradient: `Ī ← β₁Ī + (1 − β₁)I`, `U ← β₂U + (1 − β₂)|I − Ī|`, and the score is `s = Ī ⊙ U`
//! (`Ī` and `U` start at 0). With bias correction (the default) the score after `n` updates is
//! `s = Ī/(1 − β₁ⁿ) ⊙ U/(1 − β₂ⁿ)`, as Adam corrects its moments: the inner scores restart from 0
//! every cycle (8 updates) while the outer ones persist, and without the correction the inner
//! scores are systematically smaller, so the global quantile almost never marks an element as
//! important to the current task. All tensors are flattened per parameter path, like task
//! vectors.

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use cl_core::params::{from_named, to_named};
use cl_core::peft::TaskVector;
use cl_core::peft::peft_format::NamedTensor;
use cl_core::{ClError, Result};

use crate::config::ImportanceKind;

pub use cl_core::params::{PathTensors, gradients_by_path};

/// One loop's smoothed importance (`Ī`, `U`) per parameter path.
#[derive(Debug, Clone)]
pub struct Importance<B: Backend> {
    beta1: f64,
    beta2: f64,
    kind: ImportanceKind,
    smoothing: bool,
    mean: PathTensors<B>,
    deviation: PathTensors<B>,
    /// The last update's raw `I` (kept without smoothing).
    last: PathTensors<B>,
    updates: u64,
}

impl<B: Backend> Importance<B> {
    /// Empty scores (`Ī = U = 0`) with smoothing `β₁`, `β₂`.
    pub fn new(beta1: f64, beta2: f64) -> Self {
        Self {
            beta1,
            beta2,
            kind: ImportanceKind::ThetaGrad,
            smoothing: true,
            mean: BTreeMap::new(),
            deviation: BTreeMap::new(),
            last: BTreeMap::new(),
            updates: 0,
        }
    }

    /// The same with `I` of `kind` and, when `smoothing` is `false`, the last raw `I` as the
    /// score (Appendix B.6's variants).
    pub fn variant(mut self, kind: ImportanceKind, smoothing: bool) -> Self {
        self.kind = kind;
        self.smoothing = smoothing;
        self
    }

    /// Number of updates since creation or [`Importance::reset`].
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Back to `Ī = U = 0`.
    pub fn reset(&mut self) {
        self.mean.clear();
        self.deviation.clear();
        self.last.clear();
        self.updates = 0;
    }

    /// One update from the parameters after a step and that step's gradients (same paths).
    pub fn update(&mut self, params: &TaskVector<B>, grads: &PathTensors<B>) -> Result<()> {
        for (path, p) in params.entries() {
            let grad = grads.get(path).ok_or_else(|| ClError::MissingTensor {
                tensor: path.clone(),
                context: " in the step's gradients".into(),
            })?;
            let importance = match self.kind {
                ImportanceKind::ThetaGrad => (p.value.clone() * grad.clone()).abs(),
                ImportanceKind::Grad => grad.clone().abs(),
            };
            if !self.smoothing {
                self.last.insert(path.clone(), importance);
                continue;
            }
            let mean = match self.mean.remove(path) {
                Some(m) => {
                    m.mul_scalar(self.beta1) + importance.clone().mul_scalar(1.0 - self.beta1)
                }
                None => importance.clone().mul_scalar(1.0 - self.beta1),
            };
            let spread = (importance - mean.clone())
                .abs()
                .mul_scalar(1.0 - self.beta2);
            let deviation = match self.deviation.remove(path) {
                Some(u) => u.mul_scalar(self.beta2) + spread,
                None => spread,
            };
            self.mean.insert(path.clone(), mean);
            self.deviation.insert(path.clone(), deviation);
        }
        self.updates += 1;
        Ok(())
    }

    /// Scores `s = Ī ⊙ U` per path (empty before the first update), divided by
    /// `(1 − β₁ⁿ)(1 − β₂ⁿ)` after `n` updates when `bias_correction` is set.
    pub fn scores(&self, bias_correction: bool) -> PathTensors<B> {
        if !self.smoothing {
            return self.last.clone();
        }
        let n = self.updates.min(i32::MAX as u64) as i32;
        let factor = if bias_correction && n > 0 {
            1.0 / ((1.0 - self.beta1.powi(n)) * (1.0 - self.beta2.powi(n)))
        } else {
            1.0
        };
        self.mean
            .iter()
            .map(|(path, m)| {
                let s = m.clone() * self.deviation[path].clone();
                (
                    path.clone(),
                    if factor == 1.0 {
                        s
                    } else {
                        s.mul_scalar(factor)
                    },
                )
            })
            .collect()
    }

    /// `Ī` and `U` as named host tensors (`mean/<path>`, `deviation/<path>`) for a checkpoint.
    pub fn to_named(&self) -> Vec<NamedTensor> {
        let mut out = to_named("mean", &self.mean);
        out.extend(to_named("deviation", &self.deviation));
        out.extend(to_named("last", &self.last));
        out
    }

    /// Restores what [`Importance::to_named`] wrote (with `updates` restored by the caller).
    pub fn from_named(
        template: &Self,
        tensors: Vec<NamedTensor>,
        updates: u64,
        device: &B::Device,
    ) -> Result<Self> {
        let mut me = template.clone();
        me.reset();
        let [mean, deviation, last]: [PathTensors<B>; 3] =
            from_named(tensors, &["mean", "deviation", "last"], device)
                .map_err(|name| {
                    ClError::config(
                        "importance checkpoint",
                        format!("unexpected tensor `{name}`"),
                    )
                })?
                .try_into()
                .expect("one map per prefix");
        (me.mean, me.deviation, me.last) = (mean, deviation, last);
        if let Some(path) = me.mean.keys().find(|p| !me.deviation.contains_key(*p)) {
            return Err(ClError::MissingTensor {
                tensor: format!("deviation/{path}"),
                context: " in the importance checkpoint".into(),
            });
        }
        me.updates = updates;
        Ok(me)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::Tensor;
    use cl_core::peft::ParamTensor;

    type B = NdArray<f32>;

    fn vector(values: [f32; 3]) -> TaskVector<B> {
        let mut entries = BTreeMap::new();
        entries.insert(
            "w".to_string(),
            ParamTensor {
                value: Tensor::from_data(values, &Default::default()),
                shape: vec![3],
            },
        );
        TaskVector::from_entries(entries)
    }

    #[test]
    fn smoothing_matches_hand_values() {
        let mut imp = Importance::<B>::new(0.5, 0.5);
        let grads = |v: [f32; 3]| -> PathTensors<B> {
            BTreeMap::from([("w".to_string(), Tensor::from_data(v, &Default::default()))])
        };
        // I = |θ ⊙ g| = [2, 0, 3].
        imp.update(&vector([1.0, 5.0, -1.0]), &grads([2.0, 0.0, 3.0]))
            .unwrap();
        let host = |imp: &Importance<B>, corrected: bool| -> Vec<f32> {
            imp.scores(corrected)["w"]
                .clone()
                .into_data()
                .to_vec::<f32>()
                .unwrap()
        };
        // Ī = 0.5·I = [1, 0, 1.5]; U = 0.5·|I − Ī| = [0.5, 0, 0.75]; s = [0.5, 0, 1.125].
        assert_eq!(host(&imp, false), vec![0.5, 0.0, 1.125]);
        // Corrected: ÷ (1 − 0.5)(1 − 0.5) = ×4.
        assert_eq!(host(&imp, true), vec![2.0, 0.0, 4.5]);
        // Second step, I = [2, 0, 3] again: Ī = [1.5, 0, 2.25]; U = 0.5·U + 0.5·|I − Ī|
        // = [0.25 + 0.25, 0, 0.375 + 0.375]; s = [0.75, 0, 1.6875].
        imp.update(&vector([1.0, 5.0, -1.0]), &grads([2.0, 0.0, 3.0]))
            .unwrap();
        assert_eq!(host(&imp, false), vec![0.75, 0.0, 1.6875]);
        // Corrected: ÷ (1 − 0.25)² = ×16/9.
        let c = host(&imp, true);
        assert!((c[2] - 1.6875 * 16.0 / 9.0).abs() < 1e-6, "{c:?}");
        assert_eq!(imp.updates(), 2);
        let restored =
            Importance::<B>::from_named(&imp, imp.to_named(), 2, &Default::default()).unwrap();
        assert_eq!(host(&restored, true), c);
        let err = imp.update(&vector([1.0; 3]), &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains('w'), "{err}");
        imp.reset();
        assert!(imp.scores(true).is_empty());
    }

    #[test]
    fn appendix_variants_grad_only_and_no_smoothing() {
        let grads = BTreeMap::from([(
            "w".to_string(),
            Tensor::<B, 1>::from_data([2.0, -4.0, 3.0], &Default::default()),
        )]);
        let host = |imp: &Importance<B>| -> Vec<f32> {
            imp.scores(true)["w"]
                .clone()
                .into_data()
                .to_vec::<f32>()
                .unwrap()
        };
        // |∇θ| without smoothing: the score is the last step's |g|, whatever θ is.
        let mut raw = Importance::<B>::new(0.5, 0.5).variant(ImportanceKind::Grad, false);
        raw.update(&vector([10.0, 5.0, -1.0]), &grads).unwrap();
        assert_eq!(host(&raw), vec![2.0, 4.0, 3.0]);
        // |θ ⊙ ∇θ| without smoothing: [20, 20, 3]; a second step replaces it.
        let mut theta = Importance::<B>::new(0.5, 0.5).variant(ImportanceKind::ThetaGrad, false);
        theta.update(&vector([10.0, 5.0, -1.0]), &grads).unwrap();
        assert_eq!(host(&theta), vec![20.0, 20.0, 3.0]);
        theta.update(&vector([1.0, 1.0, 1.0]), &grads).unwrap();
        assert_eq!(host(&theta), vec![2.0, 4.0, 3.0]);
        let restored =
            Importance::<B>::from_named(&theta, theta.to_named(), 2, &Default::default()).unwrap();
        assert_eq!(host(&restored), vec![2.0, 4.0, 3.0]);
        // Smoothed |∇θ|: Ī = ½|g| = [1, 2, 1.5]; U = ½|I − Ī| = [0.5, 1, 0.75]; corrected ×4.
        let mut smooth = Importance::<B>::new(0.5, 0.5).variant(ImportanceKind::Grad, true);
        smooth.update(&vector([10.0, 5.0, -1.0]), &grads).unwrap();
        assert_eq!(host(&smooth), vec![2.0, 8.0, 4.5]);
    }
}
