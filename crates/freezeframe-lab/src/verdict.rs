//! Verdicts: each claim's decision rule (written in the ablation config before running)
//! applied to the per-seed values of its metric.
use serde::Serialize;

use crate::config::{Claim, Expect};
use crate::stats::{Welch, holm, welch};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Supported,
    Contradicted,
    Inconclusive,
    /// A strategy the claim needs was not run, or has fewer than two seeds.
    Untested,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Supported => "supported",
            Outcome::Contradicted => "contradicted",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Untested => "not tested",
        }
    }
}

/// One comparison of a claim: `strategy` against `other`.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub other: String,
    pub welch: Option<Welch>,
    /// Welch's p after Holm's correction over the claim's comparisons (the one decided on).
    pub p_holm: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub claim: Claim,
    pub outcome: Outcome,
    pub comparisons: Vec<Comparison>,
    /// Why the claim could not be tested, when it could not.
    pub note: Option<String>,
}

/// Applies `claim`'s rule. `values(strategy)` gives the metric's per-seed values of a strategy
/// in the grid (`None` if it was not run); `strategies` is the grid, for `against = ["*"]`.
pub fn decide(
    claim: &Claim,
    strategies: &[String],
    alpha: f64,
    values: impl Fn(&str) -> Option<Vec<f64>>,
) -> Verdict {
    let untested = |note: String| Verdict {
        claim: claim.clone(),
        outcome: Outcome::Untested,
        comparisons: Vec::new(),
        note: Some(note),
    };
    let Some(mine) = values(&claim.strategy) else {
        return untested(format!("`{}` was not run", claim.strategy));
    };
    let others: Vec<String> = if claim.against.iter().any(|a| a == "*") {
        strategies
            .iter()
            .filter(|s| **s != claim.strategy)
            .cloned()
            .collect()
    } else {
        claim.against.clone()
    };
    if others.is_empty() {
        return untested("no strategy to compare against".into());
    }
    let mut comparisons = Vec::new();
    for o in &others {
        let Some(theirs) = values(o) else {
            return untested(format!("`{o}` was not run"));
        };
        comparisons.push(Comparison {
            other: o.clone(),
            welch: welch(&mine, &theirs),
            p_holm: f64::NAN,
        });
    }
    if comparisons.iter().any(|c| c.welch.is_none()) {
        return Verdict {
            claim: claim.clone(),
            outcome: Outcome::Untested,
            comparisons,
            note: Some("fewer than two seeds with a finite value on one side".into()),
        };
    }
    let ps: Vec<f64> = comparisons
        .iter()
        .map(|c| c.welch.as_ref().map_or(f64::NAN, |w| w.p))
        .collect();
    for (c, p) in comparisons.iter_mut().zip(holm(&ps)) {
        c.p_holm = p;
    }
    let expected = |w: &Welch| match claim.expect {
        Expect::Lower => w.diff < 0.0,
        Expect::Higher => w.diff > 0.0,
    };
    let tested: Vec<(&Welch, f64)> = comparisons
        .iter()
        .filter_map(|c| c.welch.as_ref().map(|w| (w, c.p_holm)))
        .collect();
    let outcome = if tested
        .iter()
        .any(|(w, p)| *p < alpha && !expected(w) && w.diff != 0.0)
    {
        Outcome::Contradicted
    } else if tested.iter().all(|(w, p)| *p < alpha && expected(w)) {
        Outcome::Supported
    } else {
        Outcome::Inconclusive
    };
    Verdict {
        claim: claim.clone(),
        outcome,
        comparisons,
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(expect: Expect, against: &[&str]) -> Claim {
        Claim {
            id: "1".into(),
            text: "temporal-only is too static".into(),
            strategy: "temporal-only".into(),
            against: against.iter().map(|s| s.to_string()).collect(),
            metric: "tracked_motion_ratio".into(),
            expect,
        }
    }

    fn run(mine: &[f64], theirs: &[f64], expect: Expect) -> Outcome {
        let strategies = vec!["full".to_string(), "temporal-only".to_string()];
        let (m, t) = (mine.to_vec(), theirs.to_vec());
        decide(&claim(expect, &["full"]), &strategies, 0.05, |s| {
            Some(if s == "temporal-only" {
                m.clone()
            } else {
                t.clone()
            })
        })
        .outcome
    }

    #[test]
    fn a_clear_difference_supports_identical_seeds_are_inconclusive_a_reversal_contradicts() {
        let low = [0.30, 0.32, 0.31];
        let high = [0.95, 0.97, 0.96];
        assert_eq!(run(&low, &high, Expect::Lower), Outcome::Supported);
        assert_eq!(run(&high, &high, Expect::Lower), Outcome::Inconclusive);
        assert_eq!(run(&high, &low, Expect::Lower), Outcome::Contradicted);
        // Overlapping seeds: no significant difference either way.
        assert_eq!(
            run(&[0.5, 0.9, 0.7], &[0.6, 0.8, 0.75], Expect::Lower),
            Outcome::Inconclusive
        );
    }

    #[test]
    fn best_of_all_needs_every_comparison_and_missing_strategies_are_untested() {
        let strategies: Vec<String> = ["full", "staged", "scratch"].map(String::from).to_vec();
        let c = Claim {
            strategy: "full".into(),
            metric: "val_loss".into(),
            ..claim(Expect::Lower, &["*"])
        };
        let vals = |s: &str| -> Option<Vec<f64>> {
            Some(match s {
                "full" => vec![0.10, 0.11, 0.10],
                "staged" => vec![0.20, 0.21, 0.20],
                _ => vec![0.10, 0.12, 0.09],
            })
        };
        // Better than staged but not than scratch: inconclusive.
        assert_eq!(
            decide(&c, &strategies, 0.05, vals).outcome,
            Outcome::Inconclusive
        );
        let gone = decide(&c, &strategies, 0.05, |s| {
            (s != "staged").then(|| vec![0.1, 0.2])
        });
        assert_eq!(gone.outcome, Outcome::Untested);
        let one_seed = decide(&c, &strategies, 0.05, |_| Some(vec![0.1]));
        assert_eq!(one_seed.outcome, Outcome::Untested);
    }
}
