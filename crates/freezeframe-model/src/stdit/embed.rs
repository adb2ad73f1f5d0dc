//! Input embedders: video patches (`x_embedder`), diffusion time (`t_embedder`), captions
//! (`y_embedder`), and the fixed sin-cos position tables.
use super::linear::Linear;
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::silu;

use super::mlp::Mlp;
use crate::config::Activation;

/// 1×p×p patch embedding. Open-Sora's `x_embedder.proj` is a Conv3d with weight [D, C, 1, p, p];
/// a linear map over patches flattened in (C, p, p) order is the same function.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    pub proj: Linear,
    pub patch: usize,
}

impl PatchEmbed {
    pub fn new(channels: usize, patch: usize, hidden: usize, device: &Device) -> Self {
        Self {
            proj: Linear::new(channels * patch * patch, hidden, device),
            patch,
        }
    }

    /// `x` [B, T, C, H, W] → tokens [B, T·S, D], S = (H/p)(W/p), row-major over patches.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<3> {
        let [b, t, c, h, w] = x.dims();
        let p = self.patch;
        let (hp, wp) = (h / p, w / p);
        let x = x.reshape([b * t, c, hp, p, wp, p]); // [BT, C, h, p, w, p]
        let x = x.permute([0, 2, 4, 1, 3, 5]); // [BT, h, w, C, p, p]
        let x = x.reshape([b, t * hp * wp, c * p * p]); // [B, N, C·p·p]
        self.proj.forward(x)
    }
}

/// Frequencies of the sinusoidal timestep embedding (width 256, max period 10 000).
pub const TIME_FREQ_DIM: usize = 256;
/// Rectified-flow time t ∈ [0, 1] is scaled to Open-Sora's 0..1000 range before embedding.
pub const TIME_SCALE: f32 = 1000.0;

/// `t_embedder`: sinusoidal features → Linear → SiLU → Linear. Open-Sora keeps the two linears in
/// an `nn.Sequential` (`mlp.0`, `mlp.2`); the user-facing paths use those names (see `paths`).
#[derive(Module, Debug)]
pub struct TimestepEmbedder {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl TimestepEmbedder {
    pub fn new(hidden: usize, device: &Device) -> Self {
        Self {
            fc1: Linear::new(TIME_FREQ_DIM, hidden, device),
            fc2: Linear::new(hidden, hidden, device),
        }
    }

    /// `t` [B] in [0, 1] → [B, D].
    pub fn forward(&self, t: Tensor<1>) -> Tensor<2> {
        let feats = timestep_features(t.mul_scalar(TIME_SCALE)); // [B, 256]
        self.fc2.forward(silu(self.fc1.forward(feats)))
    }
}

/// `[cos(t·f_i), sin(t·f_i)]` with f_i = 10000^(−i/half), as Open-Sora's `timestep_embedding`.
pub fn timestep_features(t: Tensor<1>) -> Tensor<2> {
    let half = TIME_FREQ_DIM / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (-(10_000f32).ln() * i as f32 / half as f32).exp())
        .collect();
    let freqs = Tensor::<1>::from_floats(freqs.as_slice(), &t.device()).unsqueeze_dim::<2>(0); // [1, half]
    let args = t.unsqueeze_dim::<2>(1) * freqs; // [B, half]
    Tensor::cat(vec![args.clone().cos(), args.sin()], 1) // [B, 256]
}

/// `y_embedder`: caption tokens → `y_proj` MLP → D, with the learned null caption `y_embedding`
/// [L, text_dim] that replaces dropped captions (training) and the unconditional branch (CFG).
#[derive(Module, Debug)]
pub struct CaptionEmbedder {
    pub y_proj: Mlp,
    pub y_embedding: Param<Tensor<2>>,
}

impl CaptionEmbedder {
    pub fn new(
        text_dim: usize,
        text_len: usize,
        hidden: usize,
        act: Activation,
        device: &Device,
    ) -> Self {
        Self {
            y_proj: Mlp::new(text_dim, hidden, hidden, act, device),
            y_embedding: Param::from_tensor(Tensor::zeros([text_len, text_dim], device)),
        }
    }

    /// `y` [B, L, Dt], `pad` [B, L], `null` [B] (true = use the null caption)
    /// → tokens [B, L, D] and the padding mask to attend with [B, L].
    pub fn forward(
        &self,
        y: Tensor<3>,
        pad: Tensor<2, Bool>,
        null: Tensor<1, Bool>,
    ) -> (Tensor<3>, Tensor<2, Bool>) {
        let [b, l, dt] = y.dims();
        let null_row = null.clone().reshape([b, 1]).expand([b, l]); // [B, L]
        let null_tok = null_row.clone().reshape([b, l, 1]).expand([b, l, dt]); // [B, L, Dt]
        let table = self
            .y_embedding
            .val()
            .unsqueeze_dim::<3>(0)
            .expand([b, l, dt]); // [B, L, Dt]
        let y = y.mask_where(null_tok, table);
        // The null caption is attended in full.
        let pad = pad.bool_and(null_row.bool_not());
        (self.y_proj.forward(y), pad)
    }
}

/// 1-D sin-cos table [len, dim] at positions 0, 1, …: first half sin(pos·ω_i), second half
/// cos(pos·ω_i), ω_i = 10000^(−i / (dim/2)).
pub fn sincos_1d(len: usize, dim: usize) -> Vec<f32> {
    let positions: Vec<f64> = (0..len).map(|p| p as f64).collect();
    sincos_at(&positions, dim)
}

/// [`sincos_1d`] at arbitrary positions: [positions.len(), dim].
pub fn sincos_at(positions: &[f64], dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let mut out = vec![0.0f32; positions.len() * dim];
    for (row, &pos) in positions.iter().enumerate() {
        for i in 0..half {
            let omega = 1.0 / 10_000f64.powf(i as f64 / half as f64);
            let a = pos * omega;
            out[row * dim + i] = a.sin() as f32;
            out[row * dim + half + i] = a.cos() as f32;
        }
    }
    out
}

/// 2-D sin-cos table [h·w, dim] at integer patch positions (MAE / PixArt layout): the first
/// half of the channels encodes the column, the second half the row.
pub fn sincos_2d(h: usize, w: usize, dim: usize) -> Vec<f32> {
    let rows: Vec<f64> = (0..h).map(|p| p as f64).collect();
    let cols: Vec<f64> = (0..w).map(|p| p as f64).collect();
    sincos_2d_at(&rows, &cols, dim)
}

/// Positions of the patches on an axis of `grid` patches, as PixArt's `get_2d_sincos_pos_embed`
/// places them: `i / (grid / base) / scale` (`base` defaults to `grid`: plain indices / scale).
pub fn patch_positions(grid: usize, scale: f64, base: Option<usize>) -> Vec<f64> {
    let base = base.unwrap_or(grid) as f64;
    (0..grid)
        .map(|i| i as f64 / (grid as f64 / base) / scale)
        .collect()
}

/// [`sincos_2d`] at given row and column positions (PixArt's scaled grids).
pub fn sincos_2d_at(rows: &[f64], cols: &[f64], dim: usize) -> Vec<f32> {
    let (h, w) = (rows.len(), cols.len());
    let half = dim / 2;
    let cols = sincos_at(cols, half);
    let rows = sincos_at(rows, half);
    let mut out = vec![0.0f32; h * w * dim];
    for r in 0..h {
        for c in 0..w {
            let o = (r * w + c) * dim;
            out[o..o + half].copy_from_slice(&cols[c * half..(c + 1) * half]);
            out[o + half..o + dim].copy_from_slice(&rows[r * half..(r + 1) * half]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sincos_tables_have_known_values() {
        let t = sincos_1d(3, 4);
        // pos 0: sin 0 = 0, cos 0 = 1
        assert_eq!(&t[0..4], &[0.0, 0.0, 1.0, 1.0]);
        // pos 1, i = 0: ω = 1 → sin 1, cos 1; i = 1: ω = 1/100
        assert!((t[4] - 1f32.sin()).abs() < 1e-6);
        assert!((t[5] - 0.01f32.sin()).abs() < 1e-6);
        assert!((t[6] - 1f32.cos()).abs() < 1e-6);
        let t2 = sincos_2d(2, 3, 8);
        assert_eq!(t2.len(), 6 * 8);
        // token (row 1, col 2): first half = column 2's table, second half = row 1's.
        let c = sincos_1d(3, 4);
        let r = sincos_1d(2, 4);
        assert_eq!(&t2[5 * 8..5 * 8 + 4], &c[2 * 4..3 * 4]);
        assert_eq!(&t2[5 * 8 + 4..6 * 8], &r[4..8]);
    }
}
