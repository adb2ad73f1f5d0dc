//! A training run is a library call: [`train`] takes a [`RunConfig`] and a run folder and leaves
//! in it the resolved config, `metrics.jsonl`, atomic checkpoints and sample GIFs; everything
//! needed later (sampling, evaluation, resume) is read back from that folder alone.
pub mod batch;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod dataset;
pub mod diagnostics;
pub mod ema;
pub mod error;
pub mod evaluate;
pub mod grads;
pub mod inherit;
pub mod latent;
pub mod limits;
pub mod lr;
pub mod metrics;
pub mod plans;
pub mod probe;
pub mod progress;
pub mod run;
pub mod runtime;
pub mod sample;
pub mod trainer;
pub mod validate;

pub use config::RunConfig;
pub use error::TrainError;
pub use run::Run;
pub use trainer::{TrainOptions, TrainSummary, train};
