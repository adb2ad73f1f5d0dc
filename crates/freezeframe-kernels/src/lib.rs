//! Fused CPU kernels for the STDiT hot spots, each with a hand-written backward pass.
//!
//! On Burn's flex backend (plain or under autodiff) the ops below run as single passes over f32
//! buffers; on any other backend they fall back to Burn's composed ops, so model code calls them
//! unconditionally. Every backward is checked against Burn's own autodiff in the tests.

pub mod attention;
pub mod cross_attention;
pub mod gelu;
mod gemm;
pub mod linear;
mod math;
pub mod modnorm;
mod route;
#[cfg(test)]
mod testing;

pub use attention::self_attention;
pub use cross_attention::cross_attention;
pub use gelu::gelu;
pub use linear::{linear, linear_tensors};
pub use modnorm::modulated_norm;
