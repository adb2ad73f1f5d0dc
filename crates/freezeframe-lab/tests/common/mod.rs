//! Helpers shared by the lab's integration tests: the smallest study and its figures.
#![allow(dead_code)]

use freezeframe_lab::study::{StudyOptions, StudyOutcome};
use freezeframe_lab::{AblationConfig, demo::demo_config};
use freezeframe_train::RunConfig;

/// A fresh, empty folder for one test, removed when the returned guard drops; the study's
/// folder is its `out`, which does not exist yet.
pub fn temp(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("ff-lab-{name}-"))
        .tempdir()
        .expect("a temporary folder")
}

pub fn quick() -> (AblationConfig, RunConfig) {
    let (mut ab, base, _) = demo_config(true).expect("embedded demo config");
    ab.strategies = vec!["full".into(), "temporal-only".into()];
    (ab, base)
}

pub fn opts() -> StudyOptions {
    StudyOptions::default()
}

/// `ablate --report-only`: the report of the runs finished so far.
pub fn report_only() -> StudyOptions {
    StudyOptions {
        report_only: true,
        ..opts()
    }
}

pub fn complete(o: StudyOutcome) -> freezeframe_lab::Results {
    match o {
        StudyOutcome::Complete { results, .. } => *results,
        StudyOutcome::Partial { done, total, .. } => panic!("only {done} of {total} runs finished"),
    }
}

/// Figures that must not depend on interruptions (wall-clock figures excluded).
/// (strategy, seed, its figures by metric) for every run of a study.
pub type Figures = Vec<(String, u64, Vec<(String, f64)>)>;

pub fn figures(r: &freezeframe_lab::Results) -> Figures {
    let timing = ["step_seconds", "train_seconds", "peak_rss_mib"];
    r.runs
        .iter()
        .map(|x| {
            let v = x
                .values
                .iter()
                .filter(|(k, _)| !timing.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            (x.strategy.clone(), x.seed, v)
        })
        .collect()
}

/// No claim of a partial grid is decided.
pub fn assert_untested(r: &freezeframe_lab::Results) {
    assert!(
        r.verdicts
            .iter()
            .all(|v| v.outcome == freezeframe_lab::verdict::Outcome::Untested),
        "a claim was decided on a partial grid"
    );
}
