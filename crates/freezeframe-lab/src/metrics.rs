//! One run's figures, read back from its run folder alone: `eval.json` (videos, alignment,
//! probes, val loss), `metrics.jsonl` (curves, per-group gradient norms, parameters, memory,
//! step time) and `ablate.json` (weight drift).
use std::collections::BTreeMap;
use std::path::Path;

use freezeframe_eval::Alignment;
use freezeframe_train::Run;
use freezeframe_train::evaluate::{EvalReport, read_report};
use freezeframe_train::metrics::Record;
use serde::{Deserialize, Serialize};

use crate::done::Done;
use crate::error::LabError;

/// Whether a smaller or a larger value is better; `Neither` for figures with a target (motion
/// ratio: 1) or no ranking (parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
    Neither,
}

/// Which results table a metric is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Motion,
    /// Text following and appearance (the text-use probes follow these columns).
    Text,
    /// Quality and cost.
    Quality,
}

/// What a metric is read from: a run's evaluation and its training log.
pub struct Sources<'a> {
    pub eval: &'a EvalReport,
    pub train: &'a TrainFacts,
}

/// A study metric: where it comes from, how the report shows it, and what "better" means. The
/// one list of them ([`METRICS`]) drives collection, claim validation and the report's tables.
pub struct Metric {
    pub key: &'static str,
    pub label: &'static str,
    pub better: Better,
    /// Shown as a percentage.
    pub percent: bool,
    pub section: Section,
    /// The figure, when the run has it (non-finite figures are dropped by the caller).
    pub get: fn(&Sources) -> Option<f64>,
}

const fn m(
    key: &'static str,
    label: &'static str,
    better: Better,
    percent: bool,
    section: Section,
    get: fn(&Sources) -> Option<f64>,
) -> Metric {
    Metric {
        key,
        label,
        better,
        percent,
        section,
        get,
    }
}

fn align(s: &Sources, f: fn(&Alignment) -> f32) -> Option<f64> {
    s.eval.comparison.alignment.as_ref().map(|a| f(a) as f64)
}

use Section::{Motion, Quality, Text};

/// Every metric, in table order within each section (text-use probes `probe_<class>` are read
/// from the evaluation's probes and follow the text section).
pub const METRICS: [Metric; 16] = [
    m(
        "tracked_motion_ratio",
        "motion ratio (tracked, gen/real)",
        Better::Neither,
        false,
        Motion,
        |s| Some(s.eval.comparison.tracked_motion_ratio as f64),
    ),
    m(
        "dynamic_degree",
        "dynamic degree (trajectories)",
        Better::Neither,
        true,
        Motion,
        |s| Some(s.eval.comparison.generated.robust_dynamic_degree as f64),
    ),
    m(
        "static_rate",
        "static rate (tracked, moving prompts)",
        Better::Lower,
        true,
        Motion,
        |s| align(s, |a| a.tracked_static_rate),
    ),
    m(
        "vbench_motion_ratio",
        "VBench flow motion ratio",
        Better::Neither,
        false,
        Motion,
        |s| Some(s.eval.comparison.motion_ratio as f64),
    ),
    m(
        "flicker",
        "flickering score",
        Better::Higher,
        false,
        Motion,
        |s| Some(s.eval.comparison.generated.flicker as f64),
    ),
    m(
        "direction",
        "direction accuracy",
        Better::Higher,
        true,
        Text,
        |s| align(s, |a| a.direction_moving),
    ),
    m(
        "colour",
        "colour accuracy",
        Better::Higher,
        true,
        Text,
        |s| align(s, |a| a.colour),
    ),
    m("shape", "shape accuracy", Better::Higher, true, Text, |s| {
        align(s, |a| a.shape)
    }),
    m(
        "one_object",
        "one-object frames",
        Better::Higher,
        true,
        Text,
        |s| align(s, |a| a.one_object),
    ),
    m("val_loss", "val loss", Better::Lower, false, Quality, |s| {
        Some(s.eval.val_loss as f64)
    }),
    m("fvd_lite", "FVD-lite", Better::Lower, false, Quality, |s| {
        Some(s.eval.comparison.fvd_lite)
    }),
    m(
        "trainable_params",
        "trainable parameters",
        Better::Neither,
        false,
        Quality,
        |s| s.train.trainable_params,
    ),
    m(
        "adam_bytes",
        "AdamW state (bytes)",
        Better::Neither,
        false,
        Quality,
        |s| s.train.adam_bytes,
    ),
    m(
        "step_seconds",
        "step time (s)",
        Better::Lower,
        false,
        Quality,
        |s| s.train.step_seconds,
    ),
    m(
        "peak_rss_mib",
        "peak memory (MiB)",
        Better::Lower,
        false,
        Quality,
        |s| s.train.peak_rss_mib,
    ),
    m(
        "train_seconds",
        "training wall time (s)",
        Better::Lower,
        false,
        Quality,
        |s| s.train.train_seconds,
    ),
];

/// The keys of one section, in table order.
pub fn keys_of(section: Section) -> Vec<&'static str> {
    METRICS
        .iter()
        .filter(|m| m.section == section)
        .map(|m| m.key)
        .collect()
}

/// Everything the report needs of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub strategy: String,
    pub seed: u64,
    /// Run folder, relative to the ablation's output folder.
    pub run: String,
    /// Finite figures only: an absent key reads `n/a`.
    pub values: BTreeMap<String, f64>,
    /// (step, validation loss).
    pub val_curve: Vec<(usize, f64)>,
    /// Plan group → (step, gradient norm) of the groups that trained.
    pub grad_norms: BTreeMap<String, Vec<(usize, f64)>>,
    /// Plan group → (step, gradient norm it would get) while frozen.
    pub frozen_grad_norms: BTreeMap<String, Vec<(usize, f64)>>,
    /// Parameter family → ‖w − w₀‖ / ‖w₀‖ from the inflated initialisation.
    pub drift: BTreeMap<String, f64>,
    /// Linear CKA between the image model's and this model's block outputs, per block.
    pub cka: Vec<f64>,
}

/// Reads one finished run folder (`eval.json`, `metrics.jsonl`, `ablate.json`); also returns
/// its done marker, parsed once here.
pub fn collect(
    out: &Path,
    rel: &str,
    strategy: &str,
    seed: u64,
) -> Result<(RunResult, Done), LabError> {
    let run = Run::new(out.join(rel));
    let eval = read_report(&run)?;
    let done = crate::done::read(&run)?;
    let records = freezeframe_train::metrics::read(&run.metrics_path())?;
    let train = train_facts(&records);
    let sources = Sources {
        eval: &eval,
        train: &train,
    };
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    let mut values = BTreeMap::new();
    for metric in &METRICS {
        if let Some(v) = finite((metric.get)(&sources)) {
            values.insert(metric.key.to_string(), v);
        }
    }
    for p in &eval.probes {
        if let Some(v) = finite(Some(p.mean as f64)) {
            values.insert(format!("probe_{}", p.class.key()), v);
        }
    }
    Ok((
        RunResult {
            strategy: strategy.to_string(),
            seed,
            run: rel.to_string(),
            values,
            val_curve: train.val_curve,
            grad_norms: train.grad_norms,
            frozen_grad_norms: train.frozen,
            drift: done.drift.clone(),
            cka: done.cka.clone(),
        },
        done,
    ))
}

/// What a run's training log says, beyond its curves' points.
#[derive(Debug, Default)]
pub struct TrainFacts {
    pub trainable_params: Option<f64>,
    pub adam_bytes: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub step_seconds: Option<f64>,
    pub train_seconds: Option<f64>,
    pub val_curve: Vec<(usize, f64)>,
    pub grad_norms: BTreeMap<String, Vec<(usize, f64)>>,
    pub frozen: BTreeMap<String, Vec<(usize, f64)>>,
}

fn max_opt(a: Option<f64>, b: f64) -> Option<f64> {
    if !b.is_finite() {
        return a;
    }
    Some(a.map_or(b, |x| x.max(b)))
}

/// Training figures from `metrics.jsonl`: the largest trainable set and optimiser state of any
/// phase, the peak memory of any phase, and the wall time of the logged steps (Σ steps/it_s;
/// a resumed run's lost steps are re-logged, so this counts each step once).
fn train_facts(records: &[Record]) -> TrainFacts {
    let mut f = TrainFacts::default();
    let (mut secs, mut steps, mut last_step) = (0.0, 0usize, 0usize);
    for r in records {
        match r {
            Record::PhaseStart(p) => {
                f.trainable_params = max_opt(f.trainable_params, p.trainable_params as f64);
                f.adam_bytes = max_opt(f.adam_bytes, p.adam_state_bytes as f64);
            }
            Record::PhaseEnd(p) => f.peak_rss_mib = max_opt(f.peak_rss_mib, p.peak_rss_mib),
            Record::Val(v) if v.val_loss.is_finite() => {
                f.val_curve.push((v.step, v.val_loss as f64));
            }
            Record::Loss(l) if l.it_s.is_finite() && l.it_s > 0.0 => {
                let n = l.step.saturating_sub(last_step);
                secs += n as f64 / l.it_s;
                steps += n;
                last_step = l.step;
            }
            Record::Groups(g) => {
                for (name, row) in &g.groups {
                    if let Some(v) = row.grad_norm.filter(|x| x.is_finite()) {
                        f.grad_norms
                            .entry(name.clone())
                            .or_default()
                            .push((g.step, v));
                    }
                    if let Some(v) = row.frozen_grad_norm.filter(|x| x.is_finite()) {
                        f.frozen.entry(name.clone()).or_default().push((g.step, v));
                    }
                }
            }
            _ => {}
        }
    }
    if steps > 0 {
        f.train_seconds = Some(secs);
        f.step_seconds = Some(secs / steps as f64);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(line: &str) -> Record {
        Record::from_value(serde_json::from_str(line).unwrap()).unwrap()
    }

    #[test]
    fn train_facts_count_each_logged_step_once() {
        let records = vec![
            rec(
                r#"{"step":0,"event":"phase_start","phase":"a","trainable_tensors":1,"trainable_params":10,"adam_state_bytes":80}"#,
            ),
            rec(r#"{"step":50,"it_s":10.0,"loss":1.0,"lr":0.1,"grad_norm":1.0,"phase":"a"}"#),
            rec(
                r#"{"step":50,"phase":"a","groups":{"temporal":{"grad_norm":0.5},"rest":{"frozen_grad_norm":2.0}}}"#,
            ),
            rec(r#"{"step":100,"it_s":5.0,"loss":1.0,"lr":0.1,"grad_norm":1.0,"phase":"a"}"#),
            rec(r#"{"step":100,"val_loss":0.25,"val_loss_by_t":[]}"#),
            rec(
                r#"{"step":50,"event":"phase_start","phase":"b","trainable_tensors":3,"trainable_params":30,"adam_state_bytes":240}"#,
            ),
            rec(r#"{"step":100,"event":"phase_end","phase":"b","peak_rss_mib":12.5}"#),
        ];
        let f = train_facts(&records);
        assert_eq!(f.trainable_params, Some(30.0));
        assert_eq!(f.adam_bytes, Some(240.0));
        assert_eq!(f.peak_rss_mib, Some(12.5));
        assert!((f.train_seconds.unwrap() - 15.0).abs() < 1e-9);
        assert!((f.step_seconds.unwrap() - 0.15).abs() < 1e-9);
        assert_eq!(f.val_curve, vec![(100, 0.25)]);
        assert_eq!(f.grad_norms["temporal"], vec![(50, 0.5)]);
        assert_eq!(f.frozen["rest"], vec![(50, 2.0)]);
    }

    #[test]
    fn every_section_has_its_table_order() {
        assert_eq!(
            keys_of(Section::Motion),
            [
                "tracked_motion_ratio",
                "dynamic_degree",
                "static_rate",
                "vbench_motion_ratio",
                "flicker"
            ]
        );
        assert_eq!(
            keys_of(Section::Text),
            ["direction", "colour", "shape", "one_object"]
        );
        assert_eq!(keys_of(Section::Quality)[0], "val_loss");
        let keys: std::collections::BTreeSet<_> = METRICS.iter().map(|m| m.key).collect();
        assert_eq!(keys.len(), METRICS.len(), "a key is listed twice");
    }
}
