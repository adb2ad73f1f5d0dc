//! Motion and temporal consistency of single videos, after VBench's definitions.
use freezeframe_data::Video;

use crate::flow::{Flow, dense_flow};
use crate::gray::{Gray, lumas};
use crate::trajectory::trajectory_score;

/// Mean absolute difference between consecutive frames (all channels), in [0, 1] units.
pub fn frame_difference(v: &Video) -> f32 {
    if v.frames < 2 {
        return 0.0;
    }
    let n = v.channels * v.height * v.width;
    let total: f32 = (1..v.frames)
        .map(|t| {
            let (a, b) = (&v.data[(t - 1) * n..t * n], &v.data[t * n..(t + 1) * n]);
            a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / n as f32
        })
        .sum();
    total / (v.frames - 1) as f32
}

/// VBench temporal flickering: (255 − mean consecutive-frame MAE on the 0–255 scale) / 255,
/// i.e. 1 − the frame difference in [0, 1] units. 1 = perfectly steady.
pub fn flicker_score(v: &Video) -> f32 {
    flicker_of(frame_difference(v))
}

/// The flickering score of a known frame difference.
pub fn flicker_of(frame_difference: f32) -> f32 {
    1.0 - frame_difference
}

/// The same video with every frame replaced by the first: its content without its motion (the
/// baseline against which "too static" is judged).
pub fn frozen_copy(v: &Video) -> Video {
    let mut out = v.clone();
    let n = v.channels * v.height * v.width;
    for t in 1..v.frames {
        out.data.copy_within(0..n, t * n);
    }
    out
}

/// Flow between every pair of consecutive frames (given as lumas).
pub fn flows(frames: &[Gray]) -> Vec<Flow> {
    frames
        .windows(2)
        .map(|p| dense_flow(&p[0], &p[1]))
        .collect()
}

/// VBench's per-pair motion: the mean of the top 5% flow magnitudes.
pub fn top5_mean(f: &Flow) -> f32 {
    let mut m = f.magnitudes();
    m.sort_by(|a, b| b.total_cmp(a));
    let k = (m.len() as f32 * 0.05).ceil().max(1.0) as usize;
    m[..k].iter().sum::<f32>() / k as f32
}

/// Motion of one video from its flows.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoMotion {
    /// Per frame pair, the mean of the top 5% flow magnitudes (px per frame).
    pub pair_scores: Vec<f32>,
    /// Mean of `pair_scores`: the video's motion score.
    pub score: f32,
    /// Mean flow magnitude over all pixels and pairs.
    pub mean_flow: f32,
    pub dynamic: bool,
    /// Top-5% net speed along tracked points (px per frame): robust to pixel noise and to
    /// outline flicker (see [`crate::trajectory`]).
    pub robust_score: f32,
    /// `robust_score` above VBench's dynamic threshold.
    pub robust_dynamic: bool,
}

/// VBench's threshold: `max(1, 8/fps) · 6 · min(H, W) / 256` px.
pub fn dynamic_threshold(height: usize, width: usize, fps: f32) -> f32 {
    (8.0 / fps).max(1.0) * 6.0 * height.min(width) as f32 / 256.0
}

/// VBench's count: a video is dynamic when at least `round(4·N/16)` pairs (N frames) exceed
/// the threshold (at least one).
pub fn dynamic_count(frames: usize) -> usize {
    ((4.0 * frames as f32 / 16.0).round() as usize).max(1)
}

pub fn video_motion(v: &Video, fps: f32) -> VideoMotion {
    motion_of(&lumas(v), fps)
}

/// [`video_motion`] from the frames' lumas (computed once by callers that need them again).
pub fn motion_of(frames: &[Gray], fps: f32) -> VideoMotion {
    let fl = flows(frames);
    let pair_scores: Vec<f32> = fl.iter().map(top5_mean).collect();
    let score = if pair_scores.is_empty() {
        0.0
    } else {
        pair_scores.iter().sum::<f32>() / pair_scores.len() as f32
    };
    let mean_flow = if fl.is_empty() {
        0.0
    } else {
        fl.iter()
            .map(|f| f.magnitudes().iter().sum::<f32>() / (f.w * f.h) as f32)
            .sum::<f32>()
            / fl.len() as f32
    };
    let (h, w) = frames.first().map_or((0, 0), |g| (g.h, g.w));
    let thr = dynamic_threshold(h, w, fps);
    let above = pair_scores.iter().filter(|s| **s > thr).count();
    let robust_score = trajectory_score(frames);
    VideoMotion {
        pair_scores,
        score,
        mean_flow,
        dynamic: frames.len() >= 2 && above >= dynamic_count(frames.len()),
        robust_score,
        robust_dynamic: frames.len() >= 2 && robust_score > thr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use freezeframe_data::{Split, World, WorldConfig};

    #[test]
    fn vbench_constants() {
        assert!((dynamic_threshold(256, 256, 8.0) - 6.0).abs() < 1e-6);
        assert!((dynamic_threshold(32, 32, 8.0) - 0.75).abs() < 1e-6);
        assert!(
            (dynamic_threshold(32, 48, 4.0) - 1.5).abs() < 1e-6,
            "low fps raises the bar"
        );
        assert_eq!(dynamic_count(16), 4);
        assert_eq!(dynamic_count(8), 2);
        assert_eq!(dynamic_count(2), 1);
    }

    #[test]
    fn moving_objects_move_and_still_ones_do_not() {
        let w = World::new(WorldConfig::default()).unwrap();
        let mut checked = 0;
        for i in 0..40 {
            let clip = w.clip(Split::Val, i);
            let o = &clip.objects[0];
            let m = video_motion(&clip.video, 8.0);
            let px = match o.speed {
                freezeframe_data::world::Speed::Slow => w.config.speeds.slow,
                freezeframe_data::world::Speed::Fast => w.config.speeds.fast,
            };
            if o.motion == freezeframe_data::world::Motion::Static {
                assert!(!m.dynamic && m.score < 0.3, "clip {i} static: {m:?}");
            } else {
                assert!(m.dynamic, "clip {i} moving: {m:?}");
                // The top-5% flow sits on the object: close to its true speed.
                assert!(
                    (m.score - px).abs() < 0.35 * px,
                    "clip {i}: score {} vs speed {px}",
                    m.score
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 40);
    }

    #[test]
    fn flicker_is_one_for_a_still_video_and_lower_when_frames_change() {
        let w = World::new(WorldConfig::default()).unwrap();
        let v = w.clip(Split::Val, 1).video;
        let still = frozen_copy(&v);
        assert!(flicker_score(&v) < 1.0);
        assert_eq!(flicker_score(&still), 1.0);
        assert!(frame_difference(&still) == 0.0);
    }
}
