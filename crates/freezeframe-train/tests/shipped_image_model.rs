//! The shipped image model (`assets/image-model.safetensors`, made by
//! `configs/image-model.toml`) loads under its config and draws the prompted object from pure
//! noise: one object of the prompt's colour and shape.
use std::path::PathBuf;

use burn::prelude::*;
use freezeframe_data::world::{Colour, Shape};
use freezeframe_eval::read_video;
use freezeframe_model::Stdit;
use freezeframe_train::RunConfig;
use freezeframe_train::checkpoint::load_model;
use freezeframe_train::sample::{SampleSpec, encoder_for, generate};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn shipped_image_model_draws_one_object_of_the_prompted_colour_and_shape() {
    let cfg = RunConfig::load(&repo().join("configs/image-model.toml")).unwrap();
    let mcfg = cfg.model_config().unwrap();
    let dev = Device::flex();
    let model = load_model(
        Stdit::new(&mcfg, &dev),
        &repo().join("assets/image-model.safetensors"),
    )
    .unwrap();
    let encoder = encoder_for(&cfg).unwrap();
    let prompts: Vec<String> = [
        "a red circle",
        "a blue square",
        "a green cross",
        "a yellow triangle",
    ]
    .iter()
    .flat_map(|p| [p.to_string(), p.to_string()])
    .collect();
    let spec = SampleSpec {
        steps: 20,
        cfg: 4.0,
        seed: 0,
        shape: [1, 3, mcfg.height, mcfg.width],
    };
    let videos = generate(&model, &encoder, &prompts, spec, &dev, |_| {}).unwrap();
    let want = [
        (Colour::Red, Shape::Circle),
        (Colour::Blue, Shape::Square),
        (Colour::Green, Shape::Cross),
        (Colour::Yellow, Shape::Triangle),
    ];
    let mut shapes_right = 0;
    for (i, v) in videos.iter().enumerate() {
        let r = read_video(v, &cfg.data);
        assert_eq!(r.presence, 1.0, "{}: no object", prompts[i]);
        assert_eq!(r.parts, vec![1], "{}: {:?} objects", prompts[i], r.parts);
        assert_eq!(r.colour, Some(want[i / 2].0), "{}", prompts[i]);
        shapes_right += usize::from(r.shape == Some(want[i / 2].1));
    }
    // The first shipped model (3000 steps) drew blobs: 28 % of shapes read right over 64
    // prompts, near chance (25 %). The 12 000-step model reads 100 % there; allow one miss in 8.
    assert!(shapes_right >= 7, "{shapes_right} of 8 shapes read as prompted");
}
