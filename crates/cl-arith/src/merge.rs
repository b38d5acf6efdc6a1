//! Building the single merged model from the finished tasks' vectors.
//!
//! Task vectors live over the classifier's LoRA parameter paths
//! (`backbone.<layer>.adapters.0.lora_a` `[d_in, r]`, `….lora_b` `[r, d_out]`). The merged model
//! is the training template (frozen backbone, one adapter per targeted layer, the head) with:
//! - [`MergeLevel::Factors`]: the adapter set to `θ_init + merge(τ_1..τ_T)`;
//! - [`MergeLevel::DeltaW`]: no adapter; every adapted layer's frozen weight `W` replaced by
//!   `W + merge(ΔW_1..ΔW_T)` with `ΔW_t = (α/r)·(A·B)(after t) − (α/r)·(A·B)(before t)`.
//!
//! The head is not merged: each task trains only its own class columns (its loss is restricted
//! to them), so the head after the last task holds every task's columns as trained.

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use cl_core::backbone::Backbone;
use cl_core::model::TaskModel;
use cl_core::peft::{MergeStrategy, ParamTensor, TaskVector, merge_task_vectors};
use cl_core::{ClError, Result};

use crate::config::{InitFrom, MergeLevel};

/// The parameter path of the first adapter's factor `factor` (`lora_a` / `lora_b`) of layer `layer`.
pub fn factor_path(layer: &str, factor: &str) -> String {
    format!("backbone.{layer}.adapters.0.{factor}")
}

/// Module states before and after each task: `θ_init + τ_t` (isolation) or the running sum.
pub fn module_states<B: Backend>(
    init: &TaskVector<B>,
    vectors: &[TaskVector<B>],
    init_from: InitFrom,
) -> Result<Vec<(TaskVector<B>, TaskVector<B>)>> {
    let mut out = Vec::with_capacity(vectors.len());
    let mut before = init.clone();
    for tau in vectors {
        let after = before.add(tau)?;
        out.push((before.clone(), after.clone()));
        before = match init_from {
            InitFrom::Pretrained => init.clone(),
            InitFrom::PreviousTask => after,
        };
    }
    Ok(out)
}

fn entry<'a, B: Backend>(v: &'a TaskVector<B>, path: &str) -> Result<&'a ParamTensor<B>> {
    v.entries().get(path).ok_or_else(|| ClError::MissingTensor {
        tensor: path.to_string(),
        context: " in a cl-arith task vector".into(),
    })
}

/// `(α/r)·A·B` of one layer in one state: `[d_in, d_out]`.
fn delta_w<B: Backend>(state: &TaskVector<B>, layer: &str, scaling: f64) -> Result<Tensor<B, 2>> {
    let a = entry(state, &factor_path(layer, "lora_a"))?;
    let b = entry(state, &factor_path(layer, "lora_b"))?;
    let a = a.value.clone().reshape([a.shape[0], a.shape[1]]);
    let b = b.value.clone().reshape([b.shape[0], b.shape[1]]);
    Ok(a.matmul(b).mul_scalar(scaling))
}

/// The per-task weight updates `ΔW_t` keyed by layer path, flattened.
pub fn delta_w_vectors<B: Backend, M: TaskModel<B>>(
    template: &M,
    init: &TaskVector<B>,
    vectors: &[TaskVector<B>],
    init_from: InitFrom,
) -> Result<Vec<TaskVector<B>>> {
    let layers: Vec<(String, f64, [usize; 2])> = template
        .backbone()
        .lora_layers()
        .into_iter()
        .filter_map(|(path, l)| l.adapters.first().map(|a| (path, a.scaling, l.dims())))
        .collect();
    module_states(init, vectors, init_from)?
        .iter()
        .map(|(before, after)| {
            let mut entries = BTreeMap::new();
            for (layer, scaling, [d_in, d_out]) in &layers {
                let d = delta_w(after, layer, *scaling)? - delta_w(before, layer, *scaling)?;
                entries.insert(
                    layer.clone(),
                    ParamTensor {
                        value: d.reshape([d_in * d_out]),
                        shape: vec![*d_in, *d_out],
                    },
                );
            }
            Ok(TaskVector::from_entries(entries))
        })
        .collect()
}

/// The task vectors at the merge level: `τ_t` themselves ([`MergeLevel::Factors`]) or the
/// per-layer `ΔW_t` ([`MergeLevel::DeltaW`]). They do not depend on λ, so a search over λ
/// computes them once and calls [`combine`] per candidate.
pub fn level_vectors<B: Backend, M: TaskModel<B>>(
    template: &M,
    init: &TaskVector<B>,
    vectors: &[TaskVector<B>],
    init_from: InitFrom,
    level: MergeLevel,
) -> Result<Vec<TaskVector<B>>> {
    match level {
        MergeLevel::Factors => Ok(vectors.to_vec()),
        MergeLevel::DeltaW => delta_w_vectors(template, init, vectors, init_from),
    }
}

/// Merges [`level_vectors`] with weights `weights` and applies the result to `template`.
pub fn combine<B: Backend, M: TaskModel<B>>(
    template: M,
    init: &TaskVector<B>,
    level_vectors: &[TaskVector<B>],
    weights: &[f64],
    level: MergeLevel,
    strategy: &MergeStrategy,
) -> Result<M> {
    let merged = merge_task_vectors(level_vectors, weights, strategy)?;
    match level {
        MergeLevel::Factors => init.add(&merged)?.assign(template),
        MergeLevel::DeltaW => fold_into_weights(template, &merged),
    }
}

/// The merged classifier (see the module docs). `weights` has one λ per task vector.
pub fn merged_classifier<B: Backend, M: TaskModel<B>>(
    template: M,
    init: &TaskVector<B>,
    vectors: &[TaskVector<B>],
    init_from: InitFrom,
    weights: &[f64],
    level: MergeLevel,
    strategy: &MergeStrategy,
) -> Result<M> {
    let at_level = level_vectors(&template, init, vectors, init_from, level)?;
    combine(template, init, &at_level, weights, level, strategy)
}

/// Adds each layer's merged `ΔW` to its frozen weight and removes the adapters.
pub fn fold_into_weights<B: Backend, M: TaskModel<B>>(
    mut model: M,
    deltas: &TaskVector<B>,
) -> Result<M> {
    for (path, layer) in model.backbone_mut().lora_layers_mut() {
        let Some(d) = deltas.entries().get(&path) else {
            continue;
        };
        let [d_in, d_out] = layer.dims();
        if d.shape != [d_in, d_out] {
            return Err(ClError::ShapeMismatch {
                tensor: format!("merged ΔW of `{path}`"),
                expected: vec![d_in, d_out],
                actual: d.shape.clone(),
            });
        }
        let delta = d.value.clone().reshape([d_in, d_out]);
        layer.adapters.clear();
        layer.base.weight = layer.base.weight.clone().map(|w| (w + delta).detach());
    }
    Ok(model)
}
