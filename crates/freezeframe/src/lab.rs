//! `freezeframe ablate` and `freezeframe demo`: the study, from the command line.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use freezeframe_lab::AblationConfig;
use freezeframe_lab::Meta;
use freezeframe_lab::study::{StudyOptions, StudyOutcome, prepare, run_study};
use freezeframe_train::RunConfig;

use crate::cli::{AblateArgs, DemoArgs};

/// `ablate --config FILE [--out DIR] [--jobs N | --report-only]`; `shard` is set in `--jobs`
/// worker processes.
pub fn ablate(a: AblateArgs) -> Result<()> {
    let AblateArgs {
        command,
        config,
        out,
        jobs,
        report_only,
        shard,
    } = a;
    if let Some(c) = command {
        return crate::cluster::run(c);
    }
    let config = config.context("--config is required")?;
    let config = config.as_path();
    let ab = AblationConfig::load(config)?;
    let base = ab.base_config()?;
    let out = out.unwrap_or_else(|| PathBuf::from("runs").join(&ab.name));
    let meta = meta(false, Vec::new(), jobs);
    if let Some(s) = shard {
        let shard = parse_shard(&s)?;
        die_with_parent();
        let opts = StudyOptions {
            progress: false,
            shard: Some(shard),
            meta,
            ..StudyOptions::default()
        };
        run_study(&ab, base, &out, &opts)?;
        return Ok(());
    }
    if jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    if jobs > 1 {
        run_workers(config, &ab, base.clone(), &out, jobs)?;
    }
    if report_only && !out.join("runs").is_dir() {
        bail!(
            "--report-only: {} holds no runs of a study; train them first (the same command without --report-only)",
            out.display()
        );
    }
    let opts = StudyOptions {
        progress: true,
        report_only,
        meta,
        ..StudyOptions::default()
    };
    finish(run_study(&ab, base, &out, &opts)?)
}

/// The small study (`demo`) or the smoke test (`demo --quick`) into `OUT/demo[-quick]`; a
/// re-run resumes it.
pub fn demo(a: DemoArgs) -> Result<()> {
    let DemoArgs { out: parent, quick } = a;
    let (ab, base, left_out) = freezeframe_lab::demo::demo_config(quick)?;
    if quick {
        eprintln!("demo --quick: every stage at the smallest size; its numbers mean nothing");
    }
    let out = parent.join(&ab.name);
    eprintln!(
        "demo: {} × seeds {:?}, {} steps each, from the shipped image model, into {}",
        ab.strategies.join(", "),
        ab.seeds,
        base.train.steps,
        out.display()
    );
    let opts = StudyOptions {
        progress: true,
        meta: meta(quick, left_out, 1),
        ..StudyOptions::default()
    };
    finish(run_study(&ab, base, &out, &opts)?)
}

pub fn finish(outcome: StudyOutcome) -> Result<()> {
    match outcome {
        StudyOutcome::Complete {
            report, results, ..
        } => {
            for v in &results.verdicts {
                println!(
                    "claim {} ({}): {}",
                    v.claim.id,
                    v.claim.text,
                    v.outcome.word()
                );
            }
            println!("report: {}", report.display());
            println!("        {}", report.with_file_name("report.md").display());
            Ok(())
        }
        StudyOutcome::Partial { done, total, .. } => {
            println!("{done} of {total} runs finished; run the same command again to resume");
            Ok(())
        }
    }
}

fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let (i, n) = s.split_once('/').context("--shard takes i/n")?;
    let (i, n): (usize, usize) = (i.parse()?, n.parse()?);
    if n == 0 || i >= n {
        bail!("--shard {s}: need 0 ≤ i < n");
    }
    Ok((i, n))
}

/// Worker processes for `--jobs asked`: no more than there are runs to train or cores to train
/// them on (more would only fork idle processes), and at least one.
fn workers(asked: usize, cells: usize, cores: usize) -> usize {
    asked.min(cells).min(cores).max(1)
}

/// Runs the grid in `jobs` worker processes (each `ablate --shard i/jobs`, with its share of
/// the cores), drawing the grid bar from the run folders' done markers.
fn run_workers(
    config: &Path,
    ab: &AblationConfig,
    base: RunConfig,
    out: &Path,
    jobs: usize,
) -> Result<()> {
    // The image weights (a pre-training run included) are made once, before the workers start.
    let prepared = prepare(ab, base, out, true)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let asked = jobs;
    let jobs = workers(asked, prepared.cells.len(), cores);
    if jobs < asked {
        eprintln!(
            "--jobs {asked}: starting {jobs} workers ({} runs in the grid, {cores} cores)",
            prepared.cells.len()
        );
    }
    let threads = (cores / jobs).max(1);
    // Counted before any worker starts, so that the grid's rate counts only runs trained now.
    let before = finished_cells(&prepared.cells, &ab.eval);
    let exe = std::env::current_exe().context("locate the freezeframe binary")?;
    let mut children = Vec::new();
    for i in 0..jobs {
        let child = Command::new(&exe)
            .arg("ablate")
            .arg("--config")
            .arg(config)
            .arg("--out")
            .arg(out)
            .arg("--shard")
            .arg(format!("{i}/{jobs}"))
            .env("RAYON_NUM_THREADS", threads.to_string())
            .spawn()
            .with_context(|| format!("start worker {i}"))?;
        children.push(child);
    }
    let bar = freezeframe_train::progress::bar(
        &format!("grid ({jobs} workers × {threads} threads)"),
        before,
        prepared.cells.len() as u64,
        true,
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} runs (eta {eta})",
    );
    let mut failed = Vec::new();
    while !children.is_empty() {
        bar.set_position(finished_cells(&prepared.cells, &ab.eval));
        let mut still = Vec::new();
        for mut c in children {
            match c.try_wait() {
                Ok(Some(status)) if !status.success() => failed.push(status.to_string()),
                Ok(Some(_)) => {}
                Ok(None) => still.push(c),
                Err(e) => {
                    // The child cannot be watched: stop it rather than leave it unattended.
                    let _ = c.kill();
                    failed.push(format!("lost track of a worker: {e}"));
                }
            }
        }
        children = still;
        std::thread::sleep(Duration::from_millis(500));
    }
    bar.finish();
    if !failed.is_empty() {
        bail!(
            "{} worker(s) failed ({}); the finished runs are kept, run again to resume",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// How many of `cells` are finished, for the grid bar only: an unreadable evaluation counts as
/// unfinished here and is reported by the worker or the report.
fn finished_cells(
    cells: &[freezeframe_lab::grid::Cell],
    eval: &freezeframe_train::evaluate::EvalSettings,
) -> u64 {
    cells
        .iter()
        .filter(|c| matches!(freezeframe_lab::done::is_done(&c.run(), eval), Ok(true)))
        .count() as u64
}

/// The command, commit and machine, for the report.
pub fn meta(quick: bool, left_out: Vec<String>, jobs: usize) -> Meta {
    // The commit the binary was built from (build.rs), not that of the working directory.
    let commit = env!("FREEZEFRAME_COMMIT").to_string();
    Meta {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        commit,
        machine: machine(),
        quick,
        left_out,
        jobs,
    }
}

/// This machine in words (CPU model and threads), for reports and done markers.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {cores} threads")
}

/// A `--jobs` worker ends with the process that started it: a killed coordinator must not
/// leave workers training behind the next one's back.
fn die_with_parent() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets this process's parent-death signal; it takes
    // no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_capped_by_the_runs_and_the_cores() {
        assert_eq!(workers(1_000_000, 18, 2), 2);
        assert_eq!(workers(1_000_000, 3, 64), 3);
        assert_eq!(workers(4, 18, 64), 4);
        assert_eq!(workers(2, 0, 2), 1);
    }

    #[test]
    fn shards_outside_their_count_are_refused() {
        assert_eq!(parse_shard("1/3").unwrap(), (1, 3));
        assert!(parse_shard("3/3").is_err());
        assert!(parse_shard("0/0").is_err());
    }
}
