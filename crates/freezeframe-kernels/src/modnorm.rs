//! adaLN's `LayerNorm(x)·(1 + scale) + shift` (no learned affine; Open-Sora's `t2i_modulate` of
//! a `LayerNorm(elementwise_affine=False)`), as one op with its own backward.
//!
//! Burn composes the norm from about eight element-wise and reduction ops, each a pass over the
//! activations with its own buffers, and the modulation adds three more; `kernel_bench` measured
//! 2.5–4.6 ms forward and backward per call at `base` size, nine calls a step. Here the forward is
//! one pass that keeps the row mean and inverse deviation, the backward one pass per batch item.
use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::math::dispatch;
use crate::route::{Ad, AdTensor, Routed, back, route, shape, tensor, values};

/// Open-Sora's LayerNorm epsilon.
pub const EPS: f32 = 1e-6;

/// `x` [B, N, D], `shift`, `scale` [B, 1, D] → LayerNorm(x)·(1 + scale) + shift, [B, N, D].
pub fn modulated_norm(x: Tensor<3>, shift: Tensor<3>, scale: Tensor<3>) -> Tensor<3> {
    match (route(x), route(shift), route(scale)) {
        (Routed::Autodiff(x), Routed::Autodiff(sh), Routed::Autodiff(sc)) => {
            Tensor::from_primitive::<Ad>(autodiff(x, sh, sc))
        }
        (Routed::Flex(x), Routed::Flex(sh), Routed::Flex(sc)) => {
            Tensor::from_primitive::<Flex>(forward(&x, &sh, &sc).0)
        }
        (x, sh, sc) => composed(back(x), back(sh), back(sc)),
    }
}

/// The same in Burn's ops: the path for other backends and the tests' oracle.
pub fn composed(x: Tensor<3>, shift: Tensor<3>, scale: Tensor<3>) -> Tensor<3> {
    let d = x.dims()[2];
    let ones = Tensor::<1>::ones([d], &x.device());
    let x = burn::tensor::module::layer_norm(x, ones, None, EPS as f64);
    x.clone() * scale + x + shift
}

/// Per-row statistics the backward reuses: mean and 1/√(var + ε), each [B·N].
#[derive(Debug, Clone)]
struct Stats {
    mean: Vec<f32>,
    rstd: Vec<f32>,
}

fn forward(x: &FlexTensor, shift: &FlexTensor, scale: &FlexTensor) -> (FlexTensor, Stats) {
    let s = shape(x);
    let (b, n, d) = (s[0], s[1], s[2]);
    let xs = values(x);
    let sh = values(shift);
    let sc = values(scale);
    let mut out = vec![0.0f32; b * n * d];
    let mut mean = vec![0.0f32; b * n];
    let mut rstd = vec![0.0f32; b * n];
    out.par_chunks_mut(n * d)
        .zip(xs.par_chunks(n * d))
        .zip(mean.par_chunks_mut(n).zip(rstd.par_chunks_mut(n)))
        .enumerate()
        .for_each(|(bi, ((o, x), (mean, rstd)))| {
            let sh = &sh[bi * d..(bi + 1) * d];
            let sc = &sc[bi * d..(bi + 1) * d];
            dispatch(
                #[inline(always)]
                || {
                    for (((o, x), m), r) in o
                        .chunks_exact_mut(d)
                        .zip(x.chunks_exact(d))
                        .zip(mean.iter_mut())
                        .zip(rstd.iter_mut())
                    {
                        let mu = x.iter().sum::<f32>() / d as f32;
                        let var = x.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / d as f32;
                        let rs = 1.0 / (var + EPS).sqrt();
                        for (((o, &x), &sh), &sc) in o.iter_mut().zip(x).zip(sh).zip(sc) {
                            *o = (x - mu) * rs * (1.0 + sc) + sh;
                        }
                        *m = mu;
                        *r = rs;
                    }
                },
            )
        });
    (tensor(out, s), Stats { mean, rstd })
}

/// What the backward keeps.
#[derive(Debug, Clone)]
struct Saved {
    x: FlexTensor,
    scale: FlexTensor,
    stats: Stats,
}

/// Gradients for x, shift and scale (each only when asked) from the output gradient.
fn gradients(
    s: &Saved,
    g: &FlexTensor,
    want: [bool; 3],
) -> (Option<FlexTensor>, Option<FlexTensor>, Option<FlexTensor>) {
    let dims = shape(&s.x);
    let (b, n, d) = (dims[0], dims[1], dims[2]);
    let xs = values(&s.x);
    let sc = values(&s.scale);
    let gs = values(g);
    let [want_x, want_shift, want_scale] = want;
    let mut dx = if want_x {
        vec![0.0f32; b * n * d]
    } else {
        Vec::new()
    };
    let mut dshift = vec![0.0f32; b * d];
    let mut dscale = vec![0.0f32; b * d];
    let per_item = |bi: usize, dx: Option<&mut [f32]>, dsh: &mut [f32], dsc: &mut [f32]| {
        let x = &xs[bi * n * d..(bi + 1) * n * d];
        let g = &gs[bi * n * d..(bi + 1) * n * d];
        let sc = &sc[bi * d..(bi + 1) * d];
        let mean = &s.stats.mean[bi * n..(bi + 1) * n];
        let rstd = &s.stats.rstd[bi * n..(bi + 1) * n];
        dispatch(
            #[inline(always)]
            || {
                let mut xhat = vec![0.0f32; d];
                let mut gp = vec![0.0f32; d];
                let mut dx = dx;
                for (row, (x, g)) in x.chunks_exact(d).zip(g.chunks_exact(d)).enumerate() {
                    let (mu, rs) = (mean[row], rstd[row]);
                    for (h, &v) in xhat.iter_mut().zip(x) {
                        *h = (v - mu) * rs;
                    }
                    if want_shift {
                        dsh.iter_mut().zip(g).for_each(|(a, &g)| *a += g);
                    }
                    if want_scale {
                        dsc.iter_mut()
                            .zip(g.iter().zip(&xhat))
                            .for_each(|(a, (&g, &h))| *a += g * h);
                    }
                    if let Some(dx) = dx.as_deref_mut() {
                        // g' = g·(1 + scale); dx = rstd·(g' − mean(g') − x̂·mean(g'·x̂))
                        for ((p, &g), &c) in gp.iter_mut().zip(g).zip(sc) {
                            *p = g * (1.0 + c);
                        }
                        let m1 = gp.iter().sum::<f32>() / d as f32;
                        let m2 = gp.iter().zip(&xhat).map(|(p, h)| p * h).sum::<f32>() / d as f32;
                        let out = &mut dx[row * d..(row + 1) * d];
                        for ((o, &p), &h) in out.iter_mut().zip(&gp).zip(&xhat) {
                            *o = rs * (p - m1 - h * m2);
                        }
                    }
                }
            },
        )
    };
    if want_x {
        dx.par_chunks_mut(n * d)
            .zip(dshift.par_chunks_mut(d).zip(dscale.par_chunks_mut(d)))
            .enumerate()
            .for_each(|(bi, (dx, (dsh, dsc)))| per_item(bi, Some(dx), dsh, dsc));
    } else {
        dshift
            .par_chunks_mut(d)
            .zip(dscale.par_chunks_mut(d))
            .enumerate()
            .for_each(|(bi, (dsh, dsc))| per_item(bi, None, dsh, dsc));
    }
    (
        want_x.then(|| tensor(dx, dims.clone())),
        want_shift.then(|| tensor(dshift, [b, 1, d])),
        want_scale.then(|| tensor(dscale, [b, 1, d])),
    )
}

#[derive(Debug)]
struct ModNormBackward;

impl Backward<Flex, 3> for ModNormBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, psh, psc] = ops.parents.map(|p| p.map(|p| p.id));
        let g = grads.consume::<Flex>(&ops.node);
        let want = [px.is_some(), psh.is_some(), psc.is_some()];
        let (dx, dsh, dsc) = gradients(&ops.state, &g, want);
        for (id, grad) in [(px, dx), (psh, dsh), (psc, dsc)] {
            if let (Some(id), Some(grad)) = (id, grad) {
                grads.register::<Flex>(id, grad);
            }
        }
    }
}

fn autodiff(x: AdTensor, shift: AdTensor, scale: AdTensor) -> AdTensor {
    let (x, xn) = x.into_parts();
    let (shift, shn) = shift.into_parts();
    let (scale, scn) = scale.into_parts();
    let (y, stats) = forward(&x, &shift, &scale);
    match ModNormBackward
        .prepare::<NoCheckpointing>([xn, shn, scn])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(Saved { x, scale, stats }, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, random};
    use burn::tensor::Device;

    #[test]
    fn forward_matches_burn() {
        let dev = Device::flex();
        let x = random([3, 7, 20], 80, &dev) * 4.0 + 1.0;
        let (sh, sc) = (random([3, 1, 20], 81, &dev), random([3, 1, 20], 82, &dev));
        assert_close(
            &modulated_norm(x.clone(), sh.clone(), sc.clone()),
            &composed(x, sh, sc),
            2e-6,
        );
    }

    /// Gradient check against Burn's autodiff of the composed ops, for every subset of inputs
    /// that require gradients — including the narrowed (non-contiguous) modulation rows the
    /// model passes.
    #[test]
    fn backward_matches_burn_for_every_tracked_subset() {
        let dev = Device::flex().autodiff();
        for mask in 1..8u8 {
            let x0 = random([3, 7, 20], 90, &dev) * 3.0;
            let m0 = random([3, 2, 20], 91, &dev);
            let w = random([3, 7, 20], 92, &dev);
            let run = |f: &dyn Fn(Tensor<3>, Tensor<3>, Tensor<3>) -> Tensor<3>| {
                let track = |t: Tensor<3>, bit: u8| {
                    if mask & bit != 0 { t.require_grad() } else { t }
                };
                let x = track(x0.clone(), 1);
                let m = track(m0.clone(), 2);
                let sc = track(random([3, 1, 20], 93, &dev), 4);
                let sh = m.clone().narrow(1, 1, 1); // [B, 1, D], a strided view
                let grads = (f(x.clone(), sh, sc.clone()) * w.clone()).sum().backward();
                [x.grad(&grads), m.grad(&grads), sc.grad(&grads)]
            };
            let ours = run(&modulated_norm);
            let burns = run(&composed);
            for (i, (a, b)) in ours.iter().zip(&burns).enumerate() {
                assert_eq!(
                    a.is_some(),
                    mask & (1 << i) != 0,
                    "presence {i}, mask {mask}"
                );
                if let (Some(a), Some(b)) = (a, b) {
                    assert_close(&a.clone(), &b.clone(), 1e-5);
                }
            }
        }
    }
}
