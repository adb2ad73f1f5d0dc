//! PixArt's `T2IFinalLayer`: modulated norm with its own [2, D] table, then a linear to patches.
use super::linear::Linear;
use burn::module::Param;
use burn::prelude::*;
use freezeframe_kernels::modulated_norm;

#[derive(Module, Debug)]
pub struct FinalLayer {
    pub linear: Linear,
    /// [2, D]: shift and scale, added to the timestep embedding.
    pub scale_shift_table: Param<Tensor<2>>,
}

impl FinalLayer {
    pub fn new(hidden: usize, patch_out: usize, device: &Device) -> Self {
        Self {
            linear: Linear::new(hidden, patch_out, device),
            scale_shift_table: Param::from_tensor(Tensor::zeros([2, hidden], device)),
        }
    }

    /// `x` [B, N, D], `t` [B, D] (the `t_embedder` output) → [B, N, p·p·C].
    pub fn forward(&self, x: Tensor<3>, t: Tensor<2>) -> Tensor<3> {
        let [b, d] = t.dims();
        let ss = self.scale_shift_table.val().unsqueeze_dim::<3>(0) + t.reshape([b, 1, d]); // [B, 2, D]
        let shift = ss.clone().narrow(1, 0, 1); // [B, 1, D]
        let scale = ss.narrow(1, 1, 1); // [B, 1, D]
        self.linear.forward(modulated_norm(x, shift, scale))
    }
}
