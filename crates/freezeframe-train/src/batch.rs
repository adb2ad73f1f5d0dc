//! Training batches as a pure function of (seed, step): clip indices, noise, timesteps and
//! caption dropout all come from a generator seeded by the run seed on the step's own stream,
//! so a resumed run draws exactly the batches an uninterrupted one would.
use burn::prelude::*;
use burn::tensor::TensorData;
use freezeframe_data::{Split, Video};
use freezeframe_diffusion::{LogitNormal, interpolate, rf_loss, shift_timestep, velocity_target};
use freezeframe_model::{CaptionBatch, Stdit, TextEncoder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::TrainError;

/// Everything one training step consumes.
#[derive(Clone)]
pub struct Batch {
    /// Clean videos scaled to [−1, 1], [B, T, C, H, W].
    pub x0: Tensor<5>,
    pub noise: Tensor<5>,
    /// [B] in (0, 1).
    pub t: Tensor<1>,
    pub caption: CaptionBatch,
    /// Each sample's frame slot (see `StdiTConfig::frame_slots`); empty = slot 0 for all.
    pub slots: Vec<usize>,
}

/// The rectified-flow loss of `model` on `batch` (a scalar, still on the graph).
pub fn batch_loss(model: &Stdit, batch: Batch) -> Tensor<1> {
    let xt = interpolate(batch.x0.clone(), batch.noise.clone(), batch.t.clone());
    let target = velocity_target(batch.x0, batch.noise);
    rf_loss(
        model.forward_at(xt, batch.t, &batch.caption, &batch.slots),
        target,
    )
}

/// The generator for `step` of a run seeded `seed` (stream 0 is reserved for validation).
pub fn step_rng(seed: u64, step: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_ba7c);
    rng.set_stream(step as u64 + 1);
    rng
}

/// Videos in [0, 1] → a [B, T, C, H, W] tensor in [−1, 1].
pub fn videos_to_tensor(videos: &[&Video], device: &Device) -> Tensor<5> {
    let v0 = videos[0];
    let mut data = Vec::with_capacity(videos.len() * v0.data.len());
    for v in videos {
        data.extend(v.data.iter().map(|x| 2.0 * x - 1.0));
    }
    let shape = [videos.len(), v0.frames, v0.channels, v0.height, v0.width];
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// A [B, T, C, H, W] tensor in [−1, 1] → videos in [0, 1] (clamped). A value that is not a
/// number is an error, not a black pixel: it means a diverged model or a non-finite setting.
pub fn tensor_to_videos(x: Tensor<5>) -> Result<Vec<Video>, TrainError> {
    let [b, t, c, h, w] = x.dims();
    let data: Vec<f32> = x
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| TrainError::NonFinite(format!("reading sampled videos back: {e:?}")))?;
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(TrainError::NonFinite(format!(
            "the sampler produced {} (value {i} of {}): the weights or the guidance scale are not finite",
            data[i],
            data.len()
        )));
    }
    let n = t * c * h * w;
    Ok((0..b)
        .map(|i| {
            let v = data[i * n..(i + 1) * n]
                .iter()
                .map(|x| ((x + 1.0) / 2.0).clamp(0.0, 1.0))
                .collect();
            Video::from_data(t, c, h, w, v)
        })
        .collect())
}

/// Standard-normal noise of `shape` from `rng`.
pub fn normal_tensor<R: Rng>(rng: &mut R, shape: [usize; 5], device: &Device) -> Tensor<5> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// Caption tensors with the given rows replaced by the null caption.
pub fn captions<E: TextEncoder + ?Sized>(
    encoder: &E,
    texts: &[String],
    null: &[bool],
    device: &Device,
) -> Result<CaptionBatch, TrainError> {
    let mut c = encoder.encode_batch(texts, device)?;
    c.null = Tensor::from_data(TensorData::new(null.to_vec(), [null.len()]), device);
    Ok(c)
}

/// How training batches are drawn: everything but the step.
#[derive(Debug, Clone, Copy)]
pub struct BatchSpec {
    /// With the step, seeds the clips, caption dropout, t and noise of a batch.
    pub seed: u64,
    pub batch_size: usize,
    /// Probability of the null caption.
    pub caption_dropout: f64,
    /// Shift of training t toward noise (1 = none).
    pub timestep_shift: f64,
    /// Image runs of a model with frame slots draw each image's slot in [0, this); 0 = none.
    pub frame_slots: usize,
}

impl BatchSpec {
    /// The batches a run config trains on.
    pub fn of(cfg: &crate::config::RunConfig) -> Self {
        Self {
            seed: cfg.seed,
            batch_size: cfg.train.batch_size,
            caption_dropout: cfg.train.caption_dropout,
            timestep_shift: cfg.train.timestep_shift,
            frame_slots: if cfg.data.image_mode {
                cfg.model.frame_slots.unwrap_or(0)
            } else {
                0
            },
        }
    }
}

/// The training batch of `step`.
pub fn train_batch<E: TextEncoder + ?Sized>(
    data: &Dataset,
    encoder: &E,
    spec: BatchSpec,
    step: usize,
    device: &Device,
) -> Result<Batch, TrainError> {
    let BatchSpec {
        seed,
        batch_size,
        caption_dropout,
        timestep_shift,
        frame_slots,
    } = spec;
    let mut rng = step_rng(seed, step);
    let (x0, texts) = match data.latents() {
        // One size bucket per batch, the clips' latents as they are.
        Some(cache) => {
            let (_, idx) = crate::latent::draw(&mut rng, data.buckets(Split::Train), batch_size);
            let texts = idx
                .iter()
                .map(|&i| cache.entry(i).caption.clone())
                .collect();
            (crate::latent::latents_tensor(cache, &idx, device), texts)
        }
        None => {
            let n = data.len(Split::Train) as u64;
            let idx: Vec<u64> = (0..batch_size).map(|_| rng.random_range(0..n)).collect();
            let clips: Vec<_> = idx
                .par_iter()
                .map(|&i| data.item(Split::Train, i as usize))
                .collect();
            let videos: Vec<&Video> = clips.iter().map(|c| &c.video).collect();
            let texts: Vec<String> = clips.iter().map(|c| c.caption.clone()).collect();
            (videos_to_tensor(&videos, device), texts)
        }
    };
    let null: Vec<bool> = (0..batch_size)
        .map(|_| rng.random_bool(caption_dropout))
        .collect();
    let t: Vec<f32> = LogitNormal::default()
        .sample(&mut rng, batch_size)
        .into_iter()
        .map(|t| shift_timestep(t as f64, timestep_shift) as f32)
        .collect();
    let noise = normal_tensor(&mut rng, x0.dims(), device);
    // Drawn last, so that runs without slots keep the batches they always had.
    let slots = if frame_slots > 0 {
        (0..batch_size)
            .map(|_| rng.random_range(0..frame_slots))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Batch {
        x0,
        noise,
        t: Tensor::from_data(TensorData::new(t, [batch_size]), device),
        caption: captions(encoder, &texts, &null, device)?,
        slots,
    })
}
