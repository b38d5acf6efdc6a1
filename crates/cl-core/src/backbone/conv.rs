//! Padded ("same") 2-D convolution written as shifted matrix products, for MobileNetV2's three
//! kinds: 1×1 (one batched matmul), dense k×k (one matmul per kernel tap) and depthwise k×k (one
//! multiply-add per tap). Burn 0.21's ndarray `conv2d` loops over output elements with a slice
//! per element (measured: >90% of a MobileNetV2 training step); these formulations use its matmul
//! and element-wise kernels instead, keep autodiff (reshape, slice, cat, matmul only: no stepped
//! slice) and give the same result on every backend. Other shapes fall back to Burn's `conv2d`.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

/// `x: [n, c, h, w]` convolved with `weight: [o, c / groups, k, k]`, stride `stride`, zero
/// padding `(k − 1) / 2`, no bias → `[n, o, h', w']` with `h' = (h + 2p − k) / stride + 1`.
pub fn conv2d_same<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    stride: usize,
    groups: usize,
) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let [o, per_group, k, k2] = weight.dims();
    let depthwise = groups == c && per_group == 1 && o == c;
    let supported =
        k == k2 && k % 2 == 1 && (stride == 1 || stride == 2) && (groups == 1 || depthwise);
    if !supported {
        let pad = (k - 1) / 2;
        let options = ConvOptions::new([stride; 2], [pad; 2], [1, 1], groups);
        return conv2d(x, weight, None, options);
    }
    if k == 1 && stride == 1 && groups == 1 {
        let y = weight.reshape([1, o, c]).matmul(x.reshape([n, c, h * w]));
        return y.reshape([n, o, h, w]);
    }
    let pad = (k - 1) / 2;
    let (ho, wo) = (
        (h + 2 * pad - k) / stride + 1,
        (w + 2 * pad - k) / stride + 1,
    );
    let taps = Taps::new(x, pad, stride, [ho, wo], k);
    let mut sum: Option<Tensor<B, 4>> = None;
    for ky in 0..k {
        for kx in 0..k {
            let patch = taps.at(ky, kx);
            let tap = weight
                .clone()
                .slice([0..o, 0..per_group, ky..ky + 1, kx..kx + 1]);
            let term = if depthwise {
                patch * tap.reshape([1, c, 1, 1])
            } else {
                tap.reshape([1, o, c])
                    .matmul(patch.reshape([n, c, ho * wo]))
                    .reshape([n, o, ho, wo])
            };
            sum = Some(match sum {
                Some(s) => s + term,
                None => term,
            });
        }
    }
    sum.expect("k ≥ 1")
}

/// The input, zero-padded, from which each kernel tap's `[n, c, h', w']` view is cut.
struct Taps<B: Backend> {
    /// `[n, c, H, W]`.
    padded: Tensor<B, 4>,
    /// Stride 2: `[n, c, H/2, 2, W/2, 2]` (row / column parity split out, so a stride-2 view is
    /// a unit-step slice).
    split: Option<Tensor<B, 6>>,
    stride: usize,
    out: [usize; 2],
}

impl<B: Backend> Taps<B> {
    fn new(x: Tensor<B, 4>, pad: usize, stride: usize, out: [usize; 2], k: usize) -> Self {
        let [n, c, h, w] = x.dims();
        // Rows needed: stride · (h' − 1) + k, rounded up to a multiple of the stride.
        let need = |o: usize| (stride * (o - 1) + k).div_ceil(stride) * stride;
        let (hp, wp) = (need(out[0]).max(h + pad), need(out[1]).max(w + pad));
        let device = x.device();
        let zeros = |dims: [usize; 4]| Tensor::<B, 4>::zeros(dims, &device);
        let mut rows = vec![];
        if pad > 0 {
            rows.push(zeros([n, c, pad, w]));
        }
        rows.push(x.slice([0..n, 0..c, 0..h.min(hp - pad), 0..w]));
        let h_used = pad + h.min(hp - pad);
        if hp > h_used {
            rows.push(zeros([n, c, hp - h_used, w]));
        }
        let x = Tensor::cat(rows, 2);
        let mut cols = vec![];
        if pad > 0 {
            cols.push(zeros([n, c, hp, pad]));
        }
        cols.push(x.slice([0..n, 0..c, 0..hp, 0..w.min(wp - pad)]));
        let w_used = pad + w.min(wp - pad);
        if wp > w_used {
            cols.push(zeros([n, c, hp, wp - w_used]));
        }
        let padded = Tensor::cat(cols, 3);
        let split = (stride > 1).then(|| {
            padded
                .clone()
                .reshape([n, c, hp / stride, stride, wp / stride, stride])
        });
        Self {
            padded,
            split,
            stride,
            out,
        }
    }

    /// The input under kernel tap `(ky, kx)` for every output position: `[n, c, h', w']`.
    fn at(&self, ky: usize, kx: usize) -> Tensor<B, 4> {
        let [n, c, _, _] = self.padded.dims();
        let [ho, wo] = self.out;
        let Some(split) = &self.split else {
            // Stride 1: a plain window of the padded input.
            return self
                .padded
                .clone()
                .slice([0..n, 0..c, ky..ky + ho, kx..kx + wo]);
        };
        let s = self.stride;
        let (ry, py) = (ky / s, ky % s);
        let (rx, px) = (kx / s, kx % s);
        split
            .clone()
            .slice([0..n, 0..c, ry..ry + ho, py..py + 1, rx..rx + wo, px..px + 1])
            .reshape([n, c, ho, wo])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Distribution;

    type B = Autodiff<NdArray<f32>>;

    fn close(a: Tensor<B, 4>, b: Tensor<B, 4>, what: &str) {
        assert_eq!(a.dims(), b.dims(), "{what}");
        let diff = (a - b).abs().max().into_scalar();
        assert!(diff < 1e-4, "{what}: max |Δ| = {diff}");
    }

    #[test]
    fn matches_burn_conv2d_values_and_gradients() {
        let device = Default::default();
        // (channels in, out, k, stride, groups, size)
        for (c, o, k, stride, groups, size) in [
            (3, 8, 3, 2, 1, 9),
            (3, 8, 3, 2, 1, 8),
            (4, 6, 1, 1, 1, 5),
            (6, 6, 3, 1, 6, 7),
            (6, 6, 3, 2, 6, 8),
            (6, 6, 3, 2, 6, 7),
            (5, 5, 3, 2, 5, 2),
            (5, 5, 3, 2, 5, 1),
        ] {
            let x =
                Tensor::<B, 4>::random([2, c, size, size], Distribution::Normal(0.0, 1.0), &device)
                    .require_grad();
            let w = Tensor::<B, 4>::random(
                [o, c / groups, k, k],
                Distribution::Normal(0.0, 1.0),
                &device,
            )
            .require_grad();
            let pad = (k - 1) / 2;
            let options = ConvOptions::new([stride; 2], [pad; 2], [1, 1], groups);
            let reference = conv2d(x.clone(), w.clone(), None, options);
            let ours = conv2d_same(x.clone(), w.clone(), stride, groups);
            let what = format!("c{c} o{o} k{k} s{stride} g{groups} {size}×{size}");
            close(ours.clone(), reference.clone(), &what);
            // Gradients of a weighted sum, so every output position counts differently.
            let probe =
                Tensor::<B, 4>::random(reference.dims(), Distribution::Normal(0.0, 1.0), &device);
            let g_ref = (reference * probe.clone()).sum().backward();
            let g_ours = (ours * probe).sum().backward();
            let to4 = |t: Tensor<NdArray<f32>, 4>| Tensor::<B, 4>::from_inner(t);
            close(
                to4(w.grad(&g_ours).unwrap()),
                to4(w.grad(&g_ref).unwrap()),
                &format!("{what} d/dw"),
            );
            close(
                to4(x.grad(&g_ours).unwrap()),
                to4(x.grad(&g_ref).unwrap()),
                &format!("{what} d/dx"),
            );
        }
    }
}
