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
    /// Seconds of this run's last attempt (training, evaluation and measurements), wall clock:
    /// it counts time the process was paused or waiting for a busy machine.
    pub attempt_seconds: f64,
    /// CPU seconds the process spent on the same attempt (user + system, all threads; absent in
    /// markers of older builds). Unlike [`Done::attempt_seconds`] it does not grow while the
    /// process is stopped or starved by other work; it counts cores (a fully busy minute on
    /// two cores is about two CPU minutes).
    #[serde(default)]
    pub cpu_seconds: Option<f64>,
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

/// CPU seconds this process has used so far (user + system, every thread); `None` where the
/// platform does not say. Hand-written over `libc` (already a workspace dependency) rather than
/// a crate: it is one call.
pub fn process_cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `getrusage` writes a whole `rusage` into the pointer it is given, which
        // points to one owned, writable and aligned `rusage`; it is read only after success.
        let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) } == 0;
        if !ok {
            return None;
        }
        // SAFETY: filled by the successful call above (and an all-zero `rusage`, which it
        // started as, is valid too: it holds integers only).
        let u = unsafe { u.assume_init() };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        Some(secs(u.ru_utime) + secs(u.ru_stime))
    }
    #[cfg(not(unix))]
    {
        None
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_of_an_older_build_reads_without_the_newer_fields() {
        let old = r#"{"strategy":"full","seed":0,"attempt_seconds":1.0,"drift":{},"cka":[]}"#;
        let d: Done = serde_json::from_str(old).expect("an old marker");
        assert_eq!((d.cpu_seconds, d.commit, d.machine), (None, None, None));
    }
}
