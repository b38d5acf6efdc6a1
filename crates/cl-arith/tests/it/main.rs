//! Every integration test of this crate in one binary (one link of the Burn stack instead of one per
//! file).

mod adapters;
mod conformance;
mod merging;
