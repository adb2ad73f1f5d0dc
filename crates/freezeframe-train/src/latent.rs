//! Training on a latent cache (`[data] kind = "latents"`, issue 27): captions come as the
//! cache's precomputed features, and each batch is drawn from one size bucket.
use std::collections::HashMap;
use std::sync::Arc;

use burn::prelude::*;
use burn::tensor::TensorData;
use freezeframe_data::real::LatentCache;
use freezeframe_data::real::latents::BucketShape;
use freezeframe_model::text::EncodedText;
use freezeframe_model::{TextEncoder, TextError, WordEncoder};
use rand::Rng;

/// The text encoder of a latent run: the cache's features, looked up by caption text and padded
/// to the model's `text_len`. A caption the cache lacks is an error naming it. The features stay
/// in the cache (shared, not copied): T5 features are about 2 MB a caption, so a second copy of
/// a real cache's would double its memory.
#[derive(Debug, Clone)]
pub struct CachedCaptions {
    cache: Arc<LatentCache>,
    max_len: usize,
    /// Caption text → the first clip carrying it.
    by_text: HashMap<String, usize>,
}

impl CachedCaptions {
    /// Every caption in `cache`, read padded to `max_len` (≥ the cache's `text_len`, checked by
    /// `LatentCache::check_model`).
    pub fn new(cache: Arc<LatentCache>, max_len: usize) -> Self {
        let mut by_text = HashMap::new();
        for i in 0..cache.len() {
            by_text.entry(cache.entry(i).caption.clone()).or_insert(i);
        }
        Self {
            cache,
            max_len,
            by_text,
        }
    }

    /// Clip `i`'s caption features padded to `max_len` tokens.
    fn padded(&self, i: usize) -> EncodedText {
        let d = self.cache.index.caption_channels;
        let clip = self.cache.clip(i);
        let mut tokens = Vec::with_capacity(self.max_len * d);
        tokens.extend_from_slice(&clip.features);
        tokens.resize(self.max_len * d, 0.0);
        let mut pad: Vec<bool> = clip.mask.iter().map(|&m| !m).collect();
        pad.resize(self.max_len, true);
        EncodedText { tokens, pad }
    }

    /// The cached captions, sorted.
    pub fn captions(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_text.keys().map(String::as_str).collect();
        v.sort();
        v
    }
}

impl TextEncoder for CachedCaptions {
    fn dim(&self) -> usize {
        self.cache.index.caption_channels
    }

    fn max_len(&self) -> usize {
        self.max_len
    }

    fn encode(&self, prompt: &str) -> Result<EncodedText, TextError> {
        self.by_text
            .get(prompt)
            .map(|&i| self.padded(i))
            .ok_or_else(|| TextError::NotCached {
                prompt: prompt.to_string(),
                cache: self.cache.dir.display().to_string(),
                examples: self
                    .captions()
                    .iter()
                    .take(3)
                    .copied()
                    .collect::<Vec<_>>()
                    .join("; "),
            })
    }
}

/// A run's text encoder: the frozen word encoder (pixel runs) or the latent cache's features.
#[derive(Debug, Clone)]
pub enum RunEncoder {
    Words(WordEncoder),
    Cached(CachedCaptions),
}

impl TextEncoder for RunEncoder {
    fn dim(&self) -> usize {
        match self {
            RunEncoder::Words(w) => w.dim(),
            RunEncoder::Cached(c) => c.dim(),
        }
    }

    fn max_len(&self) -> usize {
        match self {
            RunEncoder::Words(w) => w.max_len(),
            RunEncoder::Cached(c) => c.max_len(),
        }
    }

    fn encode(&self, prompt: &str) -> Result<EncodedText, TextError> {
        match self {
            RunEncoder::Words(w) => w.encode(prompt),
            RunEncoder::Cached(c) => c.encode(prompt),
        }
    }
}

/// What a latent run records of its cache (`latent-cache.json` in the run folder): the cache's
/// identity, checked on resume, and its clips per size bucket.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRecord {
    pub identity: String,
    pub cache: String,
    /// (frames, height, width, clips) per bucket of the training split …
    pub train_buckets: Vec<(usize, usize, usize, usize)>,
    /// … and of the held-out split.
    pub val_buckets: Vec<(usize, usize, usize, usize)>,
}

impl CacheRecord {
    /// The record of a latent run's data (`None` for pixel data).
    pub fn of(data: &crate::dataset::Dataset) -> Option<Self> {
        let cache = data.latents()?;
        let counts = |split| {
            data.buckets(split)
                .iter()
                .map(|((t, h, w), v)| (*t, *h, *w, v.len()))
                .collect()
        };
        Some(Self {
            identity: cache.identity.clone(),
            cache: cache.dir.display().to_string(),
            train_buckets: counts(freezeframe_data::Split::Train),
            val_buckets: counts(freezeframe_data::Split::Val),
        })
    }
}

/// One size bucket: (shape, clip indices into the cache).
pub type Bucket = (BucketShape, Vec<usize>);
/// Size buckets of a split, in shape order.
pub type Buckets = Vec<Bucket>;

/// Clip indices of one batch: a bucket drawn with probability proportional to its size (so each
/// clip is as likely as in an unbucketed draw), then `n` clips from it with replacement.
pub fn draw<R: Rng>(rng: &mut R, buckets: &[Bucket], n: usize) -> (BucketShape, Vec<usize>) {
    let total: usize = buckets.iter().map(|(_, v)| v.len()).sum();
    let mut r = rng.random_range(0..total);
    let mut chosen = &buckets[buckets.len() - 1];
    for b in buckets {
        if r < b.1.len() {
            chosen = b;
            break;
        }
        r -= b.1.len();
    }
    let idx = (0..n)
        .map(|_| chosen.1[rng.random_range(0..chosen.1.len())])
        .collect();
    (chosen.0, idx)
}

/// The latents of `clips` (cache indices, all of one shape) as [B, T, C, h, w].
pub fn latents_tensor(cache: &LatentCache, clips: &[usize], device: &Device) -> Tensor<5> {
    let e = cache.entry(clips[0]);
    let c = cache.index.latent_channels;
    let mut data = Vec::with_capacity(clips.len() * e.frames * c * e.height * e.width);
    for &i in clips {
        data.extend_from_slice(&cache.clip(i).latent);
    }
    let shape = [clips.len(), e.frames, c, e.height, e.width];
    Tensor::from_data(TensorData::new(data, shape), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn a_batch_is_one_bucket_drawn_in_proportion_to_its_size_and_the_same_per_seed() {
        let buckets: Buckets = vec![((4, 8, 8), vec![0, 1, 2]), ((2, 8, 16), vec![3])];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut big = 0;
        for _ in 0..4000 {
            let (shape, idx) = draw(&mut rng, &buckets, 5);
            let members = &buckets.iter().find(|b| b.0 == shape).unwrap().1;
            assert!(idx.iter().all(|i| members.contains(i)), "{shape:?} {idx:?}");
            big += usize::from(shape == (4, 8, 8));
        }
        // 3 of 4 clips are in the first bucket: 3000 expected, sd ≈ 27.
        assert!((2850..3150).contains(&big), "{big}");
        let again = |seed| draw(&mut ChaCha8Rng::seed_from_u64(seed), &buckets, 5);
        assert_eq!(again(9), again(9));
    }
}
