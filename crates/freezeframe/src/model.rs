//! `freezeframe model`: a preset's parameters by Open-Sora path.
use anyhow::{Result, bail};
use burn::prelude::*;
use freezeframe_model::{StdiTConfig, Stdit, param_table};

use crate::cli::ModelCommand;

pub fn run(c: ModelCommand) -> Result<()> {
    match c {
        ModelCommand::Params(a) => model_params(&a.preset),
    }
}

fn model_params(preset: &str) -> Result<()> {
    let Some(cfg) = StdiTConfig::preset(preset) else {
        bail!(
            "unknown preset {preset:?}; choose one of {:?}",
            StdiTConfig::PRESETS
        );
    };
    let model = Stdit::new(&cfg, &Device::flex());
    let table = param_table(&model);
    let width = table.iter().map(|p| p.path.len()).max().unwrap_or(10);
    println!(
        "# Open-Sora paths; shapes as Burn stores them (Linear weights [in, out], PyTorch has [out, in])"
    );
    println!("{:<width$}  {:<14}  {:>10}", "path", "shape", "count");
    for p in &table {
        println!(
            "{:<width$}  {:<14}  {:>10}",
            p.path,
            format!("{:?}", p.shape),
            p.numel()
        );
    }
    let total: usize = table.iter().map(|p| p.numel()).sum();
    println!(
        "total: {} tensors, {} parameters (preset {preset})",
        table.len(),
        total
    );
    Ok(())
}
