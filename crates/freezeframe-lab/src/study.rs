//! `freezeframe ablate`: image weights → inflation check → strategies × seeds → evaluation →
//! results and report. Every step is read back from folders, so a re-run resumes where the
//! last one stopped and a finished study only rewrites its report.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use freezeframe_train::RunConfig;
use serde::Serialize;

use crate::config::{AblationConfig, label};
use crate::done::is_done;
use crate::error::LabError;
use crate::explain::{Identity, InflationCheck, inflation_check};
use crate::files::write_json_atomic;
use crate::grid::{Cell, CellOptions, CellOutcome, cells, run_cell, validate_plans};
use crate::image::{ImageWeights, image_weights};
use crate::metrics::{RunResult, collect};
use crate::stats::{Summary, summarise};
use crate::verdict::{Verdict, decide, leave_one_seed_out};

/// What the report says about how it was made.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Meta {
    pub command: String,
    pub commit: String,
    pub machine: String,
    /// A smoke-test study: the report says on top that its numbers mean nothing.
    pub quick: bool,
    /// Strategies or seeds of the full study this one leaves out, and why.
    pub left_out: Vec<String>,
    /// Worker processes (`--jobs`): above 1, runs shared the cores and their step times are
    /// not comparable.
    pub jobs: usize,
}

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

/// Everything the report shows, also written as `results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub name: String,
    pub meta: Meta,
    pub strategies: Vec<String>,
    pub seeds: Vec<u64>,
    pub steps: usize,
    pub batch_size: usize,
    pub alpha: f64,
    /// Compute time: the sum of the runs' last attempts (training, evaluation, measurements),
    /// seconds. Interrupted attempts and image pre-training are not in it.
    pub wall_seconds: f64,
    pub inflation: InflationCheck,
    pub runs: Vec<RunResult>,
    /// Strategy → metric → mean and 95 % interval across seeds.
    pub summary: BTreeMap<String, BTreeMap<String, Summary>>,
    pub verdicts: Vec<Verdict>,
    /// The base run's sample prompts (the GIF columns).
    pub prompts: Vec<String>,
    /// The world and model every run shares, in words.
    pub setting: String,
    /// The image weights every run started from, in words (file, origin, content hash).
    pub image_weights: String,
    /// Commits of the binaries that finished the runs ("not recorded" for older markers).
    pub trained_by: Vec<String>,
    /// When the claims were recorded, and whether they changed since (see [`crate::marker`]).
    pub preregistration: crate::marker::Preregistration,
}

/// The image weights, the shared base config and the validated grid.
pub struct Prepared {
    pub image: ImageWeights,
    pub base: RunConfig,
    pub cells: Vec<Cell>,
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
    Ok(Prepared { image, base, cells })
}

/// Runs (or resumes) the study into `out`.
pub fn run_study(
    ab: &AblationConfig,
    base: RunConfig,
    out: &Path,
    opts: &StudyOptions,
) -> Result<StudyOutcome, LabError> {
    let Prepared { image, base, cells } = prepare(ab, base, out, opts.progress)?;
    let inflation = inflation_check(&base, &image.path)?;
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
    if let Some(why) = why.filter(|_| opts.shard.is_none()) {
        tracing::warn!(
            max_abs_diff = inflation.max_abs_diff,
            temporal_pos = %inflation.temporal_pos,
            "the inflated model is not its image model, {why}"
        );
    }
    let finished = |c: &Cell| is_done(&c.run(), &ab.eval);
    if opts.report_only {
        return report_finished(ab, &base, &cells, out, (inflation, image), &opts.meta);
    }
    let mine: Vec<&Cell> = cells
        .iter()
        .enumerate()
        .filter(|(i, _)| opts.shard.is_none_or(|(k, n)| i % n == k))
        .map(|(_, c)| c)
        .collect();
    let grid = freezeframe_train::progress::bar(
        mine.len() as u64,
        opts.progress,
        "grid [{elapsed_precise}] {wide_bar} {pos}/{len} runs (eta {eta}) {msg}",
    );
    let copts = CellOptions {
        progress: opts.progress,
        stop_after: opts.stop_after,
        commit: Some(opts.meta.commit.clone()),
    };
    let mut trained = 0;
    for cell in &mine {
        grid.set_position(mine.iter().filter(|c| finished(c)).count() as u64);
        if finished(cell) {
            continue;
        }
        if opts.max_cells.is_some_and(|m| trained >= m) {
            break;
        }
        grid.set_message(format!("{} seed {}", cell.strategy, cell.seed));
        trained += 1;
        if run_cell(cell, ab, &image, &copts)? == CellOutcome::Interrupted {
            break;
        }
    }
    let done = cells.iter().filter(|c| finished(c)).count();
    grid.set_position(mine.iter().filter(|c| finished(c)).count() as u64);
    freezeframe_train::progress::finish(&grid);
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

/// The report of the cells finished so far; the others are named in it as not finished, and
/// the claims that need them are not tested.
fn report_finished(
    ab: &AblationConfig,
    base: &RunConfig,
    cells: &[Cell],
    out: &Path,
    (inflation, image): (InflationCheck, ImageWeights),
    meta: &Meta,
) -> Result<StudyOutcome, LabError> {
    let (finished, missing): (Vec<Cell>, Vec<Cell>) = cells
        .iter()
        .cloned()
        .partition(|c| is_done(&c.run(), &ab.eval));
    if finished.is_empty() {
        return Err(LabError::Results {
            path: out.to_path_buf(),
            message: format!(
                "--report-only: none of the study's {} runs has finished yet",
                cells.len()
            ),
        });
    }
    let mut meta = meta.clone();
    if !missing.is_empty() {
        let names: Vec<String> = missing
            .iter()
            .map(|c| format!("{} seed {}", c.strategy, c.seed))
            .collect();
        meta.left_out.push(format!(
            "{} of the study's {} runs had not finished when this report was written (`--report-only`): {}. Claims that need them are not tested here; the same command without `--report-only` trains them and rewrites this report from every run.",
            missing.len(),
            cells.len(),
            names.join(", ")
        ));
    }
    let image_weights = crate::image::describe(ab, &image);
    let mut results = results(ab, base, &finished, out, (inflation, image_weights), &meta)?;
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

/// Reads every finished run and applies the claims' rules.
pub fn results(
    ab: &AblationConfig,
    base: &RunConfig,
    cells: &[Cell],
    out: &Path,
    (inflation, image_weights): (InflationCheck, String),
    meta: &Meta,
) -> Result<Results, LabError> {
    let mut runs = Vec::new();
    let mut wall = 0.0;
    let mut trained_by = std::collections::BTreeSet::new();
    for c in cells {
        let (run, done) = collect(out, &c.rel(), &c.strategy, c.seed)?;
        runs.push(run);
        wall += done.attempt_seconds;
        trained_by.insert(done.commit.unwrap_or_else(|| "not recorded".into()));
    }
    let strategies: Vec<String> = ab.strategies.iter().map(|s| label(s)).collect();
    // A strategy's per-seed values of a metric, with one seed left out or none.
    let without = |strategy: &str, metric: &str, left_out: Option<u64>| -> Option<Vec<f64>> {
        let v: Vec<f64> = runs
            .iter()
            .filter(|r| r.strategy == strategy && Some(r.seed) != left_out)
            .map(|r| r.values.get(metric).copied().unwrap_or(f64::NAN))
            .collect();
        (!v.is_empty()).then_some(v)
    };
    let values = |strategy: &str, metric: &str| without(strategy, metric, None);
    let mut summary = BTreeMap::new();
    for s in &strategies {
        let keys: std::collections::BTreeSet<&String> = runs
            .iter()
            .filter(|r| &r.strategy == s)
            .flat_map(|r| r.values.keys())
            .collect();
        let row: BTreeMap<String, Summary> = keys
            .into_iter()
            .filter_map(|k| values(s, k).map(|v| (k.clone(), summarise(&v))))
            .collect();
        summary.insert(s.clone(), row);
    }
    let seeds_run: Vec<u64> = ab
        .seeds
        .iter()
        .copied()
        .filter(|s| runs.iter().any(|r| r.seed == *s))
        .collect();
    let verdicts = ab
        .claims
        .iter()
        .map(|c| {
            let mut v = decide(c, &strategies, ab.alpha, |s| values(s, &c.metric));
            v.stability = leave_one_seed_out(&v, &strategies, &seeds_run, ab.alpha, |s, l| {
                without(s, &c.metric, Some(l))
            });
            v
        })
        .collect();
    Ok(Results {
        name: ab.name.clone(),
        meta: meta.clone(),
        strategies,
        seeds: ab.seeds.clone(),
        steps: base.train.steps,
        batch_size: base.train.batch_size,
        alpha: ab.alpha,
        wall_seconds: wall,
        inflation,
        runs,
        summary,
        verdicts,
        prompts: base.sample.prompts.clone(),
        setting: setting(base),
        image_weights,
        trained_by: trained_by.into_iter().collect(),
        preregistration: crate::marker::preregistration(ab, out)?,
    })
}

/// Writes `results` as JSON.
pub fn write_results(results: &Results, path: &Path) -> Result<(), LabError> {
    write_json_atomic(path, results)
}

fn setting(base: &RunConfig) -> String {
    let d = &base.data;
    let world = match (&d.csv, &d.cache) {
        (Some(csv), _) => format!("videos of {}", csv.display()),
        (None, Some(cache)) => format!("clip cache {}", cache.display()),
        (None, None) => format!(
            "synthetic world: colours {:?}, shapes {:?}, motions {:?}",
            d.colours, d.shapes, d.motions
        )
        .to_lowercase(),
    };
    let m = &base.model;
    format!(
        "{} frames of {}×{}; {world}. Model `{}` (hidden {}, depth {}, patch {}), temporal position `{}`.",
        d.frames,
        d.size,
        d.size,
        m.preset,
        m.hidden.map_or("preset".into(), |v| v.to_string()),
        m.depth.map_or("preset".into(), |v| v.to_string()),
        m.patch.map_or("preset".into(), |v| v.to_string()),
        m.temporal_pos
            .map_or("attention".into(), |p| format!("{p:?}").to_lowercase()),
    )
}
