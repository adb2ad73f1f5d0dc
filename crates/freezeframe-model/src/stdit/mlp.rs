//! Two-layer perceptron `fc1 → GELU → fc2` (timm's `Mlp`, as used by Open-Sora).
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use freezeframe_kernels::{gelu, linear};

#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Mlp {
    pub fn new(input: usize, hidden: usize, output: usize, device: &Device) -> Self {
        Self {
            fc1: LinearConfig::new(input, hidden).init(device),
            fc2: LinearConfig::new(hidden, output).init(device),
        }
    }

    /// Exact (erf) GELU, as `bench/torch_reference.py` uses. PixArt/Open-Sora use the tanh
    /// approximation; the two differ by < 1e-3, which training from scratch absorbs. The fused
    /// kernel replaces Burn's element-by-element libm `erf` (see `freezeframe-kernels`).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        linear(&self.fc2, gelu(linear(&self.fc1, x)))
    }
}
