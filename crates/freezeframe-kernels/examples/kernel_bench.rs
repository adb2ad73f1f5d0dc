//! Times each fused kernel against Burn's composed ops, forward and backward under autodiff, at
//! the `base` preset's shapes (batch 8, 8 frames of 8×8 patches, width 128, 4 heads):
//! `cargo run --release -p freezeframe-kernels --example kernel_bench`.
use std::time::Instant;

use burn::nn::LinearConfig;
use burn::tensor::{Bool, Device, Distribution, Tensor};
use freezeframe_kernels::{attention, cross_attention, gelu, linear, modnorm};

/// Median milliseconds of `f` over `reps` runs after one warm-up.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut ms: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms[reps / 2]
}

fn row(label: &str, fused: f64, burn: f64) {
    println!(
        "| {label} | {fused:.2} | {burn:.2} | {:.1}× |",
        burn / fused
    );
}

/// Forward, then backward of `sum(f(x) · w)` with `w` fixed, so the incoming gradient is dense.
fn fwd_bwd<const D: usize>(x0: &Tensor<D>, w: &Tensor<D>, f: impl Fn(Tensor<D>) -> Tensor<D>) {
    let x = x0.clone().require_grad();
    let _ = (f(x) * w.clone()).sum().backward();
}

fn main() {
    let dev = Device::flex().autodiff();
    let rnd = |s: [usize; 4]| Tensor::<4>::random(s, Distribution::Default, &dev);
    let rnd3 = |s: [usize; 3]| Tensor::<3>::random(s, Distribution::Default, &dev);
    println!("| op (base shapes, forward + backward) | fused ms | Burn ms | speed-up |");
    println!("|---|---|---|---|");
    let reps = 9;

    for (name, shape) in [
        (
            "self-attention, spatial [64, 64, 1, 3·128]",
            [64, 64, 1, 384],
        ),
        (
            "self-attention, temporal [8, 8, 64, 3·128]",
            [8, 8, 64, 384],
        ),
    ] {
        let (x, w) = (rnd(shape), rnd([shape[0], shape[1], shape[2], 128]));
        let fused = time(reps, || {
            fwd_bwd(&x, &w, |x| attention::self_attention(x, 4))
        });
        let burn = time(reps, || fwd_bwd(&x, &w, |x| attention::composed(x, 4)));
        row(name, fused, burn);
    }

    let (q, w) = (rnd3([8, 512, 128]), rnd3([8, 512, 128]));
    let kv = rnd3([8, 12, 256]);
    let pad = Tensor::<2, Bool>::from_data(
        burn::tensor::TensorData::new(
            (0..8 * 12)
                .map(|i| i % 12 >= 6 + i / 12 % 6)
                .collect::<Vec<_>>(),
            [8, 12],
        ),
        &dev,
    );
    let fused = time(reps, || {
        fwd_bwd(&q, &w, |q| {
            cross_attention::cross_attention(q, kv.clone(), pad.clone(), 4)
        })
    });
    let burn = time(reps, || {
        fwd_bwd(&q, &w, |q| {
            cross_attention::composed(q, kv.clone(), pad.clone(), 4)
        })
    });
    row("cross-attention [8, 512, 128] to 12 tokens", fused, burn);

    let layer = LinearConfig::new(128, 512).init(&dev);
    let (x, w) = (rnd3([8, 512, 128]), rnd3([8, 512, 512]));
    let fused = time(reps, || fwd_bwd(&x, &w, |x| linear::linear(&layer, x)));
    let burn = time(reps, || fwd_bwd(&x, &w, |x| layer.forward(x)));
    row("linear 128 → 512 on [8, 512, 128]", fused, burn);

    let (x, w) = (rnd3([8, 512, 512]), rnd3([8, 512, 512]));
    let fused = time(reps, || fwd_bwd(&x, &w, gelu::gelu));
    let burn = time(reps, || fwd_bwd(&x, &w, burn::tensor::activation::gelu));
    row("GELU [8, 512, 512]", fused, burn);

    let (x, w) = (rnd3([8, 512, 128]), rnd3([8, 512, 128]));
    let (sh, sc) = (
        rnd3([8, 1, 128]).require_grad(),
        rnd3([8, 1, 128]).require_grad(),
    );
    let fused = time(reps, || {
        fwd_bwd(&x, &w, |x| {
            modnorm::modulated_norm(x, sh.clone(), sc.clone())
        })
    });
    let burn = time(reps, || {
        fwd_bwd(&x, &w, |x| modnorm::composed(x, sh.clone(), sc.clone()))
    });
    row("LayerNorm + modulate [8, 512, 128]", fused, burn);
}
