//! Resizing a low-resolution grid `M: [m₁, m₂]` to a weight's `(out, in)` axes as two matrix
//! products, `R_out · M · R_inᵀ` with `R_out: [out, m₁]` and `R_in: [in, m₂]`: separable
//! interpolation is linear in `M`, so each axis is one small fixed matrix. This reproduces
//! PyTorch's `F.interpolate(..., align_corners=False)` (half-pixel centres) for `bicubic`
//! (Keys' kernel with `A = −0.75`, border taps clamped), `bilinear` (source index clamped at 0)
//! and `nearest` (`floor(x · m / out)`), and gradients to `M` come for free from the matmuls
//! (Burn's own bicubic `interpolate` has no backward on every backend).

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// The interpolation kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Interpolation {
    /// Cubic convolution, `A = −0.75` (PyTorch's and OpenCV's choice).
    #[default]
    Bicubic,
    /// Linear.
    Bilinear,
    /// Nearest neighbour (piecewise constant: blocks; what binary masks use).
    Nearest,
}

/// Keys' cubic convolution kernel with `A = −0.75` at distance `x`.
fn cubic(x: f64) -> f64 {
    const A: f64 = -0.75;
    let x = x.abs();
    if x <= 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
    } else {
        0.0
    }
}

/// The `[out, m]` matrix resizing a length-`m` axis to length `out` (row-major).
pub fn resize_matrix(out: usize, m: usize, kind: Interpolation) -> Vec<f32> {
    assert!(out > 0 && m > 0, "axes must be non-empty");
    let scale = m as f64 / out as f64;
    let mut r = vec![0f64; out * m];
    let last = m as i64 - 1;
    for x in 0..out {
        let row = &mut r[x * m..(x + 1) * m];
        match kind {
            Interpolation::Nearest => {
                let i = ((x as f64 * scale).floor() as usize).min(m - 1);
                row[i] = 1.0;
            }
            Interpolation::Bilinear => {
                let src = ((x as f64 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (src.floor() as i64).min(last);
                let i1 = (i0 + 1).min(last);
                let t = src - i0 as f64;
                row[i0 as usize] += 1.0 - t;
                row[i1 as usize] += t;
            }
            Interpolation::Bicubic => {
                let src = (x as f64 + 0.5) * scale - 0.5;
                let i0 = src.floor() as i64;
                let t = src - i0 as f64;
                for k in -1..=2i64 {
                    let idx = (i0 + k).clamp(0, last) as usize;
                    row[idx] += cubic(t - k as f64);
                }
            }
        }
    }
    r.into_iter().map(|v| v as f32).collect()
}

/// The two resize matrices of one weight, on a device: `rows: [out, m₁]`, `cols_t: [m₂, in]`.
#[derive(Debug, Clone)]
pub struct Resampler<B: Backend> {
    rows: Tensor<B, 2>,
    cols_t: Tensor<B, 2>,
}

impl<B: Backend> Resampler<B> {
    /// Resizes `[m₁, m₂]` grids to `[out, inp]`.
    pub fn new(
        [out, inp]: [usize; 2],
        [m1, m2]: [usize; 2],
        kind: Interpolation,
        device: &B::Device,
    ) -> Self {
        let rows = Tensor::from_data(
            TensorData::new(resize_matrix(out, m1, kind), [out, m1]),
            device,
        );
        let cols = Tensor::<B, 2>::from_data(
            TensorData::new(resize_matrix(inp, m2, kind), [inp, m2]),
            device,
        );
        Self {
            rows,
            cols_t: cols.transpose(),
        }
    }

    /// `grid: [m₁, m₂]` → `[out, inp]`.
    pub fn apply(&self, grid: Tensor<B, 2>) -> Tensor<B, 2> {
        self.rows.clone().matmul(grid).matmul(self.cols_t.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    const GRID: [[f32; 3]; 2] = [[1.0, 2.0, 0.5], [-1.0, 0.25, 3.0]];

    fn resized(kind: Interpolation) -> Vec<f32> {
        let device = Default::default();
        let r = Resampler::<B>::new([5, 7], [2, 3], kind, &device);
        r.apply(Tensor::from_data(GRID, &device))
            .into_data()
            .to_vec()
            .unwrap()
    }

    fn assert_close(got: &[f32], want: &[[f32; 7]; 5]) {
        for (g, w) in got.iter().zip(want.iter().flatten()) {
            assert!((g - w).abs() < 2e-6, "{got:?}");
        }
    }

    /// Reference: `torch.nn.functional.interpolate(grid[None, None], size=(5, 7), mode=...,
    /// align_corners=False)` with torch 2.15 (values rounded to 6 decimals).
    #[test]
    fn matches_pytorch_interpolate() {
        assert_close(
            &resized(Interpolation::Bicubic),
            &[
                [
                    1.114184, 1.363983, 1.991296, 2.192938, 1.468549, 0.475313, 0.009154,
                ],
                [
                    0.724429, 0.974579, 1.548925, 1.8565, 1.48018, 0.857711, 0.579108,
                ],
                [
                    -0.122995, 0.127916, 0.587099, 1.125, 1.505466, 1.689139, 1.818331,
                ],
                [
                    -0.970421, -0.718747, -0.374728, 0.393499, 1.530753, 2.520569, 3.057556,
                ],
                [
                    -1.360175, -1.108151, -0.817098, 0.057063, 1.542383, 2.902967, 3.62751,
                ],
            ],
        );
        assert_close(
            &resized(Interpolation::Bilinear),
            &[
                [1.0, 1.142857, 1.571429, 2.0, 1.357143, 0.714286, 0.5],
                [0.8, 0.946429, 1.385714, 1.825, 1.364286, 0.903571, 0.75],
                [0.0, 0.160714, 0.642857, 1.125, 1.392857, 1.660714, 1.75],
                [-0.8, -0.625, -0.1, 0.425, 1.421429, 2.417857, 2.75],
                [-1.0, -0.821429, -0.285714, 0.25, 1.428571, 2.607143, 3.0],
            ],
        );
        assert_close(
            &resized(Interpolation::Nearest),
            &[
                [1.0, 1.0, 1.0, 2.0, 2.0, 0.5, 0.5],
                [1.0, 1.0, 1.0, 2.0, 2.0, 0.5, 0.5],
                [1.0, 1.0, 1.0, 2.0, 2.0, 0.5, 0.5],
                [-1.0, -1.0, -1.0, 0.25, 0.25, 3.0, 3.0],
                [-1.0, -1.0, -1.0, 0.25, 0.25, 3.0, 3.0],
            ],
        );
    }

    #[test]
    fn rows_sum_to_one_and_same_size_is_identity() {
        for kind in [
            Interpolation::Bicubic,
            Interpolation::Bilinear,
            Interpolation::Nearest,
        ] {
            for (out, m) in [(1, 1), (3, 4), (96, 4), (1280, 16)] {
                let r = resize_matrix(out, m, kind);
                for row in r.chunks(m) {
                    assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{kind:?}");
                }
            }
            let eye = resize_matrix(5, 5, kind);
            for (i, row) in eye.chunks(5).enumerate() {
                for (j, v) in row.iter().enumerate() {
                    assert_eq!(*v, if i == j { 1.0 } else { 0.0 }, "{kind:?}");
                }
            }
        }
    }
}
