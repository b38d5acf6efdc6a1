//! cl-peft patch (vendor/README.md): element-wise kernels for GELU and softmax that the compiler
//! vectorises, where the published crate calls libm's scalar `erf` / `exp` once per element.
//!
//! f32 follows PyTorch's vectorised CPU kernels (ATen `Vectorized<float>`): `erf` is
//! Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), and `exp` is the Cephes
//! polynomial with a Cody–Waite range reduction (about 1 ulp). Every multiply–add is a fused
//! `mul_add`, so the AVX2 + FMA build and the portable one give bit-identical results; the
//! AVX2 one is picked at run time. f64 keeps libm's `erf` and `exp`.

/// 1 / √2.
const FRAC_1_SQRT_2: f64 = core::f64::consts::FRAC_1_SQRT_2;
/// 1 / √(2π).
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Element types with GELU and softmax kernels over contiguous memory.
pub(crate) trait FastMath: Copy {
    /// `x ← x · Φ(x)`, the exact GELU.
    fn gelu_in_place(xs: &mut [Self]);
    /// `g ← g · (Φ(x) + x · φ(x))`, the exact GELU's derivative times the upstream gradient;
    /// `xs` and `grads` have the same length.
    fn gelu_backward_in_place(xs: &[Self], grads: &mut [Self]);
    /// Softmax of each consecutive run of `row` values, in place; `xs.len()` is a multiple of
    /// `row`.
    fn softmax_rows_in_place(xs: &mut [Self], row: usize);
    /// Layer norm of each consecutive run of `gamma.len()` values, in place:
    /// `(x − μ) / √(σ² + ε) · γ + β`, mean and biased variance accumulated in f64.
    fn layer_norm_rows_in_place(xs: &mut [Self], gamma: &[Self], beta: &[Self], epsilon: f64);
}

impl FastMath for f64 {
    fn gelu_in_place(xs: &mut [f64]) {
        for x in xs {
            *x = 0.5 * *x * (1.0 + libm::erf(*x * FRAC_1_SQRT_2));
        }
    }

    fn gelu_backward_in_place(xs: &[f64], grads: &mut [f64]) {
        for (&x, g) in xs.iter().zip(grads) {
            let cdf = 0.5 * (1.0 + libm::erf(x * FRAC_1_SQRT_2));
            let pdf = libm::exp(-0.5 * x * x) * FRAC_1_SQRT_2PI;
            *g *= cdf + x * pdf;
        }
    }

    fn softmax_rows_in_place(xs: &mut [f64], row: usize) {
        for lane in xs.chunks_exact_mut(row) {
            let max = lane
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| if v > m { v } else { m });
            let mut sum = 0.0;
            for v in lane.iter_mut() {
                *v = libm::exp(*v - max);
                sum += *v;
            }
            for v in lane.iter_mut() {
                *v /= sum;
            }
        }
    }

    fn layer_norm_rows_in_place(xs: &mut [f64], gamma: &[f64], beta: &[f64], epsilon: f64) {
        let d = gamma.len();
        for row in xs.chunks_exact_mut(d) {
            let mean = row.iter().sum::<f64>() / d as f64;
            let variance = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
            let inv_std = 1.0 / (variance + epsilon).sqrt();
            for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *v = (*v - mean) * inv_std * g + b;
            }
        }
    }
}

impl FastMath for f32 {
    fn gelu_in_place(xs: &mut [f32]) {
        dispatch!(gelu_f32(xs: &mut [f32]))
    }

    fn gelu_backward_in_place(xs: &[f32], grads: &mut [f32]) {
        dispatch!(gelu_backward_f32(xs: &[f32], grads: &mut [f32]))
    }

    fn softmax_rows_in_place(xs: &mut [f32], row: usize) {
        dispatch!(softmax_rows_f32(xs: &mut [f32], row: usize))
    }

    fn layer_norm_rows_in_place(xs: &mut [f32], gamma: &[f32], beta: &[f32], epsilon: f64) {
        dispatch!(layer_norm_rows_f32(
            xs: &mut [f32],
            gamma: &[f32],
            beta: &[f32],
            epsilon: f64
        ))
    }
}

/// Calls `$kernel` compiled for AVX2 + FMA when the CPU has them, else the portable build.
macro_rules! dispatch {
    ($kernel:ident($($arg:ident: $ty:ty),*)) => {{
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) {
                $kernel($($arg),*)
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has the features `avx2` is compiled for.
                return unsafe { avx2($($arg),*) };
            }
        }
        $kernel($($arg),*)
    }};
}
use dispatch;

/// Lanes of the explicit accumulators in reductions (one AVX2 register of f32).
const LANES: usize = 8;

#[inline(always)]
fn gelu_f32(xs: &mut [f32]) {
    for x in xs {
        let v = *x;
        *x = 0.5 * v * (1.0 + erf_f32(v * FRAC_1_SQRT_2 as f32));
    }
}

#[inline(always)]
fn gelu_backward_f32(xs: &[f32], grads: &mut [f32]) {
    for (&x, g) in xs.iter().zip(grads) {
        let cdf = 0.5 * (1.0 + erf_f32(x * FRAC_1_SQRT_2 as f32));
        let pdf = exp_f32(-0.5 * x * x) * FRAC_1_SQRT_2PI as f32;
        *g *= x.mul_add(pdf, cdf);
    }
}

#[inline(always)]
fn softmax_rows_f32(xs: &mut [f32], row: usize) {
    for lane in xs.chunks_exact_mut(row) {
        // A NaN is skipped by the max but gives a NaN exponential, hence a NaN sum and a NaN
        // row, as the unfused softmax does. Flat loops, so that each one vectorises.
        let max = reduce(lane, f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
        for v in lane.iter_mut() {
            *v = exp_f32(*v - max);
        }
        let sum = reduce(lane, 0.0, |s, v| s + v);
        for v in lane.iter_mut() {
            *v /= sum;
        }
    }
}

#[inline(always)]
fn layer_norm_rows_f32(xs: &mut [f32], gamma: &[f32], beta: &[f32], epsilon: f64) {
    let d = gamma.len();
    for row in xs.chunks_exact_mut(d) {
        let mean = sum_f64(row.iter().map(|&v| v as f64)) / d as f64;
        let variance = sum_f64(row.iter().map(|&v| {
            let c = v as f64 - mean;
            c * c
        })) / d as f64;
        let inv_std = (1.0 / (variance + epsilon).sqrt()) as f32;
        let mean = mean as f32;
        for ((v, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = ((*v - mean) * inv_std).mul_add(g, b);
        }
    }
}

/// The sum of `values` in four interleaved f64 accumulators (vectorisable).
#[inline(always)]
fn sum_f64(values: impl ExactSizeIterator<Item = f64>) -> f64 {
    let mut acc = [0.0f64; 4];
    for (i, v) in values.enumerate() {
        acc[i % 4] += v;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// Folds `xs` with `f` in `LANES` interleaved accumulators (vectorisable), then folds those.
#[inline(always)]
fn reduce(xs: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let (chunks, rest) = xs.as_chunks::<LANES>();
    let mut acc = [init; LANES];
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = f(*a, v);
        }
    }
    let tail = rest.iter().fold(init, |a, &v| f(a, v));
    acc.into_iter().fold(tail, f)
}

/// `e^x` in f32: Cody–Waite reduction `x = n·ln 2 + r`, the Cephes `expf` polynomial in `r`,
/// and `2^n` assembled in the exponent bits; 0 below −87.34 (results that would be subnormal
/// flush to zero), +∞ above 88.72.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer.
    const MIN: f32 = -87.336_55;
    const MAX: f32 = 88.722_83;
    let clamped = x.clamp(MIN, MAX);
    let shifted = clamped.mul_add(LOG2E, ROUND);
    let n = shifted - ROUND;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, clamped));
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_2e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 0.166_666_65);
    p = p.mul_add(r, 0.5);
    let y = (p * r).mul_add(r, r) + 1.0;
    // The low mantissa bits of `shifted` hold n ∈ [−126, 128] (two's complement around
    // 0x4B40_0000); 2^n is applied as 2^a · 2^b with a, b ∈ [−63, 64], both normal floats.
    let n = shifted.to_bits().wrapping_sub(0x4B40_0000) as i32;
    let a = n >> 1;
    let b = n - a;
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    let e = y * pow2(a) * pow2(b);
    if x < MIN {
        0.0
    } else if x > MAX {
        f32::INFINITY
    } else {
        e
    }
}

/// erf in f32 by Abramowitz & Stegun 7.1.26, as PyTorch's vectorised CPU kernel computes it:
/// `sign(x) · (1 − t·P(t)·e^{−x²})`, `t = 1 / (1 + 0.3275911·|x|)`.
#[inline(always)]
pub(crate) fn erf_f32(x: f32) -> f32 {
    let t = 1.0 / 0.327_591_1f32.mul_add(x.abs(), 1.0);
    let mut p = 1.061_405_4f32;
    p = p.mul_add(t, -1.453_152);
    p = p.mul_add(t, 1.421_413_8);
    p = p.mul_add(t, -0.284_496_74);
    p = p.mul_add(t, 0.254_829_6);
    let e = exp_f32(-x * x);
    (-(p * t)).mul_add(e, 1.0).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulps_and_saturates_at_the_ends() {
        let mut x = -87.3f32;
        while x < 88.72 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            assert!(
                ((got - want) / want).abs() < 2.5e-7,
                "exp({x}) = {got}, want {want}"
            );
            x += 0.0137;
        }
        assert_eq!(exp_f32(-1e4), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(1e4), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
    }

    /// A&S's 1.5e-7 plus f32 rounding (PyTorch's f32 GELU, the same formula, is up to 3.5e-7
    /// off the exact one on this grid).
    #[test]
    fn erf_is_within_a_and_s_bound() {
        let mut x = -6.0f32;
        while x < 6.0 {
            let want = libm::erf(x as f64);
            let got = erf_f32(x) as f64;
            assert!((got - want).abs() < 5e-7, "erf({x}) = {got}, want {want}");
            x += 0.001;
        }
    }

    #[test]
    fn softmax_rows_match_f64() {
        let row = 19;
        let xs: Vec<f32> = (0..row * 3)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7)
            .collect();
        let mut fast = xs.clone();
        f32::softmax_rows_in_place(&mut fast, row);
        let mut exact: Vec<f64> = xs.iter().map(|&v| v as f64).collect();
        f64::softmax_rows_in_place(&mut exact, row);
        for (a, b) in fast.iter().zip(&exact) {
            assert!((*a as f64 - b).abs() < 1e-7, "{a} vs {b}");
        }
        let mut norm = xs.clone();
        let gamma: Vec<f32> = (0..row).map(|i| 0.5 + i as f32 * 0.1).collect();
        let beta: Vec<f32> = (0..row).map(|i| i as f32 * -0.05).collect();
        f32::layer_norm_rows_in_place(&mut norm, &gamma, &beta, 1e-5);
        let mut exact: Vec<f64> = xs.iter().map(|&v| v as f64).collect();
        let (g64, b64): (Vec<f64>, Vec<f64>) = gamma
            .iter()
            .zip(&beta)
            .map(|(&g, &b)| (g as f64, b as f64))
            .unzip();
        f64::layer_norm_rows_in_place(&mut exact, &g64, &b64, 1e-5);
        for (a, b) in norm.iter().zip(&exact) {
            assert!((*a as f64 - b).abs() < 2e-6, "layer norm {a} vs {b}");
        }
        let mut with_nan = xs.clone();
        with_nan[3] = f32::NAN;
        f32::softmax_rows_in_place(&mut with_nan, row);
        assert!(with_nan[..row].iter().all(|v| v.is_nan()));
        assert!(with_nan[row..].iter().all(|v| !v.is_nan()));
    }
}
