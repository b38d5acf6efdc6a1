//! What `cargo xtask reproduce` runs for each paper: the table's rows (method + config from
//! `configs/`), the streams, the paper's own figures to quote, and the claims to check.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Papers `--paper` accepts (besides `all`).
pub const PAPER_IDS: [&str; 4] = ["arith", "ilora", "rkif", "modulation"];

/// One row of a paper's table: a method of `cl run` with its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Unique name of the run family, used in paths (`replay-2pct`, `rkif-average`, ...).
    pub label: String,
    /// Name shown in the table.
    pub name: String,
    /// `cl run --method`.
    pub method: String,
    /// `cl run --config`, relative to the workspace root; `{stream}` is replaced by the stream.
    pub config: Option<String>,
    /// An ablation row: runs on the paper's first stream and task order 1 only.
    pub ablation: bool,
}

impl Row {
    fn main(label: &str, name: &str, method: &str, config: Option<&str>) -> Self {
        Self {
            label: label.into(),
            name: name.into(),
            method: method.into(),
            config: config.map(String::from),
            ablation: false,
        }
    }

    /// The config file for `stream`, relative to the workspace root. On the decoder's
    /// instruction streams (see [`is_decoder_stream`]) a configured row reads
    /// `configs/decoder/<label>.json` (the same settings with the decoder's LoRA targets).
    pub fn config_for(&self, stream: &str) -> Option<String> {
        let config = self.config.as_ref()?;
        if is_decoder_stream(stream) {
            return Some(format!("configs/decoder/{}.json", self.label));
        }
        Some(config.replace("{stream}", stream))
    }
}

/// `cl`'s instruction streams for the SmolLM2 decoder are named `<text stream>-gen`.
pub fn is_decoder_stream(stream: &str) -> bool {
    stream.ends_with("-gen")
}

/// A figure from the paper's own main table, quoted beside ours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quoted {
    /// Row label it belongs to.
    pub label: &'static str,
    /// Our stream it corresponds to.
    pub stream: &'static str,
    /// Overall performance / average accuracy (%).
    pub op: Option<f64>,
    /// Backward transfer (%).
    pub bwt: Option<f64>,
}

/// A claim of the paper about its table that our numbers either support or not.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// OP strictly decreases along these row labels (best first).
    OpOrder(Vec<&'static str>),
    /// BWT of the first row is above (closer to zero than) that of the second.
    BwtAbove(&'static str, &'static str),
    /// The row's BWT is exactly zero (no forgetting).
    ZeroBwt(&'static str),
}

/// A paper's reproduction plan.
#[derive(Debug, Clone)]
pub struct Paper {
    /// `--paper` name, also the output folder.
    pub id: &'static str,
    /// Title line of the report.
    pub title: &'static str,
    /// What the paper measured on, for the note beside its figures.
    pub paper_setting: &'static str,
    /// Our streams, in table order; the first is the ablations' stream.
    pub streams: Vec<&'static str>,
    /// Main rows then ablation rows.
    pub rows: Vec<Row>,
    /// The paper's own figures.
    pub quoted: Vec<Quoted>,
    /// Claims checked against our table.
    pub claims: Vec<Claim>,
}

impl Paper {
    /// The rows run on `stream`.
    pub fn rows_on<'a>(&'a self, stream: &'a str) -> impl Iterator<Item = &'a Row> + 'a {
        let first = self.streams.first().copied();
        self.rows
            .iter()
            .filter(move |r| !r.ablation || Some(stream) == first)
    }
}

/// The plan of paper `id`; ablation rows come from `configs/<dir>/ablations/*.json` (or, for
/// modulation, every config of `configs/modulation/` that is not a main row).
pub fn paper(id: &str, root: &Path) -> Result<Paper> {
    let seq = Row::main("seq-lora", "SeqLoRA", "seq-lora", None);
    let inc = Row::main("inc-lora", "IncLoRA", "inc-lora", None);
    let mtl = Row::main("mtl", "MTL (upper bound)", "mtl", None);
    let replay = Row::main(
        "replay",
        "LoRAReplay",
        "replay",
        Some("configs/baselines/replay-{stream}.json"),
    );
    let ewc = Row::main("ewc", "EWC", "ewc", Some("configs/baselines/ewc.json"));
    let olora = Row::main(
        "olora",
        "O-LoRA",
        "olora",
        Some("configs/baselines/olora.json"),
    );
    let replay_2pct = Row::main(
        "replay-2pct",
        "LoRAReplay (2% memory)",
        "replay",
        Some("configs/baselines/replay-2pct.json"),
    );
    let mut paper = match id {
        "arith" => Paper {
            id: "arith",
            title: "Task arithmetic over per-task LoRAs (seed 000, Zeng et al. 2025)",
            paper_setting: "average accuracy over its continual text-classification benchmark \
                (full-shot), with its own pre-trained language model; the seed summary quotes no baseline's figure",
            streams: vec!["text5"],
            rows: vec![
                seq.clone(),
                inc.clone(),
                replay.clone(),
                Row::main(
                    "arith",
                    "Task arithmetic (cl-arith)",
                    "arith",
                    Some("configs/arith/text5.json"),
                ),
                mtl.clone(),
            ],
            quoted: vec![Quoted {
                label: "arith",
                stream: "text5",
                op: Some(77.2),
                bwt: None,
            }],
            claims: vec![
                Claim::OpOrder(vec!["arith", "inc-lora"]),
                Claim::OpOrder(vec!["arith", "seq-lora"]),
            ],
        },
        "ilora" => Paper {
            id: "ilora",
            title: "I-LoRA: fast and slow LoRA learners with replay (seed 001, Ren et al. 2024)",
            paper_setting: "Llama-2-7B fine-tuned on eight domain benchmarks, I-LoRA up to 11 points \
                above the best baseline; the seed summary quotes no per-row figure. text5-gen: \
                text5 as instruction prompts on the SmolLM2-135M decoder, the papers' text-to-text setting",
            streams: vec!["text5", "text15", "text5-gen"],
            rows: vec![
                seq.clone(),
                ewc.clone(),
                olora.clone(),
                replay.clone(),
                Row::main(
                    "ilora",
                    "I-LoRA (cl-ilora)",
                    "ilora",
                    Some("configs/ilora/{stream}.json"),
                ),
                mtl.clone(),
            ],
            quoted: vec![],
            claims: vec![
                Claim::OpOrder(vec!["ilora", "replay", "seq-lora"]),
                Claim::OpOrder(vec!["ilora", "olora"]),
                Claim::OpOrder(vec!["ilora", "ewc"]),
            ],
        },
        "rkif" => Paper {
            id: "rkif",
            title: "Recurrent-KIF: recurrent knowledge identification and fusion (seed 002, Feng et al. 2025)",
            paper_setting: "Table 1 of the paper: T5-large, Standard CL benchmark (5 tasks, beside our \
                text5) and Long Sequence benchmark (15 tasks, beside our text15), 1000 training rows a task, \
                mean over 3 orders. text5-gen: text5 as instruction prompts on the SmolLM2-135M \
                decoder (the paper's setting is text-to-text)",
            streams: vec!["text5", "text15", "text5-gen"],
            rows: vec![
                seq.clone(),
                inc.clone(),
                ewc.clone(),
                olora.clone(),
                replay_2pct.clone(),
                Row::main(
                    "rkif",
                    "Recurrent-KIF (cl-rkif)",
                    "rkif",
                    Some("configs/rkif/{stream}.json"),
                ),
                mtl.clone(),
            ],
            quoted: vec![
                quoted("seq-lora", "text5", 43.7, Some(-50.4)),
                quoted("seq-lora", "text15", 11.6, Some(-73.4)),
                quoted("inc-lora", "text5", 66.4, Some(-20.0)),
                quoted("inc-lora", "text15", 61.2, Some(-26.7)),
                quoted("replay-2pct", "text5", 68.8, Some(-11.7)),
                quoted("replay-2pct", "text15", 70.9, Some(-15.4)),
                quoted("rkif", "text5", 78.4, Some(-2.8)),
                quoted("rkif", "text15", 77.8, Some(-3.6)),
                quoted("mtl", "text5", 80.3, None),
                quoted("mtl", "text15", 81.8, None),
            ],
            claims: vec![
                Claim::OpOrder(vec!["mtl", "rkif", "replay-2pct", "inc-lora", "seq-lora"]),
                Claim::OpOrder(vec!["rkif", "olora", "replay-2pct", "seq-lora"]),
                Claim::BwtAbove("rkif", "replay-2pct"),
                Claim::BwtAbove("replay-2pct", "seq-lora"),
            ],
        },
        "modulation" => Paper {
            id: "modulation",
            title: "Adaptive weight modulation of a frozen MobileNetV2 (seed 003)",
            paper_setting: "MobileNetV2 trained task-incrementally on six image datasets, modulation \
                2.6 points above masking on average, zero forgetting; the seed summary quotes no per-dataset \
                figure",
            streams: vec!["vision6"],
            rows: vec![
                Row::main(
                    "finetune",
                    "Fine-tuning (shared weights, per-task heads)",
                    "finetune",
                    Some("configs/modulation/finetune.json"),
                ),
                Row::main(
                    "piggyback",
                    "Piggyback masks (4, 4)",
                    "piggyback",
                    Some("configs/modulation/piggyback.json"),
                ),
                Row::main(
                    "modulation",
                    "Modulation (4, 4) (cl-modulation)",
                    "modulation",
                    Some("configs/modulation/vision6.json"),
                ),
            ],
            quoted: vec![],
            claims: vec![
                Claim::OpOrder(vec!["modulation", "piggyback"]),
                Claim::ZeroBwt("modulation"),
                Claim::ZeroBwt("piggyback"),
            ],
        },
        other => bail!(
            "unknown paper `{other}`; choose {} or all",
            PAPER_IDS.join(", ")
        ),
    };
    paper.rows.extend(ablation_rows(&paper, root)?);
    Ok(paper)
}

fn quoted(label: &'static str, stream: &'static str, op: f64, bwt: Option<f64>) -> Quoted {
    Quoted {
        label,
        stream,
        op: Some(op),
        bwt,
    }
}

/// Ablation rows from the config files, sorted by file name.
fn ablation_rows(paper: &Paper, root: &Path) -> Result<Vec<Row>> {
    let dir = match paper.id {
        "arith" | "ilora" | "rkif" => root.join("configs").join(paper.id).join("ablations"),
        "modulation" => root.join("configs/modulation"),
        _ => return Ok(Vec::new()),
    };
    let main_configs: Vec<String> = paper.rows.iter().filter_map(|r| r.config.clone()).collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading the ablation configs in {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut rows = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .to_string_lossy()
            .replace('\\', "/");
        if main_configs.contains(&relative) {
            continue;
        }
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let method = if paper.id == "modulation" {
            modulation_method(&file)?
        } else {
            paper.id.to_string()
        };
        rows.push(Row {
            label: format!("{}-{stem}", paper.id),
            name: format!("{method} · {stem}"),
            method,
            config: Some(relative),
            ablation: true,
        });
    }
    Ok(rows)
}

/// The `cl run --method` of a cl-modulation config: its `kind` (modulation, mask, finetune).
fn modulation_method(file: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    Ok(match value
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or("modulation")
    {
        "mask" => "piggyback",
        "finetune" => "finetune",
        "modulation" => "modulation",
        other => bail!("{}: unknown `kind` `{other}`", file.display()),
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn every_plan_names_existing_configs_and_unique_labels() {
        for id in PAPER_IDS {
            let paper = paper(id, &root()).unwrap();
            let mut labels: Vec<&str> = paper.rows.iter().map(|r| r.label.as_str()).collect();
            labels.sort();
            labels.dedup();
            assert_eq!(labels.len(), paper.rows.len(), "{id}: duplicate labels");
            for stream in &paper.streams {
                for row in paper.rows_on(stream) {
                    if let Some(cfg) = row.config_for(stream) {
                        assert!(root().join(&cfg).is_file(), "{id}: {cfg} is missing");
                    }
                }
            }
            for q in &paper.quoted {
                assert!(paper.rows.iter().any(|r| r.label == q.label), "{id}: {q:?}");
                assert!(paper.streams.contains(&q.stream), "{id}: {q:?}");
            }
        }
    }

    #[test]
    fn ablations_come_from_the_config_folders() {
        let rkif = paper("rkif", &root()).unwrap();
        let average = rkif
            .rows
            .iter()
            .find(|r| r.label == "rkif-average")
            .unwrap();
        assert!(average.ablation);
        assert_eq!(average.method, "rkif");
        assert_eq!(rkif.rows_on("text15").filter(|r| r.ablation).count(), 0);
        let modulation = paper("modulation", &root()).unwrap();
        let full = modulation
            .rows
            .iter()
            .find(|r| r.label == "modulation-piggyback-full")
            .unwrap();
        assert_eq!(full.method, "piggyback");
        // Main rows' configs are not repeated as ablations.
        assert!(
            !modulation
                .rows
                .iter()
                .any(|r| r.label == "modulation-vision6")
        );
        assert!(paper("nope", &root()).is_err());
    }
}
