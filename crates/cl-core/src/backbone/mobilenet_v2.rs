//! MobileNetV2 (width 1.0, torchvision's layout) as a frozen image backbone: inverted residual
//! blocks of 1×1 expansion, 3×3 depthwise and 1×1 projection convolutions, each followed by batch
//! norm (ReLU6 after the first two), and the 1×1 head convolution to 1280 channels; features are
//! the global average of the head's output, `[batch, 1280]`.
//!
//! Batch norm is evaluation-mode (running statistics), computed explicitly: Burn's `BatchNorm`
//! uses batch statistics whenever the backend is an autodiff one, which a frozen backbone inside
//! a trained model must not. Module paths: `stem`, `blocks.{i}.{expand,depthwise,project}`,
//! `head`, each with `weight` `[out, in/groups, k, k]` and `norm.{gamma,beta,running_mean,
//! running_var}`; `classifier` (ImageNet, `[1280, 1000]`, used by the parity test only).
//! Loading torchvision's checkpoint is in `mobilenet_loader.rs`.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::Backbone;
use super::conv::conv2d_same;
use crate::peft::LoraLinear;

/// One image, channels first `[3, height, width]`, already resized and normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// `3 · height · width` values, channel-major.
    pub pixels: Vec<f32>,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

/// Evaluation-mode batch norm with fixed statistics: `y = (x − μ)/√(σ² + ε)·γ + β` per channel.
#[derive(Module, Debug)]
pub struct FrozenBatchNorm<B: Backend> {
    /// `γ`, `[channels]`.
    pub gamma: Param<Tensor<B, 1>>,
    /// `β`, `[channels]`.
    pub beta: Param<Tensor<B, 1>>,
    /// `μ`, `[channels]`.
    pub running_mean: Param<Tensor<B, 1>>,
    /// `σ²`, `[channels]`.
    pub running_var: Param<Tensor<B, 1>>,
    /// `ε`.
    pub epsilon: f64,
}

impl<B: Backend> FrozenBatchNorm<B> {
    /// `x: [batch, channels, h, w]` → same shape.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let c = self.gamma.dims()[0];
        let scale = self.gamma.val() / self.running_var.val().add_scalar(self.epsilon).sqrt();
        let shift = self.beta.val() - self.running_mean.val() * scale.clone();
        x * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1])
    }
}

/// Convolution without bias, batch norm, optional ReLU6.
#[derive(Module, Debug)]
pub struct ConvBn<B: Backend> {
    /// `[out, in / groups, k, k]`.
    pub weight: Param<Tensor<B, 4>>,
    /// Batch norm over the output channels.
    pub norm: FrozenBatchNorm<B>,
    /// Stride (both axes).
    pub stride: usize,
    /// Groups (`in` for a depthwise convolution).
    pub groups: usize,
    /// ReLU6 after the norm.
    pub relu6: bool,
}

impl<B: Backend> ConvBn<B> {
    /// `x: [batch, in, h, w]` → `[batch, out, h / stride, w / stride]` (padding `(k − 1) / 2`).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_with(x, self.weight.val())
    }

    /// The same with another weight of the same shape (a modulated or masked one).
    pub fn forward_with(&self, x: Tensor<B, 4>, weight: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_custom(x, weight, &mut |y| self.norm.forward(y))
    }

    /// The same with another weight and another normalisation of the convolution's output
    /// (per-task or batch statistics): `norm` maps `[batch, out, h', w']` to the same shape.
    pub fn forward_custom(
        &self,
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        norm: &mut dyn FnMut(Tensor<B, 4>) -> Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let y = norm(conv2d_same(x, weight, self.stride, self.groups));
        if self.relu6 { y.clamp(0.0, 6.0) } else { y }
    }
}

/// One inverted residual block.
#[derive(Module, Debug)]
pub struct InvertedResidual<B: Backend> {
    /// 1×1 expansion to `t · in` channels (absent when `t = 1`).
    pub expand: Option<ConvBn<B>>,
    /// 3×3 depthwise convolution (carries the block's stride).
    pub depthwise: ConvBn<B>,
    /// 1×1 linear projection (no activation).
    pub project: ConvBn<B>,
    /// `stride == 1 && in == out`: the input is added to the output.
    pub residual: bool,
}

impl<B: Backend> InvertedResidual<B> {
    /// The block's convolutions in order (expansion if any, depthwise, projection).
    pub fn convs(&self) -> Vec<&ConvBn<B>> {
        self.expand
            .iter()
            .chain([&self.depthwise, &self.project])
            .collect()
    }
}

/// torchvision's inverted-residual settings: (expansion t, channels c, repeats n, stride s).
pub const MOBILENET_V2_SETTINGS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Width of the features.
pub const MOBILENET_V2_FEATURES: usize = 1280;

/// The frozen network.
#[derive(Module, Debug)]
pub struct MobileNetV2<B: Backend> {
    /// 3×3 stride-2 convolution, 3 → 32.
    pub stem: ConvBn<B>,
    /// The 17 inverted residual blocks.
    pub blocks: Vec<InvertedResidual<B>>,
    /// 1×1 convolution 320 → 1280.
    pub head: ConvBn<B>,
    /// ImageNet classifier `[1280, 1000]` (parity checks; methods train their own heads).
    pub classifier: Linear<B>,
}

/// One convolution of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvSpec {
    /// Module path (`stem`, `blocks.{i}.{expand,depthwise,project}`, `head`).
    pub path: String,
    /// Weight shape `[out, in / groups, k, k]`.
    pub shape: [usize; 4],
    /// Stride.
    pub stride: usize,
    /// Groups.
    pub groups: usize,
    /// ReLU6 after the norm.
    pub relu6: bool,
}

fn spec(path: String, shape: [usize; 4], stride: usize, groups: usize, relu6: bool) -> ConvSpec {
    ConvSpec {
        path,
        shape,
        stride,
        groups,
        relu6,
    }
}

/// Every convolution in network order and whether each block is residual: the one
/// description both the random initialisation and the checkpoint loader build from.
pub fn mobilenet_v2_layout() -> (Vec<ConvSpec>, Vec<bool>) {
    let mut convs = vec![spec("stem".to_string(), [32, 3, 3, 3], 2, 1, true)];
    let mut residual = Vec::new();
    let mut input = 32;
    let mut block = 0;
    for (t, c, n, s) in MOBILENET_V2_SETTINGS {
        for repeat in 0..n {
            let stride = if repeat == 0 { s } else { 1 };
            let hidden = input * t;
            if t != 1 {
                convs.push(spec(
                    format!("blocks.{block}.expand"),
                    [hidden, input, 1, 1],
                    1,
                    1,
                    true,
                ));
            }
            convs.push(spec(
                format!("blocks.{block}.depthwise"),
                [hidden, 1, 3, 3],
                stride,
                hidden,
                true,
            ));
            convs.push(spec(
                format!("blocks.{block}.project"),
                [c, hidden, 1, 1],
                1,
                1,
                false,
            ));
            residual.push(stride == 1 && input == c);
            input = c;
            block += 1;
        }
    }
    convs.push(spec(
        "head".to_string(),
        [MOBILENET_V2_FEATURES, input, 1, 1],
        1,
        1,
        true,
    ));
    (convs, residual)
}

impl<B: Backend> MobileNetV2<B> {
    /// Assembles the network from its convolutions in [`mobilenet_v2_layout`] order and the
    /// classifier. Panics if the list does not follow the layout (callers build it from it).
    pub fn assemble(convs: Vec<ConvBn<B>>, residual: &[bool], classifier: Linear<B>) -> Self {
        let mut convs = convs.into_iter();
        let mut next = || convs.next().expect("a convolution per layout entry");
        let stem = next();
        let mut blocks = Vec::new();
        for (t, _, n, _) in MOBILENET_V2_SETTINGS {
            for _ in 0..n {
                let expand = (t != 1).then(&mut next);
                let depthwise = next();
                let project = next();
                blocks.push(InvertedResidual {
                    expand,
                    depthwise,
                    project,
                    residual: residual[blocks.len()],
                });
            }
        }
        let head = next();
        Self {
            stem,
            blocks,
            head,
            classifier,
        }
        .no_grad()
    }

    /// The architecture with random weights and unit statistics (tests, benches; loading
    /// replaces everything).
    pub fn random(device: &B::Device) -> Self {
        let (layout, residual) = mobilenet_v2_layout();
        let convs = layout
            .into_iter()
            .map(
                |ConvSpec {
                     shape,
                     stride,
                     groups,
                     relu6,
                     ..
                 }| {
                    let fan_in = (shape[1] * shape[2] * shape[3]) as f64;
                    let bound = (6.0 / fan_in).sqrt();
                    let c = shape[0];
                    ConvBn {
                        weight: Param::from_tensor(Tensor::random(
                            shape,
                            Distribution::Uniform(-bound, bound),
                            device,
                        )),
                        norm: FrozenBatchNorm {
                            gamma: Param::from_tensor(Tensor::ones([c], device)),
                            beta: Param::from_tensor(Tensor::zeros([c], device)),
                            running_mean: Param::from_tensor(Tensor::zeros([c], device)),
                            running_var: Param::from_tensor(Tensor::ones([c], device)),
                            epsilon: 1e-5,
                        },
                        stride,
                        groups,
                        relu6,
                    }
                },
            )
            .collect();
        let classifier = LinearConfig::new(MOBILENET_V2_FEATURES, 1000).init(device);
        Self::assemble(convs, &residual, classifier)
    }

    /// Every convolution with its module path, in network order.
    pub fn convs(&self) -> Vec<(String, &ConvBn<B>)> {
        let mut out = vec![("stem".to_string(), &self.stem)];
        for (i, block) in self.blocks.iter().enumerate() {
            if let Some(e) = &block.expand {
                out.push((format!("blocks.{i}.expand"), e));
            }
            out.push((format!("blocks.{i}.depthwise"), &block.depthwise));
            out.push((format!("blocks.{i}.project"), &block.project));
        }
        out.push(("head".to_string(), &self.head));
        out
    }

    /// Stacks images into `[batch, 3, h, w]`. Panics with a clear message if sizes differ or a
    /// pixel buffer has the wrong length (inputs come from one stream, resized alike).
    pub fn batch(&self, inputs: &[&Image]) -> Tensor<B, 4> {
        let (h, w) = inputs.first().map_or((1, 1), |i| (i.height, i.width));
        let mut flat = Vec::with_capacity(inputs.len() * 3 * h * w);
        for (n, image) in inputs.iter().enumerate() {
            assert!(
                image.height == h && image.width == w && image.pixels.len() == 3 * h * w,
                "image {n} of the batch is {}×{} with {} values; the batch is 3×{h}×{w}",
                image.height,
                image.width,
                image.pixels.len()
            );
            flat.extend_from_slice(&image.pixels);
        }
        Tensor::from_data(
            TensorData::new(flat, [inputs.len(), 3, h, w]),
            &self.device(),
        )
    }

    /// Head activations `[batch, 1280, h/32, w/32]` of `x: [batch, 3, h, w]`.
    pub fn feature_map(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let convs = self.convs();
        let weights: Vec<_> = convs.iter().map(|(_, c)| c.weight.val()).collect();
        self.feature_map_custom(x, &weights, &mut |i, y| convs[i].1.norm.forward(y))
    }

    /// [`MobileNetV2::feature_map`] with `weights[i]` in place of the weight of convolution `i`
    /// (network order, [`MobileNetV2::convs`]) and `norm(i, y)` in place of its batch norm.
    /// Panics if `weights` does not have one tensor per convolution.
    pub fn feature_map_custom(
        &self,
        x: Tensor<B, 4>,
        weights: &[Tensor<B, 4>],
        norm: &mut dyn FnMut(usize, Tensor<B, 4>) -> Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let convs = self.convs();
        assert_eq!(weights.len(), convs.len(), "one weight per convolution");
        let mut index = 0;
        let mut apply = |conv: &ConvBn<B>, x: Tensor<B, 4>| {
            let i = index;
            index += 1;
            conv.forward_custom(x, weights[i].clone(), &mut |y| norm(i, y))
        };
        let mut h = apply(&self.stem, x);
        for block in &self.blocks {
            let input = h.clone();
            if let Some(expand) = &block.expand {
                h = apply(expand, h);
            }
            h = apply(&block.depthwise, h);
            h = apply(&block.project, h);
            if block.residual {
                h = h + input;
            }
        }
        apply(&self.head, h)
    }

    /// ImageNet logits `[batch, 1000]` (evaluation mode: no dropout).
    pub fn imagenet_logits(&self, inputs: &[&Image]) -> Tensor<B, 2> {
        self.classifier.forward(self.features(inputs))
    }
}

/// Global average over the spatial axes: `[batch, c, h, w]` → `[batch, c]`.
pub fn global_average<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [batch, c, _, _] = x.dims();
    x.mean_dim(3).mean_dim(2).reshape([batch, c])
}

impl<B: Backend> Backbone<B> for MobileNetV2<B> {
    type Input = Image;

    fn feature_dim(&self) -> usize {
        MOBILENET_V2_FEATURES
    }

    fn features(&self, inputs: &[&Image]) -> Tensor<B, 2> {
        global_average(self.feature_map(self.batch(inputs)))
    }

    /// No linear layer takes LoRA: the network's weights are convolutions (modulated or masked
    /// by cl-modulation instead).
    fn lora_layers(&self) -> Vec<(String, &LoraLinear<B>)> {
        Vec::new()
    }

    fn lora_layers_mut(&mut self) -> Vec<(String, &mut LoraLinear<B>)> {
        Vec::new()
    }

    fn device(&self) -> B::Device {
        self.stem.weight.device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    #[test]
    fn layout_matches_torchvision() {
        let (convs, residual) = mobilenet_v2_layout();
        assert_eq!(convs.len(), 52, "52 convolutions");
        assert_eq!(residual.len(), 17);
        assert_eq!(residual.iter().filter(|r| **r).count(), 10);
        let params: usize = convs
            .iter()
            .map(|c| c.shape.iter().product::<usize>() + 4 * c.shape[0])
            .sum::<usize>()
            + 1280 * 1000
            + 1000;
        // torchvision's count (3,504,872) plus the running statistics (2 per BN channel, 34,112).
        let statistics: usize = convs.iter().map(|c| 2 * c.shape[0]).sum();
        assert_eq!(params - statistics, 3_504_872);
        let strides: Vec<usize> = convs
            .iter()
            .filter(|c| c.stride == 2)
            .map(|c| c.shape[0])
            .collect();
        assert_eq!(
            strides,
            vec![32, 96, 144, 192, 576],
            "stem and four stride-2 depthwise"
        );
    }

    #[test]
    fn forward_shapes_and_frozen_parameters() {
        let device = Default::default();
        let net = MobileNetV2::<B>::random(&device);
        let image = Image {
            pixels: vec![0.1; 3 * 64 * 64],
            height: 64,
            width: 64,
        };
        let map = net.feature_map(net.batch(&[&image, &image]));
        assert_eq!(map.dims(), [2, 1280, 2, 2]);
        assert_eq!(net.features(&[&image]).dims(), [1, 1280]);
        assert_eq!(net.imagenet_logits(&[&image]).dims(), [1, 1000]);
        let trainable = crate::peft::param_paths::<B, _>(&net)
            .into_iter()
            .filter(|p| p.2)
            .count();
        assert_eq!(trainable, 0);
        assert_eq!(net.convs().len(), 52);
        // The custom path with the network's own weights and norms is the plain forward.
        let x = net.batch(&[&image]);
        let weights: Vec<_> = net.convs().iter().map(|(_, c)| c.weight.val()).collect();
        let convs = net.convs();
        let custom =
            net.feature_map_custom(x.clone(), &weights, &mut |i, y| convs[i].1.norm.forward(y));
        custom
            .into_data()
            .assert_eq(&net.feature_map(x).into_data(), true);
    }

    #[test]
    fn frozen_batch_norm_is_the_affine_map_of_its_statistics() {
        let device = Default::default();
        let bn = FrozenBatchNorm::<B> {
            gamma: Param::from_tensor(Tensor::from_data([2.0, 1.0], &device)),
            beta: Param::from_tensor(Tensor::from_data([1.0, 0.0], &device)),
            running_mean: Param::from_tensor(Tensor::from_data([1.0, -1.0], &device)),
            running_var: Param::from_tensor(Tensor::from_data([4.0, 1.0], &device)),
            epsilon: 0.0,
        };
        let x = Tensor::<B, 4>::from_data([[[[3.0]], [[1.0]]]], &device);
        let y = bn.forward(x).into_data().to_vec::<f32>().unwrap();
        // (3 − 1)/2·2 + 1 = 3; (1 + 1)/1·1 + 0 = 2.
        assert_eq!(y, vec![3.0, 2.0]);
    }
}
