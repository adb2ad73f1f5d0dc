use std::path::PathBuf;

use freezeframe_train::TrainError;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("invalid ablation config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("strategy `{strategy}`: {source}")]
    Strategy {
        strategy: String,
        source: Box<TrainError>,
    },
    #[error("run {run}: {source}")]
    Run {
        run: PathBuf,
        source: Box<TrainError>,
    },
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Results { path: PathBuf, message: String },
    #[error("chart `{0}`")]
    Chart(String),
}

pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let context = context.into();
    move |source| LabError::Io { context, source }
}
