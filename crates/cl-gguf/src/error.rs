//! Errors of the GGUF reader: each names the file, and where it applies the key or tensor.

use std::path::PathBuf;

use crate::GgmlType;

/// A GGUF file could not be read or does not hold what was asked of it.
#[derive(Debug, thiserror::Error)]
#[error("GGUF file {}: {kind}", path.display())]
pub struct GgufError {
    /// The file (or the label given to an in-memory buffer).
    pub path: PathBuf,
    /// What went wrong.
    pub kind: GgufErrorKind,
}

/// What went wrong in a [`GgufError`].
#[derive(Debug, thiserror::Error)]
pub enum GgufErrorKind {
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a GGUF file: its first bytes are {0:02x?}, not \"GGUF\"")]
    BadMagic([u8; 4]),
    #[error(
        "GGUF version {0} is not supported (versions 2 and 3 are; a byte-swapped version means a big-endian file)"
    )]
    UnsupportedVersion(u32),
    #[error("truncated: {what} needs {need} bytes at byte {at}, but the file ends at byte {len}")]
    Truncated {
        what: String,
        at: usize,
        need: u64,
        len: usize,
    },
    #[error("{what}: metadata value type {id} is not one of GGUF's 13 types")]
    BadValueType { what: String, id: u32 },
    #[error("{what} is not valid UTF-8")]
    BadUtf8 { what: String },
    #[error("metadata key `{0}` appears twice")]
    DuplicateKey(String),
    #[error("tensor `{0}` appears twice")]
    DuplicateTensor(String),
    #[error("general.alignment = {0} is not a non-zero power of two")]
    BadAlignment(u64),
    #[error("tensor `{tensor}` has {n_dims} dimensions; GGUF allows at most 4")]
    TooManyDims { tensor: String, n_dims: u32 },
    #[error("tensor `{tensor}`: ggml type id {id} is unknown")]
    UnknownGgmlType { tensor: String, id: u32 },
    #[error(
        "tensor `{tensor}`: ggml type {ty:?} cannot be dequantised by this reader (it reads F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1)"
    )]
    UnsupportedGgmlType { tensor: String, ty: GgmlType },
    #[error("tensor `{tensor}`: its rows of {ne0} elements are not whole {ty:?} blocks of {block}")]
    RowNotBlockAligned {
        tensor: String,
        ty: GgmlType,
        ne0: u64,
        block: usize,
    },
    #[error("tensor `{tensor}`: offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    #[error(
        "tensor `{tensor}`: its {bytes} bytes at data offset {offset} run past the end of the data section ({data_len} bytes)"
    )]
    TensorOutOfBounds {
        tensor: String,
        offset: u64,
        bytes: u64,
        data_len: usize,
    },
    #[error("metadata key `{0}` is missing")]
    MissingKey(String),
    #[error("metadata key `{key}` is {found}, not {expected}")]
    WrongKeyType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("metadata key `{key}` = {value} is out of range: {why}")]
    KeyOutOfRange {
        key: String,
        value: String,
        why: &'static str,
    },
    #[error("tensor `{0}` is missing")]
    MissingTensor(String),
    #[error("tensor `{tensor}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tokenizer metadata: {0}")]
    BadTokenizer(String),
    #[error("tensor `{tensor}`: {why}")]
    BadTensor { tensor: String, why: String },
}
