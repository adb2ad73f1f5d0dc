//! Helpers shared by the integration tests (each test file uses some of them).
#![allow(dead_code)]

use freezeframe_train::TrainOptions;

/// A fresh, empty folder for one test; it is removed when the returned guard drops.
pub fn tmp(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("ff-test-{name}-"))
        .tempdir()
        .expect("a temporary folder")
}

/// No progress bar, no final sample GIFs.
pub fn quiet() -> TrainOptions {
    TrainOptions {
        progress: false,
        final_samples: false,
        ..TrainOptions::default()
    }
}
