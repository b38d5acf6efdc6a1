//! Every integration test of this crate in one binary (one link of the Burn stack instead of one per
//! file), except `tests/adapters.rs` (its own binary: it depends on the global backend RNG).

mod conformance;
mod merging;
