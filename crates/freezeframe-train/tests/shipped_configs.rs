//! Every run config the repository ships loads, and the paths in it point where the README
//! says: runs into the repository's `runs/`, image weights at an existing file or at the run
//! folder another shipped config writes.
use std::path::{Path, PathBuf};

use freezeframe_train::RunConfig;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn configs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
    out
}

#[test]
fn shipped_configs_load_and_their_paths_resolve_inside_the_repository() {
    let repo = repo();
    let mut files = configs(&repo.join("configs"));
    files.extend(configs(&repo.join("configs/calibration")));
    assert!(files.len() >= 10, "{files:?}");
    // The run folders the shipped configs write, by name.
    let loaded: Vec<(PathBuf, RunConfig)> = files
        .iter()
        .map(|f| {
            (
                f.clone(),
                RunConfig::load(f).unwrap_or_else(|e| panic!("{e}")),
            )
        })
        .collect();
    let written: Vec<PathBuf> = loaded
        .iter()
        .map(|(_, c)| c.out_dir.join(&c.name))
        .collect();
    for (f, c) in &loaded {
        assert_eq!(c.out_dir, repo.join("runs"), "{}", f.display());
        if let Some(from) = &c.init.from {
            assert!(
                from.is_file() || written.contains(from),
                "{}: init.from = {} is neither a file nor a shipped run",
                f.display(),
                from.display()
            );
        }
    }
}
