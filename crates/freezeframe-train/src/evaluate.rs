//! `freezeframe eval --run`: sample a fixed prompt set with fixed noise from a run's EMA
//! weights and score the videos against the real videos of the same prompts. The prompt set
//! and noise depend only on the run's world config and the eval seed, so runs over the same
//! world are compared on identical inputs.
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use freezeframe_data::{Split, Video, WorldConfig};
use freezeframe_eval::{
    Alignment, Comparison, SetSummary, Target, compare, read_videos, score_videos,
};
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{TrainError, io};
use crate::probe::{Probe, text_probes};
use crate::run::Run;
use crate::sample::{generate_from, load_run};
use crate::validate::val_loss;

/// Frames per second assumed for synthetic clips (VBench's reference rate: its dynamic
/// threshold is then 6·min(H, W)/256 px).
pub const SYNTHETIC_FPS: f32 = 8.0;
/// Videos sampled per forward batch; fixed so that timing, not results, depends on it.
const BATCH: usize = 16;
/// Held-out clips (at most, and no more than the prompts evaluated) and noise draws the
/// text-use probes score.
const PROBE_CLIPS: usize = 64;
const PROBE_DRAWS: usize = 3;

/// What an evaluation samples: equal settings give the same prompts and the same noise, so
/// runs evaluated with them are compared on identical inputs. Recorded in `eval.json`
/// (`options`) and set by a study's `[eval]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSettings {
    /// Held-out prompts sampled.
    pub n: usize,
    pub steps: usize,
    pub cfg: f32,
    pub seed: u64,
}

impl Default for EvalSettings {
    fn default() -> Self {
        Self {
            n: 64,
            steps: 30,
            cfg: 4.0,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    pub settings: EvalSettings,
    pub progress: bool,
    /// Where to sample; `None`: the backend the run was trained on.
    pub backend: Option<crate::runtime::Backend>,
}

/// `eval.json`: written by [`evaluate_run`], read back by [`read_report`] (the study's tables
/// come from it, so a field renamed on one side fails the read instead of reading `n/a`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    pub run: PathBuf,
    /// Step of the checkpoint whose EMA weights were sampled.
    pub checkpoint_step: usize,
    pub options: EvalSettings,
    #[serde(flatten)]
    pub comparison: Comparison,
    /// Rectified-flow loss of the EMA weights on held-out clips, mean and per timestep.
    #[serde(deserialize_with = "freezeframe_eval::nan::f32")]
    pub val_loss: f32,
    #[serde(deserialize_with = "freezeframe_eval::nan::pairs_f32")]
    pub val_loss_by_t: Vec<(f32, f32)>,
    /// Single frames (an image model): motion figures do not apply.
    pub image_mode: bool,
    /// Text-use probes (synthetic world only): loss increase when a caption word is swapped.
    pub probes: Vec<Probe>,
    pub sampling_seconds: f64,
    pub scoring_seconds: f64,
}

/// The real clips and their captions — the first `n` held-out clips of the run's data — and,
/// for the synthetic world, what each prompt asks for and the world it comes from.
pub struct PromptSet {
    pub prompts: Vec<String>,
    pub real: Vec<Video>,
    pub truth: Option<(Vec<Target>, WorldConfig)>,
}

pub fn prompt_set(data: &Dataset, n: usize) -> PromptSet {
    let n = n.min(data.len(Split::Val));
    match data.world() {
        // One render per clip gives the video, the caption and the ground truth together.
        Some(w) => {
            let clips: Vec<_> = (0..n as u64).map(|i| w.clip(Split::Val, i)).collect();
            let targets = clips.iter().map(|c| Target::from(&c.objects[0])).collect();
            let (prompts, real) = clips.into_iter().map(|c| (c.caption, c.video)).unzip();
            PromptSet {
                prompts,
                real,
                truth: Some((targets, w.config.clone())),
            }
        }
        None => {
            let (prompts, real) = (0..n)
                .map(|i| {
                    let it = data.item(Split::Val, i);
                    (it.caption, it.video)
                })
                .unzip();
            PromptSet {
                prompts,
                real,
                truth: None,
            }
        }
    }
}

/// The frame rate of the run's clips, for VBench's threshold.
fn clip_fps(data: &Dataset) -> f32 {
    match data {
        Dataset::Synthetic(_) => SYNTHETIC_FPS,
        Dataset::Cache { cache, .. } => cache.fps().unwrap_or(SYNTHETIC_FPS),
        // Refused before this is asked (`evaluate_run`).
        Dataset::Latents { .. } => SYNTHETIC_FPS,
    }
}

/// Reads a run's `eval.json`; an error names the file and the field.
pub fn read_report(run: &Run) -> Result<EvalReport, TrainError> {
    let path = run.eval_path();
    let text = freezeframe_fs::read_text(&path).map_err(io(format!("read {}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| TrainError::RunFile {
        path,
        message: format!("not an eval report of this build: {e}"),
    })
}

pub fn evaluate_run(run: &Run, opts: &EvalOptions) -> Result<EvalReport, TrainError> {
    let settings = opts.settings;
    if settings.n == 0 || settings.steps == 0 {
        return Err(TrainError::Config {
            path: "eval".into(),
            message: "--n and --steps must be at least 1".into(),
        });
    }
    let pre = run.load_config()?;
    if pre.data.kind == freezeframe_data::DataKind::Latents {
        return Err(TrainError::Data(format!(
            "{}: a latent run; evaluation's metrics (motion, flicker, text alignment, FVD-lite) \
             read pixels, which a latent run has not (its validation loss is in metrics.jsonl; \
             look at its samples with tools/latents/make_cache.py --decode)",
            run.config_path().display()
        )));
    }
    let device = run.backend(opts.backend)?.device()?;
    let loaded = load_run(run, &device)?;
    let (model, encoder, cfg) = (&loaded.model, &loaded.encoder, &loaded.config);
    let mut wcfg = cfg.data.clone();
    // Clip i of the held-out split does not depend on how many there are.
    wcfg.val_clips = wcfg.val_clips.max(settings.n);
    let data = Dataset::open(&wcfg)?;
    let PromptSet {
        prompts,
        real,
        truth,
    } = prompt_set(&data, settings.n);
    let fps = clip_fps(&data);

    let bar = crate::progress::bar(
        &format!("eval {}", cfg.name),
        0,
        prompts.len() as u64,
        opts.progress,
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} videos (eta {eta}) {msg}",
    );
    let spec = loaded.spec(settings.steps, settings.cfg, settings.seed);
    let t0 = Instant::now();
    let mut generated = Vec::with_capacity(prompts.len());
    for (k, chunk) in prompts.chunks(BATCH).enumerate() {
        let first = (k * BATCH) as u64;
        generated.extend(generate_from(
            model,
            encoder,
            chunk,
            first,
            spec,
            &device,
            |_| {},
        )?);
        bar.set_position(generated.len() as u64);
    }
    let sampling_seconds = t0.elapsed().as_secs_f64();
    bar.set_message("scoring");
    let t1 = Instant::now();
    let (sg, sr) = (score_videos(&generated, fps), score_videos(&real, fps));
    let comparison = match &truth {
        Some((targets, world)) => {
            let rg = read_videos(&generated, world);
            let rr = read_videos(&real, world);
            let readings = freezeframe_eval::report::Readings {
                generated: &rg,
                real: &rr,
                targets,
                slow: world.speeds.slow,
            };
            compare(&sg, &sr, Some(readings))
        }
        None => compare(&sg, &sr, None),
    };
    let scoring_seconds = t1.elapsed().as_secs_f64();
    let v = val_loss(model, &data, encoder, cfg.log.val_clips, &device)?;
    bar.set_message("text-use probes");
    let probes = match data.world() {
        Some(w) => {
            let n = settings.n.min(PROBE_CLIPS);
            text_probes(model, w, encoder, n, PROBE_DRAWS, &device)?
        }
        None => Vec::new(),
    };
    bar.finish();
    let report = EvalReport {
        run: run.dir.clone(),
        checkpoint_step: loaded.step,
        options: settings,
        comparison,
        val_loss: v.mean,
        val_loss_by_t: v.by_t,
        image_mode: cfg.data.image_mode,
        probes,
        sampling_seconds,
        scoring_seconds,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| TrainError::Config {
        path: run.eval_path(),
        message: e.to_string(),
    })?;
    // Written whole or not at all: the study reads it back to decide whether a run is done.
    crate::run::write_atomic(&run.eval_path(), json.as_bytes())?;
    std::fs::write(run.dir.join("eval.md"), markdown(&report)).map_err(io("write eval.md"))?;
    Ok(report)
}

fn pct(x: f32) -> String {
    if x.is_nan() {
        "n/a".into()
    } else {
        format!("{:.1}%", 100.0 * x)
    }
}

/// A figure, or `n/a` where it does not apply (NaN, or a motion figure of an image model).
fn fmt_or_na(x: f32, applies: bool, f: fn(f32) -> String) -> String {
    if applies && x.is_finite() {
        f(x)
    } else {
        "n/a".into()
    }
}

fn three(x: f32) -> String {
    format!("{x:.3}")
}

fn four(x: f32) -> String {
    format!("{x:.4}")
}

/// A table row: name, the figure for a set, its format, and whether it is a motion figure
/// (`n/a` for an image model).
type Row<T> = (&'static str, fn(&T) -> f32, fn(f32) -> String, bool);

const SUMMARY_ROWS: [Row<SetSummary>; 8] = [
    (
        "robust motion score (top-5% trajectory net speed, px/frame)",
        |m| m.robust_motion,
        three,
        true,
    ),
    (
        "robust dynamic degree (trajectories)",
        |m| m.robust_dynamic_degree,
        pct,
        true,
    ),
    (
        "VBench motion score (top-5% flow per pair, px/frame)",
        |m| m.motion,
        three,
        true,
    ),
    (
        "VBench dynamic degree (flow per pair)",
        |m| m.dynamic_degree,
        pct,
        true,
    ),
    ("VBench static rate", |m| m.static_rate, pct, true),
    ("frame difference", |m| m.frame_difference, four, true),
    ("temporal flickering score", |m| m.flicker, four, true),
    (
        "sharpness (Laplacian variance)",
        |m| m.sharpness,
        four,
        false,
    ),
];

const ALIGNMENT_ROWS: [Row<Alignment>; 12] = [
    (
        "direction accuracy (moving prompts)",
        |x| x.direction_moving,
        pct,
        true,
    ),
    (
        "motion accuracy (all prompts, still included)",
        |x| x.direction,
        pct,
        true,
    ),
    (
        "speed-class accuracy (moving prompts)",
        |x| x.speed,
        pct,
        true,
    ),
    (
        "tracked net speed (moving prompts, px/frame)",
        |x| x.net_speed,
        three,
        true,
    ),
    (
        "tracked path speed (moving prompts, px/frame)",
        |x| x.path_speed,
        three,
        true,
    ),
    (
        "track straightness (net / path)",
        |x| x.straightness,
        three,
        true,
    ),
    (
        "tracked static rate (moving prompts)",
        |x| x.tracked_static_rate,
        pct,
        true,
    ),
    (
        "moving prompts without a track (no object in 2 frames)",
        |x| x.untracked,
        pct,
        true,
    ),
    ("colour accuracy", |x| x.colour, pct, false),
    ("shape accuracy", |x| x.shape, pct, false),
    ("object presence", |x| x.presence, pct, false),
    (
        "frames with exactly one object",
        |x| x.one_object,
        pct,
        false,
    ),
];

/// Rows of `table` for the generated and the real set.
fn rows<T>(s: &mut String, table: &[Row<T>], g: &T, r: &T, video: bool) {
    for (name, get, fmt, motion) in table {
        let ok = video || !motion;
        let _ = writeln!(
            s,
            "| {name} | {} | {} |",
            fmt_or_na(get(g), ok, *fmt),
            fmt_or_na(get(r), ok, *fmt)
        );
    }
}

/// The human-readable report written beside `eval.json`.
pub fn markdown(r: &EvalReport) -> String {
    let c = &r.comparison;
    let video = !r.image_mode;
    let mut s = String::new();
    let _ = writeln!(s, "# Evaluation of {}\n", r.run.display());
    let _ = writeln!(
        s,
        "EMA weights of step {}; {} prompts (the first held-out clips of the run's data), {} Euler steps, guidance {}, noise seed {}.\n",
        r.checkpoint_step, c.real.n, r.options.steps, r.options.cfg, r.options.seed
    );
    let _ = writeln!(s, "| metric | generated | real |\n|---|---|---|");
    rows(&mut s, &SUMMARY_ROWS, &c.generated, &c.real, video);
    if let (Some(a), Some(b)) = (&c.alignment, &c.alignment_real) {
        rows(&mut s, &ALIGNMENT_ROWS, a, b, video);
    }
    let figures = [
        (
            "tracked motion ratio (net speed of moving prompts, generated / real; < 1 = too static; the study's motion figure on the synthetic world)",
            c.tracked_motion_ratio,
            true,
        ),
        (
            "robust motion ratio (trajectory score, generated / real; the study's motion figure on real footage)",
            c.robust_motion_ratio,
            true,
        ),
        (
            "VBench flow motion ratio (top-5% flow per pair, generated / real; counts noise and outline flicker as motion)",
            c.motion_ratio,
            true,
        ),
        (
            "FVD-lite (Fréchet distance over colour, gradient and motion features; lower = closer to real)",
            c.fvd_lite as f32,
            false,
        ),
        (
            "validation loss (rectified flow, 10 timesteps, EMA weights)",
            r.val_loss,
            false,
        ),
    ];
    s.push('\n');
    for (name, x, motion) in figures {
        let _ = writeln!(s, "- {name}: **{}**", fmt_or_na(x, video || !motion, four));
    }
    probe_lines(&mut s, &r.probes);
    let _ = writeln!(
        s,
        "- sampling {:.1} s, scoring {:.1} s",
        r.sampling_seconds, r.scoring_seconds
    );
    s
}

fn probe_lines(s: &mut String, probes: &[Probe]) {
    for p in probes {
        let _ = writeln!(
            s,
            "- text-use probe, {:?} word swapped: loss {:+.5} ± {:.5} (mean ± sd over {} noise draws; {})",
            p.class,
            p.mean,
            p.spread,
            p.gaps.len(),
            if p.spread > 0.0 {
                format!("{:.1}× its spread", p.mean / p.spread)
            } else {
                "no spread".into()
            }
        );
        let by_t: Vec<String> = p
            .by_t
            .iter()
            .map(|(t, g)| format!("t={t:.2}: {g:+.5}"))
            .collect();
        let _ = writeln!(s, "  - by timestep: {}", by_t.join(", "));
    }
}
