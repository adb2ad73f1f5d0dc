//! `metrics.jsonl`: one JSON object per line, flushed as written so a crash loses nothing.
//! Every line is a [`Record`], the one schema the trainer writes and the lab reads.
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use freezeframe_eval::nan;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{TrainError, io};

/// One line of `metrics.jsonl`, written as its kind's fields alone (plain JSON lines) and read by
/// [`Record::from_value`], which tells the kind by its keys so that an error names the field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Record {
    PhaseStart(PhaseStart),
    PhaseEnd(PhaseEnd),
    Loss(LossRecord),
    Val(ValRecord),
    Groups(GroupsRecord),
}

impl Record {
    /// The record of one line: its kind told by its keys (`event`, `loss`, `val_loss`,
    /// `groups`), then read with that kind's fields, so that an error names the field.
    pub fn from_value(v: Value) -> Result<Self, String> {
        let Some(fields) = v.as_object() else {
            return Err(format!("not a JSON object: {v}"));
        };
        let has = |k: &str| fields.contains_key(k);
        let kind = match fields.get("event") {
            Some(e) if e == "phase_start" => "phase_start",
            Some(e) if e == "phase_end" => "phase_end",
            Some(e) => return Err(format!("unknown event {e}")),
            None if has("loss") => "loss",
            None if has("val_loss") => "val_loss",
            None if has("groups") => "groups",
            None => {
                let keys: Vec<&String> = fields.keys().collect();
                return Err(format!(
                    "no record kind has the keys {keys:?} (each has `event`, `loss`, `val_loss` or `groups`)"
                ));
            }
        };
        let r = match kind {
            "phase_start" => serde_json::from_value(v).map(Record::PhaseStart),
            "phase_end" => serde_json::from_value(v).map(Record::PhaseEnd),
            "loss" => serde_json::from_value(v).map(Record::Loss),
            "val_loss" => serde_json::from_value(v).map(Record::Val),
            _ => serde_json::from_value(v).map(Record::Groups),
        };
        r.map_err(|e| format!("a `{kind}` record: {e}"))
    }
}

/// `"event": "phase_start"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartTag {
    #[serde(rename = "phase_start")]
    PhaseStart,
}

/// `"event": "phase_end"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndTag {
    #[serde(rename = "phase_end")]
    PhaseEnd,
}

/// A phase begins (and at step 0): what trains in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseStart {
    pub step: usize,
    pub event: StartTag,
    pub phase: String,
    pub trainable_tensors: usize,
    pub trainable_params: usize,
    pub adam_state_bytes: usize,
}

/// A phase ends: its peak resident memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseEnd {
    pub step: usize,
    pub event: EndTag,
    pub phase: String,
    #[serde(deserialize_with = "nan::f64")]
    pub peak_rss_mib: f64,
}

/// Means over the steps since the previous loss record, and their speed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossRecord {
    pub step: usize,
    #[serde(deserialize_with = "nan::f32")]
    pub loss: f32,
    #[serde(deserialize_with = "nan::f64")]
    pub lr: f64,
    #[serde(deserialize_with = "nan::f32")]
    pub grad_norm: f32,
    #[serde(deserialize_with = "nan::f64")]
    pub it_s: f64,
    /// Absent in the loss lines of early builds.
    #[serde(default)]
    pub phase: String,
}

/// Validation loss of the training weights, mean and per timestep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValRecord {
    pub step: usize,
    #[serde(deserialize_with = "nan::f32")]
    pub val_loss: f32,
    #[serde(deserialize_with = "nan::pairs_f32")]
    pub val_loss_by_t: Vec<(f32, f32)>,
}

/// Per plan group diagnostics of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsRecord {
    pub step: usize,
    #[serde(default)]
    pub phase: String,
    pub groups: BTreeMap<String, GroupRow>,
}

/// One group's figures; a figure not measured this step is absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    /// ‖Δw‖ / ‖w‖ of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_ratio: Option<f64>,
    /// The gradient norm the group would get if it were not frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_grad_norm: Option<f64>,
}

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

    pub fn write(&mut self, record: &Record) -> Result<(), TrainError> {
        let ctx = || format!("write {}", self.path.display());
        let line = serde_json::to_string(record).map_err(|e| TrainError::RunFile {
            path: self.path.clone(),
            message: format!("unwritable metrics record: {e}"),
        })?;
        writeln!(self.file, "{line}").map_err(io(ctx()))?;
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
    let text = freezeframe_fs::read_text(path).map_err(io(format!("read {}", path.display())))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// All records of a metrics file. A line that is not JSON (the torn last line of a killed run)
/// is skipped; a JSON line that is no [`Record`] is an error naming the file and line, so a
/// renamed field is never read as a missing figure.
pub fn read(path: &Path) -> Result<Vec<Record>, TrainError> {
    let mut out = Vec::new();
    for (i, line) in read_lines(path)?.iter().enumerate() {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let record = Record::from_value(value).map_err(|e| TrainError::RunFile {
            path: path.to_path_buf(),
            message: format!(
                "line {}: not a metrics record this build can read ({e}): {line}",
                i + 1
            ),
        })?;
        out.push(record);
    }
    Ok(out)
}

/// Writes the training-loss records as CSV (step, loss, lr, grad_norm, it_s) beside the JSONL.
pub fn write_csv(jsonl: &Path, csv: &Path) -> Result<(), TrainError> {
    let mut out = String::from("step,loss,lr,grad_norm,it_s\n");
    for r in read(jsonl)? {
        if let Record::Loss(r) = r {
            out.push_str(&format!(
                "{},{},{},{},{}\n",
                r.step,
                json_number(r.loss as f64),
                json_number(r.lr),
                json_number(r.grad_norm as f64),
                json_number(r.it_s)
            ));
        }
    }
    std::fs::write(csv, out).map_err(io(format!("write {}", csv.display())))
}

/// A float as JSON writes an f64 (an f32 widened: 0.1 reads 0.10000000149011612, as in the
/// CSVs of earlier builds); non-finite as an empty cell.
fn json_number(x: f64) -> String {
    if x.is_finite() {
        serde_json::Value::from(x).to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss_line() -> &'static str {
        r#"{"step":50,"loss":0.5,"lr":0.001,"grad_norm":0.25,"it_s":4.0,"phase":"all"}"#
    }

    #[test]
    fn each_kind_reads_back_as_written() {
        let lines = [
            r#"{"step":0,"event":"phase_start","phase":"all","trainable_tensors":3,"trainable_params":10,"adam_state_bytes":80}"#,
            loss_line(),
            r#"{"step":50,"phase":"all","groups":{"rest":{"frozen_grad_norm":2.0},"temporal":{"grad_norm":0.5}}}"#,
            r#"{"step":100,"val_loss":0.25,"val_loss_by_t":[[0.5,0.25]]}"#,
            r#"{"step":100,"event":"phase_end","phase":"all","peak_rss_mib":12.5}"#,
        ];
        for line in lines {
            let r = Record::from_value(serde_json::from_str(line).unwrap()).unwrap();
            assert_eq!(serde_json::to_string(&r).unwrap(), line);
        }
    }

    #[test]
    fn a_renamed_field_fails_the_read_naming_the_line() {
        let dir = std::env::temp_dir().join(format!("ff-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.jsonl");
        let renamed = loss_line().replace("\"loss\"", "\"train_loss\"");
        std::fs::write(&path, format!("{}\n{renamed}\n{{\"step\":7", loss_line())).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("train_loss"), "{e}");
        // A line that is JSON but no object says so (not "no record kind has the keys []").
        let e = Record::from_value(serde_json::json!([1, 2])).unwrap_err();
        assert!(e.contains("not a JSON object"), "{e}");
        // A field renamed inside a known kind: `read` names the kind and the field itself
        // (serde's own message, not only the echoed line).
        let renamed = loss_line().replace("\"lr\"", "\"rate\"");
        std::fs::write(&path, format!("{renamed}\n")).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("a `loss` record: unknown field `rate`"), "{e}");
        // A loss line of an early build, without `phase`, still reads.
        let legacy = loss_line().replace(",\"phase\":\"all\"", "");
        std::fs::write(&path, format!("{legacy}\n")).unwrap();
        assert_eq!(read(&path).unwrap().len(), 1);
        // Without the renamed line, the torn last line is skipped.
        std::fs::write(&path, format!("{}\n{{\"step\":7", loss_line())).unwrap();
        assert_eq!(read(&path).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
