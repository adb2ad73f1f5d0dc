//! `freezeframe bench train-step`: median wall time of a full training step (forward, backward,
//! global-norm clip, AdamW update) on synthetic batches.
use std::time::Instant;

use burn::prelude::*;
use freezeframe_data::WorldConfig;
use freezeframe_model::{StdiTConfig, param_table};
use serde::Serialize;

use crate::batch::{BatchSpec, train_batch};
use crate::config::RunConfig;
use crate::diagnostics::{peak_rss_mib, reset_peak_rss};
use crate::error::TrainError;
use crate::plans::{resolve_for, set_trainable};
use crate::sample::encoder_for;
use crate::trainer::{self, build_model};

#[derive(Debug, Clone, Serialize)]
pub struct StepBench {
    pub preset: String,
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

/// Times `steps` training steps after `warmup` untimed ones, with the parameters of `plan`'s
/// phase `phase` trainable and the rest frozen.
pub fn train_step(
    preset: &str,
    plan: &str,
    phase: usize,
    batch_size: usize,
    steps: usize,
    warmup: usize,
) -> Result<StepBench, TrainError> {
    let mcfg = StdiTConfig::preset(preset).ok_or_else(|| TrainError::Config {
        path: "--preset".into(),
        message: format!("{preset:?} is not one of {:?}", StdiTConfig::PRESETS),
    })?;
    let mut cfg = RunConfig::parse(
        &format!("name = \"bench\"\n[model]\npreset = \"{preset}\"\n"),
        "bench".as_ref(),
    )?;
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
    let world = crate::dataset::Dataset::open(&cfg.data)?;
    let encoder = encoder_for(&cfg)?;
    let device = Device::flex().autodiff();
    let mcfg = cfg.model_config().map_err(|message| TrainError::Config {
        path: "bench".into(),
        message,
    })?;
    let mut model = build_model(&mcfg, 0, &device);
    let params = param_table(&model).iter().map(|p| p.numel()).sum();
    let loaded = freezeframe_plan::load(plan)?;
    let bound = resolve_for(&loaded, &model, mcfg.depth, warmup + steps)?;
    if phase >= bound.plan.phases.len() {
        return Err(TrainError::Config {
            path: "--phase".into(),
            message: format!("plan `{plan}` has {} phases", bound.plan.phases.len()),
        });
    }
    // The learning rates of the benchmarked phase's first step.
    let lr = bound.learning_rates(bound.plan.phases[phase].start, 1e-4);
    model = set_trainable(model, &bound.trainable(phase));
    let mut optim = bound.optimizer(&cfg);
    let (mut times, mut data_times) = (Vec::new(), Vec::new());
    for step in 0..warmup + steps {
        let t0 = Instant::now();
        let spec = BatchSpec {
            seed: 0,
            batch_size,
            caption_dropout: 0.1,
            timestep_shift: 1.0,
        };
        let batch = train_batch(&world, &encoder, spec, step, &device)?;
        let t1 = Instant::now();
        model = trainer::train_step(model, &mut optim, batch, lr.clone(), 1.0).model;
        if step + 1 == warmup {
            reset_peak_rss();
        }
        if step >= warmup {
            times.push(t1.elapsed().as_secs_f64() * 1e3);
            data_times.push((t1 - t0).as_secs_f64() * 1e3);
        }
    }
    Ok(StepBench {
        preset: preset.to_string(),
        plan: bound.plan.name.clone(),
        phase: bound.plan.phases[phase].name.clone(),
        trainable_params: freezeframe_plan::phase_totals(&bound.plan)[phase].params,
        peak_rss_mib: peak_rss_mib(),
        batch_size,
        params,
        steps,
        min_ms: times.iter().copied().fold(f64::INFINITY, f64::min),
        max_ms: times.iter().copied().fold(0.0, f64::max),
        median_ms: median(times),
        data_ms_median: median(data_times),
    })
}
