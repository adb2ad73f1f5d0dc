//! Per-group diagnostics written to `metrics.jsonl`: gradient norm and update/weight ratio of
//! every group, the gradient norm frozen groups *would* receive (an extra backward with every
//! parameter unfrozen — the "gradient propagation" of Open-Sora #279 made visible), and the
//! process's peak memory per phase.
use std::collections::{BTreeMap, HashMap, HashSet};

use crate::metrics::GroupRow;
use burn::module::{Module, ParamId};
use burn::optim::GradientsParams;
use freezeframe_model::Stdit;

use crate::batch::{Batch, batch_loss};
use crate::grads::squared_norms;
use crate::plans::{BoundPlan, set_trainable};

/// Host copies of the values of the parameters in `ids` (row-major f32).
pub fn values_of<M: Module>(model: &M, ids: &HashSet<ParamId>) -> HashMap<ParamId, Vec<f32>> {
    crate::ema::snapshot(model, ids)
        .into_iter()
        .map(|(id, d)| {
            (
                id,
                d.convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("f32 after convert::<f32>()"),
            )
        })
        .collect()
}

fn index(bound: &BoundPlan) -> HashMap<ParamId, usize> {
    bound
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect()
}

/// √(Σ squared norms) per group, over the parameters present in `sq`; `None` for groups with
/// none present.
pub fn group_norms(bound: &BoundPlan, sq: &[(ParamId, f32)]) -> Vec<Option<f64>> {
    let idx = index(bound);
    let mut sums = vec![None::<f64>; bound.plan.groups.len()];
    for (id, s) in sq {
        if let Some(&i) = idx.get(id) {
            let g = bound.plan.params[i].group;
            *sums[g].get_or_insert(0.0) += *s as f64;
        }
    }
    sums.into_iter().map(|s| s.map(f64::sqrt)).collect()
}

/// ‖Δw‖ / ‖w‖ per group between two snapshots of the same parameters.
pub fn update_ratios(
    bound: &BoundPlan,
    before: &HashMap<ParamId, Vec<f32>>,
    after: &HashMap<ParamId, Vec<f32>>,
) -> Vec<Option<f64>> {
    let idx = index(bound);
    let n = bound.plan.groups.len();
    let (mut num, mut den) = (vec![0.0f64; n], vec![None::<f64>; n]);
    for (id, b) in before {
        let (Some(a), Some(&i)) = (after.get(id), idx.get(id)) else {
            continue;
        };
        let g = bound.plan.params[i].group;
        num[g] += b
            .iter()
            .zip(a)
            .map(|(x, y)| ((y - x) as f64).powi(2))
            .sum::<f64>();
        *den[g].get_or_insert(0.0) += b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>();
    }
    num.into_iter()
        .zip(den)
        .map(|(n, d)| d.map(|d| n.sqrt() / d.sqrt().max(1e-12)))
        .collect()
}

/// Gradient norms every group would receive on `batch` if nothing were frozen; the model is
/// not changed (the probe works on a copy whose every parameter requires gradients).
pub fn would_be_grad_norms(model: &Stdit, batch: Batch, bound: &BoundPlan) -> Vec<Option<f64>> {
    let all: HashSet<ParamId> = bound.ids.iter().copied().collect();
    let probe = set_trainable(model.clone(), &all);
    let grads = GradientsParams::from_grads(batch_loss(&probe, batch).backward(), &probe);
    group_norms(bound, &squared_norms(&probe, &grads))
}

/// Per-group rows from per-group columns (absent values omitted; groups without any left out).
pub fn by_group(
    bound: &BoundPlan,
    grad_norm: &[Option<f64>],
    update_ratio: &[Option<f64>],
    frozen_grad_norm: &[Option<f64>],
) -> BTreeMap<String, GroupRow> {
    let at = |col: &[Option<f64>], g: usize| col.get(g).copied().flatten();
    let mut out = BTreeMap::new();
    for (g, name) in bound.plan.groups.iter().enumerate() {
        let row = GroupRow {
            grad_norm: at(grad_norm, g),
            update_ratio: at(update_ratio, g),
            frozen_grad_norm: at(frozen_grad_norm, g),
        };
        if row != GroupRow::default() {
            out.insert(name.clone(), row);
        }
    }
    out
}

/// The process's peak resident memory in MiB since start or since the last [`reset_peak_rss`]
/// (Linux `VmHWM`); `None` elsewhere.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets the peak-memory mark (Linux ≥ 4.0: writing 5 to `clear_refs`); best effort.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
