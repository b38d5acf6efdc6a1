//! The one list of method plugins. Adding a method is a crate that exports its entry and one
//! line here.

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;
use cl_core::registry::{MethodEntry, MethodInfo};

use crate::backend::ListingBackend;

/// Every method `cl` runs, in listing order.
pub fn methods<B: AutodiffBackend>() -> Vec<MethodEntry<B>> {
    let mut all = cl_core::baselines::entries();
    all.push(cl_arith::entry());
    all.push(cl_ilora::entry());
    all.push(cl_rkif::entry());
    all.extend(cl_modulation::entries());
    all
}

/// The descriptions of [`methods`].
pub fn infos() -> Vec<MethodInfo> {
    methods::<ListingBackend>()
        .into_iter()
        .map(|e| e.info)
        .collect()
}

/// The `--method` names.
pub fn names() -> Vec<&'static str> {
    infos().into_iter().map(|i| i.name).collect()
}

/// The entry named `name`.
pub fn find<B: AutodiffBackend>(name: &str) -> Result<MethodEntry<B>> {
    match methods::<B>().into_iter().find(|e| e.info.name == name) {
        Some(entry) => Ok(entry),
        None => bail!(
            "unknown method `{name}`; choose one of {}",
            names().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use cl_core::conformance::{
        CausalLmFixture, TestBackend, backbone_stays_frozen_in, backbone_stays_frozen_on,
        learns_every_task_in, learns_every_task_on,
    };
    use cl_core::registry::{BackboneKind, BuiltMethod, HostBackbone};

    use super::*;

    /// Every method reachable from the list (so one added with one line too) is built through
    /// its entry, with its own synthetic-MLP defaults, and passes the conformance suite's
    /// learning and frozen-backbone checks in each scenario it declares.
    #[test]
    fn every_registered_method_builds_from_its_entry_and_conforms() {
        let mut checked = Vec::new();
        for entry in methods::<TestBackend>() {
            if !entry.info.backbones.contains(&BackboneKind::SyntheticMlp) {
                continue;
            }
            let config = (entry.parse_config)((entry.default_config)(BackboneKind::SyntheticMlp))
                .unwrap_or_else(|e| {
                    panic!("{}: its own defaults are refused: {e}", entry.info.name)
                });
            let make = |bb, classes, seed| match (entry.build)(
                config.clone(),
                HostBackbone::SyntheticMlp(bb),
                classes,
                seed,
            )
            .unwrap()
            {
                BuiltMethod::SyntheticMlp(method) => method,
                _ => panic!("{}: built for another backbone", entry.info.name),
            };
            eprintln!("checking {}", entry.info.name);
            learns_every_task_in(make, entry.info.scenarios);
            backbone_stays_frozen_in(make, entry.info.scenarios[0]);
            checked.push(entry.info.name);
        }
        assert_eq!(checked, names(), "every method runs on the synthetic MLP");
    }

    /// Every method that declares the decoder is built through its entry with its own SmolLM2
    /// defaults (LoRA targets `q_proj`, `v_proj`) on the suite's tiny decoder, and passes the
    /// learning and frozen-backbone checks there; every LoRA method declares it.
    #[test]
    fn every_lora_method_builds_on_the_decoder_from_its_entry_and_conforms() {
        let mut checked = Vec::new();
        for entry in methods::<TestBackend>() {
            if !entry.info.backbones.contains(&BackboneKind::Smollm2) {
                continue;
            }
            let mut config = (entry.parse_config)((entry.default_config)(BackboneKind::Smollm2))
                .unwrap_or_else(|e| {
                    panic!("{}: its own defaults are refused: {e}", entry.info.name)
                });
            // The suite's steps are few: the synthetic MLP's learning rate; and EWC's λ scaled
            // to the tiny decoder (the default is MiniLM's, whose Fisher is far smaller).
            config["optimizer"]["lr"] = 1e-2.into();
            if let Some(ewc) = config.get_mut("ewc") {
                ewc["lambda"] = 1e4.into();
            }
            // I-LoRA's slow learner with the synthetic MLP's time constant (its default α =
            // 0.999 barely moves in the suite's 30 steps a task).
            if let Some(ema) = config.get_mut("ema") {
                *ema = serde_json::json!({"schedule": "capped", "alpha": 0.25});
            }
            let make = |model, seed| match (entry.build)(
                config.clone(),
                HostBackbone::Smollm2(model),
                6,
                seed,
            )
            .unwrap()
            {
                BuiltMethod::Smollm2(method) => method,
                _ => panic!("{}: built for another backbone", entry.info.name),
            };
            eprintln!("checking {} on the decoder", entry.info.name);
            learns_every_task_on::<CausalLmFixture, _, _>(make, &entry.info.scenarios[..1]);
            backbone_stays_frozen_on::<CausalLmFixture, _, _>(make, entry.info.scenarios[0]);
            checked.push(entry.info.name);
        }
        let lora: Vec<&str> = infos()
            .into_iter()
            .filter(|i| i.backbones.contains(&BackboneKind::MiniLm))
            .map(|i| i.name)
            .collect();
        assert_eq!(
            checked, lora,
            "every method of the encoder runs on the decoder"
        );
        assert!(checked.len() >= 9, "{checked:?}");
    }

    #[test]
    fn names_are_unique_and_unknown_ones_list_the_known() {
        let mut sorted = names();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names().len());
        let err = find::<TestBackend>("nope").err().unwrap().to_string();
        assert!(
            err.contains("unknown method `nope`; choose one of seq-lora"),
            "{err}"
        );
    }
}
