//! Statistics across seeds: mean with a 95 % confidence interval, and Welch's t-test with
//! Cohen's d for the verdicts. statrs supplies the Student-t distribution.
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean of the finite values and the half-width of their 95 % t-interval (NaN with fewer than
/// two finite values: one seed gives no interval).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
    pub ci95: f64,
}

pub fn summarise(values: &[f64]) -> Summary {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let n = v.len();
    if n == 0 {
        return Summary {
            n,
            mean: f64::NAN,
            sd: f64::NAN,
            ci95: f64::NAN,
        };
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Summary {
            n,
            mean,
            sd: f64::NAN,
            ci95: f64::NAN,
        };
    }
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let ci95 = t_quantile(0.975, (n - 1) as f64) * sd / (n as f64).sqrt();
    Summary { n, mean, sd, ci95 }
}

fn t_quantile(p: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(p),
        Err(_) => f64::NAN,
    }
}

/// Welch's unequal-variance t-test of mean(a) − mean(b), two-sided, with Cohen's d (the
/// difference over the pooled standard deviation, sides weighted by n − 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Welch {
    pub diff: f64,
    pub t: f64,
    pub df: f64,
    pub p: f64,
    pub cohens_d: f64,
}

/// `None` when either side has fewer than two finite values (no variance to test against).
/// With zero variance on both sides the test is exact: p = 1 for equal means, 0 otherwise.
pub fn welch(a: &[f64], b: &[f64]) -> Option<Welch> {
    let (sa, sb) = (summarise(a), summarise(b));
    if sa.n < 2 || sb.n < 2 {
        return None;
    }
    let diff = sa.mean - sb.mean;
    let (va, vb) = (sa.sd.powi(2) / sa.n as f64, sb.sd.powi(2) / sb.n as f64);
    let se = (va + vb).sqrt();
    // Pooled standard deviation, each side weighted by its degrees of freedom.
    let (na, nb) = (sa.n as f64, sb.n as f64);
    let pooled =
        (((na - 1.0) * sa.sd.powi(2) + (nb - 1.0) * sb.sd.powi(2)) / (na + nb - 2.0)).sqrt();
    let cohens_d = if pooled > 0.0 {
        diff / pooled
    } else if diff == 0.0 {
        0.0
    } else {
        diff.signum() * f64::INFINITY
    };
    if se == 0.0 {
        let (t, p) = if diff == 0.0 {
            (0.0, 1.0)
        } else {
            (diff.signum() * f64::INFINITY, 0.0)
        };
        let df = (sa.n + sb.n - 2) as f64;
        return Some(Welch {
            diff,
            t,
            df,
            p,
            cohens_d,
        });
    }
    let t = diff / se;
    // Welch–Satterthwaite degrees of freedom.
    let df = (va + vb).powi(2) / (va.powi(2) / (sa.n - 1) as f64 + vb.powi(2) / (sb.n - 1) as f64);
    let p = match StudentsT::new(0.0, 1.0, df) {
        Ok(dist) => 2.0 * (1.0 - dist.cdf(t.abs())),
        Err(_) => f64::NAN,
    };
    Some(Welch {
        diff,
        t,
        df,
        p,
        cohens_d,
    })
}

/// Holm–Bonferroni adjusted p-values (same order as `p`): the family-wise error stays at α
/// when a claim is tested against several strategies at once.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_matches_the_t_table() {
        // n = 3: t(0.975, 2) = 4.303; sd of [1, 2, 3] is 1.
        let s = summarise(&[1.0, 2.0, 3.0]);
        assert!((s.mean - 2.0).abs() < 1e-12);
        assert!(
            (s.ci95 - 4.302_652_7 / 3f64.sqrt()).abs() < 1e-4,
            "{}",
            s.ci95
        );
        assert!(summarise(&[1.0]).ci95.is_nan());
        assert_eq!(summarise(&[f64::NAN, 2.0]).n, 1);
    }

    #[test]
    fn welch_matches_a_reference_value() {
        // scipy.stats.ttest_ind([1,2,3,4], [2,4,6,8,10], equal_var=False):
        // t = -2.251436, p = 0.069134, df = 5.520788.
        let w = welch(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 6.0, 8.0, 10.0]).expect("two sides");
        assert!((w.t + 2.251_436).abs() < 1e-5, "t {}", w.t);
        assert!((w.df - 5.520_788).abs() < 1e-5, "df {}", w.df);
        assert!((w.p - 0.069_134).abs() < 1e-5, "p {}", w.p);
        // Pooled sd √((3·5/3 + 4·10) / 7) = 2.5355: d = −3.5 / 2.5355.
        assert!((w.cohens_d + 1.380_4).abs() < 1e-4, "d {}", w.cohens_d);
    }

    #[test]
    fn holm_matches_statsmodels() {
        // statsmodels.stats.multitest.multipletests([0.01, 0.04, 0.03, 0.005], method="holm")
        // → [0.03, 0.06, 0.06, 0.02].
        let a = holm(&[0.01, 0.04, 0.03, 0.005]);
        for (x, want) in a.iter().zip([0.03, 0.06, 0.06, 0.02]) {
            assert!((x - want).abs() < 1e-12, "{a:?}");
        }
    }

    #[test]
    fn degenerate_sides() {
        assert!(welch(&[1.0], &[2.0, 3.0]).is_none());
        let same = welch(&[1.0, 1.0, 1.0], &[1.0, 1.0, 1.0]).expect("two sides");
        assert_eq!(same.p, 1.0);
        let apart = welch(&[1.0, 1.0], &[2.0, 2.0]).expect("two sides");
        assert_eq!(apart.p, 0.0);
    }
}
