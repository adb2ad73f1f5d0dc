//! Checkpoints: `model.safetensors` and `ema.safetensors` under Open-Sora keys and PyTorch
//! layout (Linear weights [out, in]), `optimizer.bpk` (Burn's optimizer record), `state.json`
//! (format version, step, seed, plan and phase; written last). A checkpoint is written into `step-N.tmp/` and renamed when complete, so an
//! interrupted save never looks like a checkpoint.
use std::collections::HashMap;
use std::path::Path;

use burn::optim::ModuleOptimizer;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::Bytes;
use freezeframe_model::paths::map_values;
use freezeframe_model::{LoraLayer, Stdit};
use serde::{Deserialize, Serialize};

use crate::error::{TrainError, io};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub format_version: u32,
    /// Steps completed; training resumes at this step index.
    pub step: usize,
    pub seed: u64,
    /// The batch RNG is a pure function of (seed, step); recorded for readers.
    pub rng: String,
    /// The training plan (preset name or file) and the phase the next step belongs to.
    #[serde(default)]
    pub plan: String,
    #[serde(default)]
    pub phase: String,
}

/// Key remappings between Burn's field paths and Open-Sora's keys, from the model's one key
/// map (`freezeframe_model::paths::RENAMES`): (pattern, replacement) pairs, Burn → Open-Sora
/// when `to_opensora`, else back.
fn key_remappings(to_opensora: bool) -> impl Iterator<Item = (String, &'static str)> {
    freezeframe_model::paths::RENAMES
        .iter()
        .map(move |&(burn, os)| {
            let (from, to) = if to_opensora { (burn, os) } else { (os, burn) };
            (freezeframe_model::paths::prefix_pattern(from), to)
        })
}

fn ckpt_err(path: &Path, message: impl Into<String>) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Safetensors metadata key under which a model with frame slots records their count.
pub const FRAME_SLOTS_KEY: &str = "frame_slots";
/// Safetensors metadata key under which a model with LoRA adapters records them (JSON: layer,
/// rank, α), so that any reader rebuilds the adapters before loading their tensors.
pub const LORA_KEY: &str = "lora";

/// Headers larger than this are not safetensors files (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100_000_000;

/// The `__metadata__` of a safetensors file (read from its header alone).
pub fn file_metadata(path: &Path) -> Result<HashMap<String, String>, TrainError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(io(format!("open {}", path.display())))?;
    let len = f
        .metadata()
        .map_err(io(format!("stat {}", path.display())))?
        .len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|_| ckpt_err(path, format!("{len} bytes: not a safetensors file")))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER || n > len.saturating_sub(8) {
        return Err(ckpt_err(
            path,
            format!("not a safetensors file (header length {n} in a {len}-byte file)"),
        ));
    }
    let mut text = vec![0u8; n as usize];
    f.read_exact(&mut text)
        .map_err(io(format!("read {}", path.display())))?;
    let header: safetensors::tensor::Metadata = serde_json::from_slice(&text)
        .map_err(|e| ckpt_err(path, format!("not a safetensors header: {e}")))?;
    // `__metadata__` is optional in the format: a file written without it (any reader's failure
    // has returned above) has no keys, which callers read as "not recorded".
    match header.metadata() {
        Some(m) => Ok(m.clone()),
        None => Ok(HashMap::new()),
    }
}

/// Weights to start a run from (`[init] from`): [`load_model_partial`], except that adapters
/// the file carries are merged into their weights first — the file's model as it computes —
/// and never loaded into `model`'s own adapters, which keep their values and are reported
/// missing (a plan's adapters start fresh, whatever run the weights come from).
pub fn load_merged_partial(model: Stdit, path: &Path) -> Result<(Stdit, Vec<String>), TrainError> {
    if file_lora(path)?.is_empty() {
        return load_model_partial(model, path);
    }
    let (loaded, mut missing) = load_model_partial(model.clone().without_lora(), path)?;
    let mut values: HashMap<String, Vec<f32>> = HashMap::new();
    map_values(loaded.merge_lora(), |p, _, read| {
        values.insert(p.to_string(), read());
        None
    });
    let model = map_values(model, |p, _, _| {
        let v = values.remove(p);
        if v.is_none() && freezeframe_plan::adapter_layer(p).is_some() {
            missing.push(p.to_string());
        }
        v
    });
    Ok((model, missing))
}

/// The adapters a weights file records (none for files without the key).
fn file_lora(path: &Path) -> Result<Vec<LoraLayer>, TrainError> {
    match file_metadata(path)?.get(LORA_KEY) {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| ckpt_err(path, format!("unreadable `{LORA_KEY}` metadata: {e}"))),
    }
}

/// Writes a model as safetensors with Open-Sora keys.
pub fn save_model(model: &Stdit, path: &Path) -> Result<(), TrainError> {
    let mut store = SafetensorsStore::from_file(path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata("format", "freezeframe-stdit");
    if model.frame_slots > 0 {
        // What the weights alone cannot say: which frame positions the model has seen. The
        // inflation check reads it from the image weights (`FRAME_SLOTS_KEY`).
        store = store.metadata(FRAME_SLOTS_KEY, model.frame_slots.to_string());
    }
    let lora = model.lora_layers();
    if !lora.is_empty() {
        let text = serde_json::to_string(&lora).map_err(|e| ckpt_err(path, e.to_string()))?;
        store = store.metadata(LORA_KEY, text);
    }
    for (from, to) in key_remappings(true) {
        store = store.with_key_remapping(&from, to);
    }
    model
        .save_into(&mut store)
        .map_err(|e| ckpt_err(path, e.to_string()))
}

/// Loads safetensors with Open-Sora keys into `model`; every parameter must be present.
pub fn load_model(model: Stdit, path: &Path) -> Result<Stdit, TrainError> {
    let (model, missing) = load_model_partial(model, path)?;
    if !missing.is_empty() {
        return Err(ckpt_err(path, format!("missing tensors {missing:?}")));
    }
    Ok(model)
}

/// Loads every tensor the file has into `model`; returns the model and the Open-Sora paths the
/// file lacked (those keep their current values). Shape mismatches are errors. A model without
/// adapters loading a file with adapters gets the file's adapters first; a model whose adapters
/// differ from the file's is refused.
pub fn load_model_partial(model: Stdit, path: &Path) -> Result<(Stdit, Vec<String>), TrainError> {
    if !path.is_file() {
        return Err(ckpt_err(path, "file is missing"));
    }
    let mut lora = file_lora(path)?;
    let mut have = model.lora_layers();
    // Compared by layer, whatever order the file lists them in.
    lora.sort_by(|a, b| a.layer.cmp(&b.layer));
    have.sort_by(|a, b| a.layer.cmp(&b.layer));
    let mut model = if have.is_empty() && !lora.is_empty() {
        // The values are the file's; the seed only fills them until the load.
        model
            .with_lora(&lora, 0)
            .map_err(|e| ckpt_err(path, format!("its `{LORA_KEY}` metadata: {e}")))?
    } else if !lora.is_empty() && have != lora {
        return Err(ckpt_err(
            path,
            format!("holds LoRA adapters {lora:?}, the model has {have:?}"),
        ));
    } else {
        model
    };
    let mut store = SafetensorsStore::from_file(path)
        .with_from_adapter(PyTorchToBurnAdapter)
        .allow_partial(true);
    for (from, to) in key_remappings(false) {
        store = store.with_key_remapping(&from, to);
    }
    let result = model
        .load_from(&mut store)
        .map_err(|e| ckpt_err(path, format!("unreadable safetensors: {e}")))?;
    if !result.errors.is_empty() {
        return Err(ckpt_err(path, format!("errors {:?}", result.errors)));
    }
    // Adapter tensors the model has no place for would be dropped without a word.
    let stray: Vec<&String> = result
        .unused
        .iter()
        .filter(|k| freezeframe_plan::adapter_layer(k).is_some())
        .collect();
    if !stray.is_empty() {
        return Err(ckpt_err(
            path,
            format!("holds LoRA tensors without `{LORA_KEY}` metadata: {stray:?}"),
        ));
    }
    let missing = result
        .missing
        .iter()
        .map(|(p, _)| freezeframe_model::paths::to_opensora(p))
        .collect();
    Ok((model, missing))
}

/// Everything a checkpoint holds.
pub struct Checkpoint<'a> {
    pub model: &'a Stdit,
    pub ema: &'a Stdit,
    pub optimizer: &'a ModuleOptimizer,
    pub state: CheckpointState,
}

/// Writes `dir` atomically (via `dir.tmp` and a rename).
pub fn save(dir: &Path, ck: Checkpoint) -> Result<(), TrainError> {
    let tmp = dir.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(format!("remove stale {}", tmp.display())))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(format!("create {}", tmp.display())))?;
    save_model(ck.model, &tmp.join("model.safetensors"))?;
    save_model(ck.ema, &tmp.join("ema.safetensors"))?;
    let bytes = ck
        .optimizer
        .into_bytes()
        .map_err(|e| ckpt_err(&tmp, format!("optimizer record: {e}")))?;
    std::fs::write(tmp.join("optimizer.bpk"), &bytes[..]).map_err(io("write optimizer.bpk"))?;
    let state =
        serde_json::to_string_pretty(&ck.state).map_err(|e| ckpt_err(&tmp, e.to_string()))?;
    // state.json last: its presence marks the folder complete.
    std::fs::write(tmp.join("state.json"), state).map_err(io("write state.json"))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(format!("replace {}", dir.display())))?;
    }
    std::fs::rename(&tmp, dir).map_err(io(format!("rename {} → {}", tmp.display(), dir.display())))
}

pub fn load_state(dir: &Path) -> Result<CheckpointState, TrainError> {
    let p = dir.join("state.json");
    let text = freezeframe_fs::read_text(&p).map_err(|e| ckpt_err(&p, e.to_string()))?;
    let st: CheckpointState =
        serde_json::from_str(&text).map_err(|e| ckpt_err(&p, format!("corrupt state: {e}")))?;
    if st.format_version != FORMAT_VERSION {
        return Err(ckpt_err(
            &p,
            format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                st.format_version
            ),
        ));
    }
    Ok(st)
}

/// Restores optimizer state. Burn's record reader can panic on foreign input; a corrupt file
/// must be an error, so the panic is caught here.
pub fn load_optimizer(optim: ModuleOptimizer, dir: &Path) -> Result<ModuleOptimizer, TrainError> {
    let p = dir.join("optimizer.bpk");
    let raw = std::fs::read(&p).map_err(|e| ckpt_err(&p, e.to_string()))?;
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        optim.from_bytes(Bytes::from_bytes_vec(raw))
    }));
    match res {
        Ok(Ok(o)) => Ok(o),
        Ok(Err(e)) => Err(ckpt_err(&p, format!("corrupt optimizer record: {e}"))),
        Err(_) => Err(ckpt_err(&p, "corrupt optimizer record")),
    }
}
