//! All weight initialisation in one place, keyed by Open-Sora path (its `initialize_weights`):
//! Linear weights Xavier-uniform with zero bias; the timestep and caption MLPs N(0, 0.02);
//! `scale_shift_table`s N(0, 1)/√D; the null caption N(0, 1)/√text_dim; and zero for
//! `attn_temp.proj`, `attn_temp.pos_gate` and `attn_temp.y_cond` (an inflated model starts as
//! its image model), `cross_attn.proj` and `final_layer.linear`; LoRA adapters `lora_b` zero and
//! `lora_a` Kaiming-uniform. Parameter ids are set to their traversal index so that a model
//! rebuilt from the same config has the same ids, which Burn's optimizer state is keyed by.
use burn::module::Module;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::paths::{map_values, stable_ids};

/// How one parameter is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Zeros,
    /// Uniform(−b, b) with b = √(6 / (fan_in + fan_out)).
    XavierUniform,
    Normal(f64),
    /// Uniform(−b, b).
    Uniform(f64),
}

/// The rule for an Open-Sora path and shape.
pub fn rule(path: &str, shape: &[usize]) -> Init {
    // LoRA (before the layer rules: an adapter on `attn_temp.proj` is not zero on both sides):
    // `B` zero, so a fresh adapter changes nothing; `A` as PEFT draws it (Kaiming-uniform with
    // a = √5, i.e. b = 1/√d_in).
    if path.ends_with(".lora_b") {
        return Init::Zeros;
    }
    if path.ends_with(".lora_a") {
        return Init::Uniform(1.0 / (shape[0] as f64).sqrt());
    }
    let zero_init = [
        "attn_temp.proj.",
        "attn_temp.pos_gate",
        "attn_temp.y_cond.",
        "cross_attn.proj.",
        "final_layer.linear.",
    ];
    if zero_init.iter().any(|z| path.contains(z)) {
        return Init::Zeros;
    }
    if path.ends_with("scale_shift_table") {
        return Init::Normal(1.0 / (shape[1] as f64).sqrt());
    }
    if path == "y_embedder.y_embedding" {
        return Init::Normal(1.0 / (shape[1] as f64).sqrt());
    }
    if path.ends_with(".bias") {
        return Init::Zeros;
    }
    let small = ["t_embedder.mlp.", "t_block.", "y_embedder.y_proj."];
    if small.iter().any(|s| path.starts_with(s)) {
        return Init::Normal(0.02);
    }
    Init::XavierUniform
}

fn sample(init: Init, shape: &[usize], rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n: usize = shape.iter().product();
    match init {
        Init::Zeros => vec![0.0; n],
        Init::XavierUniform => {
            let (fan_in, fan_out) = (shape[0], shape.get(1).copied().unwrap_or(1));
            let b = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
            (0..n).map(|_| rng.random_range(-b..b)).collect()
        }
        Init::Uniform(b) => {
            let b = b as f32;
            (0..n).map(|_| rng.random_range(-b..b)).collect()
        }
        Init::Normal(std) => (0..n)
            .map(|_| rng.sample::<f32, _>(StandardNormal) * std as f32)
            .collect(),
    }
}

/// The initial values of one parameter, drawn on their own from `seed` (for importers that
/// must fill a tensor the source format lacks, such as the null caption).
pub fn initial_values(path: &str, shape: &[usize], seed: u64) -> Vec<f32> {
    sample(
        rule(path, shape),
        shape,
        &mut ChaCha8Rng::seed_from_u64(seed),
    )
}

/// Initialise every parameter of `module` from `seed` (deterministic, backend-independent).
pub fn initialize<M: Module>(module: M, seed: u64) -> M {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let module = map_values(module, |path, shape, _| {
        Some(sample(rule(path, shape), shape, &mut rng))
    });
    stable_ids(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_opensora() {
        assert_eq!(rule("blocks.2.attn_temp.proj.weight", &[8, 8]), Init::Zeros);
        assert_eq!(rule("blocks.2.attn_temp.proj.bias", &[8]), Init::Zeros);
        assert_eq!(
            rule("blocks.2.attn_temp.qkv.weight", &[8, 24]),
            Init::XavierUniform
        );
        assert_eq!(rule("final_layer.linear.weight", &[8, 48]), Init::Zeros);
        assert_eq!(rule("blocks.1.attn_temp.pos_gate", &[8]), Init::Zeros);
        assert_eq!(
            rule("blocks.1.attn_temp.y_cond.weight", &[8, 8]),
            Init::Zeros
        );
        assert_eq!(
            rule("t_embedder.mlp.0.weight", &[256, 8]),
            Init::Normal(0.02)
        );
        assert_eq!(rule("t_block.1.weight", &[8, 48]), Init::Normal(0.02));
        assert_eq!(
            rule("blocks.0.scale_shift_table", &[6, 16]),
            Init::Normal(0.25)
        );
        assert_eq!(rule("blocks.0.mlp.fc1.bias", &[16]), Init::Zeros);
        assert_eq!(
            rule("blocks.0.attn_temp.proj.lora_b", &[4, 16]),
            Init::Zeros
        );
        assert_eq!(
            rule("blocks.0.attn_temp.proj.lora_a", &[16, 4]),
            Init::Uniform(0.25)
        );
    }
}
