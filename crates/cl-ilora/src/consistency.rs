//! I-LoRA's embedding-consistency loss.
//!
//! For each chosen hidden state, `h* = max(h_w, h_l)` elementwise (fast and slow learner on the
//! replay batch) and the loss is `MSE(h_w, h*)`, the squared error averaged over the width and
//! then over the real (unpadded) positions; the result is the mean over the chosen states. Only
//! positions where the slow learner's state is larger contribute, so the fast learner is pulled
//! up towards the slow one and never down. `h*` is a constant: the slow pass has no graph and
//! the fast part of the max gives zero error wherever it wins.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// The consistency loss, `[1]`.
///
/// - `fast`: per chosen state `[batch, positions_w, d]`, `positions_w ≥ positions` (a fast batch
///   padded further than the slow one: the extra positions are padding and are dropped);
/// - `slow`: per chosen state `[batch, positions, d]`, without autodiff history;
/// - `mask`: `[batch, positions]`, 1 at real positions.
pub fn consistency_loss<B: Backend>(
    fast: &[Tensor<B, 3>],
    slow: &[Tensor<B, 3>],
    mask: Tensor<B, 2>,
) -> Tensor<B, 1> {
    assert_eq!(fast.len(), slow.len(), "one slow state per fast state");
    assert!(!fast.is_empty(), "at least one hidden state");
    let count = mask.clone().sum().clamp_min(1.0);
    let per_state: Vec<Tensor<B, 1>> = fast
        .iter()
        .zip(slow)
        .map(|(h_w, h_l)| {
            let [batch, positions, width] = h_l.dims();
            let h_w = h_w.clone().slice([0..batch, 0..positions, 0..width]);
            let target = h_w.clone().detach().max_pair(h_l.clone());
            let squared = (h_w - target)
                .powi_scalar(2)
                .mean_dim(2)
                .reshape([batch, positions]);
            (squared * mask.clone()).sum() / count.clone()
        })
        .collect();
    let n = per_state.len() as f64;
    Tensor::cat(per_state, 0).sum().div_scalar(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    type B = NdArray<f32>;

    #[test]
    fn matches_hand_value_and_ignores_padding() {
        let device = Default::default();
        // batch 1, fast padded to 3 positions, slow to 2 (second is padding), width 2.
        let fast = Tensor::<B, 3>::from_data([[[1.0, 0.0], [5.0, 5.0], [9.0, 9.0]]], &device);
        let slow = Tensor::<B, 3>::from_data([[[3.0, -1.0], [0.0, 0.0]]], &device);
        let mask = Tensor::<B, 2>::from_data([[1.0, 0.0]], &device);
        let loss = consistency_loss(&[fast], &[slow], mask).into_scalar();
        // Position 0: h* = [3, 0]; squared errors [4, 0]; mean over width 2.
        assert!((loss - 2.0).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn zero_when_the_fast_learner_dominates_and_gradient_only_where_slow_is_larger() {
        let device = Default::default();
        let fast = Tensor::<Autodiff<B>, 3>::from_data([[[2.0, 1.0]]], &device).require_grad();
        let slow = Tensor::<Autodiff<B>, 3>::from_data([[[1.0, 3.0]]], &device);
        let mask = Tensor::<Autodiff<B>, 2>::ones([1, 1], &device);
        let loss = consistency_loss(std::slice::from_ref(&fast), &[slow], mask);
        // Errors [0, -2]: loss (0 + 4)/2 = 2, d/dh = 2·(h_w − h*)/2 = [0, -2].
        assert!((loss.clone().into_scalar() - 2.0).abs() < 1e-6);
        let grads = loss.backward();
        let g = fast
            .grad(&grads)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(g, vec![0.0, -2.0]);
        let above = Tensor::<B, 3>::from_data([[[5.0, 5.0]]], &device);
        let below = Tensor::<B, 3>::from_data([[[1.0, 3.0]]], &device);
        let zero = consistency_loss(&[above], &[below], Tensor::ones([1, 1], &device));
        assert_eq!(zero.into_scalar(), 0.0);
    }
}
