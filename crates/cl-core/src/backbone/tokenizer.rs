//! Text → token ids with a Hugging Face `tokenizer.json` (the `tokenizers` crate): special tokens
//! added, truncated to a configurable length, no padding (batches are padded by
//! [`super::bert::pad_batch`], and the attention mask hides the padding).

use std::path::{Path, PathBuf};

use tokenizers::{Tokenizer, TruncationParams};

use super::bert::TokenIds;
use crate::error::{ClError, Result};

/// A loaded tokenizer with its truncation length.
pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    max_len: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("path", &self.path)
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json`; sequences are truncated to `max_len` tokens (special tokens included).
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self> {
        if max_len < 2 {
            return Err(ClError::config(
                "max_len",
                "must be at least 2 ([CLS] and [SEP])",
            ));
        }
        if !path.is_file() {
            return Err(ClError::io(
                "reading tokenizer",
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            ));
        }
        let mut inner = Tokenizer::from_file(path).map_err(|e| ClError::Tokenizer {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| ClError::Tokenizer {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            inner,
            path: path.to_path_buf(),
            max_len,
        })
    }

    /// Truncation length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Token ids of many texts (in parallel).
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<TokenIds>> {
        let encodings =
            self.inner
                .encode_batch(texts.to_vec(), true)
                .map_err(|e| ClError::Tokenizer {
                    path: self.path.clone(),
                    reason: e.to_string(),
                })?;
        Ok(encodings
            .into_iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    }

    /// Token ids of one text.
    pub fn encode(&self, text: &str) -> Result<TokenIds> {
        Ok(self.encode_batch(&[text])?.remove(0))
    }
}
