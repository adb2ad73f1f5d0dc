//! The study folder's marker, `study.json`. Written when a study first claims a folder, it
//! makes `--out` safe — a non-empty folder without it is refused, never written into — and it
//! records the claims and α as they stood before the runs, so that the report can say whether
//! the decision rules were edited once results existed.
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{AblationConfig, Claim};
use crate::error::{LabError, io};
use crate::files::{read_json, write_json_atomic};

const FORMAT: u32 = 1;
const FILE: &str = "study.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Marker {
    format: u32,
    name: String,
    alpha: f64,
    claims: Vec<Claim>,
    /// When the claims were recorded.
    recorded: String,
}

/// What the report says about the decision rules.
#[derive(Debug, Clone, Serialize)]
pub struct Preregistration {
    pub recorded: String,
    /// The claims and α are those recorded.
    pub unchanged: bool,
}

fn err(out: &Path, message: String) -> LabError {
    LabError::Config {
        path: out.to_path_buf(),
        message,
    }
}

fn read(out: &Path) -> Result<Marker, LabError> {
    let path = out.join(FILE);
    let m: Marker = read_json(&path, "corrupt study marker")?;
    if m.format != FORMAT {
        return Err(err(
            &path,
            format!("marker format {} (this build reads {FORMAT})", m.format),
        ));
    }
    Ok(m)
}

/// The folder names of the runs marked finished (holding `ablate.json`) under `out/runs/`,
/// sorted; none when there is no such folder.
pub fn finished_runs(out: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(out.join("runs")) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .filter(|e| e.path().join("ablate.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Makes `out` this study's folder, or checks that it already is.
pub fn claim(ab: &AblationConfig, out: &Path) -> Result<(), LabError> {
    if out.join(FILE).is_file() {
        let m = read(out)?;
        if m.name != ab.name {
            return Err(err(
                out,
                format!(
                    "holds the study `{}`, not `{}`; choose another --out",
                    m.name, ab.name
                ),
            ));
        }
        return Ok(());
    }
    let empty = match std::fs::read_dir(out) {
        Ok(mut rd) => rd.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(io(format!("read {}", out.display()))(e)),
    };
    let recorded = if empty {
        "before any run".to_string()
    } else {
        match finished_runs(out).len() {
            0 => {
                return Err(err(
                    out,
                    format!(
                        "is not empty and holds no {FILE}: not a study folder; choose another --out (nothing was written)"
                    ),
                ));
            }
            n => format!(
                "after {n} runs had finished (the folder was made by a build that did not record them)"
            ),
        }
    };
    std::fs::create_dir_all(out).map_err(io(format!("create {}", out.display())))?;
    let m = Marker {
        format: FORMAT,
        name: ab.name.clone(),
        alpha: ab.alpha,
        claims: ab.claims.clone(),
        recorded,
    };
    write_json_atomic(&out.join(FILE), &m)
}

/// The name of the study that claimed `out`.
pub fn study_name(out: &Path) -> Result<String, LabError> {
    Ok(read(out)?.name)
}

pub fn preregistration(ab: &AblationConfig, out: &Path) -> Result<Preregistration, LabError> {
    let m = read(out)?;
    Ok(Preregistration {
        recorded: m.recorded,
        unchanged: m.claims == ab.claims && m.alpha == ab.alpha,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ab() -> AblationConfig {
        let text = "name = \"t\"\nbase = \"b.toml\"\nstrategies = [\"full\"]\nseeds = [0]\n";
        AblationConfig::parse(text, Path::new("a.toml")).expect("config")
    }

    #[test]
    fn a_foreign_folder_is_refused_untouched_and_edited_claims_are_flagged() {
        let dir = std::env::temp_dir().join(format!("ff-marker-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("notes.txt"), "mine").expect("write");
        let e = claim(&ab(), &dir)
            .expect_err("foreign folder accepted")
            .to_string();
        assert!(e.contains("not a study folder"), "{e}");
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 1);

        let fresh = dir.join("study");
        claim(&ab(), &fresh).expect("new folder");
        claim(&ab(), &fresh).expect("own folder again");
        assert!(preregistration(&ab(), &fresh).expect("marker").unchanged);
        let mut edited = ab();
        edited.alpha = 0.1;
        assert!(!preregistration(&edited, &fresh).expect("marker").unchanged);
        let mut other = ab();
        other.name = "u".into();
        assert!(claim(&other, &fresh).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
