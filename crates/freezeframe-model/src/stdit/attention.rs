//! Multi-head self- and cross-attention over token sequences. Self-attention runs on the fused
//! kernel of `freezeframe-kernels` (Burn's composed ops on backends other than flex);
//! cross-attention, which needs a padding mask, on Burn's attention op.
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use freezeframe_kernels::{linear, self_attention};

/// Self-attention with a fused `qkv` projection and an output `proj` (timm naming, as Open-Sora).
#[derive(Module, Debug)]
pub struct SelfAttention {
    pub qkv: Linear,
    pub proj: Linear,
    pub heads: usize,
}

impl SelfAttention {
    pub fn new(hidden: usize, heads: usize, device: &Device) -> Self {
        Self {
            qkv: LinearConfig::new(hidden, 3 * hidden).init(device),
            proj: LinearConfig::new(hidden, hidden).init(device),
            heads,
        }
    }

    /// `x` [N, L, D] → [N, L, D]; every row of N attends within itself.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let qkv = linear(&self.qkv, x); // [N, L, 3·D]
        let out = self_attention(qkv, self.heads); // [N, L, D]
        linear(&self.proj, out)
    }
}

/// Cross-attention from video tokens to caption tokens (`q_linear`, `kv_linear`, `proj`).
#[derive(Module, Debug)]
pub struct CrossAttention {
    pub q_linear: Linear,
    pub kv_linear: Linear,
    pub proj: Linear,
    pub heads: usize,
}

impl CrossAttention {
    pub fn new(hidden: usize, heads: usize, device: &Device) -> Self {
        Self {
            q_linear: LinearConfig::new(hidden, hidden).init(device),
            kv_linear: LinearConfig::new(hidden, 2 * hidden).init(device),
            proj: LinearConfig::new(hidden, hidden).init(device),
            heads,
        }
    }

    /// `x` [B, N, D], `y` [B, L, D], `pad` [B, L] (true = padding) → [B, N, D].
    pub fn forward(&self, x: Tensor<3>, y: Tensor<3>, pad: Tensor<2, Bool>) -> Tensor<3> {
        let [b, n, d] = x.dims();
        let l = y.dims()[1];
        let h = self.heads;
        let q = linear(&self.q_linear, x)
            .reshape([b, n, h, d / h])
            .swap_dims(1, 2); // [B, H, N, hd]
        let kv = linear(&self.kv_linear, y).reshape([b, l, 2, h, d / h]); // [B, L, 2, H, hd]
        let kv = kv.permute([2, 0, 3, 1, 4]); // [2, B, H, L, hd]
        let k = kv.clone().narrow(0, 0, 1).squeeze_dim::<4>(0); // [B, H, L, hd]
        let v = kv.narrow(0, 1, 1).squeeze_dim::<4>(0); // [B, H, L, hd]
        let mask = pad.reshape([b, 1, 1, l]).expand([b, h, n, l]); // [B, H, N, L]
        let out = attention(q, k, v, Some(mask), None, AttentionModuleOptions::default());
        let out = out.swap_dims(1, 2).reshape([b, n, d]); // [B, N, D]
        linear(&self.proj, out)
    }
}
