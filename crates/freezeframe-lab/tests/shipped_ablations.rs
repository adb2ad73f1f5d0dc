//! Every ablation config the repository ships loads, its base run config loads with the budget
//! applied, and the image weights it names exist (a run config misfiled among them, or a path
//! that moved, fails here rather than in a user's hands).
use std::path::{Path, PathBuf};

use freezeframe_lab::AblationConfig;
use freezeframe_lab::explain::Identity;

#[test]
fn shipped_ablation_configs_load_with_their_base_and_image_weights() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/ablations");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let ab = AblationConfig::load(&f).unwrap_or_else(|e| panic!("{e}"));
        ab.base_config()
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if let Some(from) = ab
            .image
            .from
            .as_ref()
            .filter(|p| *p != Path::new("shipped"))
        {
            assert!(
                from.is_file(),
                "{}: [image] from = {}",
                f.display(),
                from.display()
            );
        }
    }
}

#[test]
fn the_study_starts_every_plan_from_the_image_model_itself() {
    // The study's wiring (`gated`) keeps the inflation identity with the shipped image model;
    // the old ungated `stream` wiring (run H) does not, which is the confound the gate removes.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let image = root.join("assets/image-model.safetensors");
    let study = AblationConfig::load(&root.join("configs/ablations/open-sora-freeze.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let base = study.base_config().unwrap_or_else(|e| panic!("{e}"));
    let gated = freezeframe_lab::explain::inflation_check(&base, &image).unwrap();
    assert_eq!(gated.temporal_pos, "gated");
    assert!(gated.max_abs_diff < 1e-5, "{gated:?}");
    let mut stream = base.clone();
    stream.model.temporal_pos = Some(freezeframe_model::TemporalPos::Stream);
    let stream = freezeframe_lab::explain::inflation_check(&stream, &image).unwrap();
    assert!(stream.max_abs_diff > 0.1, "{stream:?}");
    assert!(stream.max_abs_diff_weights < 1e-5, "{stream:?}");
}

#[test]
fn stream_with_frame_slots_keeps_the_identity_only_from_an_image_model_trained_at_them() {
    // Run M's wiring: `stream` with frame slots from the image model trained at slots 0..8
    // keeps the identity (frame f against the image model at slot f); from the shipped image
    // model, which never saw a frame's position, the same numbers hide the stream's offset and
    // the check must say so.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let base = freezeframe_train::RunConfig::load(&root.join("configs/calibration/slots-full.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let slots_image = root.join("assets/image-model-slots.safetensors");
    let check = freezeframe_lab::explain::inflation_check(&base, &slots_image).unwrap();
    assert_eq!((check.frame_slots, check.image_frame_slots), (8, Some(8)));
    assert!(check.max_abs_diff < 1e-5, "{check:?}");
    assert_eq!(check.identity(), Identity::Holds);
    let unseen = freezeframe_lab::explain::inflation_check(
        &base,
        &root.join("assets/image-model.safetensors"),
    )
    .unwrap();
    assert_eq!(unseen.image_frame_slots, None);
    assert_eq!(unseen.identity(), Identity::SlotsUnseen);
}
