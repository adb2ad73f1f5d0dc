//! A plan resolved against one model's parameters and one run length: for every parameter its
//! reporting group, learning-rate scale and weight-decay flag; for every phase its step range and
//! which parameters train. All plan validation happens here, before any training.
use std::collections::BTreeMap;

use crate::error::PlanError;
use crate::selector;
use crate::spec::{GroupSpec, Init, PlanSpec, StepSpec};

/// What the plan needs to know of a parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamMeta {
    /// Open-Sora path, e.g. `blocks.3.attn_temp.proj.weight`.
    pub path: String,
    pub shape: Vec<usize>,
}

/// The implicit group of parameters no named group selects.
pub const REST: &str = "rest";
/// In a phase's `train` list: every parameter.
pub const ALL: &str = "all";

#[derive(Debug, Clone, PartialEq)]
pub struct ParamPlan {
    pub path: String,
    pub shape: Vec<usize>,
    /// Index into [`ResolvedPlan::groups`].
    pub group: usize,
    /// Group multiplier × layer-decay factor.
    pub lr_scale: f64,
    pub decay: bool,
    /// Starts from its initialisation rather than from loaded weights (LoRA adapters always).
    pub fresh: bool,
    /// The weight or bias of a layer with a LoRA adapter: frozen for the whole run.
    pub lora_base: bool,
}

impl ParamPlan {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    /// Steps `start..end` (0-based step indices).
    pub start: usize,
    pub end: usize,
    /// Per parameter, in the order of [`ResolvedPlan::params`].
    pub trains: Vec<bool>,
    /// Warm-up length for parameters that did not train in the previous phase.
    pub rewarm: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPlan {
    /// Preset name or file path.
    pub name: String,
    pub spec: PlanSpec,
    pub total_steps: usize,
    pub depth: usize,
    pub groups: Vec<String>,
    pub params: Vec<ParamPlan>,
    pub phases: Vec<Phase>,
}

impl ResolvedPlan {
    /// Index of the phase that step `step` (0-based) belongs to.
    pub fn phase_at(&self, step: usize) -> usize {
        self.phases
            .iter()
            .position(|p| step < p.end)
            .unwrap_or(self.phases.len().saturating_sub(1))
    }

    /// True when `step` is the first step of a phase other than the first.
    pub fn is_switch(&self, step: usize) -> bool {
        step > 0 && self.phase_at(step) != self.phase_at(step - 1)
    }

    /// Parameter `i` trains in phase `k` but did not in phase `k − 1` (never in phase 0, whose
    /// parameters the run's own warm-up covers).
    pub fn newly_unfrozen(&self, k: usize, i: usize) -> bool {
        k > 0 && self.phases[k].trains[i] && !self.phases[k - 1].trains[i]
    }

    /// Learning-rate factor of parameter `i` at `step`: 0 when frozen, otherwise its scale times
    /// the phase's re-warm ramp (which, like the run's warm-up, gives its first step 1/rewarm).
    pub fn lr_factor(&self, i: usize, step: usize) -> f64 {
        let k = self.phase_at(step);
        let ph = &self.phases[k];
        if !ph.trains[i] {
            return 0.0;
        }
        let ramp = if ph.rewarm > 0 && self.newly_unfrozen(k, i) {
            ((step - ph.start + 1) as f64 / ph.rewarm as f64).min(1.0)
        } else {
            1.0
        };
        self.params[i].lr_scale * ramp
    }

    /// Parameters that train at some step up to and including `step`.
    pub fn trained_by(&self, step: usize) -> Vec<bool> {
        let last = self.phase_at(step);
        (0..self.params.len())
            .map(|i| self.phases[..=last].iter().any(|p| p.trains[i]))
            .collect()
    }
}

pub(crate) struct Ctx<'a> {
    pub(crate) source: &'a str,
    pub(crate) paths: Vec<&'a str>,
}

impl Ctx<'_> {
    pub(crate) fn invalid(
        &self,
        key: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> PlanError {
        PlanError::Invalid {
            source_name: self.source.to_string(),
            key: key.into(),
            value: value.into(),
            message: message.into(),
        }
    }

    /// Parameters a glob list selects; a glob that selects nothing is an error with suggestions.
    pub(crate) fn select(
        &self,
        key: &str,
        globs: &[String],
        groups: &BTreeMap<String, Vec<bool>>,
    ) -> Result<Vec<bool>, PlanError> {
        let mut out = vec![false; self.paths.len()];
        for g in globs {
            let hit: Vec<bool> = if let Some(name) = g.strip_prefix('@') {
                groups.get(name).cloned().ok_or_else(|| {
                    self.invalid(
                        key,
                        format!("\"{g}\""),
                        format!(
                            "no group `{name}` is defined before this one (defined: {})",
                            names(groups.keys())
                        ),
                    )
                })?
            } else {
                selector::check(g).map_err(|m| self.invalid(key, format!("\"{g}\""), m))?;
                self.paths.iter().map(|p| selector::matches(g, p)).collect()
            };
            if !hit.iter().any(|&h| h) {
                let near = selector::closest(g, self.paths.iter().copied(), 4);
                return Err(self.invalid(
                    key,
                    format!("\"{g}\""),
                    format!("matches no parameter; closest: {}", near.join(", ")),
                ));
            }
            for (o, h) in out.iter_mut().zip(hit) {
                *o |= h;
            }
        }
        Ok(out)
    }
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Resolves and validates `spec` for a model with these parameters (in the model's traversal
/// order) and `depth` blocks, over a run of `total_steps` steps.
pub fn resolve(
    name: &str,
    spec: &PlanSpec,
    params: &[ParamMeta],
    depth: usize,
    total_steps: usize,
) -> Result<ResolvedPlan, PlanError> {
    let ctx = Ctx {
        source: name,
        paths: params.iter().map(|p| p.path.as_str()).collect(),
    };
    let lora_base = crate::lora::check_model(&ctx, spec, params)?;
    let sets = resolve_groups(&ctx, spec)?;
    let grouping = assign_groups(&ctx, spec, params, &sets)?;
    let params = resolve_params(&ctx, spec, params, depth, &sets, &grouping, &lora_base)?;
    let phases = resolve_phases(&ctx, spec, total_steps, &sets, &grouping, &params)?;
    check_untrained(&ctx, spec, &sets, &params, &phases)?;
    Ok(ResolvedPlan {
        name: name.to_string(),
        spec: spec.clone(),
        total_steps,
        depth,
        groups: grouping.names,
        params,
        phases,
    })
}

/// Named groups as membership masks (alphabetical, as the TOML table is read); `@name` may
/// refer to any other group, so groups resolve in dependency order.
fn resolve_groups(ctx: &Ctx, spec: &PlanSpec) -> Result<BTreeMap<String, Vec<bool>>, PlanError> {
    let mut sets: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    if let Some(g) = spec.groups.keys().find(|g| *g == REST || *g == ALL) {
        return Err(ctx.invalid(format!("groups.{g}"), "…", format!("`{g}` is reserved")));
    }
    let mut pending: Vec<(&String, &GroupSpec)> = spec.groups.iter().collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut still = Vec::new();
        for (g, gs) in pending {
            let selectors: Vec<&String> = match gs {
                GroupSpec::Union(v) => v.iter().collect(),
                GroupSpec::Except(e) => e.select.iter().chain(&e.except).collect(),
            };
            let waits = selectors
                .iter()
                .filter_map(|s| s.strip_prefix('@'))
                .any(|r| !sets.contains_key(r) && spec.groups.contains_key(r));
            if waits {
                still.push((g, gs));
                continue;
            }
            let key = format!("groups.{g}");
            let set = match gs {
                GroupSpec::Union(v) => ctx.select(&key, v, &sets)?,
                GroupSpec::Except(e) => {
                    let inc = ctx.select(&format!("{key}.select"), &e.select, &sets)?;
                    let exc = ctx.select(&format!("{key}.except"), &e.except, &sets)?;
                    inc.iter().zip(&exc).map(|(&a, &b)| a && !b).collect()
                }
            };
            if !set.iter().any(|&b| b) {
                return Err(ctx.invalid(&key, "…", "selects no parameter"));
            }
            sets.insert(g.clone(), set);
        }
        if still.len() == before {
            let cyc: Vec<&str> = still.iter().map(|(g, _)| g.as_str()).collect();
            return Err(ctx.invalid(
                "groups",
                cyc.join(", "),
                "these groups refer to each other in a cycle",
            ));
        }
        pending = still;
    }
    Ok(sets)
}

/// Every parameter's reporting group: the one named group that selects it, the first in
/// `precedence` where several do, or the implicit `rest`.
struct Grouping {
    /// The named groups, then `rest` when some parameter is in none.
    names: Vec<String>,
    /// Per parameter, an index into `names`.
    of: Vec<usize>,
    has_rest: bool,
}

impl Grouping {
    /// Members of a group named in a phase (`all`, `rest` or a named group).
    fn members(&self, name: &str, sets: &BTreeMap<String, Vec<bool>>) -> Option<Vec<bool>> {
        match name {
            ALL => Some(vec![true; self.of.len()]),
            REST => self.has_rest.then(|| {
                let rest = self.names.len() - 1;
                self.of.iter().map(|&g| g == rest).collect()
            }),
            _ => sets.get(name).cloned(),
        }
    }
}

fn assign_groups(
    ctx: &Ctx,
    spec: &PlanSpec,
    params: &[ParamMeta],
    sets: &BTreeMap<String, Vec<bool>>,
) -> Result<Grouping, PlanError> {
    for (i, p) in spec.precedence.iter().enumerate() {
        if !sets.contains_key(p) {
            return Err(ctx.invalid(
                format!("precedence[{i}]"),
                format!("\"{p}\""),
                format!("no such group (defined: {})", names(sets.keys())),
            ));
        }
    }
    let rank = |g: &str| spec.precedence.iter().position(|p| p == g);
    let mut names: Vec<String> = sets.keys().cloned().collect();
    let rest = names.len();
    let mut of = Vec::with_capacity(params.len());
    for (pi, p) in params.iter().enumerate() {
        let hits: Vec<usize> = (0..rest).filter(|&g| sets[&names[g]][pi]).collect();
        let group = match hits.as_slice() {
            [] => rest,
            [g] => *g,
            many => {
                let ranked: Option<Vec<(usize, usize)>> =
                    many.iter().map(|&g| Some((rank(&names[g])?, g))).collect();
                match ranked.and_then(|r| r.into_iter().min()) {
                    Some((_, winner)) => winner,
                    None => {
                        let list: Vec<&str> = many.iter().map(|&g| names[g].as_str()).collect();
                        return Err(ctx.invalid(
                            "precedence",
                            format!("{:?}", spec.precedence),
                            format!(
                                "`{}` is in groups {}; list them in `precedence` to say which one wins",
                                p.path,
                                list.join(" and ")
                            ),
                        ));
                    }
                }
            }
        };
        of.push(group);
    }
    let has_rest = of.contains(&rest);
    if has_rest {
        names.push(REST.into());
    }
    Ok(Grouping {
        names,
        of,
        has_rest,
    })
}

/// Layer index in BEiT's numbering: embedders 0, `blocks.i` i+1, final layer depth+1.
fn layer_of(path: &str, depth: usize) -> usize {
    let mut segs = path.split('.');
    match segs.next() {
        Some("blocks") => segs
            .next()
            .and_then(|i| i.parse::<usize>().ok())
            .map_or(0, |i| i + 1),
        Some("final_layer") => depth + 1,
        _ => 0,
    }
}

/// Learning-rate scale, weight decay and initialisation of every parameter.
fn resolve_params(
    ctx: &Ctx,
    spec: &PlanSpec,
    params: &[ParamMeta],
    depth: usize,
    sets: &BTreeMap<String, Vec<bool>>,
    grouping: &Grouping,
    lora_base: &[bool],
) -> Result<Vec<ParamPlan>, PlanError> {
    for (g, &m) in &spec.lr.multipliers {
        if !(m.is_finite() && m >= 0.0) {
            return Err(ctx.invalid(
                format!("lr.multipliers.{g}"),
                m.to_string(),
                "must be a finite number ≥ 0",
            ));
        }
        if g != REST && !sets.contains_key(g) {
            return Err(ctx.invalid(
                format!("lr.multipliers.{g}"),
                m.to_string(),
                format!("no such group (defined: {})", names(sets.keys())),
            ));
        }
    }
    let d = spec.lr.layer_decay;
    if !(d > 0.0 && d <= 1.0) {
        return Err(ctx.invalid("lr.layer_decay", d.to_string(), "must be in (0, 1]"));
    }
    let no_decay = ctx.select("weight_decay.no_decay", &spec.weight_decay.no_decay, sets)?;
    let fresh: Vec<bool> = match spec.init {
        Init::Scratch => vec![true; params.len()],
        Init::Image => ctx.select("fresh", &spec.fresh, sets)?,
    };
    Ok(params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let group = grouping.of[i];
            let mult = spec
                .lr
                .multipliers
                .get(&grouping.names[group])
                .copied()
                .unwrap_or(1.0);
            ParamPlan {
                path: p.path.clone(),
                shape: p.shape.clone(),
                group,
                lr_scale: mult * d.powi((depth + 1 - layer_of(&p.path, depth)) as i32),
                decay: p.shape.len() >= 2 && !no_decay[i],
                fresh: fresh[i] || crate::lora::adapter_layer(&p.path).is_some(),
                lora_base: lora_base[i],
            }
        })
        .collect())
}

/// Where phase `k` ends: the run's end for the last phase, else its `end`, which must leave
/// every phase at least one step.
fn phase_end(
    ctx: &Ctx,
    k: usize,
    last: bool,
    end: Option<StepSpec>,
    start: usize,
    total_steps: usize,
) -> Result<usize, PlanError> {
    let key = format!("phase[{k}].end");
    match (last, end) {
        (true, None) => Ok(total_steps),
        (true, Some(e)) => Err(ctx.invalid(
            key,
            e.describe(),
            "the last phase runs to the end of the run; remove `end`",
        )),
        (false, None) => Err(ctx.invalid(key, "(missing)", "every phase but the last needs `end`")),
        (false, Some(e)) => {
            if let StepSpec::Fraction(f) = e
                && !(0.0..=1.0).contains(&f)
            {
                return Err(ctx.invalid(
                    key,
                    e.describe(),
                    "a fraction of the run must lie in [0, 1]",
                ));
            }
            let s = e.resolve(total_steps);
            if s <= start || s >= total_steps {
                return Err(ctx.invalid(
                    key,
                    e.describe(),
                    format!("resolves to step {s}, but the phase starts at step {start} and the run has {total_steps} steps: every phase needs at least one step"),
                ));
            }
            Ok(s)
        }
    }
}

fn resolve_phases(
    ctx: &Ctx,
    spec: &PlanSpec,
    total_steps: usize,
    sets: &BTreeMap<String, Vec<bool>>,
    grouping: &Grouping,
    params: &[ParamPlan],
) -> Result<Vec<Phase>, PlanError> {
    if spec.phase.is_empty() {
        return Err(ctx.invalid("phase", "[]", "a plan needs at least one [[phase]]"));
    }
    let mut phases: Vec<Phase> = Vec::new();
    let mut start = 0;
    for (k, ph) in spec.phase.iter().enumerate() {
        let last = k + 1 == spec.phase.len();
        let end = phase_end(ctx, k, last, ph.end, start, total_steps)?;
        let key = format!("phase[{k}].train");
        if ph.train.is_empty() {
            return Err(ctx.invalid(key, "[]", "a phase that trains nothing is an error"));
        }
        let mut trains = vec![false; params.len()];
        for g in &ph.train {
            let set = grouping.members(g, sets).ok_or_else(|| {
                ctx.invalid(
                    &key,
                    format!("\"{g}\""),
                    format!(
                        "no such group (defined: {}; also `all`{})",
                        names(sets.keys()),
                        if grouping.has_rest { ", `rest`" } else { "" }
                    ),
                )
            })?;
            for (t, s) in trains.iter_mut().zip(set) {
                *t |= s;
            }
        }
        // A learning-rate multiplier of 0 freezes: no gradients, no optimiser state; so does
        // an adapter on the layer (its base stays as loaded, as in PEFT).
        for (t, p) in trains.iter_mut().zip(params) {
            *t &= p.lr_scale > 0.0 && !p.lora_base;
        }
        if !trains.iter().any(|&t| t) {
            return Err(ctx.invalid(key, format!("{:?}", ph.train), "every parameter this phase names has learning-rate multiplier 0 or a LoRA adapter on its layer: it trains nothing"));
        }
        phases.push(Phase {
            name: ph.name.clone().unwrap_or_else(|| format!("phase{k}")),
            start,
            end,
            trains,
            rewarm: ph.rewarm.map_or(0, |r| r.resolve(end - start)),
        });
        start = end;
    }
    Ok(phases)
}

/// Parameters that start from their initialisation and never train are an error unless
/// `allow_untrained` acknowledges them.
fn check_untrained(
    ctx: &Ctx,
    spec: &PlanSpec,
    sets: &BTreeMap<String, Vec<bool>>,
    params: &[ParamPlan],
    phases: &[Phase],
) -> Result<(), PlanError> {
    let allowed = if spec.allow_untrained.is_empty() {
        vec![false; params.len()]
    } else {
        ctx.select("allow_untrained", &spec.allow_untrained, sets)?
    };
    let never: Vec<&str> = (0..params.len())
        .filter(|&i| params[i].fresh && !allowed[i] && !phases.iter().any(|p| p.trains[i]))
        .map(|i| params[i].path.as_str())
        .collect();
    if never.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = never.iter().take(6).copied().collect();
    let more = if never.len() > shown.len() {
        format!(" and {} more", never.len() - shown.len())
    } else {
        String::new()
    };
    let why = match spec.init {
        Init::Scratch => "randomly initialised (init = \"scratch\")",
        Init::Image => "not loaded from the image checkpoint (`fresh`)",
    };
    Err(ctx.invalid(
        "allow_untrained",
        format!("{:?}", spec.allow_untrained),
        format!("{} parameters are {why} and never train: {}{more}; train them, or acknowledge them in `allow_untrained`", never.len(), shown.join(", ")),
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::presets::{PRESETS, parse};

    /// STDiT's parameter paths for `depth` blocks (shapes simplified; only rank matters here).
    pub(crate) fn stdit_params(depth: usize) -> Vec<ParamMeta> {
        let mut v = Vec::new();
        let mut add = |p: String, shape: Vec<usize>| v.push(ParamMeta { path: p, shape });
        for m in [
            "x_embedder.proj",
            "t_embedder.mlp.0",
            "t_embedder.mlp.2",
            "t_block.1",
            "y_embedder.y_proj.fc1",
            "y_embedder.y_proj.fc2",
        ] {
            add(format!("{m}.weight"), vec![4, 4]);
            add(format!("{m}.bias"), vec![4]);
        }
        add("y_embedder.y_embedding".into(), vec![3, 4]);
        for i in 0..depth {
            for m in [
                "attn.qkv",
                "attn.proj",
                "attn_temp.qkv",
                "attn_temp.proj",
                "cross_attn.q_linear",
                "cross_attn.kv_linear",
                "cross_attn.proj",
                "mlp.fc1",
                "mlp.fc2",
            ] {
                add(format!("blocks.{i}.{m}.weight"), vec![4, 4]);
                add(format!("blocks.{i}.{m}.bias"), vec![4]);
            }
            add(format!("blocks.{i}.scale_shift_table"), vec![6, 4]);
        }
        add("final_layer.linear.weight".into(), vec![4, 4]);
        add("final_layer.linear.bias".into(), vec![4]);
        add("final_layer.scale_shift_table".into(), vec![2, 4]);
        v
    }

    fn try_plan(text: &str, steps: usize) -> Result<ResolvedPlan, PlanError> {
        let p = parse("test.toml", text)?;
        resolve(&p.name, &p.spec, &stdit_params(3), 3, steps)
    }

    fn err(text: &str) -> String {
        try_plan(text, 100)
            .expect_err("plan should be invalid")
            .to_string()
    }

    fn idx(plan: &ResolvedPlan, path: &str) -> usize {
        plan.params.iter().position(|p| p.path == path).unwrap()
    }

    #[test]
    fn every_preset_resolves() {
        // Width 16, so that the LoRA presets' rank 8 fits; with the adapters they ask for.
        let wide: Vec<ParamMeta> = stdit_params(3)
            .into_iter()
            .map(|p| ParamMeta {
                shape: p
                    .shape
                    .iter()
                    .map(|&d| if d == 4 { 16 } else { d })
                    .collect(),
                ..p
            })
            .collect();
        for (name, text) in PRESETS {
            let p = parse(name, text).unwrap();
            let t = crate::lora::targets(name, &p.spec, &wide).unwrap_or_else(|e| panic!("{e}"));
            let params = crate::lora::tests::with_adapters(&wide, &t);
            assert_eq!(
                name.starts_with("lora"),
                params.len() > wide.len(),
                "{name}"
            );
            resolve(name, &p.spec, &params, 3, 100).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn staged_switches_at_half_and_rewarms_only_new_parameters() {
        let (_, text) = PRESETS.iter().find(|(n, _)| *n == "staged").unwrap();
        let p = parse("staged", text).unwrap();
        let plan = resolve("staged", &p.spec, &stdit_params(3), 3, 100).unwrap();
        assert_eq!(plan.phases.len(), 2);
        assert_eq!(
            (plan.phases[0].start, plan.phases[0].end, plan.phases[1].end),
            (0, 50, 100)
        );
        assert_eq!(plan.phase_at(49), 0);
        assert_eq!(plan.phase_at(50), 1);
        assert!(plan.is_switch(50) && !plan.is_switch(49) && !plan.is_switch(51));
        let t = idx(&plan, "blocks.1.attn_temp.proj.weight");
        let s = idx(&plan, "blocks.1.attn.proj.weight");
        assert_eq!(plan.lr_factor(s, 49), 0.0);
        assert_eq!(plan.lr_factor(t, 49), 1.0);
        // rewarm = 0.1 of a 50-step phase = 5 steps: 1/5, 2/5, … for the newly unfrozen only.
        assert_eq!(plan.phases[1].rewarm, 5);
        assert!((plan.lr_factor(s, 50) - 0.2).abs() < 1e-12);
        assert!((plan.lr_factor(s, 52) - 0.6).abs() < 1e-12);
        assert_eq!(plan.lr_factor(s, 54), 1.0);
        assert_eq!(plan.lr_factor(t, 50), 1.0);
    }

    #[test]
    fn layer_decay_and_multipliers_follow_the_documented_formula() {
        let plan = try_plan(
            "init = \"image\"\n[groups]\ntemporal = [\"blocks.*.attn_temp.**\"]\n[lr]\nlayer_decay = 0.5\nmultipliers = { temporal = 3.0 }\n[[phase]]\ntrain = [\"all\"]\n",
            10,
        )
        .unwrap();
        let f = |p: &str| plan.params[idx(&plan, p)].lr_scale;
        // depth 3: blocks.i → 0.5^(3 − i), embedders 0.5^4, final layer 1.
        assert_eq!(f("blocks.2.attn.qkv.weight"), 0.5);
        assert_eq!(f("blocks.0.attn.qkv.weight"), 0.125);
        assert_eq!(f("blocks.0.attn_temp.qkv.weight"), 0.375);
        assert_eq!(f("x_embedder.proj.weight"), 0.0625);
        assert_eq!(f("y_embedder.y_embedding"), 0.0625);
        assert_eq!(f("final_layer.linear.weight"), 1.0);
    }

    #[test]
    fn weight_decay_spares_biases_and_tables_by_default() {
        let plan = try_plan("init = \"scratch\"\n[[phase]]\ntrain = [\"all\"]\n", 10).unwrap();
        let d = |p: &str| plan.params[idx(&plan, p)].decay;
        assert!(d("blocks.0.attn.qkv.weight"));
        assert!(!d("blocks.0.attn.qkv.bias"));
        assert!(!d("blocks.0.scale_shift_table"));
        assert!(!d("y_embedder.y_embedding"));
        let plan = try_plan("init = \"scratch\"\n[weight_decay]\nno_decay = [\"blocks.*.mlp.**\"]\n[[phase]]\ntrain = [\"all\"]\n", 10).unwrap();
        assert!(
            plan.params[idx(&plan, "blocks.0.scale_shift_table")].decay,
            "the default list is overridable"
        );
        assert!(!plan.params[idx(&plan, "blocks.0.mlp.fc1.weight")].decay);
    }

    #[test]
    fn a_selector_matching_nothing_lists_the_closest_paths() {
        let e = err(
            "init = \"image\"\n[groups]\ntemporal = [\"blocks.*.temporal_attn.**\"]\n[[phase]]\ntrain = [\"temporal\"]\n",
        );
        assert!(
            e.contains("test.toml")
                && e.contains("groups.temporal")
                && e.contains("blocks.*.temporal_attn.**"),
            "{e}"
        );
        assert!(
            e.contains("matches no parameter") && e.contains("blocks.*.attn_temp.**"),
            "{e}"
        );
    }

    #[test]
    fn overlapping_groups_need_precedence() {
        let text = "init = \"scratch\"\n[groups]\ntemporal = [\"blocks.*.attn_temp.**\"]\nblock0 = [\"blocks.0.**\"]\n[lr]\nmultipliers = { temporal = 2.0 }\n[[phase]]\ntrain = [\"all\"]\n";
        let e = err(text);
        assert!(
            e.contains("precedence")
                && e.contains("blocks.0.attn_temp")
                && e.contains("block0 and temporal"),
            "{e}"
        );
        let with = format!("precedence = [\"temporal\", \"block0\"]\n{text}");
        let plan = try_plan(&with, 10).unwrap();
        let i = idx(&plan, "blocks.0.attn_temp.qkv.weight");
        assert_eq!(plan.groups[plan.params[i].group], "temporal");
        assert_eq!(plan.params[i].lr_scale, 2.0);
    }

    #[test]
    fn a_phase_that_trains_nothing_is_an_error() {
        let e = err(
            "init = \"scratch\"\n[[phase]]\nend = 10\ntrain = []\n[[phase]]\ntrain = [\"all\"]\n",
        );
        assert!(
            e.contains("phase[0].train") && e.contains("trains nothing"),
            "{e}"
        );
        let e = err(
            "init = \"scratch\"\n[groups]\nt = [\"blocks.*.attn_temp.**\"]\n[lr]\nmultipliers = { t = 0.0 }\n[[phase]]\nend = 10\ntrain = [\"t\"]\n[[phase]]\ntrain = [\"all\"]\n",
        );
        assert!(
            e.contains("phase[0].train") && e.contains("multiplier 0"),
            "{e}"
        );
    }

    #[test]
    fn phase_boundaries_are_checked() {
        let e = err(
            "init = \"scratch\"\n[[phase]]\nend = 0.0\ntrain = [\"all\"]\n[[phase]]\ntrain = [\"all\"]\n",
        );
        assert!(
            e.contains("phase[0].end") && e.contains("at least one step"),
            "{e}"
        );
        let e = err(
            "init = \"scratch\"\n[[phase]]\nend = 1.5\ntrain = [\"all\"]\n[[phase]]\ntrain = [\"all\"]\n",
        );
        assert!(e.contains("phase[0].end = 1.5"), "{e}");
        let e =
            err("init = \"scratch\"\n[[phase]]\ntrain = [\"all\"]\n[[phase]]\ntrain = [\"all\"]\n");
        assert!(
            e.contains("phase[0].end") && e.contains("needs `end`"),
            "{e}"
        );
        let e = err("init = \"scratch\"\n[[phase]]\nend = 50\ntrain = [\"all\"]\n");
        assert!(
            e.contains("phase[0].end") && e.contains("last phase"),
            "{e}"
        );
        let e = err("init = \"scratch\"\n[[phase]]\ntrain = [\"al\"]\n");
        assert!(
            e.contains("phase[0].train = \"al\"") && e.contains("no such group"),
            "{e}"
        );
    }

    #[test]
    fn never_trained_initialised_parameters_are_errors_unless_acknowledged() {
        // From scratch, temporal-only leaves every random non-temporal weight untrained.
        let text = "init = \"scratch\"\n[groups]\ntemporal = [\"blocks.*.attn_temp.**\"]\n[[phase]]\ntrain = [\"temporal\"]\n";
        let e = err(text);
        assert!(
            e.contains("never train")
                && e.contains("x_embedder.proj.weight")
                && e.contains("allow_untrained"),
            "{e}"
        );
        let ok = format!("allow_untrained = [\"**\"]\n{text}");
        try_plan(&ok, 10).unwrap();
        // With image weights, leaving the *fresh* temporal attention frozen is the error.
        let e = err(
            "init = \"image\"\n[groups]\ntemporal = [\"blocks.*.attn_temp.**\"]\n[[phase]]\ntrain = [\"rest\"]\n",
        );
        assert!(
            e.contains("blocks.0.attn_temp.qkv.weight") && e.contains("fresh"),
            "{e}"
        );
    }

    #[test]
    fn set_operations_compose_groups() {
        let plan = try_plan(
            "init = \"image\"\nprecedence = [\"moving\", \"temporal\", \"text\", \"still\"]\n[groups]\ntemporal = [\"blocks.*.attn_temp.**\"]\ntext = [\"blocks.*.cross_attn.**\"]\nmoving = [\"@temporal\", \"@text\"]\nstill = { except = [\"@moving\"] }\n[[phase]]\ntrain = [\"moving\"]\n",
            10,
        )
        .unwrap();
        let group = |p: &str| plan.groups[plan.params[idx(&plan, p)].group].clone();
        assert_eq!(group("blocks.0.attn_temp.qkv.weight"), "moving");
        assert_eq!(group("blocks.2.cross_attn.proj.bias"), "moving");
        assert_eq!(group("blocks.2.attn.proj.bias"), "still");
        assert_eq!(group("x_embedder.proj.weight"), "still");
        assert!(
            !plan.groups.contains(&REST.to_string()),
            "every parameter is in a group"
        );
        let trains = &plan.phases[0].trains;
        assert!(trains[idx(&plan, "blocks.1.cross_attn.q_linear.weight")]);
        assert!(!trains[idx(&plan, "blocks.1.mlp.fc1.weight")]);
        // A reference to an undefined group is an error naming it.
        let e = err("init = \"scratch\"\n[groups]\na = [\"@b\"]\n[[phase]]\ntrain = [\"all\"]\n");
        assert!(e.contains("groups.a") && e.contains("@b"), "{e}");
    }
}
