//! The training loop.
use std::time::Instant;

use std::collections::{HashMap, HashSet};

use crate::dataset::Dataset;
use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::module::{Module, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use freezeframe_model::init::initialize;
use freezeframe_model::paths::map_values;
use freezeframe_model::{StdiTConfig, Stdit};
use serde_json::json;

use crate::batch::train_batch;
use crate::checkpoint::{self, Checkpoint, CheckpointState, FORMAT_VERSION};
use crate::config::RunConfig;
use crate::error::{TrainError, io};
use crate::lr::lr_at;
use crate::metrics::MetricsLog;
use crate::plans::{BoundPlan, set_trainable};
use crate::run::{Run, write_atomic};
use crate::sample::{SampleSpec, encoder_for, write_prompt_gifs};
use crate::validate::val_loss;
use crate::{diagnostics, ema, grads, plans};

#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Continue from the newest complete checkpoint of the run folder.
    pub resume: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Stop after this many steps of this call (tests interrupt runs this way); the run's
    /// planned length and schedule stay those of the config.
    pub stop_after: Option<usize>,
    /// Write sample GIFs at the end.
    pub final_samples: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            resume: false,
            progress: true,
            stop_after: None,
            final_samples: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub run: Run,
    /// Steps completed in total.
    pub steps: usize,
    /// (step, loss) of every step this call ran.
    pub losses: Vec<(usize, f32)>,
    pub final_val: Option<f32>,
    pub seconds: f64,
    pub samples: Vec<std::path::PathBuf>,
}

/// A freshly initialised model.
pub fn build_model(cfg: &StdiTConfig, seed: u64, device: &Device) -> Stdit {
    initialize(Stdit::new(cfg, device), seed)
}

/// What one optimisation step reports.
pub struct StepOut {
    pub model: Stdit,
    pub loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Squared gradient norm of every parameter that received a gradient.
    pub sq_norms: Vec<(ParamId, f32)>,
}

/// One optimisation step. Parameters that do not require gradients get none and are left
/// untouched by the optimiser.
pub fn train_step(
    model: Stdit,
    optim: &mut ModuleOptimizer,
    batch: crate::batch::Batch,
    lr: impl Into<ModuleLearningRate>,
    grad_clip: f32,
) -> StepOut {
    let loss = crate::batch::batch_loss(&model, batch);
    let loss_value = loss.clone().into_scalar::<f32>();
    let mut g = GradientsParams::from_grads(loss.backward(), &model);
    let (grad_norm, sq_norms) = grads::clip_global_norm(&model, &mut g, grad_clip);
    StepOut {
        model: optim.step(lr, model, g),
        loss: loss_value,
        grad_norm,
        sq_norms,
    }
}

/// Weights for a run's first step: `model` (the seeded initialisation) as it is, or — for plans
/// that start from image weights — with every non-fresh parameter loaded from `[init] from`.
pub fn initial_model(
    model: Stdit,
    cfg: &RunConfig,
    bound: &BoundPlan,
) -> Result<Stdit, TrainError> {
    let Some(from) = &cfg.init.from else {
        return Ok(model);
    };
    let file = if from.is_dir() {
        let run = Run::new(from);
        let (_, dir) = run.latest_checkpoint().ok_or_else(|| {
            TrainError::Init(format!("{} holds no complete checkpoint", from.display()))
        })?;
        dir.join("ema.safetensors")
    } else {
        from.clone()
    };
    // The initial values of the fresh parameters, to put back after loading.
    let fresh_paths: HashSet<&str> = bound
        .plan
        .params
        .iter()
        .filter(|p| p.fresh)
        .map(|p| p.path.as_str())
        .collect();
    let mut fresh: HashMap<String, Vec<f32>> = HashMap::new();
    let model = map_values(model, |path, _, read| {
        if fresh_paths.contains(path) {
            fresh.insert(path.to_string(), read());
        }
        None
    });
    let (model, missing) = checkpoint::load_model_partial(model, &file)?;
    let needed: Vec<&String> = missing.iter().filter(|m| !fresh.contains_key(*m)).collect();
    if !needed.is_empty() {
        return Err(TrainError::Init(format!(
            "{} lacks {} parameters the plan expects from image weights (not `fresh`): {:?}",
            file.display(),
            needed.len(),
            needed.iter().take(6).collect::<Vec<_>>()
        )));
    }
    // Fresh parameters keep their initialisation even when the image checkpoint has them
    // (Open-Sora's temporal attention is new; ours was trained on single frames).
    let restored = fresh.len();
    let model = map_values(model, |path, _, _| fresh.remove(path));
    tracing::debug!(from = %file.display(), fresh = restored, "initialised from image weights");
    Ok(model)
}

fn check_resumable(saved: &RunConfig, cfg: &RunConfig) -> Result<(), TrainError> {
    let mut a = saved.clone();
    let mut b = cfg.clone();
    // A resumed run may be extended or re-logged; everything that shapes the trajectory must match.
    a.train.steps = 0;
    b.train.steps = 0;
    a.log = b.log.clone();
    a.sample = b.sample.clone();
    // The plan is compared by content (plan.toml in the run folder), not by how it was named.
    a.plan = b.plan.clone();
    if a != b {
        return Err(TrainError::Config {
            path: "--resume".into(),
            message: "the config differs from the run's config.toml in more than train.steps, [log] or [sample]".into(),
        });
    }
    Ok(())
}

/// Trains the run described by `cfg`; the run folder is `cfg.out_dir/cfg.name`.
pub fn train(cfg: &RunConfig, opts: &TrainOptions) -> Result<TrainSummary, TrainError> {
    let started = Instant::now();
    let run = Run::for_config(cfg);
    let has_content = run.dir.is_dir()
        && std::fs::read_dir(&run.dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
    if has_content && !opts.resume {
        return Err(TrainError::RunExists(run.dir.clone()));
    }
    let mcfg = cfg.model_config().map_err(|message| TrainError::Config {
        path: run.config_path(),
        message,
    })?;
    let device = Device::flex().autodiff();
    let plain = Device::flex();
    let loaded_plan = freezeframe_plan::load(&cfg.plan)?;
    // Validate the plan before anything is written or trained.
    let fresh_model = build_model(&mcfg, cfg.seed, &device);
    let bound = plans::bind_loaded(cfg, &loaded_plan, &fresh_model, mcfg.depth)?;
    if opts.resume && run.config_path().is_file() {
        check_resumable(&run.load_config()?, cfg)?;
        let saved = std::fs::read_to_string(run.plan_path()).map_err(io(format!(
            "read {} to check the plan",
            run.plan_path().display()
        )))?;
        if saved != loaded_plan.text {
            return Err(TrainError::Config {
                path: run.plan_path(),
                message: format!(
                    "plan `{}` differs from the plan the run was started with",
                    cfg.plan
                ),
            });
        }
    }
    let had_config = run.config_path().is_file();
    std::fs::create_dir_all(&run.dir).map_err(io(format!("create {}", run.dir.display())))?;
    // One writer per run folder: held until this function returns.
    let _lock = run.lock()?;
    // Through a rename: a kill mid-write must not leave a config that later fails to parse.
    write_atomic(&run.config_path(), cfg.to_toml().as_bytes())?;
    write_atomic(&run.plan_path(), loaded_plan.text.as_bytes())?;

    let data = Dataset::open(&cfg.data)?;
    let encoder = encoder_for(cfg)?;
    let plan = &bound.plan;

    let mut start = 0;
    let (mut model, mut ema_model, mut optim);
    let resume_from = if opts.resume {
        run.latest_checkpoint()
    } else {
        None
    };
    if let Some((step, dir)) = resume_from {
        let st = checkpoint::load_state(&dir)?;
        model = checkpoint::load_model(fresh_model, &dir.join("model.safetensors"))?;
        ema_model = checkpoint::load_model(
            build_model(&mcfg, cfg.seed, &plain),
            &dir.join("ema.safetensors"),
        )?;
        optim = checkpoint::load_optimizer(bound.optimizer(cfg), &dir)?;
        start = st.step;
        tracing::info!(step, dir = %dir.display(), "resuming");
    } else {
        if opts.resume && had_config {
            tracing::warn!(dir = %run.dir.display(), "no checkpoint to resume from; starting at step 0");
        }
        model = initial_model(fresh_model, cfg, &bound)?;
        if let Some(from) = &cfg.init.from {
            tracing::info!(from = %from.display(), "initialised from image weights");
        }
        ema_model = model.valid();
        optim = bound.optimizer(cfg);
    }
    if opts.resume {
        MetricsLog::truncate_after(&run.metrics_path(), start)?;
    }
    let mut log = MetricsLog::open(&run.metrics_path())?;

    let t = &cfg.train;
    let end = opts
        .stop_after
        .map_or(t.steps, |n| (start + n).min(t.steps));
    let bar = crate::progress::bar(
        t.steps as u64,
        opts.progress,
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
    );
    bar.set_prefix(cfg.name.clone());
    bar.set_position(start as u64);
    if opts.progress && start == 0 {
        bar.println(freezeframe_plan::explain(plan, t.lr));
    }

    let shape = [mcfg.frames, mcfg.channels, mcfg.height, mcfg.width];
    let spec = SampleSpec {
        steps: cfg.sample.steps,
        cfg: cfg.sample.cfg,
        seed: cfg.sample.seed,
        shape,
    };
    let save = |step: usize, model: &Stdit, ema_model: &Stdit, optim: &ModuleOptimizer| {
        let state = CheckpointState {
            format_version: FORMAT_VERSION,
            step,
            seed: cfg.seed,
            rng: "chacha8(seed, stream=step+1)".into(),
            plan: plan.name.clone(),
            phase: plan.phases[plan.phase_at(step.min(t.steps.saturating_sub(1)))]
                .name
                .clone(),
        };
        checkpoint::save(
            &run.checkpoint_dir(step),
            Checkpoint {
                model,
                ema: ema_model,
                optimizer: optim,
                state,
            },
        )
    };

    let samples_into = |ema: &Stdit, folder: &str| {
        let dir = run.samples_dir().join(folder);
        write_prompt_gifs(
            ema,
            &encoder,
            &cfg.sample.prompts,
            cfg.sample.n,
            spec,
            &dir,
            &plain,
        )
    };
    let totals = freezeframe_plan::phase_totals(plan);
    let phase_start = |ph: usize, step: usize| {
        json!({
            "step": step,
            "event": "phase_start",
            "phase": plan.phases[ph].name,
            "trainable_tensors": totals[ph].tensors,
            "trainable_params": totals[ph].params,
            "adam_state_bytes": totals[ph].optimizer_bytes,
        })
    };
    // Peak memory since the phase began (the mark is reset at every phase start).
    let phase_end = |log: &mut MetricsLog, ph: usize, step: usize| {
        match diagnostics::peak_rss_mib()
    {
        Some(mib) => log.write(&json!({ "step": step, "event": "phase_end", "phase": plan.phases[ph].name, "peak_rss_mib": mib })),
        None => Ok(()),
    }
    };

    let mut losses = Vec::new();
    let (mut window, mut window_start) = (Vec::new(), Instant::now());
    let mut last_saved = if start > 0 { Some(start) } else { None };
    let mut final_val = None;
    let mut phase: Option<usize> = None;
    let mut trained: HashSet<ParamId> = HashSet::new();
    let mut trainable: HashSet<ParamId> = HashSet::new();
    for step in start..end {
        let ph = plan.phase_at(step);
        if phase != Some(ph) {
            if plan.is_switch(step) {
                // Leaving parameters lose their moments: if a later phase trains them again
                // they start fresh, as newly unfrozen ones do.
                let prev = bound.trainable(ph - 1);
                let next = bound.trainable(ph);
                let leaving: HashSet<ParamId> = prev.difference(&next).copied().collect();
                optim = bound.drop_state(optim, cfg, &leaving);
                phase_end(&mut log, ph - 1, step)?;
                bar.println(format!(
                    "step {step}: phase `{}` begins",
                    plan.phases[ph].name
                ));
            }
            if plan.is_switch(step) || step == 0 {
                log.write(&phase_start(ph, step))?;
            }
            diagnostics::reset_peak_rss();
            trainable = bound.trainable(ph);
            model = set_trainable(model, &trainable);
            trained = bound.trained_by(step);
            phase = Some(ph);
        }
        let batch = train_batch(
            &data,
            &encoder,
            cfg.seed,
            step,
            t.batch_size,
            t.caption_dropout,
            t.timestep_shift,
            &device,
        )?;
        let done = step + 1;
        let diag = cfg.log.diag_every > 0 && done % cfg.log.diag_every == 0;
        let probe = cfg.log.frozen_grad_every > 0
            && done % cfg.log.frozen_grad_every == 0
            && trainable.len() < bound.ids.len();
        let would_be =
            probe.then(|| diagnostics::would_be_grad_norms(&model, batch.clone(), &bound));
        let before = diag.then(|| diagnostics::values_of(&model, &trainable));

        let lr = lr_at(step, t.steps, t.warmup, t.lr, t.schedule, t.min_lr_ratio);
        let out = train_step(
            model,
            &mut optim,
            batch,
            bound.learning_rates(step, lr),
            t.grad_clip,
        );
        model = out.model;
        let loss = out.loss;
        if !loss.is_finite() {
            return Err(TrainError::Diverged { step, loss });
        }
        ema_model = ema::update(ema_model, &model, t.ema_decay, &trained);
        losses.push((done, loss));
        window.push((loss, out.grad_norm));
        bar.set_position(done as u64);
        bar.set_message(format!(
            "loss {loss:.4} lr {lr:.1e} [{}]",
            plan.phases[ph].name
        ));

        if diag || would_be.is_some() {
            let norms = diagnostics::group_norms(&bound, &out.sq_norms);
            let ratios = before
                .map(|b| {
                    diagnostics::update_ratios(
                        &bound,
                        &b,
                        &diagnostics::values_of(&model, &trainable),
                    )
                })
                // No snapshot was taken this step: no ratios to log.
                .unwrap_or_else(Vec::new);
            let frozen: Vec<Option<f64>> = would_be
                .map(|w| {
                    // Only the groups that are frozen in this phase: for the others the probe
                    // merely repeats the real gradient.
                    w.into_iter()
                        .zip(&norms)
                        .map(|(w, real)| if real.is_some() { None } else { w })
                        .collect()
                })
                // No probe this step: no frozen norms to log.
                .unwrap_or_else(Vec::new);
            log.write(&json!({
                "step": done,
                "phase": plan.phases[ph].name,
                "groups": diagnostics::by_group(&bound, &[("grad_norm", &norms), ("update_ratio", &ratios), ("frozen_grad_norm", &frozen)]),
            }))?;
        }
        if (cfg.log.every > 0 && done % cfg.log.every == 0) || done == end {
            let n = window.len() as f32;
            let it_s = window.len() as f64 / window_start.elapsed().as_secs_f64().max(1e-9);
            log.write(&json!({
                "step": done,
                "loss": window.iter().map(|w| w.0).sum::<f32>() / n,
                "lr": lr,
                "grad_norm": window.iter().map(|w| w.1).sum::<f32>() / n,
                "it_s": it_s,
                "phase": plan.phases[ph].name,
            }))?;
            window.clear();
            window_start = Instant::now();
        }
        let is_last = done == t.steps;
        if (cfg.log.val_every > 0 && done % cfg.log.val_every == 0) || is_last {
            let v = val_loss(&model.valid(), &data, &encoder, cfg.log.val_clips, &plain)?;
            log.write(&json!({ "step": done, "val_loss": v.mean, "val_loss_by_t": v.by_t }))?;
            bar.println(format!("step {done}: val loss {:.4}", v.mean));
            final_val = Some(v.mean);
        }
        if is_last {
            phase_end(&mut log, ph, done)?;
        }
        if (cfg.log.checkpoint_every > 0 && done % cfg.log.checkpoint_every == 0) || done == end {
            save(done, &model, &ema_model, &optim)?;
            last_saved = Some(done);
        }
        if cfg.log.sample_every > 0 && done % cfg.log.sample_every == 0 && !is_last {
            samples_into(&ema_model, &format!("step-{done:06}"))?;
        }
    }
    crate::progress::finish(&bar);
    let completed = end.max(start);
    if last_saved != Some(completed) && completed > 0 {
        save(completed, &model, &ema_model, &optim)?;
    }
    crate::metrics::write_csv(&run.metrics_path(), &run.metrics_csv_path())?;

    let mut samples = Vec::new();
    if opts.final_samples && completed == t.steps {
        samples = samples_into(&ema_model, "final")?;
    }
    Ok(TrainSummary {
        run,
        steps: completed,
        losses,
        final_val,
        seconds: started.elapsed().as_secs_f64(),
        samples,
    })
}
