//! A reader of GGUF files (versions 2 and 3, little-endian), the format llama.cpp stores models in.
//!
//! [`Gguf::open`] reads the whole file, checks its header, metadata and tensor table, and keeps the
//! data section; [`Gguf::dequantize`] turns one tensor into f32 values in PyTorch's row-major order
//! with PyTorch's shape (GGUF lists dimensions innermost first; [`TensorInfo::shape`] reverses them).
//! [`unpermute_rope_rows`] undoes the row permutation llama.cpp's converter applies to LLaMA's Q and
//! K projections, exactly as transformers' GGUF loader does.
//!
//! Every error is a [`GgufError`] that names the file and, where it applies, the key or tensor.
//! [`tokenizer::tokenizer`] rebuilds the file's byte-level BPE tokenizer as a `tokenizers::Tokenizer`.
//!
//! No unsafe code and no memory map: a file is read into memory once.

mod error;
mod ggml;
mod metadata;
pub mod tokenizer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use error::{GgufError, GgufErrorKind};
pub use ggml::{GgmlType, dequantize};
pub use metadata::Value;

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions as GGUF stores them: `dims[0]` is the contiguous (fastest-varying) one.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Byte offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// The shape in PyTorch order (outermost first): `dims` reversed. A linear weight stored as
    /// GGUF `[in, out]` is `[out, in]` here, as `nn.Linear.weight`.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Bytes in the data section.
    pub fn n_bytes(&self) -> u64 {
        self.ty.bytes_of(self.n_elements())
    }
}

/// A parsed GGUF file: metadata, tensor table and the bytes of its data section.
#[derive(Debug)]
pub struct Gguf {
    path: PathBuf,
    version: u32,
    alignment: u64,
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    data: Vec<u8>,
}

/// A bounds-checked little-endian reader over the file's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufErrorKind> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(GgufErrorKind::Truncated {
                what: what(),
                at: self.pos,
                need: n,
                len: self.bytes.len(),
            });
        }
        let s = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(
        &mut self,
        what: &dyn Fn() -> String,
    ) -> Result<[u8; N], GgufErrorKind> {
        Ok(self.take(N as u64, what)?.try_into().expect("N bytes"))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufErrorKind> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufErrorKind> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufErrorKind> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufErrorKind::BadUtf8 { what: what() })
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }
}

impl Gguf {
    /// Reads and checks the GGUF file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| GgufError {
            path: path.to_path_buf(),
            kind: e.into(),
        })?;
        Self::from_bytes(path, bytes)
    }

    /// Parses a whole GGUF file held in memory; `path` labels the errors.
    pub fn from_bytes(path: impl AsRef<Path>, bytes: Vec<u8>) -> Result<Self, GgufError> {
        let path = path.as_ref().to_path_buf();
        Self::parse(&path, bytes).map_err(|kind| GgufError { path, kind })
    }

    fn parse(path: &Path, mut bytes: Vec<u8>) -> Result<Self, GgufErrorKind> {
        let mut c = Cursor {
            bytes: &bytes,
            pos: 0,
        };
        let magic: [u8; 4] = c.array(&|| "the magic".into())?;
        if &magic != b"GGUF" {
            return Err(GgufErrorKind::BadMagic(magic));
        }
        let version = c.u32(&|| "the version".into())?;
        if version != 2 && version != 3 {
            return Err(GgufErrorKind::UnsupportedVersion(version));
        }
        let tensor_count = c.u64(&|| "the tensor count".into())?;
        let kv_count = c.u64(&|| "the metadata count".into())?;
        // Each key/value takes at least 12 bytes, each tensor info at least 24: a count beyond
        // what the file could hold is truncation, found before allocating for it.
        for (count, min, what) in [
            (kv_count, 12, "metadata"),
            (tensor_count, 24, "tensor infos"),
        ] {
            if count.saturating_mul(min) > c.left() as u64 {
                return Err(GgufErrorKind::Truncated {
                    what: format!("{count} {what}"),
                    at: c.pos,
                    need: count.saturating_mul(min),
                    len: c.bytes.len(),
                });
            }
        }

        let mut metadata = Vec::with_capacity(kv_count as usize);
        let mut key_index = HashMap::new();
        for i in 0..kv_count {
            let key = c.string(&|| format!("metadata key {i}"))?;
            let ty = c.u32(&|| format!("the type of metadata key `{key}`"))?;
            let value = metadata::read_value(&mut c, ty, &key, 0)?;
            if key_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(GgufErrorKind::DuplicateKey(key));
            }
            metadata.push((key, value));
        }

        let alignment = match key_index.get("general.alignment").map(|&i| &metadata[i].1) {
            None => 32,
            Some(v) => v
                .as_u64()
                .filter(|&a| a > 0 && a.is_power_of_two())
                .ok_or_else(|| GgufErrorKind::BadAlignment(v.as_u64().unwrap_or(0)))?,
        };

        let mut tensors = Vec::with_capacity(tensor_count as usize);
        let mut tensor_index = HashMap::new();
        for i in 0..tensor_count {
            let name = c.string(&|| format!("the name of tensor {i}"))?;
            let n_dims = c.u32(&|| format!("the rank of tensor `{name}`"))?;
            if n_dims > 4 {
                return Err(GgufErrorKind::TooManyDims {
                    tensor: name,
                    n_dims,
                });
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for d in 0..n_dims {
                dims.push(c.u64(&|| format!("dimension {d} of tensor `{name}`"))?);
            }
            let id = c.u32(&|| format!("the type of tensor `{name}`"))?;
            let ty = GgmlType::from_id(id).ok_or_else(|| GgufErrorKind::UnknownGgmlType {
                tensor: name.clone(),
                id,
            })?;
            let offset = c.u64(&|| format!("the offset of tensor `{name}`"))?;
            let info = TensorInfo {
                name,
                dims,
                ty,
                offset,
            };
            check_geometry(&info, alignment)?;
            if tensor_index
                .insert(info.name.clone(), tensors.len())
                .is_some()
            {
                return Err(GgufErrorKind::DuplicateTensor(info.name));
            }
            tensors.push(info);
        }

        let data_start = if tensor_count > 0 {
            (c.pos as u64).div_ceil(alignment) * alignment
        } else {
            c.pos as u64
        };
        let data_start = (data_start as usize).min(bytes.len());
        for t in &tensors {
            let end = t.offset.checked_add(t.n_bytes());
            if end.is_none_or(|end| end > (bytes.len() - data_start) as u64) {
                return Err(GgufErrorKind::TensorOutOfBounds {
                    tensor: t.name.clone(),
                    offset: t.offset,
                    bytes: t.n_bytes(),
                    data_len: bytes.len() - data_start,
                });
            }
        }
        bytes.drain(..data_start);
        Ok(Self {
            path: path.to_path_buf(),
            version,
            alignment,
            metadata,
            key_index,
            tensors,
            tensor_index,
            data: bytes,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The tensor table in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    fn err(&self, kind: GgufErrorKind) -> GgufError {
        GgufError {
            path: self.path.clone(),
            kind,
        }
    }

    /// The value of metadata key `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    fn require(&self, key: &str) -> Result<&Value, GgufError> {
        self.get(key)
            .ok_or_else(|| self.err(GgufErrorKind::MissingKey(key.into())))
    }

    fn wrong(&self, key: &str, expected: &'static str, v: &Value) -> GgufError {
        self.err(GgufErrorKind::WrongKeyType {
            key: key.into(),
            expected,
            found: v.type_name(),
        })
    }

    /// An integer key of any integer type, as u64 (negative values are an error).
    pub fn u64_key(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_u64()
            .ok_or_else(|| self.wrong(key, "a non-negative integer", v))
    }

    /// An integer key that must fit a `usize` and be at least 1.
    pub fn count_key(&self, key: &str) -> Result<usize, GgufError> {
        let n = self.u64_key(key)?;
        if n == 0 {
            return Err(self.err(GgufErrorKind::KeyOutOfRange {
                key: key.into(),
                value: n.to_string(),
                why: "must be at least 1",
            }));
        }
        usize::try_from(n).map_err(|_| {
            self.err(GgufErrorKind::KeyOutOfRange {
                key: key.into(),
                value: n.to_string(),
                why: "does not fit this machine's usize",
            })
        })
    }

    /// A float key (f32 or f64; integers are accepted too).
    pub fn f64_key(&self, key: &str) -> Result<f64, GgufError> {
        let v = self.require(key)?;
        v.as_f64().ok_or_else(|| self.wrong(key, "a number", v))
    }

    /// A string key.
    pub fn str_key(&self, key: &str) -> Result<&str, GgufError> {
        match self.require(key)? {
            Value::String(s) => Ok(s),
            v => Err(self.wrong(key, "a string", v)),
        }
    }

    /// An array-of-strings key.
    pub fn str_array_key(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        let v = self.require(key)?;
        match v {
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.as_str()),
                    _ => Err(self.wrong(key, "an array of strings", v)),
                })
                .collect(),
            _ => Err(self.wrong(key, "an array of strings", v)),
        }
    }

    /// An array-of-integers key (any integer element type), as i64.
    pub fn int_array_key(&self, key: &str) -> Result<Vec<i64>, GgufError> {
        let v = self.require(key)?;
        match v {
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_i64()
                        .ok_or_else(|| self.wrong(key, "an array of integers", v))
                })
                .collect(),
            _ => Err(self.wrong(key, "an array of integers", v)),
        }
    }

    /// The table entry of tensor `name`.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensor_index
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| self.err(GgufErrorKind::MissingTensor(name.into())))
    }

    /// The raw bytes of tensor `name` (whole blocks of its type).
    pub fn raw(&self, name: &str) -> Result<&[u8], GgufError> {
        let t = self.tensor(name)?;
        let start = t.offset as usize;
        Ok(&self.data[start..start + t.n_bytes() as usize])
    }

    /// Tensor `name` as f32 values in row-major PyTorch order, with its PyTorch shape.
    pub fn dequantize(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), GgufError> {
        let t = self.tensor(name)?;
        let values = dequantize(t.ty, self.raw(name)?).ok_or_else(|| {
            self.err(GgufErrorKind::UnsupportedGgmlType {
                tensor: name.into(),
                ty: t.ty,
            })
        })?;
        Ok((t.shape(), values))
    }

    /// [`Gguf::dequantize`], checking the shape against `expected` (PyTorch order).
    pub fn dequantize_shaped(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>, GgufError> {
        let (shape, values) = self.dequantize(name)?;
        if shape != expected {
            return Err(self.err(GgufErrorKind::ShapeMismatch {
                tensor: name.into(),
                expected: expected.to_vec(),
                found: shape,
            }));
        }
        Ok(values)
    }
}

fn check_geometry(t: &TensorInfo, alignment: u64) -> Result<(), GgufErrorKind> {
    let (block, _) = t.ty.block();
    let ne0 = t.dims.first().copied().unwrap_or(1);
    if !ne0.is_multiple_of(block as u64) {
        return Err(GgufErrorKind::RowNotBlockAligned {
            tensor: t.name.clone(),
            ty: t.ty,
            ne0,
            block,
        });
    }
    if !t.offset.is_multiple_of(alignment) {
        return Err(GgufErrorKind::MisalignedTensor {
            tensor: t.name.clone(),
            offset: t.offset,
            alignment,
        });
    }
    let elements = t.dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
    if elements.is_none_or(|n| n.checked_mul(8).is_none()) {
        return Err(GgufErrorKind::BadTensor {
            tensor: t.name.clone(),
            why: format!("its dimensions {:?} overflow", t.dims),
        });
    }
    Ok(())
}

/// Undoes llama.cpp's permutation of the rows of a Q or K projection.
///
/// `weight` is `[rows, cols]` row-major with `rows = groups * head_dim` (groups: the query heads
/// for Q, the key/value heads for K). llama.cpp's converter moves HF row `h*hd + j*hd/2 + i` to
/// row `h*hd + 2i + j` (so that its pairwise RoPE reproduces HF's rotate-half); this returns the
/// HF order: `out[h*hd + j*hd/2 + i] = weight[h*hd + 2i + j]`. Also works on a bias (`cols = 1`).
///
/// # Panics
/// If `weight.len() != rows * cols` or `rows` is not `groups` times an even head size.
pub fn unpermute_rope_rows(weight: &[f32], rows: usize, cols: usize, groups: usize) -> Vec<f32> {
    assert_eq!(weight.len(), rows * cols, "weight is not [rows, cols]");
    assert!(
        groups > 0 && rows.is_multiple_of(groups) && (rows / groups).is_multiple_of(2),
        "{rows} rows are not {groups} groups of an even head size"
    );
    let hd = rows / groups;
    let half = hd / 2;
    let mut out = vec![0.0; weight.len()];
    for h in 0..groups {
        for i in 0..half {
            for j in 0..2 {
                let src = h * hd + 2 * i + j;
                let dst = h * hd + j * half + i;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&weight[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
