//! Two-layer perceptron `fc1 → activation → fc2` (timm's `Mlp`, as used by Open-Sora).
use super::linear::Linear;
use burn::prelude::*;
use burn::tensor::activation::{gelu_approximate, silu};
use freezeframe_kernels::gelu;

use crate::config::Activation;

#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
    #[module(skip)]
    pub act: Activation,
}

impl Mlp {
    pub fn new(
        input: usize,
        hidden: usize,
        output: usize,
        act: Activation,
        device: &Device,
    ) -> Self {
        Self {
            fc1: Linear::new(input, hidden, device),
            fc2: Linear::new(hidden, output, device),
            act,
        }
    }

    /// The exact (erf) GELU runs on the fused kernel, which replaces Burn's element-by-element
    /// libm `erf` (see `freezeframe-kernels`); the tanh form and SiLU on Burn's composed ops.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let h = self.fc1.forward(x);
        let h = match self.act {
            Activation::Gelu => gelu(h),
            Activation::GeluTanh => gelu_approximate(h),
            Activation::Silu => silu(h),
        };
        self.fc2.forward(h)
    }
}
