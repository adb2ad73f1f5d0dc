//! The ablation lab: Open-Sora #279's study as one command. An ablation config names a base
//! run, strategies (plans) and seeds; [`study::run_study`] trains every pair as a normal run
//! folder on an identical budget, evaluates each on the same prompts and noise, measures the
//! study's explanations (weight drift, CKA, would-be gradients), applies each claim's decision
//! rule and writes `report.md`, `report.html` and `results.json`.
pub mod charts;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod done;
pub mod error;
pub mod explain;
pub mod files;
pub mod grid;
pub mod image;
pub mod marker;
pub mod metrics;
pub mod report;
pub mod results;
pub mod stats;
pub mod study;
pub mod verdict;

pub use config::AblationConfig;
pub use error::LabError;
pub use results::{Meta, Results};
pub use study::{StudyOptions, StudyOutcome, run_study};
