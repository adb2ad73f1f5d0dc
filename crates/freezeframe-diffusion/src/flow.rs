//! The interpolation path, its velocity, and the training loss.
use burn::prelude::*;

/// `x_t = (1 − t)·x0 + t·ε`; `t` [B] broadcasts over the other dims of `x0` [B, ...].
pub fn interpolate<const D: usize>(x0: Tensor<D>, noise: Tensor<D>, t: Tensor<1>) -> Tensor<D> {
    let t = broadcast_batch::<D>(t);
    x0.clone() + (noise - x0) * t
}

/// The velocity the model learns: `ε − x0`.
pub fn velocity_target<const D: usize>(x0: Tensor<D>, noise: Tensor<D>) -> Tensor<D> {
    noise - x0
}

/// Mean squared error between predicted and target velocity, averaged over everything.
pub fn rf_loss<const D: usize>(pred: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
    (pred - target).powi_scalar(2).mean()
}

/// Mean squared error per batch element, [B].
pub fn rf_loss_per_sample<const D: usize>(pred: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
    let b = pred.dims()[0];
    (pred - target)
        .powi_scalar(2)
        .reshape([b as i32, -1])
        .mean_dim(1)
        .reshape([b])
}

/// [`rf_loss_per_sample`] read back to the host.
pub fn rf_loss_per_sample_f32<const D: usize>(pred: Tensor<D>, target: Tensor<D>) -> Vec<f32> {
    rf_loss_per_sample(pred, target)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 after convert::<f32>()")
}

/// [B] → [B, 1, 1, ...] of rank D.
fn broadcast_batch<const D: usize>(t: Tensor<1>) -> Tensor<D> {
    let b = t.dims()[0];
    let mut shape = [1usize; D];
    shape[0] = b;
    t.reshape(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_interpolation_and_velocity() {
        let dev = Device::flex();
        let x0 = Tensor::<2>::from_floats([[1.0, -2.0], [0.5, 4.0]], &dev);
        let eps = Tensor::<2>::from_floats([[3.0, 0.0], [-0.5, 2.0]], &dev);
        let t = Tensor::<1>::from_floats([0.25, 1.0], &dev);
        let xt = interpolate(x0.clone(), eps.clone(), t)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        // row 0: 0.75·x0 + 0.25·ε = [1.5, −1.5]; row 1 (t = 1): ε.
        assert_eq!(xt, vec![1.5, -1.5, -0.5, 2.0]);
        let v = velocity_target(x0, eps)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(v, vec![2.0, 2.0, -1.0, -2.0]);
        let l = rf_loss(
            Tensor::<2>::from_floats([[1.0, 3.0]], &dev),
            Tensor::from_floats([[0.0, 1.0]], &dev),
        );
        assert_eq!(l.into_scalar::<f32>(), 2.5);
    }
}
