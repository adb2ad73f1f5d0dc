//! `freezeframe data prepare`: decode a CSV list of videos into a clip cache, in parallel,
//! incrementally, never stopping on a bad input.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, UNIX_EPOCH};

use rayon::prelude::*;

use super::RealError;
use super::cache::{
    CACHE_FORMAT, CacheEntry, CacheIndex, PrepareSettings, content_hash, write_shard,
};
use super::csv_list::{ListEntry, Skip, read_list};
use super::ffmpeg;

#[derive(Debug, Clone)]
pub struct PrepareReport {
    pub dir: PathBuf,
    pub rows: usize,
    /// Videos decoded by this call.
    pub decoded: usize,
    /// Videos whose clips were kept from an earlier call (unchanged source and settings).
    pub reused: usize,
    pub clips: usize,
    pub skipped: Vec<Skip>,
    pub seconds: f64,
}

impl PrepareReport {
    pub fn summary(&self) -> String {
        format!(
            "{} rows: {} videos decoded, {} unchanged (reused), {} skipped → {} clips in {} ({:.1} s){}",
            self.rows,
            self.decoded,
            self.reused,
            self.skipped.len(),
            self.clips,
            self.dir.display(),
            self.seconds,
            if self.skipped.is_empty() {
                String::new()
            } else {
                format!(
                    "; skipped inputs listed in {}",
                    self.dir.join("skipped.csv").display()
                )
            }
        )
    }
}

fn check(s: &PrepareSettings) -> Result<(), RealError> {
    let bad = |m: String| Err(RealError::Settings(m));
    if s.frames == 0 {
        return bad("--frames must be at least 1".into());
    }
    if s.size < 8 {
        return bad(format!("--size {} is below 8 pixels", s.size));
    }
    if s.stride == 0 || s.clips_per_video == 0 {
        return bad("--stride and --clips-per-video must be at least 1".into());
    }
    if let Some(f) = s.fps
        && !(f.is_finite() && f > 0.0)
    {
        return bad(format!("--fps {f} must be positive"));
    }
    Ok(())
}

/// Evenly spread starts of `k` clips of `t` frames in `n` frames (one clip: the middle one).
pub fn clip_starts(n: usize, t: usize, k: usize) -> Vec<usize> {
    if n < t {
        return Vec::new();
    }
    let span = n - t;
    let mut v: Vec<usize> = if k <= 1 {
        vec![span / 2]
    } else {
        (0..k)
            .map(|i| ((i * span) as f64 / (k - 1) as f64).round() as usize)
            .collect()
    };
    v.dedup();
    v
}

/// A stable shard name from the source identity and the settings.
fn shard_name(e: &ListEntry, bytes: u64, mtime: u128, s: &PrepareSettings) -> String {
    let key = format!("{}|{bytes}|{mtime}|{s:?}", e.path.display());
    format!("{}.safetensors", content_hash(key.as_bytes()))
}

enum Outcome {
    Reused(CacheEntry),
    Decoded(CacheEntry),
    Skipped(Skip),
}

/// Whether the shard of an unchanged source (same identity and settings) can be reused: its
/// bytes are still the ones written. A shard from a build that kept no hash is decoded again.
fn shard_intact(out: &Path, o: &CacheEntry) -> bool {
    let path = out.join("clips").join(&o.shard);
    let intact = match (&o.shard_hash, std::fs::read(&path)) {
        (Some(h), Ok(bytes)) => *h == content_hash(&bytes),
        _ => false,
    };
    if !intact {
        tracing::warn!(shard = %path.display(), "shard missing, changed or unverifiable; decoding again");
    }
    intact
}

/// Clips of `frames` decoded frames, every `stride`-th unless resampled, cut at evenly
/// spaced starts; `Err` with the reason when there are too few frames.
fn cut_clips(
    frames: &[Vec<u8>],
    s: &PrepareSettings,
) -> Result<(Vec<usize>, Vec<Vec<u8>>), String> {
    let frames: Vec<&Vec<u8>> = if s.fps.is_none() {
        frames.iter().step_by(s.stride).collect()
    } else {
        frames.iter().collect()
    };
    let starts = clip_starts(frames.len(), s.frames, s.clips_per_video);
    if starts.is_empty() {
        return Err(format!(
            "too few frames: {} after resampling, a clip needs {}",
            frames.len(),
            s.frames
        ));
    }
    let clips = starts
        .iter()
        .map(|&st| {
            frames[st..st + s.frames]
                .iter()
                .flat_map(|f| f.iter().copied())
                .collect()
        })
        .collect();
    Ok((starts, clips))
}

fn process(
    e: &ListEntry,
    out: &Path,
    s: &PrepareSettings,
    old: Option<&CacheEntry>,
) -> Result<Outcome, RealError> {
    let skip = |reason: String| {
        Ok(Outcome::Skipped(Skip {
            line: e.line,
            path: e.path.display().to_string(),
            reason,
        }))
    };
    let meta = match std::fs::metadata(&e.path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return skip("not a file".into()),
        Err(err) => return skip(format!("missing or unreadable file: {err}")),
    };
    let bytes = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let shard = shard_name(e, bytes, mtime, s);
    if let Some(o) = old.filter(|o| o.shard == shard && shard_intact(out, o)) {
        return Ok(Outcome::Reused(CacheEntry {
            text: e.text.clone(),
            ..o.clone()
        }));
    }
    let probe = match ffmpeg::probe(&e.path)? {
        Ok(p) => p,
        Err(reason) => return skip(reason),
    };
    let decoded = match ffmpeg::decode(&e.path, s.size, s.fps)? {
        Ok(d) => d,
        Err(reason) => return skip(reason),
    };
    // A file cut short can decode without an error up to where it ends; the header's frame
    // count tells.
    if let Some(declared) = probe.frames.or(e.num_frames).filter(|n| *n > 0) {
        let expected = match (s.fps, probe.fps) {
            (Some(f), Some(src)) => declared as f32 * f / src,
            _ => declared as f32,
        };
        if (decoded.frames.len() as f32) < 0.9 * expected - 1.0 {
            return skip(format!(
                "truncated: decoded {} of the {} frames its header declares",
                decoded.frames.len(),
                expected.round()
            ));
        }
    }
    let (starts, clips) = match cut_clips(&decoded.frames, s) {
        Ok(c) => c,
        Err(reason) => return skip(reason),
    };
    let shard_hash = write_shard(&out.join("clips").join(&shard), &clips, s.frames, s.size)?;
    Ok(Outcome::Decoded(CacheEntry {
        shard_hash: Some(shard_hash),
        source: e.path.clone(),
        source_bytes: bytes,
        source_mtime_ns: mtime,
        text: e.text.clone(),
        shard,
        clips: clips.len(),
        decoded_frames: decoded.frames.len(),
        source_width: probe.width,
        source_height: probe.height,
        source_fps: probe.fps,
        starts,
    }))
}

/// The cache index already in `out`, or — for a new or empty folder ([`lock_cache`] refused
/// anything else) — a new empty one, written at once so the folder carries the cache's marker
/// (`index.json` with its format version) before any shard.
fn previous_index(out: &Path, settings: &PrepareSettings) -> Result<CacheIndex, RealError> {
    if CacheIndex::path(out).is_file() {
        return CacheIndex::load(out);
    }
    std::fs::create_dir_all(out.join("clips")).map_err(|e| RealError::Io {
        path: out.display().to_string(),
        message: e.to_string(),
    })?;
    let index = CacheIndex {
        format: CACHE_FORMAT,
        settings: settings.clone(),
        entries: Vec::new(),
    };
    index.save(out)?;
    Ok(index)
}

/// Whether `out` is missing or holds nothing but a lock file.
fn is_empty(out: &Path) -> std::io::Result<bool> {
    match std::fs::read_dir(out) {
        Ok(rd) => Ok(rd.flatten().all(|e| e.file_name() == LOCK_FILE)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

/// The cache folder's lock file: one `data prepare` (or training run preparing a CSV) at a time.
const LOCK_FILE: &str = ".lock";

/// Refuses a folder that is not a cache before anything is written into it, then takes the
/// folder's lock (held until the returned file is dropped).
fn lock_cache(out: &Path) -> Result<std::fs::File, RealError> {
    let io = |e: std::io::Error| RealError::Io {
        path: out.display().to_string(),
        message: e.to_string(),
    };
    if !is_empty(out).map_err(io)? {
        // Read-only check first: a foreign folder must not even get a lock file.
        CacheIndex::load(out).map_err(|e| RealError::Cache {
            path: out.display().to_string(),
            message: format!(
                "the folder is not empty and is not a clip cache this tool can update ({e}); choose an empty or new folder"
            ),
        })?;
    }
    std::fs::create_dir_all(out).map_err(io)?;
    crate::lock::lock_file(&out.join(LOCK_FILE)).map_err(|e| RealError::Cache {
        path: out.display().to_string(),
        message: match e {
            crate::lock::LockError::Held { pid } => {
                format!("in use by another process (pid {pid}); wait for it or stop it")
            }
            crate::lock::LockError::Io(e) => format!("cannot lock: {e}"),
        },
    })
}

/// Prepares `csv` into the cache folder `out`; `progress(done, total)` is called as videos
/// finish. Bad inputs are skipped, counted and listed in `out/skipped.csv`; an empty result is
/// an error.
pub fn prepare(
    csv: &Path,
    out: &Path,
    settings: &PrepareSettings,
    progress: impl Fn(usize, usize) + Sync,
) -> Result<PrepareReport, RealError> {
    let started = Instant::now();
    check(settings)?;
    ffmpeg::check_available()?;
    let (entries, row_skips) = read_list(csv)?;
    let rows = entries.len() + row_skips.len();
    let _lock = lock_cache(out)?;
    let previous = previous_index(out, settings)?;
    std::fs::create_dir_all(out.join("clips")).map_err(|e| RealError::Io {
        path: out.display().to_string(),
        message: e.to_string(),
    })?;
    // Shards this cache's own index lists: the only files a re-run may ever delete.
    let listed: Vec<String> = previous.entries.iter().map(|e| e.shard.clone()).collect();
    let old: HashMap<PathBuf, CacheEntry> = if previous.settings == *settings {
        previous
            .entries
            .into_iter()
            .map(|e| (e.source.clone(), e))
            .collect()
    } else {
        HashMap::new()
    };
    let done = AtomicUsize::new(0);
    let total = entries.len();
    let outcomes: Vec<Result<Outcome, RealError>> = entries
        .par_iter()
        .map(|e| {
            let r = process(e, out, settings, old.get(&e.path));
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            r
        })
        .collect();
    let mut kept = Vec::new();
    // Rows the list already refused come first, then the videos that failed to decode.
    let mut skipped: Vec<Skip> = row_skips;
    let (mut decoded, mut reused) = (0, 0);
    for o in outcomes {
        match o? {
            Outcome::Reused(e) => {
                reused += 1;
                kept.push(e);
            }
            Outcome::Decoded(e) => {
                decoded += 1;
                kept.push(e);
            }
            Outcome::Skipped(s) => skipped.push(s),
        }
    }
    skipped.sort_by_key(|s| s.line);
    write_skipped(&out.join("skipped.csv"), &skipped)?;
    // Shards the old index listed that no entry refers to any more (changed or removed
    // sources, other settings). Files the index never listed are not ours: left alone.
    let live: std::collections::HashSet<&str> = kept.iter().map(|e| e.shard.as_str()).collect();
    for name in listed.iter().filter(|n| !live.contains(n.as_str())) {
        let _ = std::fs::remove_file(out.join("clips").join(name));
    }
    let clips = kept.iter().map(|e| e.clips).sum();
    CacheIndex {
        format: CACHE_FORMAT,
        settings: settings.clone(),
        entries: kept,
    }
    .save(out)?;
    let report = PrepareReport {
        dir: out.to_path_buf(),
        rows,
        decoded,
        reused,
        clips,
        skipped,
        seconds: started.elapsed().as_secs_f64(),
    };
    if report.clips == 0 {
        return Err(RealError::Empty {
            skipped: report.skipped.len(),
            skipped_csv: out.join("skipped.csv").display().to_string(),
        });
    }
    Ok(report)
}

fn write_skipped(path: &Path, skipped: &[Skip]) -> Result<(), RealError> {
    let io = |m: String| RealError::Io {
        path: path.display().to_string(),
        message: m,
    };
    let mut w = csv::Writer::from_path(path).map_err(|e| io(e.to_string()))?;
    w.write_record(["line", "path", "reason"])
        .map_err(|e| io(e.to_string()))?;
    for s in skipped {
        w.write_record([s.line.to_string(), s.path.clone(), s.reason.clone()])
            .map_err(|e| io(e.to_string()))?;
    }
    w.flush().map_err(|e| io(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_starts_spread_evenly_and_need_enough_frames() {
        assert_eq!(clip_starts(100, 8, 1), vec![46]);
        assert_eq!(clip_starts(100, 8, 3), vec![0, 46, 92]);
        assert_eq!(clip_starts(8, 8, 4), vec![0]);
        assert!(clip_starts(7, 8, 1).is_empty());
    }
}
