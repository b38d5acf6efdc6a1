//! Instruction streams: a text stream's examples as prompts for the decoder, in O-LoRA's layout
//! (`<instruction> Option: a, b, c \n<text>\nAnswer:`), each class answered by its label word
//! (` <label>` then the end-of-text token).

use anyhow::{Result, bail};
use cl_core::backbone::TokenIds;
use cl_core::model::Verbalizer;
use cl_core::stream::{Example, Task, TaskStream};
use cl_data::text::TextStreamKind;

/// The prompt of one example: the task's instruction, its options (the task's label words),
/// the text, and the answer cue.
pub fn prompt_text(instruction: &str, options: &[String], text: &str) -> String {
    format!(
        "{instruction} Option: {} \n{text}\nAnswer:",
        options.join(", ")
    )
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

/// The prompts of `raw` (a [`TextStreamKind`] stream of texts) as token ids of at most
/// `max_len` tokens, each text shortened (from its end) until its prompt fits, and the
/// verbalizer answering each class with its label word. Errors when a prompt does not fit even
/// without its text, or when two classes have the same answer (class-incremental rank
/// classification could not tell them apart).
pub fn prompt_stream(
    raw: TaskStream<String>,
    kind: TextStreamKind,
    tok: &PromptTokenizer,
    max_len: usize,
) -> Result<(TaskStream<TokenIds>, Verbalizer)> {
    let mut answers: Vec<Option<(String, Vec<u32>)>> = vec![None; raw.num_classes()];
    let mut tasks = Vec::with_capacity(raw.num_tasks());
    for task in raw.tasks() {
        let info = &task.info;
        let Some(instruction) = kind.instruction(&info.name) else {
            bail!(
                "task `{}` of stream {} has no instruction",
                info.name,
                kind.name()
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
        for (&class, label) in info.classes.iter().zip(&info.labels) {
            let mut ids = (tok.piece)(&format!(" {label}"))?;
            ids.push(tok.eos);
            answers[class] = Some((label.clone(), ids));
        }
        let encode = |rows: &[Example<String>]| -> Result<Vec<Example<TokenIds>>> {
            rows.iter()
                .map(|e| {
                    Ok(Example {
                        input: fit_prompt(tok, instruction, &info.labels, &e.input, max_len)
                            .map_err(|err| anyhow::anyhow!("task `{}`: {err}", info.name))?,
                        label: e.label,
                        task: e.task,
                    })
                })
                .collect()
        };
        tasks.push(Task {
            info: info.clone(),
            train: encode(&task.train)?,
            valid: encode(&task.valid)?,
            test: encode(&task.test)?,
        });
    }
    let mut seen: std::collections::BTreeMap<Vec<u32>, String> = Default::default();
    let mut verbal = Vec::with_capacity(answers.len());
    for (class, answer) in answers.into_iter().enumerate() {
        let Some((label, ids)) = answer else {
            bail!("class {class} belongs to no task");
        };
        if let Some(other) = seen.insert(ids.clone(), label.clone()) {
            bail!(
                "classes `{other}` and `{label}` have the same answer: rank classification over the stream's classes could not tell them apart"
            );
        }
        verbal.push(ids);
    }
    let stream = TaskStream::new(
        format!("{}-gen", kind.name()),
        raw.scenario(),
        raw.num_classes(),
        tasks,
    )?;
    Ok((stream, Verbalizer::new(verbal, tok.pad)?))
}

/// The prompt's ids, the text cut at a character boundary until they are at most `max_len`.
fn fit_prompt(
    tok: &PromptTokenizer,
    instruction: &str,
    options: &[String],
    text: &str,
    max_len: usize,
) -> Result<Vec<u32>> {
    let mut text = text.trim();
    for _ in 0..32 {
        let ids = (tok.prompt)(&prompt_text(instruction, options, text))?;
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
    use cl_core::stream::{Scenario, TaskInfo};

    fn words(text: &str) -> Result<Vec<u32>> {
        Ok(text.split_whitespace().map(|w| w.len() as u32).collect())
    }

    fn stream(labels: [&str; 2]) -> TaskStream<String> {
        let ex = |label: usize, text: &str| Example {
            input: text.to_string(),
            label,
            task: 0,
        };
        TaskStream::new(
            "t",
            Scenario::ClassIncremental,
            2,
            vec![Task {
                info: TaskInfo {
                    id: 0,
                    name: "spam-assassin".into(),
                    classes: vec![0, 1],
                    scenario: Scenario::ClassIncremental,
                    num_train: 2,
                    labels: labels.iter().map(|l| l.to_string()).collect(),
                },
                train: vec![
                    ex(1, "buy cheap pills now from our shop today"),
                    ex(0, "lunch at noon"),
                ],
                valid: vec![ex(0, "see you at lunch")],
                test: vec![ex(0, "the meeting moved")],
            }],
        )
        .unwrap()
    }

    #[test]
    fn prompts_follow_the_layout_fit_max_len_and_answers_end_with_eos() {
        assert_eq!(
            prompt_text("Is it spam?", &["ham".into(), "spam".into()], "hello"),
            "Is it spam? Option: ham, spam \nhello\nAnswer:"
        );
        let tok = PromptTokenizer {
            prompt: &words,
            piece: &words,
            eos: 99,
            pad: 0,
        };
        // 10 words without the text ("Is the email spam or ham? Option: ham, spam" "Answer:").
        let (s, v) =
            prompt_stream(stream(["ham", "spam"]), TextStreamKind::Text5, &tok, 14).unwrap();
        let train = &s.tasks()[0].train[0].input;
        assert!(train.len() <= 14 && train.len() > 10, "{train:?}");
        assert_eq!(s.tasks()[0].test[0].input.len(), 13);
        assert_eq!(v.answers, vec![vec![3, 99], vec![4, 99]]);
        let err = prompt_stream(stream(["ham", "spam"]), TextStreamKind::Text5, &tok, 5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("without its text"), "{err}");
        let err = prompt_stream(stream(["same", "same"]), TextStreamKind::Text5, &tok, 40)
            .unwrap_err()
            .to_string();
        assert!(err.contains("same answer"), "{err}");
    }
}
