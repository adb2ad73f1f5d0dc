//! Training-time and evaluation-time timesteps.
use rand::Rng;
use rand_distr::StandardNormal;

/// Logit-normal timestep distribution: t = sigmoid(mean + std·z), z ~ N(0, 1)
/// (Open-Sora v1.2 / SD3 use mean 0, std 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogitNormal {
    pub mean: f64,
    pub std: f64,
}

impl Default for LogitNormal {
    fn default() -> Self {
        Self {
            mean: 0.0,
            std: 1.0,
        }
    }
}

impl LogitNormal {
    /// The deterministic map from a standard-normal draw to t.
    pub fn from_normal(&self, z: f64) -> f64 {
        1.0 / (1.0 + (-(self.mean + self.std * z)).exp())
    }

    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| self.from_normal(rng.sample::<f64, _>(StandardNormal)) as f32)
            .collect()
    }
}

/// Shifts t toward noise by factor `s` (SD3, Open-Sora v1.2): t' = s·t / (1 + (s − 1)·t).
/// s = 1 is the identity; s > 1 spends more training on the high-noise steps where a sample's
/// layout — and a video's motion — is decided. In logit space it adds ln s.
pub fn shift_timestep(t: f64, s: f64) -> f64 {
    s * t / (1.0 + (s - 1.0) * t)
}

/// `n` evenly spaced timesteps strictly inside (0, 1): t_i = (i + 1)/(n + 1). Open-Sora's
/// evaluation loss uses 10 evenly spaced timesteps; the endpoints are excluded because at t = 0
/// and t = 1 one of the two inputs is invisible.
pub fn eval_timesteps(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i + 1) as f32 / (n + 1) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn golden_logit_normal_values() {
        let d = LogitNormal::default();
        assert_eq!(d.from_normal(0.0), 0.5);
        assert!((d.from_normal(1.0) - 0.731_058_578_6).abs() < 1e-9);
        assert!((d.from_normal(-2.0) - 0.119_202_922_0).abs() < 1e-9);
        let shifted = LogitNormal {
            mean: 1.0,
            std: 0.5,
        };
        assert!((shifted.from_normal(2.0) - 0.880_797_077_9).abs() < 1e-9);
    }

    #[test]
    fn samples_lie_in_the_open_interval_with_median_one_half() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut t = LogitNormal::default().sample(&mut rng, 20_000);
        assert!(t.iter().all(|&x| x > 0.0 && x < 1.0));
        t.sort_by(f32::total_cmp);
        assert!((t[10_000] - 0.5).abs() < 0.02, "median {}", t[10_000]);
    }

    #[test]
    fn golden_timestep_shift() {
        assert_eq!(shift_timestep(0.5, 1.0), 0.5);
        assert!((shift_timestep(0.5, 3.0) - 0.75).abs() < 1e-12);
        assert!((shift_timestep(0.2, 3.0) - 0.428_571_428_571).abs() < 1e-9);
        assert_eq!(
            (shift_timestep(0.0, 3.0), shift_timestep(1.0, 3.0)),
            (0.0, 1.0)
        );
        // The same as adding ln s to the logit-normal mean.
        let d = LogitNormal::default();
        let m = LogitNormal {
            mean: 3f64.ln(),
            std: 1.0,
        };
        assert!((shift_timestep(d.from_normal(0.7), 3.0) - m.from_normal(0.7)).abs() < 1e-12);
    }

    #[test]
    fn golden_eval_timesteps() {
        assert_eq!(eval_timesteps(3), vec![0.25, 0.5, 0.75]);
        let t = eval_timesteps(10);
        assert_eq!(t.len(), 10);
        assert!((t[0] - 1.0 / 11.0).abs() < 1e-7 && (t[9] - 10.0 / 11.0).abs() < 1e-7);
    }
}
