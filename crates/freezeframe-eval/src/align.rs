//! Text alignment for synthetic prompts, measured analytically: find the object, track its
//! centre, read off direction, speed class, colour and shape, and compare with the prompt's
//! attributes.
//!
//! The segmentation relies on the synthetic world's contract: objects are bright, saturated
//! palette colours (some channel ≥ 0.9) on dark backgrounds (every channel ≤ ~0.4), so a pixel
//! whose brightest channel exceeds 0.5 is object (for anti-aliased edges: more than half
//! covered). It is not meant for real footage.
use freezeframe_data::Video;
use freezeframe_data::WorldConfig;
use freezeframe_data::render::{area_factor, inside};
use freezeframe_data::world::{ALL_COLOURS, ALL_SHAPES, Colour, Motion, ObjectTruth, Shape, Speed};
use serde::{Deserialize, Serialize};

const OBJECT_LEVEL: f32 = 0.5;
/// Pixels a frame needs for the object to count as present (a radius-2 disc has ~12).
const MIN_AREA: usize = 6;
/// cos 22.5°: half the angle between neighbouring directions of the eight-motion world.
const MAX_ANGLE_COS: f32 = 0.923_879_5;
/// Pixels a connected group needs to count as an object of its own when counting objects: a
/// 2×2 blob counts, a one- or two-pixel speck of sampling noise does not.
const MIN_PART: usize = 3;

/// What the analysis read from one video.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    /// Per frame, the object's centre when present.
    pub centres: Vec<Option<[f32; 2]>>,
    /// Per frame, the number of separate objects (connected groups of object pixels).
    pub parts: Vec<usize>,
    /// The tracked centre's motion, when the object was found in two frames or more.
    pub track: Option<Track>,
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

/// Connected groups (8-neighbourhood) of at least [`MIN_PART`] object pixels: the objects a
/// person would count in the frame.
fn count_parts(mask: &[bool], w: usize) -> usize {
    let h = mask.len() / w.max(1);
    let mut seen = vec![false; mask.len()];
    let mut parts = 0;
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut size = 0;
        while let Some(i) = stack.pop() {
            size += 1;
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            for (dx, dy) in [
                (-1, -1),
                (0, -1),
                (1, -1),
                (-1, 0),
                (1, 0),
                (-1, 1),
                (0, 1),
                (1, 1),
            ] {
                let (nx, ny) = (x + dx, y + dy);
                if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                    continue;
                }
                let j = ny as usize * w + nx as usize;
                if mask[j] && !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        parts += (size >= MIN_PART) as usize;
    }
    parts
}

/// Motion of a tracked centre: what "too static" means for the synthetic world, free of the
/// outline flicker that optical flow reads as motion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Track {
    /// |c_last − c_first| / (t_last − t_first), px per frame.
    pub net_speed: f32,
    /// Mean |Δc| per frame over consecutive frames where the object was found.
    pub path_speed: f32,
    /// Net over path: 1 for a straight glide, near 0 for jitter in place (0 when still).
    pub straightness: f32,
}

/// The track of per-frame centres (`None` where the object was not found).
pub fn track(centres: &[Option<[f32; 2]>]) -> Option<Track> {
    let present: Vec<(usize, [f32; 2])> = centres
        .iter()
        .enumerate()
        .filter_map(|(t, c)| c.map(|c| (t, c)))
        .collect();
    let (&(t0, c0), &(t1, c1)) = (present.first()?, present.last()?);
    if t1 == t0 {
        return None;
    }
    let dist = |a: [f32; 2], b: [f32; 2]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
    let net_speed = dist(c0, c1) / (t1 - t0) as f32;
    let path: f32 = present.windows(2).map(|p| dist(p[0].1, p[1].1)).sum();
    let path_speed = path / (t1 - t0) as f32;
    Some(Track {
        net_speed,
        path_speed,
        straightness: if path > 1e-6 {
            dist(c0, c1) / path
        } else {
            0.0
        },
    })
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

/// Reads one video of the synthetic world `world` (its speeds, px per frame, and the motions
/// it has: a direction is read as the nearest of the world's own).
pub fn read_video(v: &Video, world: &WorldConfig) -> Reading {
    let speeds = world.speeds;
    let mut centres = Vec::with_capacity(v.frames);
    let mut parts = Vec::with_capacity(v.frames);
    let (mut shapes, mut colours) = (Vec::new(), Vec::new());
    for t in 0..v.frames {
        let mask = object_mask(v, t);
        parts.push(count_parts(&mask, v.width));
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
            let moving: Vec<Motion> = world
                .motions
                .iter()
                .copied()
                .filter(|m| *m != Motion::Static)
                .collect();
            let cos = |m: Motion| (m.direction()[0] * vel[0] + m.direction()[1] * vel[1]) / s;
            // The nearest of the world's motions, if within 22.5° of it: a diagonal glide in a
            // four-direction world reads as no listed motion, not as the closer axis.
            motion = moving
                .iter()
                .copied()
                .max_by(|a, b| cos(*a).total_cmp(&cos(*b)))
                .filter(|m| cos(*m) >= MAX_ANGLE_COS);
            speed = Some(if s > 0.5 * (speeds.slow + speeds.fast) {
                Speed::Fast
            } else {
                Speed::Slow
            });
        }
    }
    Reading {
        track: track(&centres),
        centres,
        parts,
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

/// Accuracies of a set of readings against their targets, each in [0, 1], and the tracked
/// motion of the prompts that ask for motion. NaN where a figure does not apply (no moving
/// prompt).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alignment {
    pub n: usize,
    #[serde(deserialize_with = "crate::nan::f32")]
    pub direction: f32,
    /// Direction accuracy over moving targets only (chance: one over the world's directions).
    #[serde(deserialize_with = "crate::nan::f32")]
    pub direction_moving: f32,
    /// Over moving targets only (speed words only appear with motion).
    #[serde(deserialize_with = "crate::nan::f32")]
    pub speed: f32,
    #[serde(deserialize_with = "crate::nan::f32")]
    pub colour: f32,
    #[serde(deserialize_with = "crate::nan::f32")]
    pub shape: f32,
    /// Mean share of frames in which an object was found.
    #[serde(deserialize_with = "crate::nan::f32")]
    pub presence: f32,
    /// Share of all frames that hold exactly one object.
    #[serde(deserialize_with = "crate::nan::f32")]
    pub one_object: f32,
    /// Moving targets with a track (the object found in two frames or more): mean net speed,
    /// px per frame. Videos without a track are left out of the tracked figures (their share
    /// is `untracked`), so "no object" is never read as "too static".
    #[serde(deserialize_with = "crate::nan::f32")]
    pub net_speed: f32,
    /// Moving targets with a track: mean path speed, px per frame.
    #[serde(deserialize_with = "crate::nan::f32")]
    pub path_speed: f32,
    /// Moving targets with a track: mean straightness.
    #[serde(deserialize_with = "crate::nan::f32")]
    pub straightness: f32,
    /// Moving targets with a track whose net speed is below half the slow speed: "too static".
    #[serde(deserialize_with = "crate::nan::f32")]
    pub tracked_static_rate: f32,
    /// Share of moving targets without a track.
    #[serde(deserialize_with = "crate::nan::f32")]
    pub untracked: f32,
}

fn share_of<T>(items: &[T], f: impl Fn(&T) -> bool) -> f32 {
    if items.is_empty() {
        f32::NAN
    } else {
        items.iter().filter(|x| f(x)).count() as f32 / items.len() as f32
    }
}

fn mean_of<T>(items: &[T], f: impl Fn(&T) -> Option<f32>) -> f32 {
    let v: Vec<f32> = items.iter().filter_map(f).collect();
    if v.is_empty() {
        f32::NAN
    } else {
        v.iter().sum::<f32>() / v.len() as f32
    }
}

/// `slow` is the world's slow speed (px per frame), the scale of "static".
pub fn alignment(readings: &[Reading], targets: &[Target], slow: f32) -> Alignment {
    let n = readings.len().min(targets.len());
    if n == 0 {
        return Alignment::default();
    }
    let pairs: Vec<(&Reading, &Target)> = readings.iter().zip(targets).take(n).collect();
    let moving: Vec<(&Reading, &Target)> = pairs
        .iter()
        .copied()
        .filter(|(_, t)| t.motion != Motion::Static)
        .collect();
    let tracks: Vec<Track> = moving.iter().filter_map(|(r, _)| r.track).collect();
    let frames: Vec<usize> = pairs.iter().flat_map(|(r, _)| r.parts.clone()).collect();
    Alignment {
        n,
        direction: share_of(&pairs, |(r, t)| r.motion == Some(t.motion)),
        direction_moving: share_of(&moving, |(r, t)| r.motion == Some(t.motion)),
        speed: share_of(&moving, |(r, t)| r.speed == Some(t.speed)),
        colour: share_of(&pairs, |(r, t)| r.colour == Some(t.colour)),
        shape: share_of(&pairs, |(r, t)| r.shape == Some(t.shape)),
        presence: mean_of(&pairs, |(r, _)| Some(r.presence)),
        one_object: share_of(&frames, |&k| k == 1),
        net_speed: mean_of(&tracks, |k| Some(k.net_speed)),
        path_speed: mean_of(&tracks, |k| Some(k.path_speed)),
        straightness: mean_of(&tracks, |k| Some(k.straightness)),
        tracked_static_rate: share_of(&tracks, |k| k.net_speed < 0.5 * slow),
        untracked: share_of(&moving, |(r, _)| r.track.is_none()),
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
            rs.push(read_video(&c.video, &w.config));
            ts.push(Target::from(&c.objects[0]));
        }
        alignment(&rs, &ts, w.config.speeds.slow)
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
    fn objects_are_counted_by_connected_groups() {
        let w = 8;
        let mut m = vec![false; w * w];
        assert_eq!(count_parts(&m, w), 0);
        for i in [0, 1, 8, 9] {
            m[i] = true; // a 2×2 blob
        }
        assert_eq!(count_parts(&m, w), 1);
        m[63] = true; // a one-pixel speck does not count
        assert_eq!(count_parts(&m, w), 1);
        for i in [36, 45, 54] {
            m[i] = true; // a diagonal line of three: one group under 8-connectivity
        }
        assert_eq!(count_parts(&m, w), 2);
    }

    #[test]
    fn tracked_figures_cover_moving_prompts_with_a_track() {
        let jitter = Track {
            net_speed: 0.1,
            path_speed: 0.4,
            straightness: 0.25,
        };
        let glide = Track {
            net_speed: 1.5,
            path_speed: 1.5,
            straightness: 1.0,
        };
        let reading = |track: Option<Track>, motion| Reading {
            centres: vec![],
            parts: vec![1, 1],
            track,
            presence: if track.is_some() { 1.0 } else { 0.0 },
            motion,
            speed: None,
            colour: None,
            shape: None,
        };
        let target = |motion| Target {
            shape: Shape::Circle,
            colour: Colour::Red,
            motion,
            speed: Speed::Fast,
        };
        let rs = [
            reading(Some(glide), Some(Motion::Left)),
            reading(Some(jitter), Some(Motion::Static)),
            reading(None, None),
            reading(Some(jitter), Some(Motion::Static)),
        ];
        let ts = [
            target(Motion::Left),
            target(Motion::Right),
            target(Motion::Up),
            target(Motion::Static),
        ];
        let a = alignment(&rs, &ts, 1.0);
        assert_eq!(a.direction_moving, 1.0 / 3.0);
        assert_eq!(
            a.direction, 0.5,
            "the still prompt read still counts overall"
        );
        assert_eq!(a.untracked, 1.0 / 3.0);
        assert!((a.net_speed - 0.8).abs() < 1e-6, "{a:?}");
        assert_eq!(a.tracked_static_rate, 0.5);
        assert_eq!(a.one_object, 1.0);
    }

    #[test]
    fn a_diagonal_glide_is_no_direction_of_a_four_direction_world() {
        let mut cfg = WorldConfig {
            motions: vec![Motion::UpRight],
            val_clips: 5,
            ..WorldConfig::default()
        };
        let w = World::new(cfg.clone()).unwrap();
        let clip = w.clip(Split::Val, 0);
        assert_eq!(read_video(&clip.video, &cfg).motion, Some(Motion::UpRight));
        cfg.motions = vec![Motion::Left, Motion::Right, Motion::Up, Motion::Down];
        assert_eq!(read_video(&clip.video, &cfg).motion, None);
    }

    #[test]
    fn an_empty_video_reads_as_nothing() {
        let v = Video::zeros(8, 3, 32, 32);
        let r = read_video(&v, &WorldConfig::default());
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
        let a = alignment(&[r], &[t], 1.5);
        assert_eq!((a.direction, a.colour, a.shape), (0.0, 0.0, 0.0));
    }
}
