//! A finished run's marker, `ablate.json`: written last (atomically) by the grid, read by the
//! report. A run without it is resumed; a run with it is finished once its evaluation used the
//! study's current `[eval]` settings.
use std::collections::BTreeMap;
use std::path::PathBuf;

use freezeframe_train::Run;
use freezeframe_train::evaluate::{EvalSettings, read_report};
use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::files::{read_json, write_json_atomic};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    pub strategy: String,
    pub seed: u64,
    /// Seconds of this run's last attempt (training, evaluation and measurements).
    pub attempt_seconds: f64,
    pub drift: BTreeMap<String, f64>,
    pub cka: Vec<f64>,
    /// The commit of the binary that finished the run (absent in markers of older builds).
    #[serde(default)]
    pub commit: Option<String>,
    /// The machine that finished the run (CPU and threads; absent in markers of older builds):
    /// step and compute times compare only between runs of one machine.
    #[serde(default)]
    pub machine: Option<String>,
}

pub fn path(run: &Run) -> PathBuf {
    run.dir.join("ablate.json")
}

pub fn read(run: &Run) -> Result<Done, LabError> {
    read_json(&path(run), "not a done marker of this build")
}

pub fn write(run: &Run, done: &Done) -> Result<(), LabError> {
    write_json_atomic(&path(run), done)
}

/// Finished: marked done, and evaluated with `eval` (a changed `[eval]` re-evaluates the run;
/// it does not retrain it). A marked run without `eval.json` is not finished (it is evaluated
/// again); an `eval.json` this build cannot read is an error naming it, never "not finished"
/// (which would re-evaluate, or leave out of the report, a run whose file needs a look).
pub fn is_done(run: &Run, eval: &EvalSettings) -> Result<bool, LabError> {
    if !path(run).is_file() || !run.eval_path().is_file() {
        return Ok(false);
    }
    Ok(read_report(run)?.options == *eval)
}
