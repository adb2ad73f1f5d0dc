//! LoRA adapters moved onto diffusers' PixArt transformer, for PEFT: an adapter on Open-Sora's
//! `blocks.0.attn.qkv` becomes adapters on diffusers' `transformer_blocks.0.attn1.to_q`,
//! `to_k` and `to_v`.
//!
//! A fused layer's update splits exactly: its ΔW = (α / r)·B·A stacks the rows of q, k and v,
//! so each of `to_q`, `to_k`, `to_v` gets the same A, its own rows of B, and the same rank and
//! α. The key map that moves the weights (`pixart::key_map`) moves the adapters.
use std::path::Path;

use freezeframe_model::StdiTConfig;
use freezeframe_model::lora::{LoraLayer, Matrix, PeftAdapter};

use crate::convert::{export_layout, has_diffusers_place};
use crate::error::InteropError;
use crate::pixart::Rule;

/// Adapters on diffusers' modules, and the Open-Sora layers whose adapters have no place there
/// (the temporal attention).
#[derive(Debug, Clone, PartialEq)]
pub struct PixartLora {
    pub adapters: Vec<PeftAdapter>,
    pub left_out: Vec<String>,
}

/// `adapters` (Open-Sora layer names, PyTorch layout) on the modules of diffusers'
/// `PixArtTransformer2DModel` that `model`'s PixArt export holds. `checkpoint` names the
/// source in errors; adapters that all sit on the temporal attention are one (nothing would be
/// written).
pub fn pixart_lora(
    model: &StdiTConfig,
    adapters: Vec<PeftAdapter>,
    checkpoint: &Path,
) -> Result<PixartLora, InteropError> {
    // Adapters for a transformer diffusers cannot build would fit nothing.
    let (_, map) = export_layout(model, checkpoint)?;
    let n = adapters.len();
    let err = |layer: &str, what: String| InteropError::Weights {
        path: checkpoint.to_path_buf(),
        message: format!("the adapter on `{layer}` {what}"),
    };
    let mut out = PixartLora {
        adapters: Vec::new(),
        left_out: Vec::new(),
    };
    for ad in adapters {
        let layer = ad.spec.layer.as_str();
        let weight = format!("{layer}.weight");
        if !has_diffusers_place(&weight) {
            out.left_out.push(ad.spec.layer.clone());
            continue;
        }
        let m = map
            .iter()
            .find(|m| m.ours.0 == weight)
            .ok_or_else(|| err(layer, "sits on a layer with no diffusers place".into()))?;
        // An export's key map copies or stacks whole tensors (`export_map`); kept rows are an
        // import's learned-variance case only.
        if !matches!(m.rule, Rule::Copy | Rule::ConcatRows) {
            return Err(err(layer, "sits on a layer exported in part".into()));
        }
        let mut start = 0;
        for (theirs, shape) in &m.theirs {
            let module = theirs.strip_suffix(".weight").unwrap_or(theirs);
            let piece = onto(module, shape, start, &ad).map_err(|w| err(layer, w))?;
            start += shape.first().copied().unwrap_or(0);
            out.adapters.push(piece);
        }
        let rows = ad.b.shape.first().copied().unwrap_or(0);
        if rows != start {
            return Err(err(
                layer,
                format!("has {rows} rows of B for {start} output rows"),
            ));
        }
    }
    if out.adapters.is_empty() && n > 0 {
        return Err(InteropError::Weights {
            path: checkpoint.to_path_buf(),
            message: format!(
                "all {n} adapters sit on the temporal attention, which diffusers' PixArt \
                 transformer has no place for; `export --format lora-peft` writes them"
            ),
        });
    }
    Ok(out)
}

/// The part of `ad` on diffusers' module `module`, whose weight has `shape` and holds output
/// rows `start..` of the fused layer. A convolution's adapter (the patch embedding) is a kernel
/// of the layer's own shape (A [r, C, kh, kw]) followed by a 1 × 1 one (B [d_out, r, 1, 1]),
/// as PEFT's `Conv2d` LoRA stores them; the values are the same row-major bytes.
fn onto(
    module: &str,
    shape: &[usize],
    start: usize,
    ad: &PeftAdapter,
) -> Result<PeftAdapter, String> {
    let r = ad.spec.rank;
    let (&rows, kernel) = shape
        .split_first()
        .ok_or_else(|| format!("meets `{module}` with no shape"))?;
    let a_shape: Vec<usize> = std::iter::once(r).chain(kernel.iter().copied()).collect();
    if a_shape.iter().product::<usize>() != ad.a.values.len() {
        return Err(format!(
            "has A of {:?}, which does not fit `{module}` {shape:?}",
            ad.a.shape
        ));
    }
    let b =
        ad.b.values
            .get(start * r..(start + rows) * r)
            .ok_or_else(|| format!("has too few rows of B for `{module}`"))?;
    let ones = kernel.len().saturating_sub(1);
    let b_shape: Vec<usize> = [rows, r]
        .into_iter()
        .chain(std::iter::repeat_n(1, ones))
        .collect();
    Ok(PeftAdapter {
        spec: LoraLayer {
            layer: module.to_string(),
            ..ad.spec.clone()
        },
        a: Matrix {
            shape: a_shape,
            values: ad.a.values.clone(),
        },
        b: Matrix {
            shape: b_shape,
            values: b.to_vec(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model crate's tiny preset, in a form diffusers' PixArt can hold.
    fn model() -> StdiTConfig {
        StdiTConfig::tiny().with_caption_act(freezeframe_model::Activation::GeluTanh)
    }

    fn adapter(layer: &str, d_in: usize, d_out: usize, r: usize) -> PeftAdapter {
        let m = |shape: Vec<usize>, base: f32| Matrix {
            values: (0..shape.iter().product::<usize>())
                .map(|i| base + i as f32)
                .collect(),
            shape,
        };
        PeftAdapter {
            spec: LoraLayer {
                layer: layer.into(),
                rank: r,
                alpha: 2.0 * r as f64,
            },
            a: m(vec![r, d_in], 0.0),
            b: m(vec![d_out, r], 1000.0),
        }
    }

    #[test]
    fn a_fused_qkv_adapter_splits_into_three_with_one_a_and_its_rows_of_b() {
        let c = model();
        let d = c.hidden;
        let qkv = adapter("blocks.1.attn.qkv", d, 3 * d, 2);
        let out = pixart_lora(&c, vec![qkv.clone()], Path::new("x")).unwrap();
        assert!(out.left_out.is_empty());
        let names: Vec<&str> = out.adapters.iter().map(|a| a.spec.layer.as_str()).collect();
        assert_eq!(
            names,
            [
                "transformer_blocks.1.attn1.to_q",
                "transformer_blocks.1.attn1.to_k",
                "transformer_blocks.1.attn1.to_v"
            ]
        );
        for (i, piece) in out.adapters.iter().enumerate() {
            assert_eq!(piece.a, qkv.a);
            assert_eq!(piece.b.shape, vec![d, 2]);
            // Rows i·d.. of the fused B, each of r values.
            assert_eq!(piece.b.values[..], qkv.b.values[i * d * 2..(i + 1) * d * 2]);
            assert_eq!((piece.spec.rank, piece.spec.alpha), (2, 4.0));
        }
        // Stacked back, the pieces are the fused B: nothing lost or repeated.
        let back: Vec<f32> = out
            .adapters
            .iter()
            .flat_map(|p| p.b.values.clone())
            .collect();
        assert_eq!(back, qkv.b.values);
    }

    #[test]
    fn the_patch_embedding_adapter_is_a_kernel_and_temporal_adapters_are_left_out() {
        let c = model();
        let (d, k) = (c.hidden, c.channels * c.patch * c.patch);
        let ads = vec![
            adapter("x_embedder.proj", k, d, 2),
            adapter("blocks.0.attn_temp.qkv", d, 3 * d, 2),
            adapter("blocks.0.mlp.fc2", c.mlp_hidden(), d, 1),
        ];
        let out = pixart_lora(&c, ads, Path::new("x")).unwrap();
        assert_eq!(out.left_out, ["blocks.0.attn_temp.qkv"]);
        let conv = &out.adapters[0];
        assert_eq!(conv.spec.layer, "pos_embed.proj");
        assert_eq!(conv.a.shape, vec![2, c.channels, c.patch, c.patch]);
        assert_eq!(conv.b.shape, vec![d, 2, 1, 1]);
        assert_eq!(out.adapters[1].spec.layer, "transformer_blocks.0.ff.net.2");
        assert_eq!(out.adapters[1].a.shape, vec![1, c.mlp_hidden()]);
    }

    #[test]
    fn adapters_all_on_the_temporal_attention_are_an_error_not_an_empty_export() {
        let c = model();
        let d = c.hidden;
        let ads = vec![
            adapter("blocks.0.attn_temp.qkv", d, 3 * d, 2),
            adapter("blocks.1.attn_temp.proj", d, d, 2),
        ];
        let e = pixart_lora(&c, ads, Path::new("ckpt"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("all 2 adapters sit on the temporal attention"),
            "{e}"
        );
    }

    #[test]
    fn an_adapter_of_the_wrong_size_is_an_error_naming_it() {
        let c = model();
        let bad = adapter("blocks.0.attn.proj", c.hidden + 1, c.hidden, 2);
        let e = pixart_lora(&c, vec![bad], Path::new("ckpt")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("blocks.0.attn.proj") && msg.contains("ckpt"),
            "{msg}"
        );
        // A model diffusers' PixArt cannot hold is refused before any adapter.
        let silu = c.with_mlp_act(freezeframe_model::Activation::Silu);
        let e = pixart_lora(&silu, vec![], Path::new("ckpt")).unwrap_err();
        assert!(e.to_string().contains("silu"), "{e}");
    }
}
