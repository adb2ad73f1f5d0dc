//! Seeded test tensors and a tolerance check shared by the kernel tests.
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Uniform values in [-1, 1), reproducible from `seed`.
pub fn random<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// Max |a - b| ≤ tol · max(1, max |b|).
pub fn assert_close<const D: usize>(a: &Tensor<D>, b: &Tensor<D>, tol: f32) {
    assert_eq!(a.dims(), b.dims());
    let a = a.clone().into_data().try_to_vec::<f32>().expect("f32");
    let b = b.clone().into_data().try_to_vec::<f32>().expect("f32");
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= tol * scale,
        "max difference {worst:e} > {tol:e} × {scale}"
    );
}
