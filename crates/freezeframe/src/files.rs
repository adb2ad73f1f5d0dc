//! Files the commands write.
use std::path::Path;

use anyhow::{Result, bail};

/// Files a command writes are never the user's existing files: refused before any work.
pub fn refuse_existing(paths: &[&Path]) -> Result<()> {
    for p in paths {
        if p.exists() {
            bail!(
                "{} exists and is never replaced: pass another --out or move it away",
                p.display()
            );
        }
    }
    Ok(())
}
