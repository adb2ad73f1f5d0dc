//! One STDiT block: spatial attention (modulated, gated) → the gated temporal position, when the
//! block has a gate → temporal attention (on the unmodulated stream, sharing the spatial gate)
//! → cross-attention to the caption → MLP.
use burn::module::Param;
use burn::prelude::*;

use super::attention::{CrossAttention, POS_GATE_GAIN, SelfAttention};
use super::mlp::Mlp;
use freezeframe_kernels::modulated_norm;

use super::modulation::BlockModulation;
use crate::config::{StdiTConfig, TemporalPos};

#[derive(Module, Debug)]
pub struct StditBlock {
    pub attn: SelfAttention,
    pub attn_temp: SelfAttention,
    pub cross_attn: CrossAttention,
    pub mlp: Mlp,
    /// [6, D]: added to the shared `t_block` output (adaLN-single).
    pub scale_shift_table: Param<Tensor<2>>,
}

/// What a block needs besides the token stream.
pub struct BlockContext<'a> {
    /// Caption tokens [B, L, D] and their padding mask [B, L].
    pub y: &'a Tensor<3>,
    pub pad: &'a Tensor<2, Bool>,
    /// Shared `t_block` output [B, 6·D].
    pub t0: &'a Tensor<2>,
    /// Frames T; 1 means image mode (temporal branch skipped).
    pub frames: usize,
    /// Temporal position embedding [1, T, D]. A block with a position gate adds it to its
    /// stream through the gate (`TemporalPos::Gated`).
    pub tpe: &'a Tensor<3>,
    /// Open-Sora v1.0 (`TemporalPos::Attention`, first block only): add `tpe` to the input of
    /// the temporal attention.
    pub tpe_into_attention: bool,
    /// The caption tokens' mean [B, D] (padding left out), for blocks whose temporal attention
    /// reads the caption (`caption_to_temporal`).
    pub y_pooled: Option<&'a Tensor<2>>,
}

impl StditBlock {
    pub fn new(cfg: &StdiTConfig, device: &Device) -> Self {
        let (hidden, heads) = (cfg.hidden, cfg.heads);
        let attn_temp = SelfAttention::new(hidden, heads, device);
        let attn_temp = match cfg.temporal_pos {
            TemporalPos::Gated => attn_temp.with_pos_gate(device),
            TemporalPos::Attention | TemporalPos::Stream => attn_temp,
        };
        let attn_temp = if cfg.caption_to_temporal {
            attn_temp.with_caption_cond(device)
        } else {
            attn_temp
        };
        Self {
            attn: SelfAttention::new(hidden, heads, device),
            attn_temp,
            cross_attn: CrossAttention::new(hidden, heads, device),
            mlp: Mlp::new(hidden, cfg.mlp_hidden(), hidden, cfg.mlp_act, device),
            scale_shift_table: Param::from_tensor(Tensor::zeros([6, hidden], device)),
        }
    }

    /// `x` [B, T·S, D] → [B, T·S, D].
    pub fn forward(&self, x: Tensor<3>, ctx: &BlockContext) -> Tensor<3> {
        let m = BlockModulation::new(self.scale_shift_table.val(), ctx.t0.clone());
        let x = self.space_time(x, ctx, &m);

        // Cross-attention to the caption (unmodulated, ungated, as in PixArt-α).
        let x = x.clone() + self.cross_attn.forward(x, ctx.y.clone(), ctx.pad.clone());

        // MLP.
        let x_m = modulated_norm(x.clone(), m.mlp.shift, m.mlp.scale); // [B, N, D]
        x.clone() + m.mlp.gate * self.mlp.forward(x_m)
    }

    /// The spatial and temporal branches: `x` [B, T·S, D] → the stream the cross-attention reads,
    /// [B, T·S, D] (public so that diagnostics can look at the cross-attention's input).
    pub fn space_time(&self, x: Tensor<3>, ctx: &BlockContext, m: &BlockModulation) -> Tensor<3> {
        let [b, n, d] = x.dims();
        let t = ctx.frames;
        let s = n / t;

        // Spatial attention, within each frame.
        let x_m = modulated_norm(x.clone(), m.attn.shift.clone(), m.attn.scale.clone()); // [B, N, D]
        let x_s = self
            .attn
            .forward(x_m.reshape([b * t, s, 1, d])) // [B·T, S, 1, D]
            .reshape([b, n, d]); // [B, N, D]
        let mut x = x + m.attn.gate.clone() * x_s;
        if t == 1 {
            return x;
        }

        // The gated temporal position (`TemporalPos::Gated`): zero until the gate learns.
        if let Some(gate) = &self.attn_temp.pos_gate {
            let gate = gate.val().mul_scalar(POS_GATE_GAIN).reshape([1, 1, d]);
            let pe = gate * ctx.tpe.clone(); // [1, T, D]
            x = (x.reshape([b, t, s, d]) + pe.reshape([1, t, 1, d])).reshape([b, n, d]);
        }

        // Temporal attention, across frames at each spatial position: the kernel reads the
        // frames of a position S tokens apart, so no transpose is needed.
        let mut x_t = x.clone().reshape([b, t, s, d]); // [B, T, S, D]
        if ctx.tpe_into_attention {
            x_t = x_t + ctx.tpe.clone().reshape([1, t, 1, d]);
        }
        if let (Some(cond), Some(y)) = (&self.attn_temp.y_cond, ctx.y_pooled) {
            x_t = x_t + cond.forward(y.clone()).reshape([b, 1, 1, d]); // onto every token
        }
        let x_t = self.attn_temp.forward(x_t).reshape([b, n, d]); // [B, N, D]
        x + m.attn.gate.clone() * x_t
    }
}
