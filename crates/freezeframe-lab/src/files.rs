//! Study files are written whole or not at all: through a temporary file and a rename, so a
//! reader (a second `ablate`, a report) never sees a half-written file.
use std::path::Path;

use crate::error::{LabError, io};

pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), LabError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| LabError::Results {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LabError> {
    Ok(freezeframe_train::run::write_atomic(path, bytes)?)
}

/// Reads a study file written by [`write_json_atomic`]; `what` names it in a parse error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T, LabError> {
    let text = freezeframe_fs::read_text(path).map_err(io(format!("read {}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| LabError::Results {
        path: path.to_path_buf(),
        message: format!("{what}: {e}"),
    })
}
