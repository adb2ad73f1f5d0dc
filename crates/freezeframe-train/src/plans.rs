//! Applying a resolved training plan to a Burn model and optimiser: which parameters require
//! gradients, which have optimiser state, what learning rate and weight decay each one gets.
//! The model itself has no notion of freezing; everything here goes through parameter ids.
use std::collections::HashSet;

use burn::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::module::{Module, ModuleMapper, Param, ParamGroup, ParamId};
use burn::optim::{AdamWConfig, ModuleOptimizer};
use burn::prelude::*;
use freezeframe_model::paths::param_table;
use freezeframe_model::{LoraLayer, Stdit};
use freezeframe_plan::{ParamMeta, ResolvedPlan};

use crate::config::RunConfig;
use crate::error::TrainError;

/// A plan bound to one model: the plan's parameters in traversal order and their Burn ids.
#[derive(Debug, Clone)]
pub struct BoundPlan {
    pub plan: ResolvedPlan,
    pub ids: Vec<ParamId>,
}

/// The plan-facing description of a model's parameters.
pub fn param_metas<M: Module>(model: &M) -> (Vec<ParamMeta>, Vec<ParamId>) {
    param_table(model)
        .into_iter()
        .map(|p| {
            (
                ParamMeta {
                    path: p.path,
                    shape: p.shape,
                },
                p.id,
            )
        })
        .unzip()
}

/// Loads the run's plan (preset or file) and resolves it for `model`; checks that the plan's
/// `init` agrees with the run's `[init] from`.
pub fn bind(cfg: &RunConfig, model: &Stdit, depth: usize) -> Result<BoundPlan, TrainError> {
    let loaded = freezeframe_plan::load(&cfg.plan)?;
    bind_loaded(cfg, &loaded, model, depth)
}

pub fn bind_loaded(
    cfg: &RunConfig,
    loaded: &freezeframe_plan::LoadedPlan,
    model: &Stdit,
    depth: usize,
) -> Result<BoundPlan, TrainError> {
    let BoundPlan { plan, ids } = resolve_for(loaded, model, depth, cfg.train.steps)?;
    match (plan.spec.init, &cfg.init.from) {
        (freezeframe_plan::Init::Scratch, Some(from)) => Err(TrainError::Init(format!(
            "plan `{}` trains from scratch (init = \"scratch\") and refuses image weights; remove init.from = {:?}",
            plan.name, from
        ))),
        (freezeframe_plan::Init::Image, None) => Err(TrainError::Init(format!(
            "plan `{}` starts from image weights (init = \"image\"): set [init] from = \"runs/<image run>\" \
                 (a run trained with data.image_mode = true), or use plan = \"scratch\"",
            plan.name
        ))),
        _ => Ok(BoundPlan { plan, ids }),
    }
}

/// `model` with the LoRA adapters the plan asks for (`[[lora]]`; most plans ask for none),
/// their `A` factors drawn from `seed`: the model every run of the plan trains.
pub fn with_plan_adapters(
    model: Stdit,
    name: &str,
    spec: &freezeframe_plan::PlanSpec,
    seed: u64,
) -> Result<Stdit, TrainError> {
    if spec.lora.is_empty() || !model.lora_layers().is_empty() {
        return Ok(model);
    }
    let (metas, _) = param_metas(&model);
    let layers: Vec<LoraLayer> = freezeframe_plan::lora_targets(name, spec, &metas)?
        .into_iter()
        .map(|t| LoraLayer {
            layer: t.layer,
            rank: t.rank,
            alpha: t.alpha,
        })
        .collect();
    model
        .with_lora(&layers, seed)
        .map_err(|e| TrainError::Model(format!("{name}: {e}")))
}

/// A freshly initialised model for a run of this plan: [`crate::trainer::build_model`] with the
/// plan's adapters.
pub fn build_for_plan(
    mcfg: &freezeframe_model::StdiTConfig,
    loaded: &freezeframe_plan::LoadedPlan,
    seed: u64,
    device: &Device,
) -> Result<Stdit, TrainError> {
    let model = crate::trainer::build_model(mcfg, seed, device);
    with_plan_adapters(model, &loaded.name, &loaded.spec, seed)
}

/// Resolves a plan for `model` over `steps` steps, without looking at where weights come from.
/// A model without the plan's adapters is resolved as if it had them: the ids are then those of
/// the model [`build_for_plan`] makes (ids are traversal indices), not of `model` itself —
/// train only a model built with the plan's adapters.
pub fn resolve_for(
    loaded: &freezeframe_plan::LoadedPlan,
    model: &Stdit,
    depth: usize,
    steps: usize,
) -> Result<BoundPlan, TrainError> {
    let with = with_plan_adapters(model.clone(), &loaded.name, &loaded.spec, 0)?;
    let (metas, ids) = param_metas(&with);
    let plan = freezeframe_plan::resolve(&loaded.name, &loaded.spec, &metas, depth, steps)?;
    Ok(BoundPlan { plan, ids })
}

impl BoundPlan {
    fn ids_where(&self, pred: impl Fn(usize) -> bool) -> Vec<ParamId> {
        (0..self.ids.len())
            .filter(|&i| pred(i))
            .map(|i| self.ids[i])
            .collect()
    }

    /// Ids of the parameters that train in `phase`.
    pub fn trainable(&self, phase: usize) -> HashSet<ParamId> {
        let t = &self.plan.phases[phase].trains;
        self.ids_where(|i| t[i]).into_iter().collect()
    }

    /// Ids of parameters that have trained at some step up to `step`.
    pub fn trained_by(&self, step: usize) -> HashSet<ParamId> {
        let t = self.plan.trained_by(step);
        self.ids_where(|i| t[i]).into_iter().collect()
    }

    /// AdamW with the run's weight decay on the plan's decay set and none elsewhere.
    pub fn optimizer(&self, cfg: &RunConfig) -> ModuleOptimizer {
        let optim = adamw(cfg, cfg.train.weight_decay).init();
        let no_decay = self.ids_where(|i| !self.plan.params[i].decay);
        if no_decay.is_empty() || cfg.train.weight_decay == 0.0 {
            return optim;
        }
        optim.with_group(
            ParamGroup::from_ids(no_decay),
            adamw(cfg, 0.0).build(),
            None,
        )
    }

    /// Forgets the optimiser state of the given parameters (Burn's `with_group` drops the state
    /// of every parameter it matches), so that if they train again they start with fresh moments.
    pub fn drop_state(
        &self,
        mut optim: ModuleOptimizer,
        cfg: &RunConfig,
        ids: &HashSet<ParamId>,
    ) -> ModuleOptimizer {
        // The same two AdamW configurations `optimizer` uses, so stepping is unchanged.
        for (decay, wd) in [(true, cfg.train.weight_decay), (false, 0.0)] {
            let group = self
                .ids_where(|i| ids.contains(&self.ids[i]) && self.plan.params[i].decay == decay);
            if !group.is_empty() {
                optim = optim.with_group(ParamGroup::from_ids(group), adamw(cfg, wd).build(), None);
            }
        }
        optim
    }

    /// Per-parameter learning rates at `step` for a schedule value `lr`, as Burn's
    /// `ModuleLearningRate`: one group per factor other than 1. Frozen parameters (factor 0)
    /// are left in the base group; they have no gradients, so the optimiser never steps them.
    pub fn learning_rates(&self, step: usize, lr: f64) -> ModuleLearningRate {
        let mut by_factor: Vec<(f64, Vec<ParamId>)> = Vec::new();
        for i in 0..self.ids.len() {
            let f = self.plan.lr_factor(i, step);
            if f == 1.0 || f == 0.0 {
                continue;
            }
            match by_factor.iter_mut().find(|(g, _)| *g == f) {
                Some((_, v)) => v.push(self.ids[i]),
                None => by_factor.push((f, vec![self.ids[i]])),
            }
        }
        let mut sched = ModuleLrScheduler::new(lr);
        for (f, ids) in by_factor {
            sched = sched.with_group(ParamGroup::from_ids(ids), lr * f);
        }
        sched.step()
    }
}

fn adamw(cfg: &RunConfig, weight_decay: f32) -> AdamWConfig {
    let t = &cfg.train;
    AdamWConfig::new()
        .with_beta_1(t.betas[0])
        .with_beta_2(t.betas[1])
        .with_epsilon(1e-8)
        .with_weight_decay(weight_decay)
}

struct RequireGrad<'a>(&'a HashSet<ParamId>);

impl ModuleMapper for RequireGrad<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let want = self.0.contains(&param.id);
        param.set_require_grad(want)
    }
}

/// Marks exactly the parameters in `trainable` as requiring gradients: autodiff then neither
/// computes nor keeps weight gradients for the others.
pub fn set_trainable<M: Module>(model: M, trainable: &HashSet<ParamId>) -> M {
    model.map(&mut RequireGrad(trainable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::{GradientsParams, SgdConfig};
    use freezeframe_model::StdiTConfig;
    use freezeframe_model::paths::map_values;
    use freezeframe_plan::{PRESETS, explain, parse};

    fn tiny(device: &Device) -> (StdiTConfig, Stdit) {
        let c = StdiTConfig::tiny();
        let m = crate::trainer::build_model(&c, 1, device);
        (c, m)
    }

    #[test]
    fn every_preset_explains_on_the_tiny_model() {
        let (c, m) = tiny(&Device::flex());
        for (name, text) in PRESETS {
            let loaded = parse(name, text).unwrap();
            let b =
                resolve_for(&loaded, &m, c.depth, 100).unwrap_or_else(|e| panic!("{name}: {e}"));
            let table = explain(&b.plan, 1e-3);
            assert!(table.contains(&format!("plan {name}:")), "{table}");
            for ph in &b.plan.phases {
                assert!(
                    table.contains(&format!("{} [{}–{})", ph.name, ph.start, ph.end)),
                    "{name}: {table}"
                );
            }
            for g in &b.plan.groups {
                assert!(
                    table.lines().any(|l| l.starts_with(g.as_str())),
                    "{name}: group {g} missing\n{table}"
                );
            }
            let params = freezeframe_plan::phase_totals(&b.plan)[0].params;
            let expect = match name {
                "temporal-only" | "staged" => 8448,
                "freeze-text" => 63056 - 2 * (1024 + 32 + 2048 + 64 + 1024 + 32),
                "freeze-text-embedder" => {
                    63056 - 2 * (1024 + 32 + 2048 + 64 + 1024 + 32) - (512 + 32 + 1024 + 32 + 192)
                }
                // Rank 8 on width 32: A [d_in, 8] + B [8, d_out] per adapted layer, 2 blocks.
                "lora-temporal" => 2 * ((256 + 768) + (256 + 256)),
                "lora-all" => 2 * (1024 + 512 + 1024 + 512 + 512 + 768 + 512 + 1280 + 1280),
                _ => 63056,
            };
            assert_eq!(params, expect, "{name}: trainable parameters of phase 0");
        }
    }

    /// With plain SGD an update is exactly −lr · factor · gradient, so the plan's multipliers
    /// and layer decay can be read back from the weights.
    #[test]
    fn multipliers_and_layer_decay_scale_sgd_updates() {
        let dev = Device::flex().autodiff();
        let (c, m) = tiny(&dev);
        let text = "init = \"scratch\"\nallow_untrained = [\"blocks.*.cross_attn.**\"]\n[groups]\ntemporal = [\"blocks.*.attn_temp.**\"]\ntext = [\"blocks.*.cross_attn.**\"]\n[lr]\nlayer_decay = 0.5\nmultipliers = { temporal = 4.0, text = 0.0 }\n[[phase]]\ntrain = [\"all\"]\n";
        let loaded = parse("t", text).unwrap();
        let b = resolve_for(&loaded, &m, c.depth, 10).unwrap();
        // A model whose output depends on every parameter: non-zero init everywhere.
        // Open-Sora zero-initialises several output projections, which would leave the layers
        // before them without gradient: give every parameter non-zero values.
        let m = map_values(m, |_, _, read| {
            Some(
                read()
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v + 0.05 * ((i % 7) as f32 - 3.0))
                    .collect(),
            )
        });
        let m = set_trainable(m, &b.trainable(0));
        let x = Tensor::<5>::random(
            [1, c.frames, c.channels, c.height, c.width],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &dev,
        );
        let t = Tensor::<1>::from_floats([0.5], &dev);
        let cap = freezeframe_model::CaptionBatch {
            tokens: Tensor::<3>::random(
                [1, c.text_len, c.text_dim],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &dev,
            ),
            pad: Tensor::<2, Bool>::full([1, c.text_len], false, &dev),
            null: Tensor::<1, Bool>::full([1], false, &dev),
        };
        let loss = m.forward(x, t, &cap).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        let lr = 1.0;
        let table = param_table(&m);
        // A frozen parameter (multiplier 0) gets no gradient at all.
        let g_of = |path: &str| -> Option<Vec<f32>> {
            let id = table.iter().find(|p| p.path == path).unwrap().id;
            grads
                .get::<2>(id)
                .map(|g| g.into_data().try_into_vec::<f32>().unwrap())
                .or_else(|| {
                    grads
                        .get::<1>(id)
                        .map(|g| g.into_data().try_into_vec::<f32>().unwrap())
                })
        };
        let cases = [
            ("blocks.1.attn.qkv.weight", 0.5),       // 0.5^(2−1)
            ("blocks.0.attn.qkv.weight", 0.25),      // 0.5^(2−0)
            ("blocks.0.attn_temp.proj.weight", 1.0), // 4 · 0.25
            ("x_embedder.proj.weight", 0.125),       // embedders 0.5^(depth+1)
            ("final_layer.linear.weight", 1.0),
            ("blocks.1.cross_attn.q_linear.weight", 0.0), // multiplier 0 = frozen
        ];
        let grads_of: Vec<Option<Vec<f32>>> = cases.iter().map(|(p, _)| g_of(p)).collect();
        let before: HashMap<String, Vec<f32>> = value_map(&m);
        let mut sgd = SgdConfig::new().init();
        let m = sgd.step(b.learning_rates(0, lr), m, grads);
        let after = value_map(&m);
        for ((path, factor), g) in cases.iter().zip(grads_of) {
            let (w0, w1) = (&before[*path], &after[*path]);
            if *factor == 0.0 {
                assert_eq!(w0, w1, "{path}: multiplier 0");
                continue;
            }
            let g = g.unwrap_or_else(|| panic!("{path} got no gradient"));
            // The factor the update was applied with, by least squares: Δw = −lr·f·g.
            let (mut dg, mut gg) = (0.0f64, 0.0f64);
            for ((a, b2), gi) in w0.iter().zip(w1).zip(&g) {
                dg += ((b2 - a) as f64) * (*gi as f64);
                gg += (*gi as f64).powi(2);
            }
            assert!(
                gg > 1e-8,
                "{path}: needs a gradient for the check (|g|² = {gg})"
            );
            let seen = -dg / (lr * gg);
            assert!(
                (seen - factor).abs() < 1e-3 * factor,
                "{path}: update used factor {seen}, plan says {factor}"
            );
        }
    }

    fn value_map<M: Module>(m: &M) -> HashMap<String, Vec<f32>> {
        let mut out = HashMap::new();
        map_values(m.clone(), |p, _, r| {
            out.insert(p.to_string(), r());
            None
        });
        out
    }

    use std::collections::HashMap;
}
