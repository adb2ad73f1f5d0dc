//! The synthetic world: objects with a shape, a colour and a motion, captioned from their
//! attributes. Every knob is configuration; every sample is a pure function of
//! (seed, split, index) and keeps its ground truth.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::render::render;
use crate::video::Video;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Cross,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Red,
    Green,
    Blue,
    Yellow,
    Magenta,
    Cyan,
    White,
}

impl Colour {
    pub fn rgb(self) -> [f32; 3] {
        match self {
            Colour::Red => [0.95, 0.15, 0.15],
            Colour::Green => [0.15, 0.85, 0.2],
            Colour::Blue => [0.2, 0.35, 1.0],
            Colour::Yellow => [0.95, 0.9, 0.15],
            Colour::Magenta => [0.9, 0.2, 0.9],
            Colour::Cyan => [0.15, 0.9, 0.9],
            Colour::White => [0.95, 0.95, 0.95],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Motion {
    Left,
    Right,
    Up,
    Down,
    UpLeft,
    UpRight,
    DownLeft,
    DownRight,
    Static,
}

impl Motion {
    /// Unit direction in image coordinates (y grows downwards); diagonals are normalised.
    pub fn direction(self) -> [f32; 2] {
        let d = std::f32::consts::FRAC_1_SQRT_2;
        match self {
            Motion::Left => [-1.0, 0.0],
            Motion::Right => [1.0, 0.0],
            Motion::Up => [0.0, -1.0],
            Motion::Down => [0.0, 1.0],
            Motion::UpLeft => [-d, -d],
            Motion::UpRight => [d, -d],
            Motion::DownLeft => [-d, d],
            Motion::DownRight => [d, d],
            Motion::Static => [0.0, 0.0],
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            Motion::Left => "left",
            Motion::Right => "right",
            Motion::Up => "up",
            Motion::Down => "down",
            Motion::UpLeft => "up and left",
            Motion::UpRight => "up and right",
            Motion::DownLeft => "down and left",
            Motion::DownRight => "down and right",
            Motion::Static => "",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speed {
    Slow,
    Fast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Background {
    Plain,
    Textured,
}

/// Speeds in pixels per frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Speeds {
    pub slow: f32,
    pub fast: f32,
}

/// Every difficulty knob of the world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorldConfig {
    pub frames: usize,
    /// Frame height = width, pixels.
    pub size: usize,
    pub shapes: Vec<Shape>,
    pub colours: Vec<Colour>,
    pub motions: Vec<Motion>,
    pub speeds: Speeds,
    /// Object radius range in pixels, [min, max].
    pub object_size: [f32; 2],
    pub backgrounds: Vec<Background>,
    /// Probability that a clip holds a second object.
    pub two_objects: f64,
    /// Single frames with captions without motion words (image pre-training).
    pub image_mode: bool,
    /// Distinct training clips (indices 0..train_clips of the train split).
    pub train_clips: usize,
    /// Held-out clips, drawn from a disjoint seed stream.
    pub val_clips: usize,
    pub seed: u64,
    /// Real footage instead of the synthetic world: a clip cache made by `data prepare` …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<std::path::PathBuf>,
    /// … or an Open-Sora-style CSV, prepared (incrementally) into `<csv stem>.cache-TxS/`
    /// beside it with `frames` and `size` from this section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csv: Option<std::path::PathBuf>,
    /// `pixels` (the default: the synthetic world or a clip cache) or `latents`: `cache` then
    /// names a latent cache (`tools/latents/make_cache.py`), whose clips' sizes replace `frames`
    /// and `size`. Left out of a written config when `pixels`, so configs (and the study's
    /// cell keys) of pixel runs read as before.
    #[serde(skip_serializing_if = "DataKind::is_pixels")]
    pub kind: DataKind,
}

/// What a run trains on (`[data] kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    #[default]
    Pixels,
    Latents,
}

impl DataKind {
    pub fn is_pixels(&self) -> bool {
        *self == DataKind::Pixels
    }
}

impl Default for WorldConfig {
    /// The learnable default: 8×32×32, one object of radius 4–5 px on a plain background,
    /// four directions plus still, 1.5 (slow) or 3 (fast) px/frame — 10 or 21 px across a clip,
    /// well above the 1–1.5 px/frame at which a small STDiT failed to learn motion words.
    fn default() -> Self {
        Self {
            frames: 8,
            size: 32,
            shapes: ALL_SHAPES.to_vec(),
            colours: ALL_COLOURS.to_vec(),
            motions: vec![
                Motion::Left,
                Motion::Right,
                Motion::Up,
                Motion::Down,
                Motion::Static,
            ],
            speeds: Speeds {
                slow: 1.5,
                fast: 3.0,
            },
            object_size: [4.0, 5.0],
            backgrounds: vec![Background::Plain],
            two_objects: 0.0,
            image_mode: false,
            train_clips: 20_000,
            val_clips: 64,
            seed: 0,
            cache: None,
            csv: None,
            kind: DataKind::Pixels,
        }
    }
}

/// Train and held-out clips come from disjoint seed streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
}

/// Ground truth of one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectTruth {
    pub shape: Shape,
    pub colour: Colour,
    pub motion: Motion,
    pub speed: Speed,
    pub radius: f32,
    /// Per-frame centre (x, y) in pixels.
    pub centres: Vec<[f32; 2]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    pub video: Video,
    pub caption: String,
    pub objects: Vec<ObjectTruth>,
    pub background: Background,
}

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("data.{0} must not be empty")]
    EmptySet(&'static str),
    #[error("data.{field} = {value} is out of range: {why}")]
    OutOfRange {
        field: &'static str,
        value: String,
        why: String,
    },
}

/// Largest frame side, in pixels (`data.size`): PixArt-α's 1024 px.
pub const MAX_SIZE: usize = 1024;
/// Most frames in a clip (`data.frames`).
pub const MAX_FRAMES: usize = 512;
/// Most values (frames × size² × 3) in one clip: 2²⁶ floats, 256 MiB, so that a clip is
/// refused before it is allocated rather than exhausting memory while it is drawn.
pub const MAX_CLIP_VALUES: usize = 1 << 26;

impl WorldConfig {
    pub fn validate(&self) -> Result<(), WorldError> {
        self.validate_sizes()?;
        if self.shapes.is_empty() {
            return Err(WorldError::EmptySet("shapes"));
        }
        if self.colours.is_empty() {
            return Err(WorldError::EmptySet("colours"));
        }
        if self.motions.is_empty() {
            return Err(WorldError::EmptySet("motions"));
        }
        if self.backgrounds.is_empty() {
            return Err(WorldError::EmptySet("backgrounds"));
        }
        let range = |field, value: String, why: &str| {
            Err(WorldError::OutOfRange {
                field,
                value,
                why: why.to_string(),
            })
        };
        if self.kind == DataKind::Latents && (self.cache.is_none() || self.csv.is_some()) {
            return range(
                "kind",
                "\"latents\"".into(),
                "a latent run reads `cache = \"<latent cache folder>\"` (not `csv`)",
            );
        }
        if self.kind == DataKind::Latents && self.image_mode {
            return range("kind", "\"latents\"".into(), "image_mode reads pixel clips");
        }
        if self.kind == DataKind::Latents {
            // The cache decides the clips; the synthetic world's knobs are not read.
            return Ok(());
        }
        if self.frames == 0 {
            return range("frames", "0".into(), "need at least one frame");
        }
        if self.frames == 1 && !self.image_mode {
            return range(
                "frames",
                "1".into(),
                "one frame is an image: set image_mode = true (captions without motion)",
            );
        }
        let (slow, fast) = (self.speeds.slow, self.speeds.fast);
        if !(slow > 0.0 && slow.is_finite() && fast.is_finite() && fast >= slow) {
            return range(
                "speeds",
                format!("{:?}", self.speeds),
                "need 0 < slow ≤ fast, both finite",
            );
        }
        if self.size < 8 {
            return range(
                "size",
                self.size.to_string(),
                "frames must be at least 8 pixels",
            );
        }
        let [lo, hi] = self.object_size;
        if !(lo > 0.0 && hi >= lo && 2.0 * hi < self.size as f32) {
            return range(
                "object_size",
                format!("{:?}", self.object_size),
                "need 0 < min ≤ max < size/2",
            );
        }
        let travel =
            self.speeds.fast.max(self.speeds.slow) * (self.frames.saturating_sub(1)) as f32;
        if !self.image_mode && travel > self.size as f32 - 2.0 * hi {
            return range(
                "speeds",
                format!("{:?}", self.speeds),
                &format!(
                    "a fast object travels {travel} px, more than the {} px the frame leaves",
                    self.size as f32 - 2.0 * hi
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.two_objects) {
            return range(
                "two_objects",
                self.two_objects.to_string(),
                "a probability in [0, 1]",
            );
        }
        if self.train_clips == 0 || self.val_clips == 0 {
            return range(
                "train_clips",
                format!("{}/{}", self.train_clips, self.val_clips),
                "need clips in both splits",
            );
        }
        Ok(())
    }

    /// The upper bounds on frames and size, checked before anything is drawn.
    fn validate_sizes(&self) -> Result<(), WorldError> {
        let over = |field, value: usize, limit: usize| WorldError::OutOfRange {
            field,
            value: value.to_string(),
            why: format!("the limit is {limit}"),
        };
        if self.size > MAX_SIZE {
            return Err(over("size", self.size, MAX_SIZE));
        }
        if self.frames > MAX_FRAMES {
            return Err(over("frames", self.frames, MAX_FRAMES));
        }
        let values = self.frames * self.size * self.size * 3;
        if values > MAX_CLIP_VALUES {
            return Err(WorldError::OutOfRange {
                field: "size",
                value: self.size.to_string(),
                why: format!(
                    "{} frames of {}×{} RGB are {values} values a clip, above the limit \
                     {MAX_CLIP_VALUES}: fewer frames or a smaller size",
                    self.frames, self.size, self.size
                ),
            });
        }
        Ok(())
    }

    /// Frames per clip as rendered (1 in image mode).
    pub fn clip_frames(&self) -> usize {
        if self.image_mode { 1 } else { self.frames }
    }

    /// Every word a caption of this world can contain (the text encoder's vocabulary).
    pub fn vocabulary(&self) -> Vec<String> {
        let mut v: Vec<String> = [
            "a", "an", "and", "moves", "quickly", "slowly", "stays", "still",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        v.extend(ALL_SHAPES.iter().map(|s| s.word().to_string()));
        v.extend(ALL_COLOURS.iter().map(|c| c.word().to_string()));
        for w in ["left", "right", "up", "down"] {
            v.push(w.to_string());
        }
        v
    }
}

/// The caption word of an attribute ("red", "circle").
pub trait Word {
    fn word(&self) -> &'static str;
}

impl Word for Shape {
    fn word(&self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Cross => "cross",
        }
    }
}

impl Word for Colour {
    fn word(&self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Magenta => "magenta",
            Colour::Cyan => "cyan",
            Colour::White => "white",
        }
    }
}

pub const ALL_SHAPES: [Shape; 4] = [Shape::Circle, Shape::Square, Shape::Triangle, Shape::Cross];
pub const ALL_COLOURS: [Colour; 7] = [
    Colour::Red,
    Colour::Green,
    Colour::Blue,
    Colour::Yellow,
    Colour::Magenta,
    Colour::Cyan,
    Colour::White,
];

fn pick<T: Copy, R: Rng>(rng: &mut R, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// The caption of a set of objects.
pub fn caption(objects: &[ObjectTruth], image_mode: bool) -> String {
    let phrase = |o: &ObjectTruth| {
        let noun = format!("a {} {}", o.colour.word(), o.shape.word());
        if image_mode {
            noun
        } else if o.motion == Motion::Static {
            format!("{noun} stays still")
        } else {
            let adv = if o.speed == Speed::Fast {
                "quickly"
            } else {
                "slowly"
            };
            format!("{noun} moves {} {adv}", o.motion.words())
        }
    };
    objects.iter().map(phrase).collect::<Vec<_>>().join(" and ")
}

/// A configured world: draws clips by (split, index).
#[derive(Debug, Clone)]
pub struct World {
    pub config: WorldConfig,
}

impl World {
    pub fn new(config: WorldConfig) -> Result<Self, WorldError> {
        config.validate()?;
        Ok(Self { config })
    }

    fn rng(&self, split: Split, index: u64) -> ChaCha8Rng {
        let stream = match split {
            Split::Train => 0x7261_696e,
            Split::Val => 0x7661_6c00,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ (stream << 20));
        rng.set_stream(index);
        rng
    }

    fn draw_object<R: Rng>(&self, rng: &mut R) -> ObjectTruth {
        let c = &self.config;
        let frames = c.clip_frames();
        let motion = if c.image_mode {
            Motion::Static
        } else {
            pick(rng, &c.motions)
        };
        let speed = if rng.random_bool(0.5) {
            Speed::Fast
        } else {
            Speed::Slow
        };
        let px = match speed {
            Speed::Fast => c.speeds.fast,
            Speed::Slow => c.speeds.slow,
        };
        let radius = rng.random_range(c.object_size[0]..=c.object_size[1]);
        let [dx, dy] = motion.direction();
        let (vx, vy) = (dx * px, dy * px);
        let span = (frames - 1) as f32;
        // Start anywhere from which the whole path stays inside the frame.
        let lo_hi = |v: f32| {
            let lo = radius + (-v * span).max(0.0);
            let hi = c.size as f32 - radius - (v * span).max(0.0);
            (lo, hi.max(lo))
        };
        let (xl, xh) = lo_hi(vx);
        let (yl, yh) = lo_hi(vy);
        let x0 = rng.random_range(xl..=xh);
        let y0 = rng.random_range(yl..=yh);
        ObjectTruth {
            shape: pick(rng, &c.shapes),
            colour: pick(rng, &c.colours),
            motion,
            speed,
            radius,
            centres: (0..frames)
                .map(|f| [x0 + vx * f as f32, y0 + vy * f as f32])
                .collect(),
        }
    }

    /// The clip at `index` of `split`.
    pub fn clip(&self, split: Split, index: u64) -> Clip {
        let mut rng = self.rng(split, index);
        let mut objects = vec![self.draw_object(&mut rng)];
        if rng.random_bool(self.config.two_objects) {
            objects.push(self.draw_object(&mut rng));
        }
        let background = pick(&mut rng, &self.config.backgrounds);
        let bg_seed: u64 = rng.random();
        let video = render(&self.config, &objects, background, bg_seed);
        Clip {
            video,
            caption: caption(&objects, self.config.image_mode),
            objects,
            background,
        }
    }

    /// Number of clips in a split.
    pub fn len(&self, split: Split) -> usize {
        match split {
            Split::Train => self.config.train_clips,
            Split::Val => self.config.val_clips,
        }
    }

    pub fn is_empty(&self, split: Split) -> bool {
        self.len(split) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_are_deterministic_and_splits_differ() {
        let w = World::new(WorldConfig::default()).unwrap();
        assert_eq!(w.clip(Split::Train, 5), w.clip(Split::Train, 5));
        assert_ne!(w.clip(Split::Train, 5).video, w.clip(Split::Train, 6).video);
        assert_ne!(w.clip(Split::Train, 5).video, w.clip(Split::Val, 5).video);
        let other = World::new(WorldConfig {
            seed: 1,
            ..WorldConfig::default()
        })
        .unwrap();
        assert_ne!(
            w.clip(Split::Train, 5).video,
            other.clip(Split::Train, 5).video
        );
    }

    #[test]
    fn captions_follow_attributes_and_objects_stay_inside() {
        let w = World::new(WorldConfig {
            two_objects: 0.5,
            ..WorldConfig::default()
        })
        .unwrap();
        let vocab = w.config.vocabulary();
        for i in 0..200 {
            let clip = w.clip(Split::Train, i);
            for word in clip.caption.split(' ') {
                assert!(
                    vocab.contains(&word.to_string()),
                    "{word} not in vocabulary"
                );
            }
            for o in &clip.objects {
                assert!(clip.caption.contains(&format!(
                    "a {} {}",
                    o.colour.word(),
                    o.shape.word()
                )));
                for [x, y] in &o.centres {
                    assert!(*x >= o.radius - 1e-3 && *x <= 32.0 - o.radius + 1e-3);
                    assert!(*y >= o.radius - 1e-3 && *y <= 32.0 - o.radius + 1e-3);
                }
                let moved = o.centres.last().unwrap()[0] - o.centres[0][0];
                match o.motion {
                    Motion::Left => assert!(moved < 0.0),
                    Motion::Right => assert!(moved > 0.0),
                    Motion::Static => assert!(clip.caption.contains("stays still")),
                    _ => {}
                }
            }
        }
        assert_eq!(
            caption(&w.clip(Split::Train, 0).objects, true)
                .split(' ')
                .count()
                % 3,
            0,
            "image captions are 'a colour shape' phrases"
        );
    }

    #[test]
    fn validation_names_the_field() {
        let bad = WorldConfig {
            speeds: Speeds {
                slow: 1.0,
                fast: 9.0,
            },
            ..WorldConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("data.speeds")
        );
        let bad = WorldConfig {
            colours: vec![],
            ..WorldConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("data.colours")
        );
    }

    #[test]
    fn sizes_above_their_limits_are_refused_naming_the_key_and_limit() {
        let e = WorldConfig {
            size: 100_000,
            ..WorldConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("data.size = 100000") && e.contains("1024"),
            "{e}"
        );
        let e = WorldConfig {
            frames: 100_000_000,
            ..WorldConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("data.frames") && e.contains("512"), "{e}");
        // Each within its own limit, too large together.
        let e = WorldConfig {
            frames: 512,
            size: 1024,
            ..WorldConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("values a clip"), "{e}");
    }
}
