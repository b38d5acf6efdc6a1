//! What a backbone exposes so its weights can be modulated: every conv / linear weight viewed as
//! `[out, in, kh, kw]` (a linear layer is `[out, in, 1, 1]`), its batch norms, and a forward pass
//! taking replacement weights and a replacement normalisation. Implemented for MobileNetV2 (52
//! convolutions, a batch norm after each) and the synthetic MLP (linear layers, no norm).

use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::{AutodiffBackend, Backend};
use cl_core::backbone::mobilenet_v2::global_average;
use cl_core::backbone::{Backbone, MlpBackbone, MobileNetV2};

/// A batch norm's pre-trained state: `[channels]` each.
#[derive(Debug, Clone)]
pub struct NormState<B: Backend> {
    /// Module path (e.g. `blocks.3.depthwise.norm`).
    pub path: String,
    /// `γ`.
    pub gamma: Tensor<B, 1>,
    /// `β`.
    pub beta: Tensor<B, 1>,
    /// Running mean.
    pub mean: Tensor<B, 1>,
    /// Running variance.
    pub var: Tensor<B, 1>,
    /// `ε`.
    pub epsilon: f64,
}

/// Replacement normalisation: `(norm index, pre-norm activations [batch, c, h, w]) → same shape`.
pub type NormFn<'a, B> = dyn FnMut(usize, Tensor<B, 4>) -> Tensor<B, 4> + 'a;

/// A frozen backbone whose weights a method can replace per task.
pub trait ModulatableBackbone<B: Backend>: Backbone<B> {
    /// Every modulatable weight in forward order, with its module path, as `[out, in, kh, kw]`.
    fn weights(&self) -> Vec<(String, Tensor<B, 4>)>;

    /// Every batch norm in forward order (empty when there is none).
    fn norms(&self) -> Vec<NormState<B>>;

    /// Pooled features `[batch, feature_dim]` computed with `weights[i]` (same shapes as
    /// [`ModulatableBackbone::weights`]) in place of weight `i`, and `norm(j, y)` in place of
    /// batch norm `j`.
    fn features_with(
        &self,
        inputs: &[&Self::Input],
        weights: &[Tensor<B, 4>],
        norm: &mut NormFn<'_, B>,
    ) -> Tensor<B, 2>;
}

/// A modulatable backbone trained under autodiff and evaluated on the inner backend with the same
/// inputs (implemented for every such backbone).
pub trait ModulationBackbone<B: AutodiffBackend>:
    ModulatableBackbone<B>
    + AutodiffModule<
        B,
        InnerModule: ModulatableBackbone<B::InnerBackend, Input = <Self as Backbone<B>>::Input>,
    >
{
}

impl<B, M> ModulationBackbone<B> for M
where
    B: AutodiffBackend,
    M: ModulatableBackbone<B> + AutodiffModule<B>,
    M::InnerModule: ModulatableBackbone<B::InnerBackend, Input = M::Input>,
{
}

impl<B: Backend> ModulatableBackbone<B> for MobileNetV2<B> {
    fn weights(&self) -> Vec<(String, Tensor<B, 4>)> {
        self.convs()
            .into_iter()
            .map(|(path, conv)| (format!("{path}.weight"), conv.weight.val()))
            .collect()
    }

    fn norms(&self) -> Vec<NormState<B>> {
        self.convs()
            .into_iter()
            .map(|(path, conv)| NormState {
                path: format!("{path}.norm"),
                gamma: conv.norm.gamma.val(),
                beta: conv.norm.beta.val(),
                mean: conv.norm.running_mean.val(),
                var: conv.norm.running_var.val(),
                epsilon: conv.norm.epsilon,
            })
            .collect()
    }

    fn features_with(
        &self,
        inputs: &[&Self::Input],
        weights: &[Tensor<B, 4>],
        norm: &mut NormFn<'_, B>,
    ) -> Tensor<B, 2> {
        global_average(self.feature_map_custom(self.batch(inputs), weights, norm))
    }
}

impl<B: Backend> ModulatableBackbone<B> for MlpBackbone<B> {
    /// Layer `i`'s weight `[d_{i+1}, d_i, 1, 1]` (Burn stores `[d_i, d_{i+1}]`).
    fn weights(&self) -> Vec<(String, Tensor<B, 4>)> {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let [d_in, d_out] = layer.dims();
                let w = layer
                    .base
                    .weight
                    .val()
                    .transpose()
                    .reshape([d_out, d_in, 1, 1]);
                (format!("layers.{i}.base.weight"), w)
            })
            .collect()
    }

    fn norms(&self) -> Vec<NormState<B>> {
        Vec::new()
    }

    fn features_with(
        &self,
        inputs: &[&Self::Input],
        weights: &[Tensor<B, 4>],
        _norm: &mut NormFn<'_, B>,
    ) -> Tensor<B, 2> {
        assert_eq!(weights.len(), self.layers.len(), "one weight per layer");
        let mut h = self.input_batch(inputs);
        for (layer, w) in self.layers.iter().zip(weights) {
            let [d_out, d_in, _, _] = w.dims();
            let w = w.clone().reshape([d_out, d_in]).transpose();
            let mut y = h.matmul(w);
            if let Some(bias) = &layer.base.bias {
                y = y + bias.val().unsqueeze();
            }
            h = relu(y);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use cl_core::backbone::MlpBackboneConfig;

    type B = NdArray<f32>;

    #[test]
    fn mlp_with_its_own_weights_is_the_plain_forward() {
        let device = Default::default();
        let mlp = MlpBackboneConfig {
            input_dim: 4,
            hidden: vec![6, 3],
            seed: 2,
        }
        .init::<B>(&device)
        .unwrap();
        let x = vec![0.5, -1.0, 2.0, 0.25];
        let weights: Vec<_> = mlp.weights().into_iter().map(|(_, w)| w).collect();
        assert_eq!(weights[0].dims(), [6, 4, 1, 1]);
        let custom = mlp.features_with(&[&x], &weights, &mut |_, y| y);
        let plain = mlp.features(&[&x]);
        let (a, b) = (custom.into_data(), plain.into_data());
        for (u, v) in a.iter::<f32>().zip(b.iter::<f32>()) {
            assert!((u - v).abs() < 1e-6);
        }
    }
}
