//! `freezeframe bench train-step`: median wall time of a full training step (forward, backward,
//! global-norm clip, AdamW update) on synthetic batches.
use std::time::Instant;

use freezeframe_data::WorldConfig;
use freezeframe_model::{StdiTConfig, param_table};
use serde::Serialize;

use crate::batch::{BatchSpec, train_batch};
use crate::config::RunConfig;
use crate::diagnostics::{peak_rss_mib, reset_peak_rss};
use crate::error::TrainError;
use crate::plans::{resolve_for, set_trainable};
use crate::sample::encoder_for;
use crate::trainer;

#[derive(Debug, Clone, Serialize)]
pub struct StepBench {
    /// The preset, or the run config's name.
    pub model: String,
    /// `flex` or `wgpu`.
    pub backend: String,
    /// The plan and the phase whose frozen set was benchmarked.
    pub plan: String,
    pub phase: String,
    pub trainable_params: usize,
    /// Peak resident memory of the process over the timed steps (Linux only).
    pub peak_rss_mib: Option<f64>,
    pub batch_size: usize,
    pub params: usize,
    pub steps: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// Batch construction (rendering, encoding, noise), excluded from the step times.
    pub data_ms_median: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// What `bench train-step` times: the config's model, world, batches and plan.
#[derive(Debug, Clone)]
pub struct StepBenchSpec {
    /// Model, world (frames, size, image mode), plan, caption dropout, timestep shift and
    /// gradient clip as a run with this config would train.
    pub cfg: RunConfig,
    /// Label of the model in the result (the preset, or the config's name).
    pub label: String,
    /// The phase of the config's plan whose frozen set is benchmarked (0-based).
    pub phase: usize,
    pub steps: usize,
    pub warmup: usize,
}

/// The benchmark of a model preset on the default world at its own frames and resolution,
/// with `plan` (a preset or file) and batch `batch_size`; the other settings are the config
/// defaults (the learning rate's value does not change a step's time).
pub fn preset_spec(preset: &str, plan: &str, batch_size: usize) -> Result<RunConfig, TrainError> {
    let mcfg = StdiTConfig::preset(preset).ok_or_else(|| TrainError::Config {
        path: "--preset".into(),
        message: format!("{preset:?} is not one of {:?}", StdiTConfig::PRESETS),
    })?;
    let mut cfg = RunConfig::parse(
        &format!("name = \"bench\"\n[model]\npreset = \"{preset}\"\n"),
        "bench".as_ref(),
    )?;
    cfg.plan = plan.to_string();
    cfg.init.from = None;
    cfg.train.batch_size = batch_size;
    cfg.data = WorldConfig {
        frames: mcfg.frames,
        size: mcfg.height,
        speeds: freezeframe_data::world::Speeds {
            slow: 0.5,
            fast: 1.0,
        },
        object_size: [2.0, 3.0],
        ..WorldConfig::default()
    };
    Ok(cfg)
}

/// Times `steps` training steps after `warmup` untimed ones, with the parameters of the plan's
/// phase `phase` trainable and the rest frozen. Weights are the seeded initialisation (image
/// weights would not change the time).
pub fn train_step(spec: &StepBenchSpec) -> Result<StepBench, TrainError> {
    let StepBenchSpec {
        cfg,
        label,
        phase,
        steps,
        warmup,
    } = spec;
    let (phase, steps, warmup) = (*phase, *steps, *warmup);
    let world = crate::dataset::Dataset::open(&cfg.data)?;
    let encoder = encoder_for(cfg)?;
    let device = cfg.runtime.backend.autodiff()?;
    let mcfg = cfg.model()?;
    let loaded = freezeframe_plan::load(&cfg.plan)?;
    let mut model = crate::plans::build_for_plan(&mcfg, &loaded, 0, &device)?;
    let params = param_table(&model).iter().map(|p| p.numel()).sum();
    let bound = resolve_for(&loaded, &model, mcfg.depth, warmup + steps)?;
    if phase >= bound.plan.phases.len() {
        return Err(TrainError::Config {
            path: "--phase".into(),
            message: format!("plan `{}` has {} phases", cfg.plan, bound.plan.phases.len()),
        });
    }
    // The learning rates of the benchmarked phase's first step.
    let lr = bound.learning_rates(bound.plan.phases[phase].start, cfg.train.lr);
    model = set_trainable(model, &bound.trainable(phase));
    let mut optim = bound.optimizer(cfg);
    let batches = BatchSpec::of(cfg);
    let (mut times, mut data_times) = (Vec::new(), Vec::new());
    for step in 0..warmup + steps {
        let t0 = Instant::now();
        let batch = train_batch(&world, &encoder, batches, step, &device)?;
        let t1 = Instant::now();
        let out = trainer::train_step(model, &mut optim, batch, lr.clone(), cfg.train.grad_clip);
        model = out.model;
        if step + 1 == warmup {
            reset_peak_rss();
        }
        if step >= warmup {
            times.push(t1.elapsed().as_secs_f64() * 1e3);
            data_times.push((t1 - t0).as_secs_f64() * 1e3);
        }
    }
    Ok(StepBench {
        model: label.clone(),
        backend: cfg.runtime.backend.to_string(),
        plan: bound.plan.name.clone(),
        phase: bound.plan.phases[phase].name.clone(),
        trainable_params: freezeframe_plan::phase_totals(&bound.plan)[phase].params,
        peak_rss_mib: peak_rss_mib(),
        batch_size: cfg.train.batch_size,
        params,
        steps,
        min_ms: times.iter().copied().fold(f64::INFINITY, f64::min),
        max_ms: times.iter().copied().fold(0.0, f64::max),
        median_ms: median(times),
        data_ms_median: median(data_times),
    })
}
