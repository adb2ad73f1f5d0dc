//! Per-frame quality and a set-level Fréchet distance over features that need no network
//! ("FVD-lite").
//!
//! Features per video (37): 8-bin histograms of R, G and B over all frames (24); an 8-bin
//! gradient-orientation histogram of the luma, weighted by gradient magnitude (8); mean gradient
//! magnitude; sharpness (variance of the Laplacian); mean frame difference; motion score (top-5%
//! flow) and mean flow magnitude. Colour histograms see palette and background, gradients see
//! edges and blur, the motion terms see dynamics, which I3D-based FVD is known to under-weight.
//! Each feature is compared in its own units; the distance is only meaningful between sets
//! scored the same way.
use freezeframe_data::Video;
use nalgebra::{DMatrix, DVector, SymmetricEigen};

use crate::gray::{Gray, lumas};
use crate::motion::VideoMotion;

pub const FEATURES: usize = 37;

/// Variance of the 4-neighbour Laplacian of the luma, averaged over frames.
pub fn sharpness(v: &Video) -> f32 {
    sharpness_of(&lumas(v))
}

/// [`sharpness`] from the frames' lumas.
pub fn sharpness_of(frames: &[Gray]) -> f32 {
    frames.iter().map(laplacian_variance).sum::<f32>() / frames.len().max(1) as f32
}

fn laplacian_variance(g: &Gray) -> f32 {
    let mut vals = Vec::with_capacity(g.w * g.h);
    for y in 1..g.h.saturating_sub(1) {
        for x in 1..g.w.saturating_sub(1) {
            vals.push(
                g.at(x - 1, y) + g.at(x + 1, y) + g.at(x, y - 1) + g.at(x, y + 1)
                    - 4.0 * g.at(x, y),
            );
        }
    }
    if vals.is_empty() {
        return 0.0;
    }
    let m = vals.iter().sum::<f32>() / vals.len() as f32;
    vals.iter().map(|v| (v - m).powi(2)).sum::<f32>() / vals.len() as f32
}

/// The feature vector of one video, from its lumas and the scores already measured on it.
pub fn features(
    v: &Video,
    frames: &[Gray],
    motion: &VideoMotion,
    sharpness: f32,
    frame_difference: f32,
) -> Vec<f64> {
    let mut f = vec![0.0f64; FEATURES];
    let n = (v.frames * v.height * v.width) as f64;
    for t in 0..v.frames {
        for c in 0..3 {
            let ch = c.min(v.channels - 1);
            for y in 0..v.height {
                for x in 0..v.width {
                    let b = ((v.get(t, ch, y, x).clamp(0.0, 1.0) * 8.0) as usize).min(7);
                    f[c * 8 + b] += 1.0 / n;
                }
            }
        }
    }
    let (mut mag_sum, mut count) = (0.0f64, 0usize);
    for g in frames {
        let (gx, gy) = g.gradients();
        for (x, y) in gx.data.iter().zip(&gy.data) {
            let m = ((x * x + y * y) as f64).sqrt();
            let a = (*y as f64).atan2(*x as f64) + std::f64::consts::PI;
            let b = ((a / (2.0 * std::f64::consts::PI) * 8.0) as usize).min(7);
            f[24 + b] += m;
            mag_sum += m;
            count += 1;
        }
    }
    if mag_sum > 0.0 {
        for v in &mut f[24..32] {
            *v /= mag_sum;
        }
    }
    f[32] = mag_sum / count.max(1) as f64;
    f[33] = sharpness as f64;
    f[34] = frame_difference as f64;
    f[35] = motion.score as f64;
    f[36] = motion.mean_flow as f64;
    f
}

fn mean_cov(x: &[Vec<f64>]) -> (DVector<f64>, DMatrix<f64>) {
    let d = x.first().map_or(0, Vec::len);
    let n = x.len() as f64;
    let mut mu = DVector::zeros(d);
    for v in x {
        mu += DVector::from_column_slice(v);
    }
    mu /= n.max(1.0);
    let mut cov = DMatrix::zeros(d, d);
    for v in x {
        let c = DVector::from_column_slice(v) - &mu;
        cov += &c * c.transpose();
    }
    cov /= (n - 1.0).max(1.0);
    (mu, cov)
}

/// Symmetric positive semi-definite square root via eigen-decomposition (negative rounding
/// residue clamped to 0).
fn sqrtm_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let e = SymmetricEigen::new(m.clone());
    let s = DMatrix::from_diagonal(&e.eigenvalues.map(|l| l.max(0.0).sqrt()));
    &e.eigenvectors * s * e.eigenvectors.transpose()
}

/// Fréchet distance between Gaussians fitted to two feature sets:
/// ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½). Covariances get 1e-6·I so that small sets
/// (fewer videos than features) stay well defined.
pub fn frechet(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let (m1, mut s1) = mean_cov(a);
    let (m2, mut s2) = mean_cov(b);
    let d = s1.nrows();
    s1 += DMatrix::identity(d, d) * 1e-6;
    s2 += DMatrix::identity(d, d) * 1e-6;
    let r1 = sqrtm_psd(&s1);
    let mid = &r1 * &s2 * &r1;
    let mid = (&mid + mid.transpose()) * 0.5;
    let cross = sqrtm_psd(&mid).trace();
    let diff = m1 - m2;
    (diff.dot(&diff) + s1.trace() + s2.trace() - 2.0 * cross).max(0.0)
}

/// A Gaussian blur of every frame and channel (σ ≈ 1 px), for tests and sanity checks.
pub fn blurred(v: &Video) -> Video {
    let mut out = v.clone();
    for t in 0..v.frames {
        for c in 0..v.channels {
            let mut g = Gray::new(v.width, v.height);
            for y in 0..v.height {
                for x in 0..v.width {
                    g.data[y * v.width + x] = v.get(t, c, y, x);
                }
            }
            let b = g.blur();
            for y in 0..v.height {
                for x in 0..v.width {
                    let i = out.idx(t, c, y, x);
                    out.data[i] = b.at(x, y);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frechet_of_a_set_with_itself_is_zero_and_grows_with_a_mean_shift() {
        let a: Vec<Vec<f64>> = (0..50)
            .map(|i| vec![(i as f64).sin(), (i as f64 * 0.7).cos(), i as f64 * 0.01])
            .collect();
        assert!(frechet(&a, &a) < 1e-6);
        let b: Vec<Vec<f64>> = a.iter().map(|v| vec![v[0] + 1.0, v[1], v[2]]).collect();
        assert!((frechet(&a, &b) - 1.0).abs() < 1e-4, "{}", frechet(&a, &b));
    }

    #[test]
    fn blur_lowers_sharpness() {
        let w = freezeframe_data::World::new(freezeframe_data::WorldConfig::default()).unwrap();
        let v = w.clip(freezeframe_data::Split::Val, 0).video;
        assert!(sharpness(&blurred(&v)) < 0.5 * sharpness(&v));
    }
}
