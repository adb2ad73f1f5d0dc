//! Rasterises objects onto a background with 4×4 supersampled anti-aliasing, so that sub-pixel
//! motion shows as smooth intensity changes rather than one-pixel jumps.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::video::Video;
use crate::world::{Background, ObjectTruth, Shape, WorldConfig};

/// Grey level of the plain background.
pub const PLAIN_LEVEL: f32 = 0.08;
const SUPERSAMPLE: usize = 4;

// The shapes' geometry, in units of the radius r; `inside` and `area_factor` both read it.
/// A square's half side.
const SQUARE_HALF: f32 = 0.85;
/// An equilateral triangle inscribed in the circle of radius r: its half base (√3/2) and height.
const TRIANGLE_HALF_BASE: f32 = 0.866;
const TRIANGLE_HEIGHT: f32 = 1.5;
/// A cross's arms: half length r, half width r / 3 (a division, not a multiplication by 1/3:
/// the rendered pixels must stay bit-identical to the clips the shipped models learned from).
const CROSS_ARM_DIVISOR: f32 = 3.0;

/// Whether the point (dx, dy) relative to the centre lies inside `shape` of radius r.
pub fn inside(shape: Shape, dx: f32, dy: f32, r: f32) -> bool {
    match shape {
        Shape::Circle => dx * dx + dy * dy <= r * r,
        Shape::Square => dx.abs() <= SQUARE_HALF * r && dy.abs() <= SQUARE_HALF * r,
        Shape::Triangle => {
            // Upward, apex at the top of the circle of radius r.
            let h = TRIANGLE_HEIGHT * r;
            let top = -r;
            let y = dy - top; // 0 at apex, h at base
            y >= 0.0 && y <= h && dx.abs() <= y / h * (TRIANGLE_HALF_BASE * r)
        }
        Shape::Cross => {
            let arm = r / CROSS_ARM_DIVISOR;
            (dx.abs() <= r && dy.abs() <= arm) || (dy.abs() <= r && dx.abs() <= arm)
        }
    }
}

/// Area of `shape` at radius r, in units of r² (the area [`inside`] covers).
pub fn area_factor(shape: Shape) -> f32 {
    match shape {
        Shape::Circle => std::f32::consts::PI,
        Shape::Square => (2.0 * SQUARE_HALF).powi(2),
        Shape::Triangle => 0.5 * (2.0 * TRIANGLE_HALF_BASE) * TRIANGLE_HEIGHT,
        // Two bars of 2 × 2·arm, less their shared centre square.
        Shape::Cross => {
            let arm = 1.0 / CROSS_ARM_DIVISOR;
            2.0 * (2.0 * 2.0 * arm) - (2.0 * arm).powi(2)
        }
    }
}

fn background(cfg: &WorldConfig, kind: Background, seed: u64) -> Vec<f32> {
    let s = cfg.size;
    let mut out = vec![PLAIN_LEVEL; 3 * s * s];
    if kind == Background::Textured {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for c in 0..3 {
            let waves: Vec<[f32; 4]> = (0..3)
                .map(|_| {
                    [
                        rng.random_range(0.1..0.6),
                        rng.random_range(0.1..0.6),
                        rng.random_range(0.0..6.3),
                        rng.random_range(0.02..0.06),
                    ]
                })
                .collect();
            for y in 0..s {
                for x in 0..s {
                    let v: f32 = waves
                        .iter()
                        .map(|[fx, fy, ph, a]| a * (fx * x as f32 + fy * y as f32 + ph).sin())
                        .sum();
                    out[(c * s + y) * s + x] = 0.18 + v;
                }
            }
        }
    }
    out
}

/// Renders `objects` (in order, later on top) over the background.
pub fn render(cfg: &WorldConfig, objects: &[ObjectTruth], bg: Background, bg_seed: u64) -> Video {
    let s = cfg.size;
    let frames = cfg.clip_frames();
    let base = background(cfg, bg, bg_seed);
    let mut v = Video::zeros(frames, 3, s, s);
    for t in 0..frames {
        v.data[t * 3 * s * s..(t + 1) * 3 * s * s].copy_from_slice(&base);
        for o in objects {
            let [cx, cy] = o.centres[t];
            let rgb = o.colour.rgb();
            let (x0, x1) = (
                (cx - o.radius - 1.0).floor().max(0.0) as usize,
                ((cx + o.radius + 1.0).ceil() as usize).min(s),
            );
            let (y0, y1) = (
                (cy - o.radius - 1.0).floor().max(0.0) as usize,
                ((cy + o.radius + 1.0).ceil() as usize).min(s),
            );
            for y in y0..y1 {
                for x in x0..x1 {
                    let mut hits = 0;
                    for sy in 0..SUPERSAMPLE {
                        for sx in 0..SUPERSAMPLE {
                            let px = x as f32 + (sx as f32 + 0.5) / SUPERSAMPLE as f32;
                            let py = y as f32 + (sy as f32 + 0.5) / SUPERSAMPLE as f32;
                            if inside(o.shape, px - cx, py - cy, o.radius) {
                                hits += 1;
                            }
                        }
                    }
                    if hits == 0 {
                        continue;
                    }
                    let a = hits as f32 / (SUPERSAMPLE * SUPERSAMPLE) as f32;
                    for (c, col) in rgb.iter().enumerate() {
                        let i = v.idx(t, c, y, x);
                        v.data[i] = v.data[i] * (1.0 - a) + col * a;
                    }
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_factor_is_the_area_inside_covers() {
        // Points on a grid of 0.1 over a shape of radius 10: each stands for 0.01 of area.
        let r = 10.0;
        for s in crate::world::ALL_SHAPES {
            let mut n = 0usize;
            for y in -120..120 {
                for x in -120..120 {
                    n += inside(s, (x as f32 + 0.5) * 0.1, (y as f32 + 0.5) * 0.1, r) as usize;
                }
            }
            let (got, want) = (n as f32 * 0.01, area_factor(s) * r * r);
            assert!((got - want).abs() < 0.01 * want, "{s:?}: {got} vs {want}");
        }
    }

    use crate::world::{Split, World};

    #[test]
    fn object_pixels_carry_its_colour_and_centre_of_mass_tracks_truth() {
        let w = World::new(WorldConfig::default()).unwrap();
        for i in 0..20 {
            let clip = w.clip(Split::Train, i);
            let o = &clip.objects[0];
            let v = &clip.video;
            for t in 0..v.frames {
                let (mut sx, mut sy, mut sm) = (0.0, 0.0, 0.0);
                for y in 0..v.height {
                    for x in 0..v.width {
                        let m: f32 = (0..3)
                            .map(|c| (v.get(t, c, y, x) - PLAIN_LEVEL).abs())
                            .sum();
                        sx += m * (x as f32 + 0.5);
                        sy += m * (y as f32 + 0.5);
                        sm += m;
                    }
                }
                let [cx, cy] = o.centres[t];
                // Triangles' centroid sits below the circumcentre; allow for it.
                let tol = if o.shape == Shape::Triangle { 1.2 } else { 0.3 };
                assert!(
                    (sx / sm - cx).abs() < 0.3 && (sy / sm - cy).abs() < tol,
                    "{:?} t{t}",
                    o.shape
                );
            }
        }
    }

    #[test]
    fn textured_backgrounds_vary_and_stay_in_range() {
        let cfg = WorldConfig {
            backgrounds: vec![Background::Textured],
            ..WorldConfig::default()
        };
        let w = World::new(cfg).unwrap();
        let v = w.clip(Split::Train, 1).video;
        assert!(v.data.iter().all(|x| (0.0..=1.0).contains(x)));
        let corner: Vec<f32> = (0..8).map(|x| v.get(0, 0, 0, x)).collect();
        assert!(corner.windows(2).any(|p| (p[0] - p[1]).abs() > 1e-3));
    }
}
