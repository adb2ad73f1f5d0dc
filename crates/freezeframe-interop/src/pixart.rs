//! diffusers' `PixArtTransformer2DModel` (PixArt-α, the image model Open-Sora's STDiT inflates)
//! and freezeframe's Open-Sora STDiT keys: the configuration each side needs, and the one key
//! map both directions read.
//!
//! Both sides store Linear weights [out, in] (PyTorch layout) and compute the same function
//! once freezeframe's model options are set as [`PixartConfig::stdit_config`] sets them:
//! GELU's tanh form in the MLPs and the caption projection, PixArt's scaled position grid.
//! The conv patch embedding [D, C, p, p] is freezeframe's linear [D, C·p·p] over the same
//! row-major bytes.
use std::path::Path;

use freezeframe_model::{Activation, StdiTConfig};
use serde::{Deserialize, Serialize};

use crate::error::InteropError;

/// Sinusoid width of the timestep embedding on both sides (diffusers' `Timesteps(256)`).
const TIME_FREQ_DIM: usize = 256;

/// The `config.json` keys that decide the architecture; other keys are ignored. A missing key
/// takes diffusers' own default (`PixArtTransformer2DModel.__init__`: PixArt-α XL/2 at 1024).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixartConfig {
    #[serde(
        rename = "_class_name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub class_name: Option<String>,
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_head_dim")]
    pub attention_head_dim: usize,
    #[serde(default = "d_in")]
    pub in_channels: usize,
    /// `null` means the input channels.
    #[serde(default = "d_out")]
    pub out_channels: Option<usize>,
    #[serde(default = "d_layers")]
    pub num_layers: usize,
    #[serde(default = "d_cross")]
    pub cross_attention_dim: Option<usize>,
    #[serde(default = "yes")]
    pub attention_bias: bool,
    #[serde(default = "d_sample")]
    pub sample_size: usize,
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    #[serde(default = "gelu_approximate")]
    pub activation_fn: String,
    #[serde(default = "ada_norm_single")]
    pub norm_type: String,
    #[serde(default)]
    pub norm_elementwise_affine: bool,
    #[serde(default = "eps")]
    pub norm_eps: f64,
    #[serde(default)]
    pub interpolation_scale: Option<f64>,
    #[serde(default)]
    pub use_additional_conditions: Option<bool>,
    #[serde(default)]
    pub caption_channels: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_type: Option<String>,
}

fn d_heads() -> usize {
    16
}
fn d_head_dim() -> usize {
    72
}
fn d_in() -> usize {
    4
}
fn d_out() -> Option<usize> {
    Some(8)
}
fn d_layers() -> usize {
    28
}
fn d_cross() -> Option<usize> {
    Some(1152)
}
fn d_sample() -> usize {
    128
}
fn d_patch() -> usize {
    2
}
fn yes() -> bool {
    true
}
fn gelu_approximate() -> String {
    "gelu-approximate".into()
}
fn ada_norm_single() -> String {
    "ada_norm_single".into()
}
fn eps() -> f64 {
    1e-6
}

/// diffusers' names for the two GELUs freezeframe has.
fn activation_of(name: &str) -> Option<Activation> {
    match name {
        "gelu" => Some(Activation::Gelu),
        "gelu-approximate" => Some(Activation::GeluTanh),
        _ => None,
    }
}

/// Bounds far beyond any PixArt (XL/2: width 1152, 28 layers, patch 2, 4 channels), so that a
/// hostile or mistyped config is an error before any size is multiplied or allocated.
const LIMITS: [(&str, usize); 7] = [
    ("num_attention_heads", 1024),
    ("attention_head_dim", 1024),
    ("num_layers", 1024),
    ("in_channels", 64),
    ("patch_size", 64),
    ("sample_size", 16_384),
    ("caption_channels", 65_536),
];

impl PixartConfig {
    pub fn load(path: &Path) -> Result<Self, InteropError> {
        let text = freezeframe_fs::read_text(path).map_err(|e| InteropError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(de).map_err(|e| InteropError::Config {
            path: path.to_path_buf(),
            message: format!(
                "not a PixArt transformer config: {} ({})",
                e.path(),
                e.inner()
            ),
        })
    }

    pub fn hidden(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Output channels per pixel (PixArt-α predicts a variance beside the noise: 2 × input).
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// diffusers' rule when `interpolation_scale` is null: sample_size / 64, at least 1.
    pub fn interpolation(&self) -> f64 {
        self.interpolation_scale
            .unwrap_or((self.sample_size / 64).max(1) as f64)
    }

    /// Sizes in range (see [`LIMITS`]), so the arithmetic below cannot overflow.
    fn check_sizes(&self) -> Result<(), String> {
        let caption = self.caption_channels.ok_or(
            "caption_channels is missing: freezeframe needs the caption projection".to_string(),
        )?;
        let values = [
            self.num_attention_heads,
            self.attention_head_dim,
            self.num_layers,
            self.in_channels,
            self.patch_size,
            self.sample_size,
            caption,
        ];
        for ((key, max), v) in LIMITS.iter().zip(values) {
            if v == 0 || v > *max {
                return Err(format!("{key} = {v}: expected 1 to {max}"));
            }
        }
        if !self.sample_size.is_multiple_of(self.patch_size) {
            return Err(format!(
                "sample_size = {} is not a multiple of patch_size = {}",
                self.sample_size, self.patch_size
            ));
        }
        if let Some(s) = self.interpolation_scale
            && !(s.is_finite() && s > 0.0)
        {
            return Err(format!(
                "interpolation_scale = {s}: a positive number expected"
            ));
        }
        Ok(())
    }

    /// Whether freezeframe can compute this model exactly; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        self.check_sizes()?;
        if let Some(c) = &self.class_name
            && c != "PixArtTransformer2DModel"
            && c != "Transformer2DModel"
        {
            return Err(format!(
                "_class_name = {c:?}: a PixArtTransformer2DModel is expected"
            ));
        }
        if self.norm_type != "ada_norm_single" {
            return Err(format!(
                "norm_type = {:?}: only \"ada_norm_single\" (PixArt's adaLN-single) is supported",
                self.norm_type
            ));
        }
        if activation_of(&self.activation_fn).is_none() {
            return Err(format!(
                "activation_fn = {:?}: freezeframe has \"gelu\" and \"gelu-approximate\"",
                self.activation_fn
            ));
        }
        if self.norm_elementwise_affine {
            return Err(
                "norm_elementwise_affine = true: PixArt's block norms carry no weights".into(),
            );
        }
        if (self.norm_eps - 1e-6).abs() > 1e-12 {
            return Err(format!(
                "norm_eps = {}: freezeframe's LayerNorm uses 1e-6",
                self.norm_eps
            ));
        }
        if !self.attention_bias {
            return Err("attention_bias = false is not supported".into());
        }
        if let Some(t) = &self.attention_type
            && t != "default"
        {
            return Err(format!("attention_type = {t:?}: only \"default\""));
        }
        if self
            .use_additional_conditions
            .unwrap_or(self.sample_size == 128)
        {
            return Err(
                "use_additional_conditions: the resolution and aspect-ratio embedders \
                 (PixArt-α 1024) are not supported"
                    .into(),
            );
        }
        if let Some(x) = self.cross_attention_dim
            && x != self.hidden()
        {
            return Err(format!(
                "cross_attention_dim = {x} differs from the width {} (heads × head dim)",
                self.hidden()
            ));
        }
        let out = self.out_channels();
        if out != self.in_channels && out != 2 * self.in_channels {
            return Err(format!(
                "out_channels = {out}: in_channels ({}) or twice it (learned variance) expected",
                self.in_channels
            ));
        }
        Ok(())
    }

    /// The image-mode freezeframe model that computes this transformer, once [`Self::check`]
    /// passes. `mlp_hidden` comes from the weights; `text_len` (caption tokens) from the user.
    pub fn stdit_config(&self, mlp_hidden: usize, text_len: usize) -> Result<StdiTConfig, String> {
        self.check()?;
        let d = self.hidden();
        let mut c = StdiTConfig::new(
            1,
            self.sample_size,
            self.sample_size,
            self.patch_size,
            d,
            self.num_attention_heads,
            self.num_layers,
        );
        c.channels = self.in_channels;
        c.mlp_ratio = mlp_hidden as f64 / d as f64;
        c.text_dim = self.caption_channels.ok_or("caption_channels is missing")?;
        c.text_len = text_len;
        c.mlp_act = activation_of(&self.activation_fn).ok_or("unknown activation_fn")?;
        // PixArtAlphaTextProjection: Linear → GELU(tanh) → Linear.
        c.caption_act = Activation::GeluTanh;
        c.pos_scale = self.interpolation();
        c.pos_base = Some(self.sample_size / self.patch_size);
        c.validate()?;
        Ok(c)
    }

    /// The diffusers configuration of a freezeframe model, if it has one (its spatial part).
    pub fn from_stdit(m: &StdiTConfig) -> Result<Self, String> {
        if m.height != m.width {
            return Err(format!(
                "frames are {}×{}: diffusers' PixArt is square",
                m.height, m.width
            ));
        }
        if m.caption_act != Activation::GeluTanh {
            return Err(format!(
                "model.caption_act = {:?}: diffusers' PixArt caption projection is gelu_tanh",
                m.caption_act
            ));
        }
        let activation_fn = match m.mlp_act {
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu-approximate",
            Activation::Silu => {
                return Err("model.mlp_act = silu has no diffusers PixArt form".into());
            }
        };
        let grid = m.height / m.patch;
        if m.pos_base.is_some_and(|b| b != grid) {
            return Err(format!(
                "model.pos_base = {:?}: diffusers' PixArt uses the grid ({grid})",
                m.pos_base
            ));
        }
        let mlp = m.mlp_hidden();
        if mlp != 4 * m.hidden {
            return Err(format!(
                "MLP width {mlp}: diffusers' FeedForward is 4 × the width ({})",
                4 * m.hidden
            ));
        }
        Ok(Self {
            class_name: Some("PixArtTransformer2DModel".into()),
            num_attention_heads: m.heads,
            attention_head_dim: m.head_dim(),
            in_channels: m.channels,
            out_channels: Some(m.channels),
            num_layers: m.depth,
            cross_attention_dim: Some(m.hidden),
            attention_bias: true,
            sample_size: m.height,
            patch_size: m.patch,
            activation_fn: activation_fn.into(),
            norm_type: ada_norm_single(),
            norm_elementwise_affine: false,
            norm_eps: 1e-6,
            interpolation_scale: Some(m.pos_scale),
            use_additional_conditions: Some(false),
            caption_channels: Some(m.text_dim),
            attention_type: Some("default".into()),
        })
    }
}

/// Sizes the key map needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub hidden: usize,
    pub channels: usize,
    /// diffusers' output channels (2 × channels with a learned variance).
    pub out_channels: usize,
    pub patch: usize,
    pub caption: usize,
    pub mlp: usize,
    pub depth: usize,
}

/// How one freezeframe tensor is made from diffusers tensors.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// The same values (possibly another shape of the same row-major bytes).
    Copy,
    /// diffusers' tensors stacked along the first axis (fused q/k/v, k/v).
    ConcatRows,
    /// Only these rows (along the first axis) of the one diffusers tensor: the noise half of
    /// a learned-variance output.
    KeepRows(Vec<usize>),
}

/// One freezeframe tensor and the diffusers tensors it corresponds to.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub ours: (String, Vec<usize>),
    pub theirs: Vec<(String, Vec<usize>)>,
    pub rule: Rule,
}

fn linear(
    ours: &str,
    theirs: &[String],
    (out, inp): (usize, usize),
    rule: Rule,
    v: &mut Vec<Mapping>,
) {
    let rows = match &rule {
        Rule::KeepRows(r) => r.len(),
        _ => out * theirs.len(),
    };
    let bias_rule = rule.clone();
    v.push(Mapping {
        ours: (format!("{ours}.weight"), vec![rows, inp]),
        theirs: theirs
            .iter()
            .map(|t| (format!("{t}.weight"), vec![out, inp]))
            .collect(),
        rule,
    });
    v.push(Mapping {
        ours: (format!("{ours}.bias"), vec![rows]),
        theirs: theirs
            .iter()
            .map(|t| (format!("{t}.bias"), vec![out]))
            .collect(),
        rule: bias_rule,
    });
}

fn one(ours: &str, theirs: &str, shape: Vec<usize>, theirs_shape: Vec<usize>) -> Mapping {
    Mapping {
        ours: (ours.into(), shape),
        theirs: vec![(theirs.into(), theirs_shape)],
        rule: Rule::Copy,
    }
}

/// The key map: every freezeframe tensor of an image model, from diffusers' tensors. The
/// temporal attention (`attn_temp`) is absent: image weights leave it fresh. The null caption
/// `y_embedder.y_embedding` is absent: diffusers encodes the empty prompt instead.
pub fn key_map(s: &Shape) -> Vec<Mapping> {
    let mut v = embedders(s);
    for i in 0..s.depth {
        v.extend(block(s, i));
    }
    v.extend(final_layer(s));
    v
}

/// Patch, timestep and caption embedders, and the shared adaLN `t_block`.
fn embedders(s: &Shape) -> Vec<Mapping> {
    let (d, p) = (s.hidden, s.patch);
    let mut v = vec![
        one(
            "x_embedder.proj.weight",
            "pos_embed.proj.weight",
            vec![d, s.channels * p * p],
            vec![d, s.channels, p, p],
        ),
        one(
            "x_embedder.proj.bias",
            "pos_embed.proj.bias",
            vec![d],
            vec![d],
        ),
    ];
    let ts = "adaln_single.emb.timestep_embedder";
    let cap = "caption_projection";
    for (ours, theirs, shape) in [
        (
            "t_embedder.mlp.0",
            format!("{ts}.linear_1"),
            (d, TIME_FREQ_DIM),
        ),
        ("t_embedder.mlp.2", format!("{ts}.linear_2"), (d, d)),
        ("t_block.1", "adaln_single.linear".to_string(), (6 * d, d)),
        (
            "y_embedder.y_proj.fc1",
            format!("{cap}.linear_1"),
            (d, s.caption),
        ),
        ("y_embedder.y_proj.fc2", format!("{cap}.linear_2"), (d, d)),
    ] {
        linear(ours, &[theirs], shape, Rule::Copy, &mut v);
    }
    v
}

/// Block `i`: self-attention (q, k, v fused), cross-attention (k, v fused), MLP, its table.
fn block(s: &Shape, i: usize) -> Vec<Mapping> {
    let d = s.hidden;
    let (o, t) = (format!("blocks.{i}"), format!("transformer_blocks.{i}"));
    let at = |parts: &[&str]| -> Vec<String> { parts.iter().map(|x| format!("{t}.{x}")).collect() };
    let mut v = Vec::new();
    for (ours, theirs, shape, rule) in [
        (
            "attn.qkv",
            at(&["attn1.to_q", "attn1.to_k", "attn1.to_v"]),
            (d, d),
            Rule::ConcatRows,
        ),
        ("attn.proj", at(&["attn1.to_out.0"]), (d, d), Rule::Copy),
        (
            "cross_attn.q_linear",
            at(&["attn2.to_q"]),
            (d, d),
            Rule::Copy,
        ),
        (
            "cross_attn.kv_linear",
            at(&["attn2.to_k", "attn2.to_v"]),
            (d, d),
            Rule::ConcatRows,
        ),
        (
            "cross_attn.proj",
            at(&["attn2.to_out.0"]),
            (d, d),
            Rule::Copy,
        ),
        ("mlp.fc1", at(&["ff.net.0.proj"]), (s.mlp, d), Rule::Copy),
        ("mlp.fc2", at(&["ff.net.2"]), (d, s.mlp), Rule::Copy),
    ] {
        linear(&format!("{o}.{ours}"), &theirs, shape, rule, &mut v);
    }
    let table = |x: &str| format!("{x}.scale_shift_table");
    v.push(one(&table(&o), &table(&t), vec![6, d], vec![6, d]));
    v
}

/// The output projection and its table. PixArt-α's output features are ordered (p, p, C_out)
/// with the noise in channels 0..C and the learned variance after it: keep channel c < C of
/// every pixel.
fn final_layer(s: &Shape) -> Vec<Mapping> {
    let (d, p, out) = (s.hidden, s.patch, s.out_channels);
    let rule = if out == s.channels {
        Rule::Copy
    } else {
        Rule::KeepRows((0..p * p * out).filter(|r| r % out < s.channels).collect())
    };
    let mut v = Vec::new();
    linear(
        "final_layer.linear",
        &["proj_out".to_string()],
        (p * p * out, d),
        rule,
        &mut v,
    );
    v.push(one(
        "final_layer.scale_shift_table",
        "scale_shift_table",
        vec![2, d],
        vec![2, d],
    ));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(out_channels: usize) -> Shape {
        Shape {
            hidden: 8,
            channels: 3,
            out_channels,
            patch: 2,
            caption: 4,
            mlp: 32,
            depth: 2,
        }
    }

    #[test]
    fn every_diffusers_tensor_is_used_once_and_every_ours_named_once() {
        let map = key_map(&shape(3));
        let mut theirs: Vec<&str> = map
            .iter()
            .flat_map(|m| m.theirs.iter().map(|t| t.0.as_str()))
            .collect();
        let n = theirs.len();
        theirs.sort();
        theirs.dedup();
        assert_eq!(theirs.len(), n);
        // As diffusers' state dict of a 2-layer model lists them: patch embedding 2, timestep
        // MLP and adaLN 6, caption projection 4, output 2 + table 1; per block q, k, v and out
        // of two attentions 16, feed-forward 4, table 1.
        assert_eq!(n, 2 + 6 + 4 + 3 + 2 * (16 + 4 + 1));
        let ours: Vec<&str> = map.iter().map(|m| m.ours.0.as_str()).collect();
        assert!(ours.contains(&"blocks.1.cross_attn.kv_linear.bias"));
        assert!(!ours.iter().any(|o| o.contains("attn_temp")));
    }

    #[test]
    fn learned_variance_keeps_the_noise_channels_of_every_pixel() {
        let map = key_map(&shape(6));
        let fin = map
            .iter()
            .find(|m| m.ours.0 == "final_layer.linear.weight")
            .unwrap();
        // 2×2 pixels × 6 channels; rows 0-2, 6-8, 12-14, 18-20 are the noise half.
        assert_eq!(
            fin.rule,
            Rule::KeepRows(vec![0, 1, 2, 6, 7, 8, 12, 13, 14, 18, 19, 20])
        );
        assert_eq!(fin.ours.1, vec![12, 8]);
        assert_eq!(fin.theirs[0].1, vec![24, 8]);
    }
}
