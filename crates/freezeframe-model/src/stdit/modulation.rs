//! adaLN-single modulation (PixArt-α / Open-Sora): a shared `t_block` maps the timestep to 6·D
//! numbers, each block adds its own learned `scale_shift_table`, and the result is read by name.
//! The modulated norm itself, `LayerNorm(x)·(1 + scale) + shift`, is the fused
//! `freezeframe_kernels::modulated_norm`.
use burn::prelude::*;

/// One shift/scale/gate triple, each `[B, 1, D]` so it broadcasts over tokens.
#[derive(Debug, Clone)]
pub struct Modulation {
    pub shift: Tensor<3>,
    pub scale: Tensor<3>,
    pub gate: Tensor<3>,
}

/// The six modulation vectors of an STDiT block: one triple for attention, one for the MLP.
#[derive(Debug, Clone)]
pub struct BlockModulation {
    pub attn: Modulation,
    pub mlp: Modulation,
}

impl BlockModulation {
    /// `table` [6, D] (the block's own), `t0` [B, 6·D] (from the shared `t_block`).
    pub fn new(table: Tensor<2>, t0: Tensor<2>) -> Self {
        let [b, six_d] = t0.dims();
        let d = six_d / 6;
        let m = t0.reshape([b, 6, d]) + table.unsqueeze_dim::<3>(0); // [B, 6, D]
        let row = |i: usize| m.clone().narrow(1, i, 1); // [B, 1, D]
        Self {
            attn: Modulation {
                shift: row(0),
                scale: row(1),
                gate: row(2),
            },
            mlp: Modulation {
                shift: row(3),
                scale: row(4),
                gate: row(5),
            },
        }
    }
}
