//! Exponential moving average of the weights, kept on the plain (non-autodiff) device.
use std::collections::{HashMap, HashSet};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use burn::tensor::TensorData;

struct Snapshot<'a> {
    only: &'a HashSet<ParamId>,
    out: HashMap<ParamId, TensorData>,
}

impl ModuleVisitor for Snapshot<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.only.contains(&param.id) {
            self.out.insert(param.id, param.val().into_data());
        }
    }
}

struct Blend {
    src: HashMap<ParamId, TensorData>,
    decay: f32,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.src.remove(&param.id) {
            Some(data) => {
                let d = self.decay;
                param.map(|e| {
                    let dev = e.device();
                    e.mul_scalar(d) + Tensor::<D>::from_data(data, &dev).mul_scalar(1.0 - d)
                })
            }
            None => param,
        }
    }
}

/// Host copies of the parameters in `only`, by id.
pub fn snapshot<M: Module>(model: &M, only: &HashSet<ParamId>) -> HashMap<ParamId, TensorData> {
    let mut snap = Snapshot {
        only,
        out: HashMap::new(),
    };
    model.visit(&mut snap);
    snap.out
}

/// `ema ← decay·ema + (1 − decay)·model` for the parameters in `only` (those that have trained:
/// the others still equal their starting values in both models), matched by id.
pub fn update<M: Module, N: Module>(ema: N, model: &M, decay: f32, only: &HashSet<ParamId>) -> N {
    ema.map(&mut Blend {
        src: snapshot(model, only),
        decay,
    })
}
