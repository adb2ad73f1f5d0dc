//! Text-use probes: does the model use a caption word? For each word class (direction,
//! still-or-moving, colour, shape) the held-out clips it applies to are scored with that word
//! swapped for a wrong one, and the probe is the loss increase over the true captions. A model that ignores the word shows no gap. The
//! true and swapped captions see the same noise, so the gap is a paired difference; repeating
//! it over several noise draws gives its spread. No sampling is needed.
use burn::prelude::*;
use freezeframe_data::world::{Motion, ObjectTruth, caption};
use freezeframe_data::{Split, Video, World};
use freezeframe_model::{Stdit, TextEncoder};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::validate::{ValLoss, loss_on};

/// The word classes a probe can swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WordClass {
    /// Moving clips only: the opposite direction (left ↔ right, up ↔ down).
    Direction,
    /// "stays still" ↔ "moves left <speed>".
    Stillness,
    Colour,
    Shape,
}

impl WordClass {
    /// The class's name in `eval.json` (its serde name) and in a claim's `probe_<class>`.
    pub fn key(self) -> &'static str {
        match self {
            WordClass::Direction => "direction",
            WordClass::Stillness => "stillness",
            WordClass::Colour => "colour",
            WordClass::Shape => "shape",
        }
    }
}

/// Every class, in report order.
pub const CLASSES: [WordClass; 4] = [
    WordClass::Direction,
    WordClass::Stillness,
    WordClass::Colour,
    WordClass::Shape,
];

/// The opposite direction; `None` for a still object.
fn opposite(m: Motion) -> Option<Motion> {
    Some(match m {
        Motion::Left => Motion::Right,
        Motion::Right => Motion::Left,
        Motion::Up => Motion::Down,
        Motion::Down => Motion::Up,
        Motion::UpLeft => Motion::DownRight,
        Motion::DownRight => Motion::UpLeft,
        Motion::UpRight => Motion::DownLeft,
        Motion::DownLeft => Motion::UpRight,
        Motion::Static => return None,
    })
}

/// The next item of `list` after `x` (cyclic); `None` when the list offers no other value.
fn next_of<T: Copy + PartialEq>(list: &[T], x: T) -> Option<T> {
    let i = list.iter().position(|v| *v == x)?;
    (list.len() > 1).then(|| list[(i + 1) % list.len()])
}

/// The caption of `objects` with the first object's `class` word made wrong, or `None` where
/// the class does not apply (no other value in the world; no motion words in image mode; no
/// direction on a still object). Stillness swaps "stays still" for the world's first motion
/// and a motion for "stays still".
pub fn swapped_caption(world: &World, objects: &[ObjectTruth], class: WordClass) -> Option<String> {
    let c = &world.config;
    let mut objs = objects.to_vec();
    let first = objs.first_mut()?;
    match class {
        WordClass::Direction | WordClass::Stillness if c.image_mode => return None,
        // Only motions the world has: a word the model never trained on says nothing about
        // whether it uses the words it did.
        WordClass::Direction => {
            first.motion = opposite(first.motion).filter(|m| c.motions.contains(m))?;
        }
        WordClass::Stillness if first.motion == Motion::Static => {
            first.motion = *c.motions.iter().find(|m| **m != Motion::Static)?;
        }
        WordClass::Stillness => {
            first.motion = *c.motions.iter().find(|m| **m == Motion::Static)?;
        }
        WordClass::Colour => first.colour = next_of(&c.colours, first.colour)?,
        WordClass::Shape => first.shape = next_of(&c.shapes, first.shape)?,
    }
    Some(caption(&objs, c.image_mode))
}

/// One probe: the loss gap per noise draw, its mean and spread.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub class: WordClass,
    /// Swapped-caption loss minus true-caption loss, one per noise draw.
    #[serde(deserialize_with = "freezeframe_eval::nan::vec_f32")]
    pub gaps: Vec<f32>,
    #[serde(deserialize_with = "freezeframe_eval::nan::f32")]
    pub mean: f32,
    /// Sample standard deviation of `gaps` (0 with a single draw).
    #[serde(deserialize_with = "freezeframe_eval::nan::f32")]
    pub spread: f32,
    /// (t, gap) per validation timestep, averaged over the draws: where in the denoising the
    /// model uses the word (layout and motion are decided at high t).
    #[serde(deserialize_with = "freezeframe_eval::nan::pairs_f32")]
    pub by_t: Vec<(f32, f32)>,
}

/// Runs every probe on the first `n` held-out clips of `world` that it applies to, each over
/// `draws` noise draws. Classes that apply to no clip are left out.
pub fn text_probes<E: TextEncoder + ?Sized>(
    model: &Stdit,
    world: &World,
    encoder: &E,
    n: usize,
    draws: usize,
    device: &Device,
) -> Result<Vec<Probe>, TrainError> {
    let n = n.min(world.len(Split::Val)).max(1);
    let draws = draws.max(1);
    let clips: Vec<_> = (0..n as u64).map(|i| world.clip(Split::Val, i)).collect();
    // True-caption losses per subset of clips (colour and shape share the full set).
    let mut base_cache: Vec<(Vec<usize>, Vec<ValLoss>)> = Vec::new();
    let mut out = Vec::new();
    for class in CLASSES {
        let (idx, swapped): (Vec<usize>, Vec<String>) = clips
            .iter()
            .enumerate()
            .filter_map(|(i, c)| swapped_caption(world, &c.objects, class).map(|s| (i, s)))
            .unzip();
        if idx.is_empty() {
            continue;
        }
        let videos: Vec<&Video> = idx.iter().map(|&i| &clips[i].video).collect();
        let base = match base_cache.iter().find(|(k, _)| *k == idx) {
            Some((_, b)) => b.clone(),
            None => {
                let truth: Vec<String> = idx.iter().map(|&i| clips[i].caption.clone()).collect();
                let b: Vec<ValLoss> = (0..draws as u64)
                    .map(|d| loss_on(model, encoder, &videos, &truth, d + 1, device))
                    .collect::<Result<_, _>>()?;
                base_cache.push((idx.clone(), b.clone()));
                b
            }
        };
        out.push(probe_gaps(class, &base, |d| {
            loss_on(model, encoder, &videos, &swapped, d as u64 + 1, device)
        })?);
    }
    Ok(out)
}

/// The probe of `class` from the true-caption losses of each draw and a scorer of the swapped
/// captions for draw d.
fn probe_gaps(
    class: WordClass,
    base: &[ValLoss],
    mut swapped: impl FnMut(usize) -> Result<ValLoss, TrainError>,
) -> Result<Probe, TrainError> {
    let draws = base.len();
    let mut gaps = Vec::with_capacity(draws);
    let mut by_t: Vec<(f32, f32)> = base[0].by_t.iter().map(|(t, _)| (*t, 0.0)).collect();
    for (d, b) in base.iter().enumerate() {
        let l = swapped(d)?;
        gaps.push(l.mean - b.mean);
        for (k, ((_, x), (_, y))) in l.by_t.iter().zip(&b.by_t).enumerate() {
            by_t[k].1 += (x - y) / draws as f32;
        }
    }
    let mean = gaps.iter().sum::<f32>() / draws as f32;
    let spread = if draws > 1 {
        (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f32>() / (draws - 1) as f32).sqrt()
    } else {
        0.0
    };
    Ok(Probe {
        class,
        gaps,
        mean,
        spread,
        by_t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use freezeframe_data::WorldConfig;
    use freezeframe_model::text::words;

    #[test]
    fn a_class_key_is_its_name_in_eval_json() {
        for class in CLASSES {
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(json, format!("\"{}\"", class.key()));
        }
    }

    #[test]
    fn swaps_change_exactly_the_probed_word() {
        let w = World::new(WorldConfig::default()).unwrap();
        let (colours, shapes): (Vec<&str>, Vec<&str>) = (
            ["red", "green", "blue", "yellow", "magenta", "cyan", "white"].to_vec(),
            ["circle", "square", "triangle", "cross"].to_vec(),
        );
        let directions = ["left", "right", "up", "down"];
        for i in 0..60 {
            let c = w.clip(Split::Val, i);
            let still = c.objects[0].motion == Motion::Static;
            for class in CLASSES {
                let Some(s) = swapped_caption(&w, &c.objects, class) else {
                    assert!(
                        class == WordClass::Direction && still,
                        "{class:?}: {}",
                        c.caption
                    );
                    continue;
                };
                let (a, b) = (words(&s), words(&c.caption));
                let changed: Vec<(&String, &String)> =
                    a.iter().zip(&b).filter(|(x, y)| x != y).collect();
                match class {
                    WordClass::Colour | WordClass::Shape | WordClass::Direction => {
                        let kind: &[&str] = match class {
                            WordClass::Colour => &colours,
                            WordClass::Shape => &shapes,
                            _ => &directions,
                        };
                        assert_eq!(a.len(), b.len(), "{s} / {}", c.caption);
                        assert_eq!(changed.len(), 1, "{s} / {}", c.caption);
                        let (new, old) = changed[0];
                        assert!(kind.contains(&new.as_str()) && kind.contains(&old.as_str()));
                    }
                    WordClass::Stillness => {
                        assert_eq!(still, s.contains("moves"), "{s} / {}", c.caption);
                        assert_eq!(a[..3], b[..3], "the object phrase is kept");
                    }
                }
            }
        }
    }

    #[test]
    fn swaps_stay_inside_the_worlds_vocabulary_of_motions() {
        // A world without "left" or "still": no swap may introduce them.
        let w = World::new(WorldConfig {
            motions: vec![Motion::Right, Motion::Up],
            ..WorldConfig::default()
        })
        .unwrap();
        for i in 0..30 {
            let c = w.clip(Split::Val, i);
            assert_eq!(swapped_caption(&w, &c.objects, WordClass::Direction), None);
            assert_eq!(swapped_caption(&w, &c.objects, WordClass::Stillness), None);
        }
        let img = World::new(WorldConfig {
            image_mode: true,
            ..WorldConfig::default()
        })
        .unwrap();
        let c = img.clip(Split::Val, 0);
        assert_eq!(
            swapped_caption(&img, &c.objects, WordClass::Direction),
            None
        );
        assert_eq!(
            swapped_caption(&img, &c.objects, WordClass::Stillness),
            None
        );
    }

    #[test]
    fn probe_gaps_are_paired_differences_with_their_spread() {
        let loss = |m: f32| ValLoss {
            mean: m,
            by_t: vec![(0.5, m)],
        };
        let base = [loss(1.0), loss(2.0), loss(3.0)];
        let p = probe_gaps(WordClass::Colour, &base, |d| {
            Ok(loss(d as f32 + 1.0 + 0.1 * d as f32))
        })
        .unwrap();
        assert_eq!(p.gaps.len(), 3);
        assert!((p.mean - 0.1).abs() < 1e-6, "{p:?}");
        assert!((p.spread - 0.1).abs() < 1e-6, "{p:?}");
        assert!((p.by_t[0].1 - 0.1).abs() < 1e-6, "{p:?}");
    }
}
