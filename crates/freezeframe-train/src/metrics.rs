//! `metrics.jsonl`: one JSON object per line, flushed as written so a crash loses nothing.
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{TrainError, io};

pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    pub fn open(path: &Path) -> Result<Self, TrainError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io(format!("open {}", path.display())))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn write(&mut self, record: &Value) -> Result<(), TrainError> {
        let ctx = || format!("write {}", self.path.display());
        writeln!(self.file, "{record}").map_err(io(ctx()))?;
        self.file.flush().map_err(io(ctx()))
    }

    /// Drops records past `step` (those of steps a resumed run will redo).
    pub fn truncate_after(path: &Path, step: usize) -> Result<(), TrainError> {
        if !path.exists() {
            return Ok(());
        }
        let kept: Vec<String> = read_lines(path)?
            .into_iter()
            .filter(|l| {
                serde_json::from_str::<Value>(l)
                    .ok()
                    .and_then(|v| v.get("step").and_then(Value::as_u64))
                    .is_some_and(|s| s as usize <= step)
            })
            .collect();
        let mut text = kept.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        std::fs::write(path, text).map_err(io(format!("rewrite {}", path.display())))
    }
}

fn read_lines(path: &Path) -> Result<Vec<String>, TrainError> {
    let f = File::open(path).map_err(io(format!("open {}", path.display())))?;
    BufReader::new(f)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(io(format!("read {}", path.display())))
}

/// All records of a metrics file (lines that are not JSON are skipped).
pub fn read(path: &Path) -> Result<Vec<Value>, TrainError> {
    Ok(read_lines(path)?
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Writes the training-loss records as CSV (step, loss, lr, grad_norm, it_s) beside the JSONL.
pub fn write_csv(jsonl: &Path, csv: &Path) -> Result<(), TrainError> {
    let mut out = String::from("step,loss,lr,grad_norm,it_s\n");
    for r in read(jsonl)? {
        if r.get("loss").is_none() {
            continue;
        }
        // A key a record does not carry is an empty cell.
        let f = |k: &str| r.get(k).map_or_else(String::new, |v| v.to_string());
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            f("step"),
            f("loss"),
            f("lr"),
            f("grad_norm"),
            f("it_s")
        ));
    }
    std::fs::write(csv, out).map_err(io(format!("write {}", csv.display())))
}
