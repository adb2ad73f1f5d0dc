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
    /// The same rule on every subset that drops one seed (see [`leave_one_seed_out`]).
    pub stability: Option<Stability>,
}

/// How a verdict survives dropping one seed: the rule re-applied with seed s left out of every
/// strategy, for each s. Seed s gives every strategy the same data order and noise, so a seed
/// is dropped from all sides at once. With fewer seeds a test has less power, so a verdict that
/// turns inconclusive here is fragile, one that turns round is not one to trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stability {
    /// Subsets whose verdict equals the whole grid's.
    pub same: usize,
    /// Subsets tried (the number of seeds).
    pub of: usize,
    /// The subsets whose verdict differs.
    pub others: Vec<LeftOut>,
}

/// A leave-one-seed-out subset's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    pub seed: u64,
    pub outcome: Outcome,
}

/// Re-applies `claim`'s rule once per seed, leaving that seed out of every strategy;
/// `values(strategy, left_out)` gives the per-seed values without seed `left_out`. `None` with
/// fewer than three seeds (a subset would have fewer than two). `seeds`: those with runs.
pub fn leave_one_seed_out(
    verdict: &Verdict,
    strategies: &[String],
    seeds: &[u64],
    alpha: f64,
    values: impl Fn(&str, u64) -> Option<Vec<f64>>,
) -> Option<Stability> {
    if seeds.len() < 3 || verdict.outcome == Outcome::Untested {
        return None;
    }
    let mut same = 0;
    let mut others = Vec::new();
    for &s in seeds {
        let o = decide(&verdict.claim, strategies, alpha, |st| values(st, s)).outcome;
        if o == verdict.outcome {
            same += 1;
        } else {
            others.push(LeftOut {
                seed: s,
                outcome: o,
            });
        }
    }
    Some(Stability {
        same,
        of: seeds.len(),
        others,
    })
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
        stability: None,
    };
    let Some(mine) = values(&claim.strategy) else {
        return untested(format!("`{}` was not run", claim.strategy));
    };
    let others = claim.compared_with(strategies);
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
            stability: None,
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
        stability: None,
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
    fn leaving_one_seed_out_finds_a_verdict_that_rests_on_one_seed() {
        let strategies = vec!["full".to_string(), "temporal-only".to_string()];
        let seeds = [0u64, 1, 2];
        // Per seed: (temporal-only, full). Seeds 0 and 1 agree; seed 2 sits far off.
        let check = |pairs: [(f64, f64); 3]| {
            let values = |s: &str, left_out: Option<u64>| -> Option<Vec<f64>> {
                Some(
                    seeds
                        .iter()
                        .zip(pairs)
                        .filter(|(seed, _)| Some(**seed) != left_out)
                        .map(|(_, (t, f))| if s == "temporal-only" { t } else { f })
                        .collect(),
                )
            };
            let c = claim(Expect::Lower, &["full"]);
            let v = decide(&c, &strategies, 0.05, |s| values(s, None));
            let st = leave_one_seed_out(&v, &strategies, &seeds, 0.05, |s, l| values(s, Some(l)));
            (v.outcome, st.unwrap())
        };
        let (o, st) = check([(0.30, 0.95), (0.31, 0.96), (0.32, 0.97)]);
        assert_eq!(o, Outcome::Supported);
        assert_eq!((st.same, st.of), (3, 3), "{st:?}");
        // With seed 2 reversed the whole grid is inconclusive; leaving seed 2 out supports it.
        let (o, st) = check([(0.30, 0.95), (0.31, 0.96), (0.99, 0.40)]);
        assert_eq!(o, Outcome::Inconclusive);
        let supported = LeftOut {
            seed: 2,
            outcome: Outcome::Supported,
        };
        assert!(st.others.contains(&supported), "{st:?}");
        assert!(st.same < 3);
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
