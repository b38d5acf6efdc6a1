//! `cl-core`: what every continual-learning method of cl-peft shares.
//!
//! - [`backbone`]: frozen backbones whose linear layers accept LoRA adapters.
//! - [`peft`]: LoRA, Houlsby adapters, task vectors.
//! - [`stream`]: task streams, seeded batching, replay memories.
//! - [`method`]: the [`Method`] trait and [`EvalContext`].
//! - [`learner`]: the classifier, optimiser, step and checkpoint the LoRA-family methods share.
//! - [`baselines`]: SeqLoRA, IncLoRA, LoRAReplay, MTL.
//! - [`runner`]: the one training / evaluation loop, reports and checkpoints.
//! - [`registry`]: method plugins ([`registry::MethodEntry`]) and the backbones they build on.
//! - [`metrics`]: the accuracy matrix, OP, BWT, FWT, forgetting.
//!
//! Library code is backend-generic (`B: Backend` / `B: AutodiffBackend`); only binaries, tests and
//! benches choose a backend.

pub mod backbone;
pub mod baselines;
pub mod checkpoint;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod error;
pub mod learner;
pub mod method;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod params;
pub mod peft;
pub mod registry;
pub mod runner;
pub mod stream;
pub mod text_metrics;
pub mod weights;

pub use error::{ClError, Result};
pub use method::{EvalContext, Method, ParamCounts, StepStats};
pub use metrics::{AccuracyMatrix, Protocol};
pub use runner::{RunConfig, RunReport, run};
