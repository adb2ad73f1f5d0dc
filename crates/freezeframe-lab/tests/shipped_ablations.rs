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
    // The study's wiring (`stream` with frame slots, from the shipped image model trained at
    // them) keeps the inflation identity; so does the fifth session's `gated` study from the
    // image model without slots; the ungated `stream` from that model (run H) does not, which
    // is the confound both remove; and `stream` with slots from an image model that never saw
    // them is caught although its numbers agree.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let check = |config: &str, image: &str| {
        let study = AblationConfig::load(&root.join(config)).unwrap_or_else(|e| panic!("{e}"));
        let base = study.base_config().unwrap_or_else(|e| panic!("{e}"));
        freezeframe_lab::explain::inflation_check(&base, &root.join(image)).unwrap()
    };
    let slots = check(
        "configs/ablations/open-sora-freeze.toml",
        "assets/image-model-slots.safetensors",
    );
    assert_eq!(slots.temporal_pos, "stream");
    assert_eq!((slots.frame_slots, slots.image_frame_slots), (8, Some(8)));
    assert!(slots.max_abs_diff < 1e-5, "{slots:?}");
    assert_eq!(slots.identity(), Identity::Holds);
    // The two-by-two study's base (caption_to_temporal's zero-initialised y_cond) keeps it too.
    let two = check(
        "configs/ablations/open-sora-freeze-2x2.toml",
        "assets/image-model-slots.safetensors",
    );
    assert!(two.max_abs_diff < 1e-5, "{two:?}");
    assert_eq!(two.identity(), Identity::Holds);
    let unseen = check(
        "configs/ablations/open-sora-freeze.toml",
        "assets/image-model.safetensors",
    );
    assert_eq!(unseen.image_frame_slots, None);
    assert_eq!(unseen.identity(), Identity::SlotsUnseen);
    let gated = check(
        "configs/ablations/open-sora-freeze-gated.toml",
        "assets/image-model.safetensors",
    );
    assert_eq!(gated.temporal_pos, "gated");
    assert_eq!(gated.identity(), Identity::Holds);
    let stream = check(
        "configs/ablations/calibration-seeds.toml",
        "assets/image-model.safetensors",
    );
    assert_eq!(stream.temporal_pos, "stream");
    assert!(stream.max_abs_diff > 0.1, "{stream:?}");
    assert!(stream.max_abs_diff_weights < 1e-5, "{stream:?}");
    assert_eq!(stream.identity(), Identity::StreamOffset);
}

#[test]
fn the_embedded_image_model_is_the_one_trained_at_frame_slots() {
    // What `[image] from = "shipped"` and the demo start from: the bytes in the binary, written
    // out as the lab writes them, must carry the slots and keep the study's identity.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::temp_dir().join(format!("ff-shipped-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let weights = freezeframe_lab::image::shipped(&dir).unwrap();
    let study = AblationConfig::load(&root.join("configs/ablations/open-sora-freeze.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let base = study.base_config().unwrap_or_else(|e| panic!("{e}"));
    let check = freezeframe_lab::explain::inflation_check(&base, &weights.path).unwrap();
    assert_eq!(check.image_frame_slots, Some(8), "{check:?}");
    assert_eq!(check.identity(), Identity::Holds);
    let _ = std::fs::remove_dir_all(&dir);
}
