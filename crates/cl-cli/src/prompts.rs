//! Instruction streams: a stream's examples as prompts for the decoder, in O-LoRA's layout
//! (`<instruction> Option: a, b, c \n<text>\nAnswer:`), each class answered by its label word
//! (` <label>` then the end-of-text token). Tasks whose label words coincide share the class:
//! the model answers with words, so `positive` is one answer whichever task asked.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use cl_core::backbone::TokenIds;
use cl_core::model::Verbalizer;
use cl_core::stream::{Example, Task, TaskInfo, TaskStream};
use cl_data::instruct::CL_BENCHMARK_ANSWER_CUE;
use cl_data::text::TextStreamKind;

/// How one task's prompts are built: `prefix + text + cue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptFrame {
    /// What comes before the text: the instruction and the options.
    pub prefix: String,
    /// What follows it: the answer cue.
    pub cue: String,
    /// Whether the text's surrounding whitespace is dropped (cl-data's texts) or kept as the
    /// benchmark's files have it (O-LoRA's sentences end with a newline).
    pub trim: bool,
}

impl PromptFrame {
    /// O-LoRA's frame for a task of `options`: `"{instruction} Option: a, b \n"` before the
    /// text, `"\nAnswer:"` after it.
    /// The text is trimmed.
    pub fn with_options(instruction: &str, options: &[String]) -> Self {
        Self {
            trim: true,
            ..Self::around(format!("{instruction} Option: {} \n", options.join(", ")))
        }
    }

    /// `prefix`, then the text as it is, then O-LoRA's answer cue.
    pub fn around(prefix: String) -> Self {
        Self {
            prefix,
            cue: CL_BENCHMARK_ANSWER_CUE.to_string(),
            trim: false,
        }
    }

    /// The prompt of `text`.
    pub fn prompt(&self, text: &str) -> String {
        format!("{}{text}{}", self.prefix, self.cue)
    }
}

/// Each task's frame, by task name.
pub type PromptFrames = BTreeMap<String, PromptFrame>;

/// The frames of a cl-data text stream's tasks: each task's instruction (cl-data's) with its
/// label words as the options.
pub fn text_frames(raw: &TaskStream<String>, kind: TextStreamKind) -> Result<PromptFrames> {
    raw.tasks()
        .iter()
        .map(|task| {
            let name = &task.info.name;
            let Some(instruction) = kind.instruction(name) else {
                bail!("task `{name}` of stream {} has no instruction", kind.name());
            };
            Ok((
                name.clone(),
                PromptFrame::with_options(instruction, &task.info.labels),
            ))
        })
        .collect()
}

/// How the decoder's tokenizer is used: prompts (with BOS where the model wants one) and
/// answer pieces (no special token).
pub struct PromptTokenizer<'a> {
    /// A prompt's ids.
    pub prompt: &'a dyn Fn(&str) -> Result<Vec<u32>>,
    /// A piece's ids.
    pub piece: &'a dyn Fn(&str) -> Result<Vec<u32>>,
    /// End of text, appended to every answer.
    pub eos: u32,
    /// Padding id.
    pub pad: u32,
}

/// The prompts of `raw` (a stream of texts) as the stream `name` of token ids of at most `max_len` tokens, each
/// framed by its task's entry in `frames` and its text shortened (from its end) until it fits,
/// and the verbalizer answering each class with its label word.
///
/// Classes are re-numbered by answer: labels with the same answer tokens in different tasks
/// become one class (the stream's classes are the distinct answers, in order of first
/// appearance), so that class-incremental rank classification over the answers is well posed.
/// Errors when a prompt does not fit even without its text, a task has no frame, or two labels
/// of one task have the same answer.
pub fn prompt_stream(
    raw: TaskStream<String>,
    name: &str,
    frames: &PromptFrames,
    tok: &PromptTokenizer,
    max_len: usize,
) -> Result<(TaskStream<TokenIds>, Verbalizer)> {
    let mut class_of_answer: BTreeMap<Vec<u32>, usize> = BTreeMap::new();
    let mut answers: Vec<Vec<u32>> = Vec::new();
    let mut tasks = Vec::with_capacity(raw.num_tasks());
    for task in raw.tasks() {
        let info = &task.info;
        let Some(frame) = frames.get(&info.name) else {
            bail!(
                "task `{}` of stream {} has no prompt frame",
                info.name,
                raw.name()
            );
        };
        if info.labels.len() != info.classes.len() {
            bail!(
                "task `{}` names {} labels for {} classes",
                info.name,
                info.labels.len(),
                info.classes.len()
            );
        }
        // The task's old class → its answer's class, and that class's label.
        let mut remap: BTreeMap<usize, usize> = BTreeMap::new();
        let mut labels: BTreeMap<usize, &String> = BTreeMap::new();
        for (&class, label) in info.classes.iter().zip(&info.labels) {
            let mut ids = (tok.piece)(&format!(" {label}"))?;
            ids.push(tok.eos);
            let next = answers.len();
            let shared = *class_of_answer.entry(ids.clone()).or_insert(next);
            if shared == next {
                answers.push(ids);
            }
            if let Some(other) = labels.insert(shared, label) {
                bail!(
                    "task `{}`: labels `{other}` and `{label}` have the same answer tokens, so the model could not tell them apart",
                    info.name
                );
            }
            remap.insert(class, shared);
        }
        let encode = |rows: &[Example<String>]| -> Result<Vec<Example<TokenIds>>> {
            rows.iter()
                .map(|e| {
                    Ok(Example {
                        input: fit_prompt(tok, frame, &e.input, max_len)
                            .map_err(|err| anyhow::anyhow!("task `{}`: {err}", info.name))?,
                        label: remap[&e.label],
                        task: e.task,
                    })
                })
                .collect()
        };
        tasks.push(Task {
            info: TaskInfo {
                classes: labels.keys().copied().collect(),
                labels: labels.values().map(|l| (*l).clone()).collect(),
                ..info.clone()
            },
            train: encode(&task.train)?,
            valid: encode(&task.valid)?,
            test: encode(&task.test)?,
        });
    }
    let stream = TaskStream::new(name, raw.scenario(), answers.len(), tasks)?;
    Ok((stream, Verbalizer::new(answers, tok.pad, vec![tok.eos])?))
}

/// A stream of whole prompts with free-text answers (TRACE) as token ids, and the verbalizer
/// holding each answer's tokens (`class c`: the label text of class `c`, tokenized as a piece,
/// cut to `max_answer - 1` tokens, then end-of-text). A prompt longer than `max_len` tokens
/// loses its first tokens, as TRACE truncates from the left (the answer cue at its end is kept).
/// The stream keeps its scoring (each task's text metric).
pub fn free_text_prompts(
    raw: TaskStream<String>,
    tok: &PromptTokenizer,
    max_len: usize,
    max_answer: usize,
) -> Result<(TaskStream<TokenIds>, Verbalizer)> {
    if max_answer < 2 {
        bail!("--max-answer-len {max_answer}: an answer needs a token and the end of text");
    }
    let mut texts: Vec<Option<&String>> = vec![None; raw.num_classes()];
    for task in raw.tasks() {
        for (&class, label) in task.info.classes.iter().zip(&task.info.labels) {
            texts[class] = Some(label);
        }
    }
    let answers = texts
        .iter()
        .enumerate()
        .map(|(class, text)| {
            let Some(text) = text else {
                bail!("class {class} of stream {} has no answer text", raw.name());
            };
            let mut ids = (tok.piece)(text)?;
            if ids.is_empty() {
                bail!(
                    "stream {}: the answer {text:?} has no token; an answer needs at least one",
                    raw.name()
                );
            }
            ids.truncate(max_answer - 1);
            ids.push(tok.eos);
            Ok(ids)
        })
        .collect::<Result<Vec<_>>>()?;
    let stream = raw.map_inputs(|prompts| {
        prompts
            .iter()
            .map(|prompt| {
                whole_prompt(tok, prompt, max_len)
                    .map_err(|e| cl_core::error::ClError::config("prompt", e.to_string()))
            })
            .collect()
    })?;
    Ok((stream, Verbalizer::new(answers, tok.pad, vec![tok.eos])?))
}

/// A whole prompt's ids (TRACE's), its first tokens dropped beyond `max_len`.
pub fn whole_prompt(tok: &PromptTokenizer, prompt: &str, max_len: usize) -> Result<Vec<u32>> {
    let ids = (tok.prompt)(prompt)?;
    Ok(ids[ids.len().saturating_sub(max_len)..].to_vec())
}

/// The prompt's ids, the text cut at a character boundary until they are at most `max_len`.
pub fn fit_prompt(
    tok: &PromptTokenizer,
    frame: &PromptFrame,
    text: &str,
    max_len: usize,
) -> Result<Vec<u32>> {
    let mut text = if frame.trim { text.trim() } else { text };
    for _ in 0..32 {
        let ids = (tok.prompt)(&frame.prompt(text))?;
        if ids.len() <= max_len {
            return Ok(ids);
        }
        if text.is_empty() {
            bail!(
                "--max-len {max_len}: the prompt has {} tokens without its text",
                ids.len()
            );
        }
        // Keep the share of the text that would fit, a little less, at a char boundary.
        let keep = (text.len() as f64 * max_len as f64 / ids.len() as f64 * 0.9) as usize;
        let mut cut = keep.min(text.len().saturating_sub(1));
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text = text[..cut].trim_end();
    }
    bail!("--max-len {max_len}: could not shorten a text to fit")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cl_core::stream::Scenario;

    fn words(text: &str) -> Result<Vec<u32>> {
        Ok(text.split_whitespace().map(|w| w.len() as u32).collect())
    }

    const TOK: PromptTokenizer = PromptTokenizer {
        prompt: &words,
        piece: &words,
        eos: 99,
        pad: 0,
    };

    /// Tasks named `names` with two classes each, labelled `labels[t]`, numbered on.
    fn stream(names: &[&str], labels: &[[&str; 2]]) -> TaskStream<String> {
        let tasks = names
            .iter()
            .zip(labels)
            .enumerate()
            .map(|(t, (name, labels))| {
                let ex = |label: usize, text: &str| Example {
                    input: text.to_string(),
                    label: 2 * t + label,
                    task: t,
                };
                Task {
                    info: TaskInfo {
                        id: t,
                        name: name.to_string(),
                        classes: vec![2 * t, 2 * t + 1],
                        scenario: Scenario::ClassIncremental,
                        num_train: 2,
                        labels: labels.iter().map(|l| l.to_string()).collect(),
                    },
                    train: vec![
                        ex(1, "buy cheap pills now from our shop today"),
                        ex(0, "lunch at noon"),
                    ],
                    valid: vec![ex(0, "see you at lunch")],
                    test: vec![ex(1, "the meeting moved")],
                }
            })
            .collect();
        TaskStream::new("t", Scenario::ClassIncremental, 2 * names.len(), tasks).unwrap()
    }

    #[test]
    fn free_text_prompts_keep_their_end_cut_answers_and_keep_the_scoring() {
        use cl_core::stream::Scoring;
        use cl_core::text_metrics::TextMetric;
        let scoring = vec![
            Scoring::Text {
                metric: TextMetric::RougeL,
                sources: Vec::new(),
            },
            Scoring::Classes,
        ];
        let raw = stream(&["a", "b"], &[["one two three four", "x"], ["yy", "zzz"]])
            .with_scoring(scoring.clone())
            .unwrap();
        let (ids, verbalizer) = free_text_prompts(raw, &TOK, 3, 3).unwrap();
        // "buy cheap pills now from our shop today": its last 3 words.
        assert_eq!(ids.tasks()[0].train[0].input, vec![3, 4, 5]);
        assert_eq!(ids.tasks()[0].train[1].input, vec![5, 2, 4]);
        // Answers: at most 2 tokens, then end of text.
        assert_eq!(verbalizer.answers[0], vec![3, 3, 99]);
        assert_eq!(verbalizer.answers[1], vec![1, 99]);
        assert_eq!(verbalizer.answers[3], vec![3, 99]);
        assert_eq!(ids.scoring(0), &scoring[0]);
        let raw = stream(&["a"], &[["x", "y"]]);
        let err = free_text_prompts(raw, &TOK, 3, 1).unwrap_err().to_string();
        assert!(err.contains("--max-answer-len 1"), "{err}");
    }

    #[test]
    fn prompts_follow_the_layout_fit_max_len_and_answers_end_with_eos() {
        let frame = PromptFrame::with_options("Is it spam?", &["ham".into(), "spam".into()]);
        assert_eq!(
            frame.prompt("hello"),
            "Is it spam? Option: ham, spam \nhello\nAnswer:"
        );
        let raw = stream(&["spam-assassin"], &[["ham", "spam"]]);
        let frames = text_frames(&raw, TextStreamKind::Text5).unwrap();
        // 10 words without the text ("Is the email spam or ham? Option: ham, spam" "Answer:").
        let (s, v) = prompt_stream(raw.clone(), "g", &frames, &TOK, 14).unwrap();
        let train = &s.tasks()[0].train[0].input;
        assert!(train.len() <= 14 && train.len() > 10, "{train:?}");
        assert_eq!(s.tasks()[0].test[0].input.len(), 13);
        assert_eq!(v.answers, vec![vec![3, 99], vec![4, 99]]);
        let err = prompt_stream(raw, "g", &frames, &TOK, 5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("without its text"), "{err}");
        let raw = stream(&["spam-assassin"], &[["same", "same"]]);
        let frames = text_frames(&raw, TextStreamKind::Text5).unwrap();
        let err = prompt_stream(raw, "g", &frames, &TOK, 40)
            .unwrap_err()
            .to_string();
        assert!(err.contains("same answer"), "{err}");
        assert!(text_frames(&stream(&["nope"], &[["a", "b"]]), TextStreamKind::Text5).is_err());
    }

    #[test]
    fn tasks_answering_with_the_same_word_share_its_class() {
        // `words` gives a word's length: "ham" (3) and "pos" (3) share an answer, so the second
        // task's `pos` joins class 0, and its `negative` (8) is new.
        let raw = stream(&["a", "b"], &[["ham", "spam"], ["negative", "pos"]]);
        let frames: PromptFrames = ["a", "b"]
            .iter()
            .map(|n| (n.to_string(), PromptFrame::around("Q: ".into())))
            .collect();
        let (s, v) = prompt_stream(raw, "g", &frames, &TOK, 40).unwrap();
        assert_eq!(s.num_classes(), 3);
        assert_eq!(v.answers, vec![vec![3, 99], vec![4, 99], vec![8, 99]]);
        let b = &s.tasks()[1];
        assert_eq!(b.info.classes, vec![0, 2]);
        assert_eq!(
            b.info.labels,
            vec!["pos".to_string(), "negative".to_string()]
        );
        // Its examples of `pos` (old class 3) are class 0, of `negative` (old 2) class 2.
        assert_eq!(b.train[0].label, 0);
        assert_eq!(b.train[1].label, 2);
        // A frame without trimming keeps the text's own whitespace.
        assert_eq!(
            PromptFrame::around("Q: ".into()).prompt("x\n"),
            "Q: x\n\nAnswer:"
        );
    }
}
