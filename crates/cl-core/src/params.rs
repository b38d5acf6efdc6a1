//! Trainable parameters and their gradients by module path, flattened to `[numel]`: what
//! importance scores (Recurrent-KIF), Fisher information (EWC) and penalties are computed over.

use std::collections::BTreeMap;

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

/// Flattened tensors `[numel]` keyed by parameter path.
pub type PathTensors<B> = BTreeMap<String, Tensor<B, 1>>;

/// The gradients of `module`'s trainable parameters, by path, flattened, on the inner backend
/// (no copy). A trainable parameter without a gradient gets zeros.
pub fn gradients_by_path<B, M>(module: &M, grads: &GradientsParams) -> PathTensors<B::InnerBackend>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    struct Collector<'a, B: AutodiffBackend> {
        stack: Vec<String>,
        grads: &'a GradientsParams,
        out: PathTensors<B::InnerBackend>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Collector<'_, B> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if !param.is_require_grad() {
                return;
            }
            let numel: usize = param.dims().iter().product();
            let grad = match self.grads.get::<B::InnerBackend, D>(param.id) {
                Some(g) => g.reshape([numel]),
                None => Tensor::zeros([numel], &param.device()),
            };
            self.out.insert(self.stack.join("."), grad);
        }
    }
    let mut collector = Collector::<B> {
        stack: Vec::new(),
        grads,
        out: BTreeMap::new(),
    };
    module.visit(&mut collector);
    collector.out
}

/// `module`'s trainable parameters by path, flattened, as autodiff tensors that stay in the
/// graph (a loss built from them has gradients for the parameters).
pub fn trainable_by_path<B, M>(module: &M) -> PathTensors<B>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    struct Collector<B: AutodiffBackend> {
        stack: Vec<String>,
        out: PathTensors<B>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Collector<B> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if !param.is_require_grad() {
                return;
            }
            let numel: usize = param.dims().iter().product();
            self.out
                .insert(self.stack.join("."), param.val().reshape([numel]));
        }
    }
    let mut collector = Collector::<B> {
        stack: Vec::new(),
        out: BTreeMap::new(),
    };
    module.visit(&mut collector);
    collector.out
}
