//! `freezeframe demo`: a small version of the study that fits 15 minutes on a 2-core machine,
//! and `--quick`, every stage at the smallest size for CI. Both are the full study's config
//! with a smaller grid and budget, embedded so the demo runs from any folder.
use std::path::Path;

use freezeframe_train::RunConfig;
use freezeframe_train::lr::Schedule;

use crate::config::{AblationConfig, label};
use crate::error::LabError;

const STUDY: &str = include_str!("../../../configs/ablations/open-sora-freeze.toml");
const BASE: &str = include_str!("../../../configs/calibrated-full.toml");

/// The demo's grid: claim 1's two strategies, two seeds each — the fewest runs that can decide
/// a claim (a verdict needs two seeds per side).
const DEMO_STRATEGIES: [&str; 2] = ["full", "temporal-only"];
const DEMO_SEEDS: [u64; 2] = [0, 1];
/// Steps, batch and clip length per demo run: the four runs, evaluations included, within 15
/// minutes on a 2-core machine (BENCHMARKS.md, "demo"), calibrated on `full` only (docs/
/// calibration.md, step 6). On the study's 8-frame clips `full` does not yet move the circle in
/// that time (tracked motion ratio 0.53 at 600 steps × 8); 4-frame clips halve the step, and a
/// constant learning rate after warm-up keeps every step at full rate (seed 0 at 1500 steps:
/// 0.74 with cosine decay, 0.99 constant; constant at 2000 steps: 1.07 / 0.94 on seeds 0 / 1).
/// 2000 steps took 15 min 56 s for the four runs on a 2-core EPYC, so the demo trains 1800. The
/// batch is set here, not taken from the calibrated config, whose batch is the study's.
const DEMO_STEPS: usize = 1800;
const DEMO_BATCH: usize = 8;
const DEMO_FRAMES: usize = 4;
const DEMO_SCHEDULE: Schedule = Schedule::Constant;
/// Validation and checkpoints every third of a run (an interrupted demo resumes from the last).
const DEMO_VAL_EVERY: usize = 600;
/// 48 held-out prompts (about 40 of them moving, the ones the motion figure reads); sampling
/// 4-frame clips takes about 13 s a run.
const DEMO_EVAL_PROMPTS: usize = 48;

/// The demo's ablation and base configs, and what it leaves out of the full study.
pub fn demo_config(quick: bool) -> Result<(AblationConfig, RunConfig, Vec<String>), LabError> {
    let full = AblationConfig::parse(STUDY, Path::new("configs/ablations/open-sora-freeze.toml"))?;
    let mut ab = full.clone();
    ab.name = if quick { "demo-quick" } else { "demo" }.into();
    ab.strategies = DEMO_STRATEGIES.map(String::from).to_vec();
    ab.seeds = DEMO_SEEDS.to_vec();
    ab.budget.steps = Some(DEMO_STEPS);
    ab.budget.batch_size = Some(DEMO_BATCH);
    ab.budget.val_every = Some(DEMO_VAL_EVERY);
    ab.budget.checkpoint_every = Some(DEMO_VAL_EVERY);
    ab.eval.n = DEMO_EVAL_PROMPTS;
    let mut base = RunConfig::parse(BASE, Path::new("configs/calibrated-full.toml"))
        .map_err(LabError::Train)?;
    let study_clip = (base.data.frames, base.train.schedule);
    base.data.frames = DEMO_FRAMES;
    base.train.schedule = DEMO_SCHEDULE;
    if quick {
        ab.budget = crate::config::BudgetSection {
            steps: Some(6),
            warmup: Some(1),
            batch_size: Some(2),
            diag_every: Some(2),
            frozen_grad_every: Some(2),
            val_every: Some(3),
            checkpoint_every: Some(3),
            sample_n: Some(1),
            sample_steps: Some(2),
        };
        ab.eval.n = 4;
        ab.eval.steps = 2;
        base.log.val_clips = 4;
    }
    let study_budget = (
        full.budget.steps.unwrap_or(base.train.steps),
        full.budget.batch_size.unwrap_or(base.train.batch_size),
    );
    let base = ab.with_budget(base)?;
    let left: Vec<String> = full
        .strategies
        .iter()
        .map(|s| label(s))
        .filter(|s| !ab.strategies.contains(s))
        .collect();
    let mut left_out = vec![format!(
        "strategies {} and seeds {:?} of the full study (configs/ablations/open-sora-freeze.toml: {} strategies × {} seeds × {} steps; its time on a 2-core machine is in BENCHMARKS.md); run it with `freezeframe ablate --config configs/ablations/open-sora-freeze.toml`.",
        left.join(", "),
        full.seeds
            .iter()
            .filter(|s| !ab.seeds.contains(s))
            .collect::<Vec<_>>(),
        full.strategies.len(),
        full.seeds.len(),
        full.budget.steps.unwrap_or(base.train.steps),
    )];
    left_out.push("Two seeds a side decide a claim only when the difference is large against the seeds' spread; the full study has three.".into());
    left_out.push(format!(
        "Each run here trains {} steps × batch {} on {}-frame clips at a {} learning rate (the full study: {} × {}, {} frames, {}).",
        base.train.steps,
        base.train.batch_size,
        base.data.frames,
        base.train.schedule.name(),
        study_budget.0,
        study_budget.1,
        study_clip.0,
        study_clip.1.name(),
    ));
    Ok((ab, base, left_out))
}
