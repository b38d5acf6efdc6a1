//! A classifier over a PEFT backbone: pooled features → linear head over the stream's classes,
//! plus the loss and label-space masking every method shares.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::backbone::Backbone;
use crate::backbone::mlp::seeded_linear;
use crate::peft::param_paths;
use crate::stream::{Example, Scenario, TaskInfo};

/// Backbone + classification head.
#[derive(Module, Debug)]
pub struct PeftClassifier<B: Backend, M: Module<B>> {
    /// The frozen backbone with its adapters.
    pub backbone: M,
    /// Head `[feature_dim, num_classes]` over the stream's global class space (trainable).
    pub head: Linear<B>,
}

impl<B: Backend, M: Backbone<B>> PeftClassifier<B, M> {
    /// A classifier with a fresh head for `num_classes`, drawn from `seed`.
    pub fn new(backbone: M, num_classes: usize, seed: u64) -> Self {
        let device = backbone.device();
        let head = seeded_linear(backbone.feature_dim(), num_classes, seed, &device);
        Self { backbone, head }
    }

    /// Logits over every class of the stream: `[batch, num_classes]`.
    pub fn forward(&self, inputs: &[&M::Input]) -> Tensor<B, 2> {
        self.head.forward(self.backbone.features(inputs))
    }

    /// Number of classes of the head.
    pub fn num_classes(&self) -> usize {
        self.head.weight.dims()[1]
    }
}

impl<B: Backend, M: Backbone<B>> PeftClassifier<B, M> {
    /// Parameter counts: `(trainable, adapters_and_head)`: the elements that require gradients
    /// now, and those of every LoRA factor and of the head (what a PEFT method stores).
    pub fn lora_param_counts(&self) -> (usize, usize) {
        let mut trainable = 0;
        let mut stored = 0;
        for (path, dims, grad) in param_paths::<B, _>(self) {
            let n: usize = dims.iter().product();
            if grad {
                trainable += n;
            }
            if path.contains(".lora_") || path.starts_with("head.") {
                stored += n;
            }
        }
        (trainable, stored)
    }
}

/// The classes each example may be predicted as during training: its task's classes in the
/// task-incremental scenario (`tasks` indexed by task id, the last one being the current task),
/// `None` (every class) in the class-incremental one.
pub fn allowed_classes<'a, X>(
    tasks: &'a [TaskInfo],
    examples: &[Example<X>],
) -> Option<Vec<&'a [usize]>> {
    match tasks.last().map(|t| t.scenario) {
        Some(Scenario::TaskIncremental) => Some(
            examples
                .iter()
                .map(|e| tasks[e.task].classes.as_slice())
                .collect(),
        ),
        _ => None,
    }
}

/// Labels as an int tensor `[batch]`.
pub fn label_tensor<B: Backend>(labels: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let data: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::from_data(TensorData::new(data, [labels.len()]), device)
}

/// Additive mask `[batch, num_classes]`: `0` for each example's allowed classes, `-1e9`
/// elsewhere. Adding it to logits restricts softmax and argmax to a label space.
pub fn label_space_mask<B: Backend>(
    allowed: &[&[usize]],
    num_classes: usize,
    device: &B::Device,
) -> Tensor<B, 2> {
    let mut mask = vec![-1e9f32; allowed.len() * num_classes];
    for (row, classes) in allowed.iter().enumerate() {
        for &c in *classes {
            mask[row * num_classes + c] = 0.0;
        }
    }
    Tensor::from_data(TensorData::new(mask, [allowed.len(), num_classes]), device)
}

/// Mean cross-entropy of `logits: [batch, C]` against `labels`, the softmax restricted per example
/// to `allowed` classes when given (task-incremental training). Returns `[1]`.
pub fn cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    labels: &[usize],
    allowed: Option<&[&[usize]]>,
) -> Tensor<B, 1> {
    let device = logits.device();
    let [batch, num_classes] = logits.dims();
    let logits = match allowed {
        Some(allowed) => logits + label_space_mask(allowed, num_classes, &device),
        None => logits,
    };
    let targets = label_tensor::<B>(labels, &device).reshape([batch, 1]);
    log_softmax(logits, 1).gather(1, targets).mean().neg()
}

/// Row-wise argmax of `logits: [batch, C]`, as host indices.
pub fn argmax_host<B: Backend>(logits: Tensor<B, 2>) -> Vec<usize> {
    let [batch, _] = logits.dims();
    let idx = logits.argmax(1).reshape([batch]).into_data();
    idx.iter::<i64>().map(|v| v as usize).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    #[test]
    fn cross_entropy_matches_hand_value() {
        let device = Default::default();
        let logits = Tensor::<B, 2>::from_data([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]], &device);
        let loss = cross_entropy(logits.clone(), &[1, 2], None).into_scalar();
        let l1 = -(2f32.exp() / (1f32.exp() + 2f32.exp() + 0.5f32.exp())).ln();
        let l2 = -(1f32 / 3.0).ln();
        assert!((loss - (l1 + l2) / 2.0).abs() < 1e-5, "{loss}");
        // Restricted to classes {1, 2} for row 0 and {0, 2} for row 1.
        let masked = cross_entropy(logits, &[1, 2], Some(&[&[1, 2], &[0, 2]])).into_scalar();
        let m1 = -(2f32.exp() / (2f32.exp() + 0.5f32.exp())).ln();
        let m2 = -(0.5f32).ln();
        assert!((masked - (m1 + m2) / 2.0).abs() < 1e-5, "{masked}");
    }

    #[test]
    fn argmax_respects_mask() {
        let device = Default::default();
        let logits = Tensor::<B, 2>::from_data([[1.0, 5.0, 0.5]], &device);
        assert_eq!(argmax_host(logits.clone()), vec![1]);
        let masked = logits + label_space_mask(&[&[0, 2]], 3, &device);
        assert_eq!(argmax_host(masked), vec![0]);
    }
}
