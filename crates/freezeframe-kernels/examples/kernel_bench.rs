//! Times each fused kernel against Burn's composed ops at the `base` preset's shapes:
//! `cargo run --release -p freezeframe-kernels --example kernel_bench`.
use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use freezeframe_kernels::{attention, gelu};

fn time(label: &str, reps: usize, mut f: impl FnMut()) {
    f();
    let mut ms: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!("{label:<44} median {:8.2} ms", ms[reps / 2]);
}

fn main() {
    let dev = Device::flex().autodiff();
    let cases = [
        ("spatial [B·T=64, S=64]", [64, 64, 384]),
        ("temporal [B·S=512, T=8]", [512, 8, 384]),
    ];
    for (name, shape) in cases {
        let x0 = Tensor::<3>::random(shape, Distribution::Default, &dev);
        time(&format!("attention {name} fused fwd+bwd"), 7, || {
            let x = x0.clone().require_grad();
            let _ = attention::self_attention(x.clone(), 4).sum().backward();
        });
        time(&format!("attention {name} burn fwd+bwd"), 7, || {
            let x = x0.clone().require_grad();
            let _ = attention::composed(x.clone(), 4).sum().backward();
        });
    }
    let x0 = Tensor::<3>::random([8, 512, 128], Distribution::Default, &dev);
    let mod0 = Tensor::<3>::random([8, 1, 128], Distribution::Default, &dev);
    time(
        "burn layer_norm + modulate [8, 512, 128] fwd+bwd",
        7,
        || {
            let x = x0.clone().require_grad();
            let (shift, scale) = (mod0.clone().require_grad(), mod0.clone().require_grad());
            let ones = Tensor::<1>::ones([128], &dev);
            let y = burn::tensor::module::layer_norm(x, ones, None, 1e-6);
            let y = y.clone() * scale + y + shift;
            let _ = y.sum().backward();
        },
    );
    time("burn x + gate·y [8, 512, 128] fwd+bwd", 7, || {
        let x = x0.clone().require_grad();
        let y = x0.clone().require_grad();
        let gate = mod0.clone().require_grad();
        let _ = (x + gate * y).sum().backward();
    });
    let x0 = Tensor::<3>::random([8, 512, 512], Distribution::Default, &dev);
    time("gelu [8, 512, 512] fused fwd+bwd", 7, || {
        let x = x0.clone().require_grad();
        let _ = gelu::gelu(x.clone()).sum().backward();
    });
    time("baseline: x·1 → sum → backward, same shape", 7, || {
        let x = x0.clone().require_grad();
        let _ = (x.clone() * 1.0).sum().backward();
    });
    let plain = Tensor::<3>::random([8, 512, 512], Distribution::Default, &Device::flex());
    time("gelu [8, 512, 512] fused forward, no autodiff", 7, || {
        let _ = gelu::gelu(plain.clone());
    });
    time("gelu [8, 512, 512] burn fwd+bwd", 7, || {
        let x = x0.clone().require_grad();
        let _ = burn::tensor::activation::gelu(x.clone()).sum().backward();
    });
}
