//! Does a run's model use frame order? |v(x) − rev(v(rev(x)))| on noisy inputs: zero for a
//! model that is blind to order (it then cannot tell "left" from "right")
//! (`cargo run --release -p freezeframe-train --example frame_order -- RUN "prompt"`).
use burn::prelude::*;
use freezeframe_model::TextEncoder;
use freezeframe_train::batch::normal_tensor;
use freezeframe_train::run::Run;
use freezeframe_train::sample::load_run;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn reverse(x: Tensor<5>) -> Tensor<5> {
    let t = x.dims()[1];
    let idx: Vec<i64> = (0..t as i64).rev().collect();
    let idx = Tensor::<1, Int>::from_ints(idx.as_slice(), &x.device());
    x.select(1, idx)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, run, prompt] = args.as_slice() else {
        return Err("usage: frame_order RUN PROMPT".into());
    };
    let dev = Device::flex();
    let r = load_run(&Run::new(run), &dev)?;
    println!("temporal_pos = {:?}", r.model.temporal_pos);
    let [t, c, h, w] = r.spec(1, 1.0, 0).shape;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = normal_tensor(&mut rng, [4, t, c, h, w], &dev);
    let cap = r.encoder.encode_batch(&vec![prompt.clone(); 4], &dev)?;
    for time in [0.99f32, 0.9, 0.5] {
        let tt = Tensor::<1>::full([4], time, &dev);
        let v = r.model.forward(x.clone(), tt.clone(), &cap);
        let vr = reverse(r.model.forward(reverse(x.clone()), tt, &cap));
        println!(
            "t = {time}: mean |v − rev v(rev x)| {:.6}, mean |v| {:.4}",
            (v.clone() - vr).abs().mean().into_scalar::<f32>(),
            v.abs().mean().into_scalar::<f32>()
        );
    }
    Ok(())
}
