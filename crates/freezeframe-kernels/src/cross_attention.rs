//! Multi-head cross-attention from video tokens to padded caption tokens, with its own backward.
//!
//! The composed path expands the padding mask to [B, H, N, L], fills it into the scores and runs
//! the five-op softmax, plus the head-split copies of [`crate::attention`]. Here `q` [B, N, H, hd]
//! and `kv` [B, L, 2, H, hd] are read in place per (batch item, head); a padded key gets
//! probability exactly zero.
use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};
use rayon::prelude::*;

use crate::attention::softmax_backward;
use crate::gemm::{Mat, Product, Threads};
use crate::math::{dispatch, exp};
use crate::route::{Ad, AdTensor, Routed, back, route, shape, tensor, values};

/// `q` [B, N, D], `kv` [B, L, 2·D] (keys then values, each split into heads), `pad` [B, L]
/// (true = padding) → [B, N, D]. Every caption needs at least one real token; a row whose keys
/// are all padding gets zeros here (Burn's composed path gives NaN).
pub fn cross_attention(
    q: Tensor<3>,
    kv: Tensor<3>,
    pad: Tensor<2, Bool>,
    heads: usize,
) -> Tensor<3> {
    match (route(q), route(kv)) {
        (Routed::Autodiff(q), Routed::Autodiff(kv)) => {
            Tensor::from_primitive::<Ad>(autodiff(q, kv, keep_mask(pad), heads))
        }
        (Routed::Flex(q), Routed::Flex(kv)) => {
            Tensor::from_primitive::<Flex>(forward(&q, &kv, &keep_mask(pad), heads).0)
        }
        (q, kv) => composed(back(q), back(kv), pad, heads),
    }
}

/// The same in Burn's ops: the path for other backends and the tests' oracle.
pub fn composed(q: Tensor<3>, kv: Tensor<3>, pad: Tensor<2, Bool>, heads: usize) -> Tensor<3> {
    let [b, n, d] = q.dims();
    let l = kv.dims()[1];
    let hd = d / heads;
    let q = q.reshape([b, n, heads, hd]).swap_dims(1, 2); // [B, H, N, hd]
    let kv = kv.reshape([b, l, 2, heads, hd]).permute([2, 0, 3, 1, 4]); // [2, B, H, L, hd]
    let k = kv.clone().narrow(0, 0, 1).squeeze_dim::<4>(0); // [B, H, L, hd]
    let v = kv.narrow(0, 1, 1).squeeze_dim::<4>(0); // [B, H, L, hd]
    let mask = pad.reshape([b, 1, 1, l]).expand([b, heads, n, l]); // [B, H, N, L]
    let out = attention(q, k, v, Some(mask), None, AttentionModuleOptions::default());
    out.swap_dims(1, 2).reshape([b, n, d]) // [B, N, D]
}

/// 1.0 for a real caption token, 0.0 for padding, [B·L].
fn keep_mask(pad: Tensor<2, Bool>) -> Arc<Vec<f32>> {
    let pad = pad.into_data().iter::<bool>().collect::<Vec<_>>();
    Arc::new(pad.into_iter().map(|p| if p { 0.0 } else { 1.0 }).collect())
}

#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    n: usize,
    l: usize,
    d: usize,
    heads: usize,
    hd: usize,
    scale: f32,
}

impl Dims {
    fn of(q: &FlexTensor, kv: &FlexTensor, heads: usize) -> Self {
        let (qs, ks) = (shape(q), shape(kv));
        let (b, n, d, l) = (qs[0], qs[1], qs[2], ks[1]);
        assert!(
            d % heads == 0 && ks[2] == 2 * d && ks[0] == b,
            "cross-attention shapes q {qs:?}, kv {ks:?} do not fit {heads} heads"
        );
        let hd = d / heads;
        Self {
            b,
            n,
            l,
            d,
            heads,
            hd,
            scale: 1.0 / (hd as f32).sqrt(),
        }
    }
}

/// Softmax over the real keys of each row of `p` [N, L]; padded keys get exactly 0.
#[inline(always)]
fn masked_softmax(p: &mut [f32], keep: &[f32]) {
    let l = keep.len();
    for s in p.chunks_exact_mut(l) {
        let max = s.iter().zip(keep).fold(
            f32::NEG_INFINITY,
            |m, (&v, &k)| if k > 0.0 { m.max(v) } else { m },
        );
        s.iter_mut()
            .zip(keep)
            .for_each(|(s, &k)| *s = exp(*s - max) * k);
        let sum = s.iter().sum::<f32>();
        let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
        s.iter_mut().for_each(|s| *s *= inv);
    }
}

/// Output [B, N, D] and probabilities [B, H, N, L].
fn forward(
    q: &FlexTensor,
    kv: &FlexTensor,
    keep: &[f32],
    heads: usize,
) -> (FlexTensor, FlexTensor) {
    let dm = Dims::of(q, kv, heads);
    let Dims {
        b,
        n,
        l,
        d,
        hd,
        scale,
        ..
    } = dm;
    let (qs, kvs) = (values(q), values(kv));
    let mut out = vec![0.0f32; b * n * d];
    let mut probs = vec![0.0f32; b * heads * n * l];
    out.par_chunks_mut(n * d)
        .zip(probs.par_chunks_mut(heads * n * l))
        .zip(qs.par_chunks(n * d).zip(kvs.par_chunks(l * 2 * d)))
        .zip(keep.par_chunks(l))
        .for_each(|(((o, p), (q, kv)), keep)| {
            dispatch(
                #[inline(always)]
                || {
                    for (h, p) in p.chunks_exact_mut(n * l).enumerate() {
                        let (c, one) = (h * hd, Threads::One);
                        let kt = Mat::cols(&kv[c..], 2 * d);
                        Product::new(n, l, hd, Mat::rows(&q[c..], d), kt)
                            .scaled(scale)
                            .write_to(p, l, one);
                        masked_softmax(p, keep);
                        let v = Mat::rows(&kv[d + c..], 2 * d);
                        Product::new(n, hd, l, Mat::rows(p, l), v).write_to(&mut o[c..], d, one);
                    }
                },
            )
        });
    (tensor(out, [b, n, d]), tensor(probs, [b, heads, n, l]))
}

#[derive(Debug, Clone)]
struct Saved {
    q: FlexTensor,
    kv: FlexTensor,
    probs: FlexTensor,
    heads: usize,
}

/// Gradients for `q` and `kv` (each only when asked) from the output gradient [B, N, D].
fn gradients(
    s: &Saved,
    g: &FlexTensor,
    want_q: bool,
    want_kv: bool,
) -> (Option<FlexTensor>, Option<FlexTensor>) {
    let dm = Dims::of(&s.q, &s.kv, s.heads);
    let Dims {
        b,
        n,
        l,
        d,
        heads,
        hd,
        scale,
    } = dm;
    let (qs, kvs, ps, gs) = (values(&s.q), values(&s.kv), values(&s.probs), values(g));
    let mut dq = vec![0.0f32; if want_q { b * n * d } else { 0 }];
    let mut dkv = vec![0.0f32; if want_kv { b * l * 2 * d } else { 0 }];
    let item = |i: usize, dq: &mut [f32], dkv: &mut [f32]| {
        let q = &qs[i * n * d..(i + 1) * n * d];
        let kv = &kvs[i * l * 2 * d..(i + 1) * l * 2 * d];
        let go = &gs[i * n * d..(i + 1) * n * d];
        let ps = &ps[i * heads * n * l..(i + 1) * heads * n * l];
        dispatch(
            #[inline(always)]
            || {
                let mut ds = vec![0.0f32; n * l];
                let one = Threads::One;
                for (h, p) in ps.chunks_exact(n * l).enumerate() {
                    let c = h * hd;
                    let gom = Mat::rows(&go[c..], d); // dO [N, hd]
                    if want_kv {
                        // dV = Pᵀ·dO
                        let pt = Mat::cols(p, l);
                        Product::new(l, hd, n, pt, gom).write_to(&mut dkv[d + c..], 2 * d, one);
                    }
                    // dP = dO·Vᵀ, then through the softmax (zero where a key is padding, as P is).
                    Product::new(n, l, hd, gom, Mat::cols(&kv[d + c..], 2 * d))
                        .write_to(&mut ds, l, one);
                    softmax_backward(p, &mut ds, l);
                    if want_q {
                        // dQ = scale · dS·K
                        let k = Mat::rows(&kv[c..], 2 * d);
                        Product::new(n, hd, l, Mat::rows(&ds, l), k)
                            .scaled(scale)
                            .write_to(&mut dq[c..], d, one);
                    }
                    if want_kv {
                        // dK = scale · dSᵀ·Q
                        let qm = Mat::rows(&q[c..], d);
                        let dst = Mat::cols(&ds, l);
                        Product::new(l, hd, n, dst, qm).scaled(scale).write_to(
                            &mut dkv[c..],
                            2 * d,
                            one,
                        );
                    }
                }
            },
        )
    };
    match (want_q, want_kv) {
        (true, true) => dq
            .par_chunks_mut(n * d)
            .zip(dkv.par_chunks_mut(l * 2 * d))
            .enumerate()
            .for_each(|(i, (dq, dkv))| item(i, dq, dkv)),
        (true, false) => dq
            .par_chunks_mut(n * d)
            .enumerate()
            .for_each(|(i, dq)| item(i, dq, &mut [])),
        (false, true) => dkv
            .par_chunks_mut(l * 2 * d)
            .enumerate()
            .for_each(|(i, dkv)| item(i, &mut [], dkv)),
        (false, false) => {}
    }
    (
        want_q.then(|| tensor(dq, [b, n, d])),
        want_kv.then(|| tensor(dkv, [b, l, 2 * d])),
    )
}

#[derive(Debug)]
struct CrossBackward;

impl Backward<Flex, 2> for CrossBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [pq, pkv] = ops.parents.map(|p| p.map(|p| p.id));
        let g = grads.consume::<Flex>(&ops.node);
        let (dq, dkv) = gradients(&ops.state, &g, pq.is_some(), pkv.is_some());
        for (id, grad) in [(pq, dq), (pkv, dkv)] {
            if let (Some(id), Some(grad)) = (id, grad) {
                grads.register::<Flex>(id, grad);
            }
        }
    }
}

fn autodiff(q: AdTensor, kv: AdTensor, keep: Arc<Vec<f32>>, heads: usize) -> AdTensor {
    let (q, qn) = q.into_parts();
    let (kv, kvn) = kv.into_parts();
    let (out, probs) = forward(&q, &kv, &keep, heads);
    match CrossBackward
        .prepare::<NoCheckpointing>([qn, kvn])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            Saved {
                q,
                kv,
                probs,
                heads,
            },
            out,
        ),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, random};
    use burn::tensor::{Device, TensorData};

    /// Three captions of length 5 with 0, 2 and 4 padding tokens.
    fn pad(device: &Device) -> Tensor<2, Bool> {
        let p: Vec<bool> = (0..3)
            .flat_map(|b| (0..5).map(move |j| j >= 5 - 2 * b))
            .collect();
        Tensor::from_data(TensorData::new(p, [3, 5]), device)
    }

    #[test]
    fn forward_matches_burn() {
        let dev = Device::flex();
        let q = random([3, 9, 16], 100, &dev) * 2.0;
        let kv = random([3, 5, 32], 101, &dev) * 2.0;
        let ours = cross_attention(q.clone(), kv.clone(), pad(&dev), 4);
        assert_close(&ours, &composed(q, kv, pad(&dev), 4), 2e-6);
    }

    /// Gradient check against Burn's autodiff of the composed ops, for q alone, kv alone, both.
    #[test]
    fn backward_matches_burn() {
        let dev = Device::flex().autodiff();
        for (tq, tkv) in [(true, false), (false, true), (true, true)] {
            let q0 = random([3, 9, 16], 110, &dev) * 2.0;
            let kv0 = random([3, 5, 32], 111, &dev) * 2.0;
            let w = random([3, 9, 16], 112, &dev);
            let run = |f: &dyn Fn(Tensor<3>, Tensor<3>) -> Tensor<3>| {
                let q = if tq {
                    q0.clone().require_grad()
                } else {
                    q0.clone()
                };
                let kv = if tkv {
                    kv0.clone().require_grad()
                } else {
                    kv0.clone()
                };
                let grads = (f(q.clone(), kv.clone()) * w.clone()).sum().backward();
                (q.grad(&grads), kv.grad(&grads))
            };
            let ours = run(&|q, kv| cross_attention(q, kv, pad(&dev), 4));
            let burns = run(&|q, kv| composed(q, kv, pad(&dev), 4));
            assert_eq!((ours.0.is_some(), ours.1.is_some()), (tq, tkv));
            if let (Some(a), Some(b)) = (ours.0, burns.0) {
                assert_close(&a, &b, 1e-5);
            }
            if let (Some(a), Some(b)) = (ours.1, burns.1) {
                assert_close(&a, &b, 1e-5);
            }
        }
    }
}
