//! One writer per folder: an exclusive advisory lock on a lock file, shared by run folders
//! (the trainer, the lab) and clip caches (`data prepare`).
use std::io::Write as _;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock; `pid` is what it wrote into the file.
    #[error("held by process {pid}")]
    Held { pid: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Takes an exclusive advisory lock on the file `path` (created if missing), held until the
/// returned file is dropped and released by the OS if the process dies, and writes this
/// process's PID into it, so that a second writer is refused with the holder's PID instead of
/// corrupting what the lock guards. Locks belong to an open file, so a process that holds one
/// and asks again is refused too: take each lock file once.
pub fn lock_file(path: &Path) -> Result<std::fs::File, LockError> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    match f.try_lock() {
        Ok(()) => {
            f.set_len(0)?;
            f.write_all(std::process::id().to_string().as_bytes())?;
            Ok(f)
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held {
            pid: freezeframe_fs::read_text(path)
                .map(|p| p.trim().to_string())
                .unwrap_or_else(|e| format!("unknown: {e}")),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_and_freed_on_drop() {
        let dir = std::env::temp_dir().join(format!("ff-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(".lock");
        let held = lock_file(&p).unwrap();
        match lock_file(&p) {
            Err(LockError::Held { pid }) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("{other:?}"),
        }
        drop(held);
        lock_file(&p).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
