//! Text alignment for synthetic prompts, measured analytically: find the object, track its
//! centre, read off direction, speed class, colour and shape, and compare with the prompt's
//! attributes.
//!
//! The segmentation relies on the synthetic world's contract: objects are bright, saturated
//! palette colours (some channel ≥ 0.9) on dark backgrounds (every channel ≤ ~0.4), so a pixel
//! whose brightest channel exceeds 0.5 is object (for anti-aliased edges: more than half
//! covered). It is not meant for real footage.
use freezeframe_data::Video;
use freezeframe_data::render::inside;
use freezeframe_data::world::{
    ALL_COLOURS, ALL_SHAPES, Colour, Motion, ObjectTruth, Shape, Speed, Speeds,
};
use serde::Serialize;

const OBJECT_LEVEL: f32 = 0.5;
/// Pixels a frame needs for the object to count as present (a radius-2 disc has ~12).
const MIN_AREA: usize = 6;

/// What the analysis read from one video.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    /// Per frame, the object's centre when present.
    pub centres: Vec<Option<[f32; 2]>>,
    pub presence: f32,
    pub motion: Option<Motion>,
    pub speed: Option<Speed>,
    pub colour: Option<Colour>,
    pub shape: Option<Shape>,
}

fn object_mask(v: &Video, t: usize) -> Vec<bool> {
    let mut m = vec![false; v.width * v.height];
    for y in 0..v.height {
        for x in 0..v.width {
            let hi = (0..v.channels.min(3))
                .map(|c| v.get(t, c, y, x))
                .fold(0.0f32, f32::max);
            m[y * v.width + x] = hi > OBJECT_LEVEL;
        }
    }
    m
}

fn centroid(mask: &[bool], w: usize) -> Option<([f32; 2], usize)> {
    let (mut sx, mut sy, mut n) = (0.0f32, 0.0f32, 0usize);
    for (i, &m) in mask.iter().enumerate() {
        if m {
            sx += (i % w) as f32 + 0.5;
            sy += (i / w) as f32 + 0.5;
            n += 1;
        }
    }
    (n >= MIN_AREA).then(|| ([sx / n as f32, sy / n as f32], n))
}

/// Area of `shape` at radius r, in units of r² (matches `render::inside`).
fn area_factor(shape: Shape) -> f32 {
    match shape {
        Shape::Circle => std::f32::consts::PI,
        Shape::Square => (2.0f32 * 0.85).powi(2),
        Shape::Triangle => 0.5 * (2.0 * 0.866) * 1.5,
        Shape::Cross => 2.0 * (2.0 * 2.0 / 3.0) - (2.0f32 / 3.0).powi(2),
    }
}

/// The shape whose template, sized to the same area and centred on the mask's centroid,
/// overlaps the mask best (IoU). All four shapes have their centroid at the render centre.
fn classify_shape(
    mask: &[bool],
    w: usize,
    h: usize,
    centre: [f32; 2],
    area: usize,
) -> (Shape, f32) {
    let mut best = (Shape::Circle, -1.0f32);
    for &s in &ALL_SHAPES {
        let r = (area as f32 / area_factor(s)).sqrt();
        let (mut inter, mut union) = (0usize, 0usize);
        for y in 0..h {
            for x in 0..w {
                let t = inside(s, x as f32 + 0.5 - centre[0], y as f32 + 0.5 - centre[1], r);
                let m = mask[y * w + x];
                inter += (t && m) as usize;
                union += (t || m) as usize;
            }
        }
        let iou = inter as f32 / union.max(1) as f32;
        if iou > best.1 {
            best = (s, iou);
        }
    }
    best
}

fn classify_colour(v: &Video, t: usize, mask: &[bool]) -> Option<Colour> {
    let mut sum = [0.0f32; 3];
    let mut n = 0;
    for (i, &m) in mask.iter().enumerate() {
        let (y, x) = (i / v.width, i % v.width);
        let px: Vec<f32> = (0..3)
            .map(|c| v.get(t, c.min(v.channels - 1), y, x))
            .collect();
        // The core of the object: its brightest pixels, free of edge blending.
        if m && px.iter().cloned().fold(0.0, f32::max) > 0.7 {
            for c in 0..3 {
                sum[c] += px[c];
            }
            n += 1;
        }
    }
    if n == 0 {
        return None;
    }
    let mean = sum.map(|s| s / n as f32);
    ALL_COLOURS.iter().copied().min_by(|a, b| {
        let d = |c: Colour| {
            c.rgb()
                .iter()
                .zip(&mean)
                .map(|(p, q)| (p - q).powi(2))
                .sum::<f32>()
        };
        d(*a).total_cmp(&d(*b))
    })
}

fn majority<T: Copy + PartialEq>(items: &[T]) -> Option<T> {
    items
        .iter()
        .max_by_key(|a| items.iter().filter(|b| *b == *a).count())
        .copied()
}

/// Reads one video of the synthetic world (whose speeds are `speeds`, px per frame).
pub fn read_video(v: &Video, speeds: Speeds) -> Reading {
    let mut centres = Vec::with_capacity(v.frames);
    let (mut shapes, mut colours) = (Vec::new(), Vec::new());
    for t in 0..v.frames {
        let mask = object_mask(v, t);
        match centroid(&mask, v.width) {
            Some((c, area)) => {
                centres.push(Some(c));
                shapes.push(classify_shape(&mask, v.width, v.height, c, area).0);
                if let Some(col) = classify_colour(v, t, &mask) {
                    colours.push(col);
                }
            }
            None => centres.push(None),
        }
    }
    let present: Vec<(usize, [f32; 2])> = centres
        .iter()
        .enumerate()
        .filter_map(|(t, c)| c.map(|c| (t, c)))
        .collect();
    let presence = present.len() as f32 / v.frames.max(1) as f32;
    let (mut motion, mut speed) = (None, None);
    if present.len() >= 2 || (v.frames == 1 && present.len() == 1) {
        // Least-squares velocity over the frames where the object was found.
        let n = present.len() as f32;
        let mt = present.iter().map(|(t, _)| *t as f32).sum::<f32>() / n;
        let var_t = present
            .iter()
            .map(|(t, _)| (*t as f32 - mt).powi(2))
            .sum::<f32>();
        let vel = if var_t > 0.0 {
            let mut vel = [0.0f32; 2];
            for k in 0..2 {
                let mc = present.iter().map(|(_, c)| c[k]).sum::<f32>() / n;
                vel[k] = present
                    .iter()
                    .map(|(t, c)| (*t as f32 - mt) * (c[k] - mc))
                    .sum::<f32>()
                    / var_t;
            }
            vel
        } else {
            [0.0, 0.0]
        };
        let s = (vel[0].powi(2) + vel[1].powi(2)).sqrt();
        // Still if it moves less than half the slow speed.
        if s < 0.5 * speeds.slow {
            motion = Some(Motion::Static);
        } else {
            let dirs = [
                Motion::Left,
                Motion::Right,
                Motion::Up,
                Motion::Down,
                Motion::UpLeft,
                Motion::UpRight,
                Motion::DownLeft,
                Motion::DownRight,
            ];
            motion = dirs.iter().copied().max_by(|a, b| {
                let cos = |m: Motion| (m.direction()[0] * vel[0] + m.direction()[1] * vel[1]) / s;
                cos(*a).total_cmp(&cos(*b))
            });
            speed = Some(if s > 0.5 * (speeds.slow + speeds.fast) {
                Speed::Fast
            } else {
                Speed::Slow
            });
        }
    }
    Reading {
        centres,
        presence,
        motion,
        speed,
        colour: majority(&colours),
        shape: majority(&shapes),
    }
}

/// What a prompt asks for (one object).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Target {
    pub shape: Shape,
    pub colour: Colour,
    pub motion: Motion,
    pub speed: Speed,
}

impl From<&ObjectTruth> for Target {
    fn from(o: &ObjectTruth) -> Self {
        Self {
            shape: o.shape,
            colour: o.colour,
            motion: o.motion,
            speed: o.speed,
        }
    }
}

/// Accuracies of a set of readings against their targets, each in [0, 1].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Alignment {
    pub n: usize,
    pub direction: f32,
    /// Over moving targets only (speed words only appear with motion).
    pub speed: f32,
    pub colour: f32,
    pub shape: f32,
    /// Mean share of frames in which an object was found.
    pub presence: f32,
}

pub fn alignment(readings: &[Reading], targets: &[Target]) -> Alignment {
    let n = readings.len().min(targets.len());
    if n == 0 {
        return Alignment::default();
    }
    let share = |f: &dyn Fn(&Reading, &Target) -> bool| {
        readings
            .iter()
            .zip(targets)
            .filter(|(r, t)| f(r, t))
            .count() as f32
            / n as f32
    };
    let moving: Vec<(&Reading, &Target)> = readings
        .iter()
        .zip(targets)
        .filter(|(_, t)| t.motion != Motion::Static)
        .collect();
    Alignment {
        n,
        direction: share(&|r, t| r.motion == Some(t.motion)),
        speed: if moving.is_empty() {
            f32::NAN
        } else {
            moving
                .iter()
                .filter(|(r, t)| r.speed == Some(t.speed))
                .count() as f32
                / moving.len() as f32
        },
        colour: share(&|r, t| r.colour == Some(t.colour)),
        shape: share(&|r, t| r.shape == Some(t.shape)),
        presence: readings.iter().take(n).map(|r| r.presence).sum::<f32>() / n as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use freezeframe_data::world::Background;
    use freezeframe_data::{Split, World, WorldConfig};

    fn check(cfg: WorldConfig, n: u64) -> Alignment {
        let w = World::new(cfg).unwrap();
        let (mut rs, mut ts) = (Vec::new(), Vec::new());
        for i in 0..n {
            let c = w.clip(Split::Val, i);
            rs.push(read_video(&c.video, w.config.speeds));
            ts.push(Target::from(&c.objects[0]));
        }
        alignment(&rs, &ts)
    }

    #[test]
    fn real_synthetic_videos_are_read_correctly() {
        let a = check(
            WorldConfig {
                val_clips: 300,
                ..WorldConfig::default()
            },
            300,
        );
        assert!(
            a.direction >= 0.95 && a.colour >= 0.95 && a.shape >= 0.95 && a.speed >= 0.95,
            "{a:?}"
        );
        assert!(a.presence > 0.99, "{a:?}");
    }

    #[test]
    fn textured_backgrounds_do_not_confuse_the_reader() {
        let cfg = WorldConfig {
            val_clips: 200,
            backgrounds: vec![Background::Textured],
            ..WorldConfig::default()
        };
        let a = check(cfg, 200);
        assert!(
            a.direction >= 0.95 && a.colour >= 0.95 && a.shape >= 0.9,
            "{a:?}"
        );
    }

    #[test]
    fn an_empty_video_reads_as_nothing() {
        let v = Video::zeros(8, 3, 32, 32);
        let r = read_video(
            &v,
            Speeds {
                slow: 1.5,
                fast: 3.0,
            },
        );
        assert_eq!(
            (r.presence, r.motion, r.shape, r.colour),
            (0.0, None, None, None)
        );
        let t = Target {
            shape: Shape::Circle,
            colour: Colour::Red,
            motion: Motion::Left,
            speed: Speed::Slow,
        };
        let a = alignment(&[r], &[t]);
        assert_eq!((a.direction, a.colour, a.shape), (0.0, 0.0, 0.0));
    }
}
