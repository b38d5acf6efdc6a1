//! cl-modulation in the shared conformance suite (task-incremental stream), as the method and as
//! both baselines.

use cl_core::conformance::{TestBackend, optimizer_config};
use cl_modulation::{Modulation, ModulationConfig, Resolution, TransformKind};

fn config(kind: TransformKind) -> ModulationConfig {
    ModulationConfig {
        kind,
        resolution: Resolution::Fixed([4, 4]),
        optimizer: optimizer_config(),
        ..ModulationConfig::default()
    }
}

mod modulation {
    use super::*;
    cl_core::conformance_suite!(task_incremental: |backbone, classes, seed| {
        Modulation::<TestBackend, _>::new(config(TransformKind::Modulation), backbone, classes, seed)
            .unwrap()
    });
}

mod piggyback {
    use super::*;
    cl_core::conformance_suite!(task_incremental: |backbone, classes, seed| {
        Modulation::<TestBackend, _>::new(config(TransformKind::Mask), backbone, classes, seed)
            .unwrap()
    });
}

/// `optimizer.schedule` and `optimizer.max_grad_norm` apply to the modulation family as to every
/// method: after the planned steps a linear schedule's rate is 0 (the module stops changing, so
/// the next loss on the same batch repeats), and a tiny clipping norm shrinks the first update.
#[test]
fn the_shared_schedule_and_clipping_apply() {
    use cl_core::Method;
    use cl_core::conformance::{backbone, stream};
    use cl_core::optim::Schedule;
    use cl_core::stream::Scenario;

    let stream = stream(Scenario::TaskIncremental);
    let task = &stream.tasks()[0];
    let batch = &task.train[..16];
    let losses = |schedule: Schedule, max_grad_norm: Option<f64>| {
        let mut cfg = config(TransformKind::Modulation);
        cfg.optimizer.schedule = schedule;
        cfg.optimizer.max_grad_norm = max_grad_norm;
        let mut m =
            Modulation::<TestBackend, _>::new(cfg, backbone(), stream.num_classes(), 0).unwrap();
        m.plan_steps(1);
        m.begin_task(&task.info, &task.train).unwrap();
        (0..3)
            .map(|_| m.train_step(batch).unwrap().loss)
            .collect::<Vec<_>>()
    };
    let constant = losses(Schedule::Constant, None);
    let decayed = losses(Schedule::Linear { warmup_steps: 0 }, None);
    assert_eq!(
        constant[..2],
        decayed[..2],
        "the first step runs at the full rate"
    );
    assert_eq!(decayed[1], decayed[2], "rate 0 after the planned step");
    assert_ne!(constant[1], constant[2], "a constant rate keeps learning");
    let clipped = losses(Schedule::Constant, Some(1e-9));
    assert!(
        (clipped[1] - clipped[0]).abs() < 0.1 * (constant[1] - constant[0]).abs(),
        "clipping to 1e-9 shrinks the first update: {clipped:?} vs {constant:?}"
    );
}
