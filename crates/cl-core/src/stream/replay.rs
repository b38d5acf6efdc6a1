//! Replay memories: a seeded reservoir buffer (I-LoRA) and a per-task fraction memory (the
//! papers' "2% of each finished task", LoRAReplay and Recurrent-KIF).
//!
//! Both are plain data plus counters: every random decision is derived from the run seed and a
//! counter with [`mix_seed`], so a memory serialised in a checkpoint resumes exactly.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{read_json, write_json};

use super::{Example, TaskId, mix_seed, stratified_subset};

/// Uniform sampling of a replay batch from a memory.
pub trait ReplayMemory<X: Clone> {
    /// Everything stored.
    fn examples(&self) -> &[Example<X>];

    /// `true` when nothing is stored.
    fn is_empty(&self) -> bool {
        self.examples().is_empty()
    }

    /// `n` examples drawn uniformly: without replacement when `n ≤ len`, with replacement
    /// otherwise. Empty when the memory is empty.
    fn sample(&self, n: usize, rng: &mut StdRng) -> Vec<Example<X>> {
        let stored = self.examples();
        if stored.is_empty() || n == 0 {
            return Vec::new();
        }
        if n <= stored.len() {
            rand::seq::index::sample(rng, stored.len(), n)
                .into_iter()
                .map(|i| stored[i].clone())
                .collect()
        } else {
            (0..n)
                .map(|_| stored[rng.random_range(0..stored.len())].clone())
                .collect()
        }
    }
}

/// Reservoir sampling (Vitter's algorithm R) with a fixed capacity: after `n` insertions every
/// example offered so far is held with probability `capacity / n`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReservoirBuffer<X> {
    capacity: usize,
    seed: u64,
    seen: u64,
    items: Vec<Example<X>>,
}

impl<X: Clone> ReservoirBuffer<X> {
    /// An empty buffer holding at most `capacity` examples.
    pub fn new(capacity: usize, seed: u64) -> Self {
        Self {
            capacity,
            seed,
            seen: 0,
            items: Vec::with_capacity(capacity),
        }
    }

    /// Offers one example to the reservoir.
    pub fn add(&mut self, example: Example<X>) {
        self.seen += 1;
        if self.items.len() < self.capacity {
            self.items.push(example);
            return;
        }
        let mut rng = StdRng::seed_from_u64(mix_seed(self.seed, &[self.seen]));
        let slot = rng.random_range(0..self.seen) as usize;
        if slot < self.capacity {
            self.items[slot] = example;
        }
    }

    /// Offers several examples in order.
    pub fn extend(&mut self, examples: impl IntoIterator<Item = Example<X>>) {
        for ex in examples {
            self.add(ex);
        }
    }

    /// Number of examples offered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Maximum number of examples held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl<X: Clone> ReplayMemory<X> for ReservoirBuffer<X> {
    fn examples(&self) -> &[Example<X>] {
        &self.items
    }
}

/// Keeps a seeded, class-stratified fraction of each finished task's training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskFractionMemory<X> {
    fraction: f64,
    min_per_task: usize,
    seed: u64,
    items: Vec<Example<X>>,
}

impl<X: Clone> TaskFractionMemory<X> {
    /// Keeps `fraction` (in `(0, 1]`) of each task, at least `min_per_task` examples.
    pub fn new(fraction: f64, min_per_task: usize, seed: u64) -> Self {
        Self {
            fraction,
            min_per_task,
            seed,
            items: Vec::new(),
        }
    }

    /// Stores the share of a finished task's training split; returns how many were kept.
    pub fn add_task(&mut self, task: TaskId, train: &[Example<X>]) -> usize {
        let n = ((train.len() as f64 * self.fraction).round() as usize)
            .max(self.min_per_task)
            .min(train.len());
        let kept = stratified_subset(train, n, mix_seed(self.seed, &[task as u64]));
        self.items.extend(kept);
        n
    }

    /// Number of examples stored for task `t`.
    pub fn count_for(&self, t: TaskId) -> usize {
        self.items.iter().filter(|e| e.task == t).count()
    }
}

impl<X: Clone> ReplayMemory<X> for TaskFractionMemory<X> {
    fn examples(&self) -> &[Example<X>] {
        &self.items
    }
}

/// Which replay memory a method keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryKind {
    /// A seeded, class-stratified `fraction` of each finished task ([`TaskFractionMemory`]).
    #[default]
    TaskFraction,
    /// A reservoir of `capacity` examples over every finished task's training split, each example
    /// offered once ([`ReservoirBuffer`]).
    Reservoir,
}

/// Replay memory settings, shared by every method that replays (LoRAReplay, I-LoRA,
/// Recurrent-KIF), so that a comparison can give them the same buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayConfig {
    /// Which memory.
    pub memory: MemoryKind,
    /// Task-fraction memory: share of each finished task's training split kept (the papers' 2%).
    pub fraction: f64,
    /// Task-fraction memory: at least this many examples per task.
    pub min_per_task: usize,
    /// Reservoir memory: examples held (I-LoRA's 500).
    pub capacity: usize,
    /// Replay examples drawn for each step; `None` = as many as the current batch.
    pub batch_size: Option<usize>,
    /// When examples enter the memory (default: at the end of each task).
    pub feed: ReplayFeed,
}

/// When a method puts examples into its replay memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayFeed {
    /// The finished task's training split, at its end: replay holds past tasks only.
    #[default]
    EndOfTask,
    /// Every current batch, before the replay batch is drawn (I-LoRA's official buffer): a
    /// reservoir over every example seen, so replay batches hold current-task rows too, from the
    /// first task on. Needs `memory: reservoir`.
    EveryStep,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            memory: MemoryKind::TaskFraction,
            fraction: 0.02,
            min_per_task: 1,
            capacity: 500,
            batch_size: None,
            feed: ReplayFeed::EndOfTask,
        }
    }
}

impl ReplayConfig {
    /// Checks the fields the chosen memory uses; errors name them (prefixed by `field`).
    pub fn validate(&self, field: &str) -> crate::error::Result<()> {
        use crate::error::ClError;
        match self.memory {
            MemoryKind::TaskFraction if !(self.fraction > 0.0 && self.fraction <= 1.0) => Err(
                ClError::config(format!("{field}.fraction"), "must be in (0, 1]"),
            ),
            MemoryKind::Reservoir if self.capacity == 0 => Err(ClError::config(
                format!("{field}.capacity"),
                "must be positive",
            )),
            MemoryKind::TaskFraction if self.feed == ReplayFeed::EveryStep => Err(ClError::config(
                format!("{field}.feed"),
                "\"every-step\" feeds a reservoir: use it with \"memory\": \"reservoir\"",
            )),
            _ if self.batch_size == Some(0) => Err(ClError::config(
                format!("{field}.batch_size"),
                "must be positive (or absent: as many as the current batch)",
            )),
            _ => Ok(()),
        }
    }

    /// An empty memory of this kind whose random choices derive from `seed`.
    pub fn build<X: Clone>(&self, seed: u64) -> ReplayStore<X> {
        match self.memory {
            MemoryKind::TaskFraction => ReplayStore::TaskFraction(TaskFractionMemory::new(
                self.fraction,
                self.min_per_task,
                seed,
            )),
            MemoryKind::Reservoir => {
                ReplayStore::Reservoir(ReservoirBuffer::new(self.capacity, seed))
            }
        }
    }

    /// Replay examples to draw for a current batch of `current` examples.
    pub fn replay_batch(&self, current: usize) -> usize {
        self.batch_size.unwrap_or(current)
    }
}

/// The memory a [`ReplayConfig`] builds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayStore<X> {
    /// Per-task fraction.
    TaskFraction(TaskFractionMemory<X>),
    /// Reservoir.
    Reservoir(ReservoirBuffer<X>),
}

impl<X: Clone> ReplayStore<X> {
    /// Feeds the memory per `feed` at a training step: a reservoir fed [`ReplayFeed::EveryStep`]
    /// takes the current batch (call before sampling); otherwise nothing happens.
    pub fn observe_batch(&mut self, feed: ReplayFeed, batch: &[Example<X>]) {
        if let (ReplayFeed::EveryStep, ReplayStore::Reservoir(m)) = (feed, &mut *self) {
            m.extend(batch.iter().cloned());
        }
    }

    /// Feeds the memory per `feed` at the end of a task: the task's training split unless the
    /// memory was fed at every step.
    pub fn observe_task(&mut self, feed: ReplayFeed, task: TaskId, train: &[Example<X>]) {
        if feed == ReplayFeed::EndOfTask {
            self.add_task(task, train);
        }
    }

    /// The replay examples of one training step: feeds the memory per `cfg.feed` (a reservoir
    /// fed every step takes `batch` first), then draws `cfg.replay_batch(batch.len())` examples
    /// with `rng` (none while the memory is empty).
    pub fn replay_step(
        &mut self,
        cfg: &ReplayConfig,
        batch: &[Example<X>],
        rng: &mut StdRng,
    ) -> Vec<Example<X>> {
        self.observe_batch(cfg.feed, batch);
        self.sample(cfg.replay_batch(batch.len()), rng)
    }

    /// Stores what the memory keeps of a finished task's training split.
    pub fn add_task(&mut self, task: TaskId, train: &[Example<X>]) {
        match self {
            ReplayStore::TaskFraction(m) => {
                m.add_task(task, train);
            }
            ReplayStore::Reservoir(m) => m.extend(train.iter().cloned()),
        }
    }
}

impl<X: Clone + Serialize + DeserializeOwned> ReplayStore<X> {
    /// Writes the memory (its examples and its generator's state) to `dir/memory.json`.
    pub fn save(&self, dir: &Path) -> crate::error::Result<()> {
        write_json(&dir.join(MEMORY_FILE), self)
    }

    /// Reads what [`ReplayStore::save`] wrote into `dir`.
    pub fn load(dir: &Path) -> crate::error::Result<Self> {
        read_json(&dir.join(MEMORY_FILE))
    }
}

/// A checkpoint's replay memory file.
const MEMORY_FILE: &str = "memory.json";

impl<X: Clone> ReplayMemory<X> for ReplayStore<X> {
    fn examples(&self) -> &[Example<X>] {
        match self {
            ReplayStore::TaskFraction(m) => m.examples(),
            ReplayStore::Reservoir(m) => m.examples(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(i: usize) -> Example<usize> {
        Example {
            input: i,
            label: i % 2,
            task: 0,
        }
    }

    #[test]
    fn reservoir_fills_then_keeps_capacity() {
        let mut buf = ReservoirBuffer::new(10, 1);
        buf.extend((0..5).map(ex));
        assert_eq!(buf.examples().len(), 5);
        buf.extend((5..1000).map(ex));
        assert_eq!(buf.examples().len(), 10);
        assert_eq!(buf.seen(), 1000);
    }

    #[test]
    fn reservoir_is_uniform_over_the_stream() {
        // Over many seeds each of 100 offered items is kept with probability 10/100.
        let (n, cap, trials) = (100usize, 10usize, 2000u64);
        let mut hits = vec![0usize; n];
        for seed in 0..trials {
            let mut buf = ReservoirBuffer::new(cap, seed);
            buf.extend((0..n).map(ex));
            for e in buf.examples() {
                hits[e.input] += 1;
            }
        }
        let expected = trials as f64 * cap as f64 / n as f64; // 200
        // Binomial(2000, 0.1): sd ≈ 13.4; 5 sd bounds per item, and the first and last tenth
        // (the items an off-by-one would bias) must average close to the expectation.
        for (i, &h) in hits.iter().enumerate() {
            assert!(
                (h as f64 - expected).abs() < 5.0 * 13.42,
                "item {i} kept {h} times"
            );
        }
        let first: f64 = hits[..10].iter().sum::<usize>() as f64 / 10.0;
        let last: f64 = hits[90..].iter().sum::<usize>() as f64 / 10.0;
        assert!(
            (first - expected).abs() < 15.0 && (last - expected).abs() < 15.0,
            "{first} {last}"
        );
    }

    #[test]
    fn reservoir_is_deterministic_per_seed() {
        let mut a = ReservoirBuffer::new(5, 42);
        let mut b = ReservoirBuffer::new(5, 42);
        a.extend((0..100).map(ex));
        b.extend((0..100).map(ex));
        assert_eq!(a, b);
        let mut c = ReservoirBuffer::new(5, 43);
        c.extend((0..100).map(ex));
        assert_ne!(a, c);
    }

    #[test]
    fn sampling_with_and_without_replacement() {
        let mut buf = ReservoirBuffer::new(4, 0);
        buf.extend((0..4).map(ex));
        let mut rng = StdRng::seed_from_u64(0);
        let mut s: Vec<usize> = buf
            .sample(4, &mut rng)
            .into_iter()
            .map(|e| e.input)
            .collect();
        s.sort();
        assert_eq!(s, vec![0, 1, 2, 3], "n == len draws every item once");
        assert_eq!(buf.sample(9, &mut rng).len(), 9);
        assert!(
            ReservoirBuffer::<usize>::new(3, 0)
                .sample(2, &mut rng)
                .is_empty()
        );
    }

    #[test]
    fn fraction_memory_keeps_two_percent_per_task() {
        let mut mem = TaskFractionMemory::new(0.02, 1, 9);
        let t0: Vec<_> = (0..500).map(ex).collect();
        let t1: Vec<_> = (0..30)
            .map(|i| Example {
                input: i,
                label: i % 3,
                task: 1,
            })
            .collect();
        assert_eq!(mem.add_task(0, &t0), 10);
        assert_eq!(mem.add_task(1, &t1), 1, "at least min_per_task");
        assert_eq!(mem.count_for(0), 10);
        assert_eq!(mem.count_for(1), 1);
        let classes: std::collections::BTreeSet<_> = mem
            .examples()
            .iter()
            .filter(|e| e.task == 0)
            .map(|e| e.label)
            .collect();
        assert_eq!(classes.len(), 2, "stratified: both classes kept");
    }

    #[test]
    fn replay_config_builds_either_memory() {
        let train: Vec<_> = (0..100).map(ex).collect();
        let mut fraction = ReplayConfig::default().build::<usize>(3);
        fraction.add_task(0, &train);
        assert_eq!(fraction.examples().len(), 2);
        let reservoir_cfg = ReplayConfig {
            memory: MemoryKind::Reservoir,
            capacity: 30,
            ..ReplayConfig::default()
        };
        let mut reservoir = reservoir_cfg.build::<usize>(3);
        reservoir.add_task(0, &train);
        reservoir.add_task(1, &train);
        assert_eq!(reservoir.examples().len(), 30);
        let cfg: ReplayConfig =
            serde_json::from_str(r#"{"memory": "reservoir", "capacity": 7}"#).unwrap();
        assert_eq!(
            (cfg.memory, cfg.capacity, cfg.fraction),
            (MemoryKind::Reservoir, 7, 0.02)
        );
        let err = serde_json::from_str::<ReplayConfig>(r#"{"capasity": 7}"#).unwrap_err();
        assert!(err.to_string().contains("capasity"), "{err}");
        let bad = ReplayConfig {
            capacity: 0,
            ..reservoir_cfg
        };
        assert!(
            bad.validate("replay")
                .unwrap_err()
                .to_string()
                .contains("replay.capacity")
        );
    }
}
