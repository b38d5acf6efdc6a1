//! The cl-modulation method: for each task a fresh [`TaskModule`] (grids, batch norms, head)
//! is trained by AdamW on the frozen backbone, then moved to the inner backend and never touched
//! again; evaluating task `j` runs the backbone with task `j`'s weights, statistics and head,
//! which is why earlier tasks cannot be forgotten (bit-identical logits, tested). The mask and
//! fine-tuning baselines share the loop.

use std::path::Path;

use burn::module::{AutodiffModule, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use cl_core::backbone::Backbone;
use cl_core::checkpoint::{load_module, save_module};
use cl_core::method::{EvalContext, Method, ParamCounts, StepStats};
use cl_core::model::cross_entropy;
use cl_core::optim::{OptimizerConfig, TaskOptimizer, clip_grad_norm};
use cl_core::peft::{ParamFilter, TaskVector};
use cl_core::stream::{Example, Scenario, TaskInfo, mix_seed};
use cl_core::{ClError, Result};

use crate::config::{ModulationConfig, Statistics, TransformKind};
use crate::interpolate::Resampler;
use crate::modulated::{BatchStatistics, LayerPlan, TaskModule, resamplers};
use crate::network::{ModulatableBackbone, ModulationBackbone, NormState};

type Inner<B> = <B as AutodiffBackend>::InnerBackend;

/// What the forward pass of one task needs on one backend.
struct Frozen<B: Backend> {
    weights: Vec<Tensor<B, 4>>,
    norms: Vec<NormState<B>>,
    resamplers: Vec<Option<Resampler<B>>>,
}

impl<B: Backend> Frozen<B> {
    fn new<N: ModulatableBackbone<B>>(
        net: &N,
        plans: &[LayerPlan],
        cfg: &ModulationConfig,
    ) -> Self {
        Self {
            weights: net.weights().into_iter().map(|(_, w)| w).collect(),
            norms: net.norms(),
            resamplers: resamplers(plans, cfg.kind, cfg.interpolation, &net.device()),
        }
    }
}

/// Task-local logits `[batch, classes of the task]` of `module` run with `weights` (built by
/// [`TaskModule::weights`]), and each norm's batch statistics when `batch_statistics`.
fn forward<B: Backend, N: ModulatableBackbone<B>>(
    net: &N,
    frozen: &Frozen<B>,
    module: &TaskModule<B>,
    weights: &[Tensor<B, 4>],
    inputs: &[&N::Input],
    batch_statistics: bool,
) -> (Tensor<B, 2>, Vec<Option<BatchStatistics<B>>>) {
    let mut stats = vec![None; frozen.norms.len()];
    let features = net.features_with(inputs, weights, &mut |j, y| {
        let (out, s) = module.normalise(j, y, frozen.norms[j].epsilon, batch_statistics);
        stats[j] = s;
        out
    });
    (module.head.forward(features), stats)
}

/// The task being trained.
struct Current<B: AutodiffBackend> {
    info: TaskInfo,
    module: TaskModule<B>,
    /// AdamW with the configured schedule (clipping is done beforehand, over every gradient).
    optim: TaskOptimizer<B, TaskModule<B>>,
    /// The grids' own optimiser when `grid_lr` is set (the same schedule, from `grid_lr`).
    grid_optim: Option<TaskOptimizer<B, TaskModule<B>>>,
}

/// Per-task modulation (or masks, or fine-tuning) of a frozen backbone; task-incremental only.
pub struct Modulation<B: AutodiffBackend, N: ModulationBackbone<B>> {
    cfg: ModulationConfig,
    seed: u64,
    num_classes: usize,
    backbone: N,
    inner: N::InnerModule,
    plans: Vec<LayerPlan>,
    frozen: Frozen<B>,
    frozen_inner: Frozen<Inner<B>>,
    current: Option<Current<B>>,
    /// Steps the current task was planned with (the schedule's length).
    planned_steps: usize,
    /// Every finished task with its module, in order.
    finished: Vec<(TaskInfo, TaskModule<Inner<B>>)>,
    /// The weights each finished task's module produces, built once at its end (evaluation
    /// reuses them instead of resizing and multiplying every grid per batch).
    finished_weights: Vec<Vec<Tensor<Inner<B>, 4>>>,
}

impl<B, N> Modulation<B, N>
where
    B: AutodiffBackend,
    N: ModulationBackbone<B>,
{
    /// The method over a frozen `backbone`, for a stream of `num_classes` classes.
    pub fn new(cfg: ModulationConfig, backbone: N, num_classes: usize, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let shapes: Vec<(String, [usize; 4])> = backbone
            .weights()
            .into_iter()
            .map(|(path, w)| (path, w.dims()))
            .collect();
        if shapes.is_empty() {
            return Err(ClError::config(
                "backbone",
                "has no conv or linear weight to modulate",
            ));
        }
        let plans = LayerPlan::all(&shapes, &cfg);
        let inner = backbone.valid();
        let frozen = Frozen::new(&backbone, &plans, &cfg);
        let frozen_inner = Frozen::new(&inner, &plans, &cfg);
        Ok(Self {
            cfg,
            seed,
            num_classes,
            backbone,
            inner,
            plans,
            frozen,
            frozen_inner,
            current: None,
            planned_steps: 0,
            finished: Vec::new(),
            finished_weights: Vec::new(),
        })
    }

    /// The grid of every weight (path, shape, grid size).
    pub fn plans(&self) -> &[LayerPlan] {
        &self.plans
    }

    /// Task `info`'s fresh module on backend `Bk` (its head drawn from the run seed and task id).
    fn fresh<Bk: Backend>(
        &self,
        info: &TaskInfo,
        norms: &[NormState<Bk>],
        device: &Bk::Device,
    ) -> TaskModule<Bk> {
        TaskModule::new(
            &self.plans,
            norms,
            &self.cfg,
            self.backbone.feature_dim(),
            info.classes.len(),
            mix_seed(self.seed, &[1, info.id as u64]),
            device,
        )
    }

    /// The weights `module`'s grids produce on the inner backend.
    fn task_weights(&self, module: &TaskModule<Inner<B>>) -> Vec<Tensor<Inner<B>, 4>> {
        TaskModule::weights(
            &module.grids,
            &self.frozen_inner.weights,
            &self.frozen_inner.resamplers,
            &self.cfg,
        )
    }

    /// Logits `[batch, num_classes]` of task `info` on the inner backend: its module's outputs
    /// in its classes' columns, `-1e9` elsewhere.
    fn predict_task(
        &self,
        info: &TaskInfo,
        module: &TaskModule<Inner<B>>,
        inputs: &[&N::Input],
    ) -> Tensor<Inner<B>, 2> {
        // Fine-tuning: one update shared by all tasks, whatever was trained last.
        let cached = match self.cfg.kind {
            TransformKind::Finetune => self.finished_weights.last(),
            _ => self
                .finished
                .iter()
                .position(|(i, _)| i.id == info.id)
                .map(|p| &self.finished_weights[p]),
        };
        let built;
        let weights = match cached {
            Some(w) => w,
            None => {
                built = self.task_weights(module);
                &built
            }
        };
        // Evaluation always normalises with the task's stored statistics.
        let (local, _) = forward(
            &self.inner,
            &self.frozen_inner,
            module,
            weights,
            inputs,
            false,
        );
        let k = info.classes.len();
        let device = local.device();
        let mut placement = vec![0f32; k * self.num_classes];
        let mut offset = vec![-1e9f32; self.num_classes];
        for (i, &c) in info.classes.iter().enumerate() {
            placement[i * self.num_classes + c] = 1.0;
            offset[c] = 0.0;
        }
        let placement =
            Tensor::from_data(TensorData::new(placement, [k, self.num_classes]), &device);
        let offset =
            Tensor::<Inner<B>, 1>::from_data(TensorData::new(offset, [self.num_classes]), &device);
        local.matmul(placement) + offset.unsqueeze()
    }
}

fn require_task_incremental(info: &TaskInfo) -> Result<()> {
    if info.scenario != Scenario::TaskIncremental {
        return Err(ClError::Unsupported {
            reason: format!(
                "cl-modulation is task-incremental, but task {} (`{}`) is {:?}: the task id selects the modulation, batch-norm statistics and head (run with --task-incremental)",
                info.id, info.name, info.scenario
            ),
        });
    }
    Ok(())
}

impl<B, N> Method<B> for Modulation<B, N>
where
    B: AutodiffBackend,
    N: ModulationBackbone<B>,
{
    type Input = N::Input;

    fn plan_steps(&mut self, steps: usize) {
        self.planned_steps = steps;
    }

    fn name(&self) -> String {
        self.cfg.kind.name().to_string()
    }

    fn begin_task(&mut self, task: &TaskInfo, _train: &[Example<N::Input>]) -> Result<()> {
        require_task_incremental(task)?;
        let device = self.backbone.device();
        let mut module = self.fresh(task, &self.frozen.norms, &device);
        if self.cfg.kind == TransformKind::Finetune
            && let Some((_, last)) = self.finished.last()
        {
            // Fine-tuning continues the shared update where the previous task left it.
            module.grids = last
                .grids
                .iter()
                .map(|g| Param::from_tensor(Tensor::from_inner(g.val())))
                .collect();
        }
        // Clipping is global over every trainable tensor, so it happens once before the
        // gradients are split between the two optimisers.
        let unclipped = OptimizerConfig {
            max_grad_norm: None,
            ..self.cfg.optimizer.clone()
        };
        self.current = Some(Current {
            info: task.clone(),
            module,
            optim: unclipped.for_task(self.planned_steps),
            grid_optim: self.cfg.grid_lr.map(|lr| {
                OptimizerConfig {
                    lr,
                    ..unclipped.clone()
                }
                .for_task(self.planned_steps)
            }),
        });
        Ok(())
    }

    fn train_step(&mut self, batch: &[Example<N::Input>]) -> Result<StepStats> {
        let current = self
            .current
            .as_mut()
            .ok_or_else(|| ClError::config("train_step", "called before begin_task"))?;
        let labels = batch
            .iter()
            .map(|e| {
                current
                    .info
                    .classes
                    .iter()
                    .position(|&c| c == e.label)
                    .ok_or_else(|| {
                        ClError::config(
                            "label",
                            format!(
                                "class {} is not in task `{}`'s label space {:?}",
                                e.label, current.info.name, current.info.classes
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let inputs: Vec<&N::Input> = batch.iter().map(|e| &e.input).collect();
        let batch_statistics = self.cfg.norm.statistics == Statistics::PerTask;
        let weights = TaskModule::weights(
            &current.module.grids,
            &self.frozen.weights,
            &self.frozen.resamplers,
            &self.cfg,
        );
        let (logits, stats) = forward(
            &self.backbone,
            &self.frozen,
            &current.module,
            &weights,
            &inputs,
            batch_statistics,
        );
        let loss = cross_entropy(logits, &labels, None);
        let value: f64 = loss.clone().into_scalar().elem::<f64>();
        if !value.is_finite() {
            return Ok(StepStats { loss: value });
        }
        let mut grads = GradientsParams::from_grads(loss.backward(), &current.module);
        if let Some(max) = self.cfg.optimizer.max_grad_norm {
            grads = clip_grad_norm::<B, _>(&current.module, grads, max).0;
        }
        let mut module = current.module.clone();
        if let Some(optim) = current.grid_optim.as_mut() {
            let mut grid_grads = GradientsParams::new();
            for grid in &module.grids {
                if let Some(g) = grads.remove::<B::InnerBackend, 2>(grid.id) {
                    grid_grads.register(grid.id, g);
                }
            }
            module = optim.step(module, grid_grads);
        }
        let mut module = current.optim.step(module, grads);
        for (j, s) in stats.into_iter().enumerate() {
            if let Some(s) = s {
                module.update_statistics(j, s, self.cfg.norm.momentum);
            }
        }
        current.module = module;
        Ok(StepStats { loss: value })
    }

    fn end_task(&mut self, task: &TaskInfo, _train: &[Example<N::Input>]) -> Result<()> {
        let current = self
            .current
            .take()
            .ok_or_else(|| ClError::config("end_task", "called before begin_task"))?;
        debug_assert_eq!(current.info.id, task.id);
        let module = current.module.valid();
        self.finished_weights.push(self.task_weights(&module));
        self.finished.push((current.info, module));
        Ok(())
    }

    fn predict(&self, inputs: &[&N::Input], ctx: &EvalContext) -> Result<Tensor<Inner<B>, 2>> {
        let j = ctx.task_id().ok_or_else(|| {
            ClError::Unsupported {
                reason: "cl-modulation needs the task id at evaluation: the run must be task-incremental (--task-incremental)".into(),
            }
        })?;
        if let Some((info, module)) = self.finished.iter().find(|(i, _)| i.id == j) {
            return Ok(self.predict_task(info, module, inputs));
        }
        if let Some(current) = self.current.as_ref().filter(|c| c.info.id == j) {
            return Ok(self.predict_task(&current.info, &current.module.valid(), inputs));
        }
        // A task not trained yet: neutral grids, pre-trained statistics and a head over every
        // class (its label space is unknown until it begins); the runner restricts to the task's.
        let info = TaskInfo {
            id: j,
            name: String::new(),
            classes: (0..self.num_classes).collect(),
            scenario: Scenario::TaskIncremental,
            num_train: 0,
            labels: Vec::new(),
        };
        let module = self.fresh(&info, &self.frozen_inner.norms, &self.inner.device());
        Ok(self.predict_task(&info, &module, inputs))
    }

    fn backbone_params(&self) -> TaskVector<Inner<B>> {
        TaskVector::snapshot(&self.inner, &ParamFilter::All)
    }

    fn param_counts(&self) -> ParamCounts {
        let affine = self.cfg.norm.affine;
        // What one task trains: the current one's, or the last finished one's between tasks.
        let per_task = |m: &TaskModule<Inner<B>>| {
            m.grid_params() + m.head_params() + if affine { m.norm_params(true) / 2 } else { 0 }
        };
        let trainable = match (&self.current, self.finished.last()) {
            (Some(c), _) => per_task(&c.module.valid()),
            (None, Some((_, m))) => per_task(m),
            (None, None) => 0,
        };
        let shared = self.cfg.kind == TransformKind::Finetune;
        let stored = self
            .finished
            .iter()
            .enumerate()
            .map(|(i, (_, m))| {
                let grids = if shared && i + 1 < self.finished.len() {
                    0
                } else {
                    m.grid_params()
                };
                grids + m.head_params() + m.norm_params(affine)
            })
            .sum();
        ParamCounts {
            trainable,
            stored,
            stored_examples: 0,
        }
    }

    fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        for (info, module) in &self.finished {
            save_module(module, &dir.join(format!("task-{}", info.id)))?;
        }
        Ok(())
    }

    fn notes(&self) -> Vec<String> {
        let per_task: usize = self.plans.iter().map(|p| p.grid_len()).sum();
        vec![format!(
            "{}: {} weights, {per_task} grid values per task; stored after the run: {}",
            self.cfg.kind.name(),
            self.plans.len(),
            self.param_counts().stored
        )]
    }

    fn load_checkpoint(&mut self, dir: &Path, finished: &[TaskInfo]) -> Result<()> {
        let device = self.inner.device();
        let mut restored = Vec::with_capacity(finished.len());
        for info in finished {
            require_task_incremental(info)?;
            let module = self.fresh(info, &self.frozen_inner.norms, &device);
            let module = load_module(module, &dir.join(format!("task-{}", info.id)), &device)?;
            restored.push((info.clone(), module));
        }
        self.finished_weights = restored.iter().map(|(_, m)| self.task_weights(m)).collect();
        self.finished = restored;
        self.current = None;
        Ok(())
    }
}
