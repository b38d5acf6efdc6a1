//! Knowledge identification and fusion at the end of a cycle, on the device.
//!
//! **Threshold.** By default one per loop, as the official code: `q_in` is the `(1 − p)`-quantile
//! of all inner scores (every trainable parameter together) and `q_out` that of all outer scores;
//! `quantile: joint` takes one `q` over both. A quantile is the smallest value found with
//! `count(s > q) ≤ ⌊p·N⌋`, computed by a
//! refined histogram on the device instead of a sort: the range `[min, max]` is cut into 16 bins,
//! the 15 counts `count(s > edge)` are taken in one broadcast comparison and read back (15
//! numbers), the bin holding the quantile becomes the new range, and this repeats 6 times, so `q`
//! is exact to `(max − min)/16⁶` and only `2 + 6·15` scalars ever reach the host.
//!
//! **Weights.** With `m_in = [s_in > q_in]`, `m_out = [s_out > q_out]` (as 0/1 floats), the rule
//! [`FusionRule::Masks`] gives `(w_in, w_out)`: (1,0) → (1, 0); (0,1) → (0, 1); (1,1) → (0.4, 0.6)
//! (or (0, 0) without shared-region updates); (0,0) → (0.5, 0.5). Then
//! `θ ← θ_s + w_in ⊙ Δ_in + w_out ⊙ Δ_out`.

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use cl_core::peft::{ParamTensor, TaskVector};
use cl_core::{ClError, Result};

use crate::config::{FusionRule, QuantileScope, RkifConfig};
use crate::importance::PathTensors;

/// Bins of one histogram round.
const BINS: usize = 16;
/// Refinement rounds.
const ROUNDS: usize = 6;

/// The threshold `q` with `count(s > q) ≤ ⌊top_fraction·N⌋` over all `scores` together
/// (module docs: refined histogram on the device). `None` when there are no scores.
pub fn top_threshold<B: Backend>(scores: &[Tensor<B, 1>], top_fraction: f64) -> Option<f64> {
    if scores.is_empty() {
        return None;
    }
    let all = Tensor::cat(scores.to_vec(), 0);
    let n = all.dims()[0];
    let allowed = (top_fraction * n as f64).floor();
    let range = Tensor::cat(vec![all.clone().min(), all.clone().max()], 0)
        .into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .expect("f64");
    let (mut lo, mut hi) = (range[0], range[1]);
    let device = all.device();
    let column = all.reshape([n, 1]);
    for _ in 0..ROUNDS {
        if hi <= lo {
            break;
        }
        let edges: Vec<f64> = (1..BINS)
            .map(|j| lo + (hi - lo) * j as f64 / BINS as f64)
            .collect();
        let edge_row = Tensor::<B, 2>::from_data(
            TensorData::new(
                edges.iter().map(|&e| e as f32).collect::<Vec<_>>(),
                [1, BINS - 1],
            ),
            &device,
        );
        let counts = column
            .clone()
            .expand([n, BINS - 1])
            .greater(edge_row.expand([n, BINS - 1]))
            .float()
            .sum_dim(0)
            .into_data()
            .convert::<f64>()
            .to_vec::<f64>()
            .expect("f64");
        // counts decrease with the edge; the first edge with few enough above is the new top.
        match counts.iter().position(|&c| c <= allowed) {
            Some(0) => hi = edges[0],
            Some(j) => {
                lo = edges[j - 1];
                hi = edges[j];
            }
            None => lo = edges[BINS - 2],
        }
    }
    Some(hi)
}

/// What [`fusion_weights`] needs besides one tensor's scores, computed once over every parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusionContext {
    /// `q_in`, the inner threshold (`Masks`).
    pub q_in: f64,
    /// `q_out`, the outer threshold (`Masks`).
    pub q_out: f64,
    /// `Σs_in / (Σs_in + Σs_out)` over every parameter (`Global`).
    pub global_in: f64,
    /// `(min, max)` of the inner scores over every parameter (`Adaptive`).
    pub range_in: (f64, f64),
    /// `(min, max)` of the outer scores over every parameter (`Adaptive`).
    pub range_out: (f64, f64),
    /// τ (`Adaptive`).
    pub temperature: f64,
    /// Shared-region updates (`Masks`).
    pub update_shared: bool,
}

/// `(w_in, w_out)` for one tensor of scores `s_in`, `s_out` (`[numel]`) under `rule`.
pub fn fusion_weights<B: Backend>(
    rule: FusionRule,
    s_in: Tensor<B, 1>,
    s_out: Tensor<B, 1>,
    ctx: &FusionContext,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let ones = || s_in.ones_like();
    let global_in = ctx.global_in;
    let update_shared = ctx.update_shared;
    match rule {
        FusionRule::Adaptive => {
            let normalise = |s: Tensor<B, 1>, (lo, hi): (f64, f64)| {
                if hi > lo {
                    s.sub_scalar(lo).div_scalar(hi - lo)
                } else {
                    s.zeros_like()
                }
            };
            let a = normalise(s_in, ctx.range_in).div_scalar(ctx.temperature);
            let b = normalise(s_out, ctx.range_out).div_scalar(ctx.temperature);
            // exp(a) / (exp(a) + exp(b)) = sigmoid(a − b), without overflow.
            let w_in = burn::tensor::activation::sigmoid(a - b);
            let w_out = w_in.clone().neg().add_scalar(1.0);
            (w_in, w_out)
        }
        FusionRule::Average => (ones().mul_scalar(0.5), ones().mul_scalar(0.5)),
        FusionRule::Global => (
            ones().mul_scalar(global_in),
            ones().mul_scalar(1.0 - global_in),
        ),
        FusionRule::Soft => {
            let total = s_in.clone() + s_out;
            let neither = total.clone().lower_equal_elem(0.0).float();
            let w_in = s_in / total.clamp_min(f32::MIN_POSITIVE);
            let w_in = w_in * neither.clone().neg().add_scalar(1.0) + neither.mul_scalar(0.5);
            let w_out = w_in.clone().neg().add_scalar(1.0);
            (w_in, w_out)
        }
        FusionRule::Masks => {
            let a = s_in.greater_elem(ctx.q_in).float();
            let b = s_out.greater_elem(ctx.q_out).float();
            let not_a = a.clone().neg().add_scalar(1.0);
            let not_b = b.clone().neg().add_scalar(1.0);
            let both = a.clone() * b.clone();
            let neither = not_a.clone() * not_b.clone();
            let (shared_in, shared_out) = if update_shared {
                (0.4, 0.6)
            } else {
                (0.0, 0.0)
            };
            let w_in =
                a * not_b + both.clone().mul_scalar(shared_in) + neither.clone().mul_scalar(0.5);
            let w_out = not_a * b + both.mul_scalar(shared_out) + neither.mul_scalar(0.5);
            (w_in, w_out)
        }
    }
}

/// Fractions of elements in each mask case, for reports: `(in only, out only, both, neither)`.
pub type MaskShares = [f64; 4];

/// The fused parameters `θ_s + w_in ⊙ (θ_K − θ_s) + w_out ⊙ (θ_{K+M} − θ_K)` for every path of
/// `start`, with the weights of `cfg.fusion` from the scores (threshold at `cfg.top_fraction`,
/// `cfg.update_shared`); and the mask shares at the threshold.
pub fn fuse<B: Backend>(
    start: &TaskVector<B>,
    after_inner: &TaskVector<B>,
    after_outer: &TaskVector<B>,
    s_in: &PathTensors<B>,
    s_out: &PathTensors<B>,
    cfg: &RkifConfig,
) -> Result<(TaskVector<B>, MaskShares)> {
    let (rule, top_fraction) = (cfg.fusion, cfg.top_fraction);
    let score = |map: &PathTensors<B>, path: &str, like: &Tensor<B, 1>| match map.get(path) {
        Some(s) => s.clone(),
        None => like.zeros_like(),
    };
    let inner: Vec<Tensor<B, 1>> = s_in.values().cloned().collect();
    let outer: Vec<Tensor<B, 1>> = s_out.values().cloned().collect();
    let (q_in, q_out) = match cfg.quantile {
        QuantileScope::PerLoop => (
            top_threshold(&inner, top_fraction).unwrap_or(f64::INFINITY),
            top_threshold(&outer, top_fraction).unwrap_or(f64::INFINITY),
        ),
        QuantileScope::Joint => {
            let all: Vec<Tensor<B, 1>> = inner.iter().chain(&outer).cloned().collect();
            let q = top_threshold(&all, top_fraction).unwrap_or(f64::INFINITY);
            (q, q)
        }
    };
    let range = |scores: &[Tensor<B, 1>]| -> (f64, f64) {
        if rule != FusionRule::Adaptive || scores.is_empty() {
            return (0.0, 0.0);
        }
        let all = Tensor::cat(scores.to_vec(), 0);
        let v = Tensor::cat(vec![all.clone().min(), all.max()], 0)
            .into_data()
            .convert::<f64>()
            .to_vec::<f64>()
            .expect("f64");
        (v[0], v[1])
    };
    let global_in = if rule == FusionRule::Global {
        let sum = |m: &PathTensors<B>| -> f64 {
            m.values()
                .map(|t| t.clone().sum().into_scalar().elem::<f64>())
                .sum()
        };
        let (si, so) = (sum(s_in), sum(s_out));
        if si + so > 0.0 { si / (si + so) } else { 0.5 }
    } else {
        0.5
    };
    let ctx = FusionContext {
        q_in,
        q_out,
        global_in,
        range_in: range(&inner),
        range_out: range(&outer),
        temperature: cfg.temperature,
        update_shared: cfg.update_shared,
    };
    // Per-path mask counts stay on the device and are read back once, after the loop.
    let mut counts: Option<Tensor<B, 1>> = None;
    let mut total = 0usize;
    let mut entries = std::collections::BTreeMap::new();
    for (path, theta_s) in start.entries() {
        let get = |tv: &TaskVector<B>| {
            tv.entries()
                .get(path)
                .cloned()
                .ok_or_else(|| ClError::MissingTensor {
                    tensor: path.clone(),
                    context: " in a cycle snapshot".into(),
                })
        };
        let (theta_k, theta_km) = (get(after_inner)?, get(after_outer)?);
        let base = theta_s.value.clone();
        let delta_in = theta_k.value.clone() - base.clone();
        let delta_out = theta_km.value - theta_k.value;
        let si = score(s_in, path, &base);
        let so = score(s_out, path, &base);
        let (w_in, w_out) = fusion_weights(rule, si.clone(), so.clone(), &ctx);
        let a = si.greater_elem(q_in).float();
        let b = so.greater_elem(q_out).float();
        let path_counts = Tensor::cat(
            vec![
                (a.clone() * b.clone().neg().add_scalar(1.0)).sum(),
                (a.clone().neg().add_scalar(1.0) * b.clone()).sum(),
                (a.clone() * b.clone()).sum(),
                ((a.neg().add_scalar(1.0)) * b.neg().add_scalar(1.0)).sum(),
            ],
            0,
        );
        counts = Some(match counts {
            Some(c) => c + path_counts,
            None => path_counts,
        });
        total += base.dims()[0];
        entries.insert(
            path.clone(),
            ParamTensor {
                value: base + w_in * delta_in + w_out * delta_out,
                shape: theta_s.shape.clone(),
            },
        );
    }
    let mut shares = [0.0f64; 4];
    if let Some(counts) = counts {
        let counts = counts
            .into_data()
            .convert::<f64>()
            .to_vec::<f64>()
            .expect("f64");
        for (share, c) in shares.iter_mut().zip(counts) {
            *share = c / total.max(1) as f64;
        }
    }
    Ok((TaskVector::from_entries(entries), shares))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    fn t(v: &[f32]) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Default::default())
    }

    fn host(t: Tensor<B, 1>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    #[test]
    fn threshold_keeps_the_top_fraction() {
        // 1000 distinct values 0..999 split over two tensors: top 20% are 800..999.
        let values: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 1000) as f32).collect();
        let q = top_threshold(&[t(&values[..300]), t(&values[300..])], 0.2).unwrap();
        let above = values.iter().filter(|&&v| f64::from(v) > q).count();
        assert_eq!(above, 200, "q = {q}");
        // Heavy tail: 10 huge values among tiny ones; top 1% = the 10.
        let mut tail: Vec<f32> = (0..990).map(|i| i as f32 * 1e-6).collect();
        tail.extend((0..10).map(|i| 1e3 + i as f32));
        let q = top_threshold(&[t(&tail)], 0.01).unwrap();
        assert_eq!(tail.iter().filter(|&&v| f64::from(v) > q).count(), 10);
        // Ties at zero: nothing above the threshold when everything is equal.
        let q = top_threshold(&[t(&[0.0; 50])], 0.2).unwrap();
        assert_eq!(q, 0.0);
        assert!(top_threshold::<B>(&[], 0.2).is_none());
    }

    fn ctx(q: f64, global_in: f64, update_shared: bool) -> FusionContext {
        FusionContext {
            q_in: q,
            q_out: q,
            global_in,
            range_in: (0.0, 1.0),
            range_out: (0.0, 1.0),
            temperature: 1.0,
            update_shared,
        }
    }

    #[test]
    fn adaptive_is_a_softmax_of_normalised_scores() {
        // Inner scores over [0, 4], outer over [0, 2]: normalised [1, 0.5, 0] and [0, 0.5, 1].
        let c = FusionContext {
            range_in: (0.0, 4.0),
            range_out: (0.0, 2.0),
            temperature: 0.5,
            ..ctx(0.0, 0.5, true)
        };
        let (wi, wo) = fusion_weights(
            FusionRule::Adaptive,
            t(&[4.0, 2.0, 0.0]),
            t(&[0.0, 1.0, 2.0]),
            &c,
        );
        let (wi, wo) = (host(wi), host(wo));
        // w_in = e^{a/τ} / (e^{a/τ} + e^{b/τ}) with τ = ½: e² / (e² + 1), ½, 1 / (1 + e²).
        let e2 = std::f32::consts::E.powi(2);
        let want = [e2 / (e2 + 1.0), 0.5, 1.0 / (1.0 + e2)];
        for k in 0..3 {
            assert!((wi[k] - want[k]).abs() < 1e-6, "{wi:?}");
            assert!((wi[k] + wo[k] - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn each_loop_gets_its_own_threshold() {
        let tv = |v: &[f32]| {
            TaskVector::from_entries(std::collections::BTreeMap::from([(
                "p".to_string(),
                ParamTensor {
                    value: t(v),
                    shape: vec![v.len()],
                },
            )]))
        };
        // Inner scores are 100× the outer ones: one joint quantile would mark only inner
        // elements; per loop, each loop's top half is marked.
        let s_in =
            std::collections::BTreeMap::from([("p".to_string(), t(&[400.0, 300.0, 200.0, 100.0]))]);
        let s_out = std::collections::BTreeMap::from([("p".to_string(), t(&[1.0, 2.0, 3.0, 4.0]))]);
        let (start, inner, outer) = (tv(&[0.0; 4]), tv(&[1.0; 4]), tv(&[11.0; 4]));
        let per_loop = RkifConfig {
            top_fraction: 0.5,
            ..RkifConfig::default()
        };
        let (_, shares) = fuse(&start, &inner, &outer, &s_in, &s_out, &per_loop).unwrap();
        // Elements 0, 1: inner only; 2, 3: outer only.
        assert_eq!(shares, [0.5, 0.5, 0.0, 0.0]);
        let joint = RkifConfig {
            quantile: QuantileScope::Joint,
            ..per_loop
        };
        let (_, shares) = fuse(&start, &inner, &outer, &s_in, &s_out, &joint).unwrap();
        // Top 4 of 8 joint scores are all inner: every element is inner only.
        assert_eq!(shares, [1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn the_four_cases() {
        // Elements: in-only, out-only, both, neither (q = 1).
        let s_in = t(&[5.0, 0.0, 5.0, 0.5]);
        let s_out = t(&[0.0, 5.0, 5.0, 0.5]);
        let (wi, wo) = fusion_weights(
            FusionRule::Masks,
            s_in.clone(),
            s_out.clone(),
            &ctx(1.0, 0.5, true),
        );
        assert_eq!(host(wi), vec![1.0, 0.0, 0.4, 0.5]);
        assert_eq!(host(wo), vec![0.0, 1.0, 0.6, 0.5]);
        let (wi, wo) = fusion_weights(
            FusionRule::Masks,
            s_in.clone(),
            s_out.clone(),
            &ctx(1.0, 0.5, false),
        );
        assert_eq!(host(wi), vec![1.0, 0.0, 0.0, 0.5]);
        assert_eq!(host(wo), vec![0.0, 1.0, 0.0, 0.5]);
        let (wi, _) = fusion_weights(
            FusionRule::Average,
            s_in.clone(),
            s_out.clone(),
            &ctx(1.0, 0.5, true),
        );
        assert_eq!(host(wi), vec![0.5; 4]);
        let (wi, wo) = fusion_weights(
            FusionRule::Global,
            s_in.clone(),
            s_out.clone(),
            &ctx(1.0, 0.25, true),
        );
        assert_eq!((host(wi), host(wo)), (vec![0.25; 4], vec![0.75; 4]));
        let (wi, wo) = fusion_weights(
            FusionRule::Soft,
            t(&[3.0, 0.0]),
            t(&[1.0, 0.0]),
            &ctx(1.0, 0.5, true),
        );
        assert_eq!((host(wi), host(wo)), (vec![0.75, 0.5], vec![0.25, 0.5]));
    }

    #[test]
    fn fuse_applies_the_weights_to_both_deltas() {
        let tv = |v: &[f32]| {
            TaskVector::from_entries(std::collections::BTreeMap::from([(
                "p".to_string(),
                ParamTensor {
                    value: t(v),
                    shape: vec![v.len()],
                },
            )]))
        };
        // θ_s = 0, Δ_in = 1, Δ_out = 10 everywhere; scores make the four cases with q between.
        let start = tv(&[0.0; 4]);
        let inner = tv(&[1.0; 4]);
        let outer = tv(&[11.0; 4]);
        let s_in = std::collections::BTreeMap::from([("p".to_string(), t(&[9.0, 0.0, 9.0, 0.1]))]);
        let s_out = std::collections::BTreeMap::from([("p".to_string(), t(&[0.0, 9.0, 9.0, 0.2]))]);
        // 8 scores, top 50% = the four 9s.
        let cfg = RkifConfig {
            top_fraction: 0.5,
            ..RkifConfig::default()
        };
        let (fused, shares) = fuse(&start, &inner, &outer, &s_in, &s_out, &cfg).unwrap();
        assert_eq!(
            host(fused.entries()["p"].value.clone()),
            vec![1.0, 10.0, 6.4, 5.5]
        );
        assert_eq!(shares, [0.25, 0.25, 0.25, 0.25]);
    }
}
