//! Real footage: Open-Sora-style CSV lists decoded with FFmpeg into a clip cache that training
//! and evaluation read.
pub mod cache;
pub mod csv_list;
pub mod ffmpeg;
pub mod latents;
pub mod prepare;

pub use cache::{ClipCache, PrepareSettings};
pub use csv_list::Skip;
pub use latents::{LatentCache, LatentIndex};
pub use prepare::{PrepareReport, prepare};

#[derive(Debug, thiserror::Error)]
pub enum RealError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{path}: {message}")]
    Csv { path: String, message: String },
    #[error("{0}")]
    FfmpegMissing(String),
    #[error("clip cache {path}: {message}")]
    Cache { path: String, message: String },
    #[error("no usable clip: all {skipped} inputs were skipped (reasons in {skipped_csv})")]
    Empty { skipped: usize, skipped_csv: String },
    #[error("{0}")]
    Settings(String),
}
