//! The `Method` trait every continual-learning method implements, and what the runner passes it.

use std::path::Path;

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::metrics::Protocol;
use crate::model::Predictions;
use crate::peft::TaskVector;
use crate::stream::{Example, Scenario, TaskId, TaskInfo};

/// What a method may know at evaluation. The task id is present only in the task-incremental
/// scenario; there is no way to build a context that leaks it in the class-incremental one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalContext {
    task: Option<TaskId>,
}

impl EvalContext {
    /// The context for evaluating task `task` of a stream in `scenario`.
    pub fn new(scenario: Scenario, task: TaskId) -> Self {
        Self {
            task: match scenario {
                Scenario::TaskIncremental => Some(task),
                Scenario::ClassIncremental => None,
            },
        }
    }

    /// The task id, when the scenario allows it.
    pub fn task_id(&self) -> Option<TaskId> {
        self.task
    }
}

/// Statistics of one optimiser step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// The loss that was minimised.
    pub loss: f64,
}

/// Parameter counts of a method, reported per task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamCounts {
    /// Parameters updated by the optimiser for the current task.
    pub trainable: usize,
    /// Parameters the method keeps beyond the frozen backbone (adapters of every task, heads,
    /// masks...), i.e. what grows with the number of tasks.
    pub stored: usize,
    /// Examples held in a replay memory (0 for methods that store no data).
    pub stored_examples: usize,
}

/// A continual-learning method: a frozen backbone plus whatever the method trains and keeps.
///
/// The runner calls, for each task `t` in order: [`Method::begin_task`], [`Method::train_step`]
/// for every batch of the task's training split (`epochs` times), [`Method::observe_validation`],
/// [`Method::end_task`], then
/// [`Method::predict`] on every task's test split. Methods own their optimiser and device.
///
/// A method whose [`Method::protocol`] is [`Protocol::Joint`] (the multi-task upper bound) is
/// instead told of every task at once: [`Method::plan_steps`] with the joint step count, then
/// [`Method::begin_task`] for each task in order, [`Method::train_step`] on batches drawn from
/// the union of all training splits (examples keep their own task id), then
/// [`Method::observe_validation`] and [`Method::end_task`] for each task, then one evaluation.
pub trait Method<B: AutodiffBackend> {
    /// One example's host-side input (matches the backbone's).
    type Input: Clone + Send + Sync + std::fmt::Debug + 'static;

    /// Short name used in reports (e.g. `seq-lora`).
    fn name(&self) -> String;

    /// Whether the method learns the tasks in sequence (every continual-learning method, the
    /// default) or jointly on their union (the multi-task upper bound).
    fn protocol(&self) -> Protocol {
        Protocol::Sequential
    }

    /// The number of [`Method::train_step`] calls the coming task will get (epochs × batches),
    /// given by the runner right before [`Method::begin_task`]: the length a learning-rate
    /// schedule spans. The default ignores it.
    fn plan_steps(&mut self, _steps: usize) {}

    /// Prepare for a task (add adapters, reset the optimiser...). `train` is the task's training split.
    fn begin_task(&mut self, task: &TaskInfo, train: &[Example<Self::Input>]) -> Result<()>;

    /// One optimiser step on a batch of the current task.
    fn train_step(&mut self, batch: &[Example<Self::Input>]) -> Result<StepStats>;

    /// The task's validation split, given once per task right before [`Method::end_task`] (and,
    /// when a run resumes, again for every finished task before [`Method::load_checkpoint`]).
    /// Methods that choose hyper-parameters on held-out data (cl-arith's merge weights) keep it;
    /// it is never training data. The default ignores it.
    fn observe_validation(
        &mut self,
        _task: &TaskInfo,
        _valid: &[Example<Self::Input>],
    ) -> Result<()> {
        Ok(())
    }

    /// Finish a task (store replay examples, merge, fuse, save statistics...).
    fn end_task(&mut self, task: &TaskInfo, train: &[Example<Self::Input>]) -> Result<()>;

    /// Logits over the stream's classes, `[batch, num_classes]`, computed without autodiff.
    /// Inputs carry no label and no task id; the context gives the task id only when allowed.
    fn predict(
        &self,
        inputs: &[&Self::Input],
        ctx: &EvalContext,
    ) -> Result<Tensor<B::InnerBackend, 2>>;

    /// What the runner evaluates: [`Method::predict`]'s class scores and, where the method's
    /// model generates its answers (the causal LM), each input's greedy answer (its class for
    /// exact match, its text for free-text metrics); a model answering in free text has no
    /// class scores. The default is [`Method::predict`] alone.
    fn predictions(
        &self,
        inputs: &[&Self::Input],
        ctx: &EvalContext,
    ) -> Result<Predictions<B::InnerBackend>> {
        Ok(Predictions::scores(self.predict(inputs, ctx)?))
    }

    /// The frozen pre-trained parameters of the backbone (everything the method must never change),
    /// by path. The conformance suite checks they are bit-identical before and after a run.
    fn backbone_params(&self) -> TaskVector<B::InnerBackend>;

    /// Trainable / stored parameter counts now.
    fn param_counts(&self) -> ParamCounts;

    /// Writes everything needed to continue after the tasks finished so far into `dir`.
    fn save_checkpoint(&self, dir: &Path) -> Result<()>;

    /// Restores the state written by [`Method::save_checkpoint`]; `finished` lists the tasks that
    /// were complete when it was written, so the method can rebuild its structure first.
    fn load_checkpoint(&mut self, dir: &Path, finished: &[TaskInfo]) -> Result<()>;

    /// Lines worth printing after a run (merge weights chosen, masks, grid sizes...). The
    /// default has none.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Writes the model used for evaluation as a PEFT LoRA adapter of `base_model` into `dir`,
    /// where the method has one such model; `Ok(false)` where it has not (the default).
    fn export_peft(&self, _base_model: &str, _dir: &Path) -> Result<bool> {
        Ok(false)
    }
}
