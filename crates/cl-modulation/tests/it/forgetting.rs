//! Zero forgetting, exactly: on MobileNetV2 (random weights, so no download) with per-task
//! batch-norm statistics, task `j`'s logits after every later task are bit-identical to those
//! right after task `j`; the frozen backbone is unchanged; fine-tuning, by contrast, changes them.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use cl_core::backbone::{Image, MobileNetV2};
use cl_core::method::{EvalContext, Method};
use cl_core::stream::{Example, Scenario, TaskInfo};
use cl_modulation::{Modulation, ModulationConfig, TransformKind};

type B = Autodiff<NdArray<f32>>;

fn images(n: usize, seed: u64) -> Vec<Image> {
    let device = Default::default();
    NdArray::<f32>::seed(&device, seed);
    (0..n)
        .map(|_| Image {
            pixels: Tensor::<NdArray<f32>, 1>::random(
                [3 * 32 * 32],
                Distribution::Normal(0.0, 1.0),
                &device,
            )
            .into_data()
            .to_vec()
            .unwrap(),
            height: 32,
            width: 32,
        })
        .collect()
}

fn task(id: usize) -> (TaskInfo, Vec<Example<Image>>) {
    let info = TaskInfo {
        id,
        name: format!("t{id}"),
        classes: vec![2 * id, 2 * id + 1],
        scenario: Scenario::TaskIncremental,
        num_train: 8,
        labels: Vec::new(),
    };
    let examples = images(8, id as u64)
        .into_iter()
        .enumerate()
        .map(|(i, input)| Example {
            input,
            label: 2 * id + i % 2,
            task: id,
        })
        .collect();
    (info, examples)
}

fn logits(method: &impl Method<B, Input = Image>, id: usize, probe: &[Image]) -> Vec<f32> {
    let inputs: Vec<&Image> = probe.iter().collect();
    method
        .predict(&inputs, &EvalContext::new(Scenario::TaskIncremental, id))
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap()
}

/// Trains 3 tasks (2 steps each); returns the logits of each task right after it and at the end.
fn run(kind: TransformKind) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, bool) {
    let device = Default::default();
    let net = MobileNetV2::<B>::random(&device);
    let cfg = ModulationConfig {
        kind,
        ..ModulationConfig::default()
    };
    let mut method = Modulation::new(cfg, net, 6, 0).unwrap();
    let before = method.backbone_params();
    let probe = images(4, 99);
    let mut right_after = Vec::new();
    for id in 0..3 {
        let (info, train) = task(id);
        method.begin_task(&info, &train).unwrap();
        for chunk in train.chunks(4) {
            assert!(method.train_step(chunk).unwrap().loss.is_finite());
        }
        method.end_task(&info, &train).unwrap();
        right_after.push(logits(&method, id, &probe));
    }
    let at_end = (0..3).map(|id| logits(&method, id, &probe)).collect();
    let after = method.backbone_params();
    let unchanged = before
        .entries()
        .iter()
        .zip(after.entries())
        .all(|((_, a), (_, b))| a.value.to_data() == b.value.to_data());
    (right_after, at_end, unchanged)
}

#[test]
fn modulation_logits_are_bit_identical_after_later_tasks() {
    let (right_after, at_end, unchanged) = run(TransformKind::Modulation);
    for (j, (a, b)) in right_after.iter().zip(&at_end).enumerate() {
        let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "task {j}: logits changed after later tasks");
    }
    assert!(unchanged, "the frozen backbone changed");
    // The tasks did learn something of their own: task 0's logits differ from task 1's head.
    assert_ne!(right_after[0], right_after[1]);
}

#[test]
fn finetuning_forgets() {
    let (right_after, at_end, unchanged) = run(TransformKind::Finetune);
    assert!(
        unchanged,
        "fine-tuning trains an update, not the frozen tensors"
    );
    assert_ne!(
        right_after[0], at_end[0],
        "task 0 must see the later updates"
    );
    assert_eq!(
        right_after[2], at_end[2],
        "the last task is evaluated as trained"
    );
}
