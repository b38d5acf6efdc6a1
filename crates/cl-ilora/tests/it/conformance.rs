//! cl-ilora in the shared conformance suite, with the official script's EMA schedule (capped,
//! α = 0.25: the configs' choice) and in the no-slow-learner ablation.
//!
//! The default α = 0.999 is not run here: the suite trains 20 steps a task, and a slow learner
//! with a time constant of 1000 steps stays near its initialisation (task 0 scores 31% right after
//! training, chance 17%), which is the schedule working as specified, not a defect.

use cl_ilora::{EmaConfig, EmaSchedule, ILora, ILoraConfig};

fn cfg(slow_learner: bool) -> ILoraConfig {
    ILoraConfig {
        lora: cl_core::conformance::lora_config(),
        optimizer: cl_core::conformance::optimizer_config(),
        slow_learner,
        ema: EmaConfig {
            schedule: EmaSchedule::Capped,
            alpha: 0.25,
        },
        ..ILoraConfig::default()
    }
}

mod ilora {
    use super::*;
    cl_core::conformance_suite!(|bb, n, seed| ILora::new(cfg(true), bb, n, seed).unwrap());
    cl_core::conformance_suite!(causal_lm: |model, seed| {
        ILora::from_model(cfg(true), model, seed).unwrap()
    });
}

mod no_slow_learner {
    use super::*;
    cl_core::conformance_suite!(|bb, n, seed| ILora::new(cfg(false), bb, n, seed).unwrap());
}
