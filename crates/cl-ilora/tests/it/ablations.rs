//! I-LoRA's pieces on the synthetic stream: the no-slow-learner ablation is exactly LoRAReplay
//! with the same buffer, the EMA coefficient bounds what the slow learner does, a consistency
//! layer the backbone lacks is a config error, and the exported adapter is the slow learner's.

use burn::module::AutodiffModule;
use cl_core::Method;
use cl_core::backbone::MlpBackbone;
use cl_core::baselines::{Baseline, BaselineConfig, LoraBaseline};
use cl_core::conformance::{
    TestBackend, backbone, lora_config, optimizer_config, run_config, stream,
};
use cl_core::peft::peft_format::read_safetensors;
use cl_core::peft::{ParamFilter, TaskVector};
use cl_core::run;
use cl_core::stream::Scenario;
use cl_core::stream::replay::{MemoryKind, ReplayConfig, ReplayFeed};
use cl_ilora::{ConsistencyConfig, EmaConfig, EmaSchedule, ILora, ILoraConfig, LayerChoice};

fn buffer() -> ReplayConfig {
    ReplayConfig {
        memory: MemoryKind::Reservoir,
        capacity: 24,
        ..ReplayConfig::default()
    }
}

fn ilora_cfg(alpha: f64, schedule: EmaSchedule) -> ILoraConfig {
    ILoraConfig {
        lora: lora_config(),
        optimizer: optimizer_config(),
        replay: buffer(),
        ema: EmaConfig { schedule, alpha },
        ..ILoraConfig::default()
    }
}

#[test]
fn without_the_slow_learner_it_is_lora_replay_with_the_same_buffer() {
    let stream = stream(Scenario::ClassIncremental);
    let classes = stream.num_classes();
    let cfg = run_config(0);
    // Both feeds: the official every-step reservoir (I-LoRA's default) and past tasks only.
    for feed in [ReplayFeed::EveryStep, ReplayFeed::EndOfTask] {
        let replay = ReplayConfig { feed, ..buffer() };
        let mut ablation = ILora::new(
            ILoraConfig {
                slow_learner: false,
                replay: replay.clone(),
                ..ilora_cfg(0.25, EmaSchedule::Capped)
            },
            backbone(),
            classes,
            0,
        )
        .unwrap();
        let a = run(&mut ablation, &stream, &cfg, &Default::default()).unwrap();
        let replay_cfg = BaselineConfig {
            lora: lora_config(),
            optimizer: optimizer_config(),
            replay,
            ..BaselineConfig::default()
        };
        let mut baseline =
            LoraBaseline::new(Baseline::LoraReplay, replay_cfg, backbone(), classes, 0).unwrap();
        let r = run(&mut baseline, &stream, &cfg, &Default::default()).unwrap();
        assert_eq!(a.matrix, r.matrix, "{feed:?}");
        assert_eq!(ablation.param_counts().stored_examples, 24, "{feed:?}");
    }
}

#[test]
fn alpha_one_freezes_the_slow_learner_and_alpha_zero_makes_it_the_fast_one() {
    let stream = stream(Scenario::ClassIncremental);
    let classes = stream.num_classes();
    let frozen = {
        let mut m = ILora::new(
            ilora_cfg(1.0, EmaSchedule::Constant),
            backbone(),
            classes,
            0,
        )
        .unwrap();
        run(&mut m, &stream, &run_config(0), &Default::default()).unwrap();
        m
    };
    // α = 1: the slow LoRA B factors stay at their zero initialisation.
    let slow = TaskVector::snapshot(frozen.slow().unwrap(), &ParamFilter::Lora);
    let b_max = slow
        .entries()
        .iter()
        .filter(|(p, _)| p.ends_with("lora_b"))
        .map(|(_, t)| t.value.clone().abs().max().into_scalar())
        .fold(0f32, f32::max);
    assert_eq!(b_max, 0.0);
    let fast = TaskVector::snapshot(frozen.fast(), &ParamFilter::Lora);
    assert!(fast.l2_norm() > slow.l2_norm(), "the fast learner trained");

    let mut copy = ILora::new(
        ilora_cfg(0.0, EmaSchedule::Constant),
        backbone(),
        classes,
        0,
    )
    .unwrap();
    run(&mut copy, &stream, &run_config(0), &Default::default()).unwrap();
    let fast = TaskVector::snapshot(&copy.fast().valid(), &ParamFilter::All);
    let slow = TaskVector::snapshot(copy.slow().unwrap(), &ParamFilter::All);
    assert_eq!(fast.sub(&slow).unwrap().l2_norm(), 0.0);
}

#[test]
fn consistency_layer_the_backbone_lacks_is_a_config_error() {
    let cfg = ILoraConfig {
        consistency: ConsistencyConfig {
            weight: 1.0,
            layers: LayerChoice::Indices(vec![5]),
        },
        ..ilora_cfg(0.25, EmaSchedule::Capped)
    };
    let err = ILora::<TestBackend, _>::new(cfg, backbone(), 6, 0)
        .err()
        .expect("the MLP has 2 hidden states")
        .to_string();
    assert!(
        err.contains("consistency.layers") && err.contains("has 2"),
        "{err}"
    );
    // -2 (the first layer's output) and 0 both resolve.
    let cfg = ILoraConfig {
        consistency: ConsistencyConfig {
            weight: 1.0,
            layers: LayerChoice::Indices(vec![0, -1]),
        },
        ..ilora_cfg(0.25, EmaSchedule::Capped)
    };
    assert!(ILora::<TestBackend, _>::new(cfg, backbone(), 6, 0).is_ok());
}

#[test]
fn consistency_changes_training_and_export_is_the_slow_learner() {
    let stream = stream(Scenario::ClassIncremental);
    let classes = stream.num_classes();
    let mut runs = Vec::new();
    for weight in [0.0, 1.0] {
        let cfg = ILoraConfig {
            consistency: ConsistencyConfig {
                weight,
                layers: LayerChoice::Indices(vec![0, -1]),
            },
            ..ilora_cfg(0.5, EmaSchedule::Constant)
        };
        let mut m = ILora::new(cfg, backbone(), classes, 0).unwrap();
        run(&mut m, &stream, &run_config(0), &Default::default()).unwrap();
        runs.push(m);
    }
    type Classifier = cl_core::model::PeftClassifier<TestBackend, MlpBackbone<TestBackend>>;
    let lora = |m: &ILora<TestBackend, Classifier>| {
        TaskVector::snapshot(&m.fast().valid(), &ParamFilter::Lora)
    };
    let gap = lora(&runs[0]).sub(&lora(&runs[1])).unwrap().l2_norm();
    assert!(gap > 1e-4, "γ = 1 must change the trained LoRA (gap {gap})");

    let dir = tempfile::tempdir().unwrap();
    let m = &runs[1];
    assert_eq!(m.export_peft("mlp", dir.path()).unwrap(), 2);
    let tensors = read_safetensors(&dir.path().join("adapter_model.safetensors")).unwrap();
    let slow_a = m.slow().unwrap().backbone.layers[0].adapters[0]
        .lora_a
        .val()
        .transpose()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let exported = tensors
        .iter()
        .find(|t| t.0.ends_with("layers.0.lora_A.weight"))
        .expect("layer 0's A");
    assert_eq!(exported.2, slow_a);
    let fast_a = m.fast().valid().backbone.layers[0].adapters[0]
        .lora_a
        .val()
        .transpose()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert_ne!(exported.2, fast_a, "α = 0.5: the learners differ");
}
