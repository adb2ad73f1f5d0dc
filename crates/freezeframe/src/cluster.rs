//! `freezeframe ablate plan | run-cell | report | slurm`: the study grid on a cluster engine.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use freezeframe_lab::AblationConfig;
use freezeframe_lab::cluster::{self, SlurmOptions};
use freezeframe_lab::grid::{CellOptions, CellOutcome};

use crate::cli::{AblateCommand, PlanStudyArgs, RunCellArgs, SlurmArgs};
use crate::lab::{finish, meta};

pub fn run(c: AblateCommand) -> Result<()> {
    match c {
        AblateCommand::Plan(a) => plan(a),
        AblateCommand::RunCell(a) => run_cell(a),
        AblateCommand::Report(a) => {
            let note = "The runs ran as cluster tasks (`ablate run-cell`): their step and wall times depend on the nodes they ran on, so they are comparable between strategies only on identical, unshared nodes.".to_string();
            finish(cluster::report(&a.out, &meta(false, vec![note], 1))?)
        }
        AblateCommand::Slurm(a) => slurm(a),
    }
}

/// Plans the study of `config` into `out` (default `runs/<name>`).
fn planned(config: &Path, out: Option<PathBuf>) -> Result<(cluster::Manifest, PathBuf)> {
    let ab = AblationConfig::load(config)?;
    let base = ab.base_config()?;
    let out = out.unwrap_or_else(|| PathBuf::from("runs").join(&ab.name));
    let out = std::path::absolute(&out).with_context(|| format!("resolve {}", out.display()))?;
    Ok((cluster::plan(&ab, base, &out, true)?, out))
}

fn plan(a: PlanStudyArgs) -> Result<()> {
    let (m, out) = planned(&a.config, a.out)?;
    let n = m.cells.len();
    println!(
        "{n} cells planned in {} (manifest {})",
        out.display(),
        m.fingerprint()
    );
    println!(
        "run each: freezeframe ablate run-cell --out {} --manifest {} --index I   (I = 0..={})",
        out.display(),
        m.fingerprint(),
        n - 1
    );
    println!(
        "then:     freezeframe ablate report --out {}",
        out.display()
    );
    Ok(())
}

/// The task index: the flag, else the cluster engine's variable.
fn task_index(flag: Option<usize>) -> Result<usize> {
    if let Some(i) = flag {
        return Ok(i);
    }
    for var in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
        if let Ok(v) = std::env::var(var) {
            return v
                .trim()
                .parse()
                .with_context(|| format!("{var}={v:?} is not a task index"));
        }
    }
    bail!(
        "no task index: give --index, or run as a SLURM array task (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)"
    )
}

fn run_cell(a: RunCellArgs) -> Result<()> {
    let index = task_index(a.index)?;
    let opts = CellOptions {
        progress: true,
        commit: Some(env!("FREEZEFRAME_COMMIT").to_string()),
        machine: Some(crate::lab::machine()),
        ..CellOptions::default()
    };
    let task = cluster::Task {
        index,
        cells_per_task: a.cells_per_task,
        manifest: a.manifest,
    };
    for (cell, outcome) in cluster::run_task(&a.out, &task, &opts)? {
        let what = match outcome {
            CellOutcome::AlreadyDone => "already finished",
            CellOutcome::Finished => "finished",
            CellOutcome::Interrupted => "interrupted (run the task again to resume it)",
        };
        println!(
            "{} seed {} ({}): {what}",
            cell.strategy, cell.seed, cell.cfg.name
        );
    }
    Ok(())
}

fn slurm(a: SlurmArgs) -> Result<()> {
    let (m, out) = planned(&a.study.config, a.study.out)?;
    let binary = std::env::current_exe().context("locate the freezeframe binary")?;
    let s = cluster::slurm_scripts(
        &m,
        &out,
        &SlurmOptions {
            partition: a.partition,
            gpus_per_task: a.gpus_per_task,
            cpus_per_task: a.cpus_per_task,
            max_parallel: a.max_parallel,
            cells_per_task: a.cells_per_task,
            time: a.time,
            binary,
        },
    )?;
    // SLURM's default MaxArraySize is 1001 (indices 0..=1000); a bigger array is refused at
    // submission, so say how to pack it now.
    if s.tasks > 1001 {
        eprintln!(
            "note: {} array tasks exceed SLURM's default MaxArraySize (1001); ask for fewer with --cells-per-task {}",
            s.tasks,
            m.cells.len().div_ceil(1001)
        );
    }
    println!(
        "{} cells in {} array task(s): {}",
        m.cells.len(),
        s.tasks,
        s.array.display()
    );
    println!(
        "report job (after every array task ended): {}",
        s.report.display()
    );
    println!("submit both: {}", s.submit.display());
    Ok(())
}
