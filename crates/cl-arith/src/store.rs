//! Task vectors on disk: `init.safetensors` (the shared initialisation of the module), one
//! `task-<t>.safetensors` per finished task (its τ_t, tensor names = parameter paths), and
//! `manifest.json` saying which file is which task and how they are merged.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use cl_core::checkpoint::{read_json, write_json};
use cl_core::peft::peft_format::{read_safetensors, write_safetensors};
use cl_core::peft::{AdapterConfig, LoraConfig, MergeStrategy, ParamTensor, TaskVector};
use cl_core::{ClError, Result};
use serde::{Deserialize, Serialize};

use crate::config::{InitFrom, MergeLevel, ModuleKind};

/// The manifest's name.
pub const MANIFEST: &str = "manifest.json";
const INIT_FILE: &str = "init.safetensors";

/// One stored task vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTask {
    /// Task id (position in the stream).
    pub id: usize,
    /// Task name.
    pub name: String,
    /// Its global classes (its head columns).
    pub classes: Vec<usize>,
    /// File name, relative to the manifest.
    pub file: String,
    /// Number of values.
    pub num_elements: usize,
    /// ‖τ_t‖₂.
    pub l2_norm: f64,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// LoRA or adapters.
    pub module: ModuleKind,
    /// LoRA shape of every task (when `module` is `lora`).
    pub lora: LoraConfig,
    /// Adapter size (when `module` is `adapter`).
    pub adapter: AdapterConfig,
    /// Where each task started.
    pub init: InitFrom,
    /// The shared initialisation file.
    pub init_file: String,
    /// Merge level.
    pub level: MergeLevel,
    /// Merge strategy.
    pub strategy: MergeStrategy,
    /// The λ_t used for the current merged model.
    pub lambdas: Vec<f64>,
    /// The finished tasks in order.
    pub tasks: Vec<StoredTask>,
}

fn to_named<B: Backend>(v: &TaskVector<B>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    v.entries()
        .iter()
        .map(|(path, p)| {
            let values = p
                .value
                .clone()
                .into_data()
                .convert::<f32>()
                .to_vec()
                .expect("f32");
            (path.clone(), p.shape.clone(), values)
        })
        .collect()
}

fn from_file<B: Backend>(path: &Path, device: &B::Device) -> Result<TaskVector<B>> {
    let mut entries = BTreeMap::new();
    for (name, shape, values) in read_safetensors(path)? {
        let numel = values.len();
        if shape.iter().product::<usize>() != numel {
            return Err(ClError::Record {
                path: path.to_path_buf(),
                reason: format!("tensor `{name}` has {numel} values for shape {shape:?}"),
            });
        }
        entries.insert(
            name,
            ParamTensor {
                value: Tensor::from_data(TensorData::new(values, [numel]), device),
                shape,
            },
        );
    }
    Ok(TaskVector::from_entries(entries))
}

/// Writes the manifest, the initialisation and every task vector into `dir`. `manifest.tasks`
/// must list `vectors` in order (its `file`, `num_elements` and `l2_norm` are filled here).
pub fn save<B: Backend>(
    dir: &Path,
    mut manifest: Manifest,
    init: &TaskVector<B>,
    vectors: &[TaskVector<B>],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ClError::io("creating", dir, e))?;
    if manifest.tasks.len() != vectors.len() {
        return Err(ClError::config(
            "manifest.tasks",
            format!(
                "{} tasks for {} task vectors",
                manifest.tasks.len(),
                vectors.len()
            ),
        ));
    }
    manifest.init_file = INIT_FILE.into();
    write_safetensors(&dir.join(INIT_FILE), &to_named(init), None)?;
    for (task, tau) in manifest.tasks.iter_mut().zip(vectors) {
        task.file = format!("task-{}.safetensors", task.id);
        task.num_elements = tau.num_elements();
        task.l2_norm = tau.l2_norm();
        write_safetensors(&dir.join(&task.file), &to_named(tau), None)?;
    }
    write_json(&dir.join(MANIFEST), &manifest)
}

/// Reads what [`save`] wrote: the manifest, the initialisation and the task vectors in order.
/// Every task file must have the initialisation's paths and shapes.
pub fn load<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(Manifest, TaskVector<B>, Vec<TaskVector<B>>)> {
    let manifest: Manifest = read_json(&dir.join(MANIFEST))?;
    let init = from_file::<B>(&dir.join(&manifest.init_file), device)?;
    let mut vectors = Vec::with_capacity(manifest.tasks.len());
    for task in &manifest.tasks {
        let path = dir.join(&task.file);
        let tau = from_file::<B>(&path, device)?;
        for (name, p) in init.entries() {
            let other = tau
                .entries()
                .get(name)
                .ok_or_else(|| ClError::MissingTensor {
                    tensor: name.clone(),
                    context: format!(" in `{}`", path.display()),
                })?;
            if other.shape != p.shape {
                return Err(ClError::ShapeMismatch {
                    tensor: format!("{name} (in `{}`)", path.display()),
                    expected: p.shape.clone(),
                    actual: other.shape.clone(),
                });
            }
        }
        vectors.push(tau);
    }
    Ok((manifest, init, vectors))
}
