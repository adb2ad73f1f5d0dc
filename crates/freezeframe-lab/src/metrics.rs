//! One run's figures, read back from its run folder alone: `eval.json` (videos, alignment,
//! probes, val loss), `metrics.jsonl` (curves, per-group gradient norms, parameters, memory,
//! step time) and `ablate.json` (weight drift).
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::LabError;

/// Whether a smaller or a larger value is better; `Neither` for figures with a target (motion
/// ratio: 1) or no ranking (parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
    Neither,
}

/// A results-table column.
pub struct Metric {
    pub key: &'static str,
    pub label: &'static str,
    pub better: Better,
    /// Shown as a percentage.
    pub percent: bool,
}

const fn m(key: &'static str, label: &'static str, better: Better, percent: bool) -> Metric {
    Metric {
        key,
        label,
        better,
        percent,
    }
}

/// The table's columns, in order (text-use probes `probe_<class>` follow them).
pub const METRICS: [Metric; 16] = [
    m("val_loss", "val loss", Better::Lower, false),
    m(
        "tracked_motion_ratio",
        "motion ratio (tracked, gen/real)",
        Better::Neither,
        false,
    ),
    m(
        "dynamic_degree",
        "dynamic degree (trajectories)",
        Better::Neither,
        true,
    ),
    m(
        "static_rate",
        "static rate (tracked, moving prompts)",
        Better::Lower,
        true,
    ),
    m("direction", "direction accuracy", Better::Higher, true),
    m("colour", "colour accuracy", Better::Higher, true),
    m("shape", "shape accuracy", Better::Higher, true),
    m("one_object", "one-object frames", Better::Higher, true),
    m("fvd_lite", "FVD-lite", Better::Lower, false),
    m("flicker", "flickering score", Better::Higher, false),
    m(
        "vbench_motion_ratio",
        "VBench flow motion ratio",
        Better::Neither,
        false,
    ),
    m(
        "trainable_params",
        "trainable parameters",
        Better::Neither,
        false,
    ),
    m("adam_bytes", "AdamW state (bytes)", Better::Neither, false),
    m("step_seconds", "step time (s)", Better::Lower, false),
    m("peak_rss_mib", "peak memory (MiB)", Better::Lower, false),
    m(
        "train_seconds",
        "training wall time (s)",
        Better::Lower,
        false,
    ),
];

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

fn at(v: &Value, pointer: &str) -> Option<f64> {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .filter(|x| x.is_finite())
}

fn read_json(path: &Path) -> Result<Value, LabError> {
    let text = std::fs::read_to_string(path).map_err(|e| LabError::Results {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| LabError::Results {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads one finished run folder (`eval.json`, `metrics.jsonl`, `ablate.json`); also returns
/// its done marker, parsed once here.
pub fn collect(
    out: &Path,
    rel: &str,
    strategy: &str,
    seed: u64,
) -> Result<(RunResult, crate::grid::Done), LabError> {
    let dir = out.join(rel);
    let eval = read_json(&dir.join("eval.json"))?;
    let marker = dir.join("ablate.json");
    let done: crate::grid::Done =
        serde_json::from_value(read_json(&marker)?).map_err(|e| LabError::Results {
            path: marker.clone(),
            message: e.to_string(),
        })?;
    let records = freezeframe_train::metrics::read(&dir.join("metrics.jsonl"))?;
    let mut values = BTreeMap::new();
    let mut put = |k: &str, v: Option<f64>| {
        if let Some(v) = v {
            values.insert(k.to_string(), v);
        }
    };
    put("val_loss", at(&eval, "/val_loss"));
    put("tracked_motion_ratio", at(&eval, "/tracked_motion_ratio"));
    put("vbench_motion_ratio", at(&eval, "/motion_ratio"));
    put(
        "dynamic_degree",
        at(&eval, "/generated/robust_dynamic_degree"),
    );
    put("static_rate", at(&eval, "/alignment/tracked_static_rate"));
    put("direction", at(&eval, "/alignment/direction_moving"));
    put("colour", at(&eval, "/alignment/colour"));
    put("shape", at(&eval, "/alignment/shape"));
    put("one_object", at(&eval, "/alignment/one_object"));
    put("fvd_lite", at(&eval, "/fvd_lite"));
    put("flicker", at(&eval, "/generated/flicker"));
    if let Some(probes) = eval.get("probes").and_then(Value::as_array) {
        for p in probes {
            if let Some(class) = p.get("class").and_then(Value::as_str) {
                put(&format!("probe_{class}"), at(p, "/mean"));
            }
        }
    }
    let train = train_facts(&records);
    put("trainable_params", train.trainable_params);
    put("adam_bytes", train.adam_bytes);
    put("peak_rss_mib", train.peak_rss_mib);
    put("step_seconds", train.step_seconds);
    put("train_seconds", train.train_seconds);
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

#[derive(Default)]
struct TrainFacts {
    trainable_params: Option<f64>,
    adam_bytes: Option<f64>,
    peak_rss_mib: Option<f64>,
    step_seconds: Option<f64>,
    train_seconds: Option<f64>,
    val_curve: Vec<(usize, f64)>,
    grad_norms: BTreeMap<String, Vec<(usize, f64)>>,
    frozen: BTreeMap<String, Vec<(usize, f64)>>,
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Training figures from `metrics.jsonl`: the largest trainable set and optimiser state of any
/// phase, the peak memory of any phase, and the wall time of the logged steps (Σ steps/it_s;
/// a resumed run's lost steps are re-logged, so this counts each step once).
fn train_facts(records: &[Value]) -> TrainFacts {
    let mut f = TrainFacts::default();
    let (mut secs, mut steps, mut last_step) = (0.0, 0usize, 0usize);
    for r in records {
        let step = r.get("step").and_then(Value::as_u64).unwrap_or(0) as usize;
        match r.get("event").and_then(Value::as_str) {
            Some("phase_start") => {
                f.trainable_params = max_opt(f.trainable_params, at(r, "/trainable_params"));
                f.adam_bytes = max_opt(f.adam_bytes, at(r, "/adam_state_bytes"));
            }
            Some("phase_end") => f.peak_rss_mib = max_opt(f.peak_rss_mib, at(r, "/peak_rss_mib")),
            _ => {}
        }
        if let Some(v) = at(r, "/val_loss") {
            f.val_curve.push((step, v));
        }
        if let Some(it_s) = at(r, "/it_s").filter(|x| *x > 0.0) {
            let n = step.saturating_sub(last_step);
            secs += n as f64 / it_s;
            steps += n;
            last_step = step;
        }
        if let Some(groups) = r.get("groups").and_then(Value::as_object) {
            for (g, row) in groups {
                if let Some(v) = at(row, "/grad_norm") {
                    f.grad_norms.entry(g.clone()).or_default().push((step, v));
                }
                if let Some(v) = at(row, "/frozen_grad_norm") {
                    f.frozen.entry(g.clone()).or_default().push((step, v));
                }
            }
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
    use serde_json::json;

    #[test]
    fn train_facts_count_each_logged_step_once() {
        let records = vec![
            json!({"step": 0, "event": "phase_start", "trainable_params": 10, "adam_state_bytes": 80}),
            json!({"step": 50, "it_s": 10.0, "loss": 1.0}),
            json!({"step": 50, "groups": {"temporal": {"grad_norm": 0.5}, "rest": {"frozen_grad_norm": 2.0}}}),
            json!({"step": 100, "it_s": 5.0, "loss": 1.0}),
            json!({"step": 100, "val_loss": 0.25}),
            json!({"step": 50, "event": "phase_start", "trainable_params": 30, "adam_state_bytes": 240}),
            json!({"step": 100, "event": "phase_end", "peak_rss_mib": 12.5}),
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
}
