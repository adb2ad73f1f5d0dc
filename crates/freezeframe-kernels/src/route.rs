//! Where a tensor lives — flex under autodiff, plain flex, or another backend (then callers use
//! Burn's composed ops) — and the moves between flex tensors and f32 buffers.
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{Bytes, DType, Shape, Tensor};

/// The autodiff backend the trainer uses: flex, no gradient checkpointing.
pub type Ad = Autodiff<Flex, NoCheckpointing>;
/// A tensor primitive of [`Ad`]: the flex tensor plus its graph node.
pub type AdTensor = FloatTensor<Ad>;

pub enum Routed<const D: usize> {
    Autodiff(AdTensor),
    Flex(FlexTensor),
    Other(Tensor<D>),
}

/// Sorts `x` by backend. Only f32 takes the fused paths.
pub fn route<const D: usize>(x: Tensor<D>) -> Routed<D> {
    if x.dtype() != DType::F32 {
        return Routed::Other(x);
    }
    if let Ok(t) = x.clone().try_into_primitive::<Ad>() {
        return Routed::Autodiff(t);
    }
    match x.clone().try_into_primitive::<Flex>() {
        Ok(t) => Routed::Flex(t),
        Err(_) => Routed::Other(x),
    }
}

/// The tensor again, whichever way it was routed.
pub fn back<const D: usize>(r: Routed<D>) -> Tensor<D> {
    match r {
        Routed::Autodiff(t) => Tensor::from_primitive::<Ad>(t),
        Routed::Flex(t) => Tensor::from_primitive::<Flex>(t),
        Routed::Other(x) => x,
    }
}

/// The tensor's f32 values in row-major order, borrowed when already contiguous (strided views
/// such as narrowed modulation rows are copied).
pub fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .map(<[f32]>::to_vec)
                // An invariant, not an input check: `route` admits only f32 tensors and every
                // kernel writes f32.
                .expect("fused kernels see only f32 tensors"),
        ),
    }
}

/// A contiguous flex tensor owning `data`. `Bytes::from_elems` keeps the allocation as is;
/// flex's own `empty` goes through `from_bytes_vec`, which copies every new buffer once more
/// to raise its declared alignment.
///
/// # Panics
/// When `data` does not hold exactly the shape's number of elements — in release builds too:
/// flex reads a tensor's elements by its layout, so a short buffer must never become a tensor.
pub fn tensor(data: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    let shape = shape.into();
    assert_eq!(
        shape.num_elements(),
        data.len(),
        "a kernel built {} values for shape {shape:?}",
        data.len()
    );
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// Shape of a flex tensor.
pub fn shape(t: &FlexTensor) -> Shape {
    t.layout().shape().clone()
}
