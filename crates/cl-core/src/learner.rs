//! What every LoRA-family method shares, written once: the model ([`TaskModel`]: a classifier
//! or a causal LM over a frozen backbone), its per-task optimiser and schedule, the tasks begun
//! so far, the step counter that seeds a step's random draws, the loss step, prediction and the
//! model's checkpoint.
//!
//! A method crate (the baselines, cl-ilora, cl-rkif, cl-arith) holds a [`Learner`] and adds only
//! its algorithm: which adapters a task gets, which examples a step sees, what the loss adds,
//! what happens at a task's end.

use std::path::Path;

use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::backbone::Backbone;
use crate::checkpoint::{load_module, save_module};
use crate::error::Result;
use crate::model::{Predictions, TaskModel, TrainableModel, allowed_classes};
use crate::optim::{OptimizerConfig, TaskOptimizer};
use crate::peft::{ParamFilter, TaskVector};
use crate::stream::{Example, TaskId, TaskInfo, mix_seed};

/// The [`Learner::step_rng`] stream of the replay draws, shared by every replaying method, so
/// that the same seed draws the same replay examples at the same step in each of them.
pub const REPLAY_DRAWS: u64 = 2;

/// A model trained task by task with AdamW (see the module docs).
pub struct Learner<B: AutodiffBackend, M: TrainableModel<B>> {
    /// The frozen backbone with the method's adapters, and its read-out.
    pub model: M,
    optimizer: OptimizerConfig,
    optim: TaskOptimizer<B, M>,
    /// Steps the current task was planned with (the schedule's length).
    planned_steps: usize,
    /// Tasks begun so far, in order (task `t` at index `t`; the last is the current one).
    tasks: Vec<TaskInfo>,
    /// Updates in the current task.
    step: u64,
    seed: u64,
}

impl<B, M> Learner<B, M>
where
    B: AutodiffBackend,
    M: TrainableModel<B>,
{
    /// A learner of `model` (for a classifier, [`crate::model::PeftClassifier::for_run`]),
    /// trained with `optimizer` (a fresh AdamW and schedule per task), its draws seeded by `seed`.
    pub fn new(model: M, optimizer: OptimizerConfig, seed: u64) -> Self {
        Self {
            optim: optimizer.for_task(0),
            optimizer,
            model,
            planned_steps: 0,
            tasks: Vec::new(),
            step: 0,
            seed,
        }
    }

    /// The run's seed (methods derive their own streams from it with [`mix_seed`]).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Records the step count the runner plans for the coming task ([`crate::Method::plan_steps`]).
    pub fn plan_steps(&mut self, steps: usize) {
        self.planned_steps = steps;
    }

    /// Starts `task`: records it and gives it a fresh optimiser whose schedule spans the
    /// planned steps.
    pub fn begin_task(&mut self, task: &TaskInfo) {
        self.tasks.push(task.clone());
        self.optim = self.optimizer.for_task(self.planned_steps);
        self.step = 0;
    }

    /// The tasks begun so far, in order.
    pub fn tasks(&self) -> &[TaskInfo] {
        &self.tasks
    }

    /// The current task's id (0 before any task).
    pub fn current_task(&self) -> TaskId {
        self.tasks.last().map_or(0, |t| t.id)
    }

    /// Updates taken in the current task.
    pub fn step_in_task(&self) -> u64 {
        self.step
    }

    /// A generator for one draw of this step: seeded by `(seed, stream, task, step)`, so the
    /// same run draws the same examples at the same step whatever happened before.
    pub fn step_rng(&self, stream: u64) -> StdRng {
        StdRng::seed_from_u64(mix_seed(
            self.seed,
            &[stream, self.current_task() as u64, self.step],
        ))
    }

    /// The model's mean loss on `examples` (`[1]`, with autodiff): the classifier's
    /// cross-entropy, each example's softmax restricted to its task's classes in the
    /// task-incremental scenario, or the causal LM's answer loss.
    pub fn loss(&self, examples: &[Example<M::Input>]) -> Result<Tensor<B, 1>> {
        let inputs: Vec<&M::Input> = examples.iter().map(|e| &e.input).collect();
        let labels: Vec<usize> = examples.iter().map(|e| e.label).collect();
        let allowed = allowed_classes(&self.tasks, examples);
        self.model.loss(&inputs, &labels, allowed.as_deref())
    }

    /// The loss's value and, when it is finite, the gradients of the model's trainable
    /// parameters (`None` for a non-finite loss: nothing should be updated then).
    pub fn gradients(&self, loss: Tensor<B, 1>) -> (f64, Option<GradientsParams>) {
        let value: f64 = loss.clone().into_scalar().elem::<f64>();
        if !value.is_finite() {
            return (value, None);
        }
        (
            value,
            Some(GradientsParams::from_grads(loss.backward(), &self.model)),
        )
    }

    /// One optimiser update from `grads` at the scheduled learning rate; advances the schedule.
    pub fn apply(&mut self, grads: GradientsParams) {
        self.model = self.optim.step(self.model.clone(), grads);
        self.step += 1;
    }

    /// One optimiser update at the current learning rate without advancing the schedule or the
    /// step counter (Recurrent-KIF's outer steps).
    pub fn apply_held(&mut self, grads: GradientsParams) {
        self.model = self.optim.step_held(self.model.clone(), grads);
    }

    /// Minimises `loss` by one update ([`Learner::gradients`] then [`Learner::apply`]); returns
    /// its value. A non-finite loss updates nothing (the runner stops the run on it).
    pub fn step(&mut self, loss: Tensor<B, 1>) -> f64 {
        let (value, grads) = self.gradients(loss);
        if let Some(grads) = grads {
            self.apply(grads);
        }
        value
    }

    /// Class scores `[batch, num_classes]` of the current model, without autodiff.
    pub fn predict(&self, inputs: &[&M::Input]) -> Result<Tensor<B::InnerBackend, 2>> {
        self.model.valid().class_scores(inputs)
    }

    /// The current model's [`TaskModel::predictions`] (class scores, greedy answers where the
    /// model generates), without autodiff.
    pub fn predictions(&self, inputs: &[&M::Input]) -> Result<Predictions<B::InnerBackend>> {
        self.model.valid().predictions(inputs)
    }

    /// The backbone's frozen pre-trained parameters by path ([`crate::Method::backbone_params`]).
    pub fn backbone_params(&self) -> TaskVector<B::InnerBackend> {
        TaskVector::snapshot(self.model.valid().backbone(), &ParamFilter::Pretrained)
    }

    /// The device the model lives on.
    pub fn device(&self) -> B::Device {
        self.model.backbone().device()
    }

    /// Writes the model to `dir/model.bin`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        save_module(&self.model, &dir.join("model"))
    }

    /// Restores what [`Learner::save`] wrote into a model of the same structure (the method
    /// re-adds its adapters first) and records `finished` as the tasks begun.
    pub fn load(&mut self, dir: &Path, finished: &[TaskInfo]) -> Result<()> {
        let device = self.device();
        self.model = load_module(self.model.clone(), &dir.join("model"), &device)?;
        self.tasks = finished.to_vec();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::add_lora;
    use crate::backbone::mlp::{MlpBackbone, MlpBackboneConfig};
    use crate::model::PeftClassifier;
    use crate::peft::LoraConfig;
    use crate::stream::Scenario;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::AutodiffModule;

    type B = Autodiff<NdArray>;

    fn task(id: usize) -> TaskInfo {
        TaskInfo {
            id,
            name: format!("t{id}"),
            classes: vec![2 * id, 2 * id + 1],
            scenario: Scenario::ClassIncremental,
            num_train: 6,
            labels: Vec::new(),
        }
    }

    fn learner() -> Learner<B, PeftClassifier<B, MlpBackbone<B>>> {
        let device = Default::default();
        let mut backbone = MlpBackboneConfig {
            input_dim: 4,
            hidden: vec![8],
            seed: 7,
        }
        .init::<B>(&device)
        .unwrap();
        let lora = LoraConfig {
            targets: vec!["layers.*".into()],
            ..LoraConfig::default()
        };
        add_lora(&mut backbone, &lora, 1).unwrap();
        Learner::new(
            PeftClassifier::for_run(backbone, 4, 3),
            OptimizerConfig::default(),
            3,
        )
    }

    fn examples(task: usize) -> Vec<Example<Vec<f32>>> {
        (0..6)
            .map(|i| Example {
                input: vec![i as f32, 1.0, -(i as f32), 0.5],
                label: 2 * task + i % 2,
                task,
            })
            .collect()
    }

    #[test]
    fn a_step_lowers_the_loss_and_counts_within_the_task() {
        let mut l = learner();
        l.plan_steps(10);
        l.begin_task(&task(0));
        let data = examples(0);
        let first = l.step(l.loss(&data).unwrap());
        for _ in 0..8 {
            l.step(l.loss(&data).unwrap());
        }
        let after: f64 = l.loss(&data).unwrap().into_scalar().elem();
        assert!(after < first, "loss {first} → {after}");
        assert_eq!(l.step_in_task(), 9);
        l.begin_task(&task(1));
        assert_eq!((l.step_in_task(), l.current_task()), (0, 1));
    }

    #[test]
    fn a_non_finite_loss_updates_nothing() {
        let mut l = learner();
        l.begin_task(&task(0));
        let before = TaskVector::snapshot(&l.model.valid(), &ParamFilter::Trainable);
        let bad = l.loss(&examples(0)).unwrap().mul_scalar(f64::NAN);
        assert!(l.step(bad).is_nan());
        let after = TaskVector::snapshot(&l.model.valid(), &ParamFilter::Trainable);
        assert_eq!(after.sub(&before).unwrap().l2_norm(), 0.0);
        assert_eq!(l.step_in_task(), 0);
    }

    #[test]
    fn step_draws_depend_on_task_and_step_only() {
        use rand::Rng;
        let mut l = learner();
        l.begin_task(&task(0));
        let a: u64 = l.step_rng(2).random();
        assert_eq!(a, l.step_rng(2).random::<u64>());
        assert_ne!(a, l.step_rng(4).random::<u64>());
        l.step(l.loss(&examples(0)).unwrap());
        assert_ne!(a, l.step_rng(2).random::<u64>());
    }

    #[test]
    fn save_and_load_restore_the_model_and_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = learner();
        l.begin_task(&task(0));
        l.step(l.loss(&examples(0)).unwrap());
        l.save(dir.path()).unwrap();
        let mut fresh = learner();
        fresh.load(dir.path(), &[task(0)]).unwrap();
        let data = examples(0);
        let refs: Vec<&Vec<f32>> = data.iter().map(|e| &e.input).collect();
        let (a, b) = (l.predict(&refs).unwrap(), fresh.predict(&refs).unwrap());
        assert_eq!(a.into_data(), b.into_data());
        assert_eq!(fresh.tasks().len(), 1);
        let missing = tempfile::tempdir().unwrap();
        let err = fresh.load(missing.path(), &[]).unwrap_err().to_string();
        assert!(err.contains("model.bin"), "{err}");
    }
}
