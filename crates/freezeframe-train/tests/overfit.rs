//! Wiring check for model + sampler: a model trained on one clip and one caption must turn pure
//! noise into that clip. A transposed patch, a sign error in the velocity or the Euler step, or
//! a time convention that differs between training and sampling fails it within seconds.
mod common;
use common::{quiet, tmp};

use std::path::Path;

use burn::prelude::*;
use freezeframe_data::{Split, World};
use freezeframe_eval::read_video;
use freezeframe_train::run::Run;
use freezeframe_train::sample::{generate, load_run};
use freezeframe_train::{RunConfig, train};

#[test]
fn one_clip_is_learned_and_sampled_back_from_pure_noise() {
    let out_tmp = tmp("overfit-one");
    let out = out_tmp.path().to_path_buf();
    let text = format!(
        r#"
name = "one"
out_dir = "{}"
seed = 1
[model]
preset = "tiny"
# Width 32 plateaus at a loss of 0.42 here (it cannot pass the noise through); 64 reaches 0.03.
hidden = 64
[data]
frames = 4
size = 16
speeds = {{ slow = 1.0, fast = 2.0 }}
object_size = [3.0, 3.0]
train_clips = 1
val_clips = 1
[train]
batch_size = 8
steps = 1000
lr = 2e-3
warmup = 10
caption_dropout = 0.0
ema_decay = 0.5
[log]
every = 50
val_every = 0
checkpoint_every = 0
val_clips = 1
"#,
        out.display()
    );
    let cfg = RunConfig::parse(&text, Path::new("overfit.toml")).unwrap();
    let world = World::new(cfg.data.clone()).unwrap();
    let clip = world.clip(Split::Train, 0);
    let s = train(&cfg, &quiet()).unwrap();
    // The per-step loss stays noisy (a fresh noise draw and t every step); its mean falls.
    let mean = |l: &[(usize, f32)]| l.iter().map(|x| x.1).sum::<f32>() / l.len() as f32;
    let (first, last) = (
        mean(&s.losses[..20]),
        mean(&s.losses[s.losses.len() - 50..]),
    );
    assert!(
        last < 0.1 * first,
        "training loss on one clip {first} → {last}"
    );

    let dev = Device::flex();
    let run = load_run(&Run::new(out.join("one")), &dev).unwrap();
    let spec = run.spec(20, 1.0, 0);
    let videos = generate(
        &run.model,
        &run.encoder,
        &[clip.caption.clone(), clip.caption.clone()],
        spec,
        &dev,
        |_| {},
    )
    .unwrap();
    let truth = world.config.clone();
    let want = read_video(&clip.video, &truth);
    for v in &videos {
        let err = v
            .data
            .iter()
            .zip(&clip.video.data)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / v.data.len() as f32;
        assert!(err < 0.05, "mean absolute error {err} against the clip");
        let got = read_video(v, &truth);
        assert_eq!(got.colour, want.colour, "{got:?}");
        for (g, w) in got.centres.iter().zip(&want.centres) {
            let (g, w) = (g.expect("object found"), w.expect("object in the clip"));
            let d = ((g[0] - w[0]).powi(2) + (g[1] - w[1]).powi(2)).sqrt();
            assert!(d < 1.5, "centre {g:?} vs {w:?}");
        }
    }
}
