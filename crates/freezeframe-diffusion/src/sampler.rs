//! Euler integration of the learned velocity field, with classifier-free guidance.
use burn::prelude::*;

/// The N + 1 times of an N-step sampler, from 1 (noise) down to 0 (data), evenly spaced.
pub fn sampling_times(steps: usize) -> Vec<f32> {
    (0..=steps).map(|i| 1.0 - i as f32 / steps as f32).collect()
}

/// One Euler step from t to t − dt: `x − dt·v`.
pub fn euler_step<const D: usize>(x: Tensor<D>, v: Tensor<D>, dt: f32) -> Tensor<D> {
    x - v.mul_scalar(dt)
}

/// `v_uncond + scale·(v_cond − v_uncond)`; scale 1 is plain conditional sampling.
pub fn cfg_combine<const D: usize>(cond: Tensor<D>, uncond: Tensor<D>, scale: f32) -> Tensor<D> {
    uncond.clone() + (cond - uncond).mul_scalar(scale)
}

/// Integrates from `noise` (t = 1) to t = 0 in `steps` Euler steps. `velocity(x, t)` returns the
/// (already guided) velocity at time t; `on_step` is called after each step (progress bars).
pub fn euler_sample<const D: usize>(
    noise: Tensor<D>,
    steps: usize,
    mut velocity: impl FnMut(&Tensor<D>, f32) -> Tensor<D>,
    mut on_step: impl FnMut(usize),
) -> Tensor<D> {
    let times = sampling_times(steps);
    let mut x = noise;
    for (i, w) in times.windows(2).enumerate() {
        let v = velocity(&x, w[0]);
        x = euler_step(x, v, w[0] - w[1]);
        on_step(i + 1);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_euler_step_and_cfg() {
        let dev = Device::flex();
        let x = Tensor::<1>::from_floats([1.0, 2.0], &dev);
        let v = Tensor::<1>::from_floats([0.5, -1.0], &dev);
        let y = euler_step(x, v, 0.25)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(y, vec![0.875, 2.25]);
        let c = Tensor::<1>::from_floats([1.0, 0.0], &dev);
        let u = Tensor::<1>::from_floats([0.0, 1.0], &dev);
        let g = cfg_combine(c, u, 4.0)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(g, vec![4.0, -3.0]);
        assert_eq!(sampling_times(4), vec![1.0, 0.75, 0.5, 0.25, 0.0]);
    }

    #[test]
    fn exact_velocity_recovers_the_data_point() {
        // For a single data point x0 the true velocity at x_t is (x_t − x0)/t; Euler on a
        // straight path is exact, so any step count lands on x0.
        let dev = Device::flex();
        let x0 = Tensor::<1>::from_floats([0.3, -0.7, 1.2], &dev);
        let noise = Tensor::<1>::from_floats([1.0, 0.5, -2.0], &dev);
        let out = euler_sample(
            noise,
            7,
            |x, t| (x.clone() - x0.clone()).div_scalar(t),
            |_| {},
        );
        let diff = (out - x0).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "{diff}");
    }
}
