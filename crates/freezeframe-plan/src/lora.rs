//! `[[lora]]` in a plan: which linear layers get low-rank adapters, checked against the model's
//! parameters. A linear layer is recognised by its parameters alone: a 2-D tensor named
//! `<layer>.weight` (every other 2-D tensor of STDiT — modulation tables, the null caption — has
//! another name).
use std::collections::BTreeMap;

use crate::error::PlanError;
use crate::resolve::{Ctx, ParamMeta};
use crate::selector;
use crate::spec::{LoraSpec, PlanSpec};

/// Suffixes of an adapter's two parameters.
pub const LORA_A: &str = ".lora_a";
pub const LORA_B: &str = ".lora_b";

/// One adapter a plan asks for: the Open-Sora path of its layer (`blocks.0.attn.qkv`), its rank
/// and α.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraTarget {
    pub layer: String,
    pub rank: usize,
    pub alpha: f64,
}

/// The layer an adapter parameter belongs to (`blocks.0.attn.qkv.lora_a` → `blocks.0.attn.qkv`).
pub fn adapter_layer(path: &str) -> Option<&str> {
    path.strip_suffix(LORA_A)
        .or_else(|| path.strip_suffix(LORA_B))
}

/// The linear layer a parameter is the weight of, with its (d_in, d_out) as Burn stores it.
fn linear_of(p: &ParamMeta) -> Option<(&str, usize, usize)> {
    let layer = p.path.strip_suffix(".weight")?;
    match p.shape.as_slice() {
        [i, o] => Some((layer, *i, *o)),
        _ => None,
    }
}

/// The adapters `spec` asks for on a model with these parameters (adapter parameters among them
/// are ignored: targets are chosen among the model's own layers). Errors name the `[[lora]]`
/// entry and key.
pub fn targets(
    name: &str,
    spec: &PlanSpec,
    params: &[ParamMeta],
) -> Result<Vec<LoraTarget>, PlanError> {
    if spec.lora.is_empty() {
        return Ok(Vec::new());
    }
    let base: Vec<&ParamMeta> = params
        .iter()
        .filter(|p| adapter_layer(&p.path).is_none())
        .collect();
    let ctx = Ctx {
        source: name,
        paths: base.iter().map(|p| p.path.as_str()).collect(),
    };
    // Which `[[lora]]` entry gave each layer its adapter, in the model's order.
    let mut chosen: Vec<(usize, LoraTarget)> = Vec::new();
    for (k, l) in spec.lora.iter().enumerate() {
        for (layer, d_in, d_out) in entry_layers(&ctx, k, l, &base)? {
            let key = format!("lora[{k}]");
            let max = d_in.min(d_out);
            if l.rank > max {
                return Err(ctx.invalid(
                    format!("{key}.rank"),
                    l.rank.to_string(),
                    format!("must be between 1 and min(d_in, d_out) = {max} of `{layer}` ({d_in} → {d_out})"),
                ));
            }
            if let Some((j, _)) = chosen.iter().find(|(_, t)| t.layer == layer) {
                return Err(ctx.invalid(
                    format!("{key}.targets"),
                    format!("{:?}", l.targets),
                    format!("`{layer}` already has an adapter from lora[{j}]; give each layer one"),
                ));
            }
            let t = LoraTarget {
                layer: layer.to_string(),
                rank: l.rank,
                alpha: l.alpha(),
            };
            chosen.push((k, t));
        }
    }
    Ok(chosen.into_iter().map(|(_, t)| t).collect())
}

/// The linear layers (path, d_in, d_out) entry `k` selects, after checking its rank ≥ 1, its α
/// and its targets.
fn entry_layers<'a>(
    ctx: &Ctx,
    k: usize,
    l: &LoraSpec,
    base: &[&'a ParamMeta],
) -> Result<Vec<(&'a str, usize, usize)>, PlanError> {
    let key = format!("lora[{k}]");
    if l.rank == 0 {
        return Err(ctx.invalid(format!("{key}.rank"), "0", "must be at least 1"));
    }
    let alpha = l.alpha();
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(ctx.invalid(
            format!("{key}.alpha"),
            alpha.to_string(),
            "must be a finite number > 0",
        ));
    }
    if let Some(g) = l.targets.iter().find(|t| t.starts_with('@')) {
        return Err(ctx.invalid(
            format!("{key}.targets"),
            format!("\"{g}\""),
            "adapter targets are path globs (`blocks.*.attn_temp.**`); groups cannot be named here",
        ));
    }
    // Groups are resolved against the model with its adapters, which these targets decide.
    let hit = ctx.select(&format!("{key}.targets"), &l.targets, &BTreeMap::new())?;
    let layers: Vec<(&str, usize, usize)> = base
        .iter()
        .zip(&hit)
        .filter(|&(_, &h)| h)
        .filter_map(|(p, _)| linear_of(p))
        .collect();
    if layers.is_empty() {
        let linear: Vec<&str> = base
            .iter()
            .filter_map(|p| linear_of(p))
            .map(|l| l.0)
            .collect();
        let near = selector::closest(&l.targets.join(" "), linear.iter().copied(), 4);
        return Err(ctx.invalid(
            format!("{key}.targets"),
            format!("{:?}", l.targets),
            format!(
                "selects no linear layer (adapters go on a layer's 2-D `weight`); closest linear layers: {}",
                near.join(", ")
            ),
        ));
    }
    Ok(layers)
}

/// Checks that the model's adapters are exactly those `spec` asks for (same layers, same
/// ranks), and returns, per parameter, whether it is the weight or bias of an adapted layer
/// (frozen for the whole run).
pub(crate) fn check_model(
    ctx: &Ctx,
    spec: &PlanSpec,
    params: &[ParamMeta],
) -> Result<Vec<bool>, PlanError> {
    let wanted = targets(ctx.source, spec, params)?;
    let mut have: BTreeMap<&str, usize> = BTreeMap::new();
    for p in params {
        if let (Some(layer), [_, r]) = (p.path.strip_suffix(LORA_A), p.shape.as_slice()) {
            have.insert(layer, *r);
        }
    }
    for t in &wanted {
        match have.remove(t.layer.as_str()) {
            Some(r) if r == t.rank => {}
            Some(r) => {
                return Err(ctx.invalid(
                    "lora",
                    t.layer.clone(),
                    format!(
                        "the model's adapter has rank {r}, the plan asks for {}",
                        t.rank
                    ),
                ));
            }
            None => {
                return Err(ctx.invalid(
                    "lora",
                    t.layer.clone(),
                    "the model carries no adapter here: attach the plan's adapters before resolving it (the trainer does)",
                ));
            }
        }
    }
    if let Some(layer) = have.keys().next() {
        return Err(ctx.invalid(
            "lora",
            layer.to_string(),
            "the model carries a LoRA adapter here that the plan's [[lora]] does not ask for",
        ));
    }
    Ok(params
        .iter()
        .map(|p| {
            let layer = p
                .path
                .strip_suffix(".weight")
                .or_else(|| p.path.strip_suffix(".bias"));
            layer.is_some_and(|l| wanted.iter().any(|t| t.layer == l))
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::presets::parse;
    use crate::resolve::resolve;
    use crate::resolve::tests::stdit_params;

    fn plan(text: &str) -> PlanSpec {
        parse("test", text).unwrap().spec
    }

    const TEMPORAL: &str = r#"
init = "image"
allow_untrained = ["blocks.*.attn_temp.**"]
[[lora]]
targets = ["blocks.*.attn_temp.**"]
rank = 2
[groups]
adapters = ["**.lora_a", "**.lora_b"]
[[phase]]
train = ["all"]
"#;

    /// `params` with the adapters `targets` asks for, after each adapted layer's bias (where
    /// the model's traversal puts them).
    pub(crate) fn with_adapters(params: &[ParamMeta], targets: &[LoraTarget]) -> Vec<ParamMeta> {
        let mut out = Vec::new();
        for p in params {
            out.push(p.clone());
            let layer = p.path.strip_suffix(".bias");
            if let Some(t) = targets.iter().find(|t| Some(t.layer.as_str()) == layer) {
                let w = params
                    .iter()
                    .find(|q| q.path == format!("{}.weight", t.layer));
                let (i, o) = w.and_then(linear_of).map_or((0, 0), |(_, i, o)| (i, o));
                out.push(ParamMeta {
                    path: format!("{}{LORA_A}", t.layer),
                    shape: vec![i, t.rank],
                });
                out.push(ParamMeta {
                    path: format!("{}{LORA_B}", t.layer),
                    shape: vec![t.rank, o],
                });
            }
        }
        out
    }

    #[test]
    fn targets_are_the_linear_layers_selected_with_alpha_defaulting_to_rank() {
        let t = targets("test", &plan(TEMPORAL), &stdit_params(2)).unwrap();
        let layers: Vec<&str> = t.iter().map(|t| t.layer.as_str()).collect();
        assert_eq!(
            layers,
            [
                "blocks.0.attn_temp.qkv",
                "blocks.0.attn_temp.proj",
                "blocks.1.attn_temp.qkv",
                "blocks.1.attn_temp.proj"
            ]
        );
        assert!(t.iter().all(|t| t.rank == 2 && t.alpha == 2.0));
    }

    #[test]
    fn adapted_bases_never_train_and_adapters_start_fresh() {
        let spec = plan(TEMPORAL);
        let base = stdit_params(2);
        let params = with_adapters(&base, &targets("test", &spec, &base).unwrap());
        let r = resolve("test", &spec, &params, 2, 10).unwrap();
        for (p, &t) in r.params.iter().zip(&r.phases[0].trains) {
            let adapted = p.path.contains("attn_temp.")
                && (p.path.ends_with(".weight") || p.path.ends_with(".bias"));
            assert_eq!(p.lora_base, adapted, "{}", p.path);
            // `train = ["all"]`, yet the adapted bases stay frozen.
            assert_eq!(t, !adapted, "{}", p.path);
            if adapter_layer(&p.path).is_some() {
                assert!(p.fresh && p.decay, "{}", p.path);
            }
        }
        // A fresh base frozen under its adapter stays at its initialisation: acknowledged or
        // refused, as any fresh parameter that never trains.
        let mut silent = spec.clone();
        silent.allow_untrained.clear();
        let e = resolve("test", &silent, &params, 2, 10)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("allow_untrained") && e.contains("attn_temp.qkv.weight"),
            "{e}"
        );
        // The model must carry exactly the adapters the plan asks for.
        let e = resolve("test", &spec, &base, 2, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("carries no adapter"), "{e}");
        let mut full = plan(TEMPORAL);
        full.lora.clear();
        full.groups.clear();
        let e = resolve("test", &full, &params, 2, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not ask for"), "{e}");
    }

    #[test]
    fn bad_lora_entries_name_the_key_and_suggest_layers() {
        let base = stdit_params(2);
        let err = |lora: &str| {
            let text = format!("init = \"image\"\n{lora}\n[[phase]]\ntrain = [\"all\"]\n");
            targets("test", &plan(&text), &base)
                .unwrap_err()
                .to_string()
        };
        let e = err("[[lora]]\ntargets = [\"blocks.*.attn_tmp.**\"]\nrank = 2");
        assert!(
            e.contains("lora[0].targets") && e.contains("blocks.*.attn_temp.**"),
            "{e}"
        );
        let e = err("[[lora]]\ntargets = [\"blocks.*.scale_shift_table\"]\nrank = 2");
        assert!(e.contains("selects no linear layer"), "{e}");
        let e = err("[[lora]]\ntargets = [\"blocks.**\"]\nrank = 0");
        assert!(e.contains("lora[0].rank = 0"), "{e}");
        let e = err("[[lora]]\ntargets = [\"blocks.**\"]\nrank = 5");
        assert!(e.contains("min(d_in, d_out) = 4"), "{e}");
        let e = err("[[lora]]\ntargets = [\"blocks.**\"]\nrank = 2\nalpha = -1.0");
        assert!(e.contains("lora[0].alpha"), "{e}");
        let e = err("[[lora]]\ntargets = [\"@temporal\"]\nrank = 2");
        assert!(e.contains("groups cannot be named"), "{e}");
        let e = err(
            "[[lora]]\ntargets = [\"blocks.**\"]\nrank = 2\n[[lora]]\ntargets = [\"blocks.*.mlp.**\"]\nrank = 1",
        );
        assert!(
            e.contains("lora[1].targets") && e.contains("from lora[0]"),
            "{e}"
        );
        let e = parse("t", "init = \"image\"\n[[lora]]\ntargets = []\nrank = 2\nrnak = 3\n[[phase]]\ntrain = [\"all\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rnak"), "{e}");
    }
}
