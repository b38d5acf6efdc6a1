//! The byte-level BPE tokenizer stored in a GGUF file's metadata, as a `tokenizers::Tokenizer`.
//!
//! Reads `tokenizer.ggml.model` (must be `gpt2`), `.pre`, `.tokens`, `.merges` and `.token_type`,
//! and rebuilds what llama.cpp runs: a BPE over the vocabulary and merges (no unknown token, no
//! byte fallback), byte-level pre-tokenisation with the GPT-2 regex, preceded for the `smollm`
//! pre-tokenizer (and the others llama.cpp gives the same regex list) by one split isolating every
//! digit, a byte-level decoder, and no BOS or EOS added (llama.cpp adds none for this family:
//! `tokenizer.ggml.add_bos_token` is false). Control tokens (`token_type` 3) are special tokens,
//! matched whole in the input. transformers' own GGUF conversion does not isolate digits for
//! `smollm`; this follows llama.cpp and SmolLM's original `tokenizer.json`.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::processors::byte_level::ByteLevel as ByteLevelProcessor;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

use crate::{Gguf, GgufError, GgufErrorKind};

/// llama.cpp pre-tokenizer names whose regex list is `\p{N}` then GPT-2's (`LLAMA_VOCAB_PRE_TYPE_STARCODER` family).
const DIGITS_THEN_GPT2: [&str; 6] = [
    "smollm",
    "starcoder",
    "refact",
    "command-r",
    "codeshell",
    "exaone",
];

/// `token_type` of a control token (`<|im_start|>`, `<|endoftext|>`, …).
const CONTROL: i64 = 3;

/// Special token ids named in the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
}

/// The tokenizer of `gguf` and its special ids.
pub fn tokenizer(gguf: &Gguf) -> Result<(Tokenizer, SpecialIds), GgufError> {
    let bad = |why: String| GgufError {
        path: gguf.path().to_path_buf(),
        kind: GgufErrorKind::BadTokenizer(why),
    };
    let model = gguf.str_key("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(bad(format!(
            "tokenizer.ggml.model is `{model}`; only `gpt2` (byte-level BPE) is read"
        )));
    }
    let pre = match gguf.get("tokenizer.ggml.pre") {
        None => "gpt2",
        Some(_) => gguf.str_key("tokenizer.ggml.pre")?,
    };
    let isolate_digits = if DIGITS_THEN_GPT2.contains(&pre) {
        true
    } else if pre == "gpt2" {
        false
    } else {
        return Err(bad(format!(
            "tokenizer.ggml.pre is `{pre}`; this reader knows `gpt2` and {DIGITS_THEN_GPT2:?}"
        )));
    };

    let tokens = gguf.str_array_key("tokenizer.ggml.tokens")?;
    let mut vocab = Vocab::default();
    for (id, t) in tokens.iter().enumerate() {
        if vocab.insert(t.to_string(), id as u32).is_some() {
            return Err(bad(format!(
                "token `{t}` appears twice in tokenizer.ggml.tokens"
            )));
        }
    }
    let merges = gguf
        .str_array_key("tokenizer.ggml.merges")?
        .iter()
        .enumerate()
        .map(|(i, m)| {
            // The first space at byte index ≥ 1, as llama.cpp's `word.find(' ', 1)`.
            let at = m.bytes().skip(1).position(|b| b == b' ').map(|k| k + 1);
            match at {
                Some(p) => Ok((m[..p].to_string(), m[p + 1..].to_string())),
                None => Err(bad(format!(
                    "merge {i} `{m}` of tokenizer.ggml.merges is not two tokens separated by a space"
                ))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (a, b) in &merges {
        for part in [a, b, &format!("{a}{b}")] {
            if !vocab.contains_key(part.as_str()) {
                return Err(bad(format!(
                    "merge `{a} {b}` names `{part}`, which is not in tokenizer.ggml.tokens"
                )));
            }
        }
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| bad(format!("the BPE does not build: {e}")))?;

    let mut tok = Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    let pre_tokenizer: PreTokenizerWrapper = if isolate_digits {
        Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
    } else {
        byte_level.into()
    };
    tok.with_pre_tokenizer(Some(pre_tokenizer));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    tok.with_post_processor(Some(ByteLevelProcessor::new(true, false, true)));

    let types = match gguf.get("tokenizer.ggml.token_type") {
        None => vec![],
        Some(_) => gguf.int_array_key("tokenizer.ggml.token_type")?,
    };
    if !types.is_empty() && types.len() != tokens.len() {
        return Err(bad(format!(
            "tokenizer.ggml.token_type has {} entries for {} tokens",
            types.len(),
            tokens.len()
        )));
    }
    let control: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|&(_, &ty)| ty == CONTROL)
        .map(|(t, _)| AddedToken::from(t.to_string(), true))
        .collect();
    tok.add_special_tokens(&control);

    let id = |key: &str| -> Result<Option<u32>, GgufError> {
        if gguf.get(key).is_none() {
            return Ok(None);
        }
        let v = gguf.u64_key(key)?;
        match u32::try_from(v) {
            Ok(v) if (v as usize) < tokens.len() => Ok(Some(v)),
            _ => Err(GgufError {
                path: gguf.path().to_path_buf(),
                kind: GgufErrorKind::KeyOutOfRange {
                    key: key.into(),
                    value: v.to_string(),
                    why: "is not a token id",
                },
            }),
        }
    };
    let ids = SpecialIds {
        bos: id("tokenizer.ggml.bos_token_id")?,
        eos: id("tokenizer.ggml.eos_token_id")?,
        pad: id("tokenizer.ggml.padding_token_id")?,
    };
    Ok((tok, ids))
}
