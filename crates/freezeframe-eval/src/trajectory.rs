//! Motion that agrees with the eye: net transport along dense point trajectories.
//!
//! VBench's motion score takes the top 5% of per-pair flow magnitudes. On generated videos two
//! things that are not motion read as motion there: per-frame noise (sampling noise, GIF
//! dither), and an outline that changes from frame to frame while the object stays put (the
//! flow explains a deformation as displacement, and rightly so for one pair). This measure
//! differs in three ways:
//! - frames are smoothed first (σ ≈ 1 px), which removes pixel noise before the flow sees it;
//! - points are seeded only where frame 0 has structure above the video's own noise floor
//!   (3× the median gradient magnitude: on a mostly flat frame the median is the noise);
//! - each point is followed through every frame pair and kept only while the forward and
//!   backward flows agree (Sundaram, Brox & Keutzer 2010); its motion is its *net* displacement
//!   over the clip per frame. An outline that flickers sends points out and back (net ≈ 0); an
//!   object that glides carries them along (net = speed).
//!
//! The score is the mean of the top 5% net speeds, in px per frame, so it is on VBench's scale
//! and the same dynamic threshold applies.
use crate::flow::{Flow, dense_flow};
use crate::gray::Gray;

/// A point whose forward and backward flows disagree by more than this (squared, relative to
/// their size, plus an absolute slack in px²) is lost (occluded, or not a trackable point).
const FB_RELATIVE: f32 = 0.05;
const FB_ABSOLUTE: f32 = 0.25;
/// Seeds need a gradient above this multiple of the frame's median gradient magnitude …
const NOISE_MULTIPLE: f32 = 3.0;
/// … and above this absolute floor (luma units per pixel), so a clean flat frame seeds only
/// its edges.
const MIN_GRADIENT: f32 = 0.02;

fn field(f: &Flow) -> (Gray, Gray) {
    (
        Gray {
            w: f.w,
            h: f.h,
            data: f.u.clone(),
        },
        Gray {
            w: f.w,
            h: f.h,
            data: f.v.clone(),
        },
    )
}

/// Seed pixels of a (smoothed) frame: structure above the frame's own noise floor.
fn seeds(g: &Gray) -> Vec<[f32; 2]> {
    let (gx, gy) = g.gradients();
    let mags: Vec<f32> = gx
        .data
        .iter()
        .zip(&gy.data)
        .map(|(a, b)| (a * a + b * b).sqrt())
        .collect();
    let mut sorted = mags.clone();
    sorted.sort_by(f32::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let floor = (NOISE_MULTIPLE * median).max(MIN_GRADIENT);
    mags.iter()
        .enumerate()
        .filter(|(_, m)| **m > floor)
        .map(|(i, _)| [(i % g.w) as f32, (i / g.w) as f32])
        .collect()
}

/// Net speed (px per frame over the frames it was followed) of every point seeded on frame 0
/// and followed through at least two frame pairs (one where the clip has only one): a single
/// pair cannot tell an excursion that comes back from one that goes on.
pub fn net_speeds(frames: &[Gray]) -> Vec<f32> {
    if frames.len() < 2 {
        return Vec::new();
    }
    let smooth: Vec<Gray> = frames.iter().map(Gray::blur).collect();
    let pairs: Vec<((Gray, Gray), (Gray, Gray))> = smooth
        .windows(2)
        .map(|p| {
            (
                field(&dense_flow(&p[0], &p[1])),
                field(&dense_flow(&p[1], &p[0])),
            )
        })
        .collect();
    let (w, h) = (smooth[0].w as f32, smooth[0].h as f32);
    let min_life = pairs.len().min(2);
    seeds(&smooth[0])
        .into_iter()
        .filter_map(|p0| {
            let mut p = p0;
            let mut life = 0;
            for ((fu, fv), (bu, bv)) in &pairs {
                let f = [fu.sample(p[0], p[1]), fv.sample(p[0], p[1])];
                let q = [p[0] + f[0], p[1] + f[1]];
                if q[0] < 0.0 || q[1] < 0.0 || q[0] > w - 1.0 || q[1] > h - 1.0 {
                    break;
                }
                let b = [bu.sample(q[0], q[1]), bv.sample(q[0], q[1])];
                let err = (f[0] + b[0]).powi(2) + (f[1] + b[1]).powi(2);
                let size = f[0] * f[0] + f[1] * f[1] + b[0] * b[0] + b[1] * b[1];
                if err > FB_RELATIVE * size + FB_ABSOLUTE {
                    break;
                }
                p = q;
                life += 1;
            }
            (life >= min_life)
                .then(|| ((p[0] - p0[0]).powi(2) + (p[1] - p0[1]).powi(2)).sqrt() / life as f32)
        })
        .collect()
}

/// The trajectory motion score: mean of the top 5% net speeds (0 with nothing to track).
pub fn trajectory_score(frames: &[Gray]) -> f32 {
    let mut s = net_speeds(frames);
    if s.is_empty() {
        return 0.0;
    }
    s.sort_by(|a, b| b.total_cmp(a));
    let k = (s.len() as f32 * 0.05).ceil().max(1.0) as usize;
    s[..k].iter().sum::<f32>() / k as f32
}
