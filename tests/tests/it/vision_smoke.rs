//! End to end on real images: cl-modulation on a tiny `vision6` (Twemoji icons, Fashion-MNIST
//! and MNIST from the registries, ImageNet MobileNetV2 weights): the run completes, every task's
//! accuracy is untouched by the later tasks (BWT exactly 0) and the pre-trained weights are
//! bit-identical afterwards; fine-tuning on the same stream does change earlier tasks' logits.

use burn::backend::{Autodiff, NdArray};
use cl_core::backbone::{MobileNetV2, load_mobilenet_v2};
use cl_core::method::Method;
use cl_core::stream::{Scenario, TaskStream};
use cl_core::{RunConfig, run};
use cl_data::fetch::{cache_dir, fetch, package_dir};
use cl_data::manifest::{MOBILENET, MOBILENET_WEIGHTS, VISION};
use cl_data::text::TextStreamConfig;
use cl_data::vision::{VISION6_TASKS, to_backbone_input, vision6_stream};
use cl_modulation::{Modulation, ModulationConfig, TransformKind};

type B = Autodiff<NdArray<f32>>;

/// vision6 with 16 training and 16 test images per task at 32×32, and MobileNetV2.
fn tiny_vision6() -> (TaskStream<cl_core::backbone::Image>, MobileNetV2<B>) {
    let cache = cache_dir();
    for pkg in &VISION {
        fetch(&cache, pkg).unwrap_or_else(|e| panic!("fetching {}: {e}", pkg.spec));
    }
    let cfg = TextStreamConfig {
        train_per_task: 16,
        valid_per_task: 4,
        test_per_task: 16,
        scenario: Scenario::TaskIncremental,
        ..Default::default()
    };
    let raw = vision6_stream(&cache, &cfg).unwrap();
    let names: Vec<&str> = raw.tasks().iter().map(|t| t.info.name.as_str()).collect();
    assert_eq!(names, VISION6_TASKS);
    assert_eq!(raw.num_classes(), 5 + 4 + 5 + 5 + 5 + 5);
    let stream = raw
        .map_inputs(|images| Ok(images.iter().map(|i| to_backbone_input(i, 32)).collect()))
        .unwrap();
    let net = load_mobilenet_v2::<B>(
        &package_dir(&cache, &MOBILENET).join(MOBILENET_WEIGHTS),
        &Default::default(),
    )
    .unwrap();
    (stream, net)
}

fn tiny_run_config() -> RunConfig {
    RunConfig {
        epochs: 1,
        batch_size: 8,
        eval_batch_size: 16,
        ..RunConfig::default()
    }
}

#[test]
fn modulation_has_zero_forgetting_on_real_images() {
    let (stream, net) = tiny_vision6();
    let mut method =
        Modulation::new(ModulationConfig::default(), net, stream.num_classes(), 0).unwrap();
    let before = method.backbone_params();
    let report = run(
        &mut method,
        &stream,
        &tiny_run_config(),
        &Default::default(),
    )
    .unwrap();
    assert!(report.completed);
    assert_eq!(report.bwt, Some(0.0), "{}", report.summary());
    for (j, _) in stream.tasks().iter().enumerate() {
        let column: Vec<f64> = report.matrix.rows()[j..].iter().map(|r| r[j]).collect();
        assert!(
            column.iter().all(|a| *a == column[0]),
            "task {j}: {column:?}"
        );
    }
    let after = method.backbone_params();
    for ((path, a), (_, b)) in before.entries().iter().zip(after.entries()) {
        assert_eq!(a.value.to_data(), b.value.to_data(), "`{path}` changed");
    }
    let counts = method.param_counts();
    assert!(counts.stored > 0 && counts.stored_examples == 0);
}

#[test]
fn finetuning_changes_earlier_tasks() {
    let (stream, net) = tiny_vision6();
    let cfg = ModulationConfig {
        kind: TransformKind::Finetune,
        ..ModulationConfig::default()
    };
    let mut method = Modulation::new(cfg, net, stream.num_classes(), 0).unwrap();
    let report = run(
        &mut method,
        &stream,
        &tiny_run_config(),
        &Default::default(),
    )
    .unwrap();
    assert!(report.completed);
    assert_eq!(method.name(), "finetune");
    // Some earlier task's accuracy moved after it was trained.
    let moved = (0..stream.num_tasks() - 1).any(|j| {
        let r = report.matrix.rows();
        (j + 1..r.len()).any(|t| r[t][j] != r[j][j])
    });
    assert!(moved, "{}", report.summary());
}
