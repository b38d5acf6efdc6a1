//! Generation and scoring with a [`LlamaModel`]: batched, KV-cached decoding (greedy, or
//! temperature / top-p sampling from a seed), stopping on an end-of-sequence id or a stop string,
//! and the log-likelihood of given continuations (rank classification).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokenizers::Tokenizer;

use super::Backbone;
use super::llama::{AttentionInputs, LayerCache, LlamaModel, PadSide, PaddedBatch, ids_tensor};
use crate::error::{ClError, Result};

/// How the next token is chosen from the logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely token (the first on ties, as `torch.argmax`).
    Greedy,
    /// Sampling from `softmax(logits / temperature)` restricted to the smallest set of most
    /// likely tokens whose probability reaches `top_p` (nucleus sampling, as transformers'
    /// `TopPLogitsWarper`; `top_p = 1` keeps every token).
    Sample {
        /// Temperature (> 0).
        temperature: f64,
        /// Nucleus mass in `(0, 1]`.
        top_p: f64,
    },
}

/// Settings of one [`generate`] call.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Most tokens generated per row.
    pub max_new_tokens: usize,
    /// Token choice.
    pub sampling: Sampling,
    /// Seed of the sampler (rows draw in order from one generator, so a seed fixes the output).
    pub seed: u64,
    /// A row stops after producing one of these ids (the id is kept in `tokens`).
    pub eos: Vec<u32>,
    /// Padding id for the prompt batch and for rows that have stopped.
    pub pad: u32,
}

impl GenerationConfig {
    /// Greedy decoding of up to `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize, eos: Vec<u32>, pad: u32) -> Self {
        Self {
            max_new_tokens,
            sampling: Sampling::Greedy,
            seed: 0,
            eos,
            pad,
        }
    }

    /// Checks the sampling settings; errors name the field.
    pub fn validate(&self) -> Result<()> {
        if let Sampling::Sample { temperature, top_p } = self.sampling {
            if !(temperature > 0.0 && temperature.is_finite()) {
                return Err(ClError::config(
                    "generate.temperature",
                    format!("{temperature} must be positive (use greedy decoding for 0)"),
                ));
            }
            if !(top_p > 0.0 && top_p <= 1.0) {
                return Err(ClError::config(
                    "generate.top_p",
                    format!("{top_p} is not in (0, 1]"),
                ));
            }
        }
        Ok(())
    }
}

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// It produced an end-of-sequence id.
    Eos,
    /// Its text reached a stop string.
    Stop,
    /// It produced `max_new_tokens` tokens (or reached the model's context length).
    Length,
}

/// One row's continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The generated ids (an end-of-sequence id that stopped the row included).
    pub tokens: Vec<u32>,
    /// Why generation stopped.
    pub finish: Finish,
}

/// Continues every prompt (token ids, each non-empty) of the batch at once with a KV cache.
/// `stop` is asked after every new token of a row with that row's generated ids so far and
/// stops the row when it returns true (stop strings; pass `|_| false` for none).
pub fn generate<B: Backend>(
    model: &LlamaModel<B>,
    prompts: &[&[u32]],
    cfg: &GenerationConfig,
    stop: impl FnMut(usize, &[u32]) -> bool,
) -> Result<Vec<Generated>> {
    cfg.validate()?;
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(ClError::config(
                format!("prompt {i}"),
                "is empty: a decoder needs at least one token to continue",
            ));
        }
        if p.len() >= model.max_positions {
            return Err(ClError::config(
                format!("prompt {i}"),
                format!(
                    "has {} tokens; the model's context is {}",
                    p.len(),
                    model.max_positions
                ),
            ));
        }
    }
    if prompts.is_empty() || cfg.max_new_tokens == 0 {
        return Ok(prompts
            .iter()
            .map(|_| Generated {
                tokens: Vec::new(),
                finish: Finish::Length,
            })
            .collect());
    }
    let batch = PaddedBatch::new(prompts, cfg.pad, PadSide::Left);
    let state = prefill(model, &batch);
    continue_generation(model, state, cfg, stop)
}

/// A left-padded batch of prompts after one pass: every block's keys and values, the key
/// mask and the logits of each row's last position, from which generation or scoring goes on.
#[derive(Debug, Clone)]
pub struct Prefill<B: Backend> {
    /// Keys and values of every block over the prompts.
    pub cache: Vec<Option<LayerCache<B>>>,
    /// `[rows][total]` row-major: 1 at real tokens, 0 at padding.
    pub mask: Vec<f32>,
    /// Rows of the batch.
    pub rows: usize,
    /// Positions cached per row (the padded prompt length).
    pub total: usize,
    /// `[rows, vocab]`: the logits after each prompt's last token.
    pub last_logits: Tensor<B, 2>,
}

/// Runs `batch` (left-padded) once through `model`, keeping what continuing it needs.
pub fn prefill<B: Backend>(model: &LlamaModel<B>, batch: &PaddedBatch) -> Prefill<B> {
    let device = model.device();
    let (rows, len) = (batch.batch, batch.len);
    let inputs = AttentionInputs::new(
        &batch.mask,
        rows,
        len,
        len,
        model.head_dim(),
        model.rope_theta,
        &device,
    );
    let mut cache: Vec<Option<LayerCache<B>>> = vec![None; model.layers.len()];
    let (h, _) = model.hidden(
        ids_tensor::<B>(batch, &device),
        &inputs,
        Some(&mut cache),
        &[],
    );
    let vocab = model.vocab_size();
    let last_logits = model.logits(h.narrow(1, len - 1, 1)).reshape([rows, vocab]);
    Prefill {
        cache,
        mask: batch.mask.clone(),
        rows,
        total: len,
        last_logits,
    }
}

/// Generates from a [`prefill`]ed batch as [`generate`] does (whose prompt pass it was).
pub fn continue_generation<B: Backend>(
    model: &LlamaModel<B>,
    state: Prefill<B>,
    cfg: &GenerationConfig,
    mut stop: impl FnMut(usize, &[u32]) -> bool,
) -> Result<Vec<Generated>> {
    cfg.validate()?;
    let device = model.device();
    let Prefill {
        mut cache,
        mut mask,
        rows,
        mut total,
        last_logits,
    } = state;
    let mut out: Vec<Generated> = (0..rows)
        .map(|_| Generated {
            tokens: Vec::new(),
            finish: Finish::Length,
        })
        .collect();
    let budget = cfg
        .max_new_tokens
        .min(model.max_positions.saturating_sub(total));
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut done = vec![false; rows];
    let mut logits = last_logits;
    for step in 0..budget {
        let vocab = logits.dims()[1];
        let host: Vec<f32> = logits
            .into_data()
            .convert::<f32>()
            .into_vec()
            .map_err(|e| ClError::Unsupported {
                reason: format!("reading logits: {e:?}"),
            })?;
        let mut next = vec![cfg.pad; rows];
        for r in 0..rows {
            if done[r] {
                continue;
            }
            let row = &host[r * vocab..(r + 1) * vocab];
            let token = match cfg.sampling {
                Sampling::Greedy => argmax(row),
                Sampling::Sample { temperature, top_p } => {
                    sample_top_p(row, temperature, top_p, &mut rng)
                }
            };
            next[r] = token;
            out[r].tokens.push(token);
            if cfg.eos.contains(&token) {
                done[r] = true;
                out[r].finish = Finish::Eos;
            } else if stop(r, &out[r].tokens) {
                done[r] = true;
                out[r].finish = Finish::Stop;
            }
        }
        if done.iter().all(|&d| d) || step + 1 == budget {
            break;
        }
        // Append one real column to the mask (finished rows keep attending, as transformers).
        let mut grown = Vec::with_capacity(rows * (total + 1));
        for r in 0..rows {
            grown.extend_from_slice(&mask[r * total..(r + 1) * total]);
            grown.push(1.0);
        }
        mask = grown;
        total += 1;
        let inputs = AttentionInputs::new(
            &mask,
            rows,
            total,
            1,
            model.head_dim(),
            model.rope_theta,
            &device,
        );
        let next: Vec<i64> = next.into_iter().map(i64::from).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(next, [rows, 1]), &device);
        let (h, _) = model.hidden(ids, &inputs, Some(&mut cache), &[]);
        logits = model.logits(h).reshape([rows, vocab]);
    }
    Ok(out)
}

/// Index of the largest value (the first of equal ones).
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Nucleus sampling from one row of logits.
fn sample_top_p(row: &[f32], temperature: f64, top_p: f64, rng: &mut StdRng) -> u32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(usize, f64)> = row
        .iter()
        .enumerate()
        .map(|(i, &v)| (i, ((v as f64 - max) / temperature).exp()))
        .collect();
    let sum: f64 = probs.iter().map(|p| p.1).sum();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0;
    let mut mass = 0.0;
    for p in &probs {
        kept += 1;
        mass += p.1 / sum;
        if mass >= top_p {
            break;
        }
    }
    let probs = &probs[..kept];
    let kept_sum: f64 = probs.iter().map(|p| p.1).sum();
    let mut u = rng.random::<f64>() * kept_sum;
    for p in probs {
        u -= p.1;
        if u <= 0.0 {
            return p.0 as u32;
        }
    }
    probs[kept - 1].0 as u32
}

/// A decoder with its tokenizer: text in, text out.
pub struct TextGenerator<B: Backend> {
    /// The model.
    pub model: LlamaModel<B>,
    /// Its tokenizer (adds no special tokens itself).
    pub tokenizer: Tokenizer,
    /// Prepended to every prompt when the model expects it (`add_bos_token`).
    pub bos: Option<u32>,
    /// End-of-sequence ids.
    pub eos: Vec<u32>,
    /// Padding id.
    pub pad: u32,
}

impl<B: Backend> TextGenerator<B> {
    /// Token ids of `text` (with BOS when the model expects one).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| ClError::Tokenizer {
                path: "<gguf metadata>".into(),
                reason: format!("encoding {text:?}: {e}"),
            })?;
        Ok(self
            .bos
            .into_iter()
            .chain(enc.get_ids().iter().copied())
            .collect())
    }

    /// Text of `ids`, special tokens kept.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| ClError::Tokenizer {
                path: "<gguf metadata>".into(),
                reason: format!("decoding {ids:?}: {e}"),
            })
    }

    /// Continues each prompt; a row stops at an EOS id, at any of `stop_strings` (its text is
    /// cut before the stop string) or after `max_new_tokens`. Returns the continuations' texts
    /// (without a final EOS token) with the rows' [`Generated`] ids.
    pub fn generate(
        &self,
        prompts: &[&str],
        cfg: &GenerationConfig,
        stop_strings: &[String],
    ) -> Result<Vec<(String, Generated)>> {
        let ids: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| self.encode(p))
            .collect::<Result<_>>()?;
        let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        let tokenizer = &self.tokenizer;
        let stop = |_: usize, tokens: &[u32]| {
            !stop_strings.is_empty()
                && tokenizer
                    .decode(tokens, false)
                    .is_ok_and(|t| stop_strings.iter().any(|s| t.contains(s.as_str())))
        };
        let generated = generate(&self.model, &rows, cfg, stop)?;
        generated
            .into_iter()
            .map(|g| {
                let visible: &[u32] = match (g.finish, g.tokens.split_last()) {
                    (Finish::Eos, Some((_, rest))) => rest,
                    _ => &g.tokens,
                };
                let mut text = self.decode(visible)?;
                if g.finish == Finish::Stop
                    && let Some(cut) = stop_strings
                        .iter()
                        .filter_map(|s| text.find(s.as_str()))
                        .min()
                {
                    text.truncate(cut);
                }
                Ok((text, g))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::llama::tests::{B, tiny};

    /// Greedy decoding by recomputing the whole sequence every step (no cache, one row).
    fn greedy_by_recompute(model: &LlamaModel<B>, prompt: &[u32], n: usize) -> Vec<u32> {
        let mut seq = prompt.to_vec();
        for _ in 0..n {
            let batch = PaddedBatch::new(&[&seq], 0, PadSide::Right);
            let logits = model.forward_batch(&batch);
            let v = logits.dims()[2];
            let last: Vec<f32> = logits
                .narrow(1, seq.len() - 1, 1)
                .reshape([v])
                .into_data()
                .into_vec()
                .unwrap();
            seq.push(argmax(&last));
        }
        seq[prompt.len()..].to_vec()
    }

    #[test]
    fn cached_batched_generation_equals_full_recomputation() {
        let model = tiny(11);
        let prompts: [&[u32]; 3] = [&[1, 2, 3, 4, 5, 6], &[9, 8], &[30]];
        let cfg = GenerationConfig::greedy(8, vec![], 0);
        let got = generate(&model, &prompts, &cfg, |_, _| false).unwrap();
        for (p, g) in prompts.iter().zip(&got) {
            assert_eq!(g.tokens, greedy_by_recompute(&model, p, 8), "prompt {p:?}");
            assert_eq!(g.finish, Finish::Length);
        }
    }

    #[test]
    fn eos_and_stop_end_a_row_without_ending_the_others() {
        let model = tiny(12);
        let prompts: [&[u32]; 2] = [&[1, 2, 3], &[4, 5]];
        let free = generate(
            &model,
            &prompts,
            &GenerationConfig::greedy(6, vec![], 0),
            |_, _| false,
        )
        .unwrap();
        let eos = free[0].tokens[2];
        let cfg = GenerationConfig::greedy(6, vec![eos], 0);
        let got = generate(&model, &prompts, &cfg, |_, _| false).unwrap();
        let cut = free[0].tokens.iter().position(|&t| t == eos).unwrap();
        assert_eq!(got[0].tokens, free[0].tokens[..=cut]);
        assert_eq!(got[0].finish, Finish::Eos);
        let stopped = generate(
            &model,
            &prompts,
            &GenerationConfig::greedy(6, vec![], 0),
            |r, t| r == 1 && t.len() == 2,
        )
        .unwrap();
        assert_eq!(stopped[1].tokens, free[1].tokens[..2]);
        assert_eq!(stopped[1].finish, Finish::Stop);
        assert_eq!(stopped[0].tokens, free[0].tokens);
    }

    #[test]
    fn sampling_is_fixed_by_its_seed_and_a_tiny_nucleus_is_greedy() {
        let model = tiny(13);
        let prompts: [&[u32]; 2] = [&[1, 2, 3], &[7]];
        let sample = |seed, top_p| {
            let cfg = GenerationConfig {
                // The random tiny model is very peaked: a high temperature makes draws differ.
                sampling: Sampling::Sample {
                    temperature: 50.0,
                    top_p,
                },
                seed,
                ..GenerationConfig::greedy(10, vec![], 0)
            };
            generate(&model, &prompts, &cfg, |_, _| false).unwrap()
        };
        assert_eq!(sample(5, 1.0), sample(5, 1.0));
        let seeds: Vec<_> = (0..4).map(|s| sample(s, 1.0)).collect();
        assert!(
            seeds.windows(2).any(|w| w[0] != w[1]),
            "the seed changes nothing"
        );
        let greedy = generate(
            &model,
            &prompts,
            &GenerationConfig::greedy(10, vec![], 0),
            |_, _| false,
        )
        .unwrap();
        assert_eq!(sample(3, 1e-9), greedy);
        let bad = GenerationConfig {
            sampling: Sampling::Sample {
                temperature: 0.0,
                top_p: 1.0,
            },
            ..GenerationConfig::greedy(1, vec![], 0)
        };
        let err = generate(&model, &prompts, &bad, |_, _| false).unwrap_err();
        assert!(err.to_string().contains("generate.temperature"), "{err}");
        let err = generate(
            &model,
            &[&[]],
            &GenerationConfig::greedy(1, vec![], 0),
            |_, _| false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("prompt 0"), "{err}");
    }
}
