use crate::{
    NdArray, NdArrayTensor, SharedArray,
    element::{FloatNdArrayElement, IntNdArrayElement, QuantElement},
    execute_with_float_dtype, execute_with_numeric_dtype,
    ops::NdArrayMathOps,
};
use burn_backend::element::cast::ToElement;
use burn_backend::{ElementConversion, TensorMetadata, ops::ActivationOps, tensor::FloatTensor};
use libm::erf;

/// 1 / √2.
const FRAC_1_SQRT_2: f64 = core::f64::consts::FRAC_1_SQRT_2;
/// 1 / √(2π).
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

impl<E: FloatNdArrayElement, I: IntNdArrayElement, Q: QuantElement> ActivationOps<Self>
    for NdArray<E, I, Q>
where
    NdArrayTensor: From<SharedArray<E>>,
    NdArrayTensor: From<SharedArray<I>>,
{
    fn relu(tensor: FloatTensor<Self>) -> FloatTensor<Self> {
        execute_with_numeric_dtype!(tensor, |array| NdArrayMathOps::clamp_min(array, 0.elem()))
    }

    // cl-peft patch (vendor/README.md): the exact GELU, x · Φ(x), in one pass over the tensor
    // (Burn's default takes five: divide, erf, add, multiply, divide).
    fn gelu(tensor: FloatTensor<Self>) -> FloatTensor<Self> {
        execute_with_float_dtype!(tensor, FloatElem, |array: SharedArray<FloatElem>| {
            array
                .mapv_into(|a: FloatElem| {
                    let x = a.to_f64();
                    (0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2))).elem()
                })
                .into_shared()
        })
    }

    // cl-peft patch (vendor/README.md): the exact GELU's derivative, Φ(x) + x · φ(x), as
    // PyTorch computes it. Burn 0.21's default is the derivative of the tanh approximation,
    // not of the exact GELU its forward computes, in about twelve passes with a `powf` and an
    // f64 `tanh` per element.
    fn gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        execute_with_float_dtype!(
            (x, grad),
            FloatElem,
            |x: SharedArray<FloatElem>, grad: SharedArray<FloatElem>| {
                let derivative = x
                    .mapv_into(|a: FloatElem| {
                        let x = a.to_f64();
                        let cdf = 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2));
                        let pdf = libm::exp(-0.5 * x * x) * FRAC_1_SQRT_2PI;
                        (cdf + x * pdf).elem()
                    })
                    .into_shared();
                NdArrayMathOps::mul(derivative, grad)
            }
        )
    }
}
