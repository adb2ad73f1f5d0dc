//! The study's results: every finished run read back from its folder, summarised across
//! seeds, with each claim's verdict — what the report shows, also written as `results.json`.
use std::collections::BTreeMap;
use std::path::Path;

use freezeframe_train::RunConfig;
use serde::Serialize;

use crate::config::{AblationConfig, label};
use crate::error::LabError;
use crate::explain::InflationCheck;
use crate::grid::Cell;
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

/// What a run's marker says when it predates a field (commit, machine).
pub const NOT_RECORDED: &str = "not recorded";

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
    /// CPU time of the runs whose markers recorded it (see [`crate::done::Done::cpu_seconds`]),
    /// seconds, and how many runs that is.
    pub cpu_seconds: f64,
    pub cpu_runs: usize,
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
    /// Commits of the binaries that finished the runs, each with its number of runs (older
    /// markers recorded none: [`NOT_RECORDED`]).
    pub trained_by: BTreeMap<String, usize>,
    /// Machines that finished the runs, each with its number of runs ([`NOT_RECORDED`] for
    /// markers written before the machine was recorded).
    pub trained_on: BTreeMap<String, usize>,
    /// When the claims were recorded, and whether they changed since (see [`crate::marker`]).
    pub preregistration: crate::marker::Preregistration,
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
    let (mut cpu, mut cpu_runs) = (0.0, 0);
    let mut trained_by = BTreeMap::new();
    let mut trained_on = BTreeMap::new();
    for c in cells {
        let (run, done) = collect(out, &c.rel(), &c.strategy, c.seed)?;
        runs.push(run);
        wall += done.attempt_seconds;
        if let Some(c) = done.cpu_seconds {
            cpu += c;
            cpu_runs += 1;
        }
        *trained_by
            .entry(done.commit.unwrap_or_else(|| NOT_RECORDED.into()))
            .or_insert(0) += 1;
        *trained_on
            .entry(done.machine.unwrap_or_else(|| NOT_RECORDED.into()))
            .or_insert(0) += 1;
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
        cpu_seconds: cpu,
        cpu_runs,
        inflation,
        runs,
        summary,
        verdicts,
        prompts: base.sample.prompts.clone(),
        setting: setting(base),
        image_weights,
        trained_by,
        trained_on,
        preregistration: crate::marker::preregistration(ab, out)?,
    })
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
