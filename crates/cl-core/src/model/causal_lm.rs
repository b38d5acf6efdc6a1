//! The decoder as a [`TaskModel`]: each class is answered by its label word (the
//! [`Verbalizer`]), training minimises the causal LM loss on the answer tokens only (the prompt
//! masked out, as transformers' label `-100`), and a class's score is its answer's
//! log-likelihood after the prompt (rank classification).

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use tokenizers::Tokenizer;

use super::{GreedyAnswer, Predictions, TaskModel, TrainForward};
use crate::backbone::llama::{AttentionInputs, LayerCache, PadSide, PaddedBatch};
use crate::backbone::{
    Backbone, Finish, Generated, GenerationConfig, LlamaModel, TokenIds, answer_forward,
    continue_generation, per_row_mean_nll, prefill,
};
use crate::error::{ClError, Result};

/// Greedy answers are generated up to this many tokens beyond the longest class answer before
/// they are compared as text (an answer still running by then matches no class).
pub const GENERATION_SLACK: usize = 4;

/// Key positions (rows × cached length) one rank-classification pass over several classes may
/// hold: about 46 KB each for SmolLM2-135M's 30 blocks, so 8192 keep a pass near 380 MB.
const BRANCH_KEYS: usize = 8192;

/// What the model must answer for each class, and how its greedy answers are matched.
#[derive(Debug, Clone)]
pub struct Verbalizer {
    /// `answers[c]`: the token ids that follow a prompt of class `c` (its label word, then an
    /// end-of-text token, so that generation stops after it).
    pub answers: Vec<Vec<u32>>,
    /// The padding id of batches.
    pub pad: u32,
    /// Ids that end a generated answer.
    pub eos: Vec<u32>,
    text: Option<AnswerText>,
}

/// The answers as normalised text, with the tokenizer that decodes generations.
#[derive(Debug, Clone)]
struct AnswerText {
    tokenizer: Tokenizer,
    /// Each class's normalised answer; empty for free-text answers (never matched as classes).
    normalised: Vec<String>,
    /// Whether the answers are free text (one per distinct reference answer, scored as text by
    /// the runner), not a closed set of classes to rank.
    free: bool,
}

impl Verbalizer {
    /// The answers of the stream's classes in class order (each ending with one of `eos`);
    /// errors when there is no class or a class has no answer token. Greedy answers match a
    /// class when their ids equal its answer; [`Verbalizer::with_text`] compares text instead.
    pub fn new(answers: Vec<Vec<u32>>, pad: u32, eos: Vec<u32>) -> Result<Self> {
        if answers.is_empty() {
            return Err(ClError::config("verbalizer", "has no class"));
        }
        if let Some(c) = answers.iter().position(Vec::is_empty) {
            return Err(ClError::config(
                format!("verbalizer.answers[{c}]"),
                "is empty: every class needs at least one answer token",
            ));
        }
        if eos.is_empty() {
            return Err(ClError::config(
                "verbalizer.eos",
                "is empty: generation needs an id that ends an answer",
            ));
        }
        Ok(Self {
            answers,
            pad,
            eos,
            text: None,
        })
    }

    /// Greedy answers are decoded with `tokenizer` and match the class whose answer has the
    /// same text after [`normalize_answer`] (the papers' exact match). Errors when two classes'
    /// answers normalise to the same text or one does not decode.
    pub fn with_text(mut self, tokenizer: Tokenizer) -> Result<Self> {
        let mut normalised = Vec::with_capacity(self.answers.len());
        for (c, answer) in self.answers.iter().enumerate() {
            let visible = self.without_eos(answer);
            let text = tokenizer
                .decode(visible, true)
                .map_err(|e| ClError::config(format!("verbalizer.answers[{c}]"), e.to_string()))?;
            let norm = normalize_answer(&text);
            if let Some(other) = normalised.iter().position(|n| *n == norm) {
                return Err(ClError::config(
                    format!("verbalizer.answers[{c}]"),
                    format!(
                        "{text:?} normalises to {norm:?}, as class {other}'s answer does: exact match could not tell them apart"
                    ),
                ));
            }
            normalised.push(norm);
        }
        self.text = Some(AnswerText {
            tokenizer,
            normalised,
            free: false,
        });
        Ok(self)
    }

    /// Free-text answers (TRACE's summaries, code, numbers): each "class" is one distinct
    /// reference answer, trained on as its tokens, but evaluation generates and decodes with
    /// `tokenizer` and never ranks or matches classes: the runner scores the text against the
    /// reference with the task's metric. Answers may coincide after truncation.
    pub fn free_text(mut self, tokenizer: Tokenizer) -> Self {
        self.text = Some(AnswerText {
            tokenizer,
            normalised: Vec::new(),
            free: true,
        });
        self
    }

    /// Whether the answers are free text ([`Verbalizer::free_text`]).
    pub fn is_free_text(&self) -> bool {
        self.text.as_ref().is_some_and(|t| t.free)
    }

    /// A generation's text up to its end-of-text id, where the answers are compared as text.
    pub fn text_of(&self, generated: &Generated) -> Result<Option<String>> {
        let Some(text) = &self.text else {
            return Ok(None);
        };
        text.tokenizer
            .decode(self.without_eos(&generated.tokens), true)
            .map(Some)
            .map_err(|e| {
                ClError::config(
                    "generated answer",
                    format!("decoding {:?}: {e}", generated.tokens),
                )
            })
    }

    /// The longest answer, in tokens.
    pub fn longest(&self) -> usize {
        self.answers.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// How many tokens greedy decoding runs for: the longest answer, plus
    /// [`GENERATION_SLACK`] when answers are compared as text.
    pub fn generation_budget(&self) -> usize {
        self.longest()
            + if self.text.is_some() {
                GENERATION_SLACK
            } else {
                0
            }
    }

    /// The class a greedy generation answers, if any: its ids equal a class's answer, or (with
    /// [`Verbalizer::with_text`]) it ended with an end-of-text id and its text normalises to a
    /// class's.
    pub fn class_of(&self, generated: &Generated) -> Result<Option<usize>> {
        let Some(text) = &self.text else {
            return Ok(self.answers.iter().position(|a| *a == generated.tokens));
        };
        if generated.finish != Finish::Eos || text.free {
            return Ok(None);
        }
        let decoded = self.text_of(generated)?.unwrap_or_default();
        let norm = normalize_answer(&decoded);
        Ok(text.normalised.iter().position(|n| *n == norm))
    }

    fn without_eos<'a>(&self, ids: &'a [u32]) -> &'a [u32] {
        match ids.split_last() {
            Some((last, rest)) if self.eos.contains(last) => rest,
            _ => ids,
        }
    }
}

/// SQuAD's answer normalisation, which the LLM continual-learning papers' exact match uses:
/// lower case, ASCII punctuation removed, the articles `a`, `an`, `the` removed, whitespace
/// runs collapsed to one space and trimmed.
pub fn normalize_answer(text: &str) -> String {
    let lower = text.to_lowercase();
    let kept: String = lower
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    kept.split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A decoder trained to answer each prompt with its class's [`Verbalizer`] answer.
#[derive(Module, Debug)]
pub struct CausalLm<B: Backend> {
    /// The frozen decoder with its adapters.
    pub backbone: LlamaModel<B>,
    /// The classes' answers (not a parameter).
    #[module(skip)]
    pub verbalizer: Verbalizer,
}

impl<B: Backend> CausalLm<B> {
    /// The decoder answering with `verbalizer`.
    pub fn new(backbone: LlamaModel<B>, verbalizer: Verbalizer) -> Self {
        Self {
            backbone,
            verbalizer,
        }
    }

    fn pairs<'a>(
        &'a self,
        inputs: &[&'a TokenIds],
        labels: &[usize],
    ) -> Result<Vec<(&'a [u32], &'a [u32])>> {
        inputs
            .iter()
            .zip(labels)
            .map(|(prompt, &label)| {
                let answer = self.verbalizer.answers.get(label).ok_or_else(|| {
                    ClError::config(
                        "label",
                        format!(
                            "{label} has no answer: the verbalizer has {} classes",
                            self.verbalizer.answers.len()
                        ),
                    )
                })?;
                Ok((prompt.as_slice(), answer.as_slice()))
            })
            .collect()
    }
}

impl<B: Backend> TaskModel<B> for CausalLm<B> {
    type Input = TokenIds;
    type Backbone = LlamaModel<B>;

    fn backbone(&self) -> &LlamaModel<B> {
        &self.backbone
    }

    fn backbone_mut(&mut self) -> &mut LlamaModel<B> {
        &mut self.backbone
    }

    fn num_classes(&self) -> usize {
        self.verbalizer.answers.len()
    }

    /// Rank classification: `[batch, num_classes]` answer log-likelihoods
    /// ([`rank_classification`]). An error for free-text answers, which are not classes.
    fn class_scores(&self, inputs: &[&TokenIds]) -> Result<Tensor<B, 2>> {
        self.predictions(inputs)?.scores.ok_or_else(|| {
            ClError::config(
                "verbalizer",
                "its answers are free text: they have no class scores (only generated answers)",
            )
        })
    }

    /// Rank classification and, from the same prompt pass, each greedy generation with the
    /// class it answers ([`Verbalizer::class_of`]). Free-text answers are only generated.
    fn predictions(&self, inputs: &[&TokenIds]) -> Result<Predictions<B>> {
        let prompts: Vec<&[u32]> = inputs.iter().map(|p| p.as_slice()).collect();
        let v = &self.verbalizer;
        let generation = GenerationConfig::greedy(v.generation_budget(), v.eos.clone(), v.pad);
        if v.is_free_text() {
            let generated =
                crate::backbone::generate(&self.backbone, &prompts, &generation, |_, _| false)?;
            let greedy = generated
                .iter()
                .map(|g| {
                    Ok(GreedyAnswer {
                        class: None,
                        text: v.text_of(g)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok(Predictions {
                scores: None,
                greedy: Some(greedy),
            });
        }
        let (scores, generated) = rank_and_generate(
            &self.backbone,
            &prompts,
            &v.answers,
            v.pad,
            BRANCH_KEYS,
            Some(&generation),
        )?;
        let greedy = generated
            .iter()
            .map(|g| {
                Ok(GreedyAnswer {
                    class: v.class_of(g)?,
                    text: v.text_of(g)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Predictions {
            scores: Some(scores),
            greedy: Some(greedy),
        })
    }

    /// The mean NLL of every answer token of the batch (transformers' loss with the prompt's
    /// labels at `-100`). The LM's softmax is over the vocabulary, so `allowed` does not apply.
    fn loss(
        &self,
        inputs: &[&TokenIds],
        labels: &[usize],
        _allowed: Option<&[&[usize]]>,
    ) -> Result<Tensor<B, 1>> {
        let pairs = self.pairs(inputs, labels)?;
        crate::backbone::answer_loss(&self.backbone, &pairs, self.verbalizer.pad)
    }

    /// Each example's mean answer-token NLL, and hidden states over the joined prompt and answer
    /// (what the loss saw).
    fn train_forward(
        &self,
        inputs: &[&TokenIds],
        labels: &[usize],
        _allowed: Option<&[&[usize]]>,
        layers: &[usize],
    ) -> Result<TrainForward<B>> {
        let pairs = self.pairs(inputs, labels)?;
        let out = answer_forward(&self.backbone, &pairs, self.verbalizer.pad, layers)?;
        let log_probs = out.log_probs.ok_or_else(|| {
            ClError::config("answer", "no example of the batch has an answer token")
        })?;
        Ok(TrainForward {
            losses: per_row_mean_nll(log_probs, &out.counts),
            states: out.states,
            mask: out.mask,
        })
    }
}

/// `log p(answer_c | prompt)` for every prompt and every candidate answer `c`:
/// `[prompts, answers]`, without autodiff needs (it works under autodiff too).
///
/// The prompts run once, left-padded, keeping their keys and values; the candidates' tokens
/// after their first then run on that cache, several candidates per pass (each prompt's cache
/// repeated for them, the shorter answers right-padded), while the first token's
/// log-probability comes from the prompt's last position. Equal to
/// [`crate::backbone::score_continuations`] on every pair, at the cost of one prompt pass plus
/// a few short ones.
pub fn rank_classification<B: Backend>(
    model: &LlamaModel<B>,
    prompts: &[&[u32]],
    answers: &[Vec<u32>],
    pad: u32,
) -> Result<Tensor<B, 2>> {
    Ok(rank_and_generate(model, prompts, answers, pad, BRANCH_KEYS, None)?.0)
}

/// [`rank_classification`] and, with `generation`, each prompt's continuation
/// ([`crate::backbone::generate`]) from the same prompt pass.
pub fn rank_classification_and_generation<B: Backend>(
    model: &LlamaModel<B>,
    prompts: &[&[u32]],
    answers: &[Vec<u32>],
    pad: u32,
    generation: &GenerationConfig,
) -> Result<(Tensor<B, 2>, Vec<Generated>)> {
    rank_and_generate(model, prompts, answers, pad, BRANCH_KEYS, Some(generation))
}

fn rank_and_generate<B: Backend>(
    model: &LlamaModel<B>,
    prompts: &[&[u32]],
    answers: &[Vec<u32>],
    pad: u32,
    branch_keys: usize,
    generation: Option<&GenerationConfig>,
) -> Result<(Tensor<B, 2>, Vec<Generated>)> {
    let device = model.device();
    let longest = answers.iter().map(Vec::len).max().unwrap_or(0);
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(ClError::config(
                format!("prompt {i}"),
                "is empty: the first answer token needs a context",
            ));
        }
        if p.len() + longest > model.max_positions {
            return Err(ClError::config(
                format!("prompt {i}"),
                format!(
                    "has {} tokens and the longest answer {longest}; the model's context is {}",
                    p.len(),
                    model.max_positions
                ),
            ));
        }
    }
    if let Some(c) = answers.iter().position(Vec::is_empty) {
        return Err(ClError::config(
            format!("answer {c}"),
            "is empty: rank classification needs at least one token per candidate",
        ));
    }
    if let Some(cfg) = generation {
        cfg.validate()?;
    }
    let n = prompts.len();
    if n == 0 || answers.is_empty() {
        let none = prompts
            .iter()
            .map(|_| Generated {
                tokens: Vec::new(),
                finish: Finish::Length,
            })
            .collect();
        return Ok((Tensor::zeros([n, answers.len()], &device), none));
    }
    let batch = PaddedBatch::new(prompts, pad, PadSide::Left);
    let state = prefill(model, &batch);
    let len = batch.len;
    let first = log_softmax(state.last_logits.clone(), 1);
    let per_pass = (branch_keys / (n * (len + longest))).max(1);
    let mut columns = Vec::with_capacity(answers.len().div_ceil(per_pass));
    for group in answers.chunks(per_pass) {
        columns.push(score_group(model, &state.cache, &batch, pad, &first, group));
    }
    let generated = match generation {
        Some(cfg) => continue_generation(model, state, cfg, |_, _| false)?,
        None => Vec::new(),
    };
    Ok((Tensor::cat(columns, 1), generated))
}

/// `[n, group]`: the log-likelihood of each of `group`'s answers after each prompt, the tokens
/// after the first run in one pass over `n × group` rows (row `r · group + j`: prompt `r`,
/// answer `j`).
fn score_group<B: Backend>(
    model: &LlamaModel<B>,
    cache: &[Option<LayerCache<B>>],
    batch: &PaddedBatch,
    pad: u32,
    first: &Tensor<B, 2>,
    group: &[Vec<u32>],
) -> Tensor<B, 2> {
    let device = model.device();
    let (n, len, k) = (batch.batch, batch.len, group.len());
    let heads: Vec<i64> = (0..n)
        .flat_map(|_| group.iter().map(|a| i64::from(a[0])))
        .collect();
    let heads = Tensor::<B, 2, Int>::from_data(TensorData::new(heads, [n, k]), &device);
    let score = first.clone().gather(1, heads);
    let rest = group.iter().map(|a| a.len() - 1).max().unwrap_or(0);
    if rest == 0 {
        return score;
    }
    let rows = n * k;
    let total = len + rest;
    let mut mask = Vec::with_capacity(rows * total);
    let mut ids = Vec::with_capacity(rows * rest);
    let mut targets = Vec::with_capacity(rows * rest);
    let mut padded = Vec::with_capacity(rows * rest);
    for r in 0..n {
        for answer in group {
            // Right padding after the answer: no real position looks at it.
            mask.extend_from_slice(&batch.mask[r * len..(r + 1) * len]);
            mask.extend(std::iter::repeat_n(1.0, rest));
            for t in 0..rest {
                let real = t + 1 < answer.len();
                ids.push(i64::from(if real { answer[t] } else { pad }));
                targets.push(if real { i64::from(answer[t + 1]) } else { 0 });
                padded.push(!real);
            }
        }
    }
    let index: Vec<i64> = (0..n as i64)
        .flat_map(|r| std::iter::repeat_n(r, k))
        .collect();
    let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [rows]), &device);
    let mut branch: Vec<Option<LayerCache<B>>> = cache
        .iter()
        .map(|c| {
            c.as_ref().map(|c| LayerCache {
                keys: c.keys.clone().select(0, index.clone()),
                values: c.values.clone().select(0, index.clone()),
            })
        })
        .collect();
    let (head_dim, theta) = (model.head_dim(), model.rope_theta);
    let step = AttentionInputs::new(&mask, rows, total, rest, head_dim, theta, &device);
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [rows, rest]), &device);
    let (h, _) = model.hidden(ids, &step, Some(&mut branch), &[]);
    let targets =
        Tensor::<B, 3, Int>::from_data(TensorData::new(targets, [rows, rest, 1]), &device);
    let padded = Tensor::<B, 2, Bool>::from_data(TensorData::new(padded, [rows, rest]), &device);
    let later = log_softmax(model.logits(h), 2)
        .gather(2, targets)
        .reshape([rows, rest])
        .mask_fill(padded, 0.0)
        .sum_dim(1)
        .reshape([n, k]);
    score + later
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::llama::tests::tiny;
    use crate::backbone::score_continuations;

    #[test]
    fn rank_classification_equals_scoring_each_pair_in_any_grouping_of_the_candidates() {
        let model = tiny(21);
        let prompts: Vec<&[u32]> = vec![&[3, 1, 4, 1, 5], &[9, 2], &[6]];
        let answers = vec![vec![7], vec![8, 2], vec![11, 12, 13], vec![4, 4]];
        // One candidate per pass, two, and all four in one.
        for keys in [1, 2 * 3 * 8, BRANCH_KEYS] {
            let (scores, _) = rank_and_generate(&model, &prompts, &answers, 0, keys, None).unwrap();
            assert_eq!(scores.dims(), [3, 4]);
            let got: Vec<f32> = scores.into_data().into_vec().unwrap();
            for (r, p) in prompts.iter().enumerate() {
                for (c, a) in answers.iter().enumerate() {
                    let expected =
                        score_continuations(&model, &[(p, a.as_slice())], 0).unwrap()[0].0;
                    let value = f64::from(got[r * 4 + c]);
                    assert!(
                        (value - expected).abs() < 1e-4,
                        "{keys} keys, {r},{c}: {value} vs {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn generation_after_ranking_is_generate_and_its_class_is_the_answer_it_spells() {
        use crate::backbone::generate;
        let model = tiny(8);
        let prompts: Vec<&[u32]> = vec![&[3, 1, 4, 1, 5], &[9, 2], &[6]];
        let cfg = GenerationConfig::greedy(3, vec![2], 0);
        let expected = generate(&model, &prompts, &cfg, |_, _| false).unwrap();
        let answers = vec![vec![7, 2], vec![8, 9, 2]];
        let (_, generated) =
            rank_classification_and_generation(&model, &prompts, &answers, 0, &cfg).unwrap();
        assert_eq!(generated, expected);
        // Token-exact matching: a class whose answer is the first generation, one that is not.
        let made = expected[0].tokens.clone();
        let mut other = made.clone();
        other[0] = (other[0] + 1) % 50;
        let v = Verbalizer::new(vec![other, made.clone()], 0, vec![2]).unwrap();
        assert_eq!(v.class_of(&expected[0]).unwrap(), Some(1));
        let lm = CausalLm::new(model, v);
        let out = lm.predictions(&[&prompts[0].to_vec()]).unwrap();
        assert_eq!(out.scores.map(|s| s.dims()), Some([1, 2]));
        let greedy = out.greedy.unwrap();
        assert_eq!(greedy[0].class, Some(1));
        // Without a tokenizer there is no text.
        assert_eq!(greedy[0].text, None);
    }

    #[test]
    fn free_text_answers_are_generated_and_decoded_never_ranked() {
        let model = tiny(8);
        let prompts: Vec<Vec<u32>> = vec![vec![3, 1, 4], vec![6]];
        let answers = vec![vec![5, 3], vec![1, 0, 2, 3]];
        let v = Verbalizer::new(answers.clone(), 4, vec![3]).unwrap();
        // Two answers that normalise alike are fine: free text is not matched to classes.
        let free = Verbalizer::new(vec![vec![5, 3], vec![0, 3]], 4, vec![3])
            .unwrap()
            .free_text(words());
        assert!(free.is_free_text());
        let v = v.free_text(words());
        let budget = v.generation_budget();
        assert_eq!(budget, 4 + GENERATION_SLACK);
        let cfg = GenerationConfig::greedy(budget, vec![3], 4);
        let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        let expected = crate::backbone::generate(&model, &refs, &cfg, |_, _| false).unwrap();
        let lm = CausalLm::new(model, v);
        let inputs: Vec<&TokenIds> = prompts.iter().collect();
        let out = lm.predictions(&inputs).unwrap();
        assert!(out.scores.is_none());
        let greedy = out.greedy.unwrap();
        for (g, e) in greedy.iter().zip(&expected) {
            assert_eq!(g.class, None);
            let ids: Vec<u32> = e.tokens.iter().copied().filter(|&t| t != 3).collect();
            assert_eq!(g.text, Some(words().decode(&ids, true).unwrap()));
        }
        let err = lm.class_scores(&inputs).unwrap_err().to_string();
        assert!(err.contains("free text"), "{err}");
        // Training still reads each example's answer tokens.
        assert!(
            lm.loss(&inputs, &[1, 0], None)
                .unwrap()
                .into_scalar()
                .is_finite()
        );
    }

    /// A word-level tokenizer that decodes ids to their words joined by spaces.
    fn words() -> Tokenizer {
        let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
            "normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,
            "model":{"type":"WordLevel","unk_token":"[UNK]","vocab":{"Positive":0,
            "negative":1,".":2,"</s>":3,"[UNK]":4,"positive":5,"The":6}}}"#;
        json.parse().unwrap()
    }

    #[test]
    fn exact_match_compares_normalised_text_of_finished_answers() {
        assert_eq!(
            normalize_answer("  The Positive, review!\n"),
            "positive review"
        );
        assert_eq!(normalize_answer("an apple"), "apple");
        let v = Verbalizer::new(vec![vec![5, 3], vec![1, 3]], 4, vec![3])
            .unwrap()
            .with_text(words())
            .unwrap();
        let made = |tokens: Vec<u32>, finish| Generated { tokens, finish };
        // "The Positive ." then end of text: class 0 after normalisation.
        assert_eq!(
            v.class_of(&made(vec![6, 0, 2, 3], Finish::Eos)).unwrap(),
            Some(0)
        );
        assert_eq!(v.class_of(&made(vec![1, 3], Finish::Eos)).unwrap(), Some(1));
        // Still running when the budget ended: no class.
        assert_eq!(v.class_of(&made(vec![0, 2], Finish::Length)).unwrap(), None);
        assert_eq!(v.class_of(&made(vec![2, 3], Finish::Eos)).unwrap(), None);
        assert_eq!(v.generation_budget(), 2 + GENERATION_SLACK);
        let err = Verbalizer::new(vec![vec![5, 3], vec![0, 3]], 4, vec![3])
            .unwrap()
            .with_text(words())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("answers[1]") && err.contains("class 0"),
            "{err}"
        );
        assert!(Verbalizer::new(vec![vec![5]], 4, vec![]).is_err());
    }

    #[test]
    fn the_loss_is_the_answer_nll_and_per_example_losses_average_to_it_for_equal_lengths() {
        let verbalizer = Verbalizer::new(vec![vec![7, 1], vec![8, 1]], 0, vec![1]).unwrap();
        let lm = CausalLm::new(tiny(5), verbalizer);
        let (a, b): (TokenIds, TokenIds) = (vec![3, 4, 5], vec![6, 2]);
        let loss: f32 = lm.loss(&[&a, &b], &[1, 0], None).unwrap().into_scalar();
        let out = lm.train_forward(&[&a, &b], &[1, 0], None, &[0, 2]).unwrap();
        let mean: f32 = out.losses.clone().mean().into_scalar();
        assert!((loss - mean).abs() < 1e-5, "{loss} vs {mean}");
        let scores: Vec<f32> = lm
            .class_scores(&[&a])
            .unwrap()
            .into_data()
            .into_vec()
            .unwrap();
        let first: f32 = out.losses.narrow(0, 0, 1).into_scalar();
        // Example a's answer is class 1's; its mean NLL is −score / 2 tokens.
        assert!(
            (first + scores[1] / 2.0).abs() < 1e-4,
            "{first} vs {}",
            scores[1]
        );
        assert_eq!(out.states.len(), 2);
        assert_eq!(out.states[0].dims(), [2, 5, 64]);
        assert_eq!(out.mask.dims(), [2, 5]);
        let err = lm.loss(&[&a], &[2], None).unwrap_err().to_string();
        assert!(err.contains("verbalizer has 2 classes"), "{err}");
        assert!(Verbalizer::new(vec![vec![1], vec![]], 0, vec![1]).is_err());
    }
}
