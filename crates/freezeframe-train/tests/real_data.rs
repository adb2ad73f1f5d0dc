//! Training and evaluation read a clip cache (`[data] cache`). The cache is written here from
//! synthetic clips with the cache's own writer, so the test needs no FFmpeg; the decoding side
//! is tested on real footage in `freezeframe-eval/tests/real_videos.rs`.
mod common;
use common::tmp;

use std::path::Path;

use freezeframe_data::real::cache::{
    CACHE_FORMAT, CacheEntry, CacheIndex, PrepareSettings, write_shard,
};
use freezeframe_data::{Split, World, WorldConfig};
use freezeframe_train::evaluate::{EvalOptions, EvalSettings, evaluate_run};
use freezeframe_train::{RunConfig, TrainError, TrainOptions, train};

/// A cache of `videos` × 3 clips of 4×16×16, captions "clip number k".
fn make_cache(dir: &Path, videos: usize) {
    let w = World::new(WorldConfig {
        frames: 4,
        size: 16,
        speeds: freezeframe_data::world::Speeds {
            slow: 0.75,
            fast: 1.5,
        },
        object_size: [2.5, 3.0],
        ..WorldConfig::default()
    })
    .unwrap();
    std::fs::create_dir_all(dir.join("clips")).unwrap();
    let mut entries = Vec::new();
    for k in 0..videos {
        let clips: Vec<Vec<u8>> = (0..3)
            .map(|j| {
                let v = w.clip(Split::Train, (3 * k + j) as u64).video;
                // [T, C, H, W] f32 → [T, H, W, 3] bytes
                let mut b = Vec::new();
                for t in 0..4 {
                    for y in 0..16 {
                        for x in 0..16 {
                            for c in 0..3 {
                                b.push((v.get(t, c, y, x) * 255.0).round() as u8);
                            }
                        }
                    }
                }
                b
            })
            .collect();
        let shard = format!("{k:016x}.safetensors");
        let hash = write_shard(&dir.join("clips").join(&shard), &clips, 4, 16).unwrap();
        entries.push(CacheEntry {
            shard_hash: Some(hash),
            source: dir.join(format!("video{k}.mp4")),
            source_bytes: 1,
            source_mtime_ns: 0,
            text: format!("clip number {k}"),
            shard,
            clips: 3,
            decoded_frames: 40,
            source_width: 64,
            source_height: 48,
            source_fps: Some(8.0),
            starts: vec![0, 18, 36],
        });
    }
    let settings = PrepareSettings {
        frames: 4,
        size: 16,
        fps: None,
        stride: 1,
        clips_per_video: 3,
    };
    CacheIndex {
        format: CACHE_FORMAT,
        settings,
        entries,
    }
    .save(dir)
    .unwrap();
}

fn config(out: &Path, cache: &Path, frames: usize) -> RunConfig {
    let mut c = RunConfig::tiny("real", out).unwrap();
    c.data.cache = Some(cache.to_path_buf());
    c.data.frames = frames;
    c.checked().unwrap()
}

#[test]
fn a_run_trains_and_evaluates_on_a_clip_cache() {
    let d_tmp = tmp("ok");
    let d = d_tmp.path().to_path_buf();
    make_cache(&d.join("cache"), 4);
    let cfg = config(&d, &d.join("cache"), 4);
    let quiet = TrainOptions {
        progress: false,
        final_samples: false,
        ..TrainOptions::default()
    };
    let s = train(&cfg, &quiet).unwrap();
    assert_eq!(s.steps, 3);
    assert!(s.final_val.is_some_and(f32::is_finite));
    // Captions' words form the vocabulary; sampling with them works, others are refused.
    let r = evaluate_run(
        &s.run,
        &EvalOptions {
            settings: EvalSettings {
                n: 8,
                steps: 2,
                ..EvalSettings::default()
            },
            ..EvalOptions::default()
        },
    )
    .unwrap();
    // 12 clips: held-out are indices 9 (every tenth), so one real clip to compare with.
    assert_eq!(r.comparison.real.n, 1);
    assert!(
        r.comparison.alignment.is_none(),
        "no ground truth for real footage"
    );

    // A cache cut differently from [data] is an error naming both.
    let bad = config(&d, &d.join("cache"), 8);
    let e = train(
        &RunConfig {
            name: "bad".into(),
            ..bad
        },
        &quiet,
    )
    .unwrap_err();
    assert!(
        matches!(e, TrainError::Data(_)) && e.to_string().contains("frames = 8"),
        "{e}"
    );
}
