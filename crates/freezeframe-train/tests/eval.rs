//! `evaluate_run` on a freshly trained tiny run: files written, real videos read correctly,
//! batching does not change the noise.
mod common;
use common::{quiet, tmp};

use std::path::Path;

use burn::prelude::*;
use freezeframe_data::world::Speeds;
use freezeframe_train::evaluate::{EvalOptions, EvalSettings, evaluate_run, read_report};
use freezeframe_train::run::Run;
use freezeframe_train::sample::{generate, generate_from, load_run};
use freezeframe_train::{RunConfig, train};

fn tiny_run(out: &Path) -> Run {
    let mut c = RunConfig::tiny("e", out).unwrap();
    c.data.speeds = Speeds {
        slow: 0.75,
        fast: 1.5,
    };
    c.data.object_size = [2.5, 3.0];
    train(&c.checked().unwrap(), &quiet()).unwrap().run
}

#[test]
fn eval_writes_its_report_and_reads_real_videos_correctly() {
    let out_tmp = tmp("run");
    let out = out_tmp.path().to_path_buf();
    let run = tiny_run(&out);
    let opts = EvalOptions {
        settings: EvalSettings {
            n: 20,
            steps: 2,
            ..EvalSettings::default()
        },
        ..EvalOptions::default()
    };
    let r = evaluate_run(&run, &opts).unwrap();
    assert!(run.dir.join("eval.json").is_file() && run.dir.join("eval.md").is_file());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.dir.join("eval.json")).unwrap()).unwrap();
    for key in [
        "motion_ratio",
        "fvd_lite",
        "generated",
        "real",
        "alignment",
        "val_loss",
    ] {
        assert!(json.get(key).is_some(), "eval.json lacks {key}: {json}");
    }
    let real = r.comparison.alignment_real.clone().unwrap();
    assert!(
        real.colour >= 0.9 && real.direction >= 0.9,
        "the reader must get real clips right: {real:?}"
    );
    // A 3-step model produces noise, not objects: the metrics must say so.
    let g = r.comparison.alignment.clone().unwrap();
    assert!(g.shape < 0.9 && r.comparison.fvd_lite > 0.0, "{g:?}");
    assert!(r.comparison.real.dynamic_degree > 0.5);
    let md = std::fs::read_to_string(run.dir.join("eval.md")).unwrap();
    assert!(md.contains("motion ratio") && md.contains("dynamic degree"));

    // eval.json reads back as the report that was written (NaN figures included) ...
    let back = read_report(&run).unwrap();
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&r).unwrap()
    );
    // ... and a field renamed on the writing side fails the read, naming the field, instead
    // of reading as a missing figure.
    for (old, new) in [
        ("\"tracked_motion_ratio\"", "\"tracked_motion\""),
        ("\"direction_moving\"", "\"direction_of_moving\""),
    ] {
        let text = std::fs::read_to_string(run.eval_path()).unwrap();
        std::fs::write(run.eval_path(), text.replacen(old, new, 1)).unwrap();
        let e = read_report(&run).unwrap_err().to_string();
        assert!(
            e.contains("eval.json") && e.contains(old.trim_matches('"')),
            "{e}"
        );
        std::fs::write(run.eval_path(), text).unwrap();
    }
}

#[test]
fn batched_sampling_gets_the_same_noise_as_one_batch() {
    let out_tmp = tmp("noise");
    let out = out_tmp.path().to_path_buf();
    let run = tiny_run(&out);
    let dev = Device::flex();
    let loaded = load_run(&run, &dev).unwrap();
    let (model, enc) = (&loaded.model, &loaded.encoder);
    let spec = loaded.spec(2, 1.0, 7);
    let prompts: Vec<String> = vec!["a red circle moves left quickly".into(); 4];
    let all = generate(model, enc, &prompts, spec, &dev, |_| {}).unwrap();
    let tail = generate_from(model, enc, &prompts[2..], 2, spec, &dev, |_| {}).unwrap();
    for (a, b) in all[2..].iter().zip(&tail) {
        let d = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-5, "max difference {d}");
    }
    assert_ne!(
        all[0].data, all[1].data,
        "different indices get different noise"
    );
}
