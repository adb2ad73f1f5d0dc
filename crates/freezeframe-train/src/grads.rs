//! Gradient norms and global-norm clipping.
//!
//! Burn's `GradientClipping::Norm` clips each parameter tensor by its own norm; Open-Sora (like
//! PyTorch's `clip_grad_norm_`) clips by the norm of all gradients together, which preserves the
//! direction of the update. That is what this module does.
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;

struct SqNorms<'a> {
    grads: &'a GradientsParams,
    ids: Vec<ParamId>,
    sums: Vec<Tensor<1>>,
}

impl ModuleVisitor for SqNorms<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.ids.push(param.id);
            self.sums.push(g.powi_scalar(2).sum());
        }
    }
}

/// Squared L2 norm of each parameter's gradient, in module traversal order (parameters without
/// a gradient are absent). A fixed order matters: summing in hash-map order would change the
/// global norm in its last bit from run to run and break bit-exact resume.
pub fn squared_norms<M: Module>(module: &M, grads: &GradientsParams) -> Vec<(ParamId, f32)> {
    let mut v = SqNorms {
        grads,
        ids: Vec::new(),
        sums: Vec::new(),
    };
    module.visit(&mut v);
    if v.sums.is_empty() {
        return Vec::new();
    }
    // One read-back for all tensors instead of one per parameter.
    let all: Vec<f32> = Tensor::cat(v.sums, 0)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 after convert::<f32>()");
    v.ids.into_iter().zip(all).collect()
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f32,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads
                .register::<D>(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// Clips the global gradient norm to `max_norm` (0 = no clipping); returns the norm before and
/// each parameter's squared gradient norm (before clipping).
pub fn clip_global_norm<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f32,
) -> (f32, Vec<(ParamId, f32)>) {
    let sq = squared_norms(module, grads);
    let norm = sq.iter().map(|(_, s)| s).sum::<f32>().sqrt();
    if max_norm > 0.0 && norm > max_norm {
        module.visit(&mut Scale {
            grads,
            factor: max_norm / (norm + 1e-6),
        });
    }
    (norm, sq)
}
