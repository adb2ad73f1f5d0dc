//! Scores for sets of videos and the comparison of generated videos with real ones.
use freezeframe_data::Video;
use freezeframe_data::WorldConfig;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::align::{Alignment, Reading, Target, alignment, read_video};
use crate::gray::lumas;
use crate::motion::{VideoMotion, flicker_of, frame_difference, motion_of};
use crate::quality::{features, frechet, sharpness_of};

/// Everything measured on one video.
#[derive(Debug, Clone)]
pub struct VideoScore {
    pub motion: VideoMotion,
    /// Mean consecutive-frame difference; VBench's flickering score is 1 minus it.
    pub frame_difference: f32,
    pub sharpness: f32,
    pub features: Vec<f64>,
}

/// Scores every video (in parallel). `fps` sets VBench's dynamic threshold.
pub fn score_videos(videos: &[Video], fps: f32) -> Vec<VideoScore> {
    videos
        .par_iter()
        .map(|v| {
            let frames = lumas(v);
            let motion = motion_of(&frames, fps);
            let sharpness = sharpness_of(&frames);
            let frame_difference = frame_difference(v);
            VideoScore {
                features: features(v, &frames, &motion, sharpness, frame_difference),
                frame_difference,
                sharpness,
                motion,
            }
        })
        .collect()
}

/// Prompt-free summary of a set of videos.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSummary {
    pub n: usize,
    /// Mean motion score (mean of the top 5% flow magnitudes, px per frame).
    #[serde(deserialize_with = "crate::nan::f32")]
    pub motion: f32,
    #[serde(deserialize_with = "crate::nan::f32")]
    pub mean_flow: f32,
    #[serde(deserialize_with = "crate::nan::f32")]
    pub frame_difference: f32,
    /// VBench dynamic degree: share of videos judged moving by per-pair flow.
    #[serde(deserialize_with = "crate::nan::f32")]
    pub dynamic_degree: f32,
    #[serde(deserialize_with = "crate::nan::f32")]
    pub static_rate: f32,
    /// Mean trajectory (net-transport) motion score, px per frame: robust to noise and flicker.
    #[serde(deserialize_with = "crate::nan::f32")]
    pub robust_motion: f32,
    /// Share of videos whose trajectory score clears VBench's threshold.
    #[serde(deserialize_with = "crate::nan::f32")]
    pub robust_dynamic_degree: f32,
    /// VBench temporal flickering score (1 = steady).
    #[serde(deserialize_with = "crate::nan::f32")]
    pub flicker: f32,
    #[serde(deserialize_with = "crate::nan::f32")]
    pub sharpness: f32,
}

fn mean(it: impl Iterator<Item = f32>) -> f32 {
    let (s, n) = it.fold((0.0f64, 0usize), |(s, n), v| (s + v as f64, n + 1));
    if n == 0 {
        f32::NAN
    } else {
        (s / n as f64) as f32
    }
}

pub fn summarise(scores: &[VideoScore]) -> SetSummary {
    let dynamic = mean(scores.iter().map(|s| s.motion.dynamic as u8 as f32));
    SetSummary {
        n: scores.len(),
        motion: mean(scores.iter().map(|s| s.motion.score)),
        mean_flow: mean(scores.iter().map(|s| s.motion.mean_flow)),
        frame_difference: mean(scores.iter().map(|s| s.frame_difference)),
        dynamic_degree: dynamic,
        static_rate: 1.0 - dynamic,
        robust_motion: mean(scores.iter().map(|s| s.motion.robust_score)),
        robust_dynamic_degree: mean(scores.iter().map(|s| s.motion.robust_dynamic as u8 as f32)),
        flicker: mean(scores.iter().map(|s| flicker_of(s.frame_difference))),
        sharpness: mean(scores.iter().map(|s| s.sharpness)),
    }
}

/// Generated videos against the real videos of the same prompts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub generated: SetSummary,
    pub real: SetSummary,
    /// Mean flow motion score of generated over real videos. Counts outline flicker as
    /// motion; on the synthetic world prefer `tracked_motion_ratio`.
    #[serde(deserialize_with = "crate::nan::f32")]
    pub motion_ratio: f32,
    /// Mean trajectory motion score of generated over real videos: the study's motion figure on
    /// real footage.
    #[serde(deserialize_with = "crate::nan::f32")]
    pub robust_motion_ratio: f32,
    /// Mean tracked net speed of moving prompts, generated over real (< 1: too static); NaN
    /// where there is no ground truth or no moving prompt.
    #[serde(deserialize_with = "crate::nan::f32")]
    pub tracked_motion_ratio: f32,
    /// Fréchet distance over the hand-made features (lower is closer to real).
    #[serde(deserialize_with = "crate::nan::f64")]
    pub fvd_lite: f64,
    /// Text alignment of generated videos, and of the real ones as the reader's ceiling
    /// (`null` without ground truth). Required when read back: a renamed key is an error, not
    /// a missing alignment.
    #[serde(deserialize_with = "Option::deserialize")]
    pub alignment: Option<Alignment>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub alignment_real: Option<Alignment>,
}

/// What the aligner read from a synthetic-world set, for text alignment and tracked motion.
#[derive(Clone, Copy)]
pub struct Readings<'a> {
    pub generated: &'a [Reading],
    pub real: &'a [Reading],
    /// The prompts' ground truth, one per video.
    pub targets: &'a [Target],
    /// The world's slow speed (px/frame): below half of it a track counts as static.
    pub slow: f32,
}

pub fn compare(
    generated: &[VideoScore],
    real: &[VideoScore],
    readings: Option<Readings<'_>>,
) -> Comparison {
    let (g, r) = (summarise(generated), summarise(real));
    let fg: Vec<Vec<f64>> = generated.iter().map(|s| s.features.clone()).collect();
    let fr: Vec<Vec<f64>> = real.iter().map(|s| s.features.clone()).collect();
    let ratio = |a: f32, b: f32| if b > 0.0 { a / b } else { f32::NAN };
    let alignment_gen = readings.map(|r| alignment(r.generated, r.targets, r.slow));
    let alignment_real = readings.map(|r| alignment(r.real, r.targets, r.slow));
    Comparison {
        motion_ratio: ratio(g.motion, r.motion),
        robust_motion_ratio: ratio(g.robust_motion, r.robust_motion),
        tracked_motion_ratio: match (&alignment_gen, &alignment_real) {
            (Some(a), Some(b)) => ratio(a.net_speed, b.net_speed),
            _ => f32::NAN,
        },
        fvd_lite: frechet(&fr, &fg),
        alignment: alignment_gen,
        alignment_real,
        generated: g,
        real: r,
    }
}

/// Reads every video of a synthetic-world set (in parallel).
pub fn read_videos(videos: &[Video], world: &WorldConfig) -> Vec<Reading> {
    videos.par_iter().map(|v| read_video(v, world)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::blurred;
    use freezeframe_data::{Split, World, WorldConfig};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn world(n: usize) -> World {
        World::new(WorldConfig {
            val_clips: 2 * n,
            ..WorldConfig::default()
        })
        .unwrap()
    }

    fn clips(w: &World, from: u64, n: u64) -> Vec<Video> {
        (from..from + n)
            .map(|i| w.clip(Split::Val, i).video)
            .collect()
    }

    #[test]
    fn repeated_frames_have_no_dynamics_and_no_motion_relative_to_real() {
        let w = world(64);
        let real = clips(&w, 0, 64);
        let still: Vec<Video> = real.iter().map(crate::motion::frozen_copy).collect();
        let (sr, ss) = (score_videos(&real, 8.0), score_videos(&still, 8.0));
        let c = compare(&ss, &sr, None);
        assert!(c.generated.dynamic_degree < 0.02, "{c:?}");
        assert!(c.motion_ratio < 0.02, "{c:?}");
        assert!(
            c.real.dynamic_degree > 0.6,
            "most synthetic clips move: {c:?}"
        );
    }

    #[test]
    fn shuffled_frames_flicker_more() {
        let w = world(32);
        let real = clips(&w, 0, 32);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let shuffled: Vec<Video> = real
            .iter()
            .map(|v| {
                let n = v.channels * v.height * v.width;
                let mut order: Vec<usize> = (0..v.frames).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.random_range(0..=i));
                }
                let mut out = v.clone();
                for (t, &s) in order.iter().enumerate() {
                    out.data[t * n..(t + 1) * n].copy_from_slice(&v.data[s * n..(s + 1) * n]);
                }
                out
            })
            .collect();
        let (a, b) = (
            summarise(&score_videos(&real, 8.0)),
            summarise(&score_videos(&shuffled, 8.0)),
        );
        assert!(
            b.flicker < a.flicker,
            "shuffled {} vs ordered {}",
            b.flicker,
            a.flicker
        );
    }

    #[test]
    fn fvd_lite_separates_real_from_noise_and_blur() {
        let w = world(128);
        let (real, held) = (clips(&w, 0, 128), clips(&w, 128, 128));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let noise: Vec<Video> = real
            .iter()
            .map(|v| {
                Video::from_data(
                    v.frames,
                    v.channels,
                    v.height,
                    v.width,
                    (0..v.data.len()).map(|_| rng.random::<f32>()).collect(),
                )
            })
            .collect();
        let blur: Vec<Video> = real.iter().map(blurred).collect();
        let s = |v: &[Video]| score_videos(v, 8.0);
        let (sr, sh, sn, sb) = (s(&real), s(&held), s(&noise), s(&blur));
        let d_held = compare(&sh, &sr, None).fvd_lite;
        let d_noise = compare(&sn, &sr, None).fvd_lite;
        let d_blur = compare(&sb, &sr, None).fvd_lite;
        assert!(
            d_held * 20.0 < d_noise,
            "held-out {d_held} vs noise {d_noise}"
        );
        assert!(d_held < d_blur, "held-out {d_held} vs blurred {d_blur}");
    }
}
