//! `freezeframe import pixart` and `freezeframe export`: thin wrappers over
//! `freezeframe-interop`.
use std::path::Path;

use anyhow::{Context, Result};
use freezeframe_interop::ImportOptions;
use std::path::PathBuf;

use burn::prelude::Device;
use freezeframe_model::{StdiTConfig, Stdit};
use freezeframe_train::checkpoint;
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
        ExportFormat::LoraPeft => export_lora(&a.run, &a.out),
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

/// The run's model config, newest checkpoint step and its EMA weights file.
fn newest_ema(run_dir: &Path) -> Result<(StdiTConfig, usize, PathBuf)> {
    let run = Run::new(run_dir);
    let cfg = run.load_config()?;
    let model = cfg
        .model()
        .with_context(|| run.config_path().display().to_string())?;
    let (step, dir) = run
        .latest_checkpoint()
        .with_context(|| format!("{} holds no complete checkpoint", run.dir.display()))?;
    Ok((model, step, dir.join("ema.safetensors")))
}

/// A file removed when dropped (the merged weights an export reads from).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn export_pixart(run_dir: &Path, out: &Path) -> Result<()> {
    let (model, step, ema) = newest_ema(run_dir)?;
    // LoRA adapters are merged into their weights first (W + (α / r)·A·B): diffusers' model
    // has no place for them, and leaving them out would export the base model.
    let merged = if checkpoint::file_metadata(&ema)?.contains_key(checkpoint::LORA_KEY) {
        let m = checkpoint::load_model(Stdit::new(&model, &Device::flex()), &ema)?;
        let layers = m.lora_layers();
        let n = layers.len();
        // Beside the export (where there is room for it), removed when done.
        std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
        let tmp = TempFile(out.join(format!(
            ".merged-{}.safetensors.partial",
            std::process::id()
        )));
        checkpoint::save_model(&m.merge_lora(), &tmp.0)?;
        println!("merged {n} LoRA adapters into their weights");
        warn_dropped_adapters(&layers);
        Some(tmp)
    } else {
        None
    };
    let src = merged.as_ref().map_or(ema.as_path(), |t| t.0.as_path());
    let ex = freezeframe_interop::export_pixart(&model, src, out)?;
    println!(
        "wrote {} and {} from step {step} (EMA weights); left out {} tensors with no diffusers place (temporal attention, null caption)",
        ex.weights.display(),
        ex.config.display(),
        ex.skipped.len()
    );
    Ok(())
}

/// Adapters merged into layers that diffusers' PixArt has no place for (the temporal
/// attention) are left out with those layers: said on stderr, since an export of a
/// `lora-temporal` run would otherwise read as its trained model and be the image model.
fn warn_dropped_adapters(layers: &[freezeframe_model::lora::LoraLayer]) {
    let dropped: Vec<&str> = layers
        .iter()
        .map(|l| l.layer.as_str())
        .filter(|l| !freezeframe_interop::has_diffusers_place(&format!("{l}.weight")))
        .collect();
    if dropped.is_empty() {
        return;
    }
    let (k, n) = (dropped.len(), layers.len());
    let which = if k == n {
        format!("all {n} merged adapters sit on the temporal attention")
    } else {
        format!("{k} of the {n} merged adapters sit on the temporal attention")
    };
    let effect = if k == n {
        "none of what they learned is in this export"
    } else {
        "they are left out with it"
    };
    eprintln!(
        "warning: {which}, which diffusers' PixArt transformer has no place for: {effect} ({}). `export --format lora-peft` writes every adapter.",
        dropped.join(", ")
    );
}

/// The adapters alone, as PEFT saves a LoRA of Open-Sora's PyTorch STDiT:
/// `adapter_model.safetensors` with `base_model.model.<layer>.lora_A.weight` [r, d_in] and
/// `.lora_B.weight` [d_out, r], and `adapter_config.json` (rank and α; per-layer ones in
/// `rank_pattern` / `alpha_pattern`).
fn export_lora(run_dir: &Path, out: &Path) -> Result<()> {
    let (model, step, ema) = newest_ema(run_dir)?;
    let m = checkpoint::load_model(Stdit::new(&model, &Device::flex()), &ema)?;
    let layers = m.lora_layers();
    anyhow::ensure!(
        !layers.is_empty(),
        "{} has no LoRA adapters (its plan has no [[lora]])",
        ema.display()
    );
    let tensors = freezeframe_model::lora::peft_tensors(&m)?;
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let (weights, config) = (
        out.join("adapter_model.safetensors"),
        out.join("adapter_config.json"),
    );
    for f in [&weights, &config] {
        anyhow::ensure!(
            !f.exists(),
            "{} exists; choose another output folder",
            f.display()
        );
    }
    let shapes: Vec<(String, Vec<usize>)> = tensors
        .iter()
        .map(|t| (t.key.clone(), t.shape.clone()))
        .collect();
    let mut values: std::collections::HashMap<String, Vec<f32>> =
        tensors.into_iter().map(|t| (t.key, t.values)).collect();
    freezeframe_interop::st::write_f32(&weights, ("format", "pt"), &shapes, |k| {
        values
            .remove(k)
            .ok_or_else(|| freezeframe_interop::InteropError::File {
                path: weights.clone(),
                message: format!("no values for {k}"),
            })
    })?;
    let text = serde_json::to_string_pretty(&freezeframe_model::lora::peft_config(&layers))?;
    freezeframe_interop::st::write_new(&config, text.as_bytes())?;
    // Open-Sora's STDiT has no `attn_temp.y_cond`, and its `x_embedder.proj` is a Conv3d (a
    // `lora_A` of [r, C·p·p] would need reshaping to [r, C, 1, p, p] there).
    let foreign: Vec<&str> = layers
        .iter()
        .map(|l| l.layer.as_str())
        .filter(|l| l.ends_with("attn_temp.y_cond") || *l == "x_embedder.proj")
        .collect();
    if !foreign.is_empty() {
        println!(
            "note: {} of these layers have no Linear counterpart in Open-Sora's STDiT: {}",
            foreign.len(),
            foreign.join(", ")
        );
    }
    println!(
        "wrote {} and {} from step {step} (EMA weights): {} adapters, PEFT's key layout on Open-Sora's module names",
        weights.display(),
        config.display(),
        layers.len()
    );
    Ok(())
}
