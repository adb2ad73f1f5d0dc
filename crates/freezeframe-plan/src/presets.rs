//! Built-in plans: the files under `configs/plans/`, embedded so the binary needs no data files.
use std::path::Path;

use crate::error::PlanError;
use crate::spec::PlanSpec;

/// (name, TOML) of every built-in plan.
pub const PRESETS: [(&str, &str); 9] = [
    ("full", include_str!("../../../configs/plans/full.toml")),
    (
        "temporal-only",
        include_str!("../../../configs/plans/temporal-only.toml"),
    ),
    ("staged", include_str!("../../../configs/plans/staged.toml")),
    (
        "freeze-text",
        include_str!("../../../configs/plans/freeze-text.toml"),
    ),
    (
        "freeze-text-embedder",
        include_str!("../../../configs/plans/freeze-text-embedder.toml"),
    ),
    (
        "layerwise-lr",
        include_str!("../../../configs/plans/layerwise-lr.toml"),
    ),
    (
        "scratch",
        include_str!("../../../configs/plans/scratch.toml"),
    ),
    (
        "lora-temporal",
        include_str!("../../../configs/plans/lora-temporal.toml"),
    ),
    (
        "lora-all",
        include_str!("../../../configs/plans/lora-all.toml"),
    ),
];

pub fn preset_names() -> String {
    PRESETS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A plan as loaded: its name (preset name or file path), its text and the parsed spec.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedPlan {
    pub name: String,
    pub text: String,
    pub spec: PlanSpec,
}

/// Parses plan text; `source_name` labels errors.
pub fn parse(source_name: &str, text: &str) -> Result<LoadedPlan, PlanError> {
    let spec: PlanSpec = toml::from_str(text).map_err(|e| PlanError::Parse {
        source_name: source_name.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    Ok(LoadedPlan {
        name: source_name.to_string(),
        text: text.to_string(),
        spec,
    })
}

/// A preset by name, or else a plan file (a relative path is relative to the working
/// directory; `RunConfig::load` already makes a path in a config relative to the config).
pub fn load(name_or_path: &str) -> Result<LoadedPlan, PlanError> {
    if let Some((name, text)) = PRESETS.iter().find(|(n, _)| *n == name_or_path) {
        return parse(name, text);
    }
    let path = Path::new(name_or_path);
    if !path.is_file() {
        return Err(PlanError::Unknown {
            name: name_or_path.to_string(),
            presets: preset_names(),
        });
    }
    let text = freezeframe_fs::read_text(path).map_err(|e| PlanError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    parse(&path.display().to_string(), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses() {
        for (name, text) in PRESETS {
            parse(name, text).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn unknown_keys_and_names_are_errors() {
        let e = parse("p.toml", "init = \"image\"\n[[phase]]\ntrian = [\"all\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.toml") && e.contains("trian"), "{e}");
        let e = load("no-such-plan").unwrap_err().to_string();
        assert!(
            e.contains("no-such-plan") && e.contains("temporal-only"),
            "{e}"
        );
    }
}
