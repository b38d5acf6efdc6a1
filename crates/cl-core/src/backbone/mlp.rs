//! A small frozen MLP over feature vectors: the synthetic backbone for unit tests and the
//! conformance suite (real runs use MiniLM or MobileNetV2).

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{Backbone, HiddenStates};
use crate::error::{ClError, Result};
use crate::peft::LoraLinear;
use crate::stream::mix_seed;

/// Shape of the synthetic MLP backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpBackboneConfig {
    /// Input vector length.
    pub input_dim: usize,
    /// Width of each hidden layer; the last is the feature dim.
    pub hidden: Vec<usize>,
    /// Seed of the (frozen, random) weights.
    pub seed: u64,
}

/// `features = relu(L_k(... relu(L_1(x))))`, every `L_i` a frozen [`LoraLinear`] at path `layers.i`.
#[derive(Module, Debug)]
pub struct MlpBackbone<B: Backend> {
    /// The layers: `layers.i.base.weight` is `[d_{i}, d_{i+1}]`.
    pub layers: Vec<LoraLinear<B>>,
}

impl MlpBackboneConfig {
    /// Builds the frozen backbone (Kaiming-uniform weights from `seed`, zero biases).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<MlpBackbone<B>> {
        if self.input_dim == 0 || self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err(ClError::config(
                "backbone.hidden",
                "needs a non-zero input_dim and at least one non-zero hidden width",
            ));
        }
        let dims: Vec<usize> = std::iter::once(self.input_dim)
            .chain(self.hidden.iter().copied())
            .collect();
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                LoraLinear::frozen(seeded_linear(
                    w[0],
                    w[1],
                    mix_seed(self.seed, &[i as u64]),
                    device,
                ))
            })
            .collect();
        Ok(MlpBackbone { layers })
    }
}

/// A `Linear` `[d_input, d_output]` with Kaiming-uniform weights drawn on the host from `seed`
/// (backend-independent initialisation) and zero bias.
pub fn seeded_linear<B: Backend>(
    d_input: usize,
    d_output: usize,
    seed: u64,
    device: &B::Device,
) -> Linear<B> {
    let mut rng = StdRng::seed_from_u64(seed);
    let bound = (6.0 / d_input as f32).sqrt() / 3f32.sqrt();
    let w: Vec<f32> = (0..d_input * d_output)
        .map(|_| rng.random_range(-bound..bound))
        .collect();
    Linear {
        weight: Param::from_tensor(Tensor::from_data(
            TensorData::new(w, [d_input, d_output]),
            device,
        )),
        bias: Some(Param::from_tensor(Tensor::zeros([d_output], device))),
    }
}

impl<B: Backend> MlpBackbone<B> {
    /// Stacks input vectors into `[batch, d_0]` on the backbone's device. Panics with a clear
    /// message if a vector has the wrong length.
    pub fn input_batch(&self, inputs: &[&Vec<f32>]) -> Tensor<B, 2> {
        let d = self.layers[0].dims()[0];
        let flat: Vec<f32> = inputs
            .iter()
            .flat_map(|x| {
                assert_eq!(x.len(), d, "MLP backbone expects inputs of length {d}");
                x.iter().copied()
            })
            .collect();
        Tensor::from_data(TensorData::new(flat, [inputs.len(), d]), &self.device())
    }

    /// Every layer's output `[batch, d_{i+1}]`, in order.
    fn layer_outputs(&self, inputs: &[&Vec<f32>]) -> Vec<Tensor<B, 2>> {
        let mut h = self.input_batch(inputs);
        let mut outputs = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            h = relu(layer.forward(h));
            outputs.push(h.clone());
        }
        outputs
    }
}

impl<B: Backend> Backbone<B> for MlpBackbone<B> {
    type Input = Vec<f32>;

    fn feature_dim(&self) -> usize {
        self.layers.last().map_or(0, |l| l.dims()[1])
    }

    fn features(&self, inputs: &[&Vec<f32>]) -> Tensor<B, 2> {
        self.layer_outputs(inputs)
            .pop()
            .expect("at least one layer")
    }

    /// State `i` is the output of layer `i` (after its ReLU); the last is the features.
    fn num_layer_states(&self) -> usize {
        self.layers.len()
    }

    fn layer_states(&self, inputs: &[&Vec<f32>], layers: &[usize]) -> HiddenStates<B> {
        let outputs = self.layer_outputs(inputs);
        let batch = inputs.len();
        HiddenStates {
            features: outputs.last().expect("at least one layer").clone(),
            layers: layers
                .iter()
                .map(|&i| {
                    let width = outputs[i].dims()[1];
                    outputs[i].clone().reshape([batch, 1, width])
                })
                .collect(),
            mask: Tensor::ones([batch, 1], &self.device()),
        }
    }

    fn lora_layers(&self) -> Vec<(String, &LoraLinear<B>)> {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("layers.{i}"), l))
            .collect()
    }

    fn lora_layers_mut(&mut self) -> Vec<(String, &mut LoraLinear<B>)> {
        self.layers
            .iter_mut()
            .enumerate()
            .map(|(i, l)| (format!("layers.{i}"), l))
            .collect()
    }

    fn device(&self) -> B::Device {
        self.layers[0].base.weight.device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::{adapter_counts, add_lora};
    use crate::peft::LoraConfig;
    use burn::backend::NdArray;

    #[test]
    fn features_and_lora_targets() {
        let device = Default::default();
        let cfg = MlpBackboneConfig {
            input_dim: 5,
            hidden: vec![8, 6],
            seed: 0,
        };
        let mut bb = cfg.init::<NdArray>(&device).unwrap();
        let x = vec![1.0; 5];
        assert_eq!(bb.features(&[&x, &x]).dims(), [2, 6]);
        assert_eq!(bb.feature_dim(), 6);
        let lora = LoraConfig {
            rank: 2,
            alpha: 4.0,
            dropout: 0.0,
            targets: vec!["layers.1".into()],
        };
        assert_eq!(add_lora(&mut bb, &lora, 0).unwrap(), 1);
        assert_eq!(
            adapter_counts(&bb),
            vec![("layers.0".into(), 0), ("layers.1".into(), 1)]
        );
        let none = LoraConfig {
            targets: vec!["query".into()],
            ..lora
        };
        let err = add_lora(&mut bb, &none, 0).unwrap_err().to_string();
        assert!(
            err.contains("lora.targets") && err.contains("layers.0"),
            "{err}"
        );
    }

    #[test]
    fn weights_are_seeded_and_backend_independent() {
        let device = Default::default();
        let cfg = MlpBackboneConfig {
            input_dim: 3,
            hidden: vec![4],
            seed: 7,
        };
        let a = cfg.init::<NdArray>(&device).unwrap();
        let b = cfg.init::<NdArray>(&device).unwrap();
        a.layers[0]
            .base
            .weight
            .val()
            .into_data()
            .assert_eq(&b.layers[0].base.weight.val().into_data(), true);
    }
}
