//! The STDiT model, read top to bottom: embed → blocks → final layer → unpatchify.
mod attention;
mod block;
mod embed;
mod final_layer;
mod linear;
mod mlp;
mod modulation;

pub use attention::{CrossAttention, POS_GATE_GAIN, SelfAttention};
pub use block::{BlockContext, StditBlock};
pub use embed::{
    CaptionEmbedder, PatchEmbed, TimestepEmbedder, patch_positions, sincos_1d, sincos_2d,
    sincos_2d_at, sincos_at, timestep_features,
};
pub use final_layer::FinalLayer;
pub use linear::Linear;
pub use mlp::Mlp;
pub use modulation::{BlockModulation, Modulation};

use burn::prelude::*;
use burn::tensor::activation::silu;

use crate::config::{StdiTConfig, TemporalPos};

/// The mean of the caption tokens `y` [B, L, D] that are not padding (`pad` [B, L], true =
/// padding) → [B, D]. A caption of padding only gives zeros.
pub fn mean_over_tokens(y: &Tensor<3>, pad: &Tensor<2, Bool>) -> Tensor<2> {
    let [b, l, d] = y.dims();
    let keep = pad.clone().bool_not().float().reshape([b, l, 1]); // [B, L, 1]
    let count = keep.clone().sum_dim(1).clamp_min(1.0); // [B, 1, 1]
    (y.clone() * keep).sum_dim(1).div(count).reshape([b, d])
}

/// Encoded captions for a batch.
#[derive(Debug, Clone)]
pub struct CaptionBatch {
    /// Frozen text-encoder output [B, L, text_dim].
    pub tokens: Tensor<3>,
    /// Padding mask [B, L]; true marks padding.
    pub pad: Tensor<2, Bool>,
    /// [B]; true replaces the caption by the learned null caption (dropout / unconditional).
    pub null: Tensor<1, Bool>,
}

impl CaptionBatch {
    /// The same captions with every row switched to the null caption (the CFG branch).
    pub fn to_null(&self) -> Self {
        let b = self.null.dims()[0];
        Self {
            tokens: self.tokens.clone(),
            pad: self.pad.clone(),
            null: Tensor::<1, Bool>::full([b], true, &self.null.device()),
        }
    }
}

#[derive(Module, Debug)]
pub struct Stdit {
    pub x_embedder: PatchEmbed,
    pub t_embedder: TimestepEmbedder,
    /// Open-Sora's `t_block = Sequential(SiLU, Linear(D, 6D))`; user-facing path `t_block.1.*`.
    pub t_block: Linear,
    pub y_embedder: CaptionEmbedder,
    pub blocks: Vec<StditBlock>,
    pub final_layer: FinalLayer,
    pub hidden: usize,
    pub patch: usize,
    pub channels: usize,
    #[module(skip)]
    pub temporal_pos: TemporalPos,
    #[module(skip)]
    pub pos_scale: f64,
    #[module(skip)]
    pub pos_base: Option<usize>,
    /// See [`StdiTConfig::frame_slots`].
    #[module(skip)]
    pub frame_slots: usize,
}

impl Stdit {
    /// Builds the model with the shapes of `cfg`; call [`crate::init::initialize`] for weights.
    pub fn new(cfg: &StdiTConfig, device: &Device) -> Self {
        let d = cfg.hidden;
        Self {
            x_embedder: PatchEmbed::new(cfg.channels, cfg.patch, d, device),
            t_embedder: TimestepEmbedder::new(d, device),
            t_block: Linear::new(d, 6 * d, device),
            y_embedder: CaptionEmbedder::new(
                cfg.text_dim,
                cfg.text_len,
                d,
                cfg.caption_act,
                device,
            ),
            blocks: (0..cfg.depth)
                .map(|_| StditBlock::new(cfg, device))
                .collect(),
            final_layer: FinalLayer::new(d, cfg.patch * cfg.patch * cfg.channels, device),
            hidden: d,
            patch: cfg.patch,
            channels: cfg.channels,
            temporal_pos: cfg.temporal_pos,
            pos_scale: cfg.pos_scale,
            pos_base: cfg.pos_base,
            frame_slots: cfg.frame_slots,
        }
    }

    /// The fixed 2-D position table [S·D] for a grid of `hp` × `wp` patches.
    fn spatial_table(&self, hp: usize, wp: usize) -> Vec<f32> {
        let at = |grid| patch_positions(grid, self.pos_scale, self.pos_base);
        sincos_2d_at(&at(hp), &at(wp), self.hidden)
    }

    /// Predicts the rectified-flow velocity.
    /// `x` [B, T, C, H, W] noisy video, `t` [B] in [0, 1] → velocity [B, T, C, H, W].
    /// T = 1 is image mode: the temporal branch is skipped.
    pub fn forward(&self, x: Tensor<5>, t: Tensor<1>, caption: &CaptionBatch) -> Tensor<5> {
        self.forward_keeping(x, t, caption, &[], None)
    }

    /// [`Stdit::forward`] with sample b's first frame at slot `slots[b]` of the `stream`
    /// position (frame f at slot `slots[b] + f`); `slots` is empty (every sample at slot 0) or
    /// has one entry per sample. Image training draws slots here (`frame_slots`), and the
    /// inflation check compares a video's frame f with the image model at slot f.
    pub fn forward_at(
        &self,
        x: Tensor<5>,
        t: Tensor<1>,
        caption: &CaptionBatch,
        slots: &[usize],
    ) -> Tensor<5> {
        self.forward_keeping(x, t, caption, slots, None)
    }

    /// [`Stdit::forward`] that also returns every block's output, [B, T·S, D] each — the
    /// representations the lab compares across models (linear CKA).
    pub fn forward_with_blocks(
        &self,
        x: Tensor<5>,
        t: Tensor<1>,
        caption: &CaptionBatch,
    ) -> (Tensor<5>, Vec<Tensor<3>>) {
        let mut kept = Vec::with_capacity(self.blocks.len());
        let out = self.forward_keeping(x, t, caption, &[], Some(&mut kept));
        (out, kept)
    }

    fn forward_keeping(
        &self,
        x: Tensor<5>,
        t: Tensor<1>,
        caption: &CaptionBatch,
        slots: &[usize],
        mut keep: Option<&mut Vec<Tensor<3>>>,
    ) -> Tensor<5> {
        let [b, frames, c, h, w] = x.dims();
        let device = x.device();
        let d = self.hidden;
        let (hp, wp) = (h / self.patch, w / self.patch);
        let s = hp * wp;

        let x = self.x_embedder.forward(x); // [B, N, D]
        let pos = Tensor::<1>::from_floats(self.spatial_table(hp, wp).as_slice(), &device)
            .reshape([1, 1, s, d]);
        let mut x = x.reshape([b, frames, s, d]) + pos; // [B, T, S, D]
        let tpe = Tensor::<1>::from_floats(sincos_1d(frames, d).as_slice(), &device)
            .reshape([1, frames, d]);
        if let Some(stream) = self.stream_position(b, frames, slots, &device) {
            x = x + stream; // [B or 1, T, 1, D] onto every token of its frame
        }
        let x = x.reshape([b, frames * s, d]); // [B, N, D]

        let t_emb = self.t_embedder.forward(t); // [B, D]
        let t0 = self.t_block.forward(silu(t_emb.clone())); // [B, 6D]
        let (y, pad) = self.y_embedder.forward(
            caption.tokens.clone(),
            caption.pad.clone(),
            caption.null.clone(),
        ); // [B, L, D], [B, L]
        let y_pooled = self
            .blocks
            .first()
            .is_some_and(|b| b.attn_temp.y_cond.is_some())
            .then(|| mean_over_tokens(&y, &pad)); // [B, D]

        let mut x = x;
        for (i, block) in self.blocks.iter().enumerate() {
            let ctx = BlockContext {
                y: &y,
                pad: &pad,
                t0: &t0,
                frames,
                tpe: &tpe,
                tpe_into_attention: i == 0 && self.temporal_pos == TemporalPos::Attention,
                y_pooled: y_pooled.as_ref(),
            };
            x = block.forward(x, &ctx);
            if let Some(k) = keep.as_deref_mut() {
                k.push(x.clone());
            }
        }
        let x = self.final_layer.forward(x, t_emb); // [B, N, p·p·C]
        self.unpatchify(x, frames, c, h, w)
    }

    /// The `stream` position for frames at their slots, [B or 1, T, 1, D], or `None` where this
    /// wiring adds none to the stream (not `stream`, or an image of a model without slots).
    fn stream_position(
        &self,
        b: usize,
        frames: usize,
        slots: &[usize],
        device: &Device,
    ) -> Option<Tensor<4>> {
        if self.temporal_pos != TemporalPos::Stream || (frames == 1 && self.frame_slots == 0) {
            return None;
        }
        // No slots: one row of positions 0..T shared by the batch (broadcast over B).
        let starts: &[usize] = if slots.is_empty() {
            &[0]
        } else {
            assert_eq!(slots.len(), b, "forward_at: one slot per sample");
            slots
        };
        let positions: Vec<f64> = starts
            .iter()
            .flat_map(|&s| (0..frames).map(move |f| (s + f) as f64))
            .collect();
        let table = sincos_at(&positions, self.hidden);
        Some(Tensor::<1>::from_floats(table.as_slice(), device).reshape([
            starts.len(),
            frames,
            1,
            self.hidden,
        ]))
    }

    /// [B, T·S, p·p·C] with features ordered (p, p, C) → [B, T, C, H, W].
    fn unpatchify(&self, x: Tensor<3>, frames: usize, c: usize, h: usize, w: usize) -> Tensor<5> {
        let b = x.dims()[0];
        let p = self.patch;
        let (hp, wp) = (h / p, w / p);
        let x = x.reshape([b * frames, hp, wp, p, p, c]); // [BT, h, w, p, p, C]
        let x = x.permute([0, 5, 1, 3, 2, 4]); // [BT, C, h, p, w, p]
        x.reshape([b, frames, c, h, w])
    }
}

#[cfg(test)]
mod tests;
