//! The one error type of `cl-core`. Every variant names the file, tensor, field or task at fault.

use std::path::PathBuf;

/// Errors raised by `cl-core` and by method crates built on it.
#[derive(Debug, thiserror::Error)]
pub enum ClError {
    /// Reading or writing a file failed.
    #[error("{action} `{path}`: {source}")]
    Io {
        /// What was being done (e.g. "reading checkpoint").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (config, report, manifest) could not be parsed or written.
    #[error("JSON in `{path}`: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying cause (includes unknown keys for `deny_unknown_fields` configs).
        #[source]
        source: serde_json::Error,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid config field `{field}`: {reason}")]
    InvalidConfig {
        /// Dotted field name, e.g. `lora.rank`.
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A tensor has a shape other than the one expected.
    #[error("tensor `{tensor}` has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Parameter path or tensor name.
        tensor: String,
        /// Expected dims.
        expected: Vec<usize>,
        /// Actual dims.
        actual: Vec<usize>,
    },
    /// A tensor expected by a loader or task vector is absent.
    #[error("tensor `{tensor}` is missing{context}")]
    MissingTensor {
        /// Parameter path or tensor name.
        tensor: String,
        /// Where it was looked for (e.g. " in `model.safetensors`").
        context: String,
    },
    /// A task of a stream cannot be trained or evaluated.
    #[error("task {task} (`{name}`) is invalid: {reason}")]
    InvalidTask {
        /// Task index in the stream.
        task: usize,
        /// Task name.
        name: String,
        /// What is wrong (empty split, a single class, label outside its label space...).
        reason: String,
    },
    /// The training loss became NaN or infinite: the run stops rather than train on garbage.
    #[error(
        "non-finite loss {loss} at task {task}, step {step} (method `{method}`); {}",
        if *.before_any_update {
            "nothing has been trained yet, so the input data or the model's weights hold NaN or infinite values: check them"
        } else {
            "training diverged: lower the learning rate, or check the data of this task"
        }
    )]
    NonFiniteLoss {
        /// `true` when no parameter had been updated yet in this run (the first step of the
        /// first task): the cause is then the data or the weights, not the learning rate.
        before_any_update: bool,
        /// Method name.
        method: String,
        /// Task index.
        task: usize,
        /// Optimiser step within the task.
        step: usize,
        /// The loss value.
        loss: f64,
    },
    /// A checkpoint does not belong to this run (other method, stream, seed or config).
    #[error("checkpoint `{path}` does not match this run: {reason}")]
    CheckpointMismatch {
        /// The checkpoint directory.
        path: PathBuf,
        /// Which field differs.
        reason: String,
    },
    /// A method cannot run in the requested setting (scenario, backbone).
    #[error("{reason}")]
    Unsupported {
        /// What is not supported and what to do instead.
        reason: String,
    },
    /// A run's output directory cannot be used.
    #[error("output directory `{path}`: {reason}")]
    OutputDir {
        /// The directory.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// A tokenizer file could not be loaded or applied.
    #[error("tokenizer `{path}`: {reason}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A GGUF model file could not be read (the message names the file, key or tensor).
    #[error(transparent)]
    Gguf(#[from] cl_gguf::GgufError),
    /// Burn's recorder failed to save or load a module record.
    #[error("module record `{path}`: {reason}")]
    Record {
        /// The file.
        path: PathBuf,
        /// Burn's message.
        reason: String,
    },
}

/// Result alias for `cl-core`.
pub type Result<T, E = ClError> = std::result::Result<T, E>;

impl ClError {
    /// Shorthand for [`ClError::InvalidConfig`].
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ClError::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`ClError::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ClError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
