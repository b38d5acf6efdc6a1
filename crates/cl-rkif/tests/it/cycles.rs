//! Recurrent-KIF's cycle on the synthetic stream: how many cycles and fusions happen, the share
//! of elements the masks select, the static-importance ablation, and that the fusion rules
//! change the result.

use cl_core::conformance::{backbone, lora_config, optimizer_config, run_config, stream};
use cl_core::peft::{ParamFilter, TaskVector};
use cl_core::run;
use cl_core::stream::Scenario;
use cl_rkif::config::{OuterScores, QuantileScope};
use cl_rkif::{FusionRule, Rkif, RkifConfig};

fn cfg() -> RkifConfig {
    RkifConfig {
        lora: lora_config(),
        optimizer: optimizer_config(),
        inner_steps: 3,
        outer_steps: 2,
        ..RkifConfig::default()
    }
}

type B = cl_core::conformance::TestBackend;

fn trained(
    cfg: RkifConfig,
) -> Rkif<B, cl_core::model::PeftClassifier<B, cl_core::backbone::MlpBackbone<B>>> {
    let stream = stream(Scenario::ClassIncremental);
    let mut m = Rkif::new(cfg, backbone(), stream.num_classes(), 0).unwrap();
    run(&mut m, &stream, &run_config(0), &Default::default()).unwrap();
    m
}

#[test]
fn cycles_fusions_and_mask_shares() {
    // Synthetic stream: 3 tasks, 5 epochs of 6 batches = 30 steps a task; K = 3: 10 cycles a
    // task.
    let m = trained(cfg());
    assert_eq!(m.cycles(), 30);
    // The outer loop runs in the cycles of tasks 2 and 3 only (task 1 has no memory), and the
    // outer scores restart with every task: the last task's 10 cycles × M.
    assert_eq!(m.outer_updates(), 20);
    let kept = trained(RkifConfig {
        outer_scores: OuterScores::AcrossTasks,
        ..cfg()
    });
    // Kept for the run: 20 cycles × M.
    assert_eq!(kept.outer_updates(), 40);
    let [inner_only, outer_only, both, neither] = m.last_mask_shares().expect("fused");
    let total = inner_only + outer_only + both + neither;
    assert!((total - 1.0).abs() < 1e-9, "{total}");
    // Scores above q: at most 20% of the 2N inner and outer scores, i.e. 0.4 per parameter.
    let selected = inner_only + outer_only + 2.0 * both;
    assert!(selected <= 0.4 + 1e-9 && selected > 0.3, "{selected}");
    assert!(
        inner_only > 0.0 && outer_only > 0.0,
        "{inner_only} {outer_only}"
    );
}

#[test]
fn static_importance_estimates_the_outer_scores_once_per_task() {
    let m = trained(RkifConfig {
        static_importance: true,
        ..cfg()
    });
    // Re-estimated only in the first cycle of tasks 2 and 3: 2 × M updates in each, and the
    // counter restarts at each estimate.
    assert_eq!(m.outer_updates(), 2);
    assert_eq!(m.cycles(), 30);
}

#[test]
fn fusion_rules_give_different_models() {
    let lora = |m: &Rkif<_, _>| TaskVector::snapshot(m.model(), &ParamFilter::Trainable);
    let masks = lora(&trained(cfg()));
    for rule in [
        FusionRule::Average,
        FusionRule::Global,
        FusionRule::Soft,
        FusionRule::Adaptive,
    ] {
        let other = lora(&trained(RkifConfig {
            fusion: rule,
            ..cfg()
        }));
        let gap = masks.sub(&other).unwrap().l2_norm();
        assert!(gap > 1e-4, "{rule:?} equals the mask rule (gap {gap})");
    }
    let no_share = lora(&trained(RkifConfig {
        update_shared: false,
        ..cfg()
    }));
    assert!(masks.sub(&no_share).unwrap().l2_norm() > 1e-4);
}

#[test]
fn bias_correction_lets_the_current_task_own_elements() {
    let share = |bias_correction: bool, quantile: QuantileScope| {
        trained(RkifConfig {
            bias_correction,
            quantile,
            outer_scores: OuterScores::AcrossTasks,
            ..cfg()
        })
        .last_mask_shares()
        .expect("fused")[0]
    };
    // One joint threshold: uncorrected inner scores (restarted every cycle) lose to the outer
    // ones, and the correction gives the current task its elements back.
    let (raw, corrected) = (
        share(false, QuantileScope::Joint),
        share(true, QuantileScope::Joint),
    );
    assert!(
        corrected > raw,
        "inner-only share {corrected} vs {raw} uncorrected"
    );
    // One threshold per loop (the default): scaling a loop's scores changes nothing.
    assert_eq!(
        share(false, QuantileScope::PerLoop),
        share(true, QuantileScope::PerLoop)
    );
}
