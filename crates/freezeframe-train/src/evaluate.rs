//! `freezeframe eval --run`: sample a fixed prompt set with fixed noise from a run's EMA
//! weights and score the videos against the real videos of the same prompts. The prompt set
//! and noise depend only on the run's world config and the eval seed, so runs over the same
//! world are compared on identical inputs.
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::*;
use freezeframe_data::world::Speeds;
use freezeframe_data::{Split, Video};
use freezeframe_eval::{
    Alignment, Comparison, SetSummary, Target, compare, read_videos, score_videos,
};
use serde::Serialize;

use crate::dataset::Dataset;
use crate::error::{TrainError, io};
use crate::run::Run;
use crate::sample::{generate_from, load_run};
use crate::validate::val_loss;

/// Frames per second assumed for synthetic clips (VBench's reference rate: its dynamic
/// threshold is then 6·min(H, W)/256 px).
pub const SYNTHETIC_FPS: f32 = 8.0;
/// Videos sampled per forward batch; fixed so that timing, not results, depends on it.
const BATCH: usize = 16;

#[derive(Debug, Clone, Serialize)]
pub struct EvalOptions {
    pub n: usize,
    pub steps: usize,
    pub cfg: f32,
    pub seed: u64,
    #[serde(skip)]
    pub progress: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            n: 256,
            steps: 30,
            cfg: 4.0,
            seed: 0,
            progress: true,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub run: PathBuf,
    /// Step of the checkpoint whose EMA weights were sampled.
    pub checkpoint_step: usize,
    pub options: EvalOptions,
    #[serde(flatten)]
    pub comparison: Comparison,
    /// Rectified-flow loss of the EMA weights on held-out clips, mean and per timestep.
    pub val_loss: f32,
    pub val_loss_by_t: Vec<(f32, f32)>,
    pub sampling_seconds: f64,
    pub scoring_seconds: f64,
}

/// The real clips and their captions — the first `n` held-out clips of the run's data — and,
/// for the synthetic world, what each prompt asks for and the world's speeds.
pub struct PromptSet {
    pub prompts: Vec<String>,
    pub real: Vec<Video>,
    pub truth: Option<(Vec<Target>, Speeds)>,
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
                truth: Some((targets, w.config.speeds)),
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
    }
}

pub fn evaluate_run(run: &Run, opts: &EvalOptions) -> Result<EvalReport, TrainError> {
    if opts.n == 0 || opts.steps == 0 {
        return Err(TrainError::Config {
            path: "eval".into(),
            message: "--n and --steps must be at least 1".into(),
        });
    }
    let device = Device::flex();
    let loaded = load_run(run, &device)?;
    let (model, encoder, cfg) = (&loaded.model, &loaded.encoder, &loaded.config);
    let mut wcfg = cfg.data.clone();
    // Clip i of the held-out split does not depend on how many there are.
    wcfg.val_clips = wcfg.val_clips.max(opts.n);
    let data = Dataset::open(&wcfg)?;
    let PromptSet {
        prompts,
        real,
        truth,
    } = prompt_set(&data, opts.n);
    let fps = clip_fps(&data);

    let bar = crate::progress::bar(
        prompts.len() as u64,
        opts.progress,
        "eval [{elapsed_precise}] {wide_bar} {pos}/{len} videos (eta {eta}) {msg}",
    );
    let spec = loaded.spec(opts.steps, opts.cfg, opts.seed);
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
        Some((targets, speeds)) => {
            let rg = read_videos(&generated, *speeds);
            let rr = read_videos(&real, *speeds);
            compare(&sg, &sr, Some((&rg, &rr, targets)))
        }
        None => compare(&sg, &sr, None),
    };
    let scoring_seconds = t1.elapsed().as_secs_f64();
    let v = val_loss(model, &data, encoder, cfg.log.val_clips, &device)?;
    bar.finish_and_clear();
    let report = EvalReport {
        run: run.dir.clone(),
        checkpoint_step: loaded.step,
        options: opts.clone(),
        comparison,
        val_loss: v.mean,
        val_loss_by_t: v.by_t,
        sampling_seconds,
        scoring_seconds,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| TrainError::Config {
        path: run.dir.join("eval.json"),
        message: e.to_string(),
    })?;
    std::fs::write(run.dir.join("eval.json"), json).map_err(io("write eval.json"))?;
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

/// The human-readable report written beside `eval.json`.
pub fn markdown(r: &EvalReport) -> String {
    let c = &r.comparison;
    let (g, re) = (&c.generated, &c.real);
    let mut s = String::new();
    let _ = writeln!(s, "# Evaluation of {}\n", r.run.display());
    let _ = writeln!(
        s,
        "EMA weights of step {}; {} prompts (the first held-out clips of the run's data), {} Euler steps, guidance {}, noise seed {}.\n",
        r.checkpoint_step, r.comparison.real.n, r.options.steps, r.options.cfg, r.options.seed
    );
    let _ = writeln!(s, "| metric | generated | real |\n|---|---|---|");
    fn three(x: f32) -> String {
        format!("{x:.3}")
    }
    fn four(x: f32) -> String {
        format!("{x:.4}")
    }
    type Row = (&'static str, fn(&SetSummary) -> f32, fn(f32) -> String);
    let summary_rows: [Row; 6] = [
        ("motion score (top-5% flow, px/frame)", |m| m.motion, three),
        ("dynamic degree", |m| m.dynamic_degree, pct),
        ("static rate", |m| m.static_rate, pct),
        ("frame difference", |m| m.frame_difference, four),
        ("temporal flickering score", |m| m.flicker, four),
        ("sharpness (Laplacian variance)", |m| m.sharpness, four),
    ];
    for (name, get, fmt) in summary_rows {
        let _ = writeln!(s, "| {name} | {} | {} |", fmt(get(g)), fmt(get(re)));
    }
    if let (Some(a), Some(b)) = (&c.alignment, &c.alignment_real) {
        type AlignmentRow = (&'static str, fn(&Alignment) -> f32);
        let alignment_rows: [AlignmentRow; 5] = [
            ("direction accuracy", |x| x.direction),
            ("speed-class accuracy (moving prompts)", |x| x.speed),
            ("colour accuracy", |x| x.colour),
            ("shape accuracy", |x| x.shape),
            ("object presence", |x| x.presence),
        ];
        for (name, get) in alignment_rows {
            let _ = writeln!(s, "| {name} | {} | {} |", pct(get(a)), pct(get(b)));
        }
    }
    let _ = writeln!(
        s,
        "\n- motion ratio (generated / real; < 1 = too static): **{:.3}**",
        c.motion_ratio
    );
    let _ = writeln!(
        s,
        "- FVD-lite (Fréchet distance over colour, gradient and motion features; lower = closer to real): **{:.4}**",
        c.fvd_lite
    );
    let _ = writeln!(
        s,
        "- validation loss (rectified flow, 10 timesteps, EMA weights): **{:.4}**",
        r.val_loss
    );
    let _ = writeln!(
        s,
        "- sampling {:.1} s, scoring {:.1} s",
        r.sampling_seconds, r.scoring_seconds
    );
    s
}
