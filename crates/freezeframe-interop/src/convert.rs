//! The two conversions: a diffusers PixArt transformer in, a freezeframe model's spatial part
//! out. Both stream tensor by tensor (see `st`), so their memory is a few tensors, not a model.
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use freezeframe_model::StdiTConfig;

use crate::error::InteropError;
use crate::pixart::{Mapping, PixartConfig, Rule, Shape, key_map};
use crate::st::{Source, write_f32, write_new};

/// The null caption: diffusers has no such tensor (its pipeline encodes the empty prompt), so
/// the import draws it as freezeframe initialises it.
pub const NULL_CAPTION: &str = "y_embedder.y_embedding";

/// What an import produced.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The freezeframe model the file holds (image mode: `frames` = 1).
    pub model: StdiTConfig,
    /// Tensors written (all of the diffusers file's, fused, plus the null caption).
    pub tensors: usize,
    /// PixArt's learned-variance half of the output, which was dropped.
    pub dropped_variance: bool,
}

/// Caption tokens a null caption may have (PixArt-α: 120, PixArt-Σ: 300).
pub const MAX_TEXT_LEN: usize = 4096;

/// Options of an import.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Caption tokens per prompt for the null caption's shape (freezeframe's `text_len`).
    pub text_len: usize,
    /// Seed of the null caption's initial values.
    pub seed: u64,
}

fn weights_err(path: &Path, message: String) -> InteropError {
    InteropError::Weights {
        path: path.to_path_buf(),
        message,
    }
}

/// Checks that `src` holds exactly the tensors on one side of `map`, with their shapes.
/// `side` picks the names: diffusers' (`theirs`) on import, freezeframe's on export;
/// `extra_ok` says which other tensors may be present; they are skipped and returned.
fn check_tensors(
    src: &Source,
    wanted: &[(String, Vec<usize>)],
    extra_ok: impl Fn(&str) -> bool,
    what: &str,
) -> Result<Vec<String>, InteropError> {
    let mut missing = Vec::new();
    for (name, shape) in wanted {
        match src.info(name) {
            None => missing.push(name.clone()),
            Some(info) if &info.shape != shape => {
                return Err(weights_err(
                    src.path(),
                    format!(
                        "{name} has shape {:?}; the config says {shape:?}",
                        info.shape
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    let known: BTreeSet<&str> = wanted.iter().map(|(n, _)| n.as_str()).collect();
    let (skipped, unmapped): (Vec<String>, Vec<String>) = src
        .names()
        .into_iter()
        .filter(|n| !known.contains(n.as_str()))
        .partition(|n| extra_ok(n));
    if !missing.is_empty() || !unmapped.is_empty() {
        let few = |v: &[String]| v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        let mut m = format!("not {what}:");
        if !missing.is_empty() {
            m += &format!(
                " {} expected tensors missing ({})",
                missing.len(),
                few(&missing)
            );
        }
        if !unmapped.is_empty() {
            m += &format!(
                " {} tensors with no place in the key map ({})",
                unmapped.len(),
                few(&unmapped)
            );
        }
        return Err(weights_err(src.path(), m));
    }
    Ok(skipped)
}

/// A checked import: the config, the freezeframe model it becomes, the key map, and the
/// weights file whose tensors all fit it.
struct ImportPlan {
    cfg: PixartConfig,
    model: StdiTConfig,
    map: Vec<Mapping>,
    src: Source,
}

/// Reads and checks everything before anything is written: the config, the caption length,
/// and every tensor of the weights file against the key map.
fn plan_import(
    weights: &Path,
    config: &Path,
    opts: ImportOptions,
) -> Result<ImportPlan, InteropError> {
    let config_err = |message: String| InteropError::Config {
        path: config.to_path_buf(),
        message,
    };
    let cfg = PixartConfig::load(config)?;
    cfg.check().map_err(config_err)?;
    if !(1..=MAX_TEXT_LEN).contains(&opts.text_len) {
        return Err(config_err(format!(
            "--text-len {}: expected 1 to {MAX_TEXT_LEN}",
            opts.text_len
        )));
    }
    let src = Source::open(weights)?;
    let ff = "transformer_blocks.0.ff.net.0.proj.weight";
    let mlp = match src.info(ff).map(|i| i.shape.as_slice()) {
        Some(&[rows, _]) => rows,
        _ => {
            return Err(weights_err(
                weights,
                format!("not a diffusers PixArt transformer: no 2-D {ff}"),
            ));
        }
    };
    let model = cfg.stdit_config(mlp, opts.text_len).map_err(config_err)?;
    let map = key_map(&Shape {
        hidden: cfg.hidden(),
        channels: cfg.in_channels,
        out_channels: cfg.out_channels(),
        patch: cfg.patch_size,
        caption: model.text_dim,
        mlp,
        depth: cfg.num_layers,
    });
    let theirs: Vec<(String, Vec<usize>)> = map.iter().flat_map(|m| m.theirs.clone()).collect();
    let what = "a diffusers PixArt transformer of this config";
    check_tensors(&src, &theirs, |_| false, what)?;
    Ok(ImportPlan {
        cfg,
        model,
        map,
        src,
    })
}

/// Imports a diffusers PixArt transformer (`model.safetensors` + its `config.json`) as a
/// freezeframe image checkpoint that `[init] from` accepts.
pub fn import_pixart(
    weights: &Path,
    config: &Path,
    out: &Path,
    opts: ImportOptions,
) -> Result<Imported, InteropError> {
    let ImportPlan {
        cfg,
        model,
        map,
        mut src,
    } = plan_import(weights, config, opts)?;
    let null_shape = vec![opts.text_len, model.text_dim];
    let mut tensors: Vec<(String, Vec<usize>)> = map.iter().map(|m| m.ours.clone()).collect();
    tensors.push((NULL_CAPTION.to_string(), null_shape.clone()));
    let by_name: HashMap<&str, &Mapping> = map.iter().map(|m| (m.ours.0.as_str(), m)).collect();
    write_f32(out, ("format", "freezeframe-stdit"), &tensors, |name| {
        if name == NULL_CAPTION {
            return Ok(freezeframe_model::init::initial_values(
                name,
                &null_shape,
                opts.seed,
            ));
        }
        let m = by_name
            .get(name)
            .ok_or_else(|| weights_err(out, format!("{name} is not in the key map")))?;
        let parts = m
            .theirs
            .iter()
            .map(|(t, _)| src.read_f32(t))
            .collect::<Result<Vec<_>, _>>()?;
        // Every diffusers tensor of one mapping has the same row length.
        let row_len = m.theirs.first().map_or(1, |t| t.1.iter().skip(1).product());
        Ok(apply(&m.rule, parts, row_len))
    })?;
    Ok(Imported {
        model,
        tensors: tensors.len(),
        dropped_variance: cfg.out_channels() != cfg.in_channels,
    })
}

/// diffusers tensors (row-major, rows of `row_len`) → the freezeframe tensor.
fn apply(rule: &Rule, parts: Vec<Vec<f32>>, row_len: usize) -> Vec<f32> {
    match rule {
        Rule::Copy | Rule::ConcatRows => parts.concat(),
        // Shapes were checked against the key map, so every kept row is inside the tensor.
        Rule::KeepRows(rows) => {
            // No source tensor gives no values, which the writer rejects as the wrong length.
            let Some(src) = parts.first() else {
                return Vec::new();
            };
            rows.iter()
                .filter_map(|&r| src.get(r * row_len..(r + 1) * row_len))
                .flatten()
                .copied()
                .collect()
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    pub weights: PathBuf,
    pub config: PathBuf,
    /// freezeframe tensors with no diffusers place (temporal attention, null caption).
    pub skipped: Vec<String>,
}

/// The export's two files in `out_dir` (created if missing), neither of which may exist yet.
fn fresh_outputs(out_dir: &Path) -> Result<(PathBuf, PathBuf), InteropError> {
    std::fs::create_dir_all(out_dir).map_err(|e| InteropError::File {
        path: out_dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let weights = out_dir.join("diffusion_pytorch_model.safetensors");
    let config = out_dir.join("config.json");
    for f in [&weights, &config] {
        if f.exists() {
            return Err(InteropError::File {
                path: f.clone(),
                message: "exists; choose another output folder".into(),
            });
        }
    }
    Ok((weights, config))
}

/// Each diffusers tensor of `map`: the freezeframe tensor it comes from, its first row there
/// and its row count (a fused q/k/v splits into three consecutive row ranges).
fn row_sources(map: &[Mapping]) -> HashMap<String, (String, usize, usize)> {
    let mut parts = HashMap::new();
    for m in map {
        let mut row = 0;
        for (t, shape) in &m.theirs {
            let rows = shape.first().copied().unwrap_or(1);
            parts.insert(t.clone(), (m.ours.0.clone(), row, rows));
            row += rows;
        }
    }
    parts
}

/// Whether a freezeframe tensor (or layer) path has a place in diffusers' PixArt transformer:
/// the temporal attention and the null caption have none, so the PixArt export leaves them out.
pub fn has_diffusers_place(path: &str) -> bool {
    path != NULL_CAPTION && !path.contains(".attn_temp.")
}

/// diffusers' config of a freezeframe model written out, and its key map: the output is
/// diffusers' whole output (no learned-variance half to keep or drop). A model diffusers'
/// PixArt cannot hold is an error naming `checkpoint`.
pub(crate) fn export_layout(
    model: &StdiTConfig,
    checkpoint: &Path,
) -> Result<(PixartConfig, Vec<Mapping>), InteropError> {
    let cfg = PixartConfig::from_stdit(model).map_err(|message| InteropError::Config {
        path: checkpoint.to_path_buf(),
        message: format!("cannot be written as diffusers' PixArt: {message}"),
    })?;
    let map = key_map(&Shape {
        hidden: model.hidden,
        channels: model.channels,
        out_channels: model.channels,
        patch: model.patch,
        caption: model.text_dim,
        mlp: model.mlp_hidden(),
        depth: model.depth,
    });
    Ok((cfg, map))
}

/// Writes the spatial part of the freezeframe model `model` stored at `checkpoint` as a
/// diffusers `PixArtTransformer2DModel` folder: `out_dir/diffusion_pytorch_model.safetensors`
/// and `out_dir/config.json`. Existing files are never replaced.
pub fn export_pixart(
    model: &StdiTConfig,
    checkpoint: &Path,
    out_dir: &Path,
) -> Result<Exported, InteropError> {
    let (cfg, map) = export_layout(model, checkpoint)?;
    let mut src = Source::open(checkpoint)?;
    let ours: Vec<(String, Vec<usize>)> = map.iter().map(|m| m.ours.clone()).collect();
    let what = "a freezeframe model of this config";
    let skipped = check_tensors(&src, &ours, |n| !has_diffusers_place(n), what)?;
    let (weights, config) = fresh_outputs(out_dir)?;
    let text = serde_json::to_string_pretty(&cfg).map_err(|e| InteropError::File {
        path: config.clone(),
        message: e.to_string(),
    })?;
    let parts = row_sources(&map);
    let theirs: Vec<(String, Vec<usize>)> = map.iter().flat_map(|m| m.theirs.clone()).collect();
    write_f32(&weights, ("format", "pt"), &theirs, |name| {
        let (ours, start, rows) = parts
            .get(name)
            .ok_or_else(|| weights_err(checkpoint, format!("{name} is not in the key map")))?;
        let all = src.read_f32(ours)?;
        let first = src.info(ours).and_then(|i| i.shape.first().copied());
        let row_len = all.len() / first.unwrap_or(1).max(1);
        all.get(start * row_len..(start + rows) * row_len)
            .map(<[f32]>::to_vec)
            .ok_or_else(|| weights_err(checkpoint, format!("{ours} is too short for {name}")))
    })?;
    // The pair or nothing: the weights this call wrote go if their config cannot follow.
    if let Err(e) = write_new(&config, text.as_bytes()) {
        let _ = std::fs::remove_file(&weights);
        return Err(e);
    }
    Ok(Exported {
        weights,
        config,
        skipped,
    })
}

/// The `[model]` section of a run config that builds `m` (for the user to paste). Activation
/// names come from their serde form, the one the config parser reads.
pub fn model_section(m: &StdiTConfig) -> String {
    let name = |a: freezeframe_model::Activation| {
        serde_json::to_string(&a).unwrap_or_else(|_| format!("{a:?}"))
    };
    let mut s = format!(
        "[model]\nhidden = {}\ndepth = {}\nheads = {}\npatch = {}\nmlp_ratio = {:?}\ntext_dim = {}\n\
         text_len = {}\nmlp_act = {}\ncaption_act = {}\npos_scale = {:?}\n",
        m.hidden,
        m.depth,
        m.heads,
        m.patch,
        m.mlp_ratio,
        m.text_dim,
        m.text_len,
        name(m.mlp_act),
        name(m.caption_act),
        m.pos_scale,
    );
    if let Some(b) = m.pos_base {
        s += &format!("pos_base = {b}\n");
    }
    if m.channels != 3 {
        // A latent model: it trains on a latent cache (`[data] kind = "latents"`).
        s += &format!("in_channels = {}\n", m.channels);
    }
    s
}
