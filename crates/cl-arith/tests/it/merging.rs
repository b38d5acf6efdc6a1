//! Merging on real modules: ΔW-space task arithmetic is exact, factor space is not; the stored
//! task vectors round-trip through their safetensors files; the method stores no data and takes
//! no task id.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::Tensor;
use cl_arith::merge::{factor_path, merged_classifier};
use cl_arith::{Arith, ArithConfig, InitFrom, LambdaChoice, MergeLevel};
use cl_core::backbone::{Backbone, MlpBackboneConfig, add_lora};
use cl_core::model::PeftClassifier;
use cl_core::peft::{LoraConfig, MergeStrategy, ParamFilter, ParamTensor, TaskVector};
use cl_core::stream::Scenario;
use cl_core::{RunConfig, run};

type B = Autodiff<NdArray<f32>>;
type I = NdArray<f32>;

fn lora() -> LoraConfig {
    LoraConfig {
        rank: 3,
        alpha: 6.0,
        dropout: 0.0,
        targets: vec!["layers.*".into()],
    }
}

fn template() -> PeftClassifier<I, cl_core::backbone::MlpBackbone<I>> {
    let bb = MlpBackboneConfig {
        input_dim: 8,
        hidden: vec![16, 12],
        seed: 5,
    }
    .init::<I>(&Default::default())
    .unwrap();
    let mut model = PeftClassifier::new(bb, 4, 1);
    add_lora(&mut model.backbone, &lora(), 2).unwrap();
    model
}

/// A random τ over the template's LoRA paths (both factors non-zero).
fn random_tau(
    model: &PeftClassifier<I, cl_core::backbone::MlpBackbone<I>>,
    seed: u64,
) -> TaskVector<I> {
    let snapshot = TaskVector::snapshot(model, &ParamFilter::Lora);
    let device = Default::default();
    let entries = snapshot
        .entries()
        .iter()
        .enumerate()
        .map(|(i, (path, p))| {
            <I as burn::tensor::backend::Backend>::seed(&device, seed * 100 + i as u64);
            let numel: usize = p.shape.iter().product();
            let value = Tensor::<I, 1>::random(
                [numel],
                burn::tensor::Distribution::Normal(0.0, 0.3),
                &device,
            );
            (
                path.clone(),
                ParamTensor {
                    value,
                    shape: p.shape.clone(),
                },
            )
        })
        .collect();
    TaskVector::from_entries(entries)
}

fn max_abs(a: Tensor<I, 2>, b: Tensor<I, 2>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn delta_w_merge_equals_the_sum_of_the_task_modules() {
    let model = template();
    let init = TaskVector::snapshot(&model, &ParamFilter::Lora);
    let taus = [random_tau(&model, 1), random_tau(&model, 2)];
    let lambdas = [0.7, 0.4];
    let merged = merged_classifier(
        model.clone(),
        &init,
        &taus,
        InitFrom::Pretrained,
        &lambdas,
        MergeLevel::DeltaW,
        &MergeStrategy::TaskArithmetic,
    )
    .unwrap();
    assert!(
        merged
            .backbone
            .lora_layers()
            .iter()
            .all(|(_, l)| l.adapters.is_empty()),
        "folded into W"
    );

    // Reference: the same layers with both task modules as separate adapters, each scaled by λ_t
    // through its B factor (ΔW_t = s·A_t·B_t, so λ_t·ΔW_t = s·A_t·(λ_t·B_t)).
    let mut reference = model.clone();
    for (layer, l) in reference.backbone.lora_layers_mut() {
        let a0 = l.adapters[0].clone();
        l.adapters.clear();
        for (tau, lambda) in taus.iter().zip(lambdas) {
            let mut adapter = a0.clone();
            let get = |f: &str| {
                let p = &tau.entries()[&factor_path(&layer, f)];
                p.value.clone().reshape([p.shape[0], p.shape[1]])
            };
            adapter.lora_a = adapter.lora_a.map(|a| a + get("lora_a"));
            adapter.lora_b = adapter
                .lora_b
                .map(|b| (b + get("lora_b")).mul_scalar(lambda));
            l.adapters.push(adapter);
        }
    }
    let x: Vec<Vec<f32>> = (0..5)
        .map(|i| (0..8).map(|j| ((i * 8 + j) as f32 * 0.37).sin()).collect())
        .collect();
    let inputs: Vec<&Vec<f32>> = x.iter().collect();
    let diff = max_abs(merged.forward(&inputs), reference.forward(&inputs));
    assert!(diff < 1e-5, "ΔW merge is exact: {diff}");

    // Factor space differs when two tasks are merged (the product is not linear) ...
    let factors = merged_classifier(
        model.clone(),
        &init,
        &taus,
        InitFrom::Pretrained,
        &lambdas,
        MergeLevel::Factors,
        &MergeStrategy::TaskArithmetic,
    )
    .unwrap();
    assert!(max_abs(factors.forward(&inputs), reference.forward(&inputs)) > 1e-3);
    // ... and agrees for a single task with λ = 1.
    let one = |level| {
        merged_classifier(
            model.clone(),
            &init,
            &taus[..1],
            InitFrom::Pretrained,
            &[1.0],
            level,
            &MergeStrategy::TaskArithmetic,
        )
        .unwrap()
        .forward(&inputs)
    };
    assert!(max_abs(one(MergeLevel::DeltaW), one(MergeLevel::Factors)) < 1e-5);
}

fn method_cfg(lambda: LambdaChoice) -> ArithConfig {
    ArithConfig {
        lora: cl_core::conformance::lora_config(),
        optimizer: cl_core::conformance::optimizer_config(),
        lambda,
        ..ArithConfig::default()
    }
}

#[test]
fn task_vectors_round_trip_and_no_data_is_stored() {
    let stream = cl_core::conformance::stream(Scenario::ClassIncremental);
    let out = tempfile::tempdir().unwrap();
    let mut method: Arith<B, _> = Arith::new(
        method_cfg(LambdaChoice::Shared { value: 0.5 }),
        cl_core::conformance::backbone(),
        stream.num_classes(),
        0,
    )
    .unwrap();
    let run_cfg = RunConfig {
        out_dir: Some(out.path().to_path_buf()),
        ..cl_core::conformance::run_config(0)
    };
    let report = run(&mut method, &stream, &run_cfg, &Default::default()).unwrap();
    assert!(report.completed);
    assert_eq!(method.lambdas(), &[0.5, 0.5, 0.5]);
    assert!(report.tasks.iter().all(|t| t.params.stored_examples == 0));

    let dir = out.path().join("checkpoint/method/task_vectors");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["tasks"].as_array().unwrap().len(), 3);
    let (_, init, vectors) = cl_arith::store::load::<I>(&dir, &Default::default()).unwrap();
    assert_eq!(vectors.len(), 3);
    for (loaded, kept) in vectors.iter().zip(method.task_vectors()) {
        let diff = loaded.sub(kept).unwrap().l2_norm();
        assert_eq!(diff, 0.0, "bit-identical round trip");
    }
    assert!(init.num_elements() > 0);
    assert!(
        std::fs::read_dir(&dir).unwrap().count() == 5,
        "manifest, init, one file per task"
    );
}

#[test]
fn lambda_search_uses_validation_and_prediction_needs_no_task_id() {
    let stream = cl_core::conformance::stream(Scenario::ClassIncremental);
    let mut method: Arith<B, _> = Arith::new(
        method_cfg(LambdaChoice::SearchPerTask {
            grid: vec![0.5, 1.0, 1.5],
            max_valid_per_task: 16,
        }),
        cl_core::conformance::backbone(),
        stream.num_classes(),
        0,
    )
    .unwrap();
    let report = run(
        &mut method,
        &stream,
        &cl_core::conformance::run_config(0),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(method.lambdas().len(), 3);
    assert!(method.lambdas().iter().all(|l| [0.5, 1.0, 1.5].contains(l)));
    // Class-incremental evaluation passes no task id; the merged model is one module.
    let merged = method.merged_model().unwrap();
    assert!(
        merged
            .backbone
            .lora_layers()
            .iter()
            .all(|(_, l)| l.adapters.is_empty())
    );
    eprintln!("{}", report.summary());
}

#[test]
fn default_lambda_is_the_mean_and_current_task_search_keeps_nothing() {
    let stream = cl_core::conformance::stream(Scenario::ClassIncremental);
    let mut mean: Arith<B, _> = Arith::new(
        method_cfg(LambdaChoice::Mean),
        cl_core::conformance::backbone(),
        stream.num_classes(),
        0,
    )
    .unwrap();
    let report = run(
        &mut mean,
        &stream,
        &cl_core::conformance::run_config(0),
        &Default::default(),
    )
    .unwrap();
    let t = stream.num_tasks();
    assert_eq!(mean.lambdas(), vec![1.0 / t as f64; t].as_slice());
    assert!(report.tasks.iter().all(|t| t.params.stored_examples == 0));

    let mut current: Arith<B, _> = Arith::new(
        method_cfg(LambdaChoice::SearchCurrent {
            grid: vec![0.25, 1.0],
            max_valid_per_task: 4,
        }),
        cl_core::conformance::backbone(),
        stream.num_classes(),
        0,
    )
    .unwrap();
    let report = run(
        &mut current,
        &stream,
        &cl_core::conformance::run_config(0),
        &Default::default(),
    )
    .unwrap();
    assert!(report.completed);
    assert!(
        report.tasks.iter().all(|t| t.params.stored_examples == 0),
        "no validation row outlives its task"
    );
    assert!(current.lambdas().iter().all(|l| [0.25, 1.0].contains(l)));
}
