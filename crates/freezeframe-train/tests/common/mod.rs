//! Helpers shared by the integration tests (each test file uses some of them).
#![allow(dead_code)]
use std::path::PathBuf;

use freezeframe_train::TrainOptions;

/// A fresh, empty folder for one test, unique to this process.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ff-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// No progress bar, no final sample GIFs.
pub fn quiet() -> TrainOptions {
    TrainOptions {
        progress: false,
        final_samples: false,
        ..TrainOptions::default()
    }
}
