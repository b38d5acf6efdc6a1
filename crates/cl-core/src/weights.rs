//! Reading float tensors from safetensors files whatever their float type (F32, F16, BF16,
//! F64 become f32), refusing non-finite values, with errors that name the file and the tensor.

use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{ClError, Result};

/// The values of float tensor `name` as f32 (row-major, `view.shape()`); F16 / BF16 / F64 are
/// converted. Integer and bool tensors are an error naming the tensor and its type.
pub fn float_values(path: &Path, name: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    let data = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        other => {
            return Err(ClError::Record {
                path: path.to_path_buf(),
                reason: format!(
                    "tensor `{name}` is {other:?}; a float tensor (F32, F16, BF16 or F64) is expected"
                ),
            });
        }
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(ClError::Record {
            path: path.to_path_buf(),
            reason: format!(
                "tensor `{name}` holds a non-finite value ({} at flat index {i}): the file is damaged or was saved from a diverged model",
                values[i]
            ),
        });
    }
    Ok(values)
}

/// `true` for the float types [`float_values`] reads.
pub fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)
}

/// The bytes of safetensors file `path` with every float tensor as F32 (checked finite by
/// [`float_values`]) and every other tensor unchanged, ready for a loader that takes F32 only.
pub fn f32_safetensors(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| ClError::io("reading weights", path, e))?;
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| ClError::Record {
        path: path.to_path_buf(),
        reason: format!("not a valid safetensors file: {e}"),
    })?;
    let mut converted = false;
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in file.tensors() {
        if is_float(view.dtype()) {
            let values = float_values(path, &name, &view)?;
            converted |= view.dtype() != Dtype::F32;
            let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.push((name, Dtype::F32, view.shape().to_vec(), raw));
        } else {
            tensors.push((
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            ));
        }
    }
    if !converted {
        return Ok(bytes);
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, raw)| {
            TensorView::new(*dtype, shape.clone(), raw)
                .map(|v| (name.clone(), v))
                .map_err(|e| ClError::Record {
                    path: path.to_path_buf(),
                    reason: format!("tensor `{name}`: {e}"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| ClError::Record {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, dtype: Dtype, raw: &[u8], shape: Vec<usize>) {
        let view = TensorView::new(dtype, shape, raw).unwrap();
        std::fs::write(path, safetensors::serialize([("w", view)], None).unwrap()).unwrap();
    }

    fn read_back(bytes: &[u8]) -> Vec<f32> {
        let file = safetensors::SafeTensors::deserialize(bytes).unwrap();
        let view = file.tensor("w").unwrap();
        assert_eq!(view.dtype(), Dtype::F32);
        float_values(Path::new("x"), "w", &view).unwrap()
    }

    #[test]
    fn half_precision_tensors_become_f32() {
        let dir = tempfile::tempdir().unwrap();
        let values = [1.5f32, -2.0, 0.25, 65504.0];
        for (dtype, raw) in [
            (
                Dtype::F16,
                values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect::<Vec<u8>>(),
            ),
            (
                Dtype::BF16,
                [1.5f32, -2.0, 0.25, 3.0]
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect(),
            ),
        ] {
            let path = dir.path().join("w.safetensors");
            write(&path, dtype, &raw, vec![2, 2]);
            let got = read_back(&f32_safetensors(&path).unwrap());
            let want = if dtype == Dtype::F16 {
                values.to_vec()
            } else {
                vec![1.5, -2.0, 0.25, 3.0]
            };
            assert_eq!(got, want, "{dtype:?}");
        }
    }

    #[test]
    fn bad_tensors_are_errors_naming_file_and_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nan.safetensors");
        let raw: Vec<u8> = [0.0f32, f32::NAN]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write(&path, Dtype::F32, &raw, vec![2]);
        let err = f32_safetensors(&path).unwrap_err().to_string();
        assert!(
            err.contains("nan.safetensors") && err.contains("`w`") && err.contains("non-finite"),
            "{err}"
        );
        let path = dir.path().join("garbage.safetensors");
        std::fs::write(&path, b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header").unwrap();
        let err = f32_safetensors(&path).unwrap_err().to_string();
        assert!(
            err.contains("garbage.safetensors") && err.contains("not a valid"),
            "{err}"
        );
        let file = safetensors::SafeTensors::deserialize(&{
            let raw = [1u8, 0, 0, 0, 0, 0, 0, 0];
            let view = TensorView::new(Dtype::I64, vec![1], &raw).unwrap();
            safetensors::serialize([("ids", view)], None).unwrap()
        })
        .map(|f| {
            let view = f.tensor("ids").unwrap();
            float_values(Path::new("m.safetensors"), "ids", &view)
                .unwrap_err()
                .to_string()
        })
        .unwrap();
        assert!(file.contains("`ids`") && file.contains("I64"), "{file}");
    }
}
