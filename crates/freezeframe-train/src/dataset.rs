//! Where training clips come from: the synthetic world (default) or a clip cache of real
//! footage (`[data] cache = "DIR"` or `[data] csv = "list.csv"`).
use std::path::{Path, PathBuf};

use freezeframe_data::real::{ClipCache, LatentCache, PrepareSettings, prepare};
use freezeframe_data::{DataKind, Split, Video, World, WorldConfig};
use freezeframe_model::StdiTConfig;

use crate::latent::Buckets;

use crate::error::TrainError;

pub enum Dataset {
    Synthetic(World),
    /// A cache split by clip: every tenth clip (index 9, 19, …) is held out.
    Cache {
        cache: ClipCache,
        train: Vec<usize>,
        val: Vec<usize>,
    },
    /// A latent cache (`[data] kind = "latents"`), split as a clip cache is, each split's clips
    /// grouped by size.
    Latents {
        /// Shared with the run's text encoder ([`crate::latent::CachedCaptions`]), which reads
        /// its caption features in place rather than holding a second copy of them.
        cache: std::sync::Arc<LatentCache>,
        train: Vec<usize>,
        val: Vec<usize>,
        buckets: [Buckets; 2],
    },
}

/// Every tenth clip (index 9, 19, …) held out; a cache of fewer than ten clips holds out its
/// last, so that it still validates on something.
fn split(n: usize) -> (Vec<usize>, Vec<usize>) {
    let val: Vec<usize> = (0..n).filter(|i| i % 10 == 9).collect();
    let train: Vec<usize> = (0..n).filter(|i| i % 10 != 9).collect();
    let val = if val.is_empty() { vec![n - 1] } else { val };
    (train, val)
}

/// One clip and its caption.
pub struct Item {
    pub video: Video,
    pub caption: String,
}

fn cache_error(e: impl std::fmt::Display) -> TrainError {
    TrainError::Data(e.to_string())
}

/// The cache folder a `csv` entry is prepared into.
pub fn csv_cache_dir(csv: &Path, frames: usize, size: usize) -> PathBuf {
    let stem = csv
        .file_stem()
        .map_or("clips".into(), |s| s.to_string_lossy().to_string());
    csv.with_file_name(format!("{stem}.cache-{frames}x{size}"))
}

impl Dataset {
    /// Opens the run's data. A `csv` is prepared first (only new or changed videos decode).
    pub fn open(cfg: &WorldConfig) -> Result<Self, TrainError> {
        if cfg.kind == DataKind::Latents {
            return Self::open_latents(cfg);
        }
        let dir = match (&cfg.cache, &cfg.csv) {
            (None, None) => return Ok(Dataset::Synthetic(World::new(cfg.clone())?)),
            (Some(_), Some(_)) => {
                return Err(TrainError::Data(
                    "[data] sets both `cache` and `csv`; choose one".into(),
                ));
            }
            (Some(dir), None) => dir.clone(),
            (None, Some(csv)) => {
                let dir = csv_cache_dir(csv, cfg.frames, cfg.size);
                let settings = PrepareSettings {
                    frames: cfg.frames,
                    size: cfg.size,
                    fps: None,
                    stride: 1,
                    clips_per_video: 4,
                };
                let r = prepare(csv, &dir, &settings, |_, _| {}).map_err(cache_error)?;
                tracing::info!("{}", r.summary());
                dir
            }
        };
        let cache = ClipCache::open(&dir).map_err(cache_error)?;
        let s = &cache.index.settings;
        if (s.frames, s.size) != (cfg.frames, cfg.size) {
            return Err(TrainError::Data(format!(
                "cache {} holds {}-frame clips of {}×{}, but [data] asks frames = {}, size = {}",
                dir.display(),
                s.frames,
                s.size,
                s.size,
                cfg.frames,
                cfg.size
            )));
        }
        let n = cache.len();
        if n == 0 {
            return Err(TrainError::Data(format!(
                "cache {} holds no clips",
                dir.display()
            )));
        }
        let (train, val) = split(n);
        Ok(Dataset::Cache { cache, train, val })
    }

    fn open_latents(cfg: &WorldConfig) -> Result<Self, TrainError> {
        let dir = cfg.cache.as_ref().ok_or_else(|| {
            TrainError::Data("[data] kind = \"latents\" needs cache = \"<folder>\"".into())
        })?;
        let cache = LatentCache::open(dir).map_err(cache_error)?;
        if cache.is_empty() {
            return Err(TrainError::Data(format!(
                "latent cache {} holds no clips",
                dir.display()
            )));
        }
        let (train, val) = split(cache.len());
        let group = |among: &[usize]| -> Buckets { cache.buckets(among).into_iter().collect() };
        let buckets = [group(&train), group(&val)];
        for (name, b) in [("train", &buckets[0]), ("held-out", &buckets[1])] {
            let counts: Vec<String> = b
                .iter()
                .map(|((t, h, w), v)| format!("{t}×{h}×{w}: {}", v.len()))
                .collect();
            tracing::info!(split = name, buckets = %counts.join(", "), "latent clips by size (frames×h×w)");
        }
        Ok(Dataset::Latents {
            cache: std::sync::Arc::new(cache),
            train,
            val,
            buckets,
        })
    }

    /// Refuses data the model cannot read: a latent cache whose channels, caption width or
    /// caption length differ from the model's, whose clips' sizes the patch does not divide, or
    /// whose largest batches (`batch` clips of one size) exceed the activation limit that
    /// `[data]` sizes are held to.
    pub fn check_model(&self, m: &StdiTConfig, batch: usize) -> Result<(), TrainError> {
        let Dataset::Latents { cache, .. } = self else {
            return Ok(());
        };
        cache
            .check_model(m.channels, m.text_dim, m.text_len)
            .map_err(cache_error)?;
        let all: Vec<usize> = (0..cache.len()).collect();
        for (t, h, w) in cache.buckets(&all).into_keys() {
            let index = cache.dir.join("index.json");
            if !h.is_multiple_of(m.patch) || !w.is_multiple_of(m.patch) {
                return Err(TrainError::Data(format!(
                    "{}: clips of {t} frames of {h}×{w} latents, which the model's patch {} does \
                     not divide",
                    index.display(),
                    m.patch
                )));
            }
            let values = (batch * t * (h / m.patch) * (w / m.patch)) as u64 * m.hidden as u64;
            if values > crate::limits::MAX_ACTIVATION_VALUES {
                return Err(TrainError::Data(format!(
                    "{}: a batch of {batch} clips of {t} frames of {h}×{w} latents at hidden {} \
                     makes activations of {values} values, above the limit {}",
                    index.display(),
                    m.hidden,
                    crate::limits::MAX_ACTIVATION_VALUES
                )));
            }
        }
        Ok(())
    }

    /// (T, C, H, W) of samples: the model's, or for a latent run the size of its largest
    /// training bucket (`m.channels` = the latents', checked by [`Dataset::check_model`]).
    pub fn sample_shape(&self, m: &StdiTConfig) -> [usize; 4] {
        match self.buckets(Split::Train).iter().max_by_key(|b| b.1.len()) {
            Some(((t, h, w), _)) => [*t, m.channels, *h, *w],
            None => [m.frames, m.channels, m.height, m.width],
        }
    }

    /// The latent cache, for latent runs.
    pub fn latents(&self) -> Option<&std::sync::Arc<LatentCache>> {
        match self {
            Dataset::Latents { cache, .. } => Some(cache),
            _ => None,
        }
    }

    /// A split's clips of a latent run grouped by size (cache indices; none for pixel data).
    pub fn buckets(&self, split: Split) -> &[crate::latent::Bucket] {
        match (self, split) {
            (Dataset::Latents { buckets, .. }, Split::Train) => &buckets[0],
            (Dataset::Latents { buckets, .. }, Split::Val) => &buckets[1],
            _ => &[],
        }
    }

    pub fn len(&self, split: Split) -> usize {
        match (self, split) {
            (Dataset::Synthetic(w), s) => w.len(s),
            (Dataset::Cache { train, .. }, Split::Train) => train.len(),
            (Dataset::Cache { val, .. }, Split::Val) => val.len(),
            (Dataset::Latents { train, .. }, Split::Train) => train.len(),
            (Dataset::Latents { val, .. }, Split::Val) => val.len(),
        }
    }

    pub fn is_empty(&self, split: Split) -> bool {
        self.len(split) == 0
    }

    /// Clip `i` (0..len) of a split.
    pub fn item(&self, split: Split, i: usize) -> Item {
        match self {
            Dataset::Synthetic(w) => {
                let c = w.clip(split, i as u64);
                Item {
                    video: c.video,
                    caption: c.caption,
                }
            }
            Dataset::Cache { cache, train, val } => {
                let j = match split {
                    Split::Train => train[i],
                    Split::Val => val[i],
                };
                Item {
                    video: cache.video(j),
                    caption: cache.caption(j).to_string(),
                }
            }
            Dataset::Latents {
                cache, train, val, ..
            } => {
                // The latent itself, not pixels in [0, 1]: batches and the validation loss
                // read latents through `latent::latents_tensor`, and every pixel reader
                // (evaluation, probes, the lab's CKA) refuses latent runs first.
                let j = match split {
                    Split::Train => train[i],
                    Split::Val => val[i],
                };
                let e = cache.entry(j);
                let c = cache.index.latent_channels;
                Item {
                    video: Video::from_data(
                        e.frames,
                        c,
                        e.height,
                        e.width,
                        cache.clip(j).latent.clone(),
                    ),
                    caption: e.caption.clone(),
                }
            }
        }
    }

    /// The synthetic world, when the data is synthetic (ground truth for text alignment).
    pub fn world(&self) -> Option<&World> {
        match self {
            Dataset::Synthetic(w) => Some(w),
            Dataset::Cache { .. } | Dataset::Latents { .. } => None,
        }
    }
}

/// Every word the data's captions use (the text encoder's vocabulary). For a cache it is read
/// from the index alone.
pub fn vocabulary(cfg: &WorldConfig) -> Result<Vec<String>, TrainError> {
    let dir = match (&cfg.cache, &cfg.csv) {
        (Some(d), _) => d.clone(),
        (None, Some(csv)) => csv_cache_dir(csv, cfg.frames, cfg.size),
        (None, None) => return Ok(cfg.vocabulary()),
    };
    let idx = freezeframe_data::real::cache::CacheIndex::load(&dir).map_err(cache_error)?;
    let mut v: Vec<String> = idx
        .entries
        .iter()
        .flat_map(|e| freezeframe_model::text::words(&e.text))
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}
