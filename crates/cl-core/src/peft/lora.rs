//! LoRA: `y = x·W + b + Σ_k (α/r)·dropout(x)·A_k·B_k` on a frozen linear layer.
//!
//! Burn stores a `Linear` weight as `[d_input, d_output]` (`y = x·W`). The LoRA factors follow the
//! same orientation: `A: [d_input, r]`, `B: [r, d_output]`, so `delta() = (α/r)·A·B` has the
//! weight's shape and `merge()` is a plain sum. (Hugging Face PEFT stores `lora_A.weight: [r, in]`
//! and `lora_B.weight: [out, r]`, the transposes; export code transposes.) `B` starts at zero,
//! so a fresh adapter leaves the layer's output unchanged.

use burn::module::{Module, Param};
use burn::nn::{Dropout, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{ClError, Result};

/// Hyper-parameters of the LoRA adapters put on a backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank `r` (≥ 1).
    pub rank: usize,
    /// Scale numerator `α`; the update is scaled by `α / r`.
    pub alpha: f64,
    /// Dropout probability on the adapter's input, in `[0, 1)`.
    #[serde(default)]
    pub dropout: f64,
    /// Module-path patterns selecting the linear layers that get adapters (see [`matches_target`]).
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            dropout: 0.0,
            targets: vec!["query".into(), "value".into()],
        }
    }
}

impl LoraConfig {
    /// Checks ranges; errors name the offending field.
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            return Err(ClError::config("lora.rank", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ClError::config(
                "lora.dropout",
                format!("{} is not in [0, 1)", self.dropout),
            ));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(ClError::config(
                "lora.alpha",
                format!(
                    "{} must be a positive number (the update is scaled by alpha / rank; 0 would switch LoRA off)",
                    self.alpha
                ),
            ));
        }
        if self.targets.is_empty() {
            return Err(ClError::config(
                "lora.targets",
                "selects no layer: give at least one pattern",
            ));
        }
        Ok(())
    }

    /// The scale `α / r`.
    pub fn scaling(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// Does module path `path` (dot-separated, e.g. `layers.0.attention.query`) match `pattern`?
///
/// - A pattern without `*` matches a path equal to it or ending with `.pattern` on a segment
///   boundary (Hugging Face PEFT's `target_modules` semantics: `query` selects every `*.query`).
/// - A pattern with `*` is a glob over the whole path; `*` matches any run of characters
///   (e.g. `layers.*.attention.*`).
pub fn matches_target(path: &str, pattern: &str) -> bool {
    if pattern.contains('*') {
        glob_match(pattern.as_bytes(), path.as_bytes())
    } else {
        path == pattern
            || (path.len() > pattern.len()
                && path.ends_with(pattern)
                && path.as_bytes()[path.len() - pattern.len() - 1] == b'.')
    }
}

fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob_match(rest, &text[i..])),
        Some((c, rest)) => text.first() == Some(c) && glob_match(rest, &text[1..]),
    }
}

/// One low-rank adapter pair.
#[derive(Module, Debug)]
pub struct LoraAdapter<B: Backend> {
    /// Down projection `A`: `[d_input, rank]`, Kaiming-uniform (bound `1/√d_input`, as PEFT).
    pub lora_a: Param<Tensor<B, 2>>,
    /// Up projection `B`: `[rank, d_output]`, zero at initialisation.
    pub lora_b: Param<Tensor<B, 2>>,
    /// The scale `α / r`.
    pub scaling: f64,
    /// Dropout probability on the adapter's input (active only under autodiff).
    pub dropout: f64,
}

impl<B: Backend> LoraAdapter<B> {
    /// A fresh adapter for a `[d_input, d_output]` layer; `A` is drawn from `seed`.
    pub fn new(
        d_input: usize,
        d_output: usize,
        cfg: &LoraConfig,
        seed: u64,
        device: &B::Device,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let bound = 1.0 / (d_input as f32).sqrt();
        let a: Vec<f32> = (0..d_input * cfg.rank)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let lora_a = Tensor::from_data(TensorData::new(a, [d_input, cfg.rank]), device);
        let lora_b = Tensor::zeros([cfg.rank, d_output], device);
        Self {
            lora_a: Param::from_tensor(lora_a),
            lora_b: Param::from_tensor(lora_b),
            scaling: cfg.scaling(),
            dropout: cfg.dropout,
        }
    }

    /// Rank `r`.
    pub fn rank(&self) -> usize {
        self.lora_a.dims()[1]
    }

    /// `x: [..., d_input]` → `[..., d_output]`: `(α/r)·dropout(x)·A·B`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let x = Dropout { prob: self.dropout }.forward(x);
        let down = burn::tensor::module::linear(x, self.lora_a.val(), None);
        // The scale is applied to B (`[r, d_output]`), not to the `[rows, d_output]` output:
        // the same function, one pass over a small matrix instead of over the output.
        burn::tensor::module::linear(down, self.lora_b.val().mul_scalar(self.scaling), None)
    }

    /// The weight update `(α/r)·A·B`: `[d_input, d_output]`.
    pub fn delta(&self) -> Tensor<B, 2> {
        self.lora_a
            .val()
            .matmul(self.lora_b.val())
            .mul_scalar(self.scaling)
    }
}

/// A linear layer whose pre-trained weights are frozen, with zero or more LoRA adapters summed
/// onto its output. Every linear layer of a backbone is a `LoraLinear`; those not selected by
/// the LoRA targets simply have no adapter.
#[derive(Module, Debug)]
pub struct LoraLinear<B: Backend> {
    /// The frozen pre-trained layer: weight `[d_input, d_output]`, bias `[d_output]`.
    pub base: Linear<B>,
    /// Adapters, all active and summed (IncLoRA keeps several; most methods use one).
    pub adapters: Vec<LoraAdapter<B>>,
}

impl<B: Backend> LoraLinear<B> {
    /// Wraps a pre-trained layer and freezes it (its parameters never receive gradients).
    pub fn frozen(base: Linear<B>) -> Self {
        Self {
            base: base.no_grad(),
            adapters: Vec::new(),
        }
    }

    /// `[d_input, d_output]` of the base weight.
    pub fn dims(&self) -> [usize; 2] {
        self.base.weight.dims()
    }

    /// Appends a fresh trainable adapter (its `B` is zero, so the output is unchanged).
    pub fn push_adapter(&mut self, cfg: &LoraConfig, seed: u64) {
        let [d_in, d_out] = self.dims();
        let device = self.base.weight.device();
        self.adapters
            .push(LoraAdapter::new(d_in, d_out, cfg, seed, &device));
    }

    /// Stops gradients to every adapter currently present (IncLoRA freezes earlier tasks').
    pub fn freeze_adapters(&mut self) {
        let adapters = std::mem::take(&mut self.adapters);
        self.adapters = adapters.into_iter().map(Module::no_grad).collect();
    }

    /// `x: [..., d_input]` → `[..., d_output]`.
    ///
    /// The leading dimensions are flattened into one, so that each weight takes part in one
    /// matrix product (forward and backward) rather than one per batch row: burn-ndarray runs a
    /// batched product as one GEMM per batch entry, each packing the whole weight again, which
    /// dominated the decoder's few-token passes.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        if D <= 2 {
            return self.forward_rows(x);
        }
        let dims = x.dims();
        let rows: usize = dims[..D - 1].iter().product();
        let y = self.forward_rows(x.reshape([rows, dims[D - 1]]));
        let mut out = dims;
        out[D - 1] = y.dims()[1];
        y.reshape(out)
    }

    fn forward_rows<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let mut y = self.base.forward(x.clone());
        for adapter in &self.adapters {
            y = y + adapter.forward(x.clone());
        }
        y
    }

    /// Sum of the adapters' updates, `[d_input, d_output]`; `None` without adapters.
    pub fn delta(&self) -> Option<Tensor<B, 2>> {
        self.adapters
            .iter()
            .map(LoraAdapter::delta)
            .reduce(|a, b| a + b)
    }

    /// Folds every adapter into the weight: a plain `Linear` with `W + Σ ΔW_k` (no dropout at
    /// inference, so its output equals the unmerged layer's up to float rounding).
    pub fn merge(self) -> Linear<B> {
        let delta = self.delta();
        let mut base = self.base;
        if let Some(delta) = delta {
            base.weight = base.weight.map(|w| (w + delta).detach());
        }
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::nn::LinearConfig;

    type B = NdArray<f32>;

    #[test]
    fn target_patterns() {
        assert!(matches_target("layers.0.attention.query", "query"));
        assert!(matches_target("query", "query"));
        assert!(!matches_target("layers.0.attention.subquery", "query"));
        assert!(matches_target(
            "layers.3.attention.value",
            "layers.*.attention.*"
        ));
        assert!(!matches_target("layers.3.ffn.up", "layers.*.attention.*"));
        assert!(matches_target("layers.3.ffn.up", "*"));
    }

    #[test]
    fn config_errors_name_the_field() {
        let bad = LoraConfig {
            rank: 0,
            ..LoraConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("lora.rank")
        );
        let bad = LoraConfig {
            dropout: 1.5,
            ..LoraConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("lora.dropout")
        );
        let unknown =
            serde_json::from_str::<LoraConfig>(r#"{"rank":4,"alpha":8,"targets":["q"],"rnak":2}"#);
        assert!(unknown.unwrap_err().to_string().contains("rnak"));
    }

    fn layer(seed: u64) -> LoraLinear<B> {
        let device = Default::default();
        B::seed(&device, seed);
        let mut l = LoraLinear::frozen(LinearConfig::new(6, 5).init::<B>(&device));
        let cfg = LoraConfig {
            rank: 3,
            alpha: 6.0,
            dropout: 0.0,
            targets: vec!["*".into()],
        };
        l.push_adapter(&cfg, seed);
        // Give B non-zero values so the adapter matters.
        let b = Tensor::<B, 2>::random(
            [3, 5],
            burn::tensor::Distribution::Normal(0.0, 0.5),
            &device,
        );
        l.adapters[0].lora_b = Param::from_tensor(b);
        l
    }

    #[test]
    fn fresh_adapter_is_identity() {
        let device = Default::default();
        let base = LinearConfig::new(4, 3).init::<B>(&device);
        let x = Tensor::<B, 2>::random([2, 4], burn::tensor::Distribution::Default, &device);
        let before = base.forward(x.clone());
        let mut l = LoraLinear::frozen(base);
        l.push_adapter(&LoraConfig::default(), 1);
        l.forward(x)
            .into_data()
            .assert_approx_eq::<f32>(&before.into_data(), Default::default());
    }

    #[test]
    fn merge_equals_unmerged_forward() {
        let device = Default::default();
        let mut l = layer(3);
        l.push_adapter(
            &LoraConfig {
                rank: 2,
                alpha: 4.0,
                dropout: 0.0,
                targets: vec![],
            },
            9,
        );
        let b = Tensor::<B, 2>::random(
            [2, 5],
            burn::tensor::Distribution::Normal(0.0, 0.5),
            &device,
        );
        l.adapters[1].lora_b = Param::from_tensor(b);
        let x = Tensor::<B, 3>::random(
            [2, 7, 6],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let unmerged = l.forward(x.clone());
        let merged = l.merge().forward(x);
        let diff = (unmerged - merged).abs().max().into_scalar();
        assert!(diff < 1e-5, "merged and unmerged outputs differ by {diff}");
    }

    #[test]
    fn delta_is_scaled_product() {
        let l = layer(5);
        let a = l.adapters[0].lora_a.val();
        let b = l.adapters[0].lora_b.val();
        let expected = a.matmul(b).mul_scalar(2.0); // α / r = 6 / 3
        let diff = (l.delta().unwrap() - expected).abs().max().into_scalar();
        assert!(diff < 1e-6);
        assert_eq!(l.adapters[0].rank(), 3);
    }
}
