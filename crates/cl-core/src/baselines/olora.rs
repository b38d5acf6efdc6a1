//! O-LoRA (Wang et al. 2023): IncLoRA (a new LoRA per task, earlier ones frozen and summed) plus
//! an orthogonality penalty between the new LoRA's subspace and every earlier one's, and an
//! optional L2 penalty on the new LoRA:
//!
//! `L = CE + λ₁ · Σ_layers Σ_old Σ |A_newᵀ·A_old| + λ₂ · Σ_layers (‖A_new‖² + ‖B_new‖²)`.
//!
//! Our `A` is `[d_input, r]` (PEFT's `lora_A.weight` transposed), so the official
//! `|A_new · A_oldᵀ|` over PEFT's `[r, d_input]` factors is `|A_newᵀ · A_old|` here, `[r, r_old]`.
//! Defaults λ₁ = 0.5, λ₂ = 0, as the official scripts.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::error::{ClError, Result};
use crate::peft::LoraLinear;

/// O-LoRA's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OLoraConfig {
    /// λ₁, weight of the orthogonality penalty.
    pub lambda_orth: f64,
    /// λ₂, weight of the new LoRA's squared norm.
    pub lambda_l2: f64,
}

impl Default for OLoraConfig {
    fn default() -> Self {
        Self {
            lambda_orth: 0.5,
            lambda_l2: 0.0,
        }
    }
}

impl OLoraConfig {
    /// Checks every field; errors name it.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("olora.lambda_orth", self.lambda_orth),
            ("olora.lambda_l2", self.lambda_l2),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(ClError::config(
                    field,
                    format!("{v} must be a non-negative number"),
                ));
            }
        }
        Ok(())
    }
}

/// The penalty over `layers` (the newest adapter of each is the trainable one); `None` when
/// no layer has an adapter.
pub fn olora_penalty<'a, B: Backend + 'a>(
    layers: impl IntoIterator<Item = &'a LoraLinear<B>>,
    cfg: &OLoraConfig,
) -> Option<Tensor<B, 1>> {
    let mut total: Option<Tensor<B, 1>> = None;
    let mut add = |term: Tensor<B, 1>| {
        total = Some(match total.take() {
            Some(t) => t + term,
            None => term,
        });
    };
    for layer in layers {
        let Some((new, old)) = layer.adapters.split_last() else {
            continue;
        };
        let a_new = new.lora_a.val();
        if cfg.lambda_orth > 0.0 {
            for earlier in old {
                let overlap = a_new
                    .clone()
                    .transpose()
                    .matmul(earlier.lora_a.val().detach());
                add(overlap.abs().sum().mul_scalar(cfg.lambda_orth));
            }
        }
        if cfg.lambda_l2 > 0.0 {
            let norm = a_new.powi_scalar(2).sum() + new.lora_b.val().powi_scalar(2).sum();
            add(norm.mul_scalar(cfg.lambda_l2));
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::module::Param;
    use burn::nn::LinearConfig;
    use burn::tensor::TensorData;

    use crate::peft::{LoraAdapter, LoraLinear};

    type B = NdArray<f32>;

    fn adapter(a: &[f32], b: &[f32], d_in: usize, r: usize, d_out: usize) -> LoraAdapter<B> {
        let device = Default::default();
        LoraAdapter {
            lora_a: Param::from_tensor(Tensor::from_data(
                TensorData::new(a.to_vec(), [d_in, r]),
                &device,
            )),
            lora_b: Param::from_tensor(Tensor::from_data(
                TensorData::new(b.to_vec(), [r, d_out]),
                &device,
            )),
            scaling: 1.0,
            dropout: 0.0,
        }
    }

    #[test]
    fn penalty_by_hand() {
        let mut layer = LoraLinear::<B>::frozen(LinearConfig::new(2, 1).init(&Default::default()));
        // Old A = [[1], [0]] (d_in 2, r 1); new A = [[2], [3]], new B = [[1]].
        layer.adapters.push(adapter(&[1.0, 0.0], &[0.0], 2, 1, 1));
        layer.adapters.push(adapter(&[2.0, 3.0], &[1.0], 2, 1, 1));
        // A_newᵀ·A_old = 2·1 + 3·0 = 2 → λ₁·|2| = 1 with λ₁ = ½.
        let only_orth = olora_penalty([&layer], &OLoraConfig::default()).unwrap();
        assert!((only_orth.into_scalar() - 1.0).abs() < 1e-6);
        // λ₂ = 0.1: + 0.1·(4 + 9 + 1) = 1.4 → 2.4.
        let both = olora_penalty(
            [&layer],
            &OLoraConfig {
                lambda_orth: 0.5,
                lambda_l2: 0.1,
            },
        )
        .unwrap();
        assert!((both.into_scalar() - 2.4).abs() < 1e-6);
        // One adapter only (the first task): nothing to be orthogonal to.
        let mut first = LoraLinear::<B>::frozen(LinearConfig::new(2, 1).init(&Default::default()));
        first.adapters.push(adapter(&[2.0, 3.0], &[1.0], 2, 1, 1));
        let p = olora_penalty([&first], &OLoraConfig::default());
        assert!(p.is_none());
        assert!(
            OLoraConfig {
                lambda_orth: -1.0,
                lambda_l2: 0.0
            }
            .validate()
            .is_err()
        );
    }
}
