//! The clip cache: `index.json` plus one safetensors shard per source video holding its clips
//! as `u8` [K, T, H, W, 3] (a quarter of f32's size; values are 8-bit after decoding anyway).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use super::RealError;
use crate::video::Video;

pub const CACHE_FORMAT: u32 = 1;

/// How clips are cut; a cache built with other settings is rebuilt, not mixed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareSettings {
    pub frames: usize,
    pub size: usize,
    /// Resample to this rate first; `None` keeps the source's frames (then `stride` applies).
    pub fps: Option<f32>,
    pub stride: usize,
    pub clips_per_video: usize,
}

/// One source video in the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub source: PathBuf,
    /// Size and modification time identify an unchanged source on re-runs.
    pub source_bytes: u64,
    pub source_mtime_ns: u128,
    pub text: String,
    /// Shard file name inside `clips/`.
    pub shard: String,
    /// [`content_hash`] of the shard's bytes as written, checked when the shard is reused or
    /// opened. `None` in caches made before the hash was kept: such shards are decoded again
    /// by `data prepare` and opened unverified.
    #[serde(default)]
    pub shard_hash: Option<String>,
    pub clips: usize,
    /// Frames after resampling, before cutting clips.
    pub decoded_frames: usize,
    pub source_width: usize,
    pub source_height: usize,
    pub source_fps: Option<f32>,
    /// First frame of each clip.
    pub starts: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheIndex {
    pub format: u32,
    pub settings: PrepareSettings,
    pub entries: Vec<CacheEntry>,
}

impl CacheIndex {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("index.json")
    }

    pub fn load(dir: &Path) -> Result<Self, RealError> {
        let p = Self::path(dir);
        let text = freezeframe_fs::read_text(&p).map_err(|e| RealError::Cache {
            path: p.display().to_string(),
            message: e.to_string(),
        })?;
        let idx: CacheIndex = serde_json::from_str(&text).map_err(|e| RealError::Cache {
            path: p.display().to_string(),
            message: format!("corrupt index: {e}"),
        })?;
        if idx.format != CACHE_FORMAT {
            return Err(RealError::Cache {
                path: p.display().to_string(),
                message: format!("format {} (this build reads {CACHE_FORMAT})", idx.format),
            });
        }
        // Shard names are joined to `clips/` and may be deleted by `data prepare`: only the
        // names this tool writes are accepted, so an edited index cannot point outside.
        if let Some(e) = idx.entries.iter().find(|e| !is_shard_name(&e.shard)) {
            return Err(RealError::Cache {
                path: p.display().to_string(),
                message: format!(
                    "shard name {:?} is not one this tool writes (16 hex digits + .safetensors)",
                    e.shard
                ),
            });
        }
        Ok(idx)
    }

    /// Written through a temporary file and a rename, so a crash never leaves half an index.
    pub fn save(&self, dir: &Path) -> Result<(), RealError> {
        let p = Self::path(dir);
        let tmp = dir.join("index.json.tmp");
        let io = |e: std::io::Error| RealError::Io {
            path: p.display().to_string(),
            message: e.to_string(),
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| RealError::Cache {
            path: p.display().to_string(),
            message: e.to_string(),
        })?;
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &p).map_err(io)
    }
}

/// Whether `name` is a shard name as [`content_hash`] makes them: 16 lowercase hex digits and
/// `.safetensors`.
pub fn is_shard_name(name: &str) -> bool {
    name.strip_suffix(".safetensors").is_some_and(|h| {
        h.len() == 16
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// FNV-1a 64 of `bytes` as 16 hex digits: shard names and shard contents. Not a defence
/// against tampering — it catches truncated, overwritten or bit-rotted shards.
pub fn content_hash(bytes: &[u8]) -> String {
    use std::hash::Hasher as _;
    let mut h = fnv::FnvHasher::default();
    h.write(bytes);
    format!("{:016x}", h.finish())
}

/// Writes one shard (atomically: temp file, then rename); returns its [`content_hash`].
pub fn write_shard(
    path: &Path,
    clips: &[Vec<u8>],
    frames: usize,
    size: usize,
) -> Result<String, RealError> {
    let data: Vec<u8> = clips.concat();
    let shape = vec![clips.len(), frames, size, size, 3];
    let io = |e: String| RealError::Io {
        path: path.display().to_string(),
        message: e,
    };
    let view = TensorView::new(Dtype::U8, shape, &data).map_err(|e| io(e.to_string()))?;
    let bytes = safetensors::serialize([("clips", view)], None).map_err(|e| io(e.to_string()))?;
    let hash = content_hash(&bytes);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| io(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| io(e.to_string()))?;
    Ok(hash)
}

/// A prepared cache, loaded into memory (8×32×32 clips are 24 KiB each).
#[derive(Debug, Clone)]
pub struct ClipCache {
    pub dir: PathBuf,
    pub index: CacheIndex,
    /// (caption, [T, H, W, 3] bytes) per clip, in index order.
    clips: Vec<(String, Vec<u8>)>,
}

impl ClipCache {
    pub fn open(dir: &Path) -> Result<Self, RealError> {
        let index = CacheIndex::load(dir)?;
        let s = &index.settings;
        let per_clip = s.frames * s.size * s.size * 3;
        let mut clips = Vec::new();
        for e in &index.entries {
            let p = dir.join("clips").join(&e.shard);
            let err = |m: String| RealError::Cache {
                path: p.display().to_string(),
                message: m,
            };
            let bytes = std::fs::read(&p).map_err(|e| err(e.to_string()))?;
            if let Some(h) = &e.shard_hash
                && *h != content_hash(&bytes)
            {
                return Err(err(format!(
                    "the shard's content hash is {}, the index recorded {h}: the file changed \
                     after `data prepare` wrote it; run `data prepare` again",
                    content_hash(&bytes)
                )));
            }
            let st =
                SafeTensors::deserialize(&bytes).map_err(|e| err(format!("corrupt shard: {e}")))?;
            let t = st
                .tensor("clips")
                .map_err(|e| err(format!("corrupt shard: {e}")))?;
            if t.dtype() != Dtype::U8 || t.shape() != [e.clips, s.frames, s.size, s.size, 3] {
                return Err(err(format!(
                    "shard holds {:?} {:?}, the index expects u8 {:?}",
                    t.dtype(),
                    t.shape(),
                    [e.clips, s.frames, s.size, s.size, 3]
                )));
            }
            for k in 0..e.clips {
                clips.push((
                    e.text.clone(),
                    t.data()[k * per_clip..(k + 1) * per_clip].to_vec(),
                ));
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
            clips,
        })
    }

    pub fn len(&self) -> usize {
        self.clips.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clips.is_empty()
    }

    pub fn caption(&self, i: usize) -> &str {
        &self.clips[i].0
    }

    /// Clip `i` as a [T, 3, H, W] video in [0, 1].
    pub fn video(&self, i: usize) -> Video {
        let s = &self.index.settings;
        let (t, n) = (s.frames, s.size);
        let src = &self.clips[i].1;
        let mut v = Video::zeros(t, 3, n, n);
        for f in 0..t {
            for y in 0..n {
                for x in 0..n {
                    for c in 0..3 {
                        let b = src[((f * n + y) * n + x) * 3 + c];
                        let j = v.idx(f, c, y, x);
                        v.data[j] = b as f32 / 255.0;
                    }
                }
            }
        }
        v
    }

    /// Frames per second of the clips: the resampling rate, or the (first) source's rate
    /// divided by the stride; `None` when the sources did not say.
    pub fn fps(&self) -> Option<f32> {
        let s = &self.index.settings;
        s.fps.or_else(|| {
            let src = self.index.entries.first()?.source_fps?;
            Some(src / s.stride as f32)
        })
    }

    /// Number of clips per caption (how many distinct prompts the cache has).
    pub fn captions(&self) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for (c, _) in &self.clips {
            *m.entry(c.as_str()).or_default() += 1;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_this_tool_writes_are_shard_names() {
        assert!(is_shard_name(&format!(
            "{}.safetensors",
            content_hash(b"x")
        )));
        for bad in [
            "../../x.safetensors",
            "0123456789abcdef",
            "0123456789ABCDEF.safetensors",
            "0123456789abcde.safetensors",
            "/etc/passwd",
        ] {
            assert!(!is_shard_name(bad), "{bad}");
        }
    }
}
