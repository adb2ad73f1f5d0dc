//! `y = x·W + b` for Burn's `Linear` modules, with its own backward.
//!
//! Why not `Linear::forward`: on flex every matmul output goes through `FlexTensor::empty`,
//! which zero-fills a byte vector and then copies it to raise its declared alignment (13 % of
//! a `base` step in `perf`), and the bias is a second pass. Here the output starts as the bias
//! rows and one GEMM accumulates onto it; the backward is one GEMM per needed gradient, and a
//! frozen weight gets neither a gradient nor a saved input.
use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::nn::Linear;
use burn::tensor::{Shape, Tensor};
use rayon::prelude::*;

use crate::gemm::{Mat, Product, Threads};
use crate::route::{Ad, AdTensor, Routed, back, route, shape, tensor, values};

/// `layer.forward(x)`: `x` [..., d_in] → [..., d_out].
///
/// # Panics
/// As [`linear_tensors`].
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    linear_tensors(x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val()))
}

/// `x·w + b` for a weight `w` [d_in, d_out] (Burn's layout) and an optional bias [d_out]: the
/// same kernel for layers that are not Burn's `Linear` (freezeframe's own, which carries
/// low-rank adapters) and for the adapters' factors themselves.
///
/// # Panics
/// When `x`'s last dimension is not `d_in`, or the bias is not [d_out], as Burn's own
/// `Linear::forward` does: a wrong shape is a caller's bug, and it is refused in release builds
/// too, before any buffer is read (the fused path would otherwise read a differently shaped
/// matrix out of the same values).
pub fn linear_tensors<const D: usize>(
    x: Tensor<D>,
    w: Tensor<2>,
    b: Option<Tensor<1>>,
) -> Tensor<D> {
    let [d_in, d_out] = w.dims();
    let last = x.dims().last().copied().unwrap_or(0);
    assert_eq!(
        last, d_in,
        "linear: the input's last dimension is {last}, the layer's d_in is {d_in}"
    );
    if let Some(b) = &b {
        let [n] = b.dims();
        assert_eq!(n, d_out, "linear: bias of {n} for d_out = {d_out}");
    }
    let keep_input = w.is_require_grad();
    match (route(x), route(w), b.map(route)) {
        (Routed::Autodiff(x), Routed::Autodiff(w), None) => {
            Tensor::from_primitive::<Ad>(autodiff(x, w, None, keep_input))
        }
        (Routed::Autodiff(x), Routed::Autodiff(w), Some(Routed::Autodiff(b))) => {
            Tensor::from_primitive::<Ad>(autodiff(x, w, Some(b), keep_input))
        }
        (Routed::Flex(x), Routed::Flex(w), None) => {
            Tensor::from_primitive::<Flex>(forward(&x, &w, None))
        }
        (Routed::Flex(x), Routed::Flex(w), Some(Routed::Flex(b))) => {
            Tensor::from_primitive::<Flex>(forward(&x, &w, Some(&b)))
        }
        (x, w, b) => burn::tensor::module::linear(back(x), back(w), b.map(back)),
    }
}

/// Output shape: the input's leading dimensions, then `d_out`.
fn out_shape(x: &FlexTensor, d_out: usize) -> Shape {
    let mut dims = shape(x).to_vec();
    if let Some(last) = dims.last_mut() {
        *last = d_out;
    }
    Shape::from(dims)
}

fn forward(x: &FlexTensor, w: &FlexTensor, b: Option<&FlexTensor>) -> FlexTensor {
    let (d_in, d_out) = (shape(w)[0], shape(w)[1]);
    let xs = values(x);
    let ws = values(w);
    let m = xs.len() / d_in;
    let (xm, wm) = (Mat::rows(&xs, d_in), Mat::rows(&ws, d_out));
    let out = match b {
        Some(b) => {
            // The bias rows first, then the product accumulated onto them.
            let bs = values(b);
            let mut out = Vec::with_capacity(m * d_out);
            (0..m).for_each(|_| out.extend_from_slice(&bs));
            Product::new(m, d_out, d_in, xm, wm).add_to(&mut out, d_out, Threads::All);
            out
        }
        None => Product::new(m, d_out, d_in, xm, wm).to_vec(Threads::All),
    }; // [M, d_out]
    tensor(out, out_shape(x, d_out))
}

/// What the backward keeps: the input (only when the weight trains) and the weight.
#[derive(Debug, Clone)]
struct Saved {
    x: Option<FlexTensor>,
    x_shape: Shape,
    w: FlexTensor,
}

/// The gradients asked for, from the output gradient `g` [..., d_out].
fn gradients(
    s: &Saved,
    g: &FlexTensor,
    want_x: bool,
    want_w: bool,
    want_b: bool,
) -> (Option<FlexTensor>, Option<FlexTensor>, Option<FlexTensor>) {
    let (d_in, d_out) = (shape(&s.w)[0], shape(&s.w)[1]);
    let gs = values(g);
    let m = gs.len() / d_out;
    let go = Mat::rows(&gs, d_out); // [M, d_out]
    let dx = want_x.then(|| {
        // dX = dY·Wᵀ
        let ws = values(&s.w);
        let wt = Mat::cols(&ws, d_out);
        let dx = Product::new(m, d_in, d_out, go, wt).to_vec(Threads::All);
        tensor(dx, s.x_shape.clone())
    });
    let dw = match (&s.x, want_w) {
        (Some(x), true) => {
            // dW = Xᵀ·dY, the sum over all rows in one product.
            let xs = values(x);
            let xt = Mat::cols(&xs, d_in);
            let dw = Product::new(d_in, d_out, m, xt, go).to_vec(Threads::All);
            Some(tensor(dw, [d_in, d_out]))
        }
        _ => None,
    };
    let db = want_b.then(|| tensor(column_sums(&gs, d_out), [d_out]));
    (dx, dw, db)
}

/// Sums of the columns of a row-major `[M, cols]` matrix, in parallel over row blocks.
fn column_sums(g: &[f32], cols: usize) -> Vec<f32> {
    const ROWS: usize = 256;
    g.par_chunks(ROWS * cols)
        .map(|block| {
            let mut acc = vec![0.0f32; cols];
            for row in block.chunks_exact(cols) {
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
            }
            acc
        })
        .reduce(
            || vec![0.0f32; cols],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        )
}

#[derive(Debug)]
struct WithBias;
#[derive(Debug)]
struct NoBias;

fn register(grads: &mut Gradients, parent: Option<NodeId>, grad: Option<FlexTensor>) {
    if let (Some(id), Some(g)) = (parent, grad) {
        grads.register::<Flex>(id, g);
    }
}

impl Backward<Flex, 3> for WithBias {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, pw, pb] = ops.parents.map(|p| p.map(|p| p.id));
        let g = grads.consume::<Flex>(&ops.node);
        let (dx, dw, db) = gradients(&ops.state, &g, px.is_some(), pw.is_some(), pb.is_some());
        register(grads, px, dx);
        register(grads, pw, dw);
        register(grads, pb, db);
    }
}

impl Backward<Flex, 2> for NoBias {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, pw] = ops.parents.map(|p| p.map(|p| p.id));
        let g = grads.consume::<Flex>(&ops.node);
        let (dx, dw, _) = gradients(&ops.state, &g, px.is_some(), pw.is_some(), false);
        register(grads, px, dx);
        register(grads, pw, dw);
    }
}

fn autodiff(x: AdTensor, w: AdTensor, b: Option<AdTensor>, keep_input: bool) -> AdTensor {
    let (x, x_node) = x.into_parts();
    let (w, w_node) = w.into_parts();
    let saved = |x: FlexTensor, w: FlexTensor| Saved {
        x_shape: shape(&x),
        x: keep_input.then_some(x),
        w,
    };
    match b {
        Some(b) => {
            let (b, b_node) = b.into_parts();
            let y = forward(&x, &w, Some(&b));
            match WithBias
                .prepare::<NoCheckpointing>([x_node, w_node, b_node])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(saved(x, w), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
        None => {
            let y = forward(&x, &w, None);
            match NoBias
                .prepare::<NoCheckpointing>([x_node, w_node])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(saved(x, w), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, random};
    use burn::nn::LinearConfig;
    use burn::tensor::Device;

    #[test]
    fn forward_matches_burn_with_and_without_bias() {
        let dev = Device::flex();
        for bias in [true, false] {
            let layer = LinearConfig::new(24, 40).with_bias(bias).init(&dev);
            let x = random([3, 7, 24], 50, &dev);
            assert_close(&linear(&layer, x.clone()), &layer.forward(x), 1e-6);
        }
    }

    #[test]
    #[should_panic(expected = "the input's last dimension is 23, the layer's d_in is 24")]
    fn an_input_of_the_wrong_width_is_refused() {
        let dev = Device::flex();
        let layer = LinearConfig::new(24, 40).init(&dev);
        // 3·7·23 values would fill 161 rows of 24 without the check.
        let _ = linear(&layer, random([3, 7, 23], 50, &dev));
    }

    /// Gradient check of the hand-written backward against Burn's `Linear` under autodiff, for
    /// every combination of trainable input, weight and bias.
    #[test]
    fn backward_matches_burn_for_every_frozen_combination() {
        let dev = Device::flex().autodiff();
        for mask in 0..8u8 {
            let (tx, tw, tb) = (mask & 1 != 0, mask & 2 != 0, mask & 4 != 0);
            if !(tx || tw || tb) {
                continue;
            }
            let base = LinearConfig::new(24, 40).init(&dev);
            let layer = burn::module::Module::map(
                base.clone(),
                &mut Freeze {
                    weight: tw,
                    bias: tb,
                },
            );
            let x0 = random([3, 7, 24], 60 + mask as u64, &dev);
            let w = random([3, 7, 40], 70, &dev);
            let run = |f: &dyn Fn(Tensor<3>) -> Tensor<3>| {
                let x = if tx {
                    x0.clone().require_grad()
                } else {
                    x0.clone()
                };
                let grads = (f(x.clone()) * w.clone()).sum().backward();
                (
                    x.grad(&grads),
                    layer.weight.val().grad(&grads),
                    layer.bias.as_ref().and_then(|b| b.val().grad(&grads)),
                )
            };
            let ours = run(&|x| linear(&layer, x));
            let burns = run(&|x| layer.forward(x));
            assert_eq!(ours.0.is_some(), tx, "input gradient presence, mask {mask}");
            assert_eq!(
                ours.1.is_some(),
                tw,
                "weight gradient presence, mask {mask}"
            );
            assert_eq!(ours.2.is_some(), tb, "bias gradient presence, mask {mask}");
            if let (Some(a), Some(b)) = (ours.0, burns.0) {
                assert_close(&a, &b, 1e-5);
            }
            if let (Some(a), Some(b)) = (ours.1, burns.1) {
                assert_close(&a, &b, 1e-5);
            }
            if let (Some(a), Some(b)) = (ours.2, burns.2) {
                assert_close(&a, &b, 1e-5);
            }
        }
    }

    /// Sets `require_grad` of the weight and bias.
    struct Freeze {
        weight: bool,
        bias: bool,
    }

    impl burn::module::ModuleMapper for Freeze {
        fn map_float<const D: usize>(
            &mut self,
            param: burn::module::Param<Tensor<D>>,
        ) -> burn::module::Param<Tensor<D>> {
            let train = if D == 2 { self.weight } else { self.bias };
            param.map(|t| t.set_require_grad(train))
        }
    }
}
