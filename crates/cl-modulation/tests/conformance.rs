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
