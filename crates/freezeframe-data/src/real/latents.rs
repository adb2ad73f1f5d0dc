//! The latent cache (issue 27): VAE latents of clips and text-encoder features of their
//! captions, precomputed by `tools/latents/make_cache.py` (diffusers' `AutoencoderKL` and a
//! text encoder), so that a model imported with a latent input trains without either.
//!
//! A folder: `index.json` ([`LatentIndex`]) and safetensors shards named by the FNV-1a 64 hash
//! of their bytes ([`content_hash`], as the clip cache names its shards), holding per clip
//! `<key>.latent` f32 [T, C, h, w], `<key>.caption` f32 [L, D] and `<key>.mask` u8 [L]
//! (1 = a token). Clips of several (T, h, w) sizes share a cache; training draws each batch from
//! one size ([`LatentCache::buckets`]).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::RealError;
use super::cache::{content_hash, is_shard_name};

pub const LATENT_FORMAT: u32 = 1;
const KIND: &str = "freezeframe-latents";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentIndex {
    pub format: u32,
    /// Always `freezeframe-latents` (a clip cache's index is refused by name).
    pub kind: String,
    /// C of every latent: the model's `in_channels`.
    pub latent_channels: usize,
    /// D of every caption feature: the model's `text_dim` (PixArt's `caption_channels`).
    pub caption_channels: usize,
    /// L: caption tokens stored per clip (padded), at most the model's `text_len`.
    pub text_len: usize,
    /// The VAE's scaling factor the latents were multiplied by (to decode: divide by it).
    pub scaling_factor: f64,
    /// What made the latents and the features (for the record).
    pub vae: String,
    pub text_encoder: String,
    pub shards: Vec<LatentShard>,
    pub clips: Vec<LatentEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentShard {
    pub file: String,
    /// [`content_hash`] of the file's bytes as written.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentEntry {
    /// Index into [`LatentIndex::shards`].
    pub shard: usize,
    pub key: String,
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub caption: String,
    /// Real (unpadded) caption tokens.
    pub tokens: usize,
}

/// One clip in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentClip {
    /// [T, C, h, w].
    pub latent: Vec<f32>,
    /// [L, D].
    pub features: Vec<f32>,
    /// [L]; true = a token, false = padding.
    pub mask: Vec<bool>,
}

/// (frames, height, width) of a bucket.
pub type BucketShape = (usize, usize, usize);

/// A latent cache, checked and loaded into memory.
#[derive(Debug, Clone)]
pub struct LatentCache {
    pub dir: PathBuf,
    pub index: LatentIndex,
    /// [`content_hash`] of `index.json`, which lists every shard's hash: the cache's identity,
    /// recorded by a run so that resuming on a rewritten cache is refused.
    pub identity: String,
    clips: Vec<LatentClip>,
}

fn cache_err(path: &Path, message: impl Into<String>) -> RealError {
    RealError::Cache {
        path: path.display().to_string(),
        message: message.into(),
    }
}

impl LatentIndex {
    pub fn load(dir: &Path) -> Result<Self, RealError> {
        Self::load_text(dir).map(|(idx, _)| idx)
    }

    /// [`LatentIndex::load`], with the text it was read from (the cache's identity is its hash).
    fn load_text(dir: &Path) -> Result<(Self, String), RealError> {
        let p = dir.join("index.json");
        let text = freezeframe_fs::read_text(&p).map_err(|e| cache_err(&p, e.to_string()))?;
        let idx: LatentIndex = serde_json::from_str(&text)
            .map_err(|e| cache_err(&p, format!("not a latent cache index: {e}")))?;
        if idx.kind != KIND || idx.format != LATENT_FORMAT {
            return Err(cache_err(
                &p,
                format!(
                    "kind {:?} format {} (this build reads {KIND:?} format {LATENT_FORMAT})",
                    idx.kind, idx.format
                ),
            ));
        }
        if let Some(s) = idx.shards.iter().find(|s| !is_shard_name(&s.file)) {
            return Err(cache_err(
                &p,
                format!(
                    "shard name {:?} is not 16 hex digits + .safetensors",
                    s.file
                ),
            ));
        }
        if let Some(c) = idx.clips.iter().find(|c| {
            c.tokens == 0 || c.tokens > idx.text_len || c.frames * c.height * c.width == 0
        }) {
            return Err(cache_err(
                &p,
                format!(
                    "clip {} has {} frames of {}×{} and {} caption tokens (of {}): every clip needs \
                     a frame, a pixel and a token",
                    c.key, c.frames, c.height, c.width, c.tokens, idx.text_len
                ),
            ));
        }
        if let Some(c) = idx.clips.iter().find(|c| c.shard >= idx.shards.len()) {
            return Err(cache_err(
                &p,
                format!(
                    "clip {} names shard {}, of {}",
                    c.key,
                    c.shard,
                    idx.shards.len()
                ),
            ));
        }
        Ok((idx, text))
    }
}

impl LatentCache {
    /// Reads the index and every shard, checking each shard's hash and each clip's shapes
    /// against the index.
    pub fn open(dir: &Path) -> Result<Self, RealError> {
        // The identity hashes the very bytes that were parsed.
        let (index, text) = LatentIndex::load_text(dir)?;
        let identity = content_hash(text.as_bytes());
        let mut clips: Vec<Option<LatentClip>> = vec![None; index.clips.len()];
        for (s, shard) in index.shards.iter().enumerate() {
            let p = dir.join(&shard.file);
            let bytes = std::fs::read(&p).map_err(|e| cache_err(&p, e.to_string()))?;
            let hash = content_hash(&bytes);
            if hash != shard.hash {
                return Err(cache_err(
                    &p,
                    format!(
                        "the shard's content hash is {hash}, the index recorded {}: the file \
                         changed after the cache was written; write the cache again",
                        shard.hash
                    ),
                ));
            }
            let st = SafeTensors::deserialize(&bytes)
                .map_err(|e| cache_err(&p, format!("corrupt shard: {e}")))?;
            for (i, e) in index.clips.iter().enumerate().filter(|(_, c)| c.shard == s) {
                clips[i] = Some(read_clip(&st, e, &index, &p)?);
            }
        }
        // Every clip names a shard (checked by `load`), so none is left out here.
        let clips = clips.into_iter().flatten().collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
            identity,
            clips,
        })
    }

    /// Refuses a cache that does not fit the model, naming the index and the setting.
    pub fn check_model(
        &self,
        in_channels: usize,
        text_dim: usize,
        text_len: usize,
    ) -> Result<(), RealError> {
        let p = self.dir.join("index.json");
        let i = &self.index;
        if i.latent_channels != in_channels {
            return Err(cache_err(
                &p,
                format!(
                    "latents have {} channels, the model's [model] in_channels is {in_channels}",
                    i.latent_channels
                ),
            ));
        }
        if i.caption_channels != text_dim {
            return Err(cache_err(
                &p,
                format!(
                    "caption features have {} channels, the model's [model] text_dim (caption \
                     channels) is {text_dim}",
                    i.caption_channels
                ),
            ));
        }
        // Features are stored L rows long; a model reading fewer rows would drop some, and a
        // mask need not be a prefix (left padding), so the stored length itself must fit.
        if i.text_len > text_len {
            let longest = i.clips.iter().map(|c| c.tokens).max().unwrap_or(0);
            return Err(cache_err(
                &p,
                format!(
                    "captions are stored {} tokens long (the longest has {longest} tokens), more \
                     than the model's [model] text_len = {text_len}",
                    i.text_len
                ),
            ));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.clips.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clips.is_empty()
    }

    pub fn clip(&self, i: usize) -> &LatentClip {
        &self.clips[i]
    }

    pub fn entry(&self, i: usize) -> &LatentEntry {
        &self.index.clips[i]
    }

    /// The clips `among` (indices) grouped by (frames, height, width).
    pub fn buckets(&self, among: &[usize]) -> BTreeMap<BucketShape, Vec<usize>> {
        let mut m: BTreeMap<BucketShape, Vec<usize>> = BTreeMap::new();
        for &i in among {
            let c = &self.index.clips[i];
            m.entry((c.frames, c.height, c.width)).or_default().push(i);
        }
        m
    }
}

fn read_clip(
    st: &SafeTensors,
    e: &LatentEntry,
    index: &LatentIndex,
    path: &Path,
) -> Result<LatentClip, RealError> {
    let (c, d, l) = (
        index.latent_channels,
        index.caption_channels,
        index.text_len,
    );
    let tensor = |name: &str, dtype: Dtype, shape: &[usize]| {
        let key = format!("{}.{name}", e.key);
        let t = st
            .tensor(&key)
            .map_err(|err| cache_err(path, format!("{key}: {err}")))?;
        if t.dtype() != dtype || t.shape() != shape {
            return Err(cache_err(
                path,
                format!(
                    "{key} is {:?} {:?}, the index says {dtype:?} {shape:?}",
                    t.dtype(),
                    t.shape()
                ),
            ));
        }
        Ok(t.data().to_vec())
    };
    let f32s = |b: Vec<u8>| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect()
    };
    let latent = f32s(tensor(
        "latent",
        Dtype::F32,
        &[e.frames, c, e.height, e.width],
    )?);
    let features = f32s(tensor("caption", Dtype::F32, &[l, d])?);
    let mask: Vec<bool> = tensor("mask", Dtype::U8, &[l])?
        .into_iter()
        .map(|m| m != 0)
        .collect();
    if let Some(i) = latent.iter().chain(&features).position(|v| !v.is_finite()) {
        return Err(cache_err(
            path,
            format!("clip {}: value {i} is not finite", e.key),
        ));
    }
    if mask.iter().filter(|&&m| m).count() != e.tokens {
        return Err(cache_err(
            path,
            format!(
                "clip {}: the mask disagrees with the index's {} tokens",
                e.key, e.tokens
            ),
        ));
    }
    Ok(LatentClip {
        latent,
        features,
        mask,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed fixture (`tools/latents/make_cache.py --synthetic`).
    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../freezeframe-train/tests/fixtures/latents")
    }

    fn copy_fixture(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ff-latents-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for e in std::fs::read_dir(fixture()).unwrap().flatten() {
            std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
        }
        d
    }

    #[test]
    fn the_fixture_opens_with_two_sizes_and_fits_its_model() {
        let c = LatentCache::open(&fixture()).unwrap();
        assert_eq!(c.len(), 12);
        let all: Vec<usize> = (0..c.len()).collect();
        let b = c.buckets(&all);
        assert_eq!(
            b.keys().copied().collect::<Vec<_>>(),
            [(2, 8, 16), (4, 8, 8)]
        );
        assert_eq!(b[&(4, 8, 8)].len(), 8);
        assert_eq!(c.clip(0).latent.len(), 2 * 4 * 8 * 16);
        assert_eq!(c.clip(0).features.len(), 12 * 32);
        assert_eq!(c.entry(0).caption, "a red square moves left");
        c.check_model(4, 32, 12).unwrap();
    }

    #[test]
    fn a_misfit_model_or_a_changed_shard_is_refused_naming_the_file() {
        let c = LatentCache::open(&fixture()).unwrap();
        let e = c.check_model(3, 32, 12).unwrap_err().to_string();
        assert!(
            e.contains("index.json") && e.contains("in_channels is 3"),
            "{e}"
        );
        let e = c.check_model(4, 16, 12).unwrap_err().to_string();
        assert!(e.contains("text_dim (caption channels) is 16"), "{e}");
        let e = c.check_model(4, 32, 11).unwrap_err().to_string();
        assert!(
            e.contains("stored 12 tokens") && e.contains("text_len = 11"),
            "{e}"
        );
        c.check_model(4, 32, 20).unwrap();

        let d = copy_fixture("changed");
        let shard = d.join(&c.index.shards[1].file);
        let mut bytes = std::fs::read(&shard).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        std::fs::write(&shard, bytes).unwrap();
        let e = LatentCache::open(&d).unwrap_err().to_string();
        assert!(
            e.contains(&c.index.shards[1].file) && e.contains("content hash"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_clip_cache_or_an_edited_index_is_refused() {
        let d = copy_fixture("edited");
        let p = d.join("index.json");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("freezeframe-latents", "clips")).unwrap();
        let e = LatentCache::open(&d).unwrap_err().to_string();
        assert!(e.contains("kind \"clips\""), "{e}");
        std::fs::write(&p, text.replace("\"frames\": 4", "\"frames\": 5")).unwrap();
        let e = LatentCache::open(&d).unwrap_err().to_string();
        assert!(e.contains(".latent is F32 [4, 4, 8, 8]"), "{e}");
        std::fs::write(
            &p,
            text.replace("\"latent_channels\"", "\"latent_chanels\""),
        )
        .unwrap();
        let e = LatentCache::open(&d).unwrap_err().to_string();
        assert!(e.contains("latent_chanels"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
