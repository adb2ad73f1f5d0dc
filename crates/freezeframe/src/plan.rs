//! `freezeframe plan`: the presets, and what a plan does to a model.
use anyhow::{Result, bail};
use burn::prelude::*;
use freezeframe_model::{StdiTConfig, Stdit};

use crate::cli::PlanCommand;

pub fn run(c: PlanCommand) -> Result<()> {
    match c {
        PlanCommand::List => list(),
        PlanCommand::Explain(a) => plan_explain(&a.plan, &a.model, a.steps, a.lr),
    }
}

fn list() -> Result<()> {
    for (name, text) in freezeframe_plan::PRESETS {
        let p = freezeframe_plan::parse(name, text)?;
        println!("{name:<22} {}", p.spec.description);
    }
    Ok(())
}

fn plan_explain(plan: &str, model: &str, steps: usize, lr: f64) -> Result<()> {
    let Some(cfg) = StdiTConfig::preset(model) else {
        bail!(
            "unknown model preset {model:?}; choose one of {:?}",
            StdiTConfig::PRESETS
        );
    };
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    let loaded = freezeframe_plan::load(plan)?;
    let m = freezeframe_model::paths::stable_ids(Stdit::new(&cfg, &Device::flex()));
    let bound = freezeframe_train::plans::resolve_for(&loaded, &m, cfg.depth, steps)?;
    print!("{}", freezeframe_plan::explain(&bound.plan, lr));
    Ok(())
}
