//! Open-Sora-style dataset lists: a CSV with header `path,text` and optional
//! `num_frames,height,width,fps` (other columns, e.g. `aspect_ratio`, `aes`, `flow`, are
//! ignored). Paths are relative to the CSV's folder. Malformed rows are returned as skips, not
//! errors, so one bad line never stops a preparation.
use std::path::{Path, PathBuf};

use super::RealError;

#[derive(Debug, Clone, PartialEq)]
pub struct ListEntry {
    /// 1-based line number in the CSV (header = line 1).
    pub line: usize,
    pub path: PathBuf,
    pub text: String,
    pub num_frames: Option<usize>,
    pub height: Option<usize>,
    pub width: Option<usize>,
    pub fps: Option<f32>,
}

/// An input that was left out, and why: a row the list refuses, or a video that fails to decode.
#[derive(Debug, Clone, PartialEq)]
pub struct Skip {
    /// CSV line (header = 1).
    pub line: usize,
    pub path: String,
    pub reason: String,
}

/// Reads the list; a missing file, an unreadable header or a header without `path` and `text`
/// is an error, everything row-level is a skip.
pub fn read_list(csv_path: &Path) -> Result<(Vec<ListEntry>, Vec<Skip>), RealError> {
    let text = freezeframe_fs::read_text(csv_path).map_err(|e| RealError::Io {
        path: csv_path.display().to_string(),
        message: e.to_string(),
    })?;
    let base = csv_path.parent().unwrap_or(Path::new("."));
    parse_list(&text, base, &csv_path.display().to_string())
}

pub fn parse_list(
    text: &str,
    base: &Path,
    label: &str,
) -> Result<(Vec<ListEntry>, Vec<Skip>), RealError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = rdr
        .headers()
        .map_err(|e| RealError::Csv {
            path: label.into(),
            message: e.to_string(),
        })?
        .clone();
    let col = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(ip), Some(it)) = (col("path"), col("text")) else {
        return Err(RealError::Csv {
            path: label.into(),
            message: format!(
                "the header must name `path` and `text` columns; it has {:?}",
                header.iter().collect::<Vec<_>>()
            ),
        });
    };
    let (inf, ih, iw, ifps) = (col("num_frames"), col("height"), col("width"), col("fps"));
    let mut entries = Vec::new();
    let mut skips = Vec::new();
    for (k, rec) in rdr.records().enumerate() {
        let line = k + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                skips.push(Skip {
                    line,
                    path: String::new(),
                    reason: format!("malformed CSV row: {e}"),
                });
                continue;
            }
        };
        let path = rec.get(ip).unwrap_or("").to_string();
        if rec.len() != header.len() {
            skips.push(Skip {
                line,
                path,
                reason: format!(
                    "malformed row: {} fields, the header has {}",
                    rec.len(),
                    header.len()
                ),
            });
            continue;
        }
        let text = rec.get(it).unwrap_or("").to_string();
        if path.is_empty() || text.is_empty() {
            skips.push(Skip {
                line,
                path,
                reason: "empty path or text".into(),
            });
            continue;
        }
        let num = |i: Option<usize>, name: &str| -> Result<Option<f64>, String> {
            match i.and_then(|i| rec.get(i)).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .map(Some)
                    .ok_or(format!("{name} = {v:?} is not a non-negative number")),
            }
        };
        let parsed = (|| -> Result<ListEntry, String> {
            Ok(ListEntry {
                line,
                path: base.join(&path),
                text: text.clone(),
                num_frames: num(inf, "num_frames")?.map(|v| v as usize),
                height: num(ih, "height")?.map(|v| v as usize),
                width: num(iw, "width")?.map(|v| v as usize),
                fps: num(ifps, "fps")?.map(|v| v as f32),
            })
        })();
        match parsed {
            Ok(e) => entries.push(e),
            Err(reason) => skips.push(Skip { line, path, reason }),
        }
    }
    Ok((entries, skips))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_open_sora_columns_and_skips_bad_rows() {
        let text = "path,text,num_frames,height,width,aspect_ratio,fps\n\
                    a.mp4,a person walks,100,576,768,0.75,25\n\
                    b.avi,\"a tree, swaying\",,,,,\n\
                    c.avi,too,few\n\
                    ,no path,1,1,1,1,1\n\
                    d.avi,bad fps,10,10,10,1,fast\n";
        let (e, s) = parse_list(text, Path::new("/data"), "list.csv").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].path, Path::new("/data/a.mp4"));
        assert_eq!((e[0].num_frames, e[0].fps), (Some(100), Some(25.0)));
        assert_eq!(e[1].text, "a tree, swaying");
        let lines: Vec<usize> = s.iter().map(|k| k.line).collect();
        assert_eq!(lines, vec![4, 5, 6]);
        assert!(
            s[0].reason.contains("3 fields") && s[2].reason.contains("fps"),
            "{s:?}"
        );
    }

    #[test]
    fn a_header_without_path_or_text_is_an_error() {
        let e = parse_list("file,caption\nx,y\n", Path::new("."), "list.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("list.csv") && e.contains("`path`"), "{e}");
    }
}
