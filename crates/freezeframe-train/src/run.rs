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
    /// A latent run's record of its cache: identity (`LatentCache::identity`), folder and the
    /// clips per size bucket of each split.
    pub fn latent_cache_path(&self) -> PathBuf {
        self.dir.join("latent-cache.json")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
    /// The evaluation's figures ([`crate::evaluate::EvalReport`]).
    pub fn eval_path(&self) -> PathBuf {
        self.dir.join("eval.json")
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

    /// The resolved config the run was started with. Its paths were resolved when the run
    /// started (against the user's config file), so they are read as written, not re-resolved
    /// against the run folder.
    pub fn load_config(&self) -> Result<RunConfig, TrainError> {
        let path = self.config_path();
        let text = freezeframe_fs::read_text(&path).map_err(|source| TrainError::ReadConfig {
            path: path.clone(),
            source,
        })?;
        RunConfig::parse(&text, &path)
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

    /// The backend to sample or evaluate this run on: `chosen`, else the one it trained on.
    pub fn backend(
        &self,
        chosen: Option<crate::runtime::Backend>,
    ) -> Result<crate::runtime::Backend, TrainError> {
        match chosen {
            Some(b) => Ok(b),
            None => Ok(self.load_config()?.runtime.backend),
        }
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

/// [`freezeframe_data::lock::lock_file`] on `path`, guarding the folder `what`: a second
/// writer gets [`TrainError::Locked`] with the holder's PID.
pub fn lock_file(
    path: &std::path::Path,
    what: &std::path::Path,
) -> Result<std::fs::File, TrainError> {
    use freezeframe_data::lock::LockError;
    freezeframe_data::lock::lock_file(path).map_err(|e| match e {
        LockError::Held { pid } => TrainError::Locked {
            dir: what.to_path_buf(),
            pid,
        },
        LockError::Io(e) => crate::error::io(format!("lock {}", path.display()))(e),
    })
}

/// Writes `bytes` to `path` through a temporary file and a rename, so that a reader (or a process
/// killed mid-write) never leaves or sees half a file.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), TrainError> {
    // A temporary name of this process and call: two writers of the same file (two `plan`s,
    // two tasks) never rename each other's half-written file into place.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}-{n}.tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let written = std::fs::write(&tmp, bytes)
        .map_err(crate::error::io(format!("write {}", tmp.display())))
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .map_err(crate::error::io(format!("rename to {}", path.display())))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
