//! The shipped image models load under their config and draw the prompted object from pure
//! noise: the shipped one (`assets/image-model-slots.safetensors`,
//! `configs/image-model-slots.toml`, trained at every frame slot) and the one without slots
//! (`assets/image-model.safetensors`, `configs/image-model.toml`) one object of the prompt's
//! colour, at every frame slot for the first; v2 (`assets/image-model-v2.safetensors`, 12 000
//! steps) its shape too.
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

/// Samples two of each prompt from pure noise with the model in `file`; per video, whether it
/// holds one object of the prompted colour, and whether its shape reads as prompted.
fn draw(file: &str) -> Vec<(String, bool, bool)> {
    draw_at(file, "configs/image-model.toml", 0)
}

/// [`draw`] with the model's config and every image at frame slot `slot`.
fn draw_at(file: &str, config: &str, slot: usize) -> Vec<(String, bool, bool)> {
    let cfg = RunConfig::load(&repo().join(config)).unwrap();
    let mcfg = cfg.model_config().unwrap();
    let dev = Device::flex();
    let model = load_model(Stdit::new(&mcfg, &dev), &repo().join(file)).unwrap();
    let encoder = encoder_for(&cfg).unwrap();
    let want = [
        ("a red circle", Colour::Red, Shape::Circle),
        ("a blue square", Colour::Blue, Shape::Square),
        ("a green cross", Colour::Green, Shape::Cross),
        ("a yellow triangle", Colour::Yellow, Shape::Triangle),
    ];
    let prompts: Vec<String> = want
        .iter()
        .flat_map(|p| [p.0.to_string(), p.0.to_string()])
        .collect();
    let spec = SampleSpec {
        steps: 20,
        cfg: 4.0,
        seed: 0,
        shape: [1, 3, mcfg.height, mcfg.width],
        slot,
    };
    let videos = generate(&model, &encoder, &prompts, spec, &dev, |_| {}).unwrap();
    videos
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let r = read_video(v, &cfg.data);
            let (_, colour, shape) = want[i / 2];
            let one = r.presence == 1.0 && r.parts == vec![1] && r.colour == Some(colour);
            (prompts[i].clone(), one, r.shape == Some(shape))
        })
        .collect()
}

#[test]
fn shipped_image_model_draws_one_object_of_the_prompted_colour() {
    for (prompt, one, _) in draw("assets/image-model.safetensors") {
        assert!(one, "{prompt}: not one object of the prompted colour");
    }
}

#[test]
fn the_image_model_with_frame_slots_draws_one_object_at_its_first_and_last_slot() {
    for slot in [0, 7] {
        let drawn = draw_at(
            "assets/image-model-slots.safetensors",
            "configs/image-model-slots.toml",
            slot,
        );
        // Its evaluation draws one object of the prompted colour in 98.4 % of 64 prompts (the
        // one without slots: 100 %); allow one miss in these 8.
        let misses: Vec<_> = drawn.iter().filter(|d| !d.1).map(|d| &d.0).collect();
        assert!(
            misses.len() <= 1,
            "slot {slot}: not one object of the prompted colour for {misses:?}"
        );
    }
}

#[test]
fn image_model_v2_also_draws_the_prompted_shape() {
    let drawn = draw("assets/image-model-v2.safetensors");
    for (prompt, one, _) in &drawn {
        assert!(one, "{prompt}: not one object of the prompted colour");
    }
    // The default (3000-step) model reads 1 of these 8 shapes right (28 % over 64 prompts,
    // near chance); v2 (12 000 steps) 100 % over 64. Allow one miss in 8.
    let right = drawn.iter().filter(|d| d.2).count();
    assert!(right >= 7, "{right} of 8 shapes read as prompted");
}
