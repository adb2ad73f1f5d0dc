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
use freezeframe_model::{CaptionBatch, StdiTConfig, Stdit};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::batch::{BatchSpec, train_batch};
use crate::checkpoint::{self, Checkpoint, CheckpointState, FORMAT_VERSION};
use crate::config::RunConfig;
use crate::error::{TrainError, io};
use crate::latent::RunEncoder;
use crate::lr::lr_at;
use crate::metrics::{
    EndTag, GroupsRecord, LossRecord, MetricsLog, PhaseEnd, PhaseStart, Record, StartTag, ValRecord,
};
use crate::plans::{BoundPlan, set_trainable};
use crate::run::{Run, write_atomic};
use crate::sample::{SampleSpec, write_prompt_samples};
use crate::validate::val_loss;
use crate::{diagnostics, ema, grads, plans};
use std::path::PathBuf;

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

impl TrainSummary {
    /// The training loss this call saw, in words that say which steps each figure covers:
    /// the mean of the first and of the last ten steps when there are twenty or more, else one
    /// mean over all of them (two overlapping windows would read as progress that is not
    /// there). `None` when this call trained no step.
    pub fn loss_line(&self) -> Option<String> {
        const WINDOW: usize = 10;
        let (first, last) = (self.losses.first()?, self.losses.last()?);
        let mean = |w: &[(usize, f32)]| w.iter().map(|l| l.1 as f64).sum::<f64>() / w.len() as f64;
        let n = self.losses.len();
        if n < 2 * WINDOW {
            return Some(format!(
                "train loss {:.4} (mean of steps {}–{})",
                mean(&self.losses),
                first.0,
                last.0
            ));
        }
        let (head, tail) = (&self.losses[..WINDOW], &self.losses[n - WINDOW..]);
        Some(format!(
            "train loss {:.4} (steps {}–{}) → {:.4} (steps {}–{})",
            mean(head),
            head[0].0,
            head[WINDOW - 1].0,
            mean(tail),
            tail[0].0,
            last.0
        ))
    }
}

/// A freshly initialised model.
pub fn build_model(cfg: &StdiTConfig, seed: u64, device: &Device) -> Stdit {
    initialize(Stdit::new(cfg, device), seed)
}

/// Whether a periodic action with interval `n` (0 = off) falls on step `done`.
fn every(done: usize, n: usize) -> bool {
    n > 0 && done.is_multiple_of(n)
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

/// The weights file `[init] from` names: the file itself, or a run folder's newest EMA weights.
pub fn init_weights_file(from: &std::path::Path) -> Result<std::path::PathBuf, TrainError> {
    if !from.is_dir() {
        return Ok(from.to_path_buf());
    }
    let (_, dir) = Run::new(from).latest_checkpoint().ok_or_else(|| {
        TrainError::Init(format!("{} holds no complete checkpoint", from.display()))
    })?;
    Ok(dir.join("ema.safetensors"))
}

/// A run's weights at its first step, rebuilt from its config alone: the seeded
/// initialisation bound to the run's plan, with image weights where the plan asks for them
/// (the study's inflation check and weight drift start from it).
pub fn first_step_model(cfg: &RunConfig, device: &Device) -> Result<Stdit, TrainError> {
    let mcfg = cfg.model()?;
    let loaded = freezeframe_plan::load(&cfg.plan)?;
    let model = plans::build_for_plan(&mcfg, &loaded, cfg.seed, device)?;
    let bound = plans::bind_loaded(cfg, &loaded, &model, mcfg.depth)?;
    initial_model(model, cfg, &bound)
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
    let file = init_weights_file(from)?;
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
    let (model, missing) = checkpoint::load_merged_partial(model, &file)?;
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

/// Fresh LoRA adapters must leave the model's function as it was (`B` = 0): one forward pass
/// with and without them, on a seeded random input and the null caption, must agree within
/// `ADAPTER_TOLERANCE` (they agree exactly when `B` is zero). Logged, as the study logs the
/// inflation check.
fn check_adapters_start_silent(model: &Stdit, mcfg: &StdiTConfig) -> Result<(), TrainError> {
    if model.lora_layers().is_empty() {
        return Ok(());
    }
    let model = model.valid();
    let device = model.final_layer.linear.weight.val().device();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = crate::batch::normal_tensor(
        &mut rng,
        [1, mcfg.frames, mcfg.channels, mcfg.height, mcfg.width],
        &device,
    );
    let t = Tensor::<1>::from_floats([0.5], &device);
    let caption = CaptionBatch {
        tokens: Tensor::zeros([1, mcfg.text_len, mcfg.text_dim], &device),
        pad: Tensor::<2, Bool>::full([1, mcfg.text_len], false, &device),
        null: Tensor::<1, Bool>::full([1], true, &device),
    };
    let with = model.forward(x.clone(), t.clone(), &caption);
    let without = model.clone().without_lora().forward(x, t, &caption);
    let diff = (with - without).abs().max().into_scalar::<f32>();
    tracing::info!(
        max_abs_diff = diff,
        adapters = model.lora_layers().len(),
        "LoRA adapters against the model without them"
    );
    // A NaN offset fails too.
    if diff.is_nan() || diff > ADAPTER_TOLERANCE {
        return Err(TrainError::Init(format!(
            "fresh LoRA adapters change the model's output by {diff} (more than {ADAPTER_TOLERANCE}): their `lora_b` must start at zero"
        )));
    }
    Ok(())
}

/// See [`check_adapters_start_silent`].
pub const ADAPTER_TOLERANCE: f32 = 1e-5;

fn check_resumable(saved: &RunConfig, cfg: &RunConfig) -> Result<(), TrainError> {
    let mut a = saved.clone();
    let mut b = cfg.clone();
    // A resumed run may be extended or re-logged; everything that shapes the trajectory must match.
    a.train.steps = 0;
    b.train.steps = 0;
    a.log = b.log.clone();
    a.sample = b.sample.clone();
    // The plan is compared by content (plan.toml in the run folder), not by how it was named;
    // the folder is the run (wherever the checkout now lies), and the image weights only
    // matter at step 0.
    a.plan = b.plan.clone();
    a.out_dir = b.out_dir.clone();
    a.init.from = b.init.from.clone();
    // A run may continue on another backend.
    a.runtime = b.runtime.clone();
    if a != b {
        return Err(TrainError::Config {
            path: "--resume".into(),
            message: "the config differs from the run's config.toml in more than train.steps, [log] or [sample]".into(),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Opening a run: everything is validated and loaded before a fresh run folder is made
// ---------------------------------------------------------------------------------------------

/// What the optimisation changes, passed by value through the loop (Burn's modules and
/// optimisers are moved through their updates).
struct Weights {
    model: Stdit,
    ema: Stdit,
    optim: ModuleOptimizer,
}

/// A run ready for its next step: config, plan, data, devices, the open log and the lock.
struct Session<'a> {
    cfg: &'a RunConfig,
    run: Run,
    bound: BoundPlan,
    data: Dataset,
    encoder: RunEncoder,
    device: Device,
    plain: Device,
    spec: SampleSpec,
    /// The step the loop starts at (0, or the resumed checkpoint's step).
    start: usize,
    log: MetricsLog,
    _lock: std::fs::File,
}

/// Whether `dir` holds anything but the trainer's own lock file. A folder that exists but
/// cannot be listed counts as holding something: it is not ours to write into.
fn has_content(dir: &std::path::Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(d) => d.flatten().any(|e| e.file_name() != ".lock"),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// Checks a resumed run's saved config and plan against the ones given now.
fn check_saved_run(run: &Run, cfg: &RunConfig, plan_text: &str) -> Result<(), TrainError> {
    check_resumable(&run.load_config()?, cfg)?;
    let saved = freezeframe_fs::read_text(&run.plan_path()).map_err(io(format!(
        "read {} to check the plan",
        run.plan_path().display()
    )))?;
    if saved != plan_text {
        return Err(TrainError::Config {
            path: run.plan_path(),
            message: format!(
                "plan `{}` differs from the plan the run was started with",
                cfg.plan
            ),
        });
    }
    Ok(())
}

/// The run's data and text encoder, after checking a resumed run against what it started with
/// (config, plan, latent cache) and that the encoder reads the sample prompts — when the run
/// will sample them: a latent run's prompt its cache lacks fails here, not after the training.
fn open_inputs(
    cfg: &RunConfig,
    opts: &TrainOptions,
    run: &Run,
    plan_text: &str,
) -> Result<(Dataset, RunEncoder), TrainError> {
    let resuming = opts.resume && run.config_path().is_file();
    if resuming {
        check_saved_run(run, cfg, plan_text)?;
    }
    let data = Dataset::open(&cfg.data)?;
    if resuming {
        check_same_latents(run, &data)?;
    }
    let encoder = crate::sample::encoder_for_data(cfg, &data)?;
    if opts.final_samples || cfg.log.sample_every > 0 {
        for p in &cfg.sample.prompts {
            freezeframe_model::TextEncoder::encode(&encoder, p)?;
        }
    }
    Ok((data, encoder))
}

/// A latent run resumes on the cache it started with: the path in the config is not enough,
/// as a cache may be written again at the same path.
fn check_same_latents(run: &Run, data: &Dataset) -> Result<(), TrainError> {
    let Some(now) = crate::latent::CacheRecord::of(data) else {
        return Ok(());
    };
    let path = run.latent_cache_path();
    // No record: a run from before records were kept. Any other failure to read it is said.
    let text = match freezeframe_fs::read_text(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(TrainError::RunFile {
                path,
                message: format!("cannot read the latent cache record: {e}"),
            });
        }
    };
    let saved: crate::latent::CacheRecord =
        serde_json::from_str(&text).map_err(|e| TrainError::RunFile {
            path: path.clone(),
            message: format!("not a latent cache record: {e}"),
        })?;
    if saved.identity != now.identity {
        return Err(TrainError::Config {
            path,
            message: format!(
                "the run started on a latent cache with index hash {}; {} now has {}: it was \
                 written again since",
                saved.identity, now.cache, now.identity
            ),
        });
    }
    Ok(())
}

/// A checkpoint's `state.json` must belong to this run: its step is its folder's, its seed the
/// config's and its plan the run's (a hand-edited or foreign file is refused), and the run must
/// not already be past the config's `train.steps`. (The plan's text is also checked against
/// `plan.toml`.)
fn check_state(
    st: &CheckpointState,
    step: usize,
    dir: &std::path::Path,
    cfg: &RunConfig,
    plan: &str,
) -> Result<(), TrainError> {
    let err = |message: String| {
        Err(TrainError::Checkpoint {
            path: dir.join("state.json"),
            message,
        })
    };
    if st.step != step {
        return err(format!(
            "says step {} but its folder is step {step}: not this run's checkpoint",
            st.step
        ));
    }
    if st.seed != cfg.seed {
        return err(format!(
            "has seed {}, the config seed {}: not this run's checkpoint",
            st.seed, cfg.seed
        ));
    }
    // Checkpoints from before the plan was recorded have none (serde default).
    if !st.plan.is_empty() && st.plan != plan {
        return err(format!(
            "was written under plan `{}`, this run's plan is `{plan}`: not this run's checkpoint",
            st.plan
        ));
    }
    if st.step > cfg.train.steps {
        return err(format!(
            "the run is at step {}, beyond train.steps = {}: raise train.steps to continue it",
            st.step, cfg.train.steps
        ));
    }
    Ok(())
}

/// The weights to start from: the newest checkpoint when resuming, else the initialisation
/// (with image weights where the plan asks for them).
fn starting_weights(
    cfg: &RunConfig,
    opts: &TrainOptions,
    run: &Run,
    mcfg: &StdiTConfig,
    bound: &BoundPlan,
    fresh_model: Stdit,
    plain: &Device,
) -> Result<(usize, Weights), TrainError> {
    let resume_from = if opts.resume {
        run.latest_checkpoint()
    } else {
        None
    };
    if let Some((step, dir)) = resume_from {
        let st = checkpoint::load_state(&dir)?;
        check_state(&st, step, &dir, cfg, &bound.plan.name)?;
        let w = Weights {
            model: checkpoint::load_model(fresh_model, &dir.join("model.safetensors"))?,
            ema: checkpoint::load_model(
                plans::with_plan_adapters(
                    build_model(mcfg, cfg.seed, plain),
                    &bound.plan.name,
                    &bound.plan.spec,
                    cfg.seed,
                )?,
                &dir.join("ema.safetensors"),
            )?,
            optim: checkpoint::load_optimizer(bound.optimizer(cfg), &dir)?,
        };
        tracing::info!(step, dir = %dir.display(), "resuming");
        return Ok((st.step, w));
    }
    if opts.resume && run.config_path().is_file() {
        tracing::warn!(dir = %run.dir.display(), "no checkpoint to resume from; starting at step 0");
    }
    let model = initial_model(fresh_model, cfg, bound)?;
    if let Some(from) = &cfg.init.from {
        tracing::info!(from = %from.display(), "initialised from image weights");
    }
    check_adapters_start_silent(&model, mcfg)?;
    let ema = model.valid();
    let optim = bound.optimizer(cfg);
    Ok((0, Weights { model, ema, optim }))
}

/// Makes the run folder (its parents as needed); whether this call made it. A folder that
/// already exists is not ours to remove later, so `create_dir` (which fails on an existing
/// folder) decides, not a check before it.
fn create_run_dir(dir: &std::path::Path) -> Result<bool, TrainError> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(format!("create {}", dir.display()))(e)),
    }
}

/// Validates and loads everything, then makes (or re-opens) the run folder, takes its lock and
/// writes the config and plan. A fresh start that fails writes nothing; one that fails after
/// making the folder removes the folder it made.
fn open_or_resume<'a>(
    cfg: &'a RunConfig,
    opts: &TrainOptions,
) -> Result<(Session<'a>, Weights), TrainError> {
    let run = Run::for_config(cfg);
    // An existing folder has one writer from here on.
    let early_lock = if run.dir.is_dir() {
        Some(run.lock()?)
    } else {
        None
    };
    if has_content(&run.dir) && !opts.resume {
        return Err(TrainError::RunExists(run.dir.clone()));
    }
    let mcfg = cfg.model()?;
    let device = cfg.runtime.backend.autodiff()?;
    let plain = cfg.runtime.backend.device()?;
    let loaded_plan = freezeframe_plan::load(&cfg.plan)?;
    let fresh_model = plans::build_for_plan(&mcfg, &loaded_plan, cfg.seed, &device)?;
    let bound = plans::bind_loaded(cfg, &loaded_plan, &fresh_model, mcfg.depth)?;
    let (data, encoder) = open_inputs(cfg, opts, &run, &loaded_plan.text)?;
    let (start, weights) = starting_weights(cfg, opts, &run, &mcfg, &bound, fresh_model, &plain)?;

    let created = create_run_dir(&run.dir)?;
    let lock = match early_lock {
        Some(l) => l,
        None => run.lock()?,
    };
    // Another process may have made and filled the folder since the check above.
    if !opts.resume && has_content(&run.dir) {
        return Err(TrainError::RunExists(run.dir.clone()));
    }
    let write = || -> Result<MetricsLog, TrainError> {
        // Through a rename: a kill mid-write must not leave a config that later fails to parse.
        write_atomic(&run.config_path(), cfg.to_toml().as_bytes())?;
        write_atomic(&run.plan_path(), loaded_plan.text.as_bytes())?;
        if let Some(record) = crate::latent::CacheRecord::of(&data) {
            let text = serde_json::to_string_pretty(&record)
                .map_err(|e| TrainError::Data(e.to_string()))?;
            write_atomic(&run.latent_cache_path(), text.as_bytes())?;
        }
        if opts.resume {
            MetricsLog::truncate_after(&run.metrics_path(), start)?;
        }
        MetricsLog::open(&run.metrics_path())
    };
    let log = match write() {
        Ok(log) => log,
        Err(e) => {
            if created {
                // Made by this call (`create_dir` succeeded) and locked by it: nothing in it is
                // anybody else's. Removed while the lock is still held.
                let _ = std::fs::remove_dir_all(&run.dir);
            }
            drop(lock);
            return Err(e);
        }
    };
    // A latent run samples at the size of its largest training bucket.
    let shape = data.sample_shape(&mcfg);
    let spec = SampleSpec {
        steps: cfg.sample.steps,
        cfg: cfg.sample.cfg,
        seed: cfg.sample.seed,
        shape,
        slot: 0,
    };
    let session = Session {
        cfg,
        run,
        bound,
        data,
        encoder,
        device,
        plain,
        spec,
        start,
        log,
        _lock: lock,
    };
    Ok((session, weights))
}

// ---------------------------------------------------------------------------------------------
// The loop's bookkeeping
// ---------------------------------------------------------------------------------------------

/// What the loop carries from step to step besides the weights.
#[derive(Default)]
struct LoopState {
    losses: Vec<(usize, f32)>,
    /// (loss, grad norm) since the last loss record, and when that window began.
    window: Vec<(f32, f32)>,
    window_start: Option<Instant>,
    last_saved: Option<usize>,
    final_val: Option<f32>,
    phase: Option<usize>,
    /// Parameters the EMA follows (trained so far) and those trainable in this phase.
    trained: HashSet<ParamId>,
    trainable: HashSet<ParamId>,
}

impl Session<'_> {
    fn save(&self, step: usize, w: &Weights) -> Result<(), TrainError> {
        let plan = &self.bound.plan;
        let steps = self.cfg.train.steps;
        let state = CheckpointState {
            format_version: FORMAT_VERSION,
            step,
            seed: self.cfg.seed,
            rng: "chacha8(seed, stream=step+1)".into(),
            plan: plan.name.clone(),
            phase: plan.phases[plan.phase_at(step.min(steps.saturating_sub(1)))]
                .name
                .clone(),
        };
        checkpoint::save(
            &self.run.checkpoint_dir(step),
            Checkpoint {
                model: &w.model,
                ema: &w.ema,
                optimizer: &w.optim,
                state,
            },
        )
    }

    fn samples_into(&self, ema: &Stdit, folder: &str) -> Result<Vec<PathBuf>, TrainError> {
        write_prompt_samples(
            ema,
            &self.encoder,
            &self.cfg.sample.prompts,
            self.cfg.sample.n,
            self.spec,
            &self.run.samples_dir().join(folder),
            &self.plain,
            self.cfg.data.kind,
        )
    }

    /// Peak memory since the phase began (the mark is reset at every phase start).
    fn phase_end(log: &mut MetricsLog, phase: &str, step: usize) -> Result<(), TrainError> {
        match diagnostics::peak_rss_mib() {
            Some(mib) => log.write(&Record::PhaseEnd(PhaseEnd {
                step,
                event: EndTag::PhaseEnd,
                phase: phase.to_string(),
                peak_rss_mib: mib,
            })),
            None => Ok(()),
        }
    }

    /// At a phase boundary: drop the moments of leaving parameters, log the phase, and set
    /// which parameters require gradients.
    fn enter_phase(
        &mut self,
        step: usize,
        st: &mut LoopState,
        mut w: Weights,
        bar: &crate::progress::Bar,
    ) -> Result<Weights, TrainError> {
        let plan = &self.bound.plan;
        let ph = plan.phase_at(step);
        if st.phase == Some(ph) {
            return Ok(w);
        }
        if plan.is_switch(step) {
            // Leaving parameters lose their moments: if a later phase trains them again they
            // start fresh, as newly unfrozen ones do.
            let prev = self.bound.trainable(ph - 1);
            let next = self.bound.trainable(ph);
            let leaving: HashSet<ParamId> = prev.difference(&next).copied().collect();
            w.optim = self.bound.drop_state(w.optim, self.cfg, &leaving);
            Self::phase_end(&mut self.log, &plan.phases[ph - 1].name, step)?;
            bar.println(format!(
                "step {step}: phase `{}` begins",
                plan.phases[ph].name
            ));
        }
        if plan.is_switch(step) || step == 0 {
            let totals = freezeframe_plan::phase_totals(plan);
            self.log.write(&Record::PhaseStart(PhaseStart {
                step,
                event: StartTag::PhaseStart,
                phase: plan.phases[ph].name.clone(),
                trainable_tensors: totals[ph].tensors,
                trainable_params: totals[ph].params,
                adam_state_bytes: totals[ph].optimizer_bytes,
            }))?;
        }
        diagnostics::reset_peak_rss();
        st.trainable = self.bound.trainable(ph);
        w.model = set_trainable(w.model, &st.trainable);
        st.trained = self.bound.trained_by(step);
        st.phase = Some(ph);
        Ok(w)
    }

    /// Per-group gradient norms, update/weight ratios and would-be gradients of frozen groups.
    fn log_diagnostics(
        &mut self,
        done: usize,
        ph: usize,
        out_sq_norms: &[(ParamId, f32)],
        ratios: Vec<Option<f64>>,
        would_be: Option<Vec<Option<f64>>>,
    ) -> Result<(), TrainError> {
        let norms = diagnostics::group_norms(&self.bound, out_sq_norms);
        let frozen: Vec<Option<f64>> = match would_be {
            // Only the groups that are frozen in this phase: for the others the probe merely
            // repeats the real gradient.
            Some(w) => w
                .into_iter()
                .zip(&norms)
                .map(|(w, real)| if real.is_some() { None } else { w })
                .collect(),
            // No probe this step: no frozen norms to log.
            None => Vec::new(),
        };
        let groups = diagnostics::by_group(&self.bound, &norms, &ratios, &frozen);
        self.log.write(&Record::Groups(GroupsRecord {
            step: done,
            phase: self.bound.plan.phases[ph].name.clone(),
            groups,
        }))
    }

    /// One optimisation step and everything logged, validated and saved after it.
    fn step(
        &mut self,
        step: usize,
        end: usize,
        st: &mut LoopState,
        w: Weights,
        bar: &crate::progress::Bar,
    ) -> Result<Weights, TrainError> {
        let Weights {
            model,
            mut ema,
            mut optim,
        } = self.enter_phase(step, st, w, bar)?;
        let (cfg, t) = (self.cfg, &self.cfg.train);
        let ph = self.bound.plan.phase_at(step);
        let batch = train_batch(
            &self.data,
            &self.encoder,
            BatchSpec::of(cfg),
            step,
            &self.device,
        )?;
        let done = step + 1;
        let diag = every(done, cfg.log.diag_every);
        let probe =
            every(done, cfg.log.frozen_grad_every) && st.trainable.len() < self.bound.ids.len();
        let would_be =
            probe.then(|| diagnostics::would_be_grad_norms(&model, batch.clone(), &self.bound));
        let before = diag.then(|| diagnostics::values_of(&model, &st.trainable));

        let lr = lr_at(step, t.steps, t.warmup, t.lr, t.schedule, t.min_lr_ratio);
        let rates = self.bound.learning_rates(step, lr);
        let out = train_step(model, &mut optim, batch, rates, t.grad_clip);
        let model = out.model;
        let loss = out.loss;
        if !loss.is_finite() {
            return Err(TrainError::Diverged { step, loss });
        }
        ema = ema::update(ema, &model, t.ema_decay, &st.trained);
        st.losses.push((done, loss));
        st.window.push((loss, out.grad_norm));
        // The message first: a plain log line is written by `set_position` and reads it.
        let phase_name = &self.bound.plan.phases[ph].name;
        bar.set_message(format!("loss {loss:.4} lr {lr:.1e} [{phase_name}]"));
        bar.set_position(done as u64);

        if diag || would_be.is_some() {
            let ratios = match before {
                Some(b) => {
                    let after = diagnostics::values_of(&model, &st.trainable);
                    diagnostics::update_ratios(&self.bound, &b, &after)
                }
                // No snapshot was taken this step: no ratios to log.
                None => Vec::new(),
            };
            self.log_diagnostics(done, ph, &out.sq_norms, ratios, would_be)?;
        }
        if every(done, cfg.log.every) || done == end {
            self.log_losses(done, lr, ph, st)?;
        }
        let w = Weights { model, ema, optim };
        self.after_step(done, end, ph, st, &w, bar)?;
        Ok(w)
    }

    /// The mean loss and gradient norm over the steps since the last record, and the speed.
    fn log_losses(
        &mut self,
        done: usize,
        lr: f64,
        ph: usize,
        st: &mut LoopState,
    ) -> Result<(), TrainError> {
        let n = st.window.len() as f32;
        let since = st.window_start.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let it_s = st.window.len() as f64 / since.max(1e-9);
        self.log.write(&Record::Loss(LossRecord {
            step: done,
            loss: st.window.iter().map(|w| w.0).sum::<f32>() / n,
            lr,
            grad_norm: st.window.iter().map(|w| w.1).sum::<f32>() / n,
            it_s,
            phase: self.bound.plan.phases[ph].name.clone(),
        }))?;
        st.window.clear();
        st.window_start = Some(Instant::now());
        Ok(())
    }

    /// Validation, the phase's end, checkpoints and periodic samples after step `done`.
    fn after_step(
        &mut self,
        done: usize,
        end: usize,
        ph: usize,
        st: &mut LoopState,
        w: &Weights,
        bar: &crate::progress::Bar,
    ) -> Result<(), TrainError> {
        let (log_cfg, is_last) = (&self.cfg.log, done == self.cfg.train.steps);
        if every(done, log_cfg.val_every) || is_last {
            let v = val_loss(
                &w.model.valid(),
                &self.data,
                &self.encoder,
                log_cfg.val_clips,
                &self.plain,
            )?;
            self.log.write(&Record::Val(ValRecord {
                step: done,
                val_loss: v.mean,
                val_loss_by_t: v.by_t,
            }))?;
            bar.println(format!("step {done}: val loss {:.4}", v.mean));
            st.final_val = Some(v.mean);
        }
        if is_last {
            Self::phase_end(&mut self.log, &self.bound.plan.phases[ph].name, done)?;
        }
        if every(done, log_cfg.checkpoint_every) || done == end {
            self.save(done, w)?;
            st.last_saved = Some(done);
        }
        if every(done, log_cfg.sample_every) && !is_last {
            self.samples_into(&w.ema, &format!("step-{done:06}"))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// Trains the run described by `cfg`; the run folder is `cfg.out_dir/cfg.name`.
pub fn train(cfg: &RunConfig, opts: &TrainOptions) -> Result<TrainSummary, TrainError> {
    let started = Instant::now();
    let (mut s, mut w) = open_or_resume(cfg, opts)?;
    let t = &cfg.train;
    let start = s.start;
    let end = opts
        .stop_after
        .map_or(t.steps, |n| (start + n).min(t.steps));
    let bar = crate::progress::bar(
        &cfg.name,
        start as u64,
        t.steps as u64,
        opts.progress,
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
    );
    if opts.progress && start == 0 {
        bar.println(freezeframe_plan::explain(&s.bound.plan, t.lr));
    }

    let mut st = LoopState {
        window_start: Some(Instant::now()),
        last_saved: (start > 0).then_some(start),
        ..LoopState::default()
    };
    for step in start..end {
        w = s.step(step, end, &mut st, w, &bar)?;
    }
    bar.finish();

    // ---- finish: the last checkpoint, the CSV, the final samples ----
    let completed = end.max(start);
    if st.last_saved != Some(completed) && completed > 0 {
        s.save(completed, &w)?;
    }
    crate::metrics::write_csv(&s.run.metrics_path(), &s.run.metrics_csv_path())?;
    let mut samples = Vec::new();
    if opts.final_samples && completed == t.steps {
        samples = s.samples_into(&w.ema, "final")?;
    }
    Ok(TrainSummary {
        run: s.run.clone(),
        steps: completed,
        losses: st.losses,
        final_val: st.final_val,
        seconds: started.elapsed().as_secs_f64(),
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapters_that_change_the_model_at_step_0_are_refused() {
        let mcfg = StdiTConfig::tiny();
        // adaLN-zero leaves every block silent at initialisation, and an adapter on a silent
        // block could not show: the zero tensors get small values first, as after training.
        let mut k = 0u32;
        let m = map_values(
            initialize(Stdit::new(&mcfg, &Device::flex()), 1),
            |_, shape, read| {
                read().iter().all(|&x| x == 0.0).then(|| {
                    (0..shape.iter().product::<usize>())
                        .map(|_| {
                            k += 1;
                            0.05 * ((k % 7) as f32 - 3.0)
                        })
                        .collect()
                })
            },
        );
        let layers: Vec<freezeframe_model::lora::LoraLayer> =
            ["blocks.0.attn.qkv", "blocks.1.mlp.fc2"]
                .map(|layer| freezeframe_model::lora::LoraLayer {
                    layer: layer.into(),
                    rank: 2,
                    alpha: 2.0,
                })
                .to_vec();
        let m = m.with_lora(&layers, 0).expect("adapters");
        check_adapters_start_silent(&m, &mcfg).expect("fresh adapters start silent");
        // `lora_b` not at zero: the adapted model is not the model it was made from.
        let bad = map_values(m, |path, shape, _| {
            path.ends_with("blocks.1.mlp.fc2.lora_b")
                .then(|| vec![0.5; shape.iter().product()])
        });
        let e = check_adapters_start_silent(&bad, &mcfg).expect_err("a non-zero B is refused");
        assert!(e.to_string().contains("must start at zero"), "{e}");
    }

    fn summary(losses: Vec<(usize, f32)>) -> TrainSummary {
        TrainSummary {
            run: Run::new(std::path::Path::new("r")),
            steps: losses.last().map_or(0, |l| l.0),
            losses,
            final_val: None,
            seconds: 1.0,
            samples: Vec::new(),
        }
    }

    #[test]
    fn the_loss_line_names_the_steps_behind_each_figure() {
        // A short (resumed) run: one mean, no arrow that would read as progress.
        let short = summary((41..=43).map(|s| (s, 0.5)).collect());
        assert_eq!(
            short.loss_line().unwrap(),
            "train loss 0.5000 (mean of steps 41–43)"
        );
        let long = summary(
            (1..=30)
                .map(|s| (s, if s <= 10 { 1.0 } else { 0.25 }))
                .collect(),
        );
        assert_eq!(
            long.loss_line().unwrap(),
            "train loss 1.0000 (steps 1–10) → 0.2500 (steps 21–30)"
        );
        assert_eq!(summary(Vec::new()).loss_line(), None);
    }
}
