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

/// Open-Sora key → values of the run's seeded initialisation (before image weights).
fn initial_values(cfg: &RunConfig) -> HashMap<String, Vec<f32>> {
    let m = build_model(&cfg.model_config().unwrap(), cfg.seed, &Device::flex());
    let mut o = HashMap::new();
    map_values(m, |p, _, r| {
        o.insert(p.to_string(), r());
        None
    });
    o
}

fn ckpt(out: &Path, name: &str, step: usize) -> PathBuf {
    out.join(name)
        .join("checkpoints")
        .join(format!("step-{step:06}"))
}

#[test]
fn temporal_only_leaves_frozen_weights_bit_identical_and_keeps_no_state_for_them() {
    let out_tmp = tmp("temporal");
    let out = out_tmp.path().to_path_buf();
    let img = image_weights(&out);
    let cfg = config("t", &out, 6, "temporal-only", Some(&img));
    train(&cfg, &quiet()).unwrap();
    let loaded = tensors(&img);
    let last = ckpt(&out, "t", 6);
    let after = tensors(&last.join("model.safetensors"));
    let fresh_init = initial_values(&cfg);
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
    let out_tmp = tmp("staged");
    let out = out_tmp.path().to_path_buf();
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
    let out_tmp = tmp("init");
    let out = out_tmp.path().to_path_buf();
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

/// LoRA (issue 26): only the adapters train; every base tensor stays bit-identical (the image
/// weights, or the fresh temporal attention's initialisation); a run interrupted and resumed
/// matches the straight one; and the run folder reads back with its adapters.
#[test]
fn lora_trains_only_adapters_keeps_bases_bit_identical_and_resumes_exactly() {
    let out_tmp = tmp("lora");
    let out = out_tmp.path().to_path_buf();
    let img = image_weights(&out);
    let loaded = tensors(&img);
    let cfg = config("l", &out, 6, "lora-all", Some(&img));
    let stop = TrainOptions {
        stop_after: Some(3),
        ..quiet()
    };
    train(&cfg, &stop).unwrap();
    let resume = TrainOptions {
        resume: true,
        ..quiet()
    };
    train(&cfg, &resume).unwrap();
    let straight = config("m", &out, 6, "lora-all", Some(&img));
    train(&straight, &quiet()).unwrap();
    let a = tensors(&ckpt(&out, "l", 6).join("model.safetensors"));
    let b = tensors(&ckpt(&out, "m", 6).join("model.safetensors"));
    assert_eq!(a, b, "interrupted and resumed must match the straight run");
    assert_eq!(
        tensors(&ckpt(&out, "l", 6).join("ema.safetensors")),
        tensors(&ckpt(&out, "m", 6).join("ema.safetensors")),
        "and so must the EMA"
    );

    let fresh_init = initial_values(&cfg);
    let mut adapters_moved = 0;
    for (path, v) in &a {
        if path.ends_with(".lora_b") {
            // B starts at zero; every one of them trains.
            if v.iter().any(|&x| x != 0.0) {
                adapters_moved += 1;
            }
        } else if path.ends_with(".lora_a") {
        } else if path.contains("attn_temp") {
            assert_eq!(
                v, &fresh_init[path],
                "{path}: fresh and frozen under its adapter"
            );
        } else {
            assert_eq!(
                v, &loaded[path],
                "{path} must equal the image weights bit for bit"
            );
        }
    }
    // 2 blocks × 9 linear layers.
    assert_eq!(adapters_moved, 18);
    let ema = tensors(&ckpt(&out, "l", 6).join("ema.safetensors"));
    assert_eq!(
        ema["blocks.1.mlp.fc1.weight"],
        loaded["blocks.1.mlp.fc1.weight"]
    );

    // Readers (sample, eval, export) rebuild the adapters from the file's metadata.
    let meta =
        freezeframe_train::checkpoint::file_metadata(&ckpt(&out, "l", 6).join("ema.safetensors"))
            .unwrap();
    assert!(meta["lora"].contains("blocks.0.attn.qkv"), "{meta:?}");
    let run = freezeframe_train::sample::load_run(
        &freezeframe_train::Run::new(out.join("l")),
        &Device::flex(),
    )
    .unwrap();
    assert_eq!(run.model.lora_layers().len(), 18);
    assert!(
        run.model
            .lora_layers()
            .iter()
            .all(|l| l.rank == 8 && l.alpha == 8.0)
    );

    // Starting another run from this one merges its adapters into the weights; a LoRA plan's
    // own adapters start fresh.
    let merged = {
        let m = freezeframe_train::checkpoint::load_model(
            build_model(&cfg.model_config().unwrap(), 0, &Device::flex()),
            &ckpt(&out, "l", 6).join("ema.safetensors"),
        )
        .unwrap()
        .merge_lora();
        let mut o = HashMap::new();
        map_values(m, |p, _, r| {
            o.insert(p.to_string(), r());
            None
        });
        o
    };
    for plan in ["full", "lora-all"] {
        let next = config("n", &out, 1, plan, Some(&out.join("l")));
        let first = freezeframe_train::trainer::first_step_model(&next, &Device::flex()).unwrap();
        assert_eq!(
            first.lora_layers().len(),
            if plan == "full" { 0 } else { 18 }
        );
        let mut seen = 0;
        map_values(first, |p, _, r| {
            let v = r();
            if p.ends_with(".lora_b") {
                assert!(
                    v.iter().all(|&x| x == 0.0),
                    "{plan}: {p} must start at zero"
                );
            } else if p == "blocks.1.mlp.fc1.weight" {
                assert_eq!(v, merged[p], "{plan}: {p} must be the merged weight");
                assert_ne!(
                    v, loaded[p],
                    "{plan}: the adapters trained, so merging changes {p}"
                );
                seen += 1;
            }
            None
        });
        assert_eq!(seen, 1);
    }
}

#[test]
fn adapter_tensors_without_their_metadata_are_refused() {
    let out_tmp = tmp("lora-meta");
    let out = out_tmp.path().to_path_buf();
    let cfg = config("x", &out, 1, "lora-temporal", None);
    let mcfg = cfg.model_config().unwrap();
    let loaded = freezeframe_plan::load("lora-temporal").unwrap();
    let m = freezeframe_train::plans::build_for_plan(&mcfg, &loaded, 1, &Device::flex()).unwrap();
    assert_eq!(m.lora_layers().len(), 4);
    // Written without `save_model` (which records the adapters).
    let f = out.join("bare.safetensors");
    let mut store =
        SafetensorsStore::from_file(&f).with_to_adapter(burn::store::BurnToPyTorchAdapter);
    m.save_into(&mut store).unwrap();
    let e = freezeframe_train::checkpoint::load_model(build_model(&mcfg, 0, &Device::flex()), &f)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("without `lora` metadata") && e.contains("bare.safetensors"),
        "{e}"
    );
}
