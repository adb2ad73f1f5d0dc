//! End-to-end checks of training runs on the tiny preset.
mod common;
use common::{quiet, tmp};

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use freezeframe_model::Stdit;
use freezeframe_train::batch::{BatchSpec, train_batch};
use freezeframe_train::checkpoint::{load_model, save_model};
use freezeframe_train::metrics::Record;
use freezeframe_train::plans;
use freezeframe_train::run::Run;
use freezeframe_train::sample::encoder_for;
use freezeframe_train::trainer::{build_model, train_step};
use freezeframe_train::{RunConfig, TrainError, TrainOptions, train};

fn tiny_config(name: &str, out: &Path, steps: usize) -> RunConfig {
    let mut c = RunConfig::tiny(name, out).unwrap();
    c.seed = 3;
    c.train.batch_size = 4;
    c.train.steps = steps;
    // A warm-up no longer than the run (a longer one is refused).
    c.train.warmup = steps.min(2);
    c.log.val_clips = 4;
    c.sample.prompts = vec!["a red circle moves left quickly".into()];
    c.sample.n = 2;
    c.sample.steps = 3;
    c.checked().unwrap()
}

struct Flatten(Vec<f32>);
impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        self.0.extend(
            p.val()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap(),
        );
    }
}
fn weights<M: Module>(m: &M) -> Vec<f32> {
    let mut f = Flatten(Vec::new());
    m.visit(&mut f);
    f.0
}

#[test]
fn loss_on_a_fixed_batch_falls_by_half() {
    let out_tmp = tmp("overfit");
    let out = out_tmp.path().to_path_buf();
    let cfg = tiny_config("overfit", &out, 1);
    let mcfg = cfg.model_config().unwrap();
    let world = freezeframe_train::dataset::Dataset::open(&cfg.data).unwrap();
    let enc = encoder_for(&cfg).unwrap();
    let dev = Device::flex().autodiff();
    let mut model = build_model(&mcfg, 0, &dev);
    let mut optim = plans::bind(&cfg, &model, mcfg.depth)
        .unwrap()
        .optimizer(&cfg);
    let mut losses = Vec::new();
    for _ in 0..300 {
        // The same batch every step: step index 0 always.
        let spec = BatchSpec {
            seed: 0,
            batch_size: 4,
            caption_dropout: 0.0,
            timestep_shift: 1.0,
            frame_slots: 0,
        };
        let batch = train_batch(&world, &enc, spec, 0, &dev).unwrap();
        let out = train_step(model, &mut optim, batch, 1e-3, 1.0);
        model = out.model;
        losses.push(out.loss);
    }
    let first = losses[..5].iter().sum::<f32>() / 5.0;
    let last = losses[losses.len() - 5..].iter().sum::<f32>() / 5.0;
    assert!(last < 0.5 * first, "loss {first} → {last}");
}

#[test]
fn same_seed_gives_the_same_losses_and_other_seeds_differ() {
    let out_tmp = tmp("determinism");
    let out = out_tmp.path().to_path_buf();
    let a = train(&tiny_config("a", &out, 6), &quiet()).unwrap();
    let b = train(&tiny_config("b", &out, 6), &quiet()).unwrap();
    assert_eq!(a.losses, b.losses);
    let mut c_cfg = tiny_config("c", &out, 6);
    c_cfg.seed = 4;
    let c = train(&c_cfg, &quiet()).unwrap();
    assert_ne!(a.losses, c.losses);
}

#[test]
fn interrupted_and_resumed_run_matches_the_uninterrupted_one() {
    let out_tmp = tmp("resume");
    let out = out_tmp.path().to_path_buf();
    let full = train(&tiny_config("full", &out, 10), &quiet()).unwrap();

    let cfg = tiny_config("split", &out, 10);
    let first = train(
        &cfg,
        &TrainOptions {
            stop_after: Some(4),
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(first.steps, 4);
    // A run folder that exists is never silently reused.
    assert!(matches!(
        train(&cfg, &quiet()),
        Err(TrainError::RunExists(_))
    ));
    let second = train(
        &cfg,
        &TrainOptions {
            resume: true,
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(second.steps, 10);
    let resumed: Vec<(usize, f32)> = first.losses.iter().chain(&second.losses).copied().collect();
    assert_eq!(resumed, full.losses, "resumed trajectory differs");

    // The metrics file holds each step once, and the final weights agree bit for bit.
    let steps: Vec<u64> =
        freezeframe_train::metrics::read(&Run::new(out.join("split")).metrics_path())
            .unwrap()
            .iter()
            .filter_map(|r| match r {
                Record::Loss(l) => Some(l.step as u64),
                _ => None,
            })
            .collect();
    assert_eq!(steps, (1..=10).collect::<Vec<u64>>());
    let dev = Device::flex();
    let mcfg = cfg.model_config().unwrap();
    let a = load_model(
        Stdit::new(&mcfg, &dev),
        &out.join("full/checkpoints/step-000010/model.safetensors"),
    )
    .unwrap();
    let b = load_model(
        Stdit::new(&mcfg, &dev),
        &out.join("split/checkpoints/step-000010/model.safetensors"),
    )
    .unwrap();
    let (wa, wb) = (weights(&a), weights(&b));
    let differing = wa.iter().zip(&wb).filter(|(x, y)| x != y).count();
    let max = wa
        .iter()
        .zip(&wb)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert_eq!(
        differing,
        0,
        "{differing} of {} weights differ, by up to {max}",
        wa.len()
    );
}

#[test]
fn checkpoint_round_trips_and_uses_opensora_keys() {
    let out_tmp = tmp("roundtrip");
    let out = out_tmp.path().to_path_buf();
    let cfg = tiny_config("rt", &out, 1);
    let mcfg = cfg.model_config().unwrap();
    let dev = Device::flex();
    let a = build_model(&mcfg, 1, &dev);
    let path = out.join("m.safetensors");
    save_model(&a, &path).unwrap();
    let b = load_model(build_model(&mcfg, 2, &dev), &path).unwrap();
    assert_eq!(weights(&a), weights(&b));
    assert_ne!(weights(&a), weights(&build_model(&mcfg, 2, &dev)));
    // The file speaks Open-Sora: keys and [out, in] Linear layout.
    let raw = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(raw[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&raw[8..8 + header_len]).unwrap();
    assert_eq!(
        header["t_embedder.mlp.0.weight"]["shape"],
        serde_json::json!([mcfg.hidden, 256])
    );
    assert_eq!(
        header["t_block.1.weight"]["shape"],
        serde_json::json!([6 * mcfg.hidden, mcfg.hidden])
    );
    assert!(header.get("blocks.0.attn_temp.proj.weight").is_some());
}

#[test]
fn corrupt_checkpoints_are_errors_naming_the_file() {
    let out_tmp = tmp("corrupt");
    let out = out_tmp.path().to_path_buf();
    let cfg = tiny_config("c", &out, 2);
    train(&cfg, &quiet()).unwrap();
    let ck = out.join("c/checkpoints/step-000002");
    let model_file = ck.join("model.safetensors");
    let bytes = std::fs::read(&model_file).unwrap();
    std::fs::write(&model_file, &bytes[..bytes.len() / 2]).unwrap();
    let mut longer = cfg.clone();
    longer.train.steps = 4;
    let resume_error = || {
        train(
            &longer,
            &TrainOptions {
                resume: true,
                ..quiet()
            },
        )
        .unwrap_err()
        .to_string()
    };
    let e = resume_error();
    assert!(e.contains("model.safetensors"), "{e}");

    std::fs::write(&model_file, &bytes).unwrap();
    std::fs::write(ck.join("optimizer.bpk"), b"not a burnpack").unwrap();
    let e = resume_error();
    assert!(e.contains("optimizer.bpk"), "{e}");

    std::fs::write(ck.join("state.json"), "{").unwrap();
    let e = resume_error();
    assert!(e.contains("state.json"), "{e}");
}

#[test]
fn a_foreign_or_hand_edited_state_json_is_refused() {
    let out_tmp = tmp("foreign-state");
    let out = out_tmp.path().to_path_buf();
    let cfg = tiny_config("f", &out, 2);
    train(&cfg, &quiet()).unwrap();
    let state = out.join("f/checkpoints/step-000002/state.json");
    let good = std::fs::read_to_string(&state).unwrap();
    let resume = |cfg: &RunConfig| {
        train(
            cfg,
            &TrainOptions {
                resume: true,
                ..quiet()
            },
        )
    };
    for (from, to, says) in [
        ("\"step\": 2", "\"step\": 7", "folder is step 2"),
        ("\"seed\": 3", "\"seed\": 4", "seed"),
        ("\"plan\": \"scratch\"", "\"plan\": \"full\"", "plan `full`"),
    ] {
        assert!(good.contains(from), "{good}");
        std::fs::write(&state, good.replace(from, to)).unwrap();
        let mut longer = cfg.clone();
        longer.train.steps = 4;
        let e = resume(&longer).unwrap_err().to_string();
        assert!(
            e.contains("state.json") && e.contains(says),
            "{from} → {to}: {e}"
        );
    }
    // A checkpoint beyond the run's steps (the folder renamed with its state).
    std::fs::write(&state, good.replace("\"step\": 2", "\"step\": 3")).unwrap();
    let ck = out.join("f/checkpoints");
    std::fs::rename(ck.join("step-000002"), ck.join("step-000003")).unwrap();
    let e = resume(&cfg).unwrap_err().to_string();
    assert!(e.contains("beyond"), "{e}");
}

#[test]
fn a_failed_start_leaves_no_run_folder_behind() {
    let out_tmp = tmp("failed-init");
    let out = out_tmp.path().to_path_buf();
    let mut cfg = tiny_config("i", &out, 2);
    cfg.plan = "full".into();
    cfg.init.from = Some(out.join("no-such-weights.safetensors"));
    let e = train(&cfg, &quiet()).unwrap_err().to_string();
    assert!(e.contains("no-such-weights"), "{e}");
    assert!(
        !out.join("i").exists(),
        "a failed [init] left {}",
        out.join("i").display()
    );
    // Nor in a folder the user made (it keeps only the lock file), where a fixed config then
    // starts.
    std::fs::create_dir_all(out.join("i")).unwrap();
    train(&cfg, &quiet()).unwrap_err();
    cfg.plan = "scratch".into();
    cfg.init.from = None;
    train(&cfg, &quiet()).unwrap();
    assert!(out.join("i/checkpoints/step-000002/state.json").is_file());
}

#[test]
fn a_finished_run_writes_its_folder_and_samples() {
    let out_tmp = tmp("folder");
    let out = out_tmp.path().to_path_buf();
    let cfg = tiny_config("f", &out, 3);
    let s = train(
        &cfg,
        &TrainOptions {
            progress: false,
            ..TrainOptions::default()
        },
    )
    .unwrap();
    let run = Run::new(out.join("f"));
    assert_eq!(run.load_config().unwrap(), cfg);
    assert!(run.metrics_csv_path().is_file());
    assert_eq!(run.latest_checkpoint().unwrap().0, 3);
    assert_eq!(s.samples.len(), 1);
    assert!(s.samples[0].ends_with("samples/final/a-red-circle-moves-left-quickly.gif"));
    let recs = freezeframe_train::metrics::read(&run.metrics_path()).unwrap();
    let val = recs
        .iter()
        .find_map(|r| match r {
            Record::Val(v) => Some(v),
            _ => None,
        })
        .expect("final validation record");
    assert_eq!(val.val_loss_by_t.len(), 10);
}

#[test]
fn image_runs_with_frame_slots_draw_a_slot_per_image_from_the_step() {
    let out_tmp = tmp("slots");
    let out = out_tmp.path().to_path_buf();
    let mut cfg = tiny_config("slots", &out, 1);
    cfg.data.image_mode = true;
    cfg.data.frames = 1;
    cfg.model.temporal_pos = Some(freezeframe_model::TemporalPos::Stream);
    cfg.model.frame_slots = Some(5);
    cfg.train.batch_size = 32;
    let world = freezeframe_train::dataset::Dataset::open(&cfg.data).unwrap();
    let enc = encoder_for(&cfg).unwrap();
    let dev = Device::flex();
    let spec = BatchSpec::of(&cfg);
    assert_eq!(spec.frame_slots, 5);
    let a = train_batch(&world, &enc, spec, 7, &dev).unwrap();
    assert_eq!(a.slots.len(), 32);
    assert!(a.slots.iter().all(|&s| s < 5), "{:?}", a.slots);
    let distinct: std::collections::BTreeSet<_> = a.slots.iter().collect();
    assert!(distinct.len() >= 3, "{:?}", a.slots);
    // A pure function of (seed, step), like the rest of the batch; the clips, noise and t are
    // the ones a run without slots draws.
    assert_eq!(
        train_batch(&world, &enc, spec, 7, &dev).unwrap().slots,
        a.slots
    );
    let plain = BatchSpec {
        frame_slots: 0,
        ..spec
    };
    let b = train_batch(&world, &enc, plain, 7, &dev).unwrap();
    assert!(b.slots.is_empty());
    let same = (a.noise - b.noise).abs().max().into_scalar::<f32>();
    assert_eq!(same, 0.0);
    // A video run of the same model keeps every frame at its own slot.
    cfg.data.image_mode = false;
    cfg.data.frames = 4;
    assert_eq!(BatchSpec::of(&cfg).frame_slots, 0);
}
