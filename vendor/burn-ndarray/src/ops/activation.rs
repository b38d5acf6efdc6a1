use crate::ops::fast_math::FastMath;
use crate::{
    NdArray, NdArrayTensor, SharedArray,
    element::{FloatNdArrayElement, IntNdArrayElement, QuantElement},
    execute_with_float_dtype, execute_with_numeric_dtype,
    ops::NdArrayMathOps,
};
use burn_backend::{ElementConversion, TensorMetadata, ops::ActivationOps, tensor::FloatTensor};

impl<E: FloatNdArrayElement, I: IntNdArrayElement, Q: QuantElement> ActivationOps<Self>
    for NdArray<E, I, Q>
where
    NdArrayTensor: From<SharedArray<E>>,
    NdArrayTensor: From<SharedArray<I>>,
{
    fn relu(tensor: FloatTensor<Self>) -> FloatTensor<Self> {
        execute_with_numeric_dtype!(tensor, |array| NdArrayMathOps::clamp_min(array, 0.elem()))
    }

    // cl-peft patch (vendor/README.md): softmax in one pass per row (max, exp and sum, then
    // divide; f32 vectorised, fast_math.rs), where Burn's default takes five tensor passes
    // (max, subtract, exp, sum, divide).
    fn softmax(tensor: FloatTensor<Self>, dim: usize) -> FloatTensor<Self> {
        execute_with_float_dtype!(tensor, FloatElem, |array: SharedArray<FloatElem>| {
            let last = array.ndim() - 1;
            // Rows along `dim` are made contiguous by moving `dim` last.
            let mut rows = array;
            rows.swap_axes(dim, last);
            let mut rows = standard_layout(rows);
            let row = rows.shape()[last];
            if row > 0 {
                let values = rows.as_slice_mut().expect("standard layout is contiguous");
                FloatElem::softmax_rows_in_place(values, row);
            }
            let mut out = rows.into_shared();
            out.swap_axes(dim, last);
            out
        })
    }

    // cl-peft patch (vendor/README.md): the exact GELU, x · Φ(x), in one pass over the tensor
    // (f32 vectorised, fast_math.rs), where Burn's default takes five (divide, erf, add,
    // multiply, divide).
    fn gelu(tensor: FloatTensor<Self>) -> FloatTensor<Self> {
        execute_with_float_dtype!(tensor, FloatElem, |array: SharedArray<FloatElem>| {
            let mut out = standard_layout(array);
            FloatElem::gelu_in_place(out.as_slice_mut().expect("standard layout is contiguous"));
            out.into_shared()
        })
    }

    // cl-peft patch (vendor/README.md): the exact GELU's derivative times the gradient,
    // g · (Φ(x) + x · φ(x)), as PyTorch computes it, in one pass. Burn 0.21's default is the
    // derivative of the tanh approximation, not of the exact GELU its forward computes, in
    // about twelve passes with a `powf` and an f64 `tanh` per element.
    fn gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        execute_with_float_dtype!(
            (x, grad),
            FloatElem,
            |x: SharedArray<FloatElem>, grad: SharedArray<FloatElem>| {
                assert_eq!(
                    x.shape(),
                    grad.shape(),
                    "gelu_backward: input and gradient shapes"
                );
                let x = if x.is_standard_layout() {
                    x
                } else {
                    x.as_standard_layout().into_owned().into_shared()
                };
                let mut out = standard_layout(grad);
                FloatElem::gelu_backward_in_place(
                    x.as_slice().expect("standard layout is contiguous"),
                    out.as_slice_mut().expect("standard layout is contiguous"),
                );
                out.into_shared()
            }
        )
    }
}

/// The array, owned and in standard (row-major, contiguous) layout, copied only if it is
/// shared or laid out otherwise.
fn standard_layout<E: Clone>(array: SharedArray<E>) -> ndarray::ArrayD<E> {
    if array.is_standard_layout() {
        array.into_owned()
    } else {
        array.as_standard_layout().into_owned()
    }
}
