//! The run folder layout.
use std::path::PathBuf;

use crate::config::RunConfig;
use crate::error::TrainError;

/// `runs/NAME/`: `config.toml` (resolved), `metrics.jsonl`, `metrics.csv`,
/// `checkpoints/step-NNNNNN/`, `samples/`.
#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
}

impl Run {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder of a config: `out_dir/name`.
    pub fn for_config(cfg: &RunConfig) -> Self {
        Self::new(cfg.out_dir.join(&cfg.name))
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    /// The plan's text as the run was started with it.
    pub fn plan_path(&self) -> PathBuf {
        self.dir.join("plan.toml")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
    pub fn metrics_csv_path(&self) -> PathBuf {
        self.dir.join("metrics.csv")
    }
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }
    pub fn samples_dir(&self) -> PathBuf {
        self.dir.join("samples")
    }

    /// The resolved config the run was started with.
    pub fn load_config(&self) -> Result<RunConfig, TrainError> {
        RunConfig::load(&self.config_path())
    }

    /// Complete checkpoints (folders `step-N` holding `state.json`), oldest first. Temporary
    /// folders of an interrupted save (`*.tmp`) are ignored.
    pub fn checkpoints(&self) -> Vec<(usize, PathBuf)> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.checkpoints_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if let Some(n) = name
                    .strip_prefix("step-")
                    .and_then(|s| s.parse::<usize>().ok())
                    && e.path().join("state.json").is_file()
                {
                    out.push((n, e.path()));
                }
            }
        }
        out.sort();
        out
    }

    pub fn latest_checkpoint(&self) -> Option<(usize, PathBuf)> {
        self.checkpoints().pop()
    }

    /// Takes the run folder's exclusive lock (`.lock`, see [`lock_file`]): one writer per run.
    pub fn lock(&self) -> Result<std::fs::File, TrainError> {
        lock_file(&self.dir.join(".lock"), &self.dir)
    }

    /// Checkpoint folder name for a step.
    pub fn checkpoint_dir(&self, step: usize) -> PathBuf {
        self.checkpoints_dir().join(format!("step-{step:06}"))
    }
}

/// Lower-case, dash-separated file stem for a prompt.
pub fn slug(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if s.is_empty() {
        "prompt".into()
    } else {
        s.chars().take(60).collect()
    }
}

/// Takes an exclusive advisory lock on the file `path` (created if missing), held until the
/// returned file is dropped and released by the OS if the process dies, and writes this
/// process's PID into it, so that a second writer on `what` is refused with the holder's PID
/// instead of corrupting it. Locks belong to an open file, so a process that holds one and asks
/// again is refused too: take each lock file once.
pub fn lock_file(
    path: &std::path::Path,
    what: &std::path::Path,
) -> Result<std::fs::File, TrainError> {
    use std::io::Write as _;
    let ctx = || format!("lock {}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(crate::error::io(ctx()))?;
    match f.try_lock() {
        Ok(()) => {
            f.set_len(0).map_err(crate::error::io(ctx()))?;
            f.write_all(std::process::id().to_string().as_bytes())
                .map_err(crate::error::io(ctx()))?;
            Ok(f)
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(TrainError::Locked {
            dir: what.to_path_buf(),
            pid: std::fs::read_to_string(path)
                .map(|p| p.trim().to_string())
                .unwrap_or_else(|e| format!("unknown: {e}")),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(crate::error::io(ctx())(e)),
    }
}

/// Writes `bytes` to `path` through `path.tmp` and a rename, so that a reader (or a process
/// killed mid-write) never leaves or sees half a file.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), TrainError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(crate::error::io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(crate::error::io(format!("rename to {}", path.display())))
}
