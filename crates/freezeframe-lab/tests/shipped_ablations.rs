//! Every ablation config the repository ships loads, its base run config loads with the budget
//! applied, and the image weights it names exist (a run config misfiled among them, or a path
//! that moved, fails here rather than in a user's hands).
use std::path::{Path, PathBuf};

use freezeframe_lab::AblationConfig;

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
