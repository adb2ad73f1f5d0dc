//! Sampling videos from prompts with the Euler sampler and classifier-free guidance.
use std::path::Path;

use burn::prelude::*;
use freezeframe_data::DataKind;
use freezeframe_data::Video;
use freezeframe_diffusion::{cfg_combine, euler_sample};
use freezeframe_model::{CaptionBatch, StdiTConfig, Stdit, TextEncoder, WordEncoder};

use crate::latent::{CachedCaptions, RunEncoder};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

use crate::batch::{normal_tensor, tensor_to_videos};
use crate::checkpoint::load_model;
use crate::config::RunConfig;
use crate::error::TrainError;
use crate::run::Run;

/// Seed of the frozen text encoder's word table: fixed, like a pretrained encoder, so runs with
/// different seeds see the same text features.
pub const TEXT_SEED: u64 = 0x7e47;

/// The text encoder of a run: the frozen word encoder, or a latent run's cached features (which
/// opens and checks its cache; [`encoder_for_data`] reuses an open one).
pub fn encoder_for(cfg: &RunConfig) -> Result<RunEncoder, TrainError> {
    if cfg.data.kind == DataKind::Latents {
        return encoder_for_data(cfg, &crate::dataset::Dataset::open(&cfg.data)?);
    }
    let m = cfg.model()?;
    Ok(RunEncoder::Words(WordEncoder::new(
        crate::dataset::vocabulary(&cfg.data)?,
        m.text_dim,
        m.text_len,
        TEXT_SEED,
    )))
}

/// [`encoder_for`] with the run's data already open.
pub fn encoder_for_data(
    cfg: &RunConfig,
    data: &crate::dataset::Dataset,
) -> Result<RunEncoder, TrainError> {
    let Some(cache) = data.latents() else {
        return encoder_for(cfg);
    };
    let m = cfg.model()?;
    data.check_model(&m, cfg.train.batch_size)?;
    Ok(RunEncoder::Cached(CachedCaptions::new(
        Arc::clone(cache),
        m.text_len,
    )))
}

fn cat_captions(a: &CaptionBatch, b: &CaptionBatch) -> CaptionBatch {
    CaptionBatch {
        tokens: Tensor::cat(vec![a.tokens.clone(), b.tokens.clone()], 0),
        pad: Tensor::cat(vec![a.pad.clone(), b.pad.clone()], 0),
        null: Tensor::cat(vec![a.null.clone(), b.null.clone()], 0),
    }
}

/// Sampling settings.
#[derive(Debug, Clone, Copy)]
pub struct SampleSpec {
    pub steps: usize,
    pub cfg: f32,
    pub seed: u64,
    /// (T, C, H, W) of the videos.
    pub shape: [usize; 4],
    /// The `stream` frame slot of every sample's first frame (0 for videos; an image model
    /// with frame slots can be sampled at any of its slots).
    pub slot: usize,
}

/// One video per prompt. Video i's noise depends only on (seed, i), so the same prompt list and
/// seed give the same noise for every run being compared.
pub fn generate<E: TextEncoder + ?Sized>(
    model: &Stdit,
    encoder: &E,
    prompts: &[String],
    spec: SampleSpec,
    device: &Device,
    on_step: impl FnMut(usize),
) -> Result<Vec<Video>, TrainError> {
    generate_from(model, encoder, prompts, 0, spec, device, on_step)
}

/// Like [`generate`] for prompts `first..first + prompts.len()` of a longer list: video i gets
/// the noise of index `first + i`, so a list sampled in batches gets the same noise as at once.
pub fn generate_from<E: TextEncoder + ?Sized>(
    model: &Stdit,
    encoder: &E,
    prompts: &[String],
    first: u64,
    spec: SampleSpec,
    device: &Device,
    on_step: impl FnMut(usize),
) -> Result<Vec<Video>, TrainError> {
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let x = sample_tensor(model, encoder, prompts, first, spec, device, on_step)?;
    let videos = tensor_to_videos(x)?;
    let flat = videos.iter().filter(|v| is_flat(v)).count();
    if flat > 0 {
        tracing::warn!(
            flat,
            of = videos.len(),
            cfg = spec.cfg,
            "samples of one flat colour: the sampler collapsed (too strong guidance, or weights that have not learned)"
        );
    }
    Ok(videos)
}

/// The sampler's output [B, T, C, H, W] as the model produces it (pixels in [−1, 1], or
/// latents), for prompts `first..first + prompts.len()` (non-empty).
pub fn sample_tensor<E: TextEncoder + ?Sized>(
    model: &Stdit,
    encoder: &E,
    prompts: &[String],
    first: u64,
    spec: SampleSpec,
    device: &Device,
    mut on_step: impl FnMut(usize),
) -> Result<Tensor<5>, TrainError> {
    let b = prompts.len();
    let [t, c, h, w] = spec.shape;
    let noise: Vec<Tensor<5>> = (0..b)
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
            rng.set_stream(first + i as u64);
            normal_tensor(&mut rng, [1, t, c, h, w], device)
        })
        .collect();
    let noise = Tensor::cat(noise, 0);
    let cond = encoder.encode_batch(prompts, device)?;
    let guided = spec.cfg != 1.0;
    // No slots: every sample at slot 0, as `forward`.
    let slots = match spec.slot {
        0 => Vec::new(),
        slot => vec![slot; if guided { 2 * b } else { b }],
    };
    let both = if guided {
        cat_captions(&cond, &cond.to_null())
    } else {
        cond.clone()
    };
    let x = euler_sample(
        noise,
        spec.steps,
        |x, time| {
            let reps = if guided { 2 } else { 1 };
            let xs = if guided {
                Tensor::cat(vec![x.clone(), x.clone()], 0)
            } else {
                x.clone()
            };
            let tt = Tensor::<1>::full([b * reps], time, device);
            let v = model.forward_at(xs, tt, &both, &slots);
            if guided {
                let vc = v.clone().narrow(0, 0, b);
                let vu = v.narrow(0, b, b);
                cfg_combine(vc, vu, spec.cfg)
            } else {
                v
            }
        },
        &mut on_step,
    );
    Ok(x)
}

/// Writes sampled latents [n, T, C, h, w] as `latents` in a safetensors file (atomically);
/// values that are not finite are an error, not a file.
pub fn save_latents(path: &Path, x: Tensor<5>) -> Result<(), TrainError> {
    let shape = x.dims().to_vec();
    let values: Vec<f32> = x
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| TrainError::NonFinite(format!("reading sampled latents back: {e:?}")))?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(TrainError::NonFinite(format!(
            "the sampler produced {} (value {i} of {})",
            values[i],
            values.len()
        )));
    }
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &bytes)
        .map_err(|e| TrainError::Data(e.to_string()))?;
    let file = safetensors::serialize([("latents", view)], None)
        .map_err(|e| TrainError::Data(e.to_string()))?;
    crate::run::write_atomic(path, &file)
}

/// Every value of the video within one 8-bit level of every other: a single colour.
pub fn is_flat(v: &Video) -> bool {
    let (lo, hi) = v
        .data
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    hi - lo < 1.0 / 255.0
}

/// A run read back for sampling: the EMA weights of its newest checkpoint and what goes with
/// them.
pub struct LoadedRun {
    pub model: Stdit,
    pub encoder: RunEncoder,
    pub config: RunConfig,
    pub model_config: StdiTConfig,
    /// Step of the checkpoint the weights come from.
    pub step: usize,
    /// (T, C, H, W) of samples: the model's, or a latent run's largest size bucket.
    pub sample_shape: [usize; 4],
}

impl LoadedRun {
    /// The sampling settings for this run's video shape.
    pub fn spec(&self, steps: usize, cfg: f32, seed: u64) -> SampleSpec {
        SampleSpec {
            steps,
            cfg,
            seed,
            shape: self.sample_shape,
            slot: 0,
        }
    }
}

pub fn load_run(run: &Run, device: &Device) -> Result<LoadedRun, TrainError> {
    let config = run.load_config()?;
    let (step, dir) = run
        .latest_checkpoint()
        .ok_or_else(|| TrainError::NoCheckpoint(run.dir.clone()))?;
    let model_config = config
        .model_config()
        .map_err(|message| TrainError::Config {
            path: run.config_path(),
            message,
        })?;
    let model = load_model(
        Stdit::new(&model_config, device),
        &dir.join("ema.safetensors"),
    )?;
    let (encoder, sample_shape) = if config.data.kind == DataKind::Latents {
        let data = crate::dataset::Dataset::open(&config.data)?;
        (
            encoder_for_data(&config, &data)?,
            data.sample_shape(&model_config),
        )
    } else {
        let m = &model_config;
        (
            encoder_for(&config)?,
            [m.frames, m.channels, m.height, m.width],
        )
    };
    Ok(LoadedRun {
        model,
        encoder,
        config,
        model_config,
        step,
        sample_shape,
    })
}

/// Pixel scale of sample GIFs (one row of `n` tiles): 16-pixel frames become visible.
pub const SAMPLE_GIF_SCALE: usize = 4;

/// Samples `n` videos for each prompt and writes one file per prompt into `out_dir`: a GIF
/// (`<slug>.gif`, n tiles), or for a latent run `<slug>.safetensors` holding `latents`
/// [n, T, C, h, w] as the model predicts them (decode with `tools/latents/make_cache.py
/// --decode`). Returns the written paths.
#[allow(clippy::too_many_arguments)]
pub fn write_prompt_samples<E: TextEncoder + ?Sized>(
    model: &Stdit,
    encoder: &E,
    prompts: &[String],
    n: usize,
    spec: SampleSpec,
    out_dir: &Path,
    device: &Device,
    kind: DataKind,
) -> Result<Vec<std::path::PathBuf>, TrainError> {
    std::fs::create_dir_all(out_dir)
        .map_err(crate::error::io(format!("create {}", out_dir.display())))?;
    let mut paths = Vec::new();
    for p in prompts {
        let rep: Vec<String> = vec![p.clone(); n];
        let slug = crate::run::slug(p);
        if kind == DataKind::Latents {
            let path = out_dir.join(format!("{slug}.safetensors"));
            save_latents(
                &path,
                sample_tensor(model, encoder, &rep, 0, spec, device, |_| {})?,
            )?;
            paths.push(path);
            continue;
        }
        let videos = generate(model, encoder, &rep, spec, device, |_| {})?;
        let path = out_dir.join(format!("{slug}.gif"));
        freezeframe_data::gif_out::write_grid(&path, &videos, n, SAMPLE_GIF_SCALE, 15)?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_video_is_flat_only_when_every_value_is_within_one_level() {
        let mut v = Video::zeros(2, 3, 4, 4);
        v.data.iter_mut().for_each(|x| *x = 0.5);
        assert!(is_flat(&v));
        v.data[7] = 0.5 + 0.5 / 255.0;
        assert!(is_flat(&v));
        v.data[7] = 0.5 + 2.0 / 255.0;
        assert!(!is_flat(&v));
    }
}
