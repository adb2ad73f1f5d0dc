//! Validation loss: the rectified-flow loss at fixed, evenly spaced timesteps on held-out clips
//! with fixed noise (Open-Sora's `eval_loss`), so values are comparable across steps and runs.
use burn::prelude::*;
use burn::tensor::TensorData;
use freezeframe_data::{Split, Video};
use freezeframe_diffusion::{eval_timesteps, interpolate, rf_loss_per_sample_f32, velocity_target};
use freezeframe_model::{Stdit, TextEncoder};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::batch::{captions, normal_tensor, videos_to_tensor};
use crate::dataset::Dataset;
use crate::error::TrainError;

/// Timesteps scored.
pub const VAL_TIMESTEPS: usize = 10;
/// Clips per forward pass.
const CHUNK: usize = 16;
/// The noise of held-out clip i is fixed for every run and step.
const VAL_NOISE_SEED: u64 = 0x0e7a_1005;

#[derive(Debug, Clone, Serialize)]
pub struct ValLoss {
    pub mean: f32,
    /// (t, loss) for each of the evaluation timesteps.
    pub by_t: Vec<(f32, f32)>,
}

/// Scores `model` (on a plain device) on the first `n_clips` held-out clips (a latent run: the
/// first `n_clips` in size-bucket order, each forward pass within one size).
pub fn val_loss<E: TextEncoder + ?Sized>(
    model: &Stdit,
    data: &Dataset,
    encoder: &E,
    n_clips: usize,
    device: &Device,
) -> Result<ValLoss, TrainError> {
    let n = n_clips.min(data.len(Split::Val)).max(1);
    if let Some(cache) = data.latents() {
        let mut left = n;
        let mut chunks = Vec::new();
        for (_, clips) in data.buckets(Split::Val) {
            let take = &clips[..clips.len().min(left)];
            left -= take.len();
            for c in take.chunks(CHUNK) {
                let texts = c.iter().map(|&i| cache.entry(i).caption.clone()).collect();
                chunks.push((crate::latent::latents_tensor(cache, c, device), texts));
            }
        }
        return score(model, encoder, chunks, 0, device);
    }
    let clips: Vec<_> = (0..n).map(|i| data.item(Split::Val, i)).collect();
    let videos: Vec<&Video> = clips.iter().map(|c| &c.video).collect();
    let texts: Vec<String> = clips.iter().map(|c| c.caption.clone()).collect();
    loss_on(model, encoder, &videos, &texts, 0, device)
}

/// The validation loss of `videos` captioned `texts` (any captions: the text-use probes swap
/// words), with the fixed noise of noise stream `noise` (0 is the validation loss's own).
pub fn loss_on<E: TextEncoder + ?Sized>(
    model: &Stdit,
    encoder: &E,
    videos: &[&Video],
    texts: &[String],
    noise: u64,
    device: &Device,
) -> Result<ValLoss, TrainError> {
    if videos.is_empty() || videos.len() != texts.len() {
        return Err(TrainError::Data(format!(
            "a validation loss needs one caption per clip and at least one clip ({} clips, {} captions)",
            videos.len(),
            texts.len()
        )));
    }
    let chunks = videos
        .chunks(CHUNK)
        .zip(texts.chunks(CHUNK))
        .map(|(v, t)| (videos_to_tensor(v, device), t.to_vec()))
        .collect();
    score(model, encoder, chunks, noise, device)
}

/// The loss at the evaluation timesteps over `chunks` of clean clips [B, T, C, H, W] and their
/// captions, chunk i with the fixed noise of stream (`noise`, i).
fn score<E: TextEncoder + ?Sized>(
    model: &Stdit,
    encoder: &E,
    chunks: Vec<(Tensor<5>, Vec<String>)>,
    noise: u64,
    device: &Device,
) -> Result<ValLoss, TrainError> {
    let n: usize = chunks.iter().map(|(_, t)| t.len()).sum();
    let ts = eval_timesteps(VAL_TIMESTEPS);
    let mut sums = vec![0.0f64; ts.len()];
    for (ci, (x0, texts)) in chunks.into_iter().enumerate() {
        let b = texts.len();
        let mut rng = ChaCha8Rng::seed_from_u64(VAL_NOISE_SEED ^ noise.wrapping_mul(0x9e37_79b9));
        rng.set_stream(ci as u64);
        let noise = normal_tensor(&mut rng, x0.dims(), device);
        let cap = captions(encoder, &texts, &vec![false; b], device)?;
        for (k, &t) in ts.iter().enumerate() {
            let tt = Tensor::<1>::from_data(TensorData::new(vec![t; b], [b]), device);
            let xt = interpolate(x0.clone(), noise.clone(), tt.clone());
            let pred = model.forward(xt, tt, &cap);
            let per = rf_loss_per_sample_f32(pred, velocity_target(x0.clone(), noise.clone()));
            sums[k] += per.iter().map(|&x| x as f64).sum::<f64>();
        }
    }
    let by_t: Vec<(f32, f32)> = ts
        .iter()
        .zip(&sums)
        .map(|(&t, &s)| (t, (s / n as f64) as f32))
        .collect();
    let mean = by_t.iter().map(|(_, l)| l).sum::<f32>() / by_t.len() as f32;
    Ok(ValLoss { mean, by_t })
}
