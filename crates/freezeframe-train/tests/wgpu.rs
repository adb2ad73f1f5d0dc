//! The wgpu backend (a build with the `gpu` feature) against flex: one tiny run under the
//! `temporal-only` plan on each, from the same image weights. CI runs it on lavapipe, Mesa's
//! software Vulkan device (`FREEZEFRAME_REQUIRE_WGPU=1` there: no adapter is then a failure,
//! not a skip). Without the feature this file tests that asking for wgpu says how to build it.
mod common;
use common::{quiet, tmp};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use freezeframe_model::paths::map_values;
use freezeframe_train::checkpoint::{load_model, save_model};
use freezeframe_train::runtime::{Backend, GPU_BUILT};
use freezeframe_train::trainer::build_model;
use freezeframe_train::{RunConfig, train};

fn config(name: &str, out: &Path, init: &Path, backend: Backend) -> RunConfig {
    let mut c = RunConfig::tiny(name, out).unwrap();
    c.seed = 5;
    c.plan = "temporal-only".into();
    c.init.from = Some(init.to_path_buf());
    c.train.steps = 4;
    c.log.diag_every = 0;
    c.runtime.backend = backend;
    c.checked().unwrap()
}

/// Image weights: a seeded tiny model, perturbed so that loaded values differ from any init.
fn image_weights(dir: &Path) -> PathBuf {
    let cfg = config("img", dir, Path::new("x"), Backend::Flex);
    let m = build_model(&cfg.model_config().unwrap(), 9, &Device::flex());
    let m = map_values(m, |_, _, read| {
        Some(read().iter().map(|v| v + 0.01).collect())
    });
    let f = dir.join("image.safetensors");
    save_model(&m, &f).unwrap();
    f
}

fn tensors(cfg: &RunConfig, file: &Path) -> HashMap<String, Vec<f32>> {
    let m = load_model(
        build_model(&cfg.model_config().unwrap(), 0, &Device::flex()),
        file,
    )
    .unwrap();
    let mut out = HashMap::new();
    map_values(m, |path, _, read| {
        out.insert(path.to_string(), read());
        None
    });
    out
}

/// Whether a wgpu device can be used here; `false` is a skip unless CI requires it.
fn wgpu_available() -> bool {
    match Backend::Wgpu.device() {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("FREEZEFRAME_REQUIRE_WGPU").is_ok() {
                panic!("FREEZEFRAME_REQUIRE_WGPU is set and {e}");
            }
            eprintln!("SKIPPED: {e}");
            false
        }
    }
}

#[test]
fn a_tiny_temporal_only_run_on_wgpu_matches_flex() {
    if !GPU_BUILT {
        let e = Backend::Wgpu.device().unwrap_err().to_string();
        assert!(e.contains("--features gpu"), "{e}");
        return;
    }
    if !wgpu_available() {
        return;
    }
    let out_tmp = tmp("wgpu");
    let out = out_tmp.path().to_path_buf();
    let img = image_weights(&out);
    let flex = train(&config("flex", &out, &img, Backend::Flex), &quiet()).unwrap();
    let cfg = config("wgpu", &out, &img, Backend::Wgpu);
    let gpu = train(&cfg, &quiet()).unwrap();
    // The same batches, noise and t on both: the losses agree to float noise (different
    // reduction orders), far below the loss's own step-to-step change.
    assert_eq!(flex.losses.len(), gpu.losses.len());
    for ((s, a), (_, b)) in flex.losses.iter().zip(&gpu.losses) {
        eprintln!("step {s}: loss on flex {a}, on wgpu {b}");
        assert!(
            (a - b).abs() <= 1e-3 * a.abs().max(1e-3),
            "step {s}: flex loss {a}, wgpu loss {b}"
        );
    }
    // Frozen parameters are exactly the loaded image weights on both backends; the trained
    // temporal attention agrees between them to float noise.
    let loaded = tensors(&cfg, &img);
    let ck = |run: &str| {
        out.join(run)
            .join("checkpoints/step-000004/model.safetensors")
    };
    let (on_flex, on_gpu) = (tensors(&cfg, &ck("flex")), tensors(&cfg, &ck("wgpu")));
    for (path, v) in &on_gpu {
        if path.contains("attn_temp") {
            let worst = v
                .iter()
                .zip(&on_flex[path])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            eprintln!("{path}: largest |wgpu − flex| {worst:.2e}");
            assert!(
                worst < 1e-3,
                "trained {path}: wgpu and flex differ by {worst}"
            );
        } else {
            assert_eq!(v, &loaded[path], "wgpu: frozen {path} changed");
            assert_eq!(&on_flex[path], &loaded[path], "flex: frozen {path} changed");
        }
    }
}
