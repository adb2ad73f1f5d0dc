use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InteropError {
    /// A file that cannot be read or written as expected.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// A model configuration freezeframe cannot represent, or one that the weights contradict.
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    /// Weights that do not fit the key map: missing, unmapped or misshapen tensors.
    #[error("{}: {message}", path.display())]
    Weights { path: PathBuf, message: String },
}
