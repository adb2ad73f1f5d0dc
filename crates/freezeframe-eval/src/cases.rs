//! Videos whose motion is known, for validating the motion metrics: what a person sees in
//! each is stated in its name. The tests and the `motion_cases` example (the README's table)
//! read the same cases.
use freezeframe_data::Video;
use freezeframe_data::render::render;
use freezeframe_data::world::{Background, Colour, Motion, ObjectTruth, Shape, Speed, WorldConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A case: its name, the video, and the truth a reader should report.
pub struct Case {
    pub name: &'static str,
    pub video: Video,
    /// True net speed of the object, px per frame.
    pub net_speed: f32,
    /// Whether a person would call it moving.
    pub moving: bool,
}

const FRAMES: usize = 8;
const SIZE: usize = 32;

fn world() -> WorldConfig {
    WorldConfig {
        frames: FRAMES,
        size: SIZE,
        ..WorldConfig::default()
    }
}

/// One red object of radius 4.5 at `centre(t)`.
fn object(shape: Shape, centre: impl Fn(usize) -> [f32; 2]) -> Video {
    let o = ObjectTruth {
        shape,
        colour: Colour::Red,
        motion: Motion::Static,
        speed: Speed::Slow,
        radius: 4.5,
        centres: (0..FRAMES).map(centre).collect(),
    };
    render(&world(), &[o], Background::Plain, 0)
}

/// Frames of `a` where `pick(t)` is true, of `b` elsewhere.
fn interleave(a: &Video, b: &Video, pick: impl Fn(usize) -> bool) -> Video {
    let n = a.channels * a.height * a.width;
    let mut out = a.clone();
    for t in 0..a.frames {
        if !pick(t) {
            out.data[t * n..(t + 1) * n].copy_from_slice(&b.data[t * n..(t + 1) * n]);
        }
    }
    out
}

/// Every frame is frame 0 of `v` plus independent Gaussian noise of `sigma`.
fn noisy_frozen(v: &Video, sigma: f32, seed: u64) -> Video {
    let n = v.channels * v.height * v.width;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = v.clone();
    for t in 0..v.frames {
        for i in 0..n {
            let g: f32 = rng.sample(rand_distr::StandardNormal);
            out.data[t * n + i] = (v.data[i] + sigma * g).clamp(0.0, 1.0);
        }
    }
    out
}

/// Every frame is frame 0 of `v` quantised to the 3-3-2-bit palette of a default GIF
/// encoder, with a random dither threshold per pixel and frame (the per-frame noise a GIF of a
/// frozen frame carries).
fn dithered_frozen(v: &Video, seed: u64) -> Video {
    let (n, plane) = (v.channels * v.height * v.width, v.height * v.width);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = v.clone();
    for t in 0..v.frames {
        for i in 0..n {
            let levels = if i / plane == 2 { 3.0 } else { 7.0 };
            let x = v.data[i] * levels + rng.random::<f32>() - 0.5;
            out.data[t * n + i] = (x.round() / levels).clamp(0.0, 1.0);
        }
    }
    out
}

/// The validation cases.
pub fn cases() -> Vec<Case> {
    let still = |_t: usize| [16.0, 16.0];
    let circle = object(Shape::Circle, still);
    let cross = object(Shape::Cross, still);
    let glide = object(Shape::Circle, |t| [8.0 + t as f32, 16.0]);
    let fast = object(Shape::Square, |t| [6.0 + 3.0 * t as f32, 16.0]);
    vec![
        Case {
            name: "static circle, outline alternating circle ↔ cross",
            video: interleave(&circle, &cross, |t| t % 2 == 0),
            net_speed: 0.0,
            moving: false,
        },
        Case {
            name: "static circle, Gaussian noise σ = 0.05 per frame",
            video: noisy_frozen(&circle, 0.05, 1),
            net_speed: 0.0,
            moving: false,
        },
        Case {
            name: "static circle, GIF palette dither per frame",
            video: dithered_frozen(&circle, 2),
            net_speed: 0.0,
            moving: false,
        },
        Case {
            name: "circle moving 1 px/frame, steady outline",
            video: glide,
            net_speed: 1.0,
            moving: true,
        },
        Case {
            name: "square moving 3 px/frame, steady outline",
            video: fast,
            net_speed: 3.0,
            moving: true,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::read_video;
    use crate::motion::video_motion;

    #[test]
    fn robust_motion_and_tracks_agree_with_the_truth() {
        let w = world();
        for c in cases() {
            let m = video_motion(&c.video, 8.0);
            let r = read_video(&c.video, &w);
            let net = r.track.map_or(0.0, |k| k.net_speed);
            assert_eq!(m.robust_dynamic, c.moving, "{}: {m:?}", c.name);
            // The done-when figures: still cases below 0.3 px/frame, moving ones within 10 %.
            let ok = if c.moving {
                (net - c.net_speed).abs() <= 0.1 * c.net_speed
            } else {
                net < 0.3
            };
            assert!(ok, "{}: tracked net speed {net} vs {}", c.name, c.net_speed);
            if c.moving {
                assert!(
                    (m.robust_score - c.net_speed).abs() < 0.25 * c.net_speed,
                    "{}: trajectory score {} vs {}",
                    c.name,
                    m.robust_score,
                    c.net_speed
                );
            }
        }
    }
}
