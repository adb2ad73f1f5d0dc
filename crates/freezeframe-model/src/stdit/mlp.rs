//! Two-layer perceptron `fc1 → activation → fc2` (timm's `Mlp`, as used by Open-Sora).
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu_approximate, silu};
use freezeframe_kernels::{gelu, linear};

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
            fc1: LinearConfig::new(input, hidden).init(device),
            fc2: LinearConfig::new(hidden, output).init(device),
            act,
        }
    }

    /// The exact (erf) GELU runs on the fused kernel, which replaces Burn's element-by-element
    /// libm `erf` (see `freezeframe-kernels`); the tanh form and SiLU on Burn's composed ops.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let h = linear(&self.fc1, x);
        let h = match self.act {
            Activation::Gelu => gelu(h),
            Activation::GeluTanh => gelu_approximate(h),
            Activation::Silu => silu(h),
        };
        linear(&self.fc2, h)
    }
}
