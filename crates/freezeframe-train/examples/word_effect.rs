//! How much one caption word changes a run's prediction: the mean |Δv| between two prompts on
//! the same noisy input, at several noise levels
//! (`cargo run --release -p freezeframe-train --example word_effect -- RUN "prompt a" "prompt b"`).
use burn::prelude::*;
use freezeframe_model::TextEncoder;
use freezeframe_train::batch::normal_tensor;
use freezeframe_train::run::Run;
use freezeframe_train::sample::load_run;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, run, a, b] = args.as_slice() else {
        return Err("usage: word_effect RUN PROMPT_A PROMPT_B".into());
    };
    let dev = Device::flex();
    let r = load_run(&Run::new(run), &dev)?;
    let spec = r.spec(1, 1.0, 0);
    let [t, c, h, w] = spec.shape;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = normal_tensor(&mut rng, [4, t, c, h, w], &dev);
    let ca = r.encoder.encode_batch(&vec![a.clone(); 4], &dev)?;
    let cb = r.encoder.encode_batch(&vec![b.clone(); 4], &dev)?;
    for time in [0.99f32, 0.9, 0.7, 0.5, 0.2] {
        let tt = Tensor::<1>::full([4], time, &dev);
        let va = r.model.forward(x.clone(), tt.clone(), &ca);
        let vb = r.model.forward(x.clone(), tt, &cb);
        let d = (va.clone() - vb).abs();
        println!(
            "t = {time}: mean |Δv| {:.6}, max {:.6}, mean |v| {:.4}",
            d.clone().mean().into_scalar::<f32>(),
            d.max().into_scalar::<f32>(),
            va.abs().mean().into_scalar::<f32>()
        );
    }
    Ok(())
}
