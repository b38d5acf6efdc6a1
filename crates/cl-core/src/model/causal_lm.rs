//! The decoder as a [`TaskModel`]: each class is answered by its label word (the
//! [`Verbalizer`]), training minimises the causal LM loss on the answer tokens only (the prompt
//! masked out, as transformers' label `-100`), and a class's score is its answer's
//! log-likelihood after the prompt (rank classification).

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::{ScoresAndGreedy, TaskModel, TrainForward};
use crate::backbone::llama::{AttentionInputs, LayerCache, PadSide, PaddedBatch, ids_tensor};
use crate::backbone::{Backbone, LlamaModel, TokenIds, answer_forward, per_row_mean_nll};
use crate::error::{ClError, Result};

/// What the model must answer for each class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verbalizer {
    /// `answers[c]`: the token ids that follow a prompt of class `c` (its label word, then the
    /// end-of-text token, so that generation stops after it).
    pub answers: Vec<Vec<u32>>,
    /// The padding id of batches.
    pub pad: u32,
}

impl Verbalizer {
    /// The answers of the stream's classes in class order; errors when there is no class or a
    /// class has no answer token.
    pub fn new(answers: Vec<Vec<u32>>, pad: u32) -> Result<Self> {
        if answers.is_empty() {
            return Err(ClError::config("verbalizer", "has no class"));
        }
        if let Some(c) = answers.iter().position(Vec::is_empty) {
            return Err(ClError::config(
                format!("verbalizer.answers[{c}]"),
                "is empty: every class needs at least one answer token",
            ));
        }
        Ok(Self { answers, pad })
    }

    /// The longest answer, in tokens.
    pub fn longest(&self) -> usize {
        self.answers.iter().map(Vec::len).max().unwrap_or(0)
    }
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
    /// ([`rank_classification`]).
    fn class_scores(&self, inputs: &[&TokenIds]) -> Result<Tensor<B, 2>> {
        Ok(self.class_scores_with_greedy(inputs)?.0)
    }

    /// Rank classification and, from the same passes, the class whose answer (its label
    /// tokens, then end-of-text) is exactly what greedy decoding generates.
    fn class_scores_with_greedy(&self, inputs: &[&TokenIds]) -> Result<ScoresAndGreedy<B>> {
        let prompts: Vec<&[u32]> = inputs.iter().map(|p| p.as_slice()).collect();
        let (scores, greedy) = rank_classification_with_greedy(
            &self.backbone,
            &prompts,
            &self.verbalizer.answers,
            self.verbalizer.pad,
        )?;
        Ok((scores, Some(greedy)))
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
/// The prompts run once, left-padded, keeping their keys and values; each candidate's tokens
/// after its first then run on that cache (the first token's log-probability comes from the
/// prompt's last position). Equal to [`crate::backbone::score_continuations`] on every pair,
/// at the cost of one prompt pass plus one short pass per candidate.
pub fn rank_classification<B: Backend>(
    model: &LlamaModel<B>,
    prompts: &[&[u32]],
    answers: &[Vec<u32>],
    pad: u32,
) -> Result<Tensor<B, 2>> {
    Ok(rank_classification_with_greedy(model, prompts, answers, pad)?.0)
}

/// [`rank_classification`] and, for each prompt, the candidate that greedy decoding generates
/// exactly (every token the argmax of its position, the answer's last token included), if any.
/// Greedy decoding is one path, so at most one candidate of distinct answers ending with a
/// common end token matches.
pub fn rank_classification_with_greedy<B: Backend>(
    model: &LlamaModel<B>,
    prompts: &[&[u32]],
    answers: &[Vec<u32>],
    pad: u32,
) -> Result<(Tensor<B, 2>, Vec<Option<usize>>)> {
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
    let n = prompts.len();
    if n == 0 || answers.is_empty() {
        return Ok((Tensor::zeros([n, answers.len()], &device), vec![None; n]));
    }
    let batch = PaddedBatch::new(prompts, pad, PadSide::Left);
    let len = batch.len;
    let (head_dim, theta) = (model.head_dim(), model.rope_theta);
    let inputs = AttentionInputs::new(&batch.mask, n, len, len, head_dim, theta, &device);
    let mut cache: Vec<Option<LayerCache<B>>> = vec![None; model.layers.len()];
    let (h, _) = model.hidden(
        ids_tensor::<B>(&batch, &device),
        &inputs,
        Some(&mut cache),
        &[],
    );
    let vocab = model.vocab_size();
    let first = log_softmax(model.logits(h.narrow(1, len - 1, 1)), 2).reshape([n, vocab]);
    let first_argmax = host_ids(first.clone().argmax(1))?;
    let mut greedy = vec![None; n];
    let mut columns = Vec::with_capacity(answers.len());
    for (c, answer) in answers.iter().enumerate() {
        let mut matched: Vec<bool> = first_argmax
            .iter()
            .map(|&a| a == i64::from(answer[0]))
            .collect();
        let head = Tensor::<B, 2, Int>::from_data(
            TensorData::new(vec![i64::from(answer[0]); n], [n, 1]),
            &device,
        );
        let mut score = first.clone().gather(1, head);
        let rest = answer.len() - 1;
        if rest > 0 {
            let total = len + rest;
            let mut mask = Vec::with_capacity(n * total);
            let mut ids = Vec::with_capacity(n * rest);
            for r in 0..n {
                mask.extend_from_slice(&batch.mask[r * len..(r + 1) * len]);
                mask.extend(std::iter::repeat_n(1.0, rest));
                ids.extend(answer[..rest].iter().map(|&t| i64::from(t)));
            }
            let step = AttentionInputs::new(&mask, n, total, rest, head_dim, theta, &device);
            let mut branch = cache.clone();
            let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [n, rest]), &device);
            let (h, _) = model.hidden(ids, &step, Some(&mut branch), &[]);
            let targets: Vec<i64> = (0..n)
                .flat_map(|_| answer[1..].iter().map(|&t| i64::from(t)))
                .collect();
            let targets =
                Tensor::<B, 3, Int>::from_data(TensorData::new(targets, [n, rest, 1]), &device);
            let log_probs = log_softmax(model.logits(h), 2);
            let argmax = host_ids(log_probs.clone().argmax(2))?;
            for (r, row) in argmax.chunks(rest).enumerate() {
                if !row
                    .iter()
                    .zip(&answer[1..])
                    .all(|(&a, &t)| a == i64::from(t))
                {
                    matched[r] = false;
                }
            }
            let later = log_probs.gather(2, targets).sum_dim(1).reshape([n, 1]);
            score = score + later;
        }
        for (r, &m) in matched.iter().enumerate() {
            if m {
                greedy[r] = Some(c);
            }
        }
        columns.push(score);
    }
    Ok((Tensor::cat(columns, 1), greedy))
}

/// Int tensor values on the host, row-major.
fn host_ids<B: Backend, const D: usize>(t: Tensor<B, D, Int>) -> Result<Vec<i64>> {
    t.into_data()
        .convert::<i64>()
        .into_vec()
        .map_err(|e| ClError::Unsupported {
            reason: format!("reading token ids: {e:?}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::llama::tests::tiny;
    use crate::backbone::score_continuations;

    #[test]
    fn rank_classification_equals_scoring_each_pair() {
        let model = tiny(21);
        let prompts: Vec<&[u32]> = vec![&[3, 1, 4, 1, 5], &[9, 2], &[6]];
        let answers = vec![vec![7], vec![8, 2], vec![11, 12, 13]];
        let scores = rank_classification(&model, &prompts, &answers, 0).unwrap();
        assert_eq!(scores.dims(), [3, 3]);
        let got: Vec<f32> = scores.into_data().into_vec().unwrap();
        for (r, p) in prompts.iter().enumerate() {
            for (c, a) in answers.iter().enumerate() {
                let expected = score_continuations(&model, &[(p, a.as_slice())], 0).unwrap()[0].0;
                let value = f64::from(got[r * 3 + c]);
                assert!(
                    (value - expected).abs() < 1e-4,
                    "{r},{c}: {value} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn the_greedy_class_is_the_candidate_greedy_generation_produces() {
        use crate::backbone::{GenerationConfig, generate};
        let model = tiny(8);
        let prompts: Vec<&[u32]> = vec![&[3, 1, 4, 1, 5], &[9, 2], &[6]];
        let cfg = GenerationConfig::greedy(2, Vec::new(), 0);
        let generated = generate(&model, &prompts, &cfg, |_, _| false).unwrap();
        let (g1, g2) = (generated[0].tokens[0], generated[0].tokens[1]);
        let answers = vec![vec![g1, g2], vec![(g1 + 1) % 50, g2]];
        let (_, greedy) = rank_classification_with_greedy(&model, &prompts, &answers, 0).unwrap();
        assert_eq!(greedy[0], Some(0));
        for (r, g) in greedy.iter().enumerate() {
            let made = &generated[r].tokens;
            let expected = answers.iter().position(|a| a == made);
            assert_eq!(*g, expected, "prompt {r}: generated {made:?}");
        }
    }

    #[test]
    fn the_loss_is_the_answer_nll_and_per_example_losses_average_to_it_for_equal_lengths() {
        let verbalizer = Verbalizer::new(vec![vec![7, 1], vec![8, 1]], 0).unwrap();
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
        assert!(Verbalizer::new(vec![vec![1], vec![]], 0).is_err());
    }
}
