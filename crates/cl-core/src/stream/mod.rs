//! Task streams: a sequence of tasks, each with train / valid / test splits and a label space,
//! plus seeded batching and replay memories.
//!
//! Labels are global class indices in `0..num_classes` of the stream. A task's label space is the
//! set of global classes it uses. In the task-incremental scenario the task id is known at
//! evaluation and logits are restricted to the task's classes; in the class-incremental scenario
//! one shared head covers every class and the task id is never given (see [`crate::EvalContext`]).

pub mod file;
pub mod replay;
pub mod synthetic;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::{ClError, Result};
use crate::text_metrics::TextMetric;

/// Index of a task in its stream (0-based).
pub type TaskId = usize;

/// Whether the task identity is available at inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Task id given at evaluation; logits are restricted to the task's label space.
    TaskIncremental,
    /// No task id at evaluation; one shared label space over all tasks' classes.
    ClassIncremental,
}

impl Scenario {
    /// The name used in listings and errors (`task-incremental`, `class-incremental`).
    pub fn name(self) -> &'static str {
        match self {
            Scenario::TaskIncremental => "task-incremental",
            Scenario::ClassIncremental => "class-incremental",
        }
    }
}

/// One labelled example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example<X> {
    /// Host-side input (token ids, pixels, feature vector...).
    pub input: X,
    /// Global class index.
    pub label: usize,
    /// The task the example belongs to.
    pub task: TaskId,
}

/// A task: its splits and label space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task<X> {
    /// Description of the task (id, name, classes).
    pub info: TaskInfo,
    /// Training split.
    pub train: Vec<Example<X>>,
    /// Validation split (for choosing hyper-parameters such as merge weights; never the test split).
    pub valid: Vec<Example<X>>,
    /// Test split, used for the accuracy matrix.
    pub test: Vec<Example<X>>,
}

/// What a method may know about a task: id, name, label space, scenario, training-set size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Position in the stream.
    pub id: TaskId,
    /// Human-readable name (e.g. `bbc-news`).
    pub name: String,
    /// Global class indices this task uses, ascending.
    pub classes: Vec<usize>,
    /// Scenario of the stream.
    pub scenario: Scenario,
    /// Number of training examples.
    pub num_train: usize,
    /// The names of [`TaskInfo::classes`], in the same order (empty where the stream has none,
    /// e.g. the synthetic one; streams and checkpoints written before they existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// How a task's test answers are scored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scoring {
    /// The highest class score is the prediction: accuracy (every classification stream).
    #[default]
    Classes,
    /// The model's generated answer against the label text of the example's class (free-text
    /// answers, e.g. TRACE's), by `metric`; `sources[i]` is test example `i`'s source text
    /// where the metric reads one ([`TextMetric::needs_source`]), else `sources` is empty.
    Text {
        /// The metric.
        metric: TextMetric,
        /// Each test example's source text (its prompt), or nothing.
        sources: Vec<String>,
    },
}

impl Scoring {
    /// The text metric, where answers are scored as text.
    pub fn text_metric(&self) -> Option<TextMetric> {
        match self {
            Scoring::Classes => None,
            Scoring::Text { metric, .. } => Some(*metric),
        }
    }
}

/// An ordered sequence of tasks over a shared class index space.
#[derive(Debug, Clone)]
pub struct TaskStream<X> {
    name: String,
    scenario: Scenario,
    num_classes: usize,
    tasks: Vec<Task<X>>,
    /// One per task.
    scoring: Vec<Scoring>,
}

impl<X> TaskStream<X> {
    /// Builds a stream and validates it: every task needs non-empty train and test splits, at
    /// least two classes in its label space, at least two classes present in its training split,
    /// and every label inside its label space and below `num_classes`.
    pub fn new(
        name: impl Into<String>,
        scenario: Scenario,
        num_classes: usize,
        tasks: Vec<Task<X>>,
    ) -> Result<Self> {
        let name = name.into();
        if tasks.is_empty() {
            return Err(ClError::config(
                "stream.tasks",
                format!("stream `{name}` has no tasks"),
            ));
        }
        for (position, task) in tasks.iter().enumerate() {
            validate_task(position, task, num_classes)?;
        }
        let scoring = vec![Scoring::Classes; tasks.len()];
        Ok(Self {
            name,
            scenario,
            num_classes,
            tasks,
            scoring,
        })
    }

    /// Scores the tasks' answers as `scoring` says (one per task, in task order; by default
    /// every task is [`Scoring::Classes`]). Errors when the count differs from the tasks', or a
    /// metric reading sources has not one per test example.
    pub fn with_scoring(mut self, scoring: Vec<Scoring>) -> Result<Self> {
        if scoring.len() != self.tasks.len() {
            return Err(ClError::config(
                "stream.scoring",
                format!(
                    "{} entries for the {} tasks of `{}`",
                    scoring.len(),
                    self.tasks.len(),
                    self.name
                ),
            ));
        }
        for (task, score) in self.tasks.iter().zip(&scoring) {
            if let Scoring::Text { metric, sources } = score {
                let wanted = if metric.needs_source() {
                    task.test.len()
                } else {
                    0
                };
                if sources.len() != wanted {
                    return Err(ClError::config(
                        format!("stream.scoring of task `{}`", task.info.name),
                        format!(
                            "{} has {} sources for {} test examples (wants {wanted})",
                            metric.name(),
                            sources.len(),
                            task.test.len()
                        ),
                    ));
                }
            }
        }
        self.scoring = scoring;
        Ok(self)
    }

    /// How task `t`'s answers are scored.
    pub fn scoring(&self, t: TaskId) -> &Scoring {
        &self.scoring[t]
    }

    /// Stream name (e.g. `text5`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Scenario of every task.
    pub fn scenario(&self) -> Scenario {
        self.scenario
    }

    /// Size of the global class index space.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Number of tasks `T`.
    pub fn num_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// Task `t`.
    pub fn task(&self, t: TaskId) -> &Task<X> {
        &self.tasks[t]
    }

    /// All tasks in order.
    pub fn tasks(&self) -> &[Task<X>] {
        &self.tasks
    }

    /// Reorders the tasks (a task order of the papers' protocols); `order` is a permutation of
    /// `0..T`. Task ids and examples' task fields are renumbered to the new positions.
    pub fn reordered(mut self, order: &[usize]) -> Result<Self> {
        let mut seen = vec![false; self.tasks.len()];
        if order.len() != self.tasks.len()
            || order
                .iter()
                .any(|&i| i >= seen.len() || std::mem::replace(&mut seen[i], true))
        {
            return Err(ClError::config(
                "order",
                format!("{order:?} is not a permutation of 0..{}", self.tasks.len()),
            ));
        }
        self.scoring = order.iter().map(|&old| self.scoring[old].clone()).collect();
        let mut slots: Vec<Option<Task<X>>> = self.tasks.into_iter().map(Some).collect();
        self.tasks = order
            .iter()
            .enumerate()
            .map(|(new_id, &old)| {
                let mut task = slots[old].take().expect("permutation checked above");
                task.info.id = new_id;
                for ex in task
                    .train
                    .iter_mut()
                    .chain(&mut task.valid)
                    .chain(&mut task.test)
                {
                    ex.task = new_id;
                }
                task
            })
            .collect();
        Ok(self)
    }

    /// Converts every input (e.g. text → token ids), keeping labels, tasks and splits.
    pub fn map_inputs<Y>(
        self,
        mut f: impl FnMut(Vec<X>) -> Result<Vec<Y>>,
    ) -> Result<TaskStream<Y>> {
        let mut convert = |examples: Vec<Example<X>>| -> Result<Vec<Example<Y>>> {
            let (meta, inputs): (Vec<(usize, TaskId)>, Vec<X>) = examples
                .into_iter()
                .map(|e| ((e.label, e.task), e.input))
                .unzip();
            let outputs = f(inputs)?;
            Ok(meta
                .into_iter()
                .zip(outputs)
                .map(|((label, task), input)| Example { input, label, task })
                .collect())
        };
        let tasks = self
            .tasks
            .into_iter()
            .map(|t| {
                Ok(Task {
                    info: t.info,
                    train: convert(t.train)?,
                    valid: convert(t.valid)?,
                    test: convert(t.test)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TaskStream {
            name: self.name,
            scenario: self.scenario,
            num_classes: self.num_classes,
            tasks,
            scoring: self.scoring,
        })
    }

    /// Keeps at most `n` training examples per task (a seeded, class-stratified subset), for
    /// small runs. Validation and test splits are untouched.
    pub fn with_max_train(mut self, n: usize, seed: u64) -> Self
    where
        X: Clone,
    {
        for task in &mut self.tasks {
            if task.train.len() > n {
                task.train = stratified_subset(&task.train, n, seed ^ task.info.id as u64);
                task.info.num_train = task.train.len();
            }
        }
        self
    }
}

fn validate_task<X>(position: usize, task: &Task<X>, num_classes: usize) -> Result<()> {
    let invalid = |reason: String| ClError::InvalidTask {
        task: position,
        name: task.info.name.clone(),
        reason,
    };
    if task.info.id != position {
        return Err(invalid(format!(
            "its id is {} but it stands at position {position}",
            task.info.id
        )));
    }
    if task.train.is_empty() {
        return Err(invalid("the training split is empty".into()));
    }
    if task.test.is_empty() {
        return Err(invalid("the test split is empty".into()));
    }
    if task.info.classes.len() < 2 {
        return Err(invalid(format!(
            "its label space has {} class(es); classification needs at least 2",
            task.info.classes.len()
        )));
    }
    if task.info.num_train != task.train.len() {
        return Err(invalid(format!(
            "info.num_train = {} but the training split has {} examples",
            task.info.num_train,
            task.train.len()
        )));
    }
    for (split, examples) in [
        ("train", &task.train),
        ("valid", &task.valid),
        ("test", &task.test),
    ] {
        for (i, ex) in examples.iter().enumerate() {
            if ex.label >= num_classes || task.info.classes.binary_search(&ex.label).is_err() {
                return Err(invalid(format!(
                    "{split} example {i} has label {} outside the task's classes {:?}",
                    ex.label, task.info.classes
                )));
            }
            if ex.task != position {
                return Err(invalid(format!(
                    "{split} example {i} says it belongs to task {}",
                    ex.task
                )));
            }
        }
    }
    let first = task.train[0].label;
    if task.train.iter().all(|ex| ex.label == first) {
        return Err(invalid(format!(
            "every training example has the same class ({first})"
        )));
    }
    Ok(())
}

/// A seeded, class-stratified subset of `n` examples (each class keeps its share, rounded, at
/// least one example of every class when `n` allows).
pub fn stratified_subset<X: Clone>(
    examples: &[Example<X>],
    n: usize,
    seed: u64,
) -> Vec<Example<X>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut by_class: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, ex) in examples.iter().enumerate() {
        by_class.entry(ex.label).or_default().push(i);
    }
    let total = examples.len();
    let mut chosen = Vec::with_capacity(n);
    let mut leftovers = Vec::new();
    for indices in by_class.values_mut() {
        indices.shuffle(&mut rng);
        let share = ((indices.len() * n) as f64 / total as f64).floor() as usize;
        let share = share.max(1).min(indices.len());
        chosen.extend_from_slice(&indices[..share]);
        leftovers.extend_from_slice(&indices[share..]);
    }
    leftovers.shuffle(&mut rng);
    chosen.truncate(n);
    let missing = n.saturating_sub(chosen.len());
    chosen.extend(leftovers.into_iter().take(missing));
    chosen.sort_unstable();
    chosen.into_iter().map(|i| examples[i].clone()).collect()
}

/// Task order `k` of a stream of `n` tasks: 1 = as given, 2 = reversed, 3 = the tasks at odd
/// positions, then those at even positions (for 5 tasks: 1, 3, 0, 2, 4).
pub fn task_order(k: usize, n: usize) -> Result<Vec<usize>> {
    Ok(match k {
        1 => (0..n).collect(),
        2 => (0..n).rev().collect(),
        3 => (1..n).step_by(2).chain((0..n).step_by(2)).collect(),
        _ => {
            return Err(ClError::config(
                "order",
                format!("must be 1, 2 or 3 (got {k})"),
            ));
        }
    })
}

/// Seeded mini-batch order over a split: a fresh permutation per epoch, derived from
/// `(seed, task, epoch)` alone so that a resumed run sees exactly the same batches.
pub fn epoch_batches(
    len: usize,
    batch_size: usize,
    seed: u64,
    task: TaskId,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..len).collect();
    let mut rng = StdRng::seed_from_u64(mix_seed(seed, &[task as u64, epoch as u64]));
    order.shuffle(&mut rng);
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// Derives a sub-seed from a seed and a path of integers (SplitMix64 finaliser), so every random
/// stream in a run (data order, initialisation, replay sampling) depends on the run seed alone.
pub fn mix_seed(seed: u64, path: &[u64]) -> u64 {
    let mut z = seed;
    for &p in path {
        z = z
            .wrapping_add(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(p.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(label: usize, task: TaskId) -> Example<u32> {
        Example {
            input: label as u32,
            label,
            task,
        }
    }

    fn task(id: TaskId, classes: Vec<usize>, train: Vec<Example<u32>>) -> Task<u32> {
        let test = train.clone();
        Task {
            info: TaskInfo {
                id,
                name: format!("t{id}"),
                classes,
                scenario: Scenario::ClassIncremental,
                num_train: train.len(),
                labels: Vec::new(),
            },
            train,
            valid: vec![],
            test,
        }
    }

    #[test]
    fn rejects_empty_and_one_class_tasks() {
        let empty = TaskStream::new(
            "s",
            Scenario::ClassIncremental,
            2,
            vec![task(0, vec![0, 1], vec![])],
        );
        let msg = empty.unwrap_err().to_string();
        assert!(
            msg.contains("training split is empty") && msg.contains("`t0`"),
            "{msg}"
        );

        let one = TaskStream::new(
            "s",
            Scenario::ClassIncremental,
            2,
            vec![task(0, vec![0, 1], vec![ex(0, 0), ex(0, 0)])],
        );
        assert!(one.unwrap_err().to_string().contains("same class"));

        let narrow = TaskStream::new(
            "s",
            Scenario::ClassIncremental,
            2,
            vec![task(0, vec![0], vec![ex(0, 0)])],
        );
        assert!(narrow.unwrap_err().to_string().contains("at least 2"));
    }

    #[test]
    fn rejects_labels_outside_the_label_space() {
        let s = TaskStream::new(
            "s",
            Scenario::ClassIncremental,
            4,
            vec![task(0, vec![0, 1], vec![ex(0, 0), ex(3, 0)])],
        );
        assert!(s.unwrap_err().to_string().contains("label 3"));
    }

    #[test]
    fn reorders_and_renumbers() {
        let s = TaskStream::new(
            "s",
            Scenario::ClassIncremental,
            4,
            vec![
                task(0, vec![0, 1], vec![ex(0, 0), ex(1, 0)]),
                task(1, vec![2, 3], vec![ex(2, 1), ex(3, 1)]),
            ],
        )
        .unwrap();
        let r = s.reordered(&[1, 0]).unwrap();
        assert_eq!(r.task(0).info.classes, vec![2, 3]);
        assert_eq!(r.task(0).train[0].task, 0);
        assert_eq!(r.task(1).info.id, 1);
        assert!(r.clone().reordered(&[0, 0]).is_err());
    }

    #[test]
    fn task_orders_are_permutations() {
        assert_eq!(task_order(1, 5).unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(task_order(2, 5).unwrap(), vec![4, 3, 2, 1, 0]);
        assert_eq!(task_order(3, 5).unwrap(), vec![1, 3, 0, 2, 4]);
        assert!(task_order(4, 5).is_err());
    }

    #[test]
    fn batches_are_seeded_and_cover_the_split() {
        let a = epoch_batches(10, 3, 7, 1, 0);
        assert_eq!(a, epoch_batches(10, 3, 7, 1, 0));
        assert_ne!(a, epoch_batches(10, 3, 7, 1, 1), "each epoch reshuffles");
        let mut all: Vec<usize> = a.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(a.len(), 4);
    }

    #[test]
    fn stratified_subset_keeps_every_class() {
        let mut xs: Vec<Example<u32>> = (0..90).map(|_| ex(0, 0)).collect();
        xs.extend((0..10).map(|_| ex(1, 0)));
        let sub = stratified_subset(&xs, 20, 3);
        assert_eq!(sub.len(), 20);
        assert_eq!(sub.iter().filter(|e| e.label == 1).count(), 2);
        assert_eq!(sub, stratified_subset(&xs, 20, 3));
    }
}
