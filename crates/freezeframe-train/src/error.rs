use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("cannot read config {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Config { path: PathBuf, message: String },
    /// A `[model]` section that does not make a model (the message names the key).
    #[error("invalid [model]: {0}")]
    Model(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// A run folder's record (`eval.json`, `metrics.jsonl`) that this build cannot read.
    #[error("{path}: {message}")]
    RunFile { path: PathBuf, message: String },
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error(
        "run folder {0} already exists; pass --resume to continue it or choose another run name"
    )]
    RunExists(PathBuf),
    #[error("no complete checkpoint under {0}")]
    NoCheckpoint(PathBuf),
    #[error(transparent)]
    Text(#[from] freezeframe_model::TextError),
    #[error(transparent)]
    Gif(#[from] freezeframe_data::gif_out::GifError),
    #[error(transparent)]
    World(#[from] freezeframe_data::world::WorldError),
    #[error("[data]: {0}")]
    Data(String),
    #[error(transparent)]
    Plan(#[from] freezeframe_plan::PlanError),
    #[error("[init]: {0}")]
    Init(String),
    #[error("not a number: {0}")]
    NonFinite(String),
    #[error("{dir} is in use by another process (pid {pid}); wait for it or stop it")]
    Locked { dir: PathBuf, pid: String },
    #[error("backend: {0}")]
    Backend(String),
    #[error("training diverged at step {step}: loss is {loss}")]
    Diverged { step: usize, loss: f32 },
}

pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TrainError {
    let context = context.into();
    move |source| TrainError::Io { context, source }
}
