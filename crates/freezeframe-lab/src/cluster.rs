//! The study grid on a cluster engine, by one index contract. `plan` claims the study folder,
//! makes the image weights and writes `manifest.json`: every cell (strategy × seed, its full run
//! config, content-addressed as with `ablate`). A task — a SLURM array task
//! (`SLURM_ARRAY_TASK_ID`), a Kubernetes Indexed Job pod (`JOB_COMPLETION_INDEX`) or a shell
//! loop — runs the cells of its index ([`run_task`]); a requeued or preempted task resumes its
//! cell from the newest checkpoint, and a second task on a running cell is refused by the
//! cell's lock. `report` merges the finished cells into the same report as `ablate`, naming the
//! missing ones. [`slurm_scripts`] writes the sbatch array and its report job.
use std::ops::Range;
use std::path::{Path, PathBuf};

use freezeframe_model::text::fnv1a;
use freezeframe_train::{RunConfig, TrainError};
use serde::{Deserialize, Serialize};

use crate::config::AblationConfig;
use crate::error::{LabError, io};
use crate::explain::inflation_check;
use crate::files::{read_json, write_atomic, write_json_atomic};
use crate::grid::{Cell, CellOptions, CellOutcome, run_cell};
use crate::image::ImageWeights;
use crate::results::Meta;
use crate::study::{StudyOutcome, prepare, report_finished};

const FILE: &str = "manifest.json";
const FORMAT: u32 = 1;

/// `manifest.json`: all a task needs, so tasks depend on the study folder alone (not on the
/// config files or the checkout they came from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// Its name is the study's, as in the folder's `study.json`.
    pub ablation: AblationConfig,
    /// The shared run config, budget applied.
    pub base: RunConfig,
    pub image: ImageWeights,
    /// The grid in `ablate`'s order (strategy-major); a cell's index is its place here.
    pub cells: Vec<Cell>,
}

impl Manifest {
    /// The grid's identity: its cells' names (each a content hash) in order. A task submitted
    /// for one grid refuses to run on another (a study planned again after it was submitted
    /// may have moved cells to other indices).
    pub fn fingerprint(&self) -> String {
        let names: Vec<&str> = self.cells.iter().map(|c| c.cfg.name.as_str()).collect();
        format!("{:016x}", fnv1a(0, names.join("\n").as_bytes()))
    }
}

fn err(path: &Path, message: String) -> LabError {
    LabError::Config {
        path: path.to_path_buf(),
        message,
    }
}

pub fn manifest_path(out: &Path) -> PathBuf {
    out.join(FILE)
}

/// `out` made absolute: a task runs wherever the cluster starts it, so every path in the
/// manifest must not depend on the working directory.
fn absolute(out: &Path) -> Result<PathBuf, LabError> {
    std::path::absolute(out).map_err(io(format!("resolve {}", out.display())))
}

/// Claims `out` for the study (as `ablate` does), makes the image weights and writes the
/// manifest. Planning again rewrites the manifest from the current config: finished cells keep
/// their folders (content-addressed), new ones are added.
pub fn plan(
    ab: &AblationConfig,
    base: RunConfig,
    out: &Path,
    progress: bool,
) -> Result<Manifest, LabError> {
    let out = &absolute(out)?;
    let prepared = prepare(ab, base, out, progress)?;
    let m = Manifest {
        format: FORMAT,
        ablation: ab.clone(),
        base: prepared.base,
        image: prepared.image,
        cells: prepared.cells,
    };
    write_json_atomic(&manifest_path(out), &m)?;
    Ok(m)
}

/// Reads the manifest of the study folder `out`, checking that it belongs to the study that
/// claimed the folder.
pub fn read_manifest(out: &Path) -> Result<Manifest, LabError> {
    let out = &absolute(out)?;
    let path = manifest_path(out);
    if !path.is_file() {
        return Err(err(
            &path,
            "no manifest: plan the study first (`freezeframe ablate plan --config C --out DIR`)"
                .into(),
        ));
    }
    let m: Manifest = read_json(&path, "not a manifest of this build")?;
    if m.format != FORMAT {
        return Err(err(
            &path,
            format!("manifest format {} (this build reads {FORMAT})", m.format),
        ));
    }
    let owner = crate::marker::study_name(out)?;
    if owner != m.ablation.name {
        return Err(err(
            &path,
            format!(
                "is the manifest of study `{}`, but {} is study `{owner}`'s folder: plan this study again into it, or point --out at the other study's folder",
                m.ablation.name,
                out.display()
            ),
        ));
    }
    if let Some(c) = m.cells.iter().find(|c| c.cfg.out_dir != out.join("runs")) {
        return Err(err(
            &path,
            format!(
                "its cells live under {}, not {}: the manifest was copied from another study folder, or the folder is reached by another path than when it was planned (every node must see it at the same path)",
                c.cfg.out_dir.display(),
                out.join("runs").display()
            ),
        ));
    }
    Ok(m)
}

/// The cells of task `index` when each task runs `per_task` consecutive cells.
pub fn task_range(cells: usize, index: usize, per_task: usize) -> Result<Range<usize>, String> {
    if per_task == 0 {
        return Err("--cells-per-task must be at least 1".into());
    }
    let tasks = task_count(cells, per_task);
    if index >= tasks {
        return Err(format!(
            "task index {index} is out of range: the study has {cells} cells in {tasks} task(s) of {per_task} (indices 0..={})",
            tasks.saturating_sub(1)
        ));
    }
    Ok(index * per_task..((index + 1) * per_task).min(cells))
}

/// Number of tasks for `cells` cells at `per_task` a task.
pub fn task_count(cells: usize, per_task: usize) -> usize {
    cells.div_ceil(per_task.max(1))
}

/// What a task was given: its index, the cells a task runs, and the manifest it was submitted
/// for (its [`Manifest::fingerprint`]; `None`: any).
#[derive(Debug, Clone, Default)]
pub struct Task {
    pub index: usize,
    pub cells_per_task: usize,
    pub manifest: Option<String>,
}

/// Runs (or resumes, or finds finished) the cells of a task. Each cell is what `ablate` would
/// run: the same folder, lock, checkpoints and done marker. A cell another process holds is
/// left to it and the task goes on with its next cell, then fails naming the busy ones.
pub fn run_task(
    out: &Path,
    task: &Task,
    opts: &CellOptions,
) -> Result<Vec<(Cell, CellOutcome)>, LabError> {
    let m = read_manifest(out)?;
    if let Some(want) = &task.manifest
        && *want != m.fingerprint()
    {
        return Err(err(
            &manifest_path(out),
            format!(
                "the grid changed since this task was submitted (manifest {want}, now {}): the study was planned again; submit its tasks again",
                m.fingerprint()
            ),
        ));
    }
    let range =
        task_range(m.cells.len(), task.index, task.cells_per_task).map_err(|e| err(out, e))?;
    check_image(&m)?;
    let (mut done, mut busy) = (Vec::new(), Vec::new());
    for cell in &m.cells[range] {
        let outcome = match run_cell(cell, &m.ablation, &m.image, opts) {
            Ok(o) => o,
            Err(LabError::Train(TrainError::Locked { pid, .. })) => {
                busy.push(format!("{} (pid {pid})", cell.cfg.name));
                continue;
            }
            Err(e) => return Err(e),
        };
        done.push((cell.clone(), outcome));
        if outcome == CellOutcome::Interrupted {
            break;
        }
    }
    if !busy.is_empty() {
        return Err(err(
            out,
            format!(
                "cells held by another process, left to it: {}",
                busy.join(", ")
            ),
        ));
    }
    Ok(done)
}

/// Image weights named by path (not copied into the study folder) must still be the bytes the
/// grid was planned with: a task started later must not train from other weights.
fn check_image(m: &Manifest) -> Result<(), LabError> {
    if crate::image::content_hash(&m.image.path)? != m.image.hash {
        return Err(err(
            &m.image.path,
            format!(
                "changed since the study was planned (content hash {:016x} then): restore it, or plan the study again",
                m.image.hash
            ),
        ));
    }
    Ok(())
}

/// The report of the finished cells (the missing ones named, the claims that need them not
/// tested) — with every cell finished, the same report as `ablate`.
pub fn report(out: &Path, meta: &Meta) -> Result<StudyOutcome, LabError> {
    let m = read_manifest(out)?;
    let inflation = inflation_check(&m.base, &m.image.path)?;
    report_finished(
        &m.ablation,
        &m.base,
        &m.cells,
        out,
        (inflation, m.image),
        meta,
        "run their tasks (`ablate run-cell`), then `ablate report` again",
    )
}

/// How the generated sbatch scripts ask for resources.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub gpus_per_task: Option<usize>,
    pub cpus_per_task: Option<usize>,
    /// At most this many array tasks at once (`--array=0-N%K`).
    pub max_parallel: Option<usize>,
    pub cells_per_task: usize,
    /// `--time` of each array task (SLURM's format, e.g. `04:00:00`).
    pub time: Option<String>,
    /// The freezeframe binary the tasks run (absolute).
    pub binary: PathBuf,
}

/// The files [`slurm_scripts`] wrote.
pub struct SlurmScripts {
    pub array: PathBuf,
    pub report: PathBuf,
    pub submit: PathBuf,
    pub tasks: usize,
}

/// A word safe inside single quotes in a shell script.
fn quoted(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// `#SBATCH` lines are not shell: a value there is taken up to the first space, and `%` in a
/// path is a pattern. Values that would be cut or expanded are refused, not written.
fn sbatch_value(what: &str, v: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "/_.,:=+@-".contains(c);
    if v.is_empty() || !v.chars().all(ok) {
        return Err(format!(
            "{what} {v:?} cannot go into an #SBATCH line (only letters, digits and /_.,:=+@- are kept whole there)"
        ));
    }
    Ok(())
}

/// The study's name as a job name: what SLURM keeps whole.
fn job_name(study: &str) -> String {
    let name: String = study
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("ff-{name}")
}

/// Writes `slurm/array.sbatch` (one array task per `cells_per_task` cells, requeued on
/// preemption, bound to this manifest), `slurm/report.sbatch` and `slurm/submit.sh`, which
/// submits the array and then the report with `--dependency=afterany` on it (the report names
/// the cells of failed tasks rather than waiting forever for them).
pub fn slurm_scripts(m: &Manifest, out: &Path, o: &SlurmOptions) -> Result<SlurmScripts, LabError> {
    let out = &absolute(out)?;
    let dir = out.join("slurm");
    let logs = dir.join("logs");
    let bad = |e: String| err(out, e);
    sbatch_value("the study folder", &logs.display().to_string()).map_err(bad)?;
    for (what, v) in [("--partition", &o.partition), ("--time", &o.time)] {
        if let Some(v) = v {
            sbatch_value(what, v).map_err(bad)?;
        }
    }
    std::fs::create_dir_all(&logs).map_err(io(format!("create {}", logs.display())))?;
    let tasks = task_count(m.cells.len(), o.cells_per_task);
    let name = job_name(&m.ablation.name);
    let mut common = String::from("#SBATCH --ntasks=1\n");
    if let Some(p) = &o.partition {
        common += &format!("#SBATCH --partition={p}\n");
    }
    if let Some(c) = o.cpus_per_task {
        common += &format!("#SBATCH --cpus-per-task={c}\n");
    }
    let throttle = o.max_parallel.map_or(String::new(), |k| format!("%{k}"));
    let mut array = format!(
        "#!/bin/bash\n# {} cells of study {name}, {} per task; written by `freezeframe ablate slurm`.\n#SBATCH --job-name={name}\n#SBATCH --array=0-{}{throttle}\n#SBATCH --output={}/cell-%a.out\n#SBATCH --requeue\n{common}",
        m.cells.len(),
        o.cells_per_task,
        tasks - 1,
        logs.display(),
    );
    if let Some(g) = o.gpus_per_task {
        array += &format!("#SBATCH --gpus-per-task={g}\n");
    }
    if let Some(t) = &o.time {
        array += &format!("#SBATCH --time={t}\n");
    }
    array += &format!(
        "set -eu\n# The task index comes from SLURM_ARRAY_TASK_ID; a requeued task resumes its cell.\nexec {} ablate run-cell --out {} --cells-per-task {} --manifest {}\n",
        quoted(&o.binary),
        quoted(out),
        o.cells_per_task,
        m.fingerprint()
    );
    let report = format!(
        "#!/bin/bash\n# The report of study {name}, after the array's tasks ended.\n#SBATCH --job-name={name}-report\n#SBATCH --output={}/report.out\n{common}set -eu\nexec {} ablate report --out {}\n",
        logs.display(),
        quoted(&o.binary),
        quoted(out)
    );
    let (a, r, s) = (
        dir.join("array.sbatch"),
        dir.join("report.sbatch"),
        dir.join("submit.sh"),
    );
    let submit = format!(
        "#!/bin/bash\n# Submits the array, then the report once every task has ended (the report names\n# the cells of failed tasks; run them again with `ablate run-cell`, then the report).\nset -eu\narray=$(sbatch --parsable {})\narray=${{array%%;*}}\nreport=$(sbatch --parsable --dependency=afterany:$array --kill-on-invalid-dep=yes {})\necho \"array job $array ({tasks} tasks), report job ${{report%%;*}}\"\n",
        quoted(&a),
        quoted(&r)
    );
    write_atomic(&a, array.as_bytes())?;
    write_atomic(&r, report.as_bytes())?;
    write_atomic(&s, submit.as_bytes())?;
    make_executable(&s)?;
    Ok(SlurmScripts {
        array: a,
        report: r,
        submit: s,
        tasks,
    })
}

fn make_executable(path: &Path) -> Result<(), LabError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(io(format!("chmod {}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_split_the_cells_and_refuse_indices_past_them() {
        assert_eq!(task_range(18, 0, 1).unwrap(), 0..1);
        assert_eq!(task_range(18, 17, 1).unwrap(), 17..18);
        assert_eq!(task_range(18, 4, 4).unwrap(), 16..18);
        assert_eq!(task_count(18, 4), 5);
        let e = task_range(18, 5, 4).unwrap_err();
        assert!(e.contains("out of range") && e.contains("0..=4"), "{e}");
        assert!(task_range(18, 18, 1).is_err());
        assert!(task_range(3, 0, 0).is_err());
    }

    #[test]
    fn shell_words_survive_quotes() {
        assert_eq!(quoted(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }

    #[test]
    fn sbatch_lines_take_only_what_slurm_keeps_whole() {
        assert!(sbatch_value("--time", "04:00:00").is_ok());
        assert!(sbatch_value("--partition", "gpu-a100").is_ok());
        for bad in ["a b", "x%y", "a\nb", "", "it's"] {
            assert!(sbatch_value("v", bad).is_err(), "{bad:?}");
        }
        assert_eq!(job_name("open sora\n#x"), "ff-open_sora__x");
    }
}
