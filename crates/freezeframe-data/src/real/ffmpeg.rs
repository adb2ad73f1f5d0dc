//! Decoding through the `ffmpeg` and `ffprobe` programs over pipes.
//!
//! Chosen over the `ffmpeg-next` bindings: those need libav*-dev, pkg-config and clang
//! (bindgen) at build time and pin an FFmpeg major version, while the default build must need
//! nothing installed; the programs are only needed when a dataset is prepared, any FFmpeg
//! version works, and a decoder crash on a hostile file kills a child process, not the run.
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::RealError;

/// What `ffprobe` reports for the first video stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub width: usize,
    pub height: usize,
    pub fps: Option<f32>,
    /// Frame count from the container header, when it has one.
    pub frames: Option<usize>,
    pub codec: String,
}

/// Frames decoded at size × size (shorter side resized, centre crop), RGB bytes.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub size: usize,
    /// Each `size·size·3` bytes, HWC.
    pub frames: Vec<Vec<u8>>,
}

fn missing(program: &str) -> RealError {
    RealError::FfmpegMissing(format!(
        "`{program}` was not found on PATH; preparing real videos needs FFmpeg \
         (Debian/Ubuntu: `apt-get install ffmpeg`, macOS: `brew install ffmpeg`). \
         The synthetic default never needs it."
    ))
}

/// A program that could not be started: missing (with install instructions) or otherwise.
fn spawn_error(program: &str, path: &Path, e: std::io::Error) -> RealError {
    if e.kind() == std::io::ErrorKind::NotFound {
        missing(program)
    } else {
        RealError::Io {
            path: path.display().to_string(),
            message: format!("cannot run `{program}`: {e}"),
        }
    }
}

/// Fails early, with install instructions, when the programs are absent.
pub fn check_available() -> Result<(), RealError> {
    for p in ["ffmpeg", "ffprobe"] {
        match Command::new(p)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing(p)),
            Err(e) => return Err(RealError::FfmpegMissing(format!("cannot run `{p}`: {e}"))),
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct ProbeJson {
    #[serde(default)]
    streams: Vec<StreamJson>,
}

#[derive(Deserialize)]
struct StreamJson {
    width: Option<usize>,
    height: Option<usize>,
    r_frame_rate: Option<String>,
    nb_frames: Option<String>,
    codec_name: Option<String>,
}

fn first_line(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no message");
    line.chars().take(200).collect()
}

/// Probes the first video stream; `Err(reason)` for files that are not videos.
pub fn probe(path: &Path) -> Result<Result<Probe, String>, RealError> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg("stream=width,height,r_frame_rate,nb_frames,codec_name")
        .args(["-of", "json"])
        .arg(path)
        .output()
        .map_err(|e| spawn_error("ffprobe", path, e))?;
    if !out.status.success() {
        return Ok(Err(format!(
            "unreadable video: {}",
            first_line(&out.stderr)
        )));
    }
    let parsed: ProbeJson = match serde_json::from_slice(&out.stdout) {
        Ok(p) => p,
        Err(e) => return Ok(Err(format!("ffprobe output not understood: {e}"))),
    };
    let Some(s) = parsed.streams.into_iter().next() else {
        return Ok(Err("no video stream".into()));
    };
    let (Some(width), Some(height)) = (s.width, s.height) else {
        return Ok(Err("video stream without a size".into()));
    };
    let fps = s.r_frame_rate.as_deref().and_then(|r| {
        let (n, d) = r.split_once('/')?;
        let (n, d): (f32, f32) = (n.parse().ok()?, d.parse().ok()?);
        (d > 0.0 && n > 0.0).then_some(n / d)
    });
    Ok(Ok(Probe {
        width,
        height,
        fps,
        frames: s.nb_frames.and_then(|n| n.parse().ok()),
        codec: s.codec_name.unwrap_or_else(|| "unknown".into()),
    }))
}

/// Decodes every frame (resampled to `fps` when given) at `size`×`size`. Decoder errors abort
/// the decode (`-xerror`), so a truncated or corrupt file is reported, not half-read.
pub fn decode(
    path: &Path,
    size: usize,
    fps: Option<f32>,
) -> Result<Result<Decoded, String>, RealError> {
    let mut filter = String::new();
    if let Some(f) = fps {
        filter.push_str(&format!("fps={f},"));
    }
    filter.push_str(&format!(
        "scale={size}:{size}:force_original_aspect_ratio=increase:flags=area,crop={size}:{size}"
    ));
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-xerror", "-i"])
        .arg(path)
        .args([
            "-an", "-vf", &filter, "-pix_fmt", "rgb24", "-f", "rawvideo", "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error("ffmpeg", path, e))?;
    let mut raw = Vec::new();
    let mut err = Vec::new();
    // Drain stderr on a thread so a chatty decoder cannot block on a full pipe.
    let mut stderr = child.stderr.take();
    let errs = std::thread::spawn(move || {
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut err);
        }
        err
    });
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut raw).map_err(|e| RealError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    }
    let status = child.wait().map_err(|e| RealError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let err = errs
        .join()
        .unwrap_or_else(|_| "(FFmpeg's error output could not be read)".into());
    if !status.success() {
        return Ok(Err(format!("decoding failed: {}", first_line(&err))));
    }
    let n = size * size * 3;
    if raw.len() % n != 0 {
        return Ok(Err(format!(
            "decoder returned {} bytes, not a whole number of frames",
            raw.len()
        )));
    }
    Ok(Ok(Decoded {
        size,
        frames: raw.chunks(n).map(<[u8]>::to_vec).collect(),
    }))
}
