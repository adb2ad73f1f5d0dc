//! Animated GIF grids of videos (nearest-neighbour upscaled so 32-pixel frames are visible).
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::video::Video;

#[derive(Debug, thiserror::Error)]
pub enum GifError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("GIF encoding of {path} failed: {source}")]
    Encode {
        path: String,
        source: gif::EncodingError,
    },
    #[error("no videos to write")]
    Empty,
    #[error("videos in one grid must share their shape")]
    MixedShapes,
    #[error(
        "a grid of {width}×{height} px is above the limits of a GIF written here (65535 px a side, 2^26 pixels): fewer videos or smaller frames"
    )]
    TooLarge { width: usize, height: usize },
}

/// Pixels between tiles and around the grid.
const GAP: usize = 2;

/// Largest canvas written or read (pixels): a GIF may claim 65535 × 65535, 51 GB decoded; this
/// bound (2²⁶, 256 MiB of RGB bytes a frame) covers every grid this toolkit writes.
pub const MAX_GIF_PIXELS: usize = 1 << 26;

/// The canvas (width, height) of `n` tiles of `tile` (height, width) pixels at `scale`, `cols`
/// a row — or why it cannot be a GIF. Callers check it before drawing any sample.
pub fn grid_size(
    n: usize,
    cols: usize,
    (h, w): (usize, usize),
    scale: usize,
) -> Result<(usize, usize), GifError> {
    let cols = cols.max(1).min(n.max(1));
    let rows = n.div_ceil(cols);
    let gh = rows * h * scale + (rows + 1) * GAP;
    let gw = cols * w * scale + (cols + 1) * GAP;
    if gw > u16::MAX as usize || gh > u16::MAX as usize || gw * gh > MAX_GIF_PIXELS {
        return Err(GifError::TooLarge {
            width: gw,
            height: gh,
        });
    }
    Ok((gw, gh))
}

/// Writes `videos` as one animated GIF, `cols` tiles per row, each pixel `scale`×`scale`,
/// `delay_cs` hundredths of a second per frame.
pub fn write_grid(
    path: &Path,
    videos: &[Video],
    cols: usize,
    scale: usize,
    delay_cs: u16,
) -> Result<(), GifError> {
    let first = videos.first().ok_or(GifError::Empty)?;
    if videos
        .iter()
        .any(|v| (v.frames, v.height, v.width) != (first.frames, first.height, first.width))
    {
        return Err(GifError::MixedShapes);
    }
    let (cols, gap) = (cols.max(1).min(videos.len()), GAP);
    let (gw, gh) = grid_size(videos.len(), cols, (first.height, first.width), scale)?;
    let (w16, h16) = (gw as u16, gh as u16);
    // Written beside the target under a name no one else uses and renamed into place, so a
    // full disk or a kill leaves the previous file (or none), never a truncated GIF under the
    // final name, and no file of the user's is opened for writing but the target itself.
    let Some(name) = path.file_name() else {
        return Err(GifError::Io {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        });
    };
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(
        ".{}-{}.partial",
        std::process::id(),
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(tmp_name);
    let written = encode(&tmp, videos, (cols, gap, scale), (w16, h16), delay_cs).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|source| GifError::Io {
            path: path.display().to_string(),
            source,
        })
    });
    if written.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Encodes the grid into `path`; `layout` is (columns, gap, scale), `size` the canvas.
fn encode(
    path: &Path,
    videos: &[Video],
    (cols, gap, scale): (usize, usize, usize),
    (w16, h16): (u16, u16),
    delay_cs: u16,
) -> Result<(), GifError> {
    let first = &videos[0];
    let (th, tw) = (first.height * scale, first.width * scale);
    let (gh, gw) = (h16 as usize, w16 as usize);
    let ps = path.display().to_string();
    // `create_new`: the temporary name is this writer's own; an existing file is not touched.
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| GifError::Io {
            path: ps.clone(),
            source,
        })?;
    let enc_err = |source| GifError::Encode {
        path: ps.clone(),
        source,
    };
    let mut enc = gif::Encoder::new(BufWriter::new(file), w16, h16, &[]).map_err(enc_err)?;
    enc.set_repeat(gif::Repeat::Infinite).map_err(enc_err)?;
    for t in 0..first.frames {
        let mut canvas = vec![40u8; gh * gw * 3];
        for (i, v) in videos.iter().enumerate() {
            let (r, c) = (i / cols, i % cols);
            let (oy, ox) = (gap + r * (th + gap), gap + c * (tw + gap));
            let rgb = v.frame_rgb8(t);
            for y in 0..th {
                for x in 0..tw {
                    let s = ((y / scale) * v.width + x / scale) * 3;
                    let d = ((oy + y) * gw + ox + x) * 3;
                    canvas[d..d + 3].copy_from_slice(&rgb[s..s + 3]);
                }
            }
        }
        let mut frame = gif::Frame::from_rgb_speed(w16, h16, &canvas, 10);
        frame.delay = delay_cs;
        enc.write_frame(&frame).map_err(enc_err)?;
    }
    // Flushes the trailer; an error here (a full disk) must not pass as a written file.
    let io = |source| GifError::Io {
        path: ps.clone(),
        source,
    };
    enc.into_inner()
        .map_err(io)?
        .into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_decodable_animation() {
        let dir = std::env::temp_dir().join(format!("ff-gif-write-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.gif");
        let mut v = Video::zeros(3, 3, 4, 4);
        let i = v.idx(1, 0, 2, 2);
        v.data[i] = 1.0;
        write_grid(&path, &[v.clone(), v], 2, 2, 10).unwrap();
        let mut opts = gif::DecodeOptions::new();
        opts.set_color_output(gif::ColorOutput::RGBA);
        let mut dec = opts.read_info(File::open(&path).unwrap()).unwrap();
        let mut n = 0;
        while dec.read_next_frame().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
        assert_eq!((dec.width(), dec.height()), (2 * 8 + 3 * 2, 8 + 2 * 2));
        assert!(matches!(
            write_grid(&path, &[], 1, 1, 1),
            Err(GifError::Empty)
        ));
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // A user's file that happens to bear a name like a temporary one is not touched.
        let theirs = dir.join("g.gif.partial");
        std::fs::write(&theirs, b"mine").unwrap();
        write_grid(&path, &[Video::zeros(2, 3, 4, 4)], 1, 1, 10).unwrap();
        assert_eq!(std::fs::read(&theirs).unwrap(), b"mine");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_grid_larger_than_a_gif_is_refused_and_nothing_is_left() {
        let dir = std::env::temp_dir().join(format!("ff-gif-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.gif");
        // 33 frames of 32 px at scale 64 in one row: 67 652 px wide.
        let v = Video::zeros(1, 3, 32, 32);
        let e = write_grid(&path, &vec![v; 33], 33, 64, 10).unwrap_err();
        assert!(matches!(e, GifError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("65535"), "{e}");
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
