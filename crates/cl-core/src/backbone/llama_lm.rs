//! The decoder as a language model of answers: the log-probability of each answer token given
//! its prompt and the answer tokens before it, the training loss built on it (cross-entropy on
//! the answer tokens only, the prompt masked out as transformers does with label `-100`) and the
//! scores of rank classification.
//!
//! A batch of `(prompt, answer)` pairs is joined row by row and right-padded; answer token `j`
//! of a row is predicted from position `j − 1`. Only the hidden states of those positions go
//! through the LM head, so a batch costs `[answer tokens, vocab]` logits rather than
//! `[batch, len, vocab]`.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::Backbone;
use super::llama::{AttentionInputs, LlamaModel, PadSide, PaddedBatch, ids_tensor};
use crate::error::{ClError, Result};

/// Where a batch's answer tokens are predicted, on the host.
#[derive(Debug, Clone, PartialEq)]
struct AnswerPositions {
    /// The joined, right-padded rows.
    batch: PaddedBatch,
    /// Row-major indices `b·len + j − 1` of the positions predicting answer token `j`.
    positions: Vec<i64>,
    /// The answer tokens themselves, in the same order.
    targets: Vec<i64>,
    /// Answer tokens per row.
    counts: Vec<usize>,
}

fn answer_positions(
    pairs: &[(&[u32], &[u32])],
    pad: u32,
    max_positions: usize,
) -> Result<AnswerPositions> {
    let joined: Vec<Vec<u32>> = pairs
        .iter()
        .enumerate()
        .map(|(i, (p, a))| {
            if p.is_empty() {
                return Err(ClError::config(
                    format!("prompt {i}"),
                    "is empty: the first answer token needs a context",
                ));
            }
            Ok(p.iter().chain(a.iter()).copied().collect())
        })
        .collect::<Result<_>>()?;
    let rows: Vec<&[u32]> = joined.iter().map(Vec::as_slice).collect();
    let batch = PaddedBatch::new(&rows, pad, PadSide::Right);
    if batch.len > max_positions {
        return Err(ClError::config(
            "answer",
            format!(
                "a prompt with its answer has {} tokens; the model's context is {max_positions}",
                batch.len
            ),
        ));
    }
    let (mut positions, mut targets) = (Vec::new(), Vec::new());
    for (b, (p, a)) in pairs.iter().enumerate() {
        for (k, &t) in a.iter().enumerate() {
            positions.push((b * batch.len + p.len() + k - 1) as i64);
            targets.push(i64::from(t));
        }
    }
    Ok(AnswerPositions {
        counts: pairs.iter().map(|(_, a)| a.len()).collect(),
        batch,
        positions,
        targets,
    })
}

/// One forward pass over a batch of `(prompt, answer)` pairs (see [`answer_forward`]).
#[derive(Debug, Clone)]
pub struct AnswerForward<B: Backend> {
    /// `log p(aⱼ | prompt, a₍<ⱼ₎)` of every answer token, rows in order and tokens in order
    /// within a row, `[Σ answer lengths]`; `None` when no pair has an answer token.
    pub log_probs: Option<Tensor<B, 1>>,
    /// Answer tokens per row.
    pub counts: Vec<usize>,
    /// The hidden states the call kept (as [`LlamaModel::hidden`]), each `[batch, len, d]` over
    /// the joined, right-padded rows.
    pub states: Vec<Tensor<B, 3>>,
    /// `[batch, len]`: 1 at the joined rows' tokens, 0 at padding.
    pub mask: Tensor<B, 2>,
}

/// The answer tokens' log-probabilities of a batch of `(prompt, answer)` pairs and the hidden
/// states `keep` selects, in one forward pass (differentiable under autodiff). Prompts must be
/// non-empty; a pair longer than the model's context is an error.
pub fn answer_forward<B: Backend>(
    model: &LlamaModel<B>,
    pairs: &[(&[u32], &[u32])],
    pad: u32,
    keep: &[usize],
) -> Result<AnswerForward<B>> {
    let at = answer_positions(pairs, pad, model.max_positions)?;
    let device = model.device();
    let (n, len, d) = (at.batch.batch, at.batch.len, model.hidden_size());
    let inputs = AttentionInputs::new(
        &at.batch.mask,
        n,
        len,
        len,
        model.head_dim(),
        model.rope_theta,
        &device,
    );
    let (hidden, states) = model.hidden(ids_tensor(&at.batch, &device), &inputs, None, keep);
    let mask = Tensor::from_data(TensorData::new(at.batch.mask.clone(), [n, len]), &device);
    let log_probs = if at.positions.is_empty() {
        None
    } else {
        let m = at.positions.len();
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(at.positions, [m]), &device);
        let picked = hidden.reshape([n * len, d]).select(0, index);
        let vocab = model.vocab_size();
        let logits = model.logits(picked.reshape([1, m, d])).reshape([m, vocab]);
        let targets = Tensor::<B, 2, Int>::from_data(TensorData::new(at.targets, [m, 1]), &device);
        Some(log_softmax(logits, 1).gather(1, targets).reshape([m]))
    };
    Ok(AnswerForward {
        log_probs,
        counts: at.counts,
        states,
        mask,
    })
}

/// `log p(aⱼ | prompt, a₍<ⱼ₎)` of every answer token of every pair, rows in order and tokens in
/// order within a row: `[Σ answer lengths]` (differentiable under autodiff), with each row's
/// answer length. `None` when no pair has an answer token. Prompts must be non-empty; a pair
/// longer than the model's context is an error.
pub fn answer_log_probs<B: Backend>(
    model: &LlamaModel<B>,
    pairs: &[(&[u32], &[u32])],
    pad: u32,
) -> Result<(Option<Tensor<B, 1>>, Vec<usize>)> {
    let out = answer_forward(model, pairs, pad, &[])?;
    Ok((out.log_probs, out.counts))
}

/// Each row's mean answer-token NLL, `[batch]`, from [`AnswerForward`]'s flat log-probs and
/// counts (rows without an answer token get 0).
pub fn per_row_mean_nll<B: Backend>(log_probs: Tensor<B, 1>, counts: &[usize]) -> Tensor<B, 1> {
    let total: usize = counts.iter().sum();
    let mut weights = vec![0f32; counts.len() * total];
    let mut start = 0;
    for (b, &c) in counts.iter().enumerate() {
        for j in start..start + c {
            weights[b * total + j] = 1.0 / c as f32;
        }
        start += c;
    }
    let device = log_probs.device();
    let w = Tensor::<B, 2>::from_data(TensorData::new(weights, [counts.len(), total]), &device);
    w.matmul(log_probs.reshape([total, 1]))
        .reshape([counts.len()])
        .neg()
}

/// The answer-only causal LM loss of a batch of `(prompt, answer)` pairs: the mean over every
/// answer token of the batch of `−log p(aⱼ | prompt, a₍<ⱼ₎)`, a `[1]` tensor (as transformers'
/// `LlamaForCausalLM` loss with the prompt's labels set to `-100`). Errors when no pair has an
/// answer token.
pub fn answer_loss<B: Backend>(
    model: &LlamaModel<B>,
    pairs: &[(&[u32], &[u32])],
    pad: u32,
) -> Result<Tensor<B, 1>> {
    match answer_log_probs(model, pairs, pad)?.0 {
        Some(log_probs) => Ok(log_probs.mean().neg()),
        None => Err(ClError::config(
            "answer",
            "no pair of the batch has an answer token to learn",
        )),
    }
}

/// The log-likelihood `Σ log p(cᵢ | prompt, c₍<ᵢ₎)` of each continuation after its prompt (both
/// token ids; the prompt non-empty), in one right-padded batch; also the continuation's length,
/// for per-token normalisation (rank classification).
pub fn score_continuations<B: Backend>(
    model: &LlamaModel<B>,
    pairs: &[(&[u32], &[u32])],
    pad: u32,
) -> Result<Vec<(f64, usize)>> {
    let (log_probs, counts) = answer_log_probs(model, pairs, pad)?;
    let values: Vec<f32> = match log_probs {
        Some(t) => t
            .into_data()
            .convert::<f32>()
            .into_vec()
            .map_err(|e| ClError::Unsupported {
                reason: format!("reading scores: {e:?}"),
            })?,
        None => Vec::new(),
    };
    let mut start = 0;
    Ok(counts
        .into_iter()
        .map(|count| {
            let total = values[start..start + count]
                .iter()
                .map(|&v| f64::from(v))
                .sum();
            start += count;
            (total, count)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::add_lora;
    use crate::backbone::llama::tests::{B, tiny};
    use crate::peft::LoraConfig;
    use burn::backend::Autodiff;
    use burn::module::AutodiffModule;
    use burn::optim::{GradientsParams, Optimizer};

    /// `log_softmax` of the full logits of one joined row, `[len][vocab]`.
    fn full_log_probs(model: &LlamaModel<B>, joined: &[u32]) -> Vec<f32> {
        let logits = model.forward_batch(&PaddedBatch::new(&[joined], 0, PadSide::Right));
        log_softmax(logits, 2).into_data().into_vec().unwrap()
    }

    #[test]
    fn scores_are_the_log_likelihood_of_the_continuation() {
        let model = tiny(14);
        let (prompt, cont): (&[u32], &[u32]) = (&[3, 1, 4], &[1, 5, 9]);
        let joined: Vec<u32> = prompt.iter().chain(cont).copied().collect();
        let logp = full_log_probs(&model, &joined);
        let v = model.vocab_size();
        let expected: f64 = (3..6)
            .map(|j| f64::from(logp[(j - 1) * v + joined[j] as usize]))
            .sum();
        let got =
            score_continuations(&model, &[(prompt, cont), (&[2], &[7]), (&[5], &[])], 0).unwrap();
        assert!(
            (got[0].0 - expected).abs() < 1e-4,
            "{} vs {expected}",
            got[0].0
        );
        assert_eq!(got[0].1, 3);
        assert!(got[1].0 < 0.0);
        assert_eq!(got[2], (0.0, 0));
        let err = score_continuations(&model, &[(&[], &[1])], 0).unwrap_err();
        assert!(err.to_string().contains("prompt 0"), "{err}");
    }

    #[test]
    fn the_loss_is_the_mean_answer_cross_entropy_and_ignores_the_prompt_and_padding() {
        let model = tiny(15);
        let pairs: [(&[u32], &[u32]); 2] = [(&[3, 1, 4, 1], &[5, 9]), (&[2, 6], &[5, 3, 5])];
        let v = model.vocab_size();
        let mut nll = Vec::new();
        for (p, a) in pairs {
            let joined: Vec<u32> = p.iter().chain(a).copied().collect();
            let logp = full_log_probs(&model, &joined);
            for j in p.len()..joined.len() {
                nll.push(-f64::from(logp[(j - 1) * v + joined[j] as usize]));
            }
        }
        let expected = nll.iter().sum::<f64>() / nll.len() as f64;
        let loss: f32 = answer_loss(&model, &pairs, 0).unwrap().into_scalar();
        assert!(
            (f64::from(loss) - expected).abs() < 1e-5,
            "{loss} vs {expected}"
        );
        // Padding is masked out (another pad id changes nothing); the answer is what is scored.
        let padded: f32 = answer_loss(&model, &pairs, 7).unwrap().into_scalar();
        assert!((loss - padded).abs() < 1e-6);
        let other: f32 = answer_loss(&model, &[(&[3, 1, 4, 1], &[6, 9])], 0)
            .unwrap()
            .into_scalar();
        assert!((loss - other).abs() > 1e-4);
        let err = answer_loss(&model, &[(&[3, 1], &[])], 0).unwrap_err();
        assert!(err.to_string().contains("no pair"), "{err}");
    }

    #[test]
    fn lora_trained_on_the_answer_loss_lowers_it_and_touches_nothing_else() {
        type AB = Autodiff<B>;
        let cfg = crate::backbone::llama::tests::tiny_config();
        let mut model = cfg.init::<AB>(&Default::default()).unwrap();
        let lora = LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: vec!["*_proj".into()],
        };
        assert_eq!(add_lora(&mut model, &lora, 3).unwrap(), 14);
        let frozen_before = model.embed_tokens.weight.val().into_data();
        let pairs: [(&[u32], &[u32]); 2] = [(&[3, 1, 4], &[1, 5]), (&[9, 2], &[6, 5, 3])];
        let mut optim = crate::optim::OptimizerConfig {
            lr: 1e-2,
            ..Default::default()
        }
        .adamw::<AB, LlamaModel<AB>>();
        let first: f32 = answer_loss(&model.valid(), &pairs, 0)
            .unwrap()
            .into_scalar();
        for _ in 0..10 {
            let loss = answer_loss(&model, &pairs, 0).unwrap();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-2, model, grads);
        }
        let last: f32 = answer_loss(&model.valid(), &pairs, 0)
            .unwrap()
            .into_scalar();
        assert!(last < first - 0.1, "loss {first} -> {last}");
        model
            .embed_tokens
            .weight
            .val()
            .into_data()
            .assert_eq(&frozen_before, true);
    }
}
