//! Safetensors read and written one tensor at a time, so that converting a checkpoint never holds
//! more than a few tensors in memory.
//!
//! The `safetensors` crate parses and validates the header (`Metadata`) and lays out the file it
//! writes; its whole-file reader (`SafeTensors::deserialize`) needs the file in memory or behind
//! an `unsafe` memory map, so the tensor bytes are read here with plain seeks. The writer lays
//! the file out exactly as `safetensors::serialize` does (tensors sorted by dtype then name, the
//! header padded with spaces to 8 bytes), so a file written here is byte-identical to one the
//! Python `safetensors` package writes from the same tensors and metadata.
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use safetensors::Dtype;
use safetensors::tensor::{Metadata, TensorInfo};

use crate::error::InteropError;

/// Headers larger than this are not safetensors files (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100_000_000;

fn bad(path: &Path, message: impl Into<String>) -> InteropError {
    InteropError::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// An open safetensors file whose header has been read and checked against the file's length.
pub struct Source {
    path: PathBuf,
    file: File,
    header: Metadata,
    data_start: u64,
}

impl Source {
    pub fn open(path: &Path) -> Result<Self, InteropError> {
        let mut file = File::open(path).map_err(|e| bad(path, e.to_string()))?;
        let len = file.metadata().map_err(|e| bad(path, e.to_string()))?.len();
        let mut n = [0u8; 8];
        file.read_exact(&mut n).map_err(|_| {
            bad(
                path,
                format!("{len} bytes: too short to be a safetensors file"),
            )
        })?;
        let n = u64::from_le_bytes(n);
        if n > MAX_HEADER || n > len - 8 {
            return Err(bad(
                path,
                format!("not a safetensors file (header length {n} in a {len}-byte file)"),
            ));
        }
        let mut text = vec![0u8; n as usize];
        file.read_exact(&mut text)
            .map_err(|e| bad(path, e.to_string()))?;
        let header: Metadata = serde_json::from_slice(&text)
            .map_err(|e| bad(path, format!("not a safetensors header: {e}")))?;
        let data_start = 8 + n;
        let want = (header.data_len() as u64).checked_add(data_start);
        if want != Some(len) {
            let want = want.map_or("more than 2^64".to_string(), |w| w.to_string());
            return Err(bad(
                path,
                format!("the header describes {want} bytes but the file has {len} (truncated?)"),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            header,
            data_start,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names in file order.
    pub fn names(&self) -> Vec<String> {
        self.header.offset_keys()
    }

    /// Every tensor's name and shape, in file order.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.names()
            .into_iter()
            .filter_map(|n| self.info(&n).map(|i| (n.clone(), i.shape.clone())))
            .collect()
    }

    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.header.info(name)
    }

    /// The header's `__metadata__` entry.
    pub fn metadata(&self) -> Option<&HashMap<String, String>> {
        self.header.metadata().as_ref()
    }

    /// One tensor as f32 (from f32, f16, bf16 or f64), row-major.
    pub fn read_f32(&mut self, name: &str) -> Result<Vec<f32>, InteropError> {
        let info = self
            .header
            .info(name)
            .ok_or_else(|| bad(&self.path, format!("no tensor {name:?}")))?
            .clone();
        let (start, end) = info.data_offsets;
        let mut bytes = vec![0u8; end - start];
        self.file
            .seek(SeekFrom::Start(self.data_start + start as u64))
            .and_then(|_| self.file.read_exact(&mut bytes))
            .map_err(|e| bad(&self.path, format!("reading {name}: {e}")))?;
        let values = decode(&bytes, info.dtype).ok_or_else(|| {
            bad(
                &self.path,
                format!(
                    "{name} has dtype {:?}; f32, f16, bf16 or f64 expected",
                    info.dtype
                ),
            )
        })?;
        // Weights that are not numbers (or f64 beyond f32's range) would train or sample to
        // NaN far from their cause: refused here, naming the tensor.
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(bad(
                &self.path,
                format!(
                    "{name} holds {} at index {i} of {}: weights must be finite numbers",
                    values[i],
                    values.len()
                ),
            ));
        }
        Ok(values)
    }
}

fn decode(bytes: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
    let v = match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                f64::from_le_bytes(a) as f32
            })
            .collect(),
        _ => return None,
    };
    Some(v)
}

/// Writes an f32 safetensors file at `path`, asking `produce` for each tensor's values in file
/// order. The file appears only when complete (see [`publish`]); an existing file is never
/// replaced.
pub fn write_f32<F>(
    path: &Path,
    metadata: (&str, &str),
    tensors: &[(String, Vec<usize>)],
    mut produce: F,
) -> Result<(), InteropError>
where
    F: FnMut(&str) -> Result<Vec<f32>, InteropError>,
{
    if path.exists() {
        return Err(bad(path, "exists; choose another output path"));
    }
    let mut order: Vec<&(String, Vec<usize>)> = tensors.iter().collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    let header = header_bytes(path, metadata, &order)?;
    publish(path, |file| {
        let mut out = BufWriter::new(file);
        let io = |e: std::io::Error| bad(path, e.to_string());
        out.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(io)?;
        out.write_all(&header).map_err(io)?;
        for (name, shape) in order {
            let values = produce(name)?;
            if values.len() != shape.iter().product::<usize>() {
                return Err(bad(
                    path,
                    format!("{name}: {} values for shape {shape:?}", values.len()),
                ));
            }
            for v in values {
                out.write_all(&v.to_le_bytes()).map_err(io)?;
            }
        }
        out.flush().map_err(io)
    })
}

/// Writes a small file at `path` with the same guarantees as [`write_f32`].
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<(), InteropError> {
    publish(path, |mut file| {
        file.write_all(bytes).map_err(|e| bad(path, e.to_string()))
    })
}

/// Runs `write` on a fresh `<path>.partial` and, if it succeeds, links that file in as `path`.
/// Neither step replaces anything: the partial file is created only if absent (one left by an
/// interrupted run is the user's to remove), and the link fails if `path` appeared meanwhile.
/// On any failure only the partial file this call created is removed.
fn publish<W>(path: &Path, write: W) -> Result<(), InteropError>
where
    W: FnOnce(File) -> Result<(), InteropError>,
{
    let partial = partial_path(path);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .map_err(|e| {
            bad(
                &partial,
                format!("cannot create it ({e}); if it is left from an interrupted run, remove it"),
            )
        })?;
    let result = write(file).and_then(|()| {
        std::fs::hard_link(&partial, path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => bad(path, "exists; choose another output path"),
            _ => bad(path, e.to_string()),
        })
    });
    // The partial file is ours in every case: after a successful link it is a second name.
    let _ = std::fs::remove_file(&partial);
    result
}

fn partial_path(path: &Path) -> PathBuf {
    // A path with no file name cannot be created anyway; the fallback only names the error.
    let mut name = path
        .file_name()
        .unwrap_or(std::ffi::OsStr::new("output"))
        .to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// The header as `safetensors::serialize` lays it out.
fn header_bytes(
    path: &Path,
    metadata: (&str, &str),
    order: &[&(String, Vec<usize>)],
) -> Result<Vec<u8>, InteropError> {
    let mut offset = 0;
    let infos = order
        .iter()
        .map(|(name, shape)| {
            let n = shape.iter().product::<usize>() * 4;
            let info = TensorInfo {
                dtype: Dtype::F32,
                shape: shape.clone(),
                data_offsets: (offset, offset + n),
            };
            offset += n;
            (name.clone(), info)
        })
        .collect();
    let meta = HashMap::from([(metadata.0.to_string(), metadata.1.to_string())]);
    let header = Metadata::new(Some(meta), infos).map_err(|e| bad(path, format!("header: {e}")))?;
    let mut bytes = serde_json::to_string(&header)
        .map_err(|e| bad(path, format!("header: {e}")))?
        .into_bytes();
    bytes.resize(bytes.len().next_multiple_of(8), b' ');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty folder, removed when the returned guard drops.
    fn tmp(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("ff-st-{name}-"))
            .tempdir()
            .expect("a temporary folder")
    }

    #[test]
    fn written_files_read_back_and_match_the_crates_own_serializer() {
        let d_tmp = tmp("rt");
        let d = d_tmp.path().to_path_buf();
        let p = d.join("a.safetensors");
        let tensors = vec![("z".to_string(), vec![2, 3]), ("a.b".to_string(), vec![4])];
        let vals = |n: &str| -> Result<Vec<f32>, InteropError> {
            Ok(match n {
                "z" => (0..6).map(|i| i as f32 * 0.5).collect(),
                _ => vec![1.0, -2.0, 3.5, 0.25],
            })
        };
        write_f32(&p, ("format", "pt"), &tensors, vals).unwrap();
        let mut s = Source::open(&p).unwrap();
        assert_eq!(s.names(), vec!["a.b", "z"]);
        assert_eq!(s.read_f32("z").unwrap(), vals("z").unwrap());

        // The crate's own serializer, from the same tensors, gives the same bytes.
        let z: Vec<u8> = vals("z")
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let ab: Vec<u8> = vals("a.b")
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let views = vec![
            (
                "z",
                safetensors::tensor::TensorView::new(Dtype::F32, vec![2, 3], &z).unwrap(),
            ),
            (
                "a.b",
                safetensors::tensor::TensorView::new(Dtype::F32, vec![4], &ab).unwrap(),
            ),
        ];
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        let theirs = safetensors::serialize(views, Some(meta)).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), theirs);

        // Never replaces a file.
        let e = write_f32(&p, ("format", "pt"), &tensors, vals).unwrap_err();
        assert!(e.to_string().contains("exists"), "{e}");
    }

    #[test]
    fn truncated_and_foreign_files_are_named_errors() {
        let d_tmp = tmp("bad");
        let d = d_tmp.path().to_path_buf();
        let p = d.join("a.safetensors");
        write_f32(&p, ("format", "pt"), &[("x".into(), vec![8])], |_| {
            Ok(vec![0.5; 8])
        })
        .unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let cut = d.join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() - 4]).unwrap();
        let e = Source::open(&cut).err().unwrap().to_string();
        assert!(
            e.contains("truncated") && e.contains("cut.safetensors"),
            "{e}"
        );
        let junk = d.join("junk.safetensors");
        std::fs::write(&junk, b"GIF89a this is not a tensor file at all").unwrap();
        let e = Source::open(&junk).err().unwrap().to_string();
        assert!(e.contains("not a safetensors"), "{e}");
        std::fs::write(&junk, b"abc").unwrap();
        assert!(Source::open(&junk).is_err());
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let d_tmp = tmp("fail");
        let d = d_tmp.path().to_path_buf();
        let p = d.join("a.safetensors");
        let e = write_f32(&p, ("format", "pt"), &[("x".into(), vec![2])], |_| {
            Err(bad(Path::new("src"), "boom"))
        });
        assert!(e.is_err());
        assert!(!p.exists() && !partial_path(&p).exists());
    }

    #[test]
    fn half_precision_sources_decode() {
        let h: Vec<u8> = [1.5f32, -0.25]
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        assert_eq!(decode(&h, Dtype::F16).unwrap(), vec![1.5, -0.25]);
        let b: Vec<u8> = [2.0f32]
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect();
        assert_eq!(decode(&b, Dtype::BF16).unwrap(), vec![2.0]);
        assert!(decode(&[0u8; 4], Dtype::I32).is_none());
    }

    #[test]
    fn tensors_holding_nan_or_infinity_are_refused_naming_the_tensor() {
        let d_tmp = tmp("nan");
        let d = d_tmp.path().to_path_buf();
        for (name, bad_value) in [
            ("nan.safetensors", f32::NAN),
            ("inf.safetensors", f32::INFINITY),
        ] {
            let p = d.join(name);
            write_f32(
                &p,
                ("format", "pt"),
                &[("blocks.0.attn.qkv.weight".into(), vec![3])],
                |_| Ok(vec![0.5, bad_value, 1.0]),
            )
            .unwrap();
            let e = Source::open(&p)
                .unwrap()
                .read_f32("blocks.0.attn.qkv.weight")
                .unwrap_err();
            let e = e.to_string();
            assert!(
                e.contains("blocks.0.attn.qkv.weight") && e.contains("index 1") && e.contains(name),
                "{e}"
            );
        }
    }
}
