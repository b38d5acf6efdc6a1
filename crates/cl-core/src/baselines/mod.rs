//! The papers' comparison rows as one [`Method`]: SeqLoRA, IncLoRA, LoRAReplay and MTL share a
//! LoRA classifier and differ only in how adapters are added per task ([`Baseline::adapters_per_task`])
//! and which examples each step trains on ([`Baseline`] data strategy).
//!
//! - SeqLoRA: one LoRA trained on each task in turn, no protection.
//! - IncLoRA: a new LoRA per task; earlier ones frozen and kept active (summed).
//! - LoRAReplay: SeqLoRA plus a memory of a fraction (default 2%) of each finished task's training
//!   split; every step appends a replay batch drawn uniformly from the memory.
//! - MTL: the multi-task upper bound as the papers define it: one LoRA trained once on the union
//!   of every task's training data ([`Protocol::Joint`]: batches drawn from all tasks at once, as
//!   many steps as the sequential methods take over the whole stream); its report has one row.
//! - MTL-cumulative (`mtl-cumulative`): the sequential variant: every step of task `t` trains on
//!   the current batch plus an equally large batch drawn uniformly from *all* training data of
//!   the earlier tasks (replay with a 100% memory), so after the last task the LoRA has been
//!   trained on the union of every task and the newest task still gets a full share of the steps.
//!
//! - EWC ([`ewc`]): SeqLoRA plus `λ/2 · Σ F ⊙ (θ − θ*)²` over the trainable parameters (LoRA
//!   and head), with the diagonal Fisher of each finished task accumulated online.
//! - O-LoRA ([`olora`]): IncLoRA plus an orthogonality penalty between the new LoRA's `A` and
//!   every earlier one's.
//!
//! The optimiser (AdamW, with the schedule and clipping of [`OptimizerConfig`]) is reset at each
//! task boundary.

pub mod ewc;
pub mod olora;

use std::path::Path;

use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::backbone::{Backbone, TrainableBackbone, add_lora, freeze_adapters};
use crate::error::Result;
use crate::learner::{Learner, REPLAY_DRAWS};
use crate::method::{EvalContext, Method, ParamCounts, StepStats};
use crate::metrics::Protocol;
use crate::model::{PeftClassifier, TaskModel, TrainableModel};
pub use crate::optim::{OptimizerConfig, Schedule, TaskOptimizer};
use crate::params::{gradients_by_path, trainable_by_path};
use crate::peft::{LoraConfig, TaskVector};
use crate::registry::{
    BOTH_SCENARIOS, BoxedMethod, BuildOnBackbone, BuiltMethod, HostBackbone, LORA_BACKBONES,
    MethodEntry, MethodInfo, config_from_json, config_to_json, default_lora, default_optimizer,
};
pub use crate::stream::replay::ReplayConfig;
use crate::stream::replay::{MemoryKind, ReplayMemory, ReplayStore};
use crate::stream::{Example, TaskInfo, mix_seed};
pub use ewc::{EwcConfig, EwcState};
pub use olora::{OLoraConfig, olora_penalty};

/// Which baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// One LoRA, trained on each task in turn.
    SeqLora,
    /// A new LoRA per task, earlier ones frozen and summed.
    IncLora,
    /// SeqLoRA with a per-task-fraction replay memory.
    LoraReplay,
    /// Joint multi-task training on the union of all tasks (the upper bound).
    Mtl,
    /// Cumulative multi-task training: each task with a 100% replay of the earlier ones.
    MtlCumulative,
    /// SeqLoRA with an elastic-weight-consolidation penalty.
    Ewc,
    /// IncLoRA with O-LoRA's orthogonality penalty.
    OLora,
}

impl Baseline {
    /// Every baseline.
    pub const ALL: [Baseline; 7] = [
        Baseline::SeqLora,
        Baseline::IncLora,
        Baseline::LoraReplay,
        Baseline::Mtl,
        Baseline::MtlCumulative,
        Baseline::Ewc,
        Baseline::OLora,
    ];

    /// Name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Baseline::SeqLora => "seq-lora",
            Baseline::IncLora => "inc-lora",
            Baseline::LoraReplay => "replay",
            Baseline::Mtl => "mtl",
            Baseline::MtlCumulative => "mtl-cumulative",
            Baseline::Ewc => "ewc",
            Baseline::OLora => "olora",
        }
    }

    /// Parses [`Baseline::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// One line: what it does (`cl methods`).
    pub fn summary(self) -> &'static str {
        match self {
            Baseline::SeqLora => {
                "one LoRA trained on each task in turn, no protection (lower bound)"
            }
            Baseline::IncLora => "a new LoRA per task, earlier ones frozen and summed",
            Baseline::LoraReplay => "SeqLoRA plus a replay memory of 2% of each finished task",
            Baseline::Mtl => "one LoRA trained once on the union of all tasks (joint upper bound)",
            Baseline::MtlCumulative => {
                "each task trained with all earlier tasks' data replayed (sequential MTL)"
            }
            Baseline::Ewc => "SeqLoRA plus an online-EWC penalty with the diagonal Fisher",
            Baseline::OLora => "IncLoRA plus O-LoRA's orthogonality penalty between adapters",
        }
    }

    /// The registry entry of this baseline.
    pub fn entry<B: AutodiffBackend>(self) -> MethodEntry<B> {
        MethodEntry {
            info: MethodInfo {
                name: self.name(),
                summary: self.summary(),
                crate_name: "cl-core",
                scenarios: BOTH_SCENARIOS,
                backbones: LORA_BACKBONES,
            },
            default_config: Box::new(|backbone| {
                config_to_json(&BaselineConfig {
                    lora: default_lora(backbone),
                    optimizer: default_optimizer(backbone),
                    ewc: EwcConfig::for_backbone(backbone),
                    ..BaselineConfig::default()
                })
            }),
            parse_config: Box::new(|config| {
                let cfg: BaselineConfig = config_from_json(config)?;
                cfg.validate()?;
                Ok(config_to_json(&cfg))
            }),
            build: Box::new(move |config, backbone, classes, seed| {
                build(self, config_from_json(config)?, backbone, classes, seed)
            }),
        }
    }

    /// `true` when each task gets its own adapter (IncLoRA).
    fn adapters_per_task(self) -> bool {
        matches!(self, Baseline::IncLora | Baseline::OLora)
    }
}

/// The registry entries of every baseline.
pub fn entries<B: AutodiffBackend>() -> Vec<MethodEntry<B>> {
    Baseline::ALL.into_iter().map(Baseline::entry).collect()
}

/// Builds baseline `kind` on `backbone`.
fn build<B: AutodiffBackend>(
    kind: Baseline,
    cfg: BaselineConfig,
    backbone: HostBackbone<B>,
    classes: usize,
    seed: u64,
) -> Result<BuiltMethod<B>> {
    struct Build {
        kind: Baseline,
        cfg: BaselineConfig,
        seed: u64,
    }
    impl<B: AutodiffBackend> BuildOnBackbone<B> for Build {
        fn build<M>(self, model: M) -> Result<BoxedMethod<B, M::Input>>
        where
            M: TrainableModel<B> + 'static,
            M::Input: Serialize + DeserializeOwned,
        {
            Ok(Box::new(LoraBaseline::from_model(
                self.kind, self.cfg, model, self.seed,
            )?))
        }
    }
    backbone.build_with(classes, seed, Build { kind, cfg, seed })
}

/// Configuration of a baseline run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BaselineConfig {
    /// LoRA shape and targets.
    #[serde(default)]
    pub lora: LoraConfig,
    /// Optimiser.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Replay memory (used by `replay`).
    #[serde(default)]
    pub replay: ReplayConfig,
    /// EWC's λ and γ (used by `ewc`).
    #[serde(default)]
    pub ewc: EwcConfig,
    /// O-LoRA's λ₁ and λ₂ (used by `olora`).
    #[serde(default)]
    pub olora: OLoraConfig,
}

impl BaselineConfig {
    /// Checks every field; errors name it.
    pub fn validate(&self) -> Result<()> {
        self.lora.validate()?;
        self.optimizer.validate("optimizer")?;
        self.ewc.validate()?;
        self.olora.validate()?;
        self.replay.validate("replay")
    }
}

/// A LoRA model (classifier or causal LM) trained by one of the [`Baseline`] strategies.
pub struct LoraBaseline<B: AutodiffBackend, M: TrainableModel<B>> {
    kind: Baseline,
    cfg: BaselineConfig,
    learner: Learner<B, M>,
    /// Replay memory: what `replay` configures (LoRAReplay) or all of every task
    /// (MTL-cumulative).
    memory: ReplayStore<M::Input>,
    /// EWC's Fisher and anchor (used by `ewc`).
    ewc: EwcState<B::InnerBackend>,
    /// Size of the last training batch (EWC's Fisher batches match it).
    batch_size: usize,
}

impl<B, Bb> LoraBaseline<B, PeftClassifier<B, Bb>>
where
    B: AutodiffBackend,
    Bb: TrainableBackbone<B>,
{
    /// A baseline classifier over `backbone` with a fresh head of `num_classes` classes
    /// ([`PeftClassifier::for_run`]).
    pub fn new(
        kind: Baseline,
        cfg: BaselineConfig,
        backbone: Bb,
        num_classes: usize,
        seed: u64,
    ) -> Result<Self> {
        let model = PeftClassifier::for_run(backbone, num_classes, seed);
        Self::from_model(kind, cfg, model, seed)
    }
}

impl<B, M> LoraBaseline<B, M>
where
    B: AutodiffBackend,
    M: TrainableModel<B>,
{
    /// A baseline training `model`.
    pub fn from_model(kind: Baseline, cfg: BaselineConfig, model: M, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let learner = Learner::new(model, cfg.optimizer.clone(), seed);
        let memory_cfg = if kind == Baseline::MtlCumulative {
            ReplayConfig {
                memory: MemoryKind::TaskFraction,
                fraction: 1.0,
                ..cfg.replay.clone()
            }
        } else {
            cfg.replay.clone()
        };
        let memory = memory_cfg.build(mix_seed(seed, &[3]));
        Ok(Self {
            kind,
            cfg,
            learner,
            memory,
            ewc: EwcState::empty(),
            batch_size: 16,
        })
    }

    /// The model (for tests and inspection).
    pub fn model(&self) -> &M {
        &self.learner.model
    }

    /// Adds the adapters task `task` trains (all the structure a checkpoint needs rebuilt).
    fn add_task_adapters(&mut self, task: &TaskInfo) -> Result<()> {
        let seed = mix_seed(self.learner.seed(), &[1, task.id as u64]);
        let backbone = self.learner.model.backbone_mut();
        if self.kind.adapters_per_task() {
            freeze_adapters(backbone);
            add_lora(backbone, &self.cfg.lora, seed)?;
        } else if task.id == 0 {
            add_lora(backbone, &self.cfg.lora, seed)?;
        }
        Ok(())
    }

    /// EWC at the end of a task: the diagonal Fisher from the squared gradients of the task's
    /// training batches (in order, the training batch size), then the anchor.
    fn consolidate(&mut self, train: &[Example<M::Input>]) -> Result<()> {
        let model = &self.learner.model;
        let mut batch_grads = Vec::new();
        for chunk in train.chunks(self.batch_size.max(1)) {
            let loss = self.learner.loss(chunk)?;
            let grads = GradientsParams::from_grads(loss.backward(), model);
            batch_grads.push(gradients_by_path::<B, _>(model, &grads));
        }
        let anchor = trainable_by_path::<B, _>(model)
            .into_iter()
            .map(|(path, t)| (path, t.inner()))
            .collect();
        self.ewc
            .consolidate(self.cfg.ewc.gamma, &batch_grads, anchor)
    }

    /// The examples one step trains on, per the strategy.
    fn training_examples(&mut self, batch: &[Example<M::Input>]) -> Vec<Example<M::Input>> {
        let mut all = batch.to_vec();
        match self.kind {
            Baseline::SeqLora
            | Baseline::IncLora
            | Baseline::Ewc
            | Baseline::OLora
            | Baseline::Mtl => {}
            Baseline::LoraReplay => all.extend(self.memory.replay_step(
                &self.cfg.replay,
                batch,
                &mut self.learner.step_rng(REPLAY_DRAWS),
            )),
            Baseline::MtlCumulative => all.extend(
                self.memory
                    .sample(batch.len(), &mut self.learner.step_rng(REPLAY_DRAWS)),
            ),
        }
        all
    }
}

impl<B, M> Method<B> for LoraBaseline<B, M>
where
    B: AutodiffBackend,
    M: TrainableModel<B>,
    M::Input: Serialize + DeserializeOwned,
{
    type Input = M::Input;

    fn name(&self) -> String {
        self.kind.name().to_string()
    }

    fn protocol(&self) -> Protocol {
        match self.kind {
            Baseline::Mtl => Protocol::Joint,
            _ => Protocol::Sequential,
        }
    }

    fn plan_steps(&mut self, steps: usize) {
        self.learner.plan_steps(steps);
    }

    fn begin_task(&mut self, task: &TaskInfo, _train: &[Example<M::Input>]) -> Result<()> {
        self.learner.begin_task(task);
        self.add_task_adapters(task)
    }

    fn train_step(&mut self, batch: &[Example<M::Input>]) -> Result<StepStats> {
        let examples = self.training_examples(batch);
        let mut loss = self.learner.loss(&examples)?;
        self.batch_size = batch.len();
        match self.kind {
            Baseline::Ewc => {
                let params = trainable_by_path::<B, _>(&self.learner.model);
                if let Some(p) = self.ewc.penalty(self.cfg.ewc.lambda, &params)? {
                    loss = loss + p;
                }
            }
            Baseline::OLora => {
                let layers = self.learner.model.backbone().lora_layers();
                if let Some(p) = olora_penalty(layers.iter().map(|(_, l)| *l), &self.cfg.olora) {
                    loss = loss + p;
                }
            }
            _ => {}
        }
        Ok(StepStats {
            loss: self.learner.step(loss),
        })
    }

    fn end_task(&mut self, task: &TaskInfo, train: &[Example<M::Input>]) -> Result<()> {
        match self.kind {
            Baseline::LoraReplay => self
                .memory
                .observe_task(self.cfg.replay.feed, task.id, train),
            Baseline::MtlCumulative => self.memory.add_task(task.id, train),
            Baseline::Ewc => self.consolidate(train)?,
            _ => {}
        }
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
    ) -> Result<crate::model::Predictions<B::InnerBackend>> {
        self.learner.predictions(inputs)
    }

    fn backbone_params(&self) -> TaskVector<B::InnerBackend> {
        self.learner.backbone_params()
    }

    fn param_counts(&self) -> ParamCounts {
        let (trainable, stored) = self.learner.model.lora_param_counts();
        ParamCounts {
            trainable,
            stored,
            stored_examples: self.memory.examples().len(),
        }
    }

    /// The one LoRA of SeqLoRA, LoRAReplay, MTL, MTL-cumulative and EWC in PEFT's format
    /// (IncLoRA and O-LoRA keep one per task: `Ok(false)`).
    fn export_peft(&self, base_model: &str, dir: &Path) -> Result<bool> {
        if self.kind.adapters_per_task() || self.learner.tasks().is_empty() {
            return Ok(false);
        }
        crate::peft::peft_format::export_peft_lora(
            self.learner.model.valid().backbone(),
            0,
            base_model,
            dir,
        )?;
        Ok(true)
    }

    fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        self.learner.save(dir)?;
        if self.kind == Baseline::Ewc {
            self.ewc.save(&dir.join("ewc.safetensors"))?;
        }
        self.memory.save(dir)
    }

    fn load_checkpoint(&mut self, dir: &Path, finished: &[TaskInfo]) -> Result<()> {
        for task in finished {
            self.add_task_adapters(task)?;
        }
        self.learner.load(dir, finished)?;
        self.memory = ReplayStore::load(dir)?;
        if self.kind == Baseline::Ewc && !finished.is_empty() {
            self.ewc = EwcState::load(&dir.join("ewc.safetensors"), &self.learner.device())?;
        }
        Ok(())
    }
}
