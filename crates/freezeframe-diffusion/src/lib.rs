//! Rectified flow as in Open-Sora v1.2.
//!
//! Convention: `x_t = (1 − t)·x0 + t·ε` with t = 0 the data and t = 1 pure noise. The model
//! predicts the velocity `v = dx_t/dt = ε − x0`; sampling integrates from t = 1 down to t = 0
//! with `x_{t−Δ} = x_t − Δ·v`.
pub mod flow;
pub mod sampler;
pub mod timesteps;

pub use flow::{interpolate, rf_loss, rf_loss_per_sample, rf_loss_per_sample_f32, velocity_target};
pub use sampler::{cfg_combine, euler_sample, euler_step, sampling_times};
pub use timesteps::{LogitNormal, eval_timesteps, shift_timestep};
