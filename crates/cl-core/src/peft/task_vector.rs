//! Task vectors: named parameter tensors (or parameter deltas) keyed by module path, walked with
//! Burn's `Module::visit` / `Module::map`.
//!
//! A path is the dotted list of field names and `Vec` indices from the module root, e.g.
//! `backbone.layers.1.adapters.0.lora_b`. Values are kept flattened (`[numel]`) on the module's
//! device with their original shape beside them, so tensors of every rank share one map and no
//! value goes through the host.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};

use super::lora::matches_target;
use crate::error::{ClError, Result};

/// Which parameters a task vector covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamFilter {
    /// Every float parameter.
    All,
    /// Parameters that currently require gradients (the trainable ones).
    Trainable,
    /// LoRA factors (`lora_a`, `lora_b`).
    Lora,
    /// Everything except LoRA factors and adapter modules (the pre-trained weights).
    Pretrained,
    /// Parameter paths matching any of these patterns (see [`matches_target`]).
    Patterns(Vec<String>),
}

impl ParamFilter {
    fn accepts(&self, path: &str, require_grad: bool) -> bool {
        match self {
            ParamFilter::All => true,
            ParamFilter::Trainable => require_grad,
            ParamFilter::Lora => is_lora(path),
            ParamFilter::Pretrained => {
                !is_lora(path) && !path.split('.').any(|s| s == "adapter" || s == "adapters")
            }
            ParamFilter::Patterns(patterns) => patterns.iter().any(|p| matches_target(path, p)),
        }
    }
}

fn is_lora(path: &str) -> bool {
    path.ends_with(".lora_a") || path.ends_with(".lora_b")
}

/// One flattened parameter tensor.
#[derive(Debug, Clone)]
pub struct ParamTensor<B: Backend> {
    /// Values, flattened: `[numel]`.
    pub value: Tensor<B, 1>,
    /// Original dims of the parameter.
    pub shape: Vec<usize>,
}

/// Parameter values or deltas keyed by module path.
#[derive(Debug, Clone)]
pub struct TaskVector<B: Backend> {
    entries: BTreeMap<String, ParamTensor<B>>,
}

impl<B: Backend> Default for TaskVector<B> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<B: Backend> TaskVector<B> {
    /// The current values of the parameters `filter` selects (detached from any graph).
    pub fn snapshot<M: Module<B>>(module: &M, filter: &ParamFilter) -> Self {
        let mut collector = Collector {
            stack: Vec::new(),
            filter,
            entries: BTreeMap::new(),
        };
        module.visit(&mut collector);
        Self {
            entries: collector.entries,
        }
    }

    /// `τ = after − before` over the paths of `before` (typically a snapshot taken before
    /// training a task). Errors if a path is missing from `after` or changed shape.
    pub fn extract<M: Module<B>>(after: &M, before: &TaskVector<B>) -> Result<Self> {
        let patterns = ParamFilter::Patterns(before.entries.keys().cloned().collect());
        let now = Self::snapshot(after, &patterns);
        now.sub(before)
    }

    /// Builds a task vector from explicit entries.
    pub fn from_entries(entries: BTreeMap<String, ParamTensor<B>>) -> Self {
        Self { entries }
    }

    /// The entries, by path.
    pub fn entries(&self) -> &BTreeMap<String, ParamTensor<B>> {
        &self.entries
    }

    /// Paths covered.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` when no tensor is covered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of scalar values.
    pub fn num_elements(&self) -> usize {
        self.entries
            .values()
            .map(|p| p.shape.iter().product::<usize>())
            .sum()
    }

    /// `self + other`, path by path; both must cover the same paths with the same shapes.
    pub fn add(&self, other: &Self) -> Result<Self> {
        self.zip(other, |a, b| a + b)
    }

    /// `self − other`, path by path.
    pub fn sub(&self, other: &Self) -> Result<Self> {
        self.zip(other, |a, b| a - b)
    }

    /// `factor · self`.
    pub fn scale(&self, factor: f64) -> Self {
        Self {
            entries: self
                .entries
                .iter()
                .map(|(k, p)| {
                    let value = p.value.clone().mul_scalar(factor);
                    (
                        k.clone(),
                        ParamTensor {
                            value,
                            shape: p.shape.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Euclidean norm over all entries (one host read).
    pub fn l2_norm(&self) -> f64 {
        let Some(device) = self.entries.values().next().map(|p| p.value.device()) else {
            return 0.0;
        };
        let total = self
            .entries
            .values()
            .map(|p| p.value.clone().powi_scalar(2).sum())
            .fold(Tensor::<B, 1>::zeros([1], &device), |acc, s| acc + s);
        f64::from(total.into_scalar().elem::<f32>()).sqrt()
    }

    fn zip(
        &self,
        other: &Self,
        op: impl Fn(Tensor<B, 1>, Tensor<B, 1>) -> Tensor<B, 1>,
    ) -> Result<Self> {
        let mut entries = BTreeMap::new();
        for (path, a) in &self.entries {
            let b = other
                .entries
                .get(path)
                .ok_or_else(|| ClError::MissingTensor {
                    tensor: path.clone(),
                    context: " in the second task vector".into(),
                })?;
            if a.shape != b.shape {
                return Err(ClError::ShapeMismatch {
                    tensor: path.clone(),
                    expected: a.shape.clone(),
                    actual: b.shape.clone(),
                });
            }
            let value = op(a.value.clone(), b.value.clone());
            entries.insert(
                path.clone(),
                ParamTensor {
                    value,
                    shape: a.shape.clone(),
                },
            );
        }
        if let Some(extra) = other
            .entries
            .keys()
            .find(|k| !self.entries.contains_key(*k))
        {
            return Err(ClError::MissingTensor {
                tensor: extra.clone(),
                context: " in the first task vector".into(),
            });
        }
        Ok(Self { entries })
    }

    /// `θ ← θ + factor·τ` for every covered path. Parameters keep their gradient requirement.
    /// Errors (leaving nothing half-done in the returned error case is not possible with Burn's
    /// by-value modules, so the module is consumed) if a path is absent or has another shape.
    pub fn apply<M: Module<B>>(&self, module: M, factor: f64) -> Result<M> {
        self.write(module, WriteMode::Add(factor))
    }

    /// `θ ← τ` for every covered path (restores a snapshot).
    pub fn assign<M: Module<B>>(&self, module: M) -> Result<M> {
        self.write(module, WriteMode::Assign)
    }

    /// `θ ← (1 − weight)·θ + weight·τ` for every covered path: moves a module toward these values
    /// (an exponential moving average step with `α = 1 − weight`), on the device.
    pub fn interpolate_into<M: Module<B>>(&self, module: M, weight: f64) -> Result<M> {
        self.write(module, WriteMode::Lerp(weight))
    }

    fn write<M: Module<B>>(&self, module: M, mode: WriteMode) -> Result<M> {
        let mut writer = Writer {
            stack: Vec::new(),
            entries: &self.entries,
            mode,
            written: BTreeSet::new(),
            error: None,
        };
        let module = module.map(&mut writer);
        if let Some(err) = writer.error {
            return Err(err);
        }
        if let Some(missing) = self.entries.keys().find(|k| !writer.written.contains(*k)) {
            return Err(ClError::MissingTensor {
                tensor: missing.clone(),
                context: " in the module the task vector is applied to".into(),
            });
        }
        Ok(module)
    }
}

impl<B: AutodiffBackend> TaskVector<B> {
    /// Values of the inner backend as constants of the autodiff backend (to write into a module
    /// being trained); no data is copied.
    pub fn from_inner(inner: TaskVector<B::InnerBackend>) -> Self {
        TaskVector {
            entries: inner
                .entries
                .into_iter()
                .map(|(path, p)| {
                    (
                        path,
                        ParamTensor {
                            value: Tensor::from_inner(p.value),
                            shape: p.shape,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The same values on the inner (non-autodiff) backend; no data is copied.
    pub fn inner(&self) -> TaskVector<B::InnerBackend> {
        TaskVector {
            entries: self
                .entries
                .iter()
                .map(|(path, p)| {
                    (
                        path.clone(),
                        ParamTensor {
                            value: p.value.clone().inner(),
                            shape: p.shape.clone(),
                        },
                    )
                })
                .collect(),
        }
    }
}

/// Every float parameter of a module: `(path, dims, requires_grad)`, in visiting order.
pub fn param_paths<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, Vec<usize>, bool)> {
    struct Lister {
        stack: Vec<String>,
        out: Vec<(String, Vec<usize>, bool)>,
    }
    impl<B: Backend> ModuleVisitor<B> for Lister {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.out.push((
                self.stack.join("."),
                param.dims().to_vec(),
                param.is_require_grad(),
            ));
        }
    }
    let mut lister = Lister {
        stack: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut lister);
    lister.out
}

struct Collector<'a, B: Backend> {
    stack: Vec<String>,
    filter: &'a ParamFilter,
    entries: BTreeMap<String, ParamTensor<B>>,
}

impl<B: Backend> ModuleVisitor<B> for Collector<'_, B> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let path = self.stack.join(".");
        if self.filter.accepts(&path, param.is_require_grad()) {
            let tensor = param.val().detach();
            let shape = tensor.dims().to_vec();
            let numel: usize = shape.iter().product();
            self.entries.insert(
                path,
                ParamTensor {
                    value: tensor.reshape([numel]),
                    shape,
                },
            );
        }
    }
}

#[derive(Clone, Copy)]
enum WriteMode {
    Add(f64),
    Lerp(f64),
    Assign,
}

struct Writer<'a, B: Backend> {
    stack: Vec<String>,
    entries: &'a BTreeMap<String, ParamTensor<B>>,
    mode: WriteMode,
    written: BTreeSet<String>,
    error: Option<ClError>,
}

impl<B: Backend> ModuleMapper<B> for Writer<'_, B> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.stack.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let path = self.stack.join(".");
        let Some(entry) = self.entries.get(&path) else {
            return param;
        };
        let dims = param.dims();
        if entry.shape != dims {
            self.error.get_or_insert(ClError::ShapeMismatch {
                tensor: path,
                expected: dims.to_vec(),
                actual: entry.shape.clone(),
            });
            return param;
        }
        self.written.insert(path);
        let value: Tensor<B, D> = entry.value.clone().reshape(dims);
        let mode = self.mode;
        param.map(|tensor| {
            let require_grad = tensor.is_require_grad();
            let updated = match mode {
                WriteMode::Add(factor) => tensor.detach() + value.mul_scalar(factor),
                WriteMode::Lerp(weight) => {
                    tensor.detach().mul_scalar(1.0 - weight) + value.mul_scalar(weight)
                }
                WriteMode::Assign => value,
            };
            updated.detach().set_require_grad(require_grad)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peft::{LoraConfig, LoraLinear};
    use burn::backend::{Autodiff, NdArray};
    use burn::module::AutodiffModule;
    use burn::nn::LinearConfig;

    type B = NdArray<f32>;

    fn model() -> LoraLinear<B> {
        let device = Default::default();
        let mut l = LoraLinear::frozen(LinearConfig::new(4, 3).init::<B>(&device));
        l.push_adapter(&LoraConfig::default(), 1);
        l
    }

    #[test]
    fn paths_follow_module_fields() {
        let paths: Vec<String> = param_paths::<B, _>(&model())
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(
            paths,
            vec![
                "base.weight",
                "base.bias",
                "adapters.0.lora_a",
                "adapters.0.lora_b"
            ]
        );
        let lora = TaskVector::snapshot(&model(), &ParamFilter::Lora);
        assert_eq!(
            lora.paths().collect::<Vec<_>>(),
            vec!["adapters.0.lora_a", "adapters.0.lora_b"]
        );
        assert_eq!(lora.num_elements(), 4 * 8 + 8 * 3);
    }

    #[test]
    fn extract_apply_round_trip() {
        let before_model = model();
        let before = TaskVector::snapshot(&before_model, &ParamFilter::Lora);
        // "Train": add 0.5 to B.
        let mut after_model = before_model.clone();
        after_model.adapters[0].lora_b = after_model.adapters[0]
            .lora_b
            .clone()
            .map(|t| t.add_scalar(0.5));
        let tau = TaskVector::extract(&after_model, &before).unwrap();
        assert!((tau.l2_norm() - (0.25f64 * 24.0).sqrt()).abs() < 1e-5);

        // θ0 + 1·τ reproduces the trained model; θ0 + 2·τ doubles the step.
        let rebuilt = tau.apply(before_model.clone(), 1.0).unwrap();
        let diff = (rebuilt.adapters[0].lora_b.val() - after_model.adapters[0].lora_b.val())
            .abs()
            .max();
        assert!(diff.into_scalar() < 1e-7);
        let doubled = tau.scale(2.0).apply(before_model.clone(), 1.0).unwrap();
        let mean = doubled.adapters[0].lora_b.val().mean().into_scalar();
        assert!((mean - 1.0).abs() < 1e-6);

        // add / sub / assign
        let sum = tau.add(&tau).unwrap();
        assert!((sum.l2_norm() - 2.0 * tau.l2_norm()).abs() < 1e-5);
        let restored = before.assign(after_model).unwrap();
        assert_eq!(
            restored.adapters[0].lora_b.val().abs().max().into_scalar(),
            0.0
        );
    }

    #[test]
    fn errors_name_the_tensor() {
        let tau = TaskVector::snapshot(&model(), &ParamFilter::Lora);
        let device = Default::default();
        let other = LoraLinear::frozen(LinearConfig::new(4, 3).init::<B>(&device));
        let err = tau.apply(other, 1.0).unwrap_err().to_string();
        assert!(err.contains("adapters.0.lora_a"), "{err}");

        let mut wide = LoraLinear::frozen(LinearConfig::new(4, 3).init::<B>(&device));
        wide.push_adapter(
            &LoraConfig {
                rank: 2,
                ..LoraConfig::default()
            },
            1,
        );
        let err = tau.apply(wide, 1.0).unwrap_err().to_string();
        assert!(err.contains("shape"), "{err}");
    }

    #[test]
    fn apply_keeps_gradient_requirement() {
        let device = Default::default();
        let mut l = LoraLinear::frozen(LinearConfig::new(4, 3).init::<Autodiff<B>>(&device));
        l.push_adapter(&LoraConfig::default(), 1);
        let tau = TaskVector::snapshot(&l, &ParamFilter::All);
        let trainable = TaskVector::snapshot(&l, &ParamFilter::Trainable);
        assert_eq!(trainable.len(), 2, "only the adapter is trainable");
        let l = tau.apply(l, 0.1).unwrap();
        assert!(!l.base.weight.is_require_grad());
        assert!(l.adapters[0].lora_a.is_require_grad());
    }

    #[test]
    fn interpolate_moves_toward_the_values_on_the_inner_backend() {
        let device = Default::default();
        let mut fast = LoraLinear::frozen(LinearConfig::new(4, 3).init::<Autodiff<B>>(&device));
        fast.push_adapter(&LoraConfig::default(), 1);
        let slow = fast.valid();
        let before = slow.adapters[0].lora_a.val();
        // Move the fast factor to a known value, then one EMA step with α = 0.75.
        let target = TaskVector::snapshot(&fast, &ParamFilter::Lora).scale(3.0);
        let fast = target.assign(fast).unwrap();
        let step = TaskVector::snapshot(&fast, &ParamFilter::Trainable).inner();
        let slow = step.interpolate_into(slow, 0.25).unwrap();
        let expected = before.clone().mul_scalar(0.75) + before.mul_scalar(3.0 * 0.25);
        let diff = (slow.adapters[0].lora_a.val() - expected)
            .abs()
            .max()
            .into_scalar();
        assert!(diff < 1e-6, "{diff}");
    }
}
