//! freezeframe training plans: which parameters learn, when, and how fast.
//!
//! A plan is a TOML file (or a built-in preset) that selects parameters by path glob into named
//! groups, splits the run into phases that each train some groups, and sets per-group learning
//! rate multipliers, layer-wise decay and weight-decay exemptions. [`resolve`] checks it against a
//! model's parameter paths before any training and turns it into per-parameter decisions the
//! trainer applies. The model knows nothing of plans.
pub mod error;
pub mod explain;
pub mod lora;
pub mod presets;
pub mod resolve;
pub mod selector;
pub mod spec;

pub use error::PlanError;
pub use explain::{PhaseTotals, explain, phase_totals};
pub use lora::{LoraTarget, adapter_layer, targets as lora_targets};
pub use presets::{LoadedPlan, PRESETS, load, parse};
pub use resolve::{ParamMeta, ParamPlan, Phase, ResolvedPlan, resolve};
pub use spec::{Init, LoraSpec, PlanSpec};
