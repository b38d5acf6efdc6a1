//! Method plugins: each method crate describes its methods with one [`MethodEntry`] each (name,
//! summary, scenarios, backbones, default configuration per backbone, how to build it), and a
//! binary holds the one list of entries. Nothing outside a method's crate names it.
//!
//! A binary loads a backbone ([`HostBackbone`]), merges the user's configuration over
//! [`MethodEntry::default_config`], checks it with [`MethodEntry::parse_config`] and calls
//! [`MethodEntry::build`]; the [`BuiltMethod`] it gets back runs through [`crate::run`] on the
//! stream whose inputs match its backbone.

use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backbone::{BertEncoder, Image, MlpBackbone, MobileNetV2, TokenIds, TrainableBackbone};
use crate::error::{ClError, Result};
use crate::method::{EvalContext, Method, ParamCounts, StepStats};
use crate::metrics::Protocol;
use crate::model::{CausalLm, PeftClassifier, TrainableModel};
use crate::optim::OptimizerConfig;
use crate::peft::{LoraConfig, TaskVector};
use crate::stream::{Example, Scenario, TaskInfo};

/// The backbones methods train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneKind {
    /// all-MiniLM-L6-v2 (a 6-layer BERT encoder; LoRA on its linear layers).
    MiniLm,
    /// MobileNetV2 (ImageNet; convolutions, no LoRA layers).
    MobileNetV2,
    /// A small seeded MLP for smoke tests (LoRA on every layer).
    SyntheticMlp,
    /// SmolLM2-135M-Instruct, a Llama decoder trained as a causal LM that answers each prompt
    /// with its class's label word (LoRA on its projections).
    Smollm2,
}

impl BackboneKind {
    /// Every backbone kind.
    pub const ALL: [BackboneKind; 4] = [
        BackboneKind::MiniLm,
        BackboneKind::MobileNetV2,
        BackboneKind::SyntheticMlp,
        BackboneKind::Smollm2,
    ];

    /// The name used in listings and errors.
    pub fn name(self) -> &'static str {
        match self {
            BackboneKind::MiniLm => "minilm",
            BackboneKind::MobileNetV2 => "mobilenet-v2",
            BackboneKind::SyntheticMlp => "synthetic-mlp",
            BackboneKind::Smollm2 => "smollm2",
        }
    }
}

/// What a method is, for listings and for checking a run's choices before anything loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodInfo {
    /// The `--method` name (also the report's method name).
    pub name: &'static str,
    /// One line: what it does.
    pub summary: &'static str,
    /// The crate that implements it.
    pub crate_name: &'static str,
    /// The scenarios it can be evaluated in.
    pub scenarios: &'static [Scenario],
    /// The backbones it trains on.
    pub backbones: &'static [BackboneKind],
}

/// Both scenarios: for methods that need no task id.
pub const BOTH_SCENARIOS: &[Scenario] = &[Scenario::ClassIncremental, Scenario::TaskIncremental];

/// The backbones with LoRA layers.
pub const LORA_BACKBONES: &[BackboneKind] = &[
    BackboneKind::MiniLm,
    BackboneKind::SyntheticMlp,
    BackboneKind::Smollm2,
];

/// A backbone a binary loaded, for a method entry to build on (its variant is its
/// [`BackboneKind`]). Made once per run and moved into the method, so the variants' sizes do
/// not matter.
#[allow(clippy::large_enum_variant)]
pub enum HostBackbone<B: AutodiffBackend> {
    /// MiniLM; inputs are token ids.
    MiniLm(BertEncoder<B>),
    /// MobileNetV2; inputs are images.
    MobileNetV2(MobileNetV2<B>),
    /// The synthetic MLP; inputs are feature vectors.
    SyntheticMlp(MlpBackbone<B>),
    /// SmolLM2 with the stream's answers; inputs are prompt token ids.
    Smollm2(CausalLm<B>),
}

impl<B: AutodiffBackend> HostBackbone<B> {
    /// The kind of this backbone.
    pub fn kind(&self) -> BackboneKind {
        match self {
            HostBackbone::MiniLm(_) => BackboneKind::MiniLm,
            HostBackbone::MobileNetV2(_) => BackboneKind::MobileNetV2,
            HostBackbone::SyntheticMlp(_) => BackboneKind::SyntheticMlp,
            HostBackbone::Smollm2(_) => BackboneKind::Smollm2,
        }
    }

    /// Builds a method of the LoRA family (anything generic over [`TrainableModel`]) on the
    /// model this backbone gives a run with seed `seed` over `classes` classes: a
    /// [`PeftClassifier`] with a fresh head ([`PeftClassifier::for_run`]) on an encoder, the
    /// [`CausalLm`] itself on a decoder (whose answers must cover `classes`).
    pub fn build_with(
        self,
        classes: usize,
        seed: u64,
        builder: impl BuildOnBackbone<B>,
    ) -> Result<BuiltMethod<B>> {
        fn classifier<B: AutodiffBackend, M: TrainableBackbone<B>>(
            backbone: M,
            classes: usize,
            seed: u64,
        ) -> PeftClassifier<B, M> {
            PeftClassifier::for_run(backbone, classes, seed)
        }
        Ok(match self {
            HostBackbone::MiniLm(b) => {
                BuiltMethod::MiniLm(builder.build(classifier(b, classes, seed))?)
            }
            HostBackbone::MobileNetV2(b) => {
                BuiltMethod::MobileNetV2(builder.build(classifier(b, classes, seed))?)
            }
            HostBackbone::SyntheticMlp(b) => {
                BuiltMethod::SyntheticMlp(builder.build(classifier(b, classes, seed))?)
            }
            HostBackbone::Smollm2(lm) => {
                let answers = lm.verbalizer.answers.len();
                if answers != classes {
                    return Err(ClError::config(
                        "verbalizer",
                        format!("has {answers} answers for a stream of {classes} classes"),
                    ));
                }
                BuiltMethod::Smollm2(builder.build(lm)?)
            }
        })
    }
}

/// A method for [`HostBackbone::build_with`]: how to build it on any trainable model.
pub trait BuildOnBackbone<B: AutodiffBackend> {
    /// The method training `model`, boxed.
    fn build<M>(self, model: M) -> Result<BoxedMethod<B, M::Input>>
    where
        M: TrainableModel<B> + 'static,
        M::Input: Serialize + DeserializeOwned;
}

/// A method behind a box, its inputs those of its backbone.
pub type BoxedMethod<B, I> = Box<dyn Method<B, Input = I>>;

/// A method built on a [`HostBackbone`]: the variant says which inputs it takes.
pub enum BuiltMethod<B: AutodiffBackend> {
    /// On MiniLM.
    MiniLm(BoxedMethod<B, TokenIds>),
    /// On MobileNetV2.
    MobileNetV2(BoxedMethod<B, Image>),
    /// On the synthetic MLP.
    SyntheticMlp(BoxedMethod<B, Vec<f32>>),
    /// On SmolLM2 (prompt token ids).
    Smollm2(BoxedMethod<B, TokenIds>),
}

/// The configuration used without `--config`, on a backbone, as JSON.
pub type DefaultConfigFn = Box<dyn Fn(BackboneKind) -> Value + Send + Sync>;
/// Checks a configuration (unknown keys and bad values are errors) and returns it complete, as
/// the method will use it.
pub type ParseConfigFn = Box<dyn Fn(Value) -> Result<Value> + Send + Sync>;
/// Builds the method from a configuration the entry's parser accepted, on a backbone, for a
/// stream of `classes` classes, seeded by `seed`.
pub type BuildFn<B> = Box<dyn Fn(Value, HostBackbone<B>, usize, u64) -> Result<BuiltMethod<B>>>;

/// One method as a plugin. Method crates export a function returning theirs; a binary lists
/// those functions once.
pub struct MethodEntry<B: AutodiffBackend> {
    /// Name, summary, scenarios, backbones.
    pub info: MethodInfo,
    /// The configuration used without `--config`.
    pub default_config: DefaultConfigFn,
    /// Checks a configuration.
    pub parse_config: ParseConfigFn,
    /// Builds the method.
    pub build: BuildFn<B>,
}

impl<B: AutodiffBackend> MethodEntry<B> {
    /// `Ok` when the method trains on `backbone` in `scenario`; otherwise why not.
    pub fn supports(
        &self,
        backbone: BackboneKind,
        scenario: Scenario,
    ) -> std::result::Result<(), String> {
        let names = |kinds: &[BackboneKind]| {
            kinds
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.info.backbones.contains(&backbone) {
            return Err(format!(
                "method `{}` trains on {} (not {})",
                self.info.name,
                names(self.info.backbones),
                backbone.name()
            ));
        }
        if !self.info.scenarios.contains(&scenario) {
            return Err(format!(
                "method `{}` is {} only",
                self.info.name,
                self.info
                    .scenarios
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(())
    }
}

/// A LoRA-family method's configuration: all [`lora_entry`] needs to make the method's entry.
pub trait LoraMethodConfig<B: AutodiffBackend>:
    Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The defaults on `backbone`.
    fn defaults(backbone: BackboneKind) -> Self;
    /// Checks every field; errors name it.
    fn check(&self) -> Result<()>;
    /// The method training `model`, seeded by `seed`.
    fn build<M>(self, model: M, seed: u64) -> Result<BoxedMethod<B, M::Input>>
    where
        M: TrainableModel<B> + 'static,
        M::Input: Serialize + DeserializeOwned;
}

/// The entry of a LoRA-family method configured by `C`: defaults, parsing and building all
/// come from `C`; it trains on every backbone with LoRA layers, in both scenarios.
pub fn lora_entry<B: AutodiffBackend, C: LoraMethodConfig<B>>(
    name: &'static str,
    summary: &'static str,
    crate_name: &'static str,
) -> MethodEntry<B> {
    struct WithConfig<C> {
        cfg: C,
        seed: u64,
    }
    impl<B: AutodiffBackend, C: LoraMethodConfig<B>> BuildOnBackbone<B> for WithConfig<C> {
        fn build<M>(self, model: M) -> Result<BoxedMethod<B, M::Input>>
        where
            M: TrainableModel<B> + 'static,
            M::Input: Serialize + DeserializeOwned,
        {
            self.cfg.build(model, self.seed)
        }
    }
    MethodEntry {
        info: MethodInfo {
            name,
            summary,
            crate_name,
            scenarios: BOTH_SCENARIOS,
            backbones: LORA_BACKBONES,
        },
        default_config: Box::new(|backbone| config_to_json(&C::defaults(backbone))),
        parse_config: Box::new(|config| {
            let cfg: C = config_from_json(config)?;
            cfg.check()?;
            Ok(config_to_json(&cfg))
        }),
        build: Box::new(|config, backbone, classes, seed| {
            let cfg: C = config_from_json(config)?;
            backbone.build_with(classes, seed, WithConfig { cfg, seed })
        }),
    }
}

/// Parses a JSON configuration into `T` (unknown keys and type errors name the field).
pub fn config_from_json<T: DeserializeOwned>(config: Value) -> Result<T> {
    serde_json::from_value(config).map_err(|e| ClError::InvalidConfig {
        field: "config".into(),
        reason: e.to_string(),
    })
}

/// `config` as JSON.
pub fn config_to_json<T: Serialize>(config: &T) -> Value {
    serde_json::to_value(config).expect("method configurations serialize to JSON")
}

/// LoRA defaults per backbone: r = 4, α = 8 on every layer of the synthetic MLP; r = 8, α = 16
/// on MiniLM's query and value and on SmolLM2's `q_proj` and `v_proj` (PEFT's usual choice, and
/// O-LoRA's on LLaMA).
pub fn default_lora(backbone: BackboneKind) -> LoraConfig {
    match backbone {
        BackboneKind::Smollm2 => LoraConfig {
            targets: vec!["q_proj".into(), "v_proj".into()],
            ..LoraConfig::default()
        },
        BackboneKind::SyntheticMlp => LoraConfig {
            rank: 4,
            alpha: 8.0,
            targets: vec!["layers.*".into()],
            ..LoraConfig::default()
        },
        BackboneKind::MiniLm | BackboneKind::MobileNetV2 => LoraConfig::default(),
    }
}

/// AdamW lr 1e-2 on the synthetic MLP, 5e-3 on the real encoders (head included; the head
/// starts from scratch at every run and has few steps in a quick run), 1e-3 on the decoder
/// (O-LoRA's rate; no head to learn).
pub fn default_optimizer(backbone: BackboneKind) -> OptimizerConfig {
    OptimizerConfig {
        lr: match backbone {
            BackboneKind::SyntheticMlp => 1e-2,
            BackboneKind::Smollm2 => 1e-3,
            BackboneKind::MiniLm | BackboneKind::MobileNetV2 => 5e-3,
        },
        ..OptimizerConfig::default()
    }
}

/// A boxed method is a method: every call goes to the box's content.
impl<B: AutodiffBackend, M: Method<B> + ?Sized> Method<B> for Box<M> {
    type Input = M::Input;

    fn name(&self) -> String {
        (**self).name()
    }
    fn protocol(&self) -> Protocol {
        (**self).protocol()
    }
    fn plan_steps(&mut self, steps: usize) {
        (**self).plan_steps(steps)
    }
    fn begin_task(&mut self, task: &TaskInfo, train: &[Example<Self::Input>]) -> Result<()> {
        (**self).begin_task(task, train)
    }
    fn train_step(&mut self, batch: &[Example<Self::Input>]) -> Result<StepStats> {
        (**self).train_step(batch)
    }
    fn observe_validation(
        &mut self,
        task: &TaskInfo,
        valid: &[Example<Self::Input>],
    ) -> Result<()> {
        (**self).observe_validation(task, valid)
    }
    fn end_task(&mut self, task: &TaskInfo, train: &[Example<Self::Input>]) -> Result<()> {
        (**self).end_task(task, train)
    }
    fn predict(
        &self,
        inputs: &[&Self::Input],
        ctx: &EvalContext,
    ) -> Result<burn::tensor::Tensor<B::InnerBackend, 2>> {
        (**self).predict(inputs, ctx)
    }
    fn predictions(
        &self,
        inputs: &[&Self::Input],
        ctx: &EvalContext,
    ) -> Result<crate::model::Predictions<B::InnerBackend>> {
        (**self).predictions(inputs, ctx)
    }
    fn backbone_params(&self) -> TaskVector<B::InnerBackend> {
        (**self).backbone_params()
    }
    fn param_counts(&self) -> ParamCounts {
        (**self).param_counts()
    }
    fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        (**self).save_checkpoint(dir)
    }
    fn load_checkpoint(&mut self, dir: &Path, finished: &[TaskInfo]) -> Result<()> {
        (**self).load_checkpoint(dir, finished)
    }
    fn notes(&self) -> Vec<String> {
        (**self).notes()
    }
    fn export_peft(&self, base_model: &str, dir: &Path) -> Result<bool> {
        (**self).export_peft(base_model, dir)
    }
}

/// A LoRA-family method crate's registry entry in one call: defines `pub fn entry<B>()` (the
/// [`lora_entry`] of `config`) and implements [`LoraMethodConfig`] for `config`, whose
/// defaults are its `Default` with [`default_lora`] and [`default_optimizer`] for the backbone,
/// then the optional `adjust` block (which may change `cfg` per `backbone`); `check` is the
/// config's `validate()`, `build` its method's `from_model(cfg, model, seed)`.
///
/// ```ignore
/// cl_core::lora_method! {
///     name: "rkif",
///     summary: "Recurrent-KIF: ...",
///     config: RkifConfig,
///     method: Rkif,
/// }
/// ```
#[macro_export]
macro_rules! lora_method {
    (
        name: $name:literal,
        summary: $summary:literal,
        config: $config:ident,
        method: $method:ident,
        $(adjust: |$cfg:ident, $backbone:ident| $adjust:block,)?
    ) => {
        #[doc = concat!("The registry entry of `", $name, "` (see [`cl_core::registry`]).")]
        pub fn entry<B: ::burn::tensor::backend::AutodiffBackend>() -> $crate::registry::MethodEntry<B> {
            $crate::registry::lora_entry::<B, $config>($name, $summary, env!("CARGO_PKG_NAME"))
        }

        impl<B: ::burn::tensor::backend::AutodiffBackend> $crate::registry::LoraMethodConfig<B>
            for $config
        {
            #[allow(unused_mut)]
            fn defaults(backbone: $crate::registry::BackboneKind) -> Self {
                let mut cfg = $config {
                    lora: $crate::registry::default_lora(backbone),
                    optimizer: $crate::registry::default_optimizer(backbone),
                    ..$config::default()
                };
                $({
                    let $cfg = &mut cfg;
                    let $backbone = backbone;
                    $adjust
                })?
                cfg
            }

            fn check(&self) -> $crate::Result<()> {
                self.validate()
            }

            fn build<M>(
                self,
                model: M,
                seed: u64,
            ) -> $crate::Result<$crate::registry::BoxedMethod<B, M::Input>>
            where
                M: $crate::model::TrainableModel<B> + 'static,
                M::Input: ::serde::Serialize + ::serde::de::DeserializeOwned,
            {
                Ok(Box::new($method::from_model(self, model, seed)?))
            }
        }
    };
}
