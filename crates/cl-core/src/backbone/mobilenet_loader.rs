//! Loading torchvision's MobileNetV2 ImageNet checkpoint (`mobilenet_v2-b0353104.pth`, a legacy
//! non-zip PyTorch pickle) into [`MobileNetV2`] with burn-store's `PytorchReader`.
//!
//! Every tensor is looked up by its torchvision name ([`torchvision_names`]) and its shape
//! checked against [`mobilenet_v2_layout`]; errors name the file and the tensor. The classifier
//! weight is transposed (`[1000, 1280]` → Burn's `[1280, 1000]`); `num_batches_tracked` is unused.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use burn_store::pytorch::PytorchReader;

use super::mobilenet_v2::{ConvBn, FrozenBatchNorm, MobileNetV2, mobilenet_v2_layout};
use crate::error::{ClError, Result};

/// torchvision's name of one of our convolutions: `(weight key, batch-norm prefix)`.
/// `stem` → `features.0.0` / `features.0.1`; block `i` is `features.{i+1}`: with an expansion
/// `conv.0.0`/`conv.0.1` (expand), `conv.1.0`/`conv.1.1` (depthwise), `conv.2`/`conv.3`
/// (project); without one (block 0) `conv.0.0`/`conv.0.1` (depthwise), `conv.1`/`conv.2`
/// (project); `head` → `features.18.0` / `features.18.1`.
pub fn torchvision_names(path: &str, has_expand: bool) -> (String, String) {
    let pair = |conv: String, bn: String| (format!("{conv}.weight"), bn);
    match path {
        "stem" => pair("features.0.0".into(), "features.0.1".into()),
        "head" => pair("features.18.0".into(), "features.18.1".into()),
        _ => {
            let mut parts = path.split('.');
            let (_, index, part) = (parts.next(), parts.next(), parts.next());
            let block: usize = index.and_then(|i| i.parse().ok()).unwrap_or(0);
            let f = format!("features.{}.conv", block + 1);
            match (part, has_expand) {
                (Some("expand"), _) => pair(format!("{f}.0.0"), format!("{f}.0.1")),
                (Some("depthwise"), true) => pair(format!("{f}.1.0"), format!("{f}.1.1")),
                (Some("depthwise"), false) => pair(format!("{f}.0.0"), format!("{f}.0.1")),
                (_, true) => pair(format!("{f}.2"), format!("{f}.3")),
                (_, false) => pair(format!("{f}.1"), format!("{f}.2")),
            }
        }
    }
}

/// Loads the torchvision checkpoint at `path`; the result is frozen (`no_grad`).
pub fn load_mobilenet_v2<B: Backend>(path: &Path, device: &B::Device) -> Result<MobileNetV2<B>> {
    if !path.exists() {
        return Err(ClError::io(
            "reading MobileNetV2 weights",
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    let reader = PytorchReader::new(path).map_err(|e| ClError::Record {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let context = format!(" in `{}`", path.display());
    let data = |name: &str, shape: &[usize]| -> Result<TensorData> {
        let snapshot = reader.get(name).ok_or_else(|| ClError::MissingTensor {
            tensor: name.to_string(),
            context: context.clone(),
        })?;
        let actual = snapshot.shape.to_vec();
        if actual != shape {
            return Err(ClError::ShapeMismatch {
                tensor: name.to_string(),
                expected: shape.to_vec(),
                actual,
            });
        }
        let data = snapshot.to_data().map_err(|e| ClError::Record {
            path: path.to_path_buf(),
            reason: format!("tensor `{name}`: {e:?}"),
        })?;
        Ok(data.convert::<f32>())
    };
    let param1 = |name: &str, n: usize| -> Result<Param<Tensor<B, 1>>> {
        Ok(Param::from_tensor(Tensor::from_data(
            data(name, &[n])?,
            device,
        )))
    };
    let (layout, residual) = mobilenet_v2_layout();
    let mut convs = Vec::with_capacity(layout.len());
    for conv in &layout {
        let block_has_expand = layout
            .iter()
            .any(|other| other.path.ends_with(".expand") && same_block(&other.path, &conv.path));
        let (weight, bn) = torchvision_names(&conv.path, block_has_expand);
        let (shape, c) = (&conv.shape, conv.shape[0]);
        convs.push(ConvBn {
            weight: Param::from_tensor(Tensor::from_data(data(&weight, shape)?, device)),
            norm: FrozenBatchNorm {
                gamma: param1(&format!("{bn}.weight"), c)?,
                beta: param1(&format!("{bn}.bias"), c)?,
                running_mean: param1(&format!("{bn}.running_mean"), c)?,
                running_var: param1(&format!("{bn}.running_var"), c)?,
                epsilon: 1e-5,
            },
            stride: conv.stride,
            groups: conv.groups,
            relu6: conv.relu6,
        });
    }
    let weight: Tensor<B, 2> =
        Tensor::from_data(data("classifier.1.weight", &[1000, 1280])?, device);
    let classifier = Linear {
        weight: Param::from_tensor(weight.transpose()),
        bias: Some(param1("classifier.1.bias", 1000)?),
    };
    Ok(MobileNetV2::assemble(convs, &residual, classifier).no_grad())
}

/// `true` when two `blocks.{i}.*` paths are in the same block.
fn same_block(a: &str, b: &str) -> bool {
    let block = |p: &str| p.split('.').take(2).collect::<Vec<_>>().join(".");
    a.starts_with("blocks.") && block(a) == block(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_torchvision() {
        assert_eq!(
            torchvision_names("stem", false),
            ("features.0.0.weight".into(), "features.0.1".into())
        );
        assert_eq!(
            torchvision_names("blocks.0.depthwise", false),
            (
                "features.1.conv.0.0.weight".into(),
                "features.1.conv.0.1".into()
            )
        );
        assert_eq!(
            torchvision_names("blocks.0.project", false),
            (
                "features.1.conv.1.weight".into(),
                "features.1.conv.2".into()
            )
        );
        assert_eq!(
            torchvision_names("blocks.3.expand", true),
            (
                "features.4.conv.0.0.weight".into(),
                "features.4.conv.0.1".into()
            )
        );
        assert_eq!(
            torchvision_names("blocks.3.depthwise", true),
            (
                "features.4.conv.1.0.weight".into(),
                "features.4.conv.1.1".into()
            )
        );
        assert_eq!(
            torchvision_names("blocks.16.project", true),
            (
                "features.17.conv.2.weight".into(),
                "features.17.conv.3".into()
            )
        );
        assert_eq!(
            torchvision_names("head", false),
            ("features.18.0.weight".into(), "features.18.1".into())
        );
    }

    #[test]
    fn missing_and_corrupt_files_are_named() {
        let device = Default::default();
        let err = load_mobilenet_v2::<burn::backend::NdArray<f32>>(
            Path::new("/nonexistent/mobilenet.pth"),
            &device,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/mobilenet.pth"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.pth");
        std::fs::write(&bad, b"not a pickle at all").unwrap();
        let err = load_mobilenet_v2::<burn::backend::NdArray<f32>>(&bad, &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.pth"), "{err}");
    }
}
