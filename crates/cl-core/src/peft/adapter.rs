//! Houlsby bottleneck adapter: `h ↦ h + up(act(down(h)))`, inserted after a sub-layer.
//! `up` starts at zero, so a fresh adapter is the identity.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::backbone::mlp::seeded_linear;
use crate::error::{ClError, Result};

/// Size of Houlsby adapters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterConfig {
    /// Bottleneck width `m` (≥ 1).
    pub bottleneck: usize,
}

impl AdapterConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if self.bottleneck == 0 {
            return Err(ClError::config("adapter.bottleneck", "must be at least 1"));
        }
        Ok(())
    }

    /// A fresh adapter for hidden size `d`: `down` Kaiming-uniform drawn on the host from
    /// `seed` (the same values on every backend and thread, whatever else draws random numbers)
    /// with a zero bias, `up` all zeros (so the adapter starts as the identity).
    pub fn init<B: Backend>(&self, d: usize, seed: u64, device: &B::Device) -> Adapter<B> {
        let down = seeded_linear(d, self.bottleneck, seed, device);
        let up = Linear {
            weight: Param::from_tensor(Tensor::zeros([self.bottleneck, d], device)),
            bias: Some(Param::from_tensor(Tensor::zeros([d], device))),
        };
        Adapter { down, up }
    }
}

/// A bottleneck MLP added residually.
#[derive(Module, Debug)]
pub struct Adapter<B: Backend> {
    /// `d → m`: weight `[d, m]`.
    pub down: Linear<B>,
    /// `m → d`: weight `[m, d]`, zero-initialised.
    pub up: Linear<B>,
}

impl<B: Backend> Adapter<B> {
    /// `h: [..., d]` → `[..., d]`.
    pub fn forward<const D: usize>(&self, h: Tensor<B, D>) -> Tensor<B, D> {
        h.clone() + self.up.forward(gelu(self.down.forward(h)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn fresh_adapter_is_identity_and_trainable() {
        let device = Default::default();
        let adapter = AdapterConfig { bottleneck: 4 }.init::<NdArray>(8, 3, &device);
        let h = Tensor::<NdArray, 2>::random([3, 8], burn::tensor::Distribution::Default, &device);
        adapter
            .forward(h.clone())
            .into_data()
            .assert_eq(&h.into_data(), true);
        assert_eq!(adapter.num_params(), 8 * 4 + 4 + 4 * 8 + 8);
        assert!(AdapterConfig { bottleneck: 0 }.validate().is_err());
    }
}
