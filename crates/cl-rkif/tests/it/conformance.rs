//! cl-rkif in the shared conformance suite: with the spec's cycle (K = 8, M = 4) and, because the
//! suite's tasks are only 20 steps long, with short cycles (K = 2, M = 1) so several fusions
//! happen in every task.

use cl_rkif::{Rkif, RkifConfig};

fn cfg(inner_steps: usize, outer_steps: usize) -> RkifConfig {
    RkifConfig {
        lora: cl_core::conformance::lora_config(),
        optimizer: cl_core::conformance::optimizer_config(),
        inner_steps,
        outer_steps,
        ..RkifConfig::default()
    }
}

mod spec_cycle {
    use super::*;
    cl_core::conformance_suite!(|bb, n, seed| Rkif::new(cfg(8, 4), bb, n, seed).unwrap());
}

mod short_cycle {
    use super::*;
    cl_core::conformance_suite!(|bb, n, seed| Rkif::new(cfg(2, 1), bb, n, seed).unwrap());
    cl_core::conformance_suite!(causal_lm: |model, seed| {
        Rkif::from_model(cfg(2, 1), model, seed).unwrap()
    });
}
