//! Where training clips come from: the synthetic world (default) or a clip cache of real
//! footage (`[data] cache = "DIR"` or `[data] csv = "list.csv"`).
use std::path::{Path, PathBuf};

use freezeframe_data::real::{ClipCache, PrepareSettings, prepare};
use freezeframe_data::{Split, Video, World, WorldConfig};

use crate::error::TrainError;

pub enum Dataset {
    Synthetic(World),
    /// A cache split by clip: every tenth clip (index 9, 19, …) is held out.
    Cache {
        cache: ClipCache,
        train: Vec<usize>,
        val: Vec<usize>,
    },
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
        let val: Vec<usize> = (0..n).filter(|i| i % 10 == 9).collect();
        let train: Vec<usize> = (0..n).filter(|i| i % 10 != 9).collect();
        // A tiny cache still validates on something.
        let val = if val.is_empty() { vec![n - 1] } else { val };
        Ok(Dataset::Cache { cache, train, val })
    }

    pub fn len(&self, split: Split) -> usize {
        match (self, split) {
            (Dataset::Synthetic(w), s) => w.len(s),
            (Dataset::Cache { train, .. }, Split::Train) => train.len(),
            (Dataset::Cache { val, .. }, Split::Val) => val.len(),
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
        }
    }

    /// The synthetic world, when the data is synthetic (ground truth for text alignment).
    pub fn world(&self) -> Option<&World> {
        match self {
            Dataset::Synthetic(w) => Some(w),
            Dataset::Cache { .. } => None,
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
