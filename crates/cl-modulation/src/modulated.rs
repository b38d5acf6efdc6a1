//! A task's own parameters (grids, batch norms, head) and the weights they produce:
//! modulation `W ⊙ interp(M_t)`, Piggyback mask `W ⊙ nearest(1[S_t > τ])` or fine-tuning
//! `W + Δ`, each grid resized to the weight's `(out, in)` axes and broadcast over the kernel, or
//! spanning the whole weight at [`Resolution::Full`].

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use cl_core::backbone::mlp::seeded_linear;

use crate::config::{ModulationConfig, Resolution, TransformKind};
use crate::interpolate::{Interpolation, Resampler};
use crate::network::NormState;

/// One modulated weight: its path, shape `[out, in, kh, kw]` and grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPlan {
    /// Module path of the weight.
    pub path: String,
    /// `[out, in, kh, kw]`.
    pub shape: [usize; 4],
    /// Grid `[m₁, m₂]` (`[out, in · kh · kw]` when `full`).
    pub grid: [usize; 2],
    /// The grid spans every weight element (no interpolation).
    pub full: bool,
}

impl LayerPlan {
    /// The plan of every weight for `cfg` (fine-tuning always spans the whole weight).
    pub fn all(weights: &[(String, [usize; 4])], cfg: &ModulationConfig) -> Vec<Self> {
        let resolution = match cfg.kind {
            TransformKind::Finetune => Resolution::Full,
            _ => cfg.resolution,
        };
        weights
            .iter()
            .map(|(path, shape)| {
                let (grid, full) = resolution.grid(*shape);
                LayerPlan {
                    path: path.clone(),
                    shape: *shape,
                    grid,
                    full,
                }
            })
            .collect()
    }

    /// Elements of the grid (what a task adds for this weight).
    pub fn grid_len(&self) -> usize {
        self.grid[0] * self.grid[1]
    }
}

/// The interpolation matrices of every plan (`None` where the grid spans the weight).
pub fn resamplers<B: Backend>(
    plans: &[LayerPlan],
    kind: TransformKind,
    interpolation: Interpolation,
    device: &B::Device,
) -> Vec<Option<Resampler<B>>> {
    let interpolation = match kind {
        TransformKind::Mask => Interpolation::Nearest,
        _ => interpolation,
    };
    plans
        .iter()
        .map(|p| {
            (!p.full)
                .then(|| Resampler::new([p.shape[0], p.shape[1]], p.grid, interpolation, device))
        })
        .collect()
}

/// A batch's `(mean, unbiased variance)` per channel, `[channels]` each, detached.
pub type BatchStatistics<B> = (Tensor<B, 1>, Tensor<B, 1>);

/// A task's batch norm: `γ`, `β` (trainable when affine) and running statistics (never trained
/// by the optimiser; updated from batch statistics), `[channels]` each.
#[derive(Module, Debug)]
pub struct TaskNorm<B: Backend> {
    /// `γ`.
    pub gamma: Param<Tensor<B, 1>>,
    /// `β`.
    pub beta: Param<Tensor<B, 1>>,
    /// Running mean.
    pub running_mean: Param<Tensor<B, 1>>,
    /// Running variance.
    pub running_var: Param<Tensor<B, 1>>,
}

/// Everything one task trains and keeps.
#[derive(Module, Debug)]
pub struct TaskModule<B: Backend> {
    /// One grid per weight, `[m₁, m₂]` (see [`LayerPlan`]).
    pub grids: Vec<Param<Tensor<B, 2>>>,
    /// One per batch norm of the backbone.
    pub norms: Vec<TaskNorm<B>>,
    /// Head `[feature_dim, task classes]`.
    pub head: Linear<B>,
}

fn constant<B: Backend>(value: Tensor<B, 1>, trainable: bool) -> Param<Tensor<B, 1>> {
    Param::from_tensor(value.detach()).set_require_grad(trainable)
}

impl<B: Backend> TaskModule<B> {
    /// A fresh task: grids at their neutral start (1 for modulation, `mask_init` for masks, 0
    /// for fine-tuning), norms from the pre-trained state, a head of `classes` outputs drawn from
    /// `seed`.
    pub fn new(
        plans: &[LayerPlan],
        norms: &[NormState<B>],
        cfg: &ModulationConfig,
        feature_dim: usize,
        classes: usize,
        seed: u64,
        device: &B::Device,
    ) -> Self {
        let start = match cfg.kind {
            TransformKind::Modulation => 1.0,
            TransformKind::Mask => cfg.mask_init as f32,
            TransformKind::Finetune => 0.0,
        };
        let grids = plans
            .iter()
            .map(|p| {
                Param::from_tensor(Tensor::from_data(
                    TensorData::new(vec![start; p.grid_len()], p.grid),
                    device,
                ))
            })
            .collect();
        let norms = norms
            .iter()
            .map(|n| TaskNorm {
                gamma: constant(n.gamma.clone(), cfg.norm.affine),
                beta: constant(n.beta.clone(), cfg.norm.affine),
                running_mean: constant(n.mean.clone(), false),
                running_var: constant(n.var.clone(), false),
            })
            .collect();
        Self {
            grids,
            norms,
            head: seeded_linear(feature_dim, classes, seed, device),
        }
    }

    /// The weights this task's forward uses: one per frozen weight `[out, in, kh, kw]`.
    /// `grids` may come from another module (fine-tuning shares one update across tasks).
    pub fn weights(
        grids: &[Param<Tensor<B, 2>>],
        frozen: &[Tensor<B, 4>],
        resamplers: &[Option<Resampler<B>>],
        cfg: &ModulationConfig,
    ) -> Vec<Tensor<B, 4>> {
        frozen
            .iter()
            .zip(grids)
            .zip(resamplers)
            .map(|((w, grid), resampler)| {
                let shape = w.dims();
                let [out, inp, kh, kw] = shape;
                let grid = grid.val();
                let grid = match cfg.kind {
                    TransformKind::Mask => {
                        // Straight-through: the forward value is exactly the binary mask, the
                        // gradient reaches the scores as if the threshold were the identity.
                        let binary = grid
                            .clone()
                            .detach()
                            .greater_elem(cfg.mask_threshold)
                            .float();
                        grid.clone() - grid.detach() + binary
                    }
                    _ => grid,
                };
                match resampler {
                    None => {
                        let flat = w.clone().reshape([out, inp * kh * kw]);
                        let combined = match cfg.kind {
                            TransformKind::Finetune => flat + grid,
                            _ => flat * grid,
                        };
                        combined.reshape(shape)
                    }
                    Some(r) => {
                        let scale = r.apply(grid).reshape([out, inp, 1]);
                        (w.clone().reshape([out, inp, kh * kw]) * scale).reshape(shape)
                    }
                }
            })
            .collect()
    }

    /// `y: [batch, c, h, w]` through norm `j`: with batch statistics (returned, detached, as
    /// `(mean, unbiased variance)` for the running update) or with the stored running ones.
    pub fn normalise(
        &self,
        j: usize,
        y: Tensor<B, 4>,
        epsilon: f64,
        batch_statistics: bool,
    ) -> (Tensor<B, 4>, Option<BatchStatistics<B>>) {
        let norm = &self.norms[j];
        let [n, c, h, w] = y.dims();
        let (mean, var, stats) = if batch_statistics {
            let flat = y.clone().swap_dims(0, 1).reshape([c, n * h * w]);
            let mean = flat.clone().mean_dim(1).reshape([c]);
            let centred = flat - mean.clone().reshape([c, 1]);
            let var = centred.powi_scalar(2).mean_dim(1).reshape([c]);
            let count = (n * h * w) as f64;
            let unbiased = var.clone().detach() * (count / (count - 1.0).max(1.0));
            (mean.clone(), var, Some((mean.detach(), unbiased)))
        } else {
            (norm.running_mean.val(), norm.running_var.val(), None)
        };
        let scale = norm.gamma.val() / var.add_scalar(epsilon).sqrt();
        let shift = norm.beta.val() - mean * scale.clone();
        (
            y * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1]),
            stats,
        )
    }

    /// Moves norm `j`'s running statistics towards a batch's: `r ← (1 − m) r + m · batch`.
    pub fn update_statistics(&mut self, j: usize, (mean, var): BatchStatistics<B>, momentum: f64) {
        let norm = &mut self.norms[j];
        let blend = |old: &Param<Tensor<B, 1>>, new: Tensor<B, 1>| {
            constant(old.val() * (1.0 - momentum) + new * momentum, false)
        };
        norm.running_mean = blend(&norm.running_mean, mean);
        norm.running_var = blend(&norm.running_var, var);
    }

    /// Elements of the grids.
    pub fn grid_params(&self) -> usize {
        self.grids
            .iter()
            .map(|g| g.dims().iter().product::<usize>())
            .sum()
    }

    /// Elements of the norms a task stores: statistics always, `γ` / `β` when `affine`.
    pub fn norm_params(&self, affine: bool) -> usize {
        let per_channel = if affine { 4 } else { 2 };
        self.norms
            .iter()
            .map(|n| per_channel * n.gamma.dims()[0])
            .sum()
    }

    /// Elements of the head.
    pub fn head_params(&self) -> usize {
        let [i, o] = self.head.weight.dims();
        i * o + o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    type B = NdArray<f32>;
    type A = Autodiff<B>;

    fn plan(shape: [usize; 4], resolution: Resolution) -> LayerPlan {
        let (grid, full) = resolution.grid(shape);
        LayerPlan {
            path: "w".into(),
            shape,
            grid,
            full,
        }
    }

    #[test]
    fn neutral_grids_leave_the_weights_unchanged() {
        let device = Default::default();
        let w = Tensor::<B, 4>::random(
            [6, 3, 3, 3],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        for kind in [
            TransformKind::Modulation,
            TransformKind::Mask,
            TransformKind::Finetune,
        ] {
            let cfg = ModulationConfig {
                kind,
                ..Default::default()
            };
            let plans = LayerPlan::all(&[("w".into(), [6, 3, 3, 3])], &cfg);
            let task = TaskModule::<B>::new(&plans, &[], &cfg, 4, 2, 0, &device);
            let r = resamplers::<B>(&plans, kind, cfg.interpolation, &device);
            let out = TaskModule::weights(&task.grids, std::slice::from_ref(&w), &r, &cfg);
            let (a, b) = (out[0].to_data(), w.to_data());
            for (x, y) in a.iter::<f32>().zip(b.iter::<f32>()) {
                assert!((x - y).abs() < 1e-6, "{kind:?}");
            }
        }
    }

    #[test]
    fn mask_forward_is_binary_and_gradient_is_straight_through() {
        let device = Default::default();
        let cfg = ModulationConfig {
            kind: TransformKind::Mask,
            resolution: Resolution::Fixed([2, 1]),
            ..Default::default()
        };
        let p = plan([4, 1, 1, 1], cfg.resolution);
        let scores = Param::from_tensor(Tensor::<A, 2>::from_data([[0.01], [0.001]], &device));
        let w = Tensor::<A, 4>::from_data([[[[1.0]]], [[[2.0]]], [[[3.0]]], [[[4.0]]]], &device);
        let r = resamplers::<A>(
            std::slice::from_ref(&p),
            cfg.kind,
            cfg.interpolation,
            &device,
        );
        let out = TaskModule::weights(
            std::slice::from_ref(&scores),
            std::slice::from_ref(&w),
            &r,
            &cfg,
        );
        let values: Vec<f32> = out[0].to_data().to_vec().unwrap();
        assert_eq!(
            values,
            vec![1.0, 2.0, 0.0, 0.0],
            "rows 2-3 masked by the second score"
        );
        let grads = out[0].clone().sum().backward();
        let g: Vec<f32> = scores.grad(&grads).unwrap().to_data().to_vec().unwrap();
        // d sum(W ⊙ nearest(s)) / d s = sum of the weights each score covers.
        assert_eq!(g, vec![3.0, 7.0]);
    }

    #[test]
    fn batch_statistics_normalise_and_update_the_running_state() {
        let device = Default::default();
        let norm = NormState::<B> {
            path: "n".into(),
            gamma: Tensor::from_data([2.0], &device),
            beta: Tensor::from_data([1.0], &device),
            mean: Tensor::from_data([0.0], &device),
            var: Tensor::from_data([1.0], &device),
            epsilon: 0.0,
        };
        let cfg = ModulationConfig::default();
        let mut task = TaskModule::<B>::new(&[], &[norm], &cfg, 1, 2, 0, &device);
        let y = Tensor::<B, 4>::from_data([[[[1.0, 3.0]]], [[[5.0, 7.0]]]], &device);
        let (out, stats) = task.normalise(0, y.clone(), 0.0, true);
        // mean 4, biased variance 5: (x − 4)/√5 · 2 + 1.
        let got: Vec<f32> = out.into_data().to_vec().unwrap();
        for (g, x) in got.iter().zip([1.0f32, 3.0, 5.0, 7.0]) {
            assert!((g - ((x - 4.0) / 5f32.sqrt() * 2.0 + 1.0)).abs() < 1e-5);
        }
        let stats = stats.unwrap();
        let unbiased = stats.1.to_data().to_vec::<f32>().unwrap()[0];
        assert!((unbiased - 20.0 / 3.0).abs() < 1e-5, "{unbiased}");
        task.update_statistics(0, stats, 0.1);
        let mean: Vec<f32> = task.norms[0]
            .running_mean
            .val()
            .into_data()
            .to_vec()
            .unwrap();
        let var: Vec<f32> = task.norms[0]
            .running_var
            .val()
            .into_data()
            .to_vec()
            .unwrap();
        assert!((mean[0] - 0.4).abs() < 1e-6 && (var[0] - (0.9 + 2.0 / 3.0)).abs() < 1e-5);
        let (eval, none) = task.normalise(0, y, 0.0, false);
        assert!(none.is_none());
        let first: f32 = eval.into_data().to_vec::<f32>().unwrap()[0];
        assert!((first - ((1.0 - 0.4) / (0.9f32 + 2.0 / 3.0).sqrt() * 2.0 + 1.0)).abs() < 1e-5);
    }
}
