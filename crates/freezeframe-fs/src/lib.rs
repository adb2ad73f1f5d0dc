//! Bounded reads of the text files freezeframe is given: configs, plans, CSV lists and the JSON
//! records of run and study folders.
//!
//! `std::fs::read_to_string` reads whatever the path holds: a checkpoint or a video passed as
//! `--config` is read whole before it fails to parse, and `/dev/zero` or a FIFO is read until
//! memory runs out. [`read_text`] stops one byte past [`MAX_TEXT_BYTES`] and says so.
use std::io::{self, Read};
use std::path::Path;

/// The largest text file freezeframe reads: a CSV list of about two million videos fits; a
/// model or a video mistaken for a config, or an endless device, does not.
pub const MAX_TEXT_BYTES: u64 = 256 << 20;

/// `std::fs::read_to_string` for a file of at most [`MAX_TEXT_BYTES`]: a larger (or endless)
/// one is an `InvalidData` error naming the limit, after reading at most one byte past it.
pub fn read_text(path: &Path) -> io::Result<String> {
    read_text_limited(path, MAX_TEXT_BYTES)
}

/// [`read_text`]'s bytes, not required to be UTF-8: a text file whose bytes are hashed.
pub fn read_bytes(path: &Path) -> io::Result<Vec<u8>> {
    read_limited(path, MAX_TEXT_BYTES)
}

fn read_text_limited(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_limited(path, limit)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "not UTF-8 text: is it the right file?",
        )
    })
}

fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "larger than {} MiB, the limit for a text file (configs, plans, CSV lists, JSON \
                 records): is it the right file?",
                limit >> 20
            ),
        )
    };
    // A regular file says its size up front: refuse before reading any of it.
    if file.metadata()?.len() > limit {
        return Err(too_big());
    }
    // Devices and pipes report no size (or the file grew): read one byte past the limit at most.
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ff-fs-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn text_reads_back_and_a_large_or_binary_file_is_an_error() {
        let d = dir();
        let ok = d.join("ok.toml");
        std::fs::write(&ok, "name = \"é\"\n").unwrap();
        assert_eq!(read_text(&ok).unwrap(), "name = \"é\"\n");
        // At the limit it reads; one byte past, it refuses (a sparse file: nothing is written).
        let at = d.join("at.csv");
        std::fs::write(&at, "x".repeat(64)).unwrap();
        assert_eq!(read_text_limited(&at, 64).unwrap().len(), 64);
        let big = d.join("big.toml");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_TEXT_BYTES + 1).unwrap();
        let e = read_text(&big).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("256 MiB"), "{e}");
        let bin = d.join("bin.toml");
        std::fs::write(&bin, [0x66, 0xff, 0xfe]).unwrap();
        assert!(
            read_text(&bin)
                .unwrap_err()
                .to_string()
                .contains("not UTF-8")
        );
        assert_eq!(
            read_text(&d.join("missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn an_endless_device_stops_one_byte_past_the_limit() {
        let e = read_limited(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("larger than 1 MiB"), "{e}");
    }
}
