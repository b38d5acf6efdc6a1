//! cl-arith in the shared conformance suite (one line), in both merge levels.

use cl_arith::{Arith, ArithConfig, MergeLevel};

fn cfg(level: MergeLevel) -> ArithConfig {
    ArithConfig {
        lora: cl_core::conformance::lora_config(),
        optimizer: cl_core::conformance::optimizer_config(),
        level,
        ..ArithConfig::default()
    }
}

mod delta_w {
    use super::*;
    cl_core::conformance_suite!(
        |bb, n, seed| Arith::new(cfg(MergeLevel::DeltaW), bb, n, seed).unwrap()
    );
    cl_core::conformance_suite!(causal_lm: |model, seed| {
        Arith::from_model(cfg(MergeLevel::DeltaW), model, seed).unwrap()
    });
}

/// Factor-space merging is a variant, not the method: it runs every property but
/// `learns_every_task`, which it fails by design on the synthetic stream (after merging two
/// tasks' factors, task 2 scores 26.6% in the class-incremental scenario: the cross terms
/// `A_1·B_2` of the merged product are noise; methods.md's "merge level matters").
mod factors {
    use super::*;

    fn make(
        bb: cl_core::backbone::MlpBackbone<cl_core::conformance::TestBackend>,
        n: usize,
        seed: u64,
    ) -> Arith<
        cl_core::conformance::TestBackend,
        cl_core::model::PeftClassifier<
            cl_core::conformance::TestBackend,
            cl_core::backbone::MlpBackbone<cl_core::conformance::TestBackend>,
        >,
    > {
        Arith::new(cfg(MergeLevel::Factors), bb, n, seed).unwrap()
    }

    #[test]
    fn backbone_stays_frozen() {
        cl_core::conformance::backbone_stays_frozen(make);
    }

    #[test]
    fn deterministic() {
        cl_core::conformance::deterministic(make);
    }

    #[test]
    fn resume_matches_uninterrupted() {
        cl_core::conformance::resume_matches_uninterrupted(make);
    }

    #[test]
    fn non_finite_loss_stops_the_run() {
        cl_core::conformance::non_finite_loss_stops_the_run(make);
    }
}
