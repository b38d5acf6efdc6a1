//! The Recurrent-KIF method: cycles of inner and outer steps, importance, fusion.

use std::path::Path;

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use cl_core::Result;
use cl_core::backbone::{TrainableBackbone, add_lora};
use cl_core::checkpoint::{read_json, write_json};
use cl_core::learner::Learner;
use cl_core::method::{EvalContext, Method, ParamCounts, StepStats};
use cl_core::model::{PeftClassifier, TaskModel, TrainableModel};
use cl_core::peft::peft_format::{read_safetensors, write_safetensors};
use cl_core::peft::{ParamFilter, TaskVector};
use cl_core::stream::replay::{ReplayMemory, ReplayStore};
use cl_core::stream::{Example, TaskInfo, mix_seed};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::{OuterScores, RkifConfig};
use crate::fusion::{MaskShares, fuse};
use crate::importance::{Importance, PathTensors, gradients_by_path};

type Inner<B> = <B as AutodiffBackend>::InnerBackend;

/// A cycle in progress: the parameters it started from and the inner steps taken.
struct Cycle<B: AutodiffBackend> {
    start: TaskVector<Inner<B>>,
    inner_steps: usize,
}

/// What a checkpoint restores besides the model and the memory.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Counters {
    outer_updates: u64,
    cycles: u64,
}

/// Recurrent-KIF on a frozen backbone.
pub struct Rkif<B: AutodiffBackend, M: TrainableModel<B>> {
    cfg: RkifConfig,
    /// The model, its optimiser (one per task over the inner steps) and the tasks begun.
    learner: Learner<B, M>,
    memory: ReplayStore<M::Input>,
    /// Inner-loop scores, reset at every cycle.
    inner: Importance<Inner<B>>,
    /// Outer-loop (historical) scores, kept across the cycles of a task (and across tasks with
    /// `outer_scores: across-tasks`).
    outer: Importance<Inner<B>>,
    cycle: Option<Cycle<B>>,
    /// Static-importance ablation: the outer scores were estimated in this task already.
    outer_fixed: bool,
    /// Size of the last current-task batch (the outer batches match it).
    batch_size: usize,
    /// Cycles finished over the run (seeds the outer batches).
    cycles: u64,
    /// Mask shares of the last fusion: (inner only, outer only, both, neither).
    last_shares: Option<MaskShares>,
}

impl<B, Bb> Rkif<B, PeftClassifier<B, Bb>>
where
    B: AutodiffBackend,
    Bb: TrainableBackbone<B>,
{
    /// Recurrent-KIF over `backbone` with a fresh head of `num_classes` classes
    /// ([`PeftClassifier::for_run`]).
    pub fn new(cfg: RkifConfig, backbone: Bb, num_classes: usize, seed: u64) -> Result<Self> {
        Self::from_model(
            cfg,
            PeftClassifier::for_run(backbone, num_classes, seed),
            seed,
        )
    }
}

impl<B, M> Rkif<B, M>
where
    B: AutodiffBackend,
    M: TrainableModel<B>,
{
    /// Recurrent-KIF training `model` (a classifier or a causal LM).
    pub fn from_model(cfg: RkifConfig, model: M, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let learner = Learner::new(model, cfg.optimizer.clone(), seed);
        Ok(Self {
            memory: cfg.replay.build(mix_seed(seed, &[3])),
            inner: Importance::new(cfg.beta1, cfg.beta2).variant(cfg.importance, cfg.smoothing),
            outer: Importance::new(cfg.beta1, cfg.beta2).variant(cfg.importance, cfg.smoothing),
            cfg,
            learner,
            cycle: None,
            outer_fixed: false,
            batch_size: 1,
            cycles: 0,
            last_shares: None,
        })
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.learner.model
    }

    /// Cycles finished so far (fused or, while the memory was empty, not).
    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    /// Updates of the outer (historical) importance so far.
    pub fn outer_updates(&self) -> u64 {
        self.outer.updates()
    }

    /// Mask shares `(inner only, outer only, both, neither)` of the last fusion.
    pub fn last_mask_shares(&self) -> Option<MaskShares> {
        self.last_shares
    }

    /// The one LoRA every task trains (its `A` from `mix_seed(seed, [1, 0])`).
    fn add_lora(&mut self) -> Result<()> {
        let seed = mix_seed(self.learner.seed(), &[1, 0]);
        add_lora(self.learner.model.backbone_mut(), &self.cfg.lora, seed)?;
        Ok(())
    }

    fn trainable(&self) -> TaskVector<Inner<B>> {
        TaskVector::snapshot(&self.learner.model, &ParamFilter::Trainable).inner()
    }

    /// One optimiser step on `examples`; returns the loss and the step's gradients, or only the
    /// loss (nothing updated) when it is not finite.
    fn optimise(
        &mut self,
        examples: &[Example<M::Input>],
        outer: bool,
    ) -> Result<(f64, Option<PathTensors<Inner<B>>>)> {
        let (value, grads) = self.learner.gradients(self.learner.loss(examples)?);
        let Some(grads) = grads else {
            return Ok((value, None));
        };
        let by_path = gradients_by_path::<B, _>(&self.learner.model, &grads);
        if outer {
            self.learner.apply_held(grads);
        } else {
            self.learner.apply(grads);
        }
        Ok((value, Some(by_path)))
    }

    /// Ends the cycle in progress: the outer loop on the memory, then fusion. Without memory
    /// (the first task) the cycle ends with the inner loop's parameters. Returns a non-finite
    /// outer loss if one stopped it.
    fn finish_cycle(&mut self) -> Result<Option<f64>> {
        let Some(cycle) = self.cycle.take() else {
            return Ok(None);
        };
        self.cycles += 1;
        if self.memory.is_empty() || self.cfg.outer_steps == 0 {
            return Ok(None);
        }
        let after_inner = self.trainable();
        let estimate = !(self.cfg.static_importance && self.outer_fixed);
        if self.cfg.static_importance && estimate {
            self.outer.reset();
        }
        let task = self.learner.current_task() as u64;
        for m in 0..self.cfg.outer_steps {
            let mut rng = StdRng::seed_from_u64(mix_seed(
                self.learner.seed(),
                &[4, task, self.cycles, m as u64],
            ));
            let batch = self
                .memory
                .sample(self.cfg.replay.replay_batch(self.batch_size), &mut rng);
            let (loss, grads) = self.optimise(&batch, true)?;
            let Some(grads) = grads else {
                return Ok(Some(loss));
            };
            if estimate {
                let params = self.trainable();
                self.outer.update(&params, &grads)?;
            }
        }
        self.outer_fixed = true;
        let after_outer = self.trainable();
        let (fused, shares) = fuse(
            &cycle.start,
            &after_inner,
            &after_outer,
            &self.inner.scores(self.cfg.bias_correction),
            &self.outer.scores(self.cfg.bias_correction),
            &self.cfg,
        )?;
        self.learner.model =
            TaskVector::<B>::from_inner(fused).assign(self.learner.model.clone())?;
        self.last_shares = Some(shares);
        Ok(None)
    }
}

impl<B, M> Method<B> for Rkif<B, M>
where
    B: AutodiffBackend,
    M: TrainableModel<B>,
    M::Input: Serialize + DeserializeOwned,
{
    type Input = M::Input;

    fn name(&self) -> String {
        "rkif".into()
    }

    fn plan_steps(&mut self, steps: usize) {
        self.learner.plan_steps(steps);
    }

    fn begin_task(&mut self, task: &TaskInfo, _train: &[Example<M::Input>]) -> Result<()> {
        if self.learner.tasks().is_empty() {
            self.add_lora()?;
        }
        // One optimiser and schedule per task over the inner steps (one per runner step); the
        // outer steps use the same optimiser at the current learning rate without advancing
        // the schedule, as the official trainer does.
        self.learner.begin_task(task);
        self.outer_fixed = false;
        if self.cfg.outer_scores == OuterScores::PerTask {
            self.outer.reset();
        }
        Ok(())
    }

    fn train_step(&mut self, batch: &[Example<M::Input>]) -> Result<StepStats> {
        if self.cycle.is_none() {
            self.inner.reset();
            self.cycle = Some(Cycle {
                start: self.trainable(),
                inner_steps: 0,
            });
        }
        self.batch_size = batch.len();
        self.memory.observe_batch(self.cfg.replay.feed, batch);
        let (loss, grads) = self.optimise(batch, false)?;
        let Some(grads) = grads else {
            return Ok(StepStats { loss });
        };
        let params = self.trainable();
        self.inner.update(&params, &grads)?;
        let cycle = self.cycle.as_mut().expect("started above");
        cycle.inner_steps += 1;
        if cycle.inner_steps == self.cfg.inner_steps
            && let Some(bad) = self.finish_cycle()?
        {
            return Ok(StepStats { loss: bad });
        }
        Ok(StepStats { loss })
    }

    fn end_task(&mut self, task: &TaskInfo, train: &[Example<M::Input>]) -> Result<()> {
        if let Some(bad) = self.finish_cycle()? {
            return Err(cl_core::ClError::NonFiniteLoss {
                before_any_update: false,
                method: self.name(),
                task: task.id,
                step: 0,
                loss: bad,
            });
        }
        self.memory
            .observe_task(self.cfg.replay.feed, task.id, train);
        Ok(())
    }

    fn predict(
        &self,
        inputs: &[&M::Input],
        _ctx: &EvalContext,
    ) -> Result<Tensor<B::InnerBackend, 2>> {
        self.learner.predict(inputs)
    }

    fn predictions(
        &self,
        inputs: &[&M::Input],
        _ctx: &EvalContext,
    ) -> Result<cl_core::model::Predictions<B::InnerBackend>> {
        self.learner.predictions(inputs)
    }

    fn backbone_params(&self) -> TaskVector<B::InnerBackend> {
        self.learner.backbone_params()
    }

    fn param_counts(&self) -> ParamCounts {
        let (trainable, stored) = self.learner.model.lora_param_counts();
        ParamCounts {
            trainable,
            // The LoRA and head, plus the outer importance (Ī and U) kept across tasks.
            stored: stored + 2 * trainable,
            stored_examples: self.memory.examples().len(),
        }
    }

    /// The one LoRA every task trains, after the last fusion, in PEFT's format.
    fn export_peft(&self, base_model: &str, dir: &Path) -> Result<bool> {
        if self.learner.tasks().is_empty() {
            return Ok(false);
        }
        cl_core::peft::peft_format::export_peft_lora(
            burn::module::AutodiffModule::valid(&self.learner.model).backbone(),
            0,
            base_model,
            dir,
        )?;
        Ok(true)
    }

    fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        self.learner.save(dir)?;
        self.memory.save(dir)?;
        write_safetensors(
            &dir.join("outer_importance.safetensors"),
            &self.outer.to_named(),
            None,
        )?;
        write_json(
            &dir.join("counters.json"),
            &Counters {
                outer_updates: self.outer.updates(),
                cycles: self.cycles,
            },
        )
    }

    fn notes(&self) -> Vec<String> {
        vec![format!(
            "rkif: {} cycles; last fusion's mask shares (inner only, outer only, both, neither): {:?}",
            self.cycles(),
            self.last_mask_shares()
        )]
    }

    fn load_checkpoint(&mut self, dir: &Path, finished: &[TaskInfo]) -> Result<()> {
        if !finished.is_empty() && self.learner.tasks().is_empty() {
            self.add_lora()?;
        }
        self.learner.load(dir, finished)?;
        let device = self.learner.device();
        self.memory = ReplayStore::load(dir)?;
        let counters: Counters = read_json(&dir.join("counters.json"))?;
        self.outer = Importance::from_named(
            &self.outer,
            read_safetensors(&dir.join("outer_importance.safetensors"))?,
            counters.outer_updates,
            &device,
        )?;
        self.cycles = counters.cycles;
        Ok(())
    }
}
