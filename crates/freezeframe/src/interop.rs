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
        ExportFormat::LoraPeft => export_lora(&a.run, &a.out, Names::OpenSora),
        ExportFormat::LoraDiffusersPixart => export_lora(&a.run, &a.out, Names::DiffusersPixart),
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
        let dropped: Vec<String> = layers
            .into_iter()
            .map(|l| l.layer)
            .filter(|l| !freezeframe_interop::has_diffusers_place(&format!("{l}.weight")))
            .collect();
        warn_dropped_adapters("merged adapters", &dropped, n);
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

/// Adapters (`what`: merged or written) on layers that diffusers' PixArt has no place for (the
/// temporal attention) are left out with those layers: said on stderr, since an export of a
/// `lora-temporal` run would otherwise read as its trained model and be the image model.
fn warn_dropped_adapters(what: &str, dropped: &[String], n: usize) {
    if dropped.is_empty() {
        return;
    }
    let k = dropped.len();
    let which = if k == n {
        format!("all {n} {what} sit on the temporal attention")
    } else {
        format!("{k} of the {n} {what} sit on the temporal attention")
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

/// Whose module names a PEFT export uses.
#[derive(Clone, Copy, PartialEq)]
enum Names {
    /// Open-Sora's PyTorch STDiT (`blocks.0.attn.qkv`).
    OpenSora,
    /// diffusers' `PixArtTransformer2DModel` (`transformer_blocks.0.attn1.to_q`), fused layers
    /// split; the temporal attention has no place there.
    DiffusersPixart,
}

/// The adapters alone, as PEFT saves a LoRA: `adapter_model.safetensors` with
/// `base_model.model.<module>.lora_A.weight` [r, d_in] and `.lora_B.weight` [d_out, r], and
/// `adapter_config.json` (rank and α; per-module ones in `rank_pattern` / `alpha_pattern`),
/// on the modules of Open-Sora's STDiT or of diffusers' PixArt transformer.
fn export_lora(run_dir: &Path, out: &Path, names: Names) -> Result<()> {
    let (model, step, ema) = newest_ema(run_dir)?;
    let m = checkpoint::load_model(Stdit::new(&model, &Device::flex()), &ema)?;
    let mut adapters = freezeframe_model::lora::peft_adapters(&m)?;
    let n = adapters.len();
    anyhow::ensure!(
        n > 0,
        "{} has no LoRA adapters (its plan has no [[lora]])",
        ema.display()
    );
    let layers: Vec<String> = adapters.iter().map(|a| a.spec.layer.clone()).collect();
    let mut left_out = Vec::new();
    if names == Names::DiffusersPixart {
        let moved = freezeframe_interop::pixart_lora(&model, adapters, &ema)?;
        left_out = moved.left_out;
        adapters = moved.adapters;
    }
    let specs: Vec<_> = adapters.iter().map(|a| a.spec.clone()).collect();
    let (weights, config) = write_peft(out, adapters)?;
    match names {
        Names::OpenSora => note_foreign_layers(&layers),
        Names::DiffusersPixart => {
            warn_dropped_adapters("adapters", &left_out, n);
            note_proj_out(&specs, &model);
        }
    }
    let layout = match names {
        Names::OpenSora => format!("{n} adapters on Open-Sora's STDiT modules"),
        Names::DiffusersPixart => format!(
            "{} adapters on diffusers' PixArt transformer modules (from {n}; fused q/k/v and k/v split)",
            specs.len()
        ),
    };
    println!(
        "wrote {} and {} from step {step} (EMA weights): {layout}, PEFT's key layout",
        weights.display(),
        config.display(),
    );
    Ok(())
}

/// `adapter_model.safetensors` and `adapter_config.json` in `out` (created if missing), neither
/// of which may exist yet.
fn write_peft(
    out: &Path,
    adapters: Vec<freezeframe_model::lora::PeftAdapter>,
) -> Result<(PathBuf, PathBuf)> {
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
    let specs: Vec<_> = adapters.iter().map(|a| a.spec.clone()).collect();
    let tensors = freezeframe_model::lora::peft_tensors(adapters);
    let shapes: Vec<(String, Vec<usize>)> = tensors
        .iter()
        .map(|(key, t)| (key.clone(), t.shape.clone()))
        .collect();
    let mut values: std::collections::HashMap<String, Vec<f32>> = tensors
        .into_iter()
        .map(|(key, t)| (key, t.values))
        .collect();
    freezeframe_interop::st::write_f32(&weights, ("format", "pt"), &shapes, |k| {
        values
            .remove(k)
            .ok_or_else(|| freezeframe_interop::InteropError::File {
                path: weights.clone(),
                message: format!("no values for {k}"),
            })
    })?;
    let text = serde_json::to_string_pretty(&freezeframe_model::lora::peft_config(&specs))?;
    // The pair or nothing: the weights this call wrote go if their config cannot follow.
    if let Err(e) = freezeframe_interop::st::write_new(&config, text.as_bytes()) {
        let _ = std::fs::remove_file(&weights);
        return Err(e.into());
    }
    Ok((weights, config))
}

/// The adapter on `proj_out` fits the output of this model's PixArt export (C channels per
/// pixel); PixArt-α's own `proj_out` also predicts a variance (2C), which it does not fit.
fn note_proj_out(specs: &[freezeframe_model::lora::LoraLayer], model: &StdiTConfig) {
    if specs.iter().any(|s| s.layer == "proj_out") {
        println!(
            "note: the adapter on proj_out fits the `diffusers-pixart` export of this run ({} output channels); a PixArt-α proj_out that also predicts a variance ({} channels) has other rows",
            model.channels,
            2 * model.channels
        );
    }
}

/// Open-Sora's STDiT has no `attn_temp.y_cond`, and its `x_embedder.proj` is a Conv3d (a
/// `lora_A` of [r, C·p·p] would need reshaping to [r, C, 1, p, p] there): said, not hidden.
fn note_foreign_layers(layers: &[String]) {
    let foreign: Vec<&str> = layers
        .iter()
        .map(String::as_str)
        .filter(|l| l.ends_with("attn_temp.y_cond") || *l == "x_embedder.proj")
        .collect();
    if !foreign.is_empty() {
        println!(
            "note: {} of these layers have no Linear counterpart in Open-Sora's STDiT: {}",
            foreign.len(),
            foreign.join(", ")
        );
    }
}
