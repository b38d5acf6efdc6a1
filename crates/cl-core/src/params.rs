//! Trainable parameters and their gradients by module path, flattened to `[numel]`: what
//! importance scores (Recurrent-KIF), Fisher information (EWC) and penalties are computed over.

use std::collections::BTreeMap;

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

use crate::peft::peft_format::NamedTensor;

/// Flattened tensors `[numel]` keyed by parameter path.
pub type PathTensors<B> = BTreeMap<String, Tensor<B, 1>>;

/// `map`'s tensors on the host, named `<prefix>/<path>` (what a safetensors state file holds).
pub fn to_named<B: Backend>(prefix: &str, map: &PathTensors<B>) -> Vec<NamedTensor> {
    map.iter()
        .map(|(path, t)| {
            let values = t
                .clone()
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("converted to f32");
            (format!("{prefix}/{path}"), t.dims().to_vec(), values)
        })
        .collect()
}

/// The inverse of [`to_named`] for several prefixes at once: one map per prefix, in the order of
/// `prefixes`. A tensor under no listed prefix is returned as the error (its name).
pub fn from_named<B: Backend>(
    tensors: Vec<NamedTensor>,
    prefixes: &[&str],
    device: &B::Device,
) -> std::result::Result<Vec<PathTensors<B>>, String> {
    let mut maps = vec![PathTensors::new(); prefixes.len()];
    for (name, shape, values) in tensors {
        let slot = prefixes
            .iter()
            .position(|prefix| name.starts_with(&format!("{prefix}/")))
            .ok_or_else(|| name.clone())?;
        let path = name[prefixes[slot].len() + 1..].to_string();
        let numel = shape.iter().product::<usize>();
        let tensor = Tensor::<B, 1>::from_data(TensorData::new(values, [numel]), device);
        maps[slot].insert(path, tensor);
    }
    Ok(maps)
}

/// Receives each trainable parameter of a module with its dotted path ([`visit_trainable`]).
trait TrainableSink<B: AutodiffBackend> {
    fn take<const D: usize>(&mut self, path: String, param: &Param<Tensor<B, D>>);
}

/// Walks `module`, handing every parameter that requires a gradient to `sink` with its path.
fn visit_trainable<B, M, S>(module: &M, sink: S) -> S
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    S: TrainableSink<B>,
{
    struct PathStack<S> {
        stack: Vec<String>,
        sink: S,
    }
    impl<B: AutodiffBackend, S: TrainableSink<B>> ModuleVisitor<B> for PathStack<S> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if param.is_require_grad() {
                self.sink.take(self.stack.join("."), param);
            }
        }
    }
    let mut walker = PathStack {
        stack: Vec::new(),
        sink,
    };
    module.visit(&mut walker);
    walker.sink
}

/// The gradients of `module`'s trainable parameters, by path, flattened, on the inner backend
/// (no copy). A trainable parameter without a gradient gets zeros.
pub fn gradients_by_path<B, M>(module: &M, grads: &GradientsParams) -> PathTensors<B::InnerBackend>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    struct Gradients<'a, B: AutodiffBackend> {
        grads: &'a GradientsParams,
        out: PathTensors<B::InnerBackend>,
    }
    impl<B: AutodiffBackend> TrainableSink<B> for Gradients<'_, B> {
        fn take<const D: usize>(&mut self, path: String, param: &Param<Tensor<B, D>>) {
            let numel: usize = param.dims().iter().product();
            let grad = match self.grads.get::<B::InnerBackend, D>(param.id) {
                Some(g) => g.reshape([numel]),
                None => Tensor::zeros([numel], &param.device()),
            };
            self.out.insert(path, grad);
        }
    }
    let sink = Gradients::<B> {
        grads,
        out: BTreeMap::new(),
    };
    visit_trainable(module, sink).out
}

/// `module`'s trainable parameters by path, flattened, as autodiff tensors that stay in the
/// graph (a loss built from them has gradients for the parameters).
pub fn trainable_by_path<B, M>(module: &M) -> PathTensors<B>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    struct Values<B: Backend>(PathTensors<B>);
    impl<B: AutodiffBackend> TrainableSink<B> for Values<B> {
        fn take<const D: usize>(&mut self, path: String, param: &Param<Tensor<B, D>>) {
            let numel: usize = param.dims().iter().product();
            self.0.insert(path, param.val().reshape([numel]));
        }
    }
    visit_trainable(module, Values(BTreeMap::new())).0
}
