//! The I-LoRA method: fast learner trained on current + replay batches, slow learner by EMA,
//! consistency loss on the replay batch, evaluation with the slow learner.

use std::path::Path;

use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use cl_core::backbone::{Backbone, TrainableBackbone, add_lora, resolve_layer_states};
use cl_core::checkpoint::{load_module, read_json, save_module, write_json};
use cl_core::learner::{Learner, REPLAY_DRAWS};
use cl_core::method::{EvalContext, Method, ParamCounts, StepStats};
use cl_core::model::{PeftClassifier, TaskModel, TrainableModel, allowed_classes};
use cl_core::peft::TaskVector;
use cl_core::peft::peft_format::export_peft_lora;
use cl_core::stream::replay::{ReplayMemory, ReplayStore};
use cl_core::stream::{Example, TaskInfo, mix_seed};
use cl_core::{ClError, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::ILoraConfig;
use crate::consistency::consistency_loss;
use crate::ema::{alpha_at, ema_update};

/// The slow learner: the fast learner's structure on the inner (non-autodiff) backend, so its
/// forward pass never builds a graph.
type SlowModel<B, M> = <M as AutodiffModule<B>>::InnerModule;

/// Counters a checkpoint restores.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Counters {
    /// Optimiser steps over the whole run (the EMA schedule's `t`).
    global_step: u64,
}

/// I-LoRA on a frozen backbone.
pub struct ILora<B: AutodiffBackend, M: TrainableModel<B>> {
    cfg: ILoraConfig,
    /// Fast learner `θ_w` (LoRA, and the head of a classifier), trained by the optimiser.
    fast: Learner<B, M>,
    /// Slow learner `θ_l`; `None` before the first task and in the no-slow-learner ablation.
    slow: Option<SlowModel<B, M>>,
    memory: ReplayStore<M::Input>,
    /// Hidden-state indices of the consistency loss, resolved against the backbone.
    layers: Vec<usize>,
    counters: Counters,
}

impl<B, Bb> ILora<B, PeftClassifier<B, Bb>>
where
    B: AutodiffBackend,
    Bb: TrainableBackbone<B>,
{
    /// I-LoRA over `backbone` with a fresh head of `num_classes` classes
    /// ([`PeftClassifier::for_run`]).
    pub fn new(cfg: ILoraConfig, backbone: Bb, num_classes: usize, seed: u64) -> Result<Self> {
        Self::from_model(
            cfg,
            PeftClassifier::for_run(backbone, num_classes, seed),
            seed,
        )
    }
}

impl<B, M> ILora<B, M>
where
    B: AutodiffBackend,
    M: TrainableModel<B>,
{
    /// I-LoRA training `model` (a classifier or a causal LM). Errors name the offending config
    /// field (including a consistency layer the backbone does not have).
    pub fn from_model(cfg: ILoraConfig, model: M, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let available = model.backbone().num_layer_states();
        let layers = resolve_layer_states(
            "consistency.layers",
            &cfg.consistency.layers.indices(available),
            available,
        )?;
        let fast = Learner::new(model, cfg.optimizer.clone(), seed);
        Ok(Self {
            memory: cfg.replay.build(mix_seed(seed, &[3])),
            cfg,
            fast,
            slow: None,
            layers,
            counters: Counters { global_step: 0 },
        })
    }

    /// The fast learner.
    pub fn fast(&self) -> &M {
        &self.fast.model
    }

    /// The slow learner (after the first task has begun, unless the ablation drops it).
    pub fn slow(&self) -> Option<&SlowModel<B, M>> {
        self.slow.as_ref()
    }

    /// The model used for evaluation and export: the slow learner, or the fast one without it.
    fn eval_model(&self) -> SlowModel<B, M> {
        match &self.slow {
            Some(slow) => slow.clone(),
            None => self.fast.model.valid(),
        }
    }

    /// Writes the evaluation learner's LoRA as a PEFT adapter into `dir`
    /// (`adapter_model.safetensors`, `adapter_config.json`); returns the layers written.
    pub fn export_peft(&self, base_model: &str, dir: &Path) -> Result<usize> {
        if self.fast.tasks().is_empty() {
            return Err(ClError::config("export", "no task has been trained yet"));
        }
        export_peft_lora(self.eval_model().backbone(), 0, base_model, dir)
    }

    /// Adds the one LoRA both learners share the structure of, and the slow copy.
    fn init_learners(&mut self) -> Result<()> {
        let seed = mix_seed(self.fast.seed(), &[1, 0]);
        add_lora(self.fast.model.backbone_mut(), &self.cfg.lora, seed)?;
        if self.cfg.slow_learner {
            self.slow = Some(self.fast.model.valid());
        }
        Ok(())
    }
}

impl<B, M> Method<B> for ILora<B, M>
where
    B: AutodiffBackend,
    M: TrainableModel<B>,
    M::Input: Serialize + DeserializeOwned,
{
    type Input = M::Input;

    fn name(&self) -> String {
        if self.cfg.slow_learner {
            "ilora".into()
        } else {
            "ilora-no-slow".into()
        }
    }

    fn plan_steps(&mut self, steps: usize) {
        self.fast.plan_steps(steps);
    }

    fn begin_task(&mut self, task: &TaskInfo, _train: &[Example<M::Input>]) -> Result<()> {
        if self.fast.tasks().is_empty() {
            self.init_learners()?;
        }
        self.fast.begin_task(task);
        Ok(())
    }

    fn train_step(&mut self, batch: &[Example<M::Input>]) -> Result<StepStats> {
        let current = batch.len();
        let replay = self.memory.replay_step(
            &self.cfg.replay,
            batch,
            &mut self.fast.step_rng(REPLAY_DRAWS),
        );
        let replayed = replay.len();
        let mut examples = batch.to_vec();
        examples.extend(replay);
        let total = examples.len();
        let inputs: Vec<&M::Input> = examples.iter().map(|e| &e.input).collect();
        let labels: Vec<usize> = examples.iter().map(|e| e.label).collect();
        let allowed = allowed_classes(self.fast.tasks(), &examples);
        let allowed_of = |range: std::ops::Range<usize>| allowed.as_ref().map(|a| &a[range]);

        let consistency = replayed > 0 && self.cfg.uses_consistency();
        let layers: &[usize] = if consistency { &self.layers } else { &[] };
        let fast = self
            .fast
            .model
            .train_forward(&inputs, &labels, allowed.as_deref(), layers)?;
        let cons = if consistency {
            let slow = self
                .slow
                .as_ref()
                .expect("slow learner exists when consistency is on");
            let slow_out = slow.train_forward(
                &inputs[current..],
                &labels[current..],
                allowed_of(current..total).map(|a| a as &[&[usize]]),
                &self.layers,
            )?;
            let fast_replay: Vec<Tensor<B, 3>> = fast
                .states
                .into_iter()
                .map(|h| {
                    let [_, positions, width] = h.dims();
                    h.slice([current..total, 0..positions, 0..width])
                })
                .collect();
            let slow_replay: Vec<Tensor<B, 3>> = slow_out
                .states
                .into_iter()
                .map(Tensor::from_inner)
                .collect();
            let mask = Tensor::from_inner(slow_out.mask);
            Some(consistency_loss(&fast_replay, &slow_replay, mask))
        } else {
            None
        };
        let losses = fast.losses;
        let ce = if replayed > 0 {
            let ce_current = losses.clone().narrow(0, 0, current).mean();
            let ce_replay = losses.narrow(0, current, total - current).mean();
            (ce_current + ce_replay).mul_scalar(0.5)
        } else {
            losses.mean()
        };
        let loss = match cons {
            Some(cons) => ce + cons.mul_scalar(self.cfg.consistency.weight),
            None => ce,
        };
        let (value, grads) = self.fast.gradients(loss);
        let Some(grads) = grads else {
            // Leave both learners as they were; the runner stops the run with this loss.
            return Ok(StepStats { loss: value });
        };
        self.fast.apply(grads);
        if let Some(slow) = self.slow.take() {
            let alpha = alpha_at(&self.cfg.ema, self.counters.global_step);
            self.slow = Some(ema_update::<B, _>(slow, &self.fast.model, alpha)?);
        }
        self.counters.global_step += 1;
        Ok(StepStats { loss: value })
    }

    fn end_task(&mut self, task: &TaskInfo, train: &[Example<M::Input>]) -> Result<()> {
        self.memory
            .observe_task(self.cfg.replay.feed, task.id, train);
        Ok(())
    }

    fn predict(
        &self,
        inputs: &[&M::Input],
        _ctx: &EvalContext,
    ) -> Result<Tensor<B::InnerBackend, 2>> {
        self.eval_model().class_scores(inputs)
    }

    fn predictions(
        &self,
        inputs: &[&M::Input],
        _ctx: &EvalContext,
    ) -> Result<cl_core::model::Predictions<B::InnerBackend>> {
        self.eval_model().predictions(inputs)
    }

    fn backbone_params(&self) -> TaskVector<B::InnerBackend> {
        self.fast.backbone_params()
    }

    fn param_counts(&self) -> ParamCounts {
        let (trainable, learner) = self.fast.model.lora_param_counts();
        let learners = if self.slow.is_some() { 2 } else { 1 };
        ParamCounts {
            trainable,
            stored: learner * learners,
            stored_examples: self.memory.examples().len(),
        }
    }

    fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        self.fast.save(dir)?;
        if let Some(slow) = &self.slow {
            save_module(slow, &dir.join("slow"))?;
        }
        self.memory.save(dir)?;
        write_json(&dir.join("counters.json"), &self.counters)
    }

    fn export_peft(&self, base_model: &str, dir: &Path) -> Result<bool> {
        ILora::export_peft(self, base_model, dir)?;
        Ok(true)
    }

    fn load_checkpoint(&mut self, dir: &Path, finished: &[TaskInfo]) -> Result<()> {
        if !finished.is_empty() && self.fast.tasks().is_empty() {
            self.init_learners()?;
        }
        self.fast.load(dir, finished)?;
        let device = self.fast.device();
        if let Some(slow) = self.slow.take() {
            self.slow = Some(load_module(slow, &dir.join("slow"), &device)?);
        }
        self.memory = ReplayStore::load(dir)?;
        self.counters = read_json(&dir.join("counters.json"))?;
        Ok(())
    }
}
