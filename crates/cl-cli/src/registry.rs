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
    use cl_core::conformance::{TestBackend, backbone_stays_frozen_in, learns_every_task_in};
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
