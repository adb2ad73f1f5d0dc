use thiserror::Error;

/// A plan that cannot be used. Every variant names where the plan came from (a file path or
/// `preset <name>`), the key and the offending value.
#[derive(Debug, Error)]
pub enum PlanError {
    #[error("{source_name}: {message}")]
    Parse {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: {key} = {value}: {message}")]
    Invalid {
        source_name: String,
        key: String,
        value: String,
        message: String,
    },
    #[error("unknown plan `{name}`: not a preset ({presets}) and no such file")]
    Unknown { name: String, presets: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}
