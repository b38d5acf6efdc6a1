//! The cl-arith method: isolated per-task LoRA training, stored task vectors, any-time merging.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use cl_core::backbone::{ADAPTER_PARAMS, Backbone, TrainableBackbone, add_lora};
use cl_core::learner::Learner;
use cl_core::model::{PeftClassifier, TaskModel, TrainableModel, argmax_host, label_space_mask};
use cl_core::peft::peft_format::export_peft_lora;
use cl_core::peft::{ParamFilter, TaskVector, param_paths};
use cl_core::stream::{Example, Scenario, TaskId, TaskInfo, mix_seed};
use cl_core::{ClError, EvalContext, Method, ParamCounts, Result, StepStats};

use crate::config::{ArithConfig, InitFrom, LambdaChoice, MergeLevel, ModuleKind};
use crate::merge::{combine, level_vectors, module_states};
use crate::store::{self, Manifest, StoredTask};

type Inner<B> = <B as AutodiffBackend>::InnerBackend;
type InnerModel<B, M> = <M as AutodiffModule<B>>::InnerModule;

/// Parameter isolation then combination (see the crate docs).
pub struct Arith<B: AutodiffBackend, M: TrainableModel<B>> {
    cfg: ArithConfig,
    /// The training model (frozen backbone with one adapter per targeted layer, and the head),
    /// its optimiser and the tasks begun so far.
    learner: Learner<B, M>,
    /// Which parameters form the per-task module (LoRA factors or adapter weights).
    filter: ParamFilter,
    /// θ_init on the training backend, to reset the module at every task.
    init_train: TaskVector<B>,
    /// The shared initialisation θ_init of the module (its parameter paths in the classifier).
    init: TaskVector<Inner<B>>,
    /// The module at the start of the current task.
    before: TaskVector<Inner<B>>,
    /// τ_t of every finished task, in order.
    vectors: Vec<TaskVector<Inner<B>>>,
    /// Held-out validation rows per task (only kept when λ is searched).
    valid: BTreeMap<TaskId, Vec<Example<M::Input>>>,
    /// λ_t of the current merged model.
    lambdas: Vec<f64>,
    /// The single merged model used for prediction (after the first finished task).
    merged: Option<InnerModel<B, M>>,
}

impl<B, Bb> Arith<B, PeftClassifier<B, Bb>>
where
    B: AutodiffBackend,
    Bb: TrainableBackbone<B>,
{
    /// cl-arith over `backbone` with a fresh head of `num_classes` classes
    /// ([`PeftClassifier::for_run`]).
    pub fn new(cfg: ArithConfig, backbone: Bb, num_classes: usize, seed: u64) -> Result<Self> {
        Self::from_model(
            cfg,
            PeftClassifier::for_run(backbone, num_classes, seed),
            seed,
        )
    }
}

impl<B, M> Arith<B, M>
where
    B: AutodiffBackend,
    M: TrainableModel<B>,
{
    /// cl-arith training `model` (a classifier or a causal LM).
    pub fn from_model(cfg: ArithConfig, model: M, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let mut learner = Learner::new(model, cfg.optimizer.clone(), seed);
        let model = &mut learner.model;
        let filter = match cfg.module {
            ModuleKind::Lora => {
                add_lora(model.backbone_mut(), &cfg.lora, mix_seed(seed, &[1]))?;
                ParamFilter::Lora
            }
            ModuleKind::Adapter => {
                model
                    .backbone_mut()
                    .add_adapters(&cfg.adapter, mix_seed(seed, &[1]))?;
                ParamFilter::Patterns(vec![ADAPTER_PARAMS.into()])
            }
        };
        let init_train = TaskVector::snapshot(&learner.model, &filter);
        let init = TaskVector::snapshot(&learner.model.valid(), &filter);
        Ok(Self {
            cfg,
            learner,
            filter,
            init_train,
            before: init.clone(),
            init,
            vectors: Vec::new(),
            valid: BTreeMap::new(),
            lambdas: Vec::new(),
            merged: None,
        })
    }

    /// The λ_t of the current merged model (empty before the first task ends).
    pub fn lambdas(&self) -> &[f64] {
        &self.lambdas
    }

    /// The stored task vectors, in task order.
    pub fn task_vectors(&self) -> &[TaskVector<Inner<B>>] {
        &self.vectors
    }

    /// The merged model the method predicts with (after the first finished task).
    pub fn merged_model(&self) -> Option<&InnerModel<B, M>> {
        self.merged.as_ref()
    }

    /// Back to the shared initialisation θ_init (for LoRA: the same seeded `A`, `B = 0`).
    fn reset_module(&mut self) -> Result<()> {
        self.learner.model = self.init_train.assign(self.learner.model.clone())?;
        Ok(())
    }

    /// The merge level: adapters are not linear in their parameters, so they always merge in
    /// parameter space.
    fn level(&self) -> MergeLevel {
        match self.cfg.module {
            ModuleKind::Lora => self.cfg.level,
            ModuleKind::Adapter => MergeLevel::Factors,
        }
    }

    /// The finished tasks' vectors at the merge level (independent of λ).
    fn level_vectors(&self, template: &InnerModel<B, M>) -> Result<Vec<TaskVector<Inner<B>>>> {
        level_vectors(
            template,
            &self.init,
            &self.vectors,
            self.cfg.init,
            self.level(),
        )
    }

    fn combine(
        &self,
        template: &InnerModel<B, M>,
        at_level: &[TaskVector<Inner<B>>],
        weights: &[f64],
    ) -> Result<InnerModel<B, M>> {
        combine(
            template.clone(),
            &self.init,
            at_level,
            weights,
            self.level(),
            &self.cfg.strategy,
        )
    }

    /// Mean accuracy over the finished tasks' kept validation rows (no task id unless the
    /// scenario gives one, as at test time).
    fn validation_accuracy(&self, model: &InnerModel<B, M>) -> Result<Option<f64>> {
        let mut scores = Vec::new();
        for task in &self.learner.tasks()[..self.vectors.len()] {
            let Some(rows) = self.valid.get(&task.id).filter(|r| !r.is_empty()) else {
                continue;
            };
            let mut correct = 0;
            for chunk in rows.chunks(64) {
                let inputs: Vec<&M::Input> = chunk.iter().map(|e| &e.input).collect();
                let mut logits = model.class_scores(&inputs)?;
                if task.scenario == Scenario::TaskIncremental {
                    let allowed = vec![task.classes.as_slice(); chunk.len()];
                    let [_, cols] = logits.dims();
                    let device = logits.device();
                    logits = logits + label_space_mask::<Inner<B>>(&allowed, cols, &device);
                }
                correct += argmax_host::<Inner<B>>(logits)
                    .iter()
                    .zip(chunk)
                    .filter(|(p, e)| **p == e.label)
                    .count();
            }
            scores.push(correct as f64 / rows.len() as f64);
        }
        Ok((!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64))
    }

    /// λ_t for the finished tasks, per the configuration, and the merged model they give.
    fn choose_lambdas(&self) -> Result<(Vec<f64>, InnerModel<B, M>)> {
        let t = self.vectors.len();
        let no_valid = || {
            ClError::config(
                "lambda",
                "searching λ needs validation rows, and no finished task has any",
            )
        };
        let fixed = match &self.cfg.lambda {
            LambdaChoice::Mean => Some(vec![1.0 / t.max(1) as f64; t]),
            LambdaChoice::Shared { value } => Some(vec![*value; t]),
            LambdaChoice::PerTask { values } => {
                let ids: Vec<usize> = self.learner.tasks()[..t]
                    .iter()
                    .map(|task| task.id)
                    .collect();
                let mut out = Vec::with_capacity(t);
                for id in ids {
                    out.push(*values.get(id).ok_or_else(|| {
                        ClError::config(
                            "lambda.values",
                            format!("{} values but task id {id} needs one", values.len()),
                        )
                    })?);
                }
                Some(out)
            }
            _ => None,
        };
        let template = self.learner.model.valid();
        let at_level = self.level_vectors(&template)?;
        if let Some(weights) = fixed {
            let model = self.combine(&template, &at_level, &weights)?;
            return Ok((weights, model));
        }
        let (LambdaChoice::Search { grid, .. }
        | LambdaChoice::SearchCurrent { grid, .. }
        | LambdaChoice::SearchPerTask { grid, .. }) = &self.cfg.lambda
        else {
            unreachable!("fixed choices returned above");
        };
        let mut best: Option<(f64, Vec<f64>, InnerModel<B, M>)> = None;
        let consider = |weights: Vec<f64>,
                        best: &mut Option<(f64, Vec<f64>, InnerModel<B, M>)>|
         -> Result<()> {
            let model = self.combine(&template, &at_level, &weights)?;
            let score = self.validation_accuracy(&model)?.ok_or_else(no_valid)?;
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                *best = Some((score, weights, model));
            }
            Ok(())
        };
        for &lambda in grid {
            consider(vec![lambda; t], &mut best)?;
        }
        if matches!(self.cfg.lambda, LambdaChoice::SearchPerTask { .. }) && t > 1 {
            for task in 0..t {
                let current = best
                    .as_ref()
                    .map(|(_, w, _)| w.clone())
                    .expect("grid is non-empty");
                for &lambda in grid {
                    if current[task] == lambda {
                        continue;
                    }
                    let mut weights = current.clone();
                    weights[task] = lambda;
                    consider(weights, &mut best)?;
                }
            }
        }
        let (_, weights, model) = best.expect("the grid is non-empty (validated)");
        Ok((weights, model))
    }

    /// Writes task `t`'s LoRA (`θ_before + τ_t`, i.e. the module it ended training with) in
    /// Hugging Face PEFT's format into `dir` (`adapter_model.safetensors`, `adapter_config.json`).
    pub fn export_task_peft(&self, t: usize, base_model: &str, dir: &Path) -> Result<usize> {
        if self.cfg.module != ModuleKind::Lora {
            return Err(ClError::config("module", "PEFT export is for LoRA modules"));
        }
        if t >= self.vectors.len() {
            return Err(ClError::config(
                "export",
                format!("task {t} is not finished ({} are)", self.vectors.len()),
            ));
        }
        let (_, after) = module_states(&self.init, &self.vectors[..=t], self.cfg.init)?
            .pop()
            .expect("task t is finished");
        let model = after.assign(self.learner.model.valid())?;
        export_peft_lora(model.backbone(), 0, base_model, dir)
    }

    fn manifest(&self) -> Manifest {
        Manifest {
            module: self.cfg.module,
            lora: self.cfg.lora.clone(),
            adapter: self.cfg.adapter.clone(),
            init: self.cfg.init,
            init_file: String::new(),
            level: self.cfg.level,
            strategy: self.cfg.strategy.clone(),
            lambdas: self.lambdas.clone(),
            tasks: self.learner.tasks()[..self.vectors.len()]
                .iter()
                .map(|t| StoredTask {
                    id: t.id,
                    name: t.name.clone(),
                    classes: t.classes.clone(),
                    file: String::new(),
                    num_elements: 0,
                    l2_norm: 0.0,
                })
                .collect(),
        }
    }
}

impl<B, M> Method<B> for Arith<B, M>
where
    B: AutodiffBackend,
    M: TrainableModel<B>,
{
    type Input = M::Input;

    fn name(&self) -> String {
        "arith".into()
    }

    fn plan_steps(&mut self, steps: usize) {
        self.learner.plan_steps(steps);
    }

    fn begin_task(&mut self, task: &TaskInfo, _train: &[Example<M::Input>]) -> Result<()> {
        self.learner.begin_task(task);
        if self.cfg.init == InitFrom::Pretrained {
            self.reset_module()?;
        }
        self.before = TaskVector::snapshot(&self.learner.model.valid(), &self.filter);
        Ok(())
    }

    fn train_step(&mut self, batch: &[Example<M::Input>]) -> Result<StepStats> {
        let task = self
            .learner
            .tasks()
            .last()
            .ok_or_else(|| ClError::config("arith", "train_step before begin_task"))?;
        let inputs: Vec<&M::Input> = batch.iter().map(|e| &e.input).collect();
        let labels: Vec<usize> = batch.iter().map(|e| e.label).collect();
        // Isolation: the loss sees only this task's classes, so only its head columns learn.
        let allowed = vec![task.classes.as_slice(); batch.len()];
        let loss = self.learner.model.loss(&inputs, &labels, Some(&allowed))?;
        Ok(StepStats {
            loss: self.learner.step(loss),
        })
    }

    fn observe_validation(&mut self, task: &TaskInfo, valid: &[Example<M::Input>]) -> Result<()> {
        let keep = match &self.cfg.lambda {
            LambdaChoice::Search {
                max_valid_per_task, ..
            }
            | LambdaChoice::SearchPerTask {
                max_valid_per_task, ..
            } => *max_valid_per_task,
            LambdaChoice::SearchCurrent {
                max_valid_per_task, ..
            } => {
                // Only the current task's rows, ever.
                self.valid.clear();
                *max_valid_per_task
            }
            _ => 0,
        };
        if keep > 0 {
            self.valid
                .insert(task.id, valid[..keep.min(valid.len())].to_vec());
        }
        Ok(())
    }

    fn end_task(&mut self, _task: &TaskInfo, _train: &[Example<M::Input>]) -> Result<()> {
        let tau = TaskVector::extract(&self.learner.model.valid(), &self.before)?;
        self.vectors.push(tau);
        let (lambdas, merged) = self.choose_lambdas()?;
        self.lambdas = lambdas;
        self.merged = Some(merged);
        if matches!(self.cfg.lambda, LambdaChoice::SearchCurrent { .. }) {
            self.valid.clear();
        }
        Ok(())
    }

    fn predict(&self, inputs: &[&M::Input], _ctx: &EvalContext) -> Result<Tensor<Inner<B>, 2>> {
        match &self.merged {
            Some(model) => model.class_scores(inputs),
            None => self.learner.predict(inputs),
        }
    }

    fn predictions(
        &self,
        inputs: &[&M::Input],
        _ctx: &EvalContext,
    ) -> Result<cl_core::model::Predictions<Inner<B>>> {
        match &self.merged {
            Some(model) => model.predictions(inputs),
            None => self.learner.predictions(inputs),
        }
    }

    fn backbone_params(&self) -> TaskVector<Inner<B>> {
        self.learner.backbone_params()
    }

    fn param_counts(&self) -> ParamCounts {
        let params = param_paths::<B, _>(&self.learner.model);
        let module = self.init.num_elements();
        let head: usize = params
            .iter()
            .filter(|(p, _, _)| p.starts_with("head."))
            .map(|(_, s, _)| s.iter().product::<usize>())
            .sum();
        let stored_vectors: usize = self.vectors.iter().map(TaskVector::num_elements).sum();
        ParamCounts {
            trainable: module + head,
            stored: self.init.num_elements() + stored_vectors + head,
            // Validation rows the λ search keeps (none for fixed λ or the mean; the current
            // task's rows only while it ends for `search-current`).
            stored_examples: self.valid.values().map(Vec::len).sum(),
        }
    }

    fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        self.learner.save(dir)?;
        store::save(
            &dir.join("task_vectors"),
            self.manifest(),
            &self.init,
            &self.vectors,
        )
    }

    fn notes(&self) -> Vec<String> {
        vec![format!("arith λ: {:?}", self.lambdas())]
    }

    fn load_checkpoint(&mut self, dir: &Path, finished: &[TaskInfo]) -> Result<()> {
        self.learner.load(dir, finished)?;
        let inner_device = Backbone::device(self.learner.model.valid().backbone());
        let (manifest, init, vectors) =
            store::load::<Inner<B>>(&dir.join("task_vectors"), &inner_device)?;
        if vectors.len() != finished.len() {
            return Err(ClError::CheckpointMismatch {
                path: dir.to_path_buf(),
                reason: format!(
                    "{} task vectors for {} finished tasks",
                    vectors.len(),
                    finished.len()
                ),
            });
        }
        self.init = init;
        self.vectors = vectors;
        self.lambdas = manifest.lambdas.clone();
        self.merged = if self.vectors.is_empty() {
            None
        } else {
            let template = self.learner.model.valid();
            let at_level = self.level_vectors(&template)?;
            Some(self.combine(&template, &at_level, &manifest.lambdas)?)
        };
        Ok(())
    }
}
