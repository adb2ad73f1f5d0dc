//! The study's explanations, measured: the inflation identity (step 2 of the pipeline), weight
//! drift from the inflated initialisation per parameter family, and linear CKA between the
//! image model's and a video model's block outputs on the same frames.
use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use freezeframe_data::Split;
use freezeframe_model::paths::map_values;
use freezeframe_model::{Stdit, TemporalPos, TextEncoder};
use freezeframe_train::batch::{normal_tensor, videos_to_tensor};
use freezeframe_train::dataset::Dataset;
use freezeframe_train::sample::{encoder_for, load_run};
use freezeframe_train::trainer::{first_step_model, init_weights_file};
use freezeframe_train::{Run, RunConfig, TrainError, checkpoint};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::LabError;

/// Clips and the timestep on which block outputs are compared.
const CKA_CLIPS: usize = 8;
const CKA_T: f32 = 0.5;

/// Below this largest |Δ| the inflated model is its image model (float rounding: the check
/// measures ~1.7e-6 where the identity holds, 2.17 with an ungated stream position).
pub const IDENTITY_TOLERANCE: f64 = 1e-5;

/// How far the inflated model is from its image model, frame by frame, before training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InflationCheck {
    pub frames: usize,
    /// Largest |video-model output − per-frame image-model output| as configured.
    pub max_abs_diff: f64,
    /// The same with the temporal position applied Open-Sora v1.0's way (inside temporal
    /// attention, whose zero output projection hides it): the identity of the weights alone.
    pub max_abs_diff_weights: f64,
    pub temporal_pos: String,
    /// The video model's frame slots (`model.frame_slots`; 0 = none): with slots, frame f is
    /// compared with the image model at slot f.
    #[serde(default)]
    pub frame_slots: usize,
    /// The frame slots the image weights were trained at, from their safetensors metadata
    /// (`None`: trained without slots, or not by freezeframe).
    #[serde(default)]
    pub image_frame_slots: Option<usize>,
}

/// The run's model at its first step with the `full` plan's initialisation (image weights,
/// fresh temporal attention): the inflated image model.
fn inflated(base: &RunConfig, image: &Path, device: &Device) -> Result<Stdit, TrainError> {
    let mut cfg = base.clone();
    cfg.plan = "full".into();
    cfg.init.from = Some(image.to_path_buf());
    first_step_model(&cfg, device)
}

/// Velocity of `x` [B, T, C, H, W] as one video, and frame by frame as B·T images, frame f at
/// slot f (only a model with frame slots reads the slot).
fn both_ways(
    model: &Stdit,
    x: Tensor<5>,
    t: f32,
    caption: &str,
    encoder: &dyn TextEncoder,
    device: &Device,
) -> Result<(Tensor<5>, Tensor<5>), TrainError> {
    let [b, frames, c, h, w] = x.dims();
    let video = model.forward(
        x.clone(),
        Tensor::<1>::full([b], t, device),
        &encoder.encode_batch(&vec![caption.to_string(); b], device)?,
    );
    let slots: Vec<usize> = (0..b).flat_map(|_| 0..frames).collect();
    let images = model
        .forward_at(
            x.reshape([b * frames, 1, c, h, w]),
            Tensor::<1>::full([b * frames], t, device),
            &encoder.encode_batch(&vec![caption.to_string(); b * frames], device)?,
            &slots,
        )
        .reshape([b, frames, c, h, w]);
    Ok((video, images))
}

fn max_abs(a: Tensor<5>, b: Tensor<5>) -> f64 {
    (a - b).abs().max().into_scalar::<f32>() as f64
}

/// Whether every plan starts from the image model itself, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Below [`IDENTITY_TOLERANCE`].
    Holds,
    /// The ungated `stream` position: an offset by design.
    StreamOffset,
    /// `stream` with frame slots from image weights that were not trained at the slots of
    /// every frame: the same offset as [`Identity::StreamOffset`], hidden from the numbers.
    SlotsUnseen,
    /// A wiring that should keep the identity does not: the weights do not fit the model.
    Broken,
}

impl InflationCheck {
    pub fn identity(&self) -> Identity {
        if self.max_abs_diff < IDENTITY_TOLERANCE {
            if self.frame_slots > 0 && self.image_frame_slots.is_none_or(|n| n < self.frames) {
                Identity::SlotsUnseen
            } else {
                Identity::Holds
            }
        } else if self.temporal_pos == "stream" {
            Identity::StreamOffset
        } else {
            Identity::Broken
        }
    }
}

pub fn inflation_check(base: &RunConfig, image: &Path) -> Result<InflationCheck, LabError> {
    let device = Device::flex();
    let model = inflated(base, image, &device)?;
    let encoder = encoder_for(base)?;
    let mcfg = base.model()?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = normal_tensor(
        &mut rng,
        [1, mcfg.frames, mcfg.channels, mcfg.height, mcfg.width],
        &device,
    );
    // Any caption shows the identity; with no sample prompt the empty one serves.
    let caption = base
        .sample
        .prompts
        .first()
        .map_or("", String::as_str)
        .to_string();
    let (v, i) = both_ways(&model, x.clone(), 0.5, &caption, &encoder, &device)?;
    let max_abs_diff = max_abs(v, i);
    let mut weights_only = model.clone();
    weights_only.temporal_pos = TemporalPos::Attention;
    let (v, i) = both_ways(&weights_only, x, 0.5, &caption, &encoder, &device)?;
    Ok(InflationCheck {
        frames: mcfg.frames,
        max_abs_diff,
        max_abs_diff_weights: max_abs(v, i),
        temporal_pos: format!("{:?}", mcfg.temporal_pos).to_lowercase(),
        frame_slots: mcfg.frame_slots,
        image_frame_slots: image_frame_slots(image)?,
    })
}

/// The frame slots recorded in image weights' metadata by `checkpoint::save_model` (`image`:
/// a weights file or an image run's folder, as `[init] from` takes it).
fn image_frame_slots(image: &Path) -> Result<Option<usize>, LabError> {
    let image = &init_weights_file(image)?;
    let meta = checkpoint::file_metadata(image)?;
    let Some(v) = meta.get(checkpoint::FRAME_SLOTS_KEY) else {
        return Ok(None);
    };
    v.parse().map(Some).map_err(|_| LabError::Config {
        path: image.to_path_buf(),
        message: format!(
            "metadata {} = {v:?} is not a count of frame slots",
            checkpoint::FRAME_SLOTS_KEY
        ),
    })
}

/// The parameter family of an Open-Sora path, for drift: a fixed partition shared by every
/// strategy (plan groups differ between plans).
pub fn family(path: &str) -> &'static str {
    if path.contains(".attn_temp.") {
        "temporal attention"
    } else if path.contains(".cross_attn.") || path.starts_with("y_embedder") {
        "text (cross-attention, caption embedder)"
    } else if path.contains(".attn.") {
        "spatial attention"
    } else if path.contains(".mlp.") {
        "MLP"
    } else {
        "embedders, modulation, final layer"
    }
}

fn values_by_path(model: &Stdit) -> BTreeMap<String, Vec<f32>> {
    let mut out = BTreeMap::new();
    let _ = map_values(model.clone(), |path, _, read| {
        out.insert(path.to_string(), read());
        None
    });
    out
}

/// ‖w − w₀‖ / ‖w₀‖ per family between the run's first-step weights (rebuilt from its config)
/// and its newest checkpoint's trained (not EMA) weights. LoRA adapters are merged into their
/// weights on both sides first, so a LoRA run's drift is that of the weights it computes with,
/// comparable with any other plan's.
pub fn drift(run: &Run) -> Result<BTreeMap<String, f64>, LabError> {
    let device = Device::flex();
    let cfg = run.load_config()?;
    let start = first_step_model(&cfg, &device)?;
    let (_, dir) = run
        .latest_checkpoint()
        .ok_or_else(|| TrainError::NoCheckpoint(run.dir.clone()))?;
    let end = checkpoint::load_model(start.clone(), &dir.join("model.safetensors"))?;
    let (a, b) = (
        values_by_path(&start.merge_lora()),
        values_by_path(&end.merge_lora()),
    );
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (path, w0) in &a {
        let Some(w1) = b.get(path) else { continue };
        let e = sums.entry(family(path).to_string()).or_default();
        for (x, y) in w0.iter().zip(w1) {
            e.0 += ((y - x) as f64).powi(2);
            e.1 += (*x as f64).powi(2);
        }
    }
    Ok(sums
        .into_iter()
        .map(|(k, (num, den))| (k, num.sqrt() / den.sqrt().max(1e-12)))
        .collect())
}

/// Linear CKA (Kornblith et al. 2019) of two row-aligned feature matrices [n, d], centred.
pub fn linear_cka(x: &[f32], y: &[f32], n: usize, d: usize) -> f64 {
    let centred = |m: &[f32]| {
        let mut out: Vec<f64> = m.iter().map(|v| *v as f64).collect();
        for j in 0..d {
            let mean = (0..n).map(|i| out[i * d + j]).sum::<f64>() / n as f64;
            for i in 0..n {
                out[i * d + j] -= mean;
            }
        }
        out
    };
    let (x, y) = (centred(x), centred(y));
    // ‖AᵀB‖²_F for [n, d] matrices.
    let cross = |a: &[f64], b: &[f64]| {
        let mut g = vec![0.0f64; d * d];
        for i in 0..n {
            let (ra, rb) = (&a[i * d..(i + 1) * d], &b[i * d..(i + 1) * d]);
            for p in 0..d {
                for q in 0..d {
                    g[p * d + q] += ra[p] * rb[q];
                }
            }
        }
        g.iter().map(|v| v * v).sum::<f64>()
    };
    let den = (cross(&x, &x) * cross(&y, &y)).sqrt();
    if den > 0.0 {
        cross(&x, &y) / den
    } else {
        f64::NAN
    }
}

/// Per block: linear CKA between the inflated image model's outputs (frame by frame) and the
/// run's EMA model's outputs (as a video) on the same noised held-out clips.
pub fn cka(run: &Run, image: &Path) -> Result<Vec<f64>, LabError> {
    let device = Device::flex();
    let loaded = load_run(run, &device)?;
    let cfg = &loaded.config;
    let image_model = inflated(cfg, image, &device)?;
    let data = Dataset::open(&cfg.data)?;
    let n = CKA_CLIPS.min(data.len(Split::Val));
    if n == 0 {
        return Err(LabError::Results {
            path: run.dir.clone(),
            message: "CKA needs held-out clips and the run's data has none".into(),
        });
    }
    let items: Vec<_> = (0..n).map(|i| data.item(Split::Val, i)).collect();
    let videos: Vec<_> = items.iter().map(|it| &it.video).collect();
    let x0 = videos_to_tensor(&videos, &device);
    let dims = x0.dims();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let noise = normal_tensor(&mut rng, dims, &device);
    let x = x0 * (1.0 - CKA_T) + noise * CKA_T;
    let [b, frames, c, h, w] = dims;
    let captions: Vec<String> = items.iter().map(|it| it.caption.clone()).collect();
    let per_frame: Vec<String> = captions
        .iter()
        .flat_map(|c| std::iter::repeat_n(c.clone(), frames))
        .collect();
    let (_, video_blocks) = loaded.model.forward_with_blocks(
        x.clone(),
        Tensor::<1>::full([b], CKA_T, &device),
        &loaded
            .encoder
            .encode_batch(&captions, &device)
            .map_err(TrainError::from)?,
    );
    let (_, image_blocks) = image_model.forward_with_blocks(
        x.reshape([b * frames, 1, c, h, w]),
        Tensor::<1>::full([b * frames], CKA_T, &device),
        &loaded
            .encoder
            .encode_batch(&per_frame, &device)
            .map_err(TrainError::from)?,
    );
    let mut out = Vec::new();
    for (v, i) in video_blocks.into_iter().zip(image_blocks) {
        let d = v.dims()[2];
        let rows = v.dims()[0] * v.dims()[1];
        let host = |t: Tensor<3>| {
            t.into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| LabError::Results {
                    path: run.dir.clone(),
                    message: format!("block output: {e:?}"),
                })
        };
        out.push(linear_cka(&host(i)?, &host(v)?, rows, d));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cka_is_one_for_rotated_scaled_copies_and_low_for_unrelated_features() {
        let (n, d) = (64, 3);
        let x: Vec<f32> = (0..n * d).map(|i| ((i * 37 % 101) as f32).sin()).collect();
        // y = 2·x·R with R a permutation (orthogonal): CKA is invariant to both.
        let mut y = vec![0.0; n * d];
        for i in 0..n {
            y[i * d] = 2.0 * x[i * d + 2];
            y[i * d + 1] = 2.0 * x[i * d];
            y[i * d + 2] = 2.0 * x[i * d + 1];
        }
        assert!((linear_cka(&x, &y, n, d) - 1.0).abs() < 1e-9);
        let z: Vec<f32> = (0..n * d).map(|i| ((i * 53 % 97) as f32).cos()).collect();
        assert!(linear_cka(&x, &z, n, d) < 0.5);
    }

    #[test]
    fn families_partition_the_open_sora_keys() {
        assert_eq!(
            family("blocks.0.attn_temp.qkv.weight"),
            "temporal attention"
        );
        assert_eq!(
            family("blocks.3.cross_attn.q_linear.weight"),
            "text (cross-attention, caption embedder)"
        );
        assert_eq!(
            family("y_embedder.y_proj.fc1.weight"),
            "text (cross-attention, caption embedder)"
        );
        assert_eq!(family("blocks.1.attn.proj.bias"), "spatial attention");
        assert_eq!(family("blocks.1.mlp.fc2.weight"), "MLP");
        assert_eq!(
            family("x_embedder.proj.weight"),
            "embedders, modulation, final layer"
        );
    }
}
