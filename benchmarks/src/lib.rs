//! Criterion benches live in `benches/`; this library holds what several of them build: a
//! MiniLM-shaped encoder and synthetic token batches (costs depend on shapes, not on values).

use burn::tensor::backend::{AutodiffBackend, Backend};
use cl_core::Method;
use cl_core::backbone::{BertConfig, BertEncoder};
use cl_core::baselines::OptimizerConfig;
use cl_core::stream::{Example, Scenario, TaskInfo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The shape of all-MiniLM-L6-v2: 6 layers, d = 384, 12 heads, FFN 1536, 30522 tokens.
pub fn minilm_config() -> BertConfig {
    BertConfig {
        vocab_size: 30522,
        hidden_size: 384,
        num_hidden_layers: 6,
        num_attention_heads: 12,
        intermediate_size: 1536,
        max_position_embeddings: 512,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        hidden_act: "gelu".into(),
    }
}

/// A MiniLM-shaped encoder with random (frozen) weights.
pub fn minilm<B: Backend>() -> BertEncoder<B> {
    minilm_config()
        .init::<B>(&Default::default())
        .expect("MiniLM shape")
}

/// `n` texts of task `task` (24–64 random tokens between [CLS] and [SEP]), 4 classes a task.
pub fn texts(n: usize, task: usize, seed: u64) -> Vec<Example<Vec<u32>>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let len = rng.random_range(24..=64);
            let mut ids: Vec<u32> = (0..len).map(|_| rng.random_range(1000..30000)).collect();
            ids[0] = 101;
            ids[len - 1] = 102;
            Example {
                input: ids,
                label: task * 4 + i % 4,
                task,
            }
        })
        .collect()
}

/// Task `id` of a class-incremental stream with 4 classes a task.
pub fn task(id: usize) -> TaskInfo {
    TaskInfo {
        id,
        name: format!("task{id}"),
        classes: (id * 4..id * 4 + 4).collect(),
        scenario: Scenario::ClassIncremental,
        num_train: 64,
        labels: Vec::new(),
    }
}

/// AdamW, lr 5e-3, no weight decay (the text runs' setting).
pub fn optimizer() -> OptimizerConfig {
    OptimizerConfig {
        lr: 5e-3,
        ..OptimizerConfig::default()
    }
}

/// `method` after finishing task 0 (64 texts, so its memory is filled) and beginning task 1.
pub fn after_first_task<B: AutodiffBackend, T: Method<B, Input = Vec<u32>>>(mut method: T) -> T {
    let first = texts(64, 0, 1);
    method.begin_task(&task(0), &first).expect("task 0 begins");
    method.end_task(&task(0), &first).expect("task 0 ends");
    method.begin_task(&task(1), &[]).expect("task 1 begins");
    method
}
