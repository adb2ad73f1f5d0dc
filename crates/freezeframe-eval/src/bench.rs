//! `freezeframe bench eval`: time to score a set of synthetic videos with every metric.
use std::time::Instant;

use freezeframe_data::world::WorldError;
use freezeframe_data::{Split, World, WorldConfig};
use serde::Serialize;

use crate::report::{compare, read_videos, score_videos};

#[derive(Debug, Clone, Serialize)]
pub struct EvalBench {
    pub videos: usize,
    /// [T, C, H, W]
    pub shape: [usize; 4],
    /// Motion (dense flow), flicker, sharpness, FVD-lite features and text-alignment readings
    /// of the whole set.
    pub scoring_seconds: f64,
    /// The set-level comparison with another scored set (Fréchet distance, summaries).
    pub compare_ms: f64,
    pub threads: usize,
}

/// Scores `n` held-out synthetic clips (rendering excluded from the time).
pub fn score_set(n: usize) -> Result<EvalBench, WorldError> {
    let n = n.max(1);
    let world = World::new(WorldConfig {
        val_clips: 2 * n,
        ..WorldConfig::default()
    })?;
    let a: Vec<_> = (0..n as u64)
        .map(|i| world.clip(Split::Val, i).video)
        .collect();
    let b: Vec<_> = (n as u64..2 * n as u64)
        .map(|i| world.clip(Split::Val, i).video)
        .collect();
    let sb = score_videos(&b, 8.0);
    let t = Instant::now();
    let sa = score_videos(&a, 8.0);
    let ra = read_videos(&a, &world.config);
    let scoring_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let c = compare(&sa, &sb, None);
    let compare_ms = t.elapsed().as_secs_f64() * 1e3;
    std::hint::black_box((c, ra));
    Ok(EvalBench {
        videos: n,
        shape: [a[0].frames, a[0].channels, a[0].height, a[0].width],
        scoring_seconds,
        compare_ms,
        threads: rayon::current_num_threads(),
    })
}
