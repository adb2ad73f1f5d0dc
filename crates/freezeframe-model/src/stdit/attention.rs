//! Multi-head self- and cross-attention over token sequences, on the fused kernels of
//! `freezeframe-kernels` (Burn's composed ops on backends other than flex).
use super::linear::Linear;
use burn::module::Param;
use burn::prelude::*;
use freezeframe_kernels::{cross_attention, self_attention};

/// The gated temporal position is `POS_GATE_GAIN · pos_gate ⊙ pe(frame)`. Adam moves a parameter
/// by about the learning rate per step whatever its gradient's size, so a zero-initialised gate
/// stored at gain 1 opens slowly: at lr 1e-3, `full` opened it to rms 0.11 in 4000 steps, and
/// a scalar gate to 0.2, and neither learned the direction words (runs J and K in
/// docs/calibration.md). The gain makes the gates' steps ten times the other parameters' — a
/// per-parameter learning rate, set on `full` alone like every other calibration choice.
pub const POS_GATE_GAIN: f32 = 10.0;

/// Self-attention with a fused `qkv` projection and an output `proj` (timm naming, as Open-Sora).
#[derive(Module, Debug)]
pub struct SelfAttention {
    pub qkv: Linear,
    pub proj: Linear,
    /// Temporal attention with `temporal_pos = "gated"` only: the gate [D] on the temporal
    /// position embedding the block adds to its stream (see `TemporalPos::Gated`), applied as
    /// `POS_GATE_GAIN · pos_gate`.
    pub pos_gate: Option<Param<Tensor<1>>>,
    /// Temporal attention with `caption_to_temporal` only: pooled caption [B, D] → a bias on
    /// the attention's input (zero until trained).
    pub y_cond: Option<Linear>,
    pub heads: usize,
}

impl SelfAttention {
    pub fn new(hidden: usize, heads: usize, device: &Device) -> Self {
        Self {
            qkv: Linear::new(hidden, 3 * hidden, device),
            proj: Linear::new(hidden, hidden, device),
            pos_gate: None,
            y_cond: None,
            heads,
        }
    }

    /// The same attention with a position gate (zero until [`crate::init::initialize`] runs,
    /// which keeps it zero).
    pub fn with_pos_gate(self, device: &Device) -> Self {
        let hidden = self.proj.weight.dims()[1];
        Self {
            pos_gate: Some(Param::from_tensor(Tensor::zeros([hidden], device))),
            ..self
        }
    }

    /// The same attention reading the pooled caption (`y_cond`, zeroed by
    /// [`crate::init::initialize`]).
    pub fn with_caption_cond(self, device: &Device) -> Self {
        let hidden = self.proj.weight.dims()[1];
        Self {
            y_cond: Some(Linear::new(hidden, hidden, device)),
            ..self
        }
    }

    /// `x` [G, L, M, D] → [G, L, M, D]: for every g and m, the L tokens (g, ·, m) attend to
    /// each other — spatial attention is M = 1, temporal attention reads frames in place.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let qkv = self.qkv.forward(x); // [G, L, M, 3·D]
        let out = self_attention(qkv, self.heads); // [G, L, M, D]
        self.proj.forward(out)
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
            q_linear: Linear::new(hidden, hidden, device),
            kv_linear: Linear::new(hidden, 2 * hidden, device),
            proj: Linear::new(hidden, hidden, device),
            heads,
        }
    }

    /// `x` [B, N, D], `y` [B, L, D], `pad` [B, L] (true = padding) → [B, N, D].
    pub fn forward(&self, x: Tensor<3>, y: Tensor<3>, pad: Tensor<2, Bool>) -> Tensor<3> {
        let q = self.q_linear.forward(x); // [B, N, D]
        let kv = self.kv_linear.forward(y); // [B, L, 2·D]
        let out = cross_attention(q, kv, pad, self.heads); // [B, N, D]
        self.proj.forward(out)
    }
}
