//! Strategies × seeds as normal run folders under `OUT/runs/`, each keyed by the hash of its
//! resolved config. A finished run carries `ablate.json` (written last, atomically); anything
//! else is resumed from its newest checkpoint. Ctrl-C or kill -9 leaves at worst a run to
//! resume: checkpoints and markers are written by rename.
use std::path::{Path, PathBuf};
use std::time::Instant;

use freezeframe_model::text::fnv1a;
use freezeframe_train::evaluate::{EvalOptions, evaluate_run};
use freezeframe_train::trainer::build_model;
use freezeframe_train::{Run, RunConfig, TrainError, TrainOptions, plans, train};

use crate::config::{AblationConfig, label};
use crate::done::{self, Done};
use crate::error::{LabError, io};
use crate::explain;
use crate::image::ImageWeights;

/// One run of the grid.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cell {
    /// Row name (preset name or plan file stem).
    pub strategy: String,
    pub seed: u64,
    pub cfg: RunConfig,
}

impl Cell {
    pub fn run(&self) -> Run {
        Run::for_config(&self.cfg)
    }
    /// The run folder relative to the ablation's output folder.
    pub fn rel(&self) -> String {
        format!("runs/{}", self.cfg.name)
    }
}

/// A strategy's validated plan.
pub struct Strategy {
    pub label: String,
    pub plan: String,
    pub loaded: freezeframe_plan::LoadedPlan,
}

/// Loads every strategy's plan and validates it against the base model — before image weights
/// are made or anything is written.
pub fn validate_plans(ab: &AblationConfig, base: &RunConfig) -> Result<Vec<Strategy>, LabError> {
    if base.data.kind == freezeframe_data::DataKind::Latents {
        // Every study metric but the validation loss reads pixels (and the CKA reads pixel
        // clips): refused here rather than after the first run has trained.
        return Err(LabError::Config {
            path: PathBuf::from(&ab.name),
            message: "the base run trains on latents ([data] kind = \"latents\"); the lab's \
                      metrics read pixels, so studies run on pixel data only for now"
                .into(),
        });
    }
    let mcfg = base.model()?;
    let probe_model = build_model(&mcfg, 0, &burn::prelude::Device::flex());
    let mut out = Vec::new();
    for strategy in &ab.strategies {
        let name = label(strategy);
        let wrap = |e: TrainError| LabError::Strategy {
            strategy: name.clone(),
            source: Box::new(e),
        };
        let loaded = freezeframe_plan::load(strategy).map_err(|e| wrap(e.into()))?;
        let mut cfg = base.clone();
        // Only whether image weights are named matters to the check, not where they are yet.
        cfg.init.from = (loaded.spec.init == freezeframe_plan::Init::Image)
            .then(|| PathBuf::from("image weights"));
        let model = plans::with_plan_adapters(probe_model.clone(), &loaded.name, &loaded.spec, 0)
            .map_err(wrap)?;
        plans::bind_loaded(&cfg, &loaded, &model, mcfg.depth).map_err(wrap)?;
        out.push(Strategy {
            label: name,
            plan: strategy.clone(),
            loaded,
        });
    }
    Ok(out)
}

/// The grid in order (strategy-major). Budgets are those of the base config for every cell;
/// only plan and seed differ.
pub fn cells(
    ab: &AblationConfig,
    base: &RunConfig,
    strategies: &[Strategy],
    image: &ImageWeights,
    out: &Path,
) -> Vec<Cell> {
    let mut cells = Vec::new();
    for s in strategies {
        let from_image = s.loaded.spec.init == freezeframe_plan::Init::Image;
        for &seed in &ab.seeds {
            let mut cfg = base.clone();
            cfg.plan = s.plan.clone();
            cfg.seed = seed;
            cfg.init.from = from_image.then(|| image.path.clone());
            cfg.out_dir = out.join("runs");
            let k = key(&cfg, &s.loaded.text, image) >> 32;
            cfg.name = format!("{}-s{seed}-{k:08x}", s.label);
            cells.push(Cell {
                strategy: s.label.clone(),
                seed,
                cfg,
            });
        }
    }
    cells
}

/// The hash of what shapes a run: its config (less name and folders), the plan's text and the
/// image weights' content. Logging and sample settings are in it too: they change what the
/// run folder holds (curves, GIFs), which the report reads.
fn key(cfg: &RunConfig, plan_text: &str, image: &ImageWeights) -> u64 {
    let mut c = cfg.clone();
    c.name = String::new();
    c.out_dir = PathBuf::new();
    c.plan = String::new();
    c.init.from = c.init.from.as_ref().map(|_| PathBuf::from("image"));
    let footage = footage_identity(&c.data);
    c.data.csv = c.data.csv.as_ref().map(|_| PathBuf::from("csv"));
    c.data.cache = c.data.cache.as_ref().map(|_| PathBuf::from("cache"));
    let h = fnv1a(0, c.to_toml().as_bytes());
    // Synthetic worlds add nothing, so their keys are those of earlier builds.
    let h = if footage.is_empty() {
        h
    } else {
        fnv1a(h, &footage)
    };
    let h = fnv1a(h, plan_text.as_bytes());
    fnv1a(h, &image.hash.to_le_bytes())
}

/// Real footage by content, not by where the checkout lies: a CSV's bytes, or a clip cache's
/// settings, captions and shard content hashes; the path only when neither can be read.
fn footage_identity(d: &freezeframe_data::WorldConfig) -> Vec<u8> {
    use freezeframe_data::real::cache::CacheIndex;
    let mut out = Vec::new();
    if let Some(csv) = &d.csv {
        // An unreadable list keys by its path here; loading the footage then says why it
        // cannot be read, naming the file.
        out.extend(
            freezeframe_fs::read_bytes(csv)
                .unwrap_or_else(|_| csv.display().to_string().into_bytes()),
        );
    }
    if let Some(cache) = &d.cache {
        let text = match CacheIndex::load(cache) {
            Ok(idx) => {
                let mut t = format!("{:?}", idx.settings);
                for e in &idx.entries {
                    t += &format!("|{}|{:?}|{}", e.shard, e.shard_hash, e.text);
                }
                t
            }
            Err(_) => cache.display().to_string(),
        };
        out.extend(text.into_bytes());
    }
    out
}

/// How [`run_cell`] runs.
#[derive(Debug, Clone, Default)]
pub struct CellOptions {
    pub progress: bool,
    /// Stop training after this many steps of this call and return without evaluating (tests
    /// interrupt runs this way).
    pub stop_after: Option<usize>,
    /// Recorded in the run's done marker.
    pub commit: Option<String>,
    /// Recorded in the run's done marker.
    pub machine: Option<String>,
}

/// What [`run_cell`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellOutcome {
    AlreadyDone,
    Finished,
    Interrupted,
}

/// A run marked finished whose evaluation is missing or used other `[eval]` settings is
/// evaluated again from its checkpoints. Without them (a run kept without checkpoints, as
/// `tools/study/keep-finished.sh` keeps them) the trainer would start it again from step 0 and
/// rewrite its training log: refused, naming the run, instead.
fn refuse_kept_unfinished(run: &Run) -> Result<(), LabError> {
    if done::path(run).is_file() && run.latest_checkpoint().is_none() {
        let why = if run.eval_path().is_file() {
            "its evaluation (eval.json) used other [eval] settings than the study's"
        } else {
            "it has no evaluation (eval.json)"
        };
        return Err(LabError::Config {
            path: run.dir.clone(),
            message: format!(
                "is marked finished (ablate.json) but {why}, and it holds no checkpoint to evaluate \
                 again (a run kept without checkpoints): restore the study's [eval] as the run was \
                 evaluated, or its checkpoints; or move the folder away to train the run again"
            ),
        });
    }
    Ok(())
}

/// Trains (or resumes), evaluates and measures one cell, then marks it done. The cell's lock
/// (`ablate.lock`, apart from the trainer's own `.lock`) is held throughout, so a second
/// `ablate` on the same study cannot evaluate or mark a run while this one works on it.
pub fn run_cell(
    cell: &Cell,
    ab: &AblationConfig,
    image: &ImageWeights,
    opts: &CellOptions,
) -> Result<CellOutcome, LabError> {
    let run = cell.run();
    if done::is_done(&run, &ab.eval)? {
        return Ok(CellOutcome::AlreadyDone);
    }
    std::fs::create_dir_all(&run.dir).map_err(io(format!("create {}", run.dir.display())))?;
    let _lock = freezeframe_train::run::lock_file(&run.dir.join("ablate.lock"), &run.dir)?;
    // Again under the lock: another process may have finished the run since the first look.
    if done::is_done(&run, &ab.eval)? {
        return Ok(CellOutcome::AlreadyDone);
    }
    refuse_kept_unfinished(&run)?;
    let wrap = |e: TrainError| LabError::Run {
        run: run.dir.clone(),
        source: Box::new(e),
    };
    let started = Instant::now();
    let cpu_at_start = done::process_cpu_seconds();
    let steps = cell.cfg.train.steps;
    // Always a resume: the trainer starts at step 0 when there is no checkpoint, and a finished
    // training only writes its final samples again.
    let summary = train(
        &cell.cfg,
        &TrainOptions {
            resume: true,
            progress: opts.progress,
            stop_after: opts.stop_after,
            final_samples: true,
        },
    )
    .map_err(wrap)?;
    if summary.steps < steps {
        return Ok(CellOutcome::Interrupted);
    }
    evaluate_run(
        &run,
        &EvalOptions {
            settings: ab.eval,
            progress: opts.progress,
            backend: None,
        },
    )
    .map_err(wrap)?;
    // The measurements are part of the attempt: both times are read after them.
    let (drift, cka) = (explain::drift(&run)?, explain::cka(&run, &image.path)?);
    let marker = Done {
        strategy: cell.strategy.clone(),
        seed: cell.seed,
        attempt_seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: done::process_cpu_seconds()
            .zip(cpu_at_start)
            .map(|(now, then)| now - then),
        drift,
        cka,
        commit: opts.commit.clone(),
        machine: opts.machine.clone(),
    };
    done::write(&run, &marker)?;
    Ok(CellOutcome::Finished)
}
