//! Reading animated GIFs back as videos (for scoring existing samples).
use std::fs::File;
use std::path::Path;

use crate::gif_out::MAX_GIF_PIXELS;
use crate::video::Video;

#[derive(Debug, thiserror::Error)]
pub enum GifReadError {
    #[error("cannot open {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a readable GIF: {message}")]
    Decode { path: String, message: String },
    #[error("{path} has no frames")]
    Empty { path: String },
    #[error("{path}: {what} is above the limit {limit}: not a video this toolkit scores")]
    TooLarge {
        path: String,
        what: String,
        limit: usize,
    },
}

/// Most decoded values (frames × 3 × pixels) in one GIF: 2²⁷ f32, 512 MiB.
pub const MAX_GIF_VALUES: usize = 1 << 27;

/// All frames of a GIF, composed onto its logical screen (transparent pixels keep the previous
/// frame), as one RGB video in [0, 1]. A grid written by `write_grid` reads as one video of the
/// whole grid.
pub fn read_gif(path: &Path) -> Result<Video, GifReadError> {
    let p = path.display().to_string();
    let file = File::open(path).map_err(|source| GifReadError::Io {
        path: p.clone(),
        source,
    })?;
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    let dec_err = |e: gif::DecodingError| GifReadError::Decode {
        path: p.clone(),
        message: e.to_string(),
    };
    let mut dec = opts.read_info(file).map_err(dec_err)?;
    let (w, h) = (dec.width() as usize, dec.height() as usize);
    if w * h > MAX_GIF_PIXELS {
        return Err(GifReadError::TooLarge {
            path: p,
            what: format!("a {w}×{h} screen"),
            limit: MAX_GIF_PIXELS,
        });
    }
    let mut canvas = vec![0.0f32; 3 * w * h];
    let mut frames: Vec<Vec<f32>> = Vec::new();
    while let Some(frame) = dec.read_next_frame().map_err(dec_err)? {
        if (frames.len() + 1) * canvas.len() > MAX_GIF_VALUES {
            return Err(GifReadError::TooLarge {
                path: p,
                what: format!("{} frames of {w}×{h}", frames.len() + 1),
                limit: MAX_GIF_VALUES,
            });
        }
        let (fl, ft) = (frame.left as usize, frame.top as usize);
        let (fw, fh) = (frame.width as usize, frame.height as usize);
        for y in 0..fh {
            for x in 0..fw {
                let (cx, cy) = (fl + x, ft + y);
                let i = 4 * (y * fw + x);
                if cx >= w || cy >= h || i + 3 >= frame.buffer.len() || frame.buffer[i + 3] == 0 {
                    continue;
                }
                for c in 0..3 {
                    canvas[(c * h + cy) * w + cx] = frame.buffer[i + c] as f32 / 255.0;
                }
            }
        }
        frames.push(canvas.clone());
    }
    if frames.is_empty() {
        return Err(GifReadError::Empty { path: p });
    }
    let t = frames.len();
    Ok(Video::from_data(t, 3, h, w, frames.concat()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gif_out::write_grid;
    use crate::world::{Split, World, WorldConfig};

    #[test]
    fn a_header_claiming_a_huge_screen_is_refused_before_decoding() {
        // A valid one-frame GIF whose logical screen says 65535×65535 (51 GB decoded).
        let dir = std::env::temp_dir().join(format!("ff-gif-huge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("huge.gif");
        write_grid(&path, &[Video::zeros(1, 3, 2, 2)], 1, 1, 10).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[6..10].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        std::fs::write(&path, bytes).unwrap();
        let e = read_gif(&path).unwrap_err();
        assert!(matches!(e, GifReadError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("65535×65535"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_written_gif_reads_back_within_palette_error() {
        let w = World::new(WorldConfig::default()).unwrap();
        let v = w.clip(Split::Val, 3).video;
        let dir = std::env::temp_dir().join(format!("ff-gif-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("one.gif");
        write_grid(&path, std::slice::from_ref(&v), 1, 1, 10).unwrap();
        let r = read_gif(&path).unwrap();
        // write_grid frames each tile with a 2-pixel gap.
        assert_eq!(
            (r.frames, r.channels, r.height, r.width),
            (v.frames, 3, v.height + 4, v.width + 4)
        );
        let mut err = 0.0f32;
        for t in 0..v.frames {
            for c in 0..3 {
                for y in 0..v.height {
                    for x in 0..v.width {
                        err += (r.get(t, c, y + 2, x + 2) - v.get(t, c, y, x)).abs();
                    }
                }
            }
        }
        let err = err / v.data.len() as f32;
        assert!(err < 0.03, "mean abs error {err}");
        std::fs::write(dir.join("bad.gif"), b"GIF89a garbage").unwrap();
        let e = read_gif(&dir.join("bad.gif")).unwrap_err().to_string();
        assert!(e.contains("bad.gif"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
