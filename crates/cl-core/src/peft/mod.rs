//! Parameter-efficient fine-tuning layers and task vectors.
//!
//! - [`lora`]: `LoraLinear` (a frozen `Linear` plus zero or more LoRA adapters), target selection
//!   by module-path pattern.
//! - [`adapter`]: Houlsby bottleneck adapters.
//! - [`task_vector`]: parameter deltas over module paths (extract, add, scale, apply).
//! - [`merge`]: combining task vectors (task arithmetic, TIES, DARE).
//! - [`peft_format`]: Hugging Face PEFT `adapter_model.safetensors` key names and files.

pub mod adapter;
pub mod lora;
pub mod merge;
pub mod peft_format;
pub mod task_vector;

pub use adapter::{Adapter, AdapterConfig};
pub use lora::{LoraAdapter, LoraConfig, LoraLinear, matches_target};
pub use merge::{MergeStrategy, merge_task_vectors, merge_tensors};
pub use task_vector::{ParamFilter, ParamTensor, TaskVector, param_paths};
