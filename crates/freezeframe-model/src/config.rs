//! Model hyper-parameters and the named presets.
use burn::config::Config;
use serde::{Deserialize, Serialize};

/// Where the fixed sin-cos temporal position embedding enters the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemporalPos {
    /// Open-Sora v1.0: added to the temporal-attention input of the first block only. With the
    /// zero output projection the inflated model starts exactly as the image model, but a token
    /// learns its frame index only once that attention has learned to pass it on.
    #[default]
    Attention,
    /// Latte: added once to every token before the first block, so every layer (cross-attention
    /// to the caption included) sees the frame index from the first step. The inflated model
    /// then differs from the image model by that fixed offset per frame, which plans that
    /// freeze the spatial layers cannot adapt to.
    Stream,
    /// The stream embedding behind a learnable per-channel gate, zero at initialisation, in each
    /// block's temporal branch (`blocks.{i}.attn_temp.pos_gate`, [D]): before block i's temporal
    /// attention the residual stream gets `gain · gate ⊙ pe(frame)` (`stdit::POS_GATE_GAIN`).
    /// At step 0 the inflated model is exactly the image model (as with `attention`), yet the
    /// gate's gradient is not zero, so the frame index can reach every later layer once
    /// training opens it (at gain · gate = 1, block 0 adds what `stream` adds, after its spatial
    /// attention rather than before) — and any plan that trains the temporal attention trains
    /// the gates too.
    Gated,
}

/// Upper bounds on a model's shape, checked by [`StdiTConfig::validate`] before anything is
/// allocated. Each is far above what this toolkit trains (PixArt-α: D 1152, depth 28, 4096
/// tokens a frame, 120 T5 tokens of 4096), so that a typo (`hidden = 4000000`) is an error
/// naming the key instead of an allocation failure.
pub const MAX_HIDDEN: usize = 16_384;
pub const MAX_DEPTH: usize = 256;
pub const MAX_MLP_RATIO: f64 = 16.0;
pub const MAX_TEXT_LEN: usize = 4096;
pub const MAX_TEXT_DIM: usize = 16_384;
/// Input channels: RGB is 3, a VAE's latents 4 to 16; far above any VAE in use.
pub const MAX_CHANNELS: usize = 1024;
/// Patches in one frame.
pub const MAX_TOKENS_PER_FRAME: usize = 16_384;
/// The model's estimated parameters ([`StdiTConfig::estimated_params`]): 16 GiB of f32.
pub const MAX_PARAMS: u64 = 4_000_000_000;

/// Most frame slots a model may know (`frame_slots`): far beyond any clip this toolkit trains,
/// and small enough that the position table is a few kilobytes.
pub const MAX_FRAME_SLOTS: usize = 4096;

/// An activation inside an MLP. PixArt-α and Open-Sora use GELU's tanh approximation; freezeframe
/// defaults to the exact (erf) GELU, which its fused CPU kernel computes (the tanh form runs on
/// Burn's composed ops). The two differ by < 1e-3, which training from scratch absorbs; weights
/// imported from PixArt need the tanh form to reproduce its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// GELU with the exact erf (PyTorch's `GELU()`).
    #[default]
    Gelu,
    /// GELU's tanh approximation (PyTorch's `GELU(approximate="tanh")`).
    GeluTanh,
    /// SiLU (diffusers' text projection offers it as an option).
    Silu,
}

/// Shape of an STDiT and of the videos it denoises.
#[derive(Config, Debug, PartialEq)]
pub struct StdiTConfig {
    /// Frames per video (T).
    pub frames: usize,
    /// Frame height in pixels.
    pub height: usize,
    /// Frame width in pixels.
    pub width: usize,
    /// Colour channels of the video (3 for RGB).
    #[config(default = 3)]
    pub channels: usize,
    /// Spatial patch size p (patches are 1×p×p, as in Open-Sora v1.0).
    pub patch: usize,
    /// Hidden width D.
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// Number of STDiT blocks.
    pub depth: usize,
    /// MLP hidden width = mlp_ratio × D.
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Width of the caption-token embeddings coming from the text encoder.
    #[config(default = 64)]
    pub text_dim: usize,
    /// Caption tokens per prompt (padded / truncated to this).
    #[config(default = 12)]
    pub text_len: usize,
    /// Where the temporal position embedding enters (see [`TemporalPos`]).
    #[config(default = "TemporalPos::Attention")]
    pub temporal_pos: TemporalPos,
    /// Activation between the block MLPs' `fc1` and `fc2`.
    #[config(default = "Activation::Gelu")]
    pub mlp_act: Activation,
    /// Activation inside the caption projection `y_embedder.y_proj`.
    #[config(default = "Activation::Gelu")]
    pub caption_act: Activation,
    /// PixArt's `interpolation_scale`: spatial positions are divided by it before the sin-cos
    /// table (PixArt-α 1024 uses 2; Open-Sora's `space_scale`).
    #[config(default = 1.0)]
    pub pos_scale: f64,
    /// PixArt's `base_size`, in patches: at a grid of g patches per side, positions are further
    /// scaled by base / g, so a model keeps its position range at another resolution. `None`
    /// is the grid itself (no rescaling).
    #[config(default = "None")]
    pub pos_base: Option<usize>,
    /// With `temporal_pos = Stream`: the frame positions the model knows. When > 0 an image
    /// (T = 1) gets the position of its frame slot too (slot 0 unless the caller names one), so
    /// an image model trained at random slots has seen every frame's position, and a video
    /// model inflated from it starts exactly as that image model at each frame's slot. 0 keeps
    /// images without a position (the image model of `stream` then never saw one).
    #[config(default = 0)]
    pub frame_slots: usize,
    /// Each block's temporal attention also reads the caption: the mean of the caption tokens,
    /// through `blocks.{i}.attn_temp.y_cond` (a zero-initialised Linear D → D), is added to the
    /// temporal attention's input. Under `attn_temp`, so every plan that trains the temporal
    /// attention trains it, and an inflated model starts as its image model (the temporal
    /// output projection starts at zero). A calibration hypothesis (docs/calibration.md): that
    /// the direction word is slow to learn because the temporal branch sees the caption only
    /// through tokens the spatial path has already mixed.
    #[config(default = false)]
    pub caption_to_temporal: bool,
}

impl StdiTConfig {
    /// For tests: a few milliseconds per step.
    pub fn tiny() -> Self {
        Self::new(4, 16, 16, 4, 32, 2, 2)
            .with_text_dim(16)
            .with_text_len(12)
    }

    /// For the quick-start demo on a 2-core CPU.
    pub fn small() -> Self {
        Self::new(8, 32, 32, 4, 96, 4, 4).with_text_dim(64)
    }

    /// The benchmark size: B 8, T 8, 32×32 RGB, patch 4 (64 tokens per frame), D 128, 4 heads, depth 4.
    pub fn base() -> Self {
        Self::new(8, 32, 32, 4, 128, 4, 4).with_text_dim(64)
    }

    /// Look a preset up by name.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "tiny" => Some(Self::tiny()),
            "small" => Some(Self::small()),
            "base" => Some(Self::base()),
            _ => None,
        }
    }

    /// Names accepted by [`StdiTConfig::preset`].
    pub const PRESETS: [&'static str; 3] = ["tiny", "small", "base"];

    /// Patches per frame (S).
    pub fn tokens_per_frame(&self) -> usize {
        (self.height / self.patch) * (self.width / self.patch)
    }

    /// Width of one flattened patch (C·p·p).
    pub fn patch_dim(&self) -> usize {
        self.channels * self.patch * self.patch
    }

    /// Parameters of this shape, estimated from its widths (within a few per cent: the
    /// embedders' small terms are left out): per block the spatial, temporal and cross
    /// attention (4·D² each) and the MLP (2·ratio·D²), plus the timestep path and caption
    /// projection.
    pub fn estimated_params(&self) -> u64 {
        let d = self.hidden as f64;
        let per_block = (12.0 + 2.0 * self.mlp_ratio) * d * d;
        let rest = 8.0 * d * d + (self.text_dim as f64 + 256.0) * d;
        (self.depth as f64 * per_block + rest) as u64
    }

    /// Every size below its limit (the `MAX_*` constants), each error naming the key.
    fn validate_bounds(&self) -> Result<(), String> {
        let over = |key: &str, v: String, limit: String| {
            Err(format!("model.{key} = {v} is above the limit {limit}"))
        };
        for (key, v, limit) in [
            ("hidden", self.hidden, MAX_HIDDEN),
            ("depth", self.depth, MAX_DEPTH),
            ("text_len", self.text_len, MAX_TEXT_LEN),
            ("text_dim", self.text_dim, MAX_TEXT_DIM),
            ("in_channels", self.channels, MAX_CHANNELS),
        ] {
            if v > limit {
                return over(key, v.to_string(), limit.to_string());
            }
        }
        if self.mlp_ratio > MAX_MLP_RATIO {
            return over(
                "mlp_ratio",
                self.mlp_ratio.to_string(),
                MAX_MLP_RATIO.to_string(),
            );
        }
        if self.patch > 0 && self.tokens_per_frame() > MAX_TOKENS_PER_FRAME {
            return Err(format!(
                "model.patch = {} makes {} patches a frame of {}×{}, above the limit \
                 {MAX_TOKENS_PER_FRAME}: a larger patch or a smaller data.size",
                self.patch,
                self.tokens_per_frame(),
                self.height,
                self.width
            ));
        }
        let params = self.estimated_params();
        if params > MAX_PARAMS {
            return Err(format!(
                "model.hidden = {} with depth {} and mlp_ratio {} is about {params} parameters, \
                 above the limit {MAX_PARAMS}",
                self.hidden, self.depth, self.mlp_ratio
            ));
        }
        Ok(())
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// MLP hidden width.
    pub fn mlp_hidden(&self) -> usize {
        (self.hidden as f64 * self.mlp_ratio).round() as usize
    }

    /// Checks the divisibility rules the model relies on; returns a message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.patch == 0
            || !self.height.is_multiple_of(self.patch)
            || !self.width.is_multiple_of(self.patch)
        {
            return Err(format!(
                "model.patch = {} must divide height {} and width {}",
                self.patch, self.height, self.width
            ));
        }
        if self.heads == 0 || !self.hidden.is_multiple_of(self.heads) {
            return Err(format!(
                "model.hidden = {} must be a multiple of model.heads = {}",
                self.hidden, self.heads
            ));
        }
        if !self.hidden.is_multiple_of(4) {
            return Err(format!(
                "model.hidden = {} must be a multiple of 4 (2-D sin-cos position embedding)",
                self.hidden
            ));
        }
        let mlp_width = self.hidden as f64 * self.mlp_ratio;
        if !(self.mlp_ratio.is_finite() && mlp_width >= 1.0) {
            return Err(format!(
                "model.mlp_ratio = {} must be a positive number (MLP width hidden × ratio ≥ 1)",
                self.mlp_ratio
            ));
        }
        if !(self.pos_scale.is_finite() && self.pos_scale > 0.0) {
            return Err(format!(
                "model.pos_scale = {} must be a positive number",
                self.pos_scale
            ));
        }
        if self.pos_base == Some(0) {
            return Err("model.pos_base must be at least 1".into());
        }
        if self.frame_slots > 0 {
            if self.temporal_pos != TemporalPos::Stream {
                return Err(format!(
                    "model.frame_slots = {} needs model.temporal_pos = \"stream\" (it is {:?})",
                    self.frame_slots, self.temporal_pos
                ));
            }
            if self.frame_slots > MAX_FRAME_SLOTS {
                return Err(format!(
                    "model.frame_slots = {} is above the limit {MAX_FRAME_SLOTS}",
                    self.frame_slots
                ));
            }
            if self.frames > self.frame_slots {
                return Err(format!(
                    "model.frame_slots = {} is fewer than the clip's {} frames: a video model must \
                     know the slot of every frame",
                    self.frame_slots, self.frames
                ));
            }
        }
        self.validate_bounds()?;
        for (name, v) in [
            ("frames", self.frames),
            ("depth", self.depth),
            ("text_dim", self.text_dim),
            ("text_len", self.text_len),
            ("channels", self.channels),
        ] {
            if v == 0 {
                return Err(format!("model.{name} must be at least 1"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_base_matches_the_benchmark_spec() {
        for name in StdiTConfig::PRESETS {
            StdiTConfig::preset(name).unwrap().validate().unwrap();
        }
        let b = StdiTConfig::base();
        assert_eq!(b.tokens_per_frame(), 64);
        assert_eq!((b.hidden, b.heads, b.depth, b.frames), (128, 4, 4, 8));
    }

    #[test]
    fn validate_names_the_bad_field() {
        let bad = StdiTConfig {
            patch: 3,
            ..StdiTConfig::tiny()
        };
        assert!(bad.validate().unwrap_err().contains("model.patch"));
        let bad = StdiTConfig {
            heads: 3,
            ..StdiTConfig::tiny()
        };
        assert!(bad.validate().unwrap_err().contains("model.hidden"));
    }

    #[test]
    fn sizes_above_their_limits_are_refused_before_allocating() {
        let with = |f: fn(&mut StdiTConfig)| {
            let mut c = StdiTConfig::tiny();
            f(&mut c);
            c.validate().unwrap_err()
        };
        let e = with(|c| c.hidden = 4_000_000);
        assert!(
            e.contains("model.hidden = 4000000") && e.contains("16384"),
            "{e}"
        );
        let e = with(|c| c.depth = 100_000_000);
        assert!(e.contains("model.depth") && e.contains("256"), "{e}");
        let e = with(|c| c.text_len = 100_000_000);
        assert!(e.contains("model.text_len"), "{e}");
        let e = with(|c| c.mlp_ratio = 1e9);
        assert!(e.contains("model.mlp_ratio") && e.contains("16"), "{e}");
        // Each width within its limit, too many parameters together.
        let e = with(|c| {
            c.hidden = 8192;
            c.depth = 200;
        });
        assert!(e.contains("parameters"), "{e}");
        let e = with(|c| {
            c.height = 1024;
            c.width = 1024;
            c.patch = 2;
        });
        assert!(e.contains("patches a frame"), "{e}");
        // The estimate is close to the real count of the base preset (tested against the
        // built model in the model's tests).
        assert!(StdiTConfig::base().estimated_params() > 500_000);
    }

    #[test]
    fn frame_slots_need_stream_cover_the_clip_and_are_bounded() {
        let stream = |frame_slots| StdiTConfig {
            temporal_pos: TemporalPos::Stream,
            frame_slots,
            ..StdiTConfig::tiny()
        };
        stream(4).validate().unwrap();
        stream(0).validate().unwrap();
        let e = stream(3).validate().unwrap_err();
        assert!(
            e.contains("frame_slots = 3") && e.contains("4 frames"),
            "{e}"
        );
        let e = stream(MAX_FRAME_SLOTS + 1).validate().unwrap_err();
        assert!(e.contains("limit"), "{e}");
        let gated = StdiTConfig {
            frame_slots: 8,
            temporal_pos: TemporalPos::Gated,
            ..StdiTConfig::tiny()
        };
        assert!(gated.validate().unwrap_err().contains("stream"));
    }
}
