//! `freezeframe import pixart` and `freezeframe export`: thin wrappers over
//! `freezeframe-interop`.
use std::path::Path;

use anyhow::{Context, Result};
use freezeframe_interop::ImportOptions;
use freezeframe_train::run::Run;

use crate::cli::{ExportArgs, ExportFormat, ImportCommand, PixartArgs};

pub fn import(c: ImportCommand) -> Result<()> {
    match c {
        ImportCommand::Pixart(a) => import_pixart(a),
    }
}

pub fn export(a: ExportArgs) -> Result<()> {
    match a.format {
        ExportFormat::DiffusersPixart => export_pixart(&a.run, &a.out),
    }
}

fn import_pixart(a: PixartArgs) -> Result<()> {
    let PixartArgs {
        from,
        config,
        out,
        text_len,
        seed,
    } = a;
    let (from, out) = (from.as_path(), out.as_path());
    let config = match config {
        Some(c) => c,
        None => from.with_file_name("config.json"),
    };
    let imp =
        freezeframe_interop::import_pixart(from, &config, out, ImportOptions { text_len, seed })?;
    println!(
        "wrote {} ({} tensors under Open-Sora STDiT keys; image model, temporal attention left for the inflation)",
        out.display(),
        imp.tensors
    );
    if imp.dropped_variance {
        println!(
            "dropped PixArt's learned-variance output half (freezeframe predicts the flow only)"
        );
    }
    println!(
        "the null caption y_embedder.y_embedding [{text_len}, {}] is freshly initialised (seed {seed}): diffusers does not store one",
        imp.model.text_dim
    );
    // A JSON string is a valid TOML basic string.
    let from = serde_json::to_string(&out.display().to_string())?;
    println!(
        "\nuse it with [init] from = {from}, [data] size = {}, and:\n\n{}",
        imp.model.height,
        freezeframe_interop::model_section(&imp.model)
    );
    Ok(())
}

fn export_pixart(run_dir: &Path, out: &Path) -> Result<()> {
    let run = Run::new(run_dir);
    let cfg = run.load_config()?;
    let model = cfg
        .model()
        .with_context(|| run.config_path().display().to_string())?;
    let (step, dir) = run
        .latest_checkpoint()
        .with_context(|| format!("{} holds no complete checkpoint", run.dir.display()))?;
    let ex = freezeframe_interop::export_pixart(&model, &dir.join("ema.safetensors"), out)?;
    println!(
        "wrote {} and {} from step {step} (EMA weights); left out {} tensors with no diffusers place (temporal attention, null caption)",
        ex.weights.display(),
        ex.config.display(),
        ex.skipped.len()
    );
    Ok(())
}
