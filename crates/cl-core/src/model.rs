//! The model a method trains, behind one seam: [`TaskModel`]. A method computes its loss, its
//! class scores, the hidden states of its consistency losses and its parameter sets through this
//! trait, never knowing whether it trains a classifier or a language model. Two implementations:
//!
//! - [`PeftClassifier`]: a PEFT backbone's pooled features → a linear head over the stream's
//!   classes; cross-entropy on the class logits.
//! - [`CausalLm`]: a decoder that answers each prompt with its class's label word; the loss is the
//!   causal LM loss on the answer tokens only, and the class scores are the answers'
//!   log-likelihoods (rank classification).
//!
//! Also here: the loss and label-space masking every classifier method shares.

mod causal_lm;

use burn::module::{AutodiffModule, Module, ModuleDisplay};
use burn::nn::Linear;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};

use crate::backbone::Backbone;
use crate::backbone::mlp::seeded_linear;
use crate::error::Result;
use crate::peft::param_paths;
use crate::stream::{Example, Scenario, TaskInfo, mix_seed};

pub use causal_lm::{
    CausalLm, GENERATION_SLACK, Verbalizer, normalize_answer, rank_classification,
    rank_classification_and_generation,
};

/// The seed stream of a run's classification head (`mix_seed(seed, [HEAD_SEED])`).
pub const HEAD_SEED: u64 = 0;

/// What a model answers for a batch of inputs at evaluation (see [`TaskModel::predictions`]).
#[derive(Debug, Clone)]
pub struct Predictions<B: Backend> {
    /// Scores over every class of the stream, `[batch, num_classes]` (the highest is the
    /// prediction); `None` for a model whose answers are free text, not classes.
    pub scores: Option<Tensor<B, 2>>,
    /// For a model that generates its answers (the causal LM): each input's greedy answer.
    pub greedy: Option<Vec<GreedyAnswer>>,
}

impl<B: Backend> Predictions<B> {
    /// Class scores alone (a model that does not generate).
    pub fn scores(scores: Tensor<B, 2>) -> Self {
        Self {
            scores: Some(scores),
            greedy: None,
        }
    }
}

/// One greedy answer of a generating model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreedyAnswer {
    /// The class whose answer it is (exact match), `None` where it is no class's answer or the
    /// answers are free text.
    pub class: Option<usize>,
    /// Its text up to the end-of-text id, where the model decodes text.
    pub text: Option<String>,
}

/// A training batch's losses and the hidden states they were computed from (one forward pass).
#[derive(Debug, Clone)]
pub struct TrainForward<B: Backend> {
    /// Each example's loss, `[batch]`.
    pub losses: Tensor<B, 1>,
    /// The hidden states the call selected, each `[batch, positions, width]` (positions: the
    /// tokens the loss saw; 1 for a pooled vector).
    pub states: Vec<Tensor<B, 3>>,
    /// `[batch, positions]`: 1 at real positions, 0 at padding.
    pub mask: Tensor<B, 2>,
}

/// What a continual-learning method trains: a frozen backbone with its adapters, read out as
/// scores over the stream's classes. See the module docs.
pub trait TaskModel<B: Backend>: Module<B> + ModuleDisplay {
    /// One example's host-side input (the backbone's).
    type Input: Clone + Send + Sync + std::fmt::Debug + 'static;
    /// The backbone whose LoRA layers the method adapts.
    type Backbone: Backbone<B, Input = Self::Input>;

    /// The backbone (its LoRA layers, its frozen weights).
    fn backbone(&self) -> &Self::Backbone;

    /// The backbone, mutably (adding, freezing and merging adapters).
    fn backbone_mut(&mut self) -> &mut Self::Backbone;

    /// Number of classes of the stream.
    fn num_classes(&self) -> usize;

    /// Scores over every class of the stream, `[batch, num_classes]`; the highest is the
    /// prediction (logits for the classifier, log-likelihoods for the language model).
    fn class_scores(&self, inputs: &[&Self::Input]) -> Result<Tensor<B, 2>>;

    /// [`TaskModel::class_scores`] and, for a model that generates its answers, each input's
    /// greedy answer (its class for exact match, its text for free-text metrics); a model whose
    /// answers are free text gives no class scores. The default has no generation.
    fn predictions(&self, inputs: &[&Self::Input]) -> Result<Predictions<B>> {
        Ok(Predictions::scores(self.class_scores(inputs)?))
    }

    /// The mean training loss of a batch, `[1]`. `allowed` restricts each example's label space
    /// (task-incremental training) where the model has one.
    fn loss(
        &self,
        inputs: &[&Self::Input],
        labels: &[usize],
        allowed: Option<&[&[usize]]>,
    ) -> Result<Tensor<B, 1>>;

    /// Each example's loss and the hidden states `layers` selects
    /// (indices below [`Backbone::num_layer_states`]), in one forward pass.
    fn train_forward(
        &self,
        inputs: &[&Self::Input],
        labels: &[usize],
        allowed: Option<&[&[usize]]>,
        layers: &[usize],
    ) -> Result<TrainForward<B>>;

    /// Parameter counts: `(trainable, stored)`: the elements that require gradients now, and
    /// those of every LoRA factor and of the head (what a PEFT method keeps beyond the backbone).
    fn lora_param_counts(&self) -> (usize, usize) {
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

/// A model trained under autodiff and evaluated on the inner backend with the same inputs: what
/// every method's [`crate::learner::Learner`] holds. Implemented for every such model.
pub trait TrainableModel<B: AutodiffBackend>:
    TaskModel<B>
    + AutodiffModule<
        B,
        InnerModule: TaskModel<B::InnerBackend, Input = <Self as TaskModel<B>>::Input>,
    >
{
}

impl<B, M> TrainableModel<B> for M
where
    B: AutodiffBackend,
    M: TaskModel<B> + AutodiffModule<B>,
    M::InnerModule: TaskModel<B::InnerBackend, Input = M::Input>,
{
}

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

    /// The classifier a run with seed `seed` starts from: its head drawn from
    /// `mix_seed(seed, [HEAD_SEED])`.
    pub fn for_run(backbone: M, num_classes: usize, seed: u64) -> Self {
        Self::new(backbone, num_classes, mix_seed(seed, &[HEAD_SEED]))
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

impl<B: Backend, M: Backbone<B>> TaskModel<B> for PeftClassifier<B, M> {
    type Input = M::Input;
    type Backbone = M;

    fn backbone(&self) -> &M {
        &self.backbone
    }

    fn backbone_mut(&mut self) -> &mut M {
        &mut self.backbone
    }

    fn num_classes(&self) -> usize {
        PeftClassifier::num_classes(self)
    }

    fn class_scores(&self, inputs: &[&M::Input]) -> Result<Tensor<B, 2>> {
        Ok(self.forward(inputs))
    }

    /// Cross-entropy of the head's logits ([`cross_entropy`]).
    fn loss(
        &self,
        inputs: &[&M::Input],
        labels: &[usize],
        allowed: Option<&[&[usize]]>,
    ) -> Result<Tensor<B, 1>> {
        Ok(cross_entropy(self.forward(inputs), labels, allowed))
    }

    fn train_forward(
        &self,
        inputs: &[&M::Input],
        labels: &[usize],
        allowed: Option<&[&[usize]]>,
        layers: &[usize],
    ) -> Result<TrainForward<B>> {
        let states = self.backbone.layer_states(inputs, layers);
        let logits = self.head.forward(states.features);
        Ok(TrainForward {
            losses: example_cross_entropy(logits, labels, allowed),
            states: states.layers,
            mask: states.mask,
        })
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
    example_cross_entropy(logits, labels, allowed).mean()
}

/// Each example's cross-entropy, `[batch]` (see [`cross_entropy`]).
pub fn example_cross_entropy<B: Backend>(
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
    log_softmax(logits, 1)
        .gather(1, targets)
        .reshape([batch])
        .neg()
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

    /// The GELU the encoders use is the exact one, x · Φ(x), and so is its gradient,
    /// Φ(x) + x · φ(x), as PyTorch computes them (Burn 0.21's own backward is the tanh
    /// approximation's derivative, 3.5e-4 off at x = 1; the vendored burn-ndarray fixes it).
    #[test]
    fn gelu_and_its_gradient_are_exact() {
        use burn::backend::Autodiff;
        use burn::tensor::activation::gelu;
        let device = Default::default();
        let points = [-3.0f64, -1.0, -0.25, 0.0, 0.5, 1.0, 2.5];
        let x = Tensor::<Autodiff<B>, 1>::from_data(
            TensorData::new(points.iter().map(|&p| p as f32).collect(), [points.len()]),
            &device,
        )
        .require_grad();
        let y = gelu(x.clone());
        let grads = y.clone().sum().backward();
        let dy: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
        let y: Vec<f32> = y.into_data().to_vec().unwrap();
        // Φ and φ from erf in f64.
        for (i, &p) in points.iter().enumerate() {
            let cdf = 0.5 * (1.0 + erf(p / std::f64::consts::SQRT_2));
            let pdf = (-0.5 * p * p).exp() / (2.0 * std::f64::consts::PI).sqrt();
            assert!((y[i] as f64 - p * cdf).abs() < 1e-6, "gelu({p}) = {}", y[i]);
            assert!(
                (dy[i] as f64 - (cdf + p * pdf)).abs() < 1e-6,
                "gelu'({p}) = {}",
                dy[i]
            );
        }
    }

    /// erf by its Taylor series (converges fast for |x| ≤ 3 in f64).
    fn erf(x: f64) -> f64 {
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
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
