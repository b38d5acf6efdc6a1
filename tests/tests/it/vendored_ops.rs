//! The vendored Burn crates' fused ops (vendor/README.md) against Burn's own decompositions of
//! the same functions: softmax and layer norm (burn-ndarray's one-pass forwards, burn-autodiff's
//! single-node backwards), and matmul on transposed, head-split and broadcast operands
//! (burn-ndarray's strided views) against a plain triple loop. Values and gradients must agree
//! to float rounding.

use burn::backend::{Autodiff, NdArray};
use burn::nn::LayerNormConfig;
use burn::tensor::activation::softmax;
use burn::tensor::{Distribution, Tensor, TensorData};

type B = Autodiff<NdArray<f32>>;

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let scale = 1f32.max(w.abs());
        assert!(
            (g - w).abs() <= tol * scale || (g.is_nan() && w.is_nan()),
            "{what}[{i}]: fused {g}, decomposed {w}"
        );
    }
}

fn random<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<B, D> {
    <B as burn::tensor::backend::Backend>::seed(&Default::default(), seed);
    Tensor::random(shape, Distribution::Normal(0.0, 2.0), &Default::default())
}

/// Burn's softmax before the patch: max-shift (detached), exp, sum, divide, each recorded.
fn softmax_decomposed<const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let max = x.clone().detach().max_dim(dim);
    let e = (x - max).exp();
    e.clone() / e.sum_dim(dim)
}

#[test]
fn softmax_and_its_gradient_match_the_decomposition() {
    for dim in [3, 1] {
        // Attention-like scores with a padding bias of −10⁴ on the last two keys.
        let mask: Vec<f32> = (0..9).map(|k| if k >= 7 { -1e4 } else { 0.0 }).collect();
        let bias =
            Tensor::<B, 4>::from_data(TensorData::new(mask, [1, 1, 1, 9]), &Default::default());
        let x = (random([2, 3, 5, 9], 7) + bias).require_grad();
        let weights = random([2, 3, 5, 9], 8);
        let fused = softmax(x.clone(), dim);
        let decomposed = softmax_decomposed(x.clone(), dim);
        assert_close(
            &values(fused.clone()),
            &values(decomposed.clone()),
            1e-6,
            "softmax",
        );
        let g_fused = x.grad(&(fused * weights.clone()).sum().backward()).unwrap();
        let g_decomposed = x.grad(&(decomposed * weights).sum().backward()).unwrap();
        assert_close(
            &g_fused.into_data().to_vec().unwrap(),
            &g_decomposed.into_data().to_vec().unwrap(),
            1e-5,
            "softmax gradient",
        );
    }
    // A NaN spoils its own row only; a row of −∞ is NaN, as in the decomposition.
    let x = Tensor::<B, 2>::from_data(
        TensorData::new(
            vec![
                1.0,
                f32::NAN,
                0.5,
                0.2,
                -0.3,
                0.1,
                f32::NEG_INFINITY,
                f32::NEG_INFINITY,
                f32::NEG_INFINITY,
            ],
            [3, 3],
        ),
        &Default::default(),
    );
    let fused = values(softmax(x.clone(), 1));
    assert!(fused[..3].iter().all(|v| v.is_nan()), "{fused:?}");
    assert_close(
        &fused[3..6],
        &values(softmax_decomposed(x.clone(), 1))[3..6],
        1e-6,
        "row 2",
    );
    assert!(fused[6..].iter().all(|v| v.is_nan()), "{fused:?}");
}

#[test]
fn softmax_in_f64_matches_the_decomposition() {
    use burn::tensor::FloatDType;
    let x = Tensor::<B, 2>::from_data(
        TensorData::new(
            (0..24).map(|i| (i as f32 * 0.37).sin() * 5.0).collect(),
            [4, 6],
        ),
        &Default::default(),
    )
    .cast(FloatDType::F64);
    let f64s = |t: Tensor<B, 2>| -> Vec<f64> {
        let data = t.into_data();
        assert_eq!(data.dtype, burn::tensor::DType::F64);
        data.to_vec().unwrap()
    };
    let fused = f64s(softmax(x.clone(), 1));
    let e = (x.clone() - x.clone().max_dim(1)).exp();
    let want = f64s(e.clone() / e.sum_dim(1));
    for (a, b) in fused.iter().zip(&want) {
        assert!((a - b).abs() < 1e-14, "{a} vs {b}");
    }
}

#[test]
fn layer_norm_and_its_gradients_match_the_decomposition() {
    let device = Default::default();
    let mut norm = LayerNormConfig::new(16)
        .with_epsilon(1e-5)
        .init::<B>(&device);
    norm.gamma = norm.gamma.map(|_| random([16], 3).require_grad());
    norm.beta = norm.beta.map(|b| b.map(|_| random([16], 4).require_grad()));
    let x = (random([3, 5, 16], 5) + 3.0).require_grad();
    let weights = random([3, 5, 16], 6);

    let fused = norm.forward(x.clone());
    let gamma = norm.gamma.val();
    let beta = norm.beta.as_ref().unwrap().val();
    let mean = x.clone().mean_dim(2);
    let centered = x.clone() - mean;
    let variance = (centered.clone() * centered.clone()).mean_dim(2);
    let decomposed = centered / variance.add_scalar(1e-5).sqrt()
        * gamma.clone().reshape([1, 1, 16])
        + beta.clone().reshape([1, 1, 16]);
    assert_close(
        &values(fused.clone()),
        &values(decomposed.clone()),
        2e-6,
        "layer norm",
    );

    let g_fused = (fused * weights.clone()).sum().backward();
    let g_decomposed = (decomposed * weights).sum().backward();
    for (name, fused, decomposed) in [
        (
            "x",
            x.grad(&g_fused).unwrap(),
            x.grad(&g_decomposed).unwrap(),
        ),
        (
            "gamma",
            gamma.grad(&g_fused).unwrap().reshape([1, 1, 16]),
            gamma.grad(&g_decomposed).unwrap().reshape([1, 1, 16]),
        ),
        (
            "beta",
            beta.grad(&g_fused).unwrap().reshape([1, 1, 16]),
            beta.grad(&g_decomposed).unwrap().reshape([1, 1, 16]),
        ),
    ] {
        assert_close(
            &fused.into_data().to_vec().unwrap(),
            &decomposed.into_data().to_vec().unwrap(),
            2e-5,
            &format!("layer norm gradient of {name}"),
        );
    }
}

/// `[batch, m, k] × [batch, k, n]` by a triple loop in f64 over row-major host data.
fn matmul_naive(a: &[f32], b: &[f32], batch: [usize; 2], m: usize, k: usize, n: usize) -> Vec<f32> {
    let (ba, bb) = (batch[0], batch[1]);
    let batches = ba.max(bb);
    let mut out = vec![0f32; batches * m * n];
    for t in 0..batches {
        let (ta, tb) = (if ba == 1 { 0 } else { t }, if bb == 1 { 0 } else { t });
        for i in 0..m {
            for j in 0..n {
                out[(t * m + i) * n + j] = (0..k)
                    .map(|l| a[(ta * m + i) * k + l] as f64 * b[(tb * k + l) * n + j] as f64)
                    .sum::<f64>() as f32;
            }
        }
    }
    out
}

#[test]
fn matmul_reads_transposed_split_and_broadcast_operands() {
    let (m, k, n) = (7, 5, 6);
    // Transposed operands: the standard-layout tensors are [k, m] and [n, k].
    let a_t = random([k, m], 11);
    let b_t = random([n, k], 12);
    let a = values(a_t.clone().transpose());
    let b = values(b_t.clone().transpose());
    let got = values(a_t.clone().transpose().matmul(b_t.clone().transpose()));
    assert_close(
        &got,
        &matmul_naive(&a, &b, [1, 1], m, k, n),
        1e-5,
        "transposed",
    );

    // A broadcast right operand: [3, m, k] × [1, k, n].
    let a3 = random([3, m, k], 13);
    let b1 = random([1, k, n], 14);
    let got = values(a3.clone().matmul(b1.clone()));
    let want = matmul_naive(&values(a3.clone()), &values(b1), [3, 1], m, k, n);
    assert_close(&got, &want, 1e-5, "broadcast");

    // Heads split as in attention: [batch, len, heads, dim] with the middle axes swapped,
    // times its own transpose.
    let x = random([2, m, 3, k], 15);
    let q = x.clone().swap_dims(1, 2); // [2, 3, m, k], not in standard layout
    let got = values(q.clone().matmul(q.clone().swap_dims(2, 3)));
    let q_host = values(q.clone().reshape([6, m, k]));
    let qt_host = values(q.swap_dims(2, 3).reshape([6, k, m]));
    let want = matmul_naive(&q_host, &qt_host, [6, 6], m, k, m);
    assert_close(&got, &want, 1e-5, "split heads");
}
