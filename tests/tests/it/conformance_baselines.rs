//! Every baseline plugged into the shared conformance suite, on the classifier and on the
//! causal language model (one line each).

use cl_core::baselines::{Baseline, BaselineConfig, EwcConfig, LoraBaseline};

/// Settings that learn the synthetic stream in a few steps (EWC's λ scaled to the tiny MLP,
/// whose gradients, and so Fisher, are far larger than MiniLM's: the default 1e6 would freeze it).
fn cfg() -> BaselineConfig {
    BaselineConfig {
        lora: cl_core::conformance::lora_config(),
        optimizer: cl_core::conformance::optimizer_config(),
        ewc: EwcConfig {
            lambda: 1e4,
            ..EwcConfig::default()
        },
        ..BaselineConfig::default()
    }
}

mod seq_lora {
    use super::*;
    cl_core::conformance_suite!(|bb, n, seed| LoraBaseline::new(
        Baseline::SeqLora,
        cfg(),
        bb,
        n,
        seed
    )
    .unwrap());
    cl_core::conformance_suite!(causal_lm: |model, seed| {
        LoraBaseline::from_model(Baseline::SeqLora, cfg(), model, seed).unwrap()
    });
}

mod inc_lora {
    use super::*;
    cl_core::conformance_suite!(|bb, n, seed| LoraBaseline::new(
        Baseline::IncLora,
        cfg(),
        bb,
        n,
        seed
    )
    .unwrap());
    cl_core::conformance_suite!(causal_lm: |model, seed| {
        LoraBaseline::from_model(Baseline::IncLora, cfg(), model, seed).unwrap()
    });
}

mod lora_replay {
    use super::*;
    cl_core::conformance_suite!(|bb, n, seed| LoraBaseline::new(
        Baseline::LoraReplay,
        cfg(),
        bb,
        n,
        seed
    )
    .unwrap());
    cl_core::conformance_suite!(causal_lm: |model, seed| {
        LoraBaseline::from_model(Baseline::LoraReplay, cfg(), model, seed).unwrap()
    });
}

mod mtl {
    use super::*;
    cl_core::conformance_suite!(
        |bb, n, seed| LoraBaseline::new(Baseline::Mtl, cfg(), bb, n, seed).unwrap()
    );
    cl_core::conformance_suite!(causal_lm: |model, seed| {
        LoraBaseline::from_model(Baseline::Mtl, cfg(), model, seed).unwrap()
    });
}

mod mtl_cumulative {
    use super::*;
    cl_core::conformance_suite!(|bb, n, seed| LoraBaseline::new(
        Baseline::MtlCumulative,
        cfg(),
        bb,
        n,
        seed
    )
    .unwrap());
    cl_core::conformance_suite!(causal_lm: |model, seed| {
        LoraBaseline::from_model(Baseline::MtlCumulative, cfg(), model, seed).unwrap()
    });
}

mod ewc {
    use super::*;
    cl_core::conformance_suite!(
        |bb, n, seed| LoraBaseline::new(Baseline::Ewc, cfg(), bb, n, seed).unwrap()
    );
    cl_core::conformance_suite!(causal_lm: |model, seed| {
        LoraBaseline::from_model(Baseline::Ewc, cfg(), model, seed).unwrap()
    });
}

mod olora {
    use super::*;
    cl_core::conformance_suite!(|bb, n, seed| LoraBaseline::new(
        Baseline::OLora,
        cfg(),
        bb,
        n,
        seed
    )
    .unwrap());
    cl_core::conformance_suite!(causal_lm: |model, seed| {
        LoraBaseline::from_model(Baseline::OLora, cfg(), model, seed).unwrap()
    });
}

/// The single-LoRA baselines write their decoder's LoRA as a PEFT adapter, named as transformers'
/// `LlamaForCausalLM` modules; the per-task-LoRA ones (IncLoRA, O-LoRA) have no single LoRA.
#[test]
fn single_lora_baselines_export_the_decoder_lora_in_peft_format() {
    use cl_core::Method;
    use cl_core::conformance::{CausalLmFixture, Fixture, run_config};
    use cl_core::peft::peft_format::read_safetensors;
    use cl_core::stream::Scenario;

    let stream = CausalLmFixture::stream(Scenario::ClassIncremental);
    let mut cfg_run = run_config(0);
    cfg_run.stop_after = Some(1);
    for (kind, exports) in [(Baseline::SeqLora, true), (Baseline::IncLora, false)] {
        let model = CausalLmFixture::model(stream.num_classes());
        let mut method = LoraBaseline::from_model(kind, cfg(), model, 0).unwrap();
        let dir = tempfile::tempdir().unwrap();
        assert!(!method.export_peft("tiny", dir.path()).unwrap());
        cl_core::run(&mut method, &stream, &cfg_run, &Default::default()).unwrap();
        assert_eq!(method.export_peft("tiny", dir.path()).unwrap(), exports);
        if exports {
            let tensors = read_safetensors(&dir.path().join("adapter_model.safetensors")).unwrap();
            assert!(
                tensors.iter().any(|(name, _, _)| name
                    == "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"),
                "{:?}",
                tensors.iter().map(|t| &t.0).collect::<Vec<_>>()
            );
        }
    }
}
