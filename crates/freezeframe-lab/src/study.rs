//! `freezeframe ablate`: image weights → inflation check → strategies × seeds → evaluation →
//! results and report. Every step is read back from folders, so a re-run resumes where the
//! last one stopped and a finished study only rewrites its report.
use std::path::{Path, PathBuf};

use freezeframe_train::RunConfig;

use crate::config::AblationConfig;
use crate::done::is_done;
use crate::error::LabError;
use crate::explain::{Identity, InflationCheck, inflation_check};
use crate::grid::{Cell, CellOptions, CellOutcome, cells, run_cell, validate_plans};
use crate::image::{ImageWeights, image_weights};
use crate::results::{Meta, Results, results};

#[derive(Debug, Clone, Default)]
pub struct StudyOptions {
    pub progress: bool,
    /// `(i, n)`: run only the cells whose index is i mod n, and write no report (a `--jobs`
    /// worker process).
    pub shard: Option<(usize, usize)>,
    /// Train at most this many cells in this call (tests interrupt grids this way).
    pub max_cells: Option<usize>,
    /// Stop each run after this many steps of this call (tests interrupt runs this way).
    pub stop_after: Option<usize>,
    /// Train nothing: write the report from the runs finished so far, naming the missing ones
    /// (`ablate --report-only`).
    pub report_only: bool,
    pub meta: Meta,
}

pub enum StudyOutcome {
    Complete {
        report: PathBuf,
        results: Box<Results>,
        image: ImageWeights,
    },
    Partial {
        done: usize,
        total: usize,
        image: ImageWeights,
    },
}

/// The image weights, the shared base config and the validated grid.
pub struct Prepared {
    pub image: ImageWeights,
    pub base: RunConfig,
    pub cells: Vec<Cell>,
    /// Finished runs under `out/runs/` that are no cell of this grid (see [`strays`]).
    pub strays: Vec<String>,
}

/// `base` is the shared run config with the budget applied ([`AblationConfig::base_config`]).
/// Order matters: the plans and the image source are validated before anything is written, and
/// the study folder is claimed (or refused) before image weights are made.
pub fn prepare(
    ab: &AblationConfig,
    base: RunConfig,
    out: &Path,
    progress: bool,
) -> Result<Prepared, LabError> {
    let strategies = validate_plans(ab, &base)?;
    crate::image::check_source(ab)?;
    crate::marker::claim(ab, out)?;
    let image = image_weights(ab, out, progress)?;
    let cells = cells(ab, &base, &strategies, &image, out);
    let strays = strays(&cells, out);
    if !strays.is_empty() {
        tracing::warn!(
            runs = %strays.join(", "),
            "finished runs under {} belong to no cell of this grid (another config, plan or \
             build named them): they are not read",
            out.join("runs").display()
        );
    }
    Ok(Prepared {
        image,
        base,
        cells,
        strays,
    })
}

/// Finished runs (holding `ablate.json`) under `out/runs/` whose folder is no cell's: a run is
/// named by the hash of what shapes it, so an edited config or plan — or a build that hashes
/// them differently — names every cell anew, and runs kept from before would be silently
/// left out (and trained again) without this.
fn strays(cells: &[Cell], out: &Path) -> Vec<String> {
    crate::marker::finished_runs(out)
        .into_iter()
        .filter(|name| !cells.iter().any(|c| &c.cfg.name == name))
        .collect()
}

/// How many of `cells` are finished (see [`is_done`]).
fn finished<'a>(
    cells: impl Iterator<Item = &'a Cell>,
    ab: &AblationConfig,
) -> Result<usize, LabError> {
    let mut n = 0;
    for c in cells {
        n += usize::from(is_done(&c.run(), &ab.eval)?);
    }
    Ok(n)
}

/// The report's note on finished runs that are no cell of this grid (see [`strays`]).
fn with_strays(meta: &Meta, strays: &[String]) -> Meta {
    let mut meta = meta.clone();
    if !strays.is_empty() {
        meta.left_out.push(format!(
            "Finished runs under runs/ that are no cell of this grid (another config, plan or build named them), not read: {}.",
            strays.join(", ")
        ));
    }
    meta
}

/// Logs the inflation check, and warns (once, not in every `--jobs` worker) when the inflated
/// model is not its image model.
fn log_inflation(inflation: &InflationCheck, warn: bool) {
    tracing::info!(
        max_abs_diff = inflation.max_abs_diff,
        weights_only = inflation.max_abs_diff_weights,
        "inflated model against the image model, frame by frame"
    );
    let why = match inflation.identity() {
        Identity::Holds => None,
        Identity::StreamOffset => Some(
            "the ungated stream position: plans start from an offset that plans freezing the spatial layers cannot adapt to (`temporal_pos = \"gated\"` keeps the identity)",
        ),
        Identity::SlotsUnseen => Some(
            "since the image weights were not trained at every frame's slot (`frame_slots`): the ungated stream's offset, which plans freezing the spatial layers cannot adapt to",
        ),
        Identity::Broken => Some(
            "although this wiring should keep the identity: the image weights do not fit this model",
        ),
    };
    if let Some(why) = why.filter(|_| warn) {
        tracing::warn!(
            max_abs_diff = inflation.max_abs_diff,
            temporal_pos = %inflation.temporal_pos,
            "the inflated model is not its image model, {why}"
        );
    }
}

/// Trains this process's cells in order (all of them, or a `--jobs` worker's share), skipping
/// finished ones, until the grid is done, `max_cells` have trained or a run is interrupted.
fn train_grid(
    ab: &AblationConfig,
    cells: &[Cell],
    image: &ImageWeights,
    opts: &StudyOptions,
) -> Result<(), LabError> {
    let mine: Vec<&Cell> = cells
        .iter()
        .enumerate()
        .filter(|(i, _)| opts.shard.is_none_or(|(k, n)| i % n == k))
        .map(|(_, c)| c)
        .collect();
    let copts = CellOptions {
        progress: opts.progress,
        stop_after: opts.stop_after,
        commit: Some(opts.meta.commit.clone()),
        machine: Some(opts.meta.machine.clone()),
    };
    // Each cell's eval.json is read once here (and again under its lock by `run_cell`). The
    // finished cells are counted before any trains, so the grid's rate and eta count only the
    // runs trained now.
    let mut todo = Vec::new();
    for cell in &mine {
        if !is_done(&cell.run(), &ab.eval)? {
            todo.push(*cell);
        }
    }
    let mut finished_mine = (mine.len() - todo.len()) as u64;
    let grid = freezeframe_train::progress::bar(
        "grid",
        finished_mine,
        mine.len() as u64,
        opts.progress,
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} runs (eta {eta}) {msg}",
    );
    let mut trained = 0;
    for cell in todo {
        if opts.max_cells.is_some_and(|m| trained >= m) {
            break;
        }
        grid.set_message(format!("{} seed {}", cell.strategy, cell.seed));
        match run_cell(cell, ab, image, &copts)? {
            CellOutcome::Interrupted => break,
            CellOutcome::Finished => trained += 1,
            // Finished by another process since the count above: not trained here.
            CellOutcome::AlreadyDone => {}
        }
        finished_mine += 1;
        grid.set_position(finished_mine);
    }
    grid.finish();
    Ok(())
}

/// Runs (or resumes) the study into `out`.
pub fn run_study(
    ab: &AblationConfig,
    base: RunConfig,
    out: &Path,
    opts: &StudyOptions,
) -> Result<StudyOutcome, LabError> {
    let Prepared {
        image,
        base,
        cells,
        strays,
    } = prepare(ab, base, out, opts.progress)?;
    let opts = &StudyOptions {
        meta: with_strays(&opts.meta, &strays),
        ..opts.clone()
    };
    let inflation = inflation_check(&base, &image.path)?;
    log_inflation(&inflation, opts.shard.is_none());
    if opts.report_only {
        return report_finished(
            ab,
            &base,
            &cells,
            out,
            (inflation, image),
            &opts.meta,
            "the same command without `--report-only` trains them and rewrites this report from every run",
        );
    }
    train_grid(ab, &cells, &image, opts)?;
    let done = finished(cells.iter(), ab)?;
    if done < cells.len() || opts.shard.is_some() {
        return Ok(StudyOutcome::Partial {
            done,
            total: cells.len(),
            image,
        });
    }
    let image_weights = crate::image::describe(ab, &image);
    let results = results(
        ab,
        &base,
        &cells,
        out,
        (inflation, image_weights),
        &opts.meta,
    )?;
    let report = crate::report::write(&results, out)?;
    Ok(StudyOutcome::Complete {
        report,
        results: Box::new(results),
        image,
    })
}

/// The report's line on the runs not finished: each named (with the step of its newest
/// checkpoint, where it has one), and the compute they still need at the finished runs' mean.
fn unfinished_note(missing: &[Cell], total: usize, done: &Results, to_finish: &str) -> String {
    let mut left = 0.0;
    let names: Vec<String> = missing
        .iter()
        .map(|c| {
            let steps = c.cfg.train.steps;
            let at = c.run().latest_checkpoint().map_or(0, |(n, _)| n);
            left += 1.0 - at.min(steps) as f64 / steps.max(1) as f64;
            let (s, seed) = (&c.strategy, c.seed);
            match at {
                0 => format!("{s} seed {seed}"),
                n if n >= steps => format!("{s} seed {seed} (trained; its evaluation is left)"),
                n => format!("{s} seed {seed} (checkpoint at step {n} of {steps})"),
            }
        })
        .collect();
    let mean = done.wall_seconds / done.runs.len().max(1) as f64;
    format!(
        "{} of the study's {total} runs had not finished when this report was written: {}. Claims that need them are not tested here; {to_finish}. At the finished runs' mean of {:.0} min a run (their last attempts, on the machines above, pauses included), what is left needs about {:.1} h of compute (training; evaluations not counted).",
        missing.len(),
        names.join(", "),
        mean / 60.0,
        left * mean / 3600.0,
    )
}

/// The report of the cells finished so far; the others are named in it as not finished, and
/// the claims that need them are not tested.
pub(crate) fn report_finished(
    ab: &AblationConfig,
    base: &RunConfig,
    cells: &[Cell],
    out: &Path,
    (inflation, image): (InflationCheck, ImageWeights),
    meta: &Meta,
    to_finish: &str,
) -> Result<StudyOutcome, LabError> {
    let (mut finished, mut missing) = (Vec::new(), Vec::new());
    for c in cells {
        if is_done(&c.run(), &ab.eval)? {
            finished.push(c.clone());
        } else {
            missing.push(c.clone());
        }
    }
    if finished.is_empty() {
        return Err(LabError::Results {
            path: out.to_path_buf(),
            message: format!("none of the study's {} runs has finished yet", cells.len()),
        });
    }
    let image_weights = crate::image::describe(ab, &image);
    let mut results = results(ab, base, &finished, out, (inflation, image_weights), meta)?;
    if !missing.is_empty() {
        let note = unfinished_note(&missing, cells.len(), &results, to_finish);
        tracing::info!("{note}");
        results.meta.left_out.push(note);
    }
    for v in &mut results.verdicts {
        let needs = v.claim.compared_with(&results.strategies);
        let unfinished: Vec<String> = missing
            .iter()
            .filter(|c| c.strategy == v.claim.strategy || needs.contains(&c.strategy))
            .map(|c| format!("{} seed {}", c.strategy, c.seed))
            .collect();
        if !unfinished.is_empty() {
            v.outcome = crate::verdict::Outcome::Untested;
            v.stability = None;
            v.note = Some(format!("runs not finished: {}", unfinished.join(", ")));
        }
    }
    let report = crate::report::write(&results, out)?;
    Ok(StudyOutcome::Complete {
        report,
        results: Box::new(results),
        image,
    })
}
