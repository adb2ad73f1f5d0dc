//! Training plans applied for real on the tiny preset: freezing, optimiser state, the staged
//! switch, image initialisation, exact resume across a phase boundary.
mod common;
use common::{quiet, tmp};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use freezeframe_model::paths::map_values;
use freezeframe_train::checkpoint::save_model;
use freezeframe_train::metrics;
use freezeframe_train::metrics::Record;
use freezeframe_train::trainer::build_model;
use freezeframe_train::{RunConfig, TrainError, TrainOptions, train};

fn config(name: &str, out: &Path, steps: usize, plan: &str, init: Option<&Path>) -> RunConfig {
    let mut c = RunConfig::tiny(name, out).unwrap();
    c.seed = 5;
    c.plan = plan.to_string();
    c.init.from = init.map(Path::to_path_buf);
    c.train.steps = steps;
    c.train.weight_decay = 0.01;
    c.log.diag_every = 2;
    c.log.frozen_grad_every = 2;
    c.checked().unwrap()
}

/// An "image checkpoint": a tiny model with seed-9 weights and a non-zero temporal projection
/// (so that the test can tell whether fresh parameters were really left at their init).
fn image_weights(dir: &Path) -> PathBuf {
    let cfg = config("img", dir, 1, "scratch", None);
    let m = build_model(&cfg.model_config().unwrap(), 9, &Device::flex());
    let m = map_values(m, |path, shape, read| {
        path.contains("attn_temp.proj")
            .then(|| vec![0.25; shape.iter().product()])
            .or_else(|| {
                // Perturb everything so that loaded values differ from any seed's init.
                Some(read().iter().map(|v| v + 0.01).collect())
            })
    });
    let f = dir.join("image.safetensors");
    save_model(&m, &f).unwrap();
    f
}

/// Open-Sora key → values of a model checkpoint file.
fn tensors(file: &Path) -> HashMap<String, Vec<f32>> {
    let cfg = config("read", Path::new("/tmp"), 1, "scratch", None);
    let m = freezeframe_train::checkpoint::load_model(
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

fn ckpt(out: &Path, name: &str, step: usize) -> PathBuf {
    out.join(name)
        .join("checkpoints")
        .join(format!("step-{step:06}"))
}

#[test]
fn temporal_only_leaves_frozen_weights_bit_identical_and_keeps_no_state_for_them() {
    let out = tmp("temporal");
    let img = image_weights(&out);
    let cfg = config("t", &out, 6, "temporal-only", Some(&img));
    train(&cfg, &quiet()).unwrap();
    let loaded = tensors(&img);
    let last = ckpt(&out, "t", 6);
    let after = tensors(&last.join("model.safetensors"));
    let fresh_init = {
        let m = build_model(&cfg.model_config().unwrap(), cfg.seed, &Device::flex());
        let mut o = HashMap::new();
        map_values(m, |p, _, r| {
            o.insert(p.to_string(), r());
            None
        });
        o
    };
    let mut changed = 0;
    for (path, v) in &after {
        if path.contains("attn_temp") {
            if v != &fresh_init[path] {
                changed += 1;
            }
        } else {
            assert_eq!(
                v, &loaded[path],
                "{path} is frozen and must equal the image weights bit for bit"
            );
        }
    }
    // Every temporal tensor trains (weights and biases of qkv and proj in both blocks).
    assert_eq!(changed, 8, "all 8 temporal tensors must have changed");

    // Optimiser state: only the 8 temporal tensors. Compare with a full run's record size.
    let cfg_full = config("f", &out, 1, "full", Some(&img));
    train(&cfg_full, &quiet()).unwrap();
    let size = |dir: &Path| std::fs::metadata(dir.join("optimizer.bpk")).unwrap().len() as f64;
    let (t, f) = (size(&last), size(&ckpt(&out, "f", 1)));
    let (t_params, all_params) = (8448.0, 63056.0);
    let ratio = t / f;
    assert!(
        (ratio - t_params / all_params).abs() < 0.02,
        "optimizer.bpk of temporal-only is {ratio:.3} of full's; expected ≈ {:.3}",
        t_params / all_params
    );
    // The EMA of frozen parameters is their loaded value too.
    let ema = tensors(&last.join("ema.safetensors"));
    assert_eq!(
        ema["blocks.0.attn.qkv.weight"],
        loaded["blocks.0.attn.qkv.weight"]
    );

    // Diagnostics: per-group norms for the trained group, would-be norms for the frozen rest.
    let recs = metrics::read(&out.join("t").join("metrics.jsonl")).unwrap();
    let diag = recs
        .iter()
        .find_map(|r| match r {
            Record::Groups(g) => Some(g),
            _ => None,
        })
        .expect("a diagnostics record");
    let g = &diag.groups;
    assert!(g["temporal"].grad_norm.unwrap() > 0.0, "{diag:?}");
    assert!(g["temporal"].update_ratio.unwrap() > 0.0, "{diag:?}");
    assert!(g["rest"].frozen_grad_norm.unwrap() > 0.0, "{diag:?}");
    assert!(
        g["rest"].grad_norm.is_none(),
        "frozen groups get no real gradient: {diag:?}"
    );
}

#[test]
fn staged_switches_at_the_planned_step_and_resumes_exactly_across_it() {
    let out = tmp("staged");
    let img = image_weights(&out);
    let loaded = tensors(&img);
    // 8 steps: temporal-only for steps 0..4, everything from step 4.
    let cfg = config("s", &out, 8, "staged", Some(&img));
    train(
        &cfg,
        &TrainOptions {
            stop_after: Some(4),
            ..quiet()
        },
    )
    .unwrap();
    let at4 = tensors(&ckpt(&out, "s", 4).join("model.safetensors"));
    assert_eq!(
        at4["blocks.1.mlp.fc1.weight"], loaded["blocks.1.mlp.fc1.weight"],
        "still frozen after 4 steps"
    );
    assert_ne!(
        at4["blocks.1.attn_temp.qkv.weight"],
        loaded["blocks.1.attn_temp.qkv.weight"]
    );
    train(
        &cfg,
        &TrainOptions {
            resume: true,
            stop_after: Some(1),
            ..quiet()
        },
    )
    .unwrap();
    let at5 = tensors(&ckpt(&out, "s", 5).join("model.safetensors"));
    assert_ne!(
        at5["blocks.1.mlp.fc1.weight"], loaded["blocks.1.mlp.fc1.weight"],
        "trains from step 4 on"
    );
    train(
        &cfg,
        &TrainOptions {
            resume: true,
            ..quiet()
        },
    )
    .unwrap();

    let straight = config("u", &out, 8, "staged", Some(&img));
    train(&straight, &quiet()).unwrap();
    let a = tensors(&ckpt(&out, "s", 8).join("model.safetensors"));
    let b = tensors(&ckpt(&out, "u", 8).join("model.safetensors"));
    assert_eq!(
        a, b,
        "interrupted at the switch and one step after it, the run must match the straight one"
    );

    let recs = metrics::read(&out.join("u").join("metrics.jsonl")).unwrap();
    let starts: Vec<(u64, String)> = recs
        .iter()
        .filter_map(|r| match r {
            Record::PhaseStart(p) => Some((p.step as u64, p.phase.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        starts,
        vec![(0, "temporal".to_string()), (4, "all".to_string())]
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ckpt(&out, "s", 4).join("state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (state["plan"].as_str(), state["phase"].as_str()),
        (Some("staged"), Some("all"))
    );
}

#[test]
fn image_init_loads_weights_except_fresh_ones_and_scratch_refuses_them() {
    let out = tmp("init");
    let img = image_weights(&out);
    let cfg = config("i", &out, 1, "full", Some(&img));
    let mcfg = cfg.model_config().unwrap();
    let dev = Device::flex();
    let bound =
        freezeframe_train::plans::bind(&cfg, &build_model(&mcfg, 0, &dev), mcfg.depth).unwrap();
    let m =
        freezeframe_train::trainer::initial_model(build_model(&mcfg, cfg.seed, &dev), &cfg, &bound)
            .unwrap();
    let loaded = tensors(&img);
    let mut seen = 0;
    map_values(m, |path, _, read| {
        let v = read();
        if path.contains("attn_temp.proj.weight") {
            assert!(
                v.iter().all(|x| *x == 0.0),
                "{path}: fresh, keeps its zero init"
            );
        } else if !path.contains("attn_temp") {
            assert_eq!(v, loaded[path], "{path}: loaded");
            seen += 1;
        }
        None
    });
    assert!(seen > 40);

    let e = train(&config("x", &out, 1, "scratch", Some(&img)), &quiet()).unwrap_err();
    assert!(
        matches!(e, TrainError::Init(_)) && e.to_string().contains("scratch"),
        "{e}"
    );
    let e = train(&config("y", &out, 1, "temporal-only", None), &quiet()).unwrap_err();
    assert!(
        e.to_string().contains("init") && e.to_string().contains("image"),
        "{e}"
    );
    assert!(!out.join("y").exists(), "an invalid plan writes nothing");

    // A checkpoint lacking a non-fresh tensor is an error naming it.
    let partial = out.join("partial.safetensors");
    let m = build_model(&mcfg, 0, &dev);
    let mut store = SafetensorsStore::from_file(&partial)
        .with_to_adapter(burn::store::BurnToPyTorchAdapter)
        .with_regex("^blocks");
    m.save_into(&mut store).unwrap();
    let e = train(&config("z", &out, 1, "full", Some(&partial)), &quiet())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lacks 16 parameters") && e.contains("final_layer.linear.weight"),
        "{e}"
    );
}
