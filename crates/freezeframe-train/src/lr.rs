//! The learning-rate schedule, a pure function of the step.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    Cosine,
}

impl Schedule {
    /// The name a config gives it (`schedule = "…"`), for reports and messages; a test keeps it
    /// equal to serde's name.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::Cosine => "cosine",
        }
    }
}

/// Linear warm-up from 0 to `base` over `warmup` steps (step 0 already gets base/warmup), then
/// constant or cosine decay to `base·min_ratio` at `total`.
pub fn lr_at(
    step: usize,
    total: usize,
    warmup: usize,
    base: f64,
    schedule: Schedule,
    min_ratio: f64,
) -> f64 {
    if step < warmup {
        return base * (step + 1) as f64 / warmup as f64;
    }
    match schedule {
        Schedule::Constant => base,
        Schedule::Cosine => {
            let span = total.saturating_sub(warmup).max(1) as f64;
            let p = ((step - warmup) as f64 / span).min(1.0);
            let min = base * min_ratio;
            min + (base - min) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_schedule_values() {
        let f = |s| lr_at(s, 110, 10, 1e-3, Schedule::Cosine, 0.1);
        assert!((f(0) - 1e-4).abs() < 1e-12);
        assert!((f(9) - 1e-3).abs() < 1e-12);
        assert!((f(10) - 1e-3).abs() < 1e-12);
        // halfway through the decay: min + (base − min)/2 = 5.5e-4
        assert!((f(60) - 5.5e-4).abs() < 1e-12);
        assert!((f(110) - 1e-4).abs() < 1e-12);
        assert!((f(500) - 1e-4).abs() < 1e-12);
        assert_eq!(lr_at(50, 100, 0, 2e-4, Schedule::Constant, 0.1), 2e-4);
    }

    #[test]
    fn name_is_serde_name() {
        for s in [Schedule::Constant, Schedule::Cosine] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.name())
            );
        }
    }
}
