//! Every integration test of this crate in one binary (one link of the Burn stack instead of one per file).

mod baselines_synthetic;
mod conformance_baselines;
mod images;
mod minilm;
mod mobilenet;
mod peft_format;
mod smollm;
mod smollm_lora;
mod text_smoke;
mod vendored_ops;
mod vision_smoke;
