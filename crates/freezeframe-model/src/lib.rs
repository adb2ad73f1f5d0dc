//! STDiT, the spatio-temporal diffusion transformer of Open-Sora v1.0, written once on Burn.
//!
//! The model carries no training policy: which parameters learn is decided outside it, by
//! selecting the user-facing parameter paths listed by [`paths::param_table`], which are
//! Open-Sora's state-dict keys (`blocks.3.attn_temp.proj.weight`, ...).

pub mod config;
pub mod init;
pub mod lora;
pub mod paths;
pub mod stdit;
pub mod text;

pub use config::{Activation, StdiTConfig, TemporalPos};
pub use lora::{LoraError, LoraLayer};
pub use paths::{ParamInfo, param_table};
pub use stdit::{CaptionBatch, Stdit};
pub use text::{TextEncoder, TextError, WordEncoder};
