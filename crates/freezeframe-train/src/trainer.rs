//! The training loop.
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use freezeframe_data::World;
use freezeframe_diffusion::{interpolate, rf_loss, velocity_target};
use freezeframe_model::init::initialize;
use freezeframe_model::{StdiTConfig, Stdit};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::batch::train_batch;
use crate::checkpoint::{self, Checkpoint, CheckpointState, FORMAT_VERSION};
use crate::config::RunConfig;
use crate::error::{TrainError, io};
use crate::lr::lr_at;
use crate::metrics::MetricsLog;
use crate::run::Run;
use crate::sample::{SampleSpec, encoder_for, write_prompt_gifs};
use crate::validate::val_loss;
use crate::{ema, grads};

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

/// The run's AdamW.
pub fn optimizer(cfg: &RunConfig) -> ModuleOptimizer {
    let t = &cfg.train;
    AdamWConfig::new()
        .with_beta_1(t.betas[0])
        .with_beta_2(t.betas[1])
        .with_epsilon(1e-8)
        .with_weight_decay(t.weight_decay)
        .init()
}

/// One optimisation step; returns the updated model, the loss and the pre-clip gradient norm.
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    model: Stdit,
    optim: &mut ModuleOptimizer,
    batch: crate::batch::Batch,
    lr: f64,
    grad_clip: f32,
) -> (Stdit, f32, f32) {
    let xt = interpolate(batch.x0.clone(), batch.noise.clone(), batch.t.clone());
    let target = velocity_target(batch.x0, batch.noise);
    let pred = model.forward(xt, batch.t, &batch.caption);
    let loss = rf_loss(pred, target);
    let loss_value = loss.clone().into_scalar::<f32>();
    let mut g = GradientsParams::from_grads(loss.backward(), &model);
    let norm = grads::clip_global_norm(&model, &mut g, grad_clip);
    (optim.step(lr, model, g), loss_value, norm)
}

fn check_resumable(saved: &RunConfig, cfg: &RunConfig) -> Result<(), TrainError> {
    let mut a = saved.clone();
    let mut b = cfg.clone();
    // A resumed run may be extended or re-logged; everything that shapes the trajectory must match.
    a.train.steps = 0;
    b.train.steps = 0;
    a.log = b.log.clone();
    a.sample = b.sample.clone();
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
    if opts.resume && run.config_path().is_file() {
        check_resumable(&run.load_config()?, cfg)?;
    }
    std::fs::create_dir_all(&run.dir).map_err(io(format!("create {}", run.dir.display())))?;
    std::fs::write(run.config_path(), cfg.to_toml()).map_err(io("write config.toml"))?;

    let mcfg = cfg.model_config().map_err(|message| TrainError::Config {
        path: run.config_path(),
        message,
    })?;
    let world = World::new(cfg.data.clone())?;
    let encoder = encoder_for(cfg)?;
    let device = Device::flex().autodiff();
    let plain = Device::flex();

    let mut model = build_model(&mcfg, cfg.seed, &device);
    let mut ema_model = build_model(&mcfg, cfg.seed, &plain);
    let mut optim = optimizer(cfg);
    let mut start = 0;
    if opts.resume {
        if let Some((step, dir)) = run.latest_checkpoint() {
            let st = checkpoint::load_state(&dir)?;
            model = checkpoint::load_model(model, &dir.join("model.safetensors"))?;
            ema_model = checkpoint::load_model(ema_model, &dir.join("ema.safetensors"))?;
            optim = checkpoint::load_optimizer(optim, &dir)?;
            start = st.step;
            tracing::info!(step, dir = %dir.display(), "resuming");
        } else {
            tracing::warn!(dir = %run.dir.display(), "no checkpoint to resume from; starting at step 0");
        }
        MetricsLog::truncate_after(&run.metrics_path(), start)?;
    }
    let mut log = MetricsLog::open(&run.metrics_path())?;

    let t = &cfg.train;
    let end = opts
        .stop_after
        .map_or(t.steps, |n| (start + n).min(t.steps));
    let bar = if opts.progress {
        ProgressBar::new(t.steps as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(cfg.name.clone());
    bar.set_position(start as u64);

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

    let mut losses = Vec::new();
    let (mut window, mut window_start) = (Vec::new(), Instant::now());
    let mut last_saved = if start > 0 { Some(start) } else { None };
    let mut final_val = None;
    for step in start..end {
        let batch = train_batch(
            &world,
            &encoder,
            cfg.seed,
            step,
            t.batch_size,
            t.caption_dropout,
            &device,
        )?;
        let lr = lr_at(step, t.steps, t.warmup, t.lr, t.schedule, t.min_lr_ratio);
        let (m, loss, norm) = train_step(model, &mut optim, batch, lr, t.grad_clip);
        model = m;
        if !loss.is_finite() {
            return Err(TrainError::Diverged { step, loss });
        }
        ema_model = ema::update(ema_model, &model, t.ema_decay);
        losses.push((step + 1, loss));
        window.push((loss, norm));
        let done = step + 1;
        bar.set_position(done as u64);
        bar.set_message(format!("loss {loss:.4} lr {lr:.1e}"));

        if (cfg.log.every > 0 && done % cfg.log.every == 0) || done == end {
            let n = window.len() as f32;
            let it_s = window.len() as f64 / window_start.elapsed().as_secs_f64().max(1e-9);
            log.write(&json!({
                "step": done,
                "loss": window.iter().map(|w| w.0).sum::<f32>() / n,
                "lr": lr,
                "grad_norm": window.iter().map(|w| w.1).sum::<f32>() / n,
                "it_s": it_s,
            }))?;
            window.clear();
            window_start = Instant::now();
        }
        let is_last = done == t.steps;
        if (cfg.log.val_every > 0 && done % cfg.log.val_every == 0) || is_last {
            let v = val_loss(&model.valid(), &world, &encoder, cfg.log.val_clips, &plain)?;
            log.write(&json!({ "step": done, "val_loss": v.mean, "val_loss_by_t": v.by_t }))?;
            bar.println(format!("step {done}: val loss {:.4}", v.mean));
            final_val = Some(v.mean);
        }
        if (cfg.log.checkpoint_every > 0 && done % cfg.log.checkpoint_every == 0) || done == end {
            save(done, &model, &ema_model, &optim)?;
            last_saved = Some(done);
        }
        if cfg.log.sample_every > 0 && done % cfg.log.sample_every == 0 && !is_last {
            samples_into(&ema_model, &format!("step-{done:06}"))?;
        }
    }
    bar.finish_and_clear();
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
