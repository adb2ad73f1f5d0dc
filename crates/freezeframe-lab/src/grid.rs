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
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{AblationConfig, label};
use crate::error::{LabError, io};
use crate::explain;
use crate::image::ImageWeights;

/// One run of the grid.
#[derive(Debug, Clone)]
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

/// The marker of a finished run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    pub strategy: String,
    pub seed: u64,
    /// Seconds of this run's last attempt (training, evaluation and measurements).
    pub attempt_seconds: f64,
    pub drift: std::collections::BTreeMap<String, f64>,
    pub cka: Vec<f64>,
}

pub fn done_path(run: &Run) -> PathBuf {
    run.dir.join("ablate.json")
}

pub fn is_done(run: &Run) -> bool {
    done_path(run).is_file() && run.dir.join("eval.json").is_file()
}

/// The grid in order (strategy-major), every plan validated against the model before anything
/// trains. Budgets are those of the base config for every cell; only plan and seed differ.
pub fn cells(
    ab: &AblationConfig,
    base: &RunConfig,
    image: &ImageWeights,
    out: &Path,
) -> Result<Vec<Cell>, LabError> {
    let mcfg = base.model_config().map_err(|message| LabError::Config {
        path: ab.base.clone(),
        message,
    })?;
    let probe_model = build_model(&mcfg, 0, &burn::prelude::Device::flex());
    let mut out_cells = Vec::new();
    for strategy in &ab.strategies {
        let name = label(strategy);
        let wrap = |e: TrainError| LabError::Strategy {
            strategy: name.clone(),
            source: Box::new(e),
        };
        let plan = freezeframe_plan::load(strategy).map_err(|e| wrap(e.into()))?;
        let from_image = plan.spec.init == freezeframe_plan::Init::Image;
        for &seed in &ab.seeds {
            let mut cfg = base.clone();
            cfg.plan = strategy.clone();
            cfg.seed = seed;
            cfg.init.from = from_image.then(|| image.path.clone());
            cfg.out_dir = out.join("runs");
            if seed == ab.seeds[0] {
                plans::bind_loaded(&cfg, &plan, &probe_model, mcfg.depth).map_err(wrap)?;
            }
            cfg.name = format!("{name}-s{seed}-{:08x}", key(&cfg, &plan.text, image) >> 32);
            out_cells.push(Cell {
                strategy: name.clone(),
                seed,
                cfg,
            });
        }
    }
    Ok(out_cells)
}

/// The hash of what shapes a run: its config (less name and folders), the plan's text and the
/// image weights' content.
fn key(cfg: &RunConfig, plan_text: &str, image: &ImageWeights) -> u64 {
    let mut c = cfg.clone();
    c.name = String::new();
    c.out_dir = PathBuf::new();
    c.plan = String::new();
    c.init.from = c.init.from.as_ref().map(|_| PathBuf::from("image"));
    let h = fnv1a(0, c.to_toml().as_bytes());
    let h = fnv1a(h, plan_text.as_bytes());
    fnv1a(h, &image.hash.to_le_bytes())
}

/// How [`run_cell`] runs.
#[derive(Debug, Clone, Default)]
pub struct CellOptions {
    pub progress: bool,
    /// Stop training after this many steps of this call and return without evaluating (tests
    /// interrupt runs this way).
    pub stop_after: Option<usize>,
}

/// What [`run_cell`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellOutcome {
    AlreadyDone,
    Finished,
    Interrupted,
}

/// Trains (or resumes), evaluates and measures one cell, then marks it done.
pub fn run_cell(
    cell: &Cell,
    ab: &AblationConfig,
    image: &ImageWeights,
    opts: &CellOptions,
) -> Result<CellOutcome, LabError> {
    let run = cell.run();
    if is_done(&run) {
        return Ok(CellOutcome::AlreadyDone);
    }
    let wrap = |e: TrainError| LabError::Run {
        run: run.dir.clone(),
        source: Box::new(e),
    };
    let started = Instant::now();
    let steps = cell.cfg.train.steps;
    // A finished training is resumed too: the trainer then only writes missing final samples.
    let summary = train(
        &cell.cfg,
        &TrainOptions {
            resume: run.config_path().is_file(),
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
            n: ab.eval.n,
            steps: ab.eval.steps,
            cfg: ab.eval.cfg,
            seed: ab.eval.seed,
            progress: opts.progress,
        },
    )
    .map_err(wrap)?;
    let drift = explain::drift(&run)?;
    let cka = explain::cka(&run, &image.path)?;
    let done = Done {
        strategy: cell.strategy.clone(),
        seed: cell.seed,
        attempt_seconds: started.elapsed().as_secs_f64(),
        drift,
        cka,
    };
    write_json_atomic(&done_path(&run), &json!(done))?;
    Ok(CellOutcome::Finished)
}

/// Writes `value` to `path` through a temporary file and a rename, so a reader never sees a
/// half-written file.
pub fn write_json_atomic(path: &Path, value: &serde_json::Value) -> Result<(), LabError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| LabError::Results {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LabError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("rename to {}", path.display())))
}
