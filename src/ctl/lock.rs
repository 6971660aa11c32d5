//! The daemon's `LockFile`: at most one conntrackd per lock path.
//!
//! As the C daemon (reference control-and-cli.md §2.4), the file is created with
//! `O_CREAT|O_EXCL` before anything else is initialised; if it already exists the daemon
//! refuses to start with "lockfile `…' exists, perhaps conntrackd already running?" and exit
//! code 1. A clean shutdown removes it; a crash leaves it behind, which is why keepalived's
//! `primary-backup.sh` deletes a stale one before restarting the daemon. There is no `flock`
//! and no pid inside, so the file's existence is the whole protocol.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why the lock could not be taken.
#[derive(Debug)]
#[non_exhaustive]
pub enum LockError {
    /// The file exists: another daemon runs, or one crashed.
    Exists(PathBuf),
    /// Any other failure to create it (missing directory, permissions, …).
    Io {
        /// The lock path.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Byte for byte the C daemon's message (quoting style included).
            Self::Exists(path) => write!(
                f,
                "lockfile `{}' exists, perhaps conntrackd already running?",
                path.display()
            ),
            Self::Io { path, source } => {
                write!(f, "can't open lockfile `{}': {source}", path.display())
            }
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Exists(_) => None,
            Self::Io { source, .. } => Some(source),
        }
    }
}

/// A held lock file, removed when dropped.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    // Cleared by `leak` so that a forked parent does not remove the child's lock.
    remove_on_drop: bool,
}

impl LockFile {
    /// Creates `path` exclusively (mode 0600, as under the C daemon's `umask 0177`).
    pub fn acquire(path: impl AsRef<Path>) -> Result<Self, LockError> {
        let path = path.as_ref().to_owned();
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(_file) => Ok(Self {
                path,
                remove_on_drop: true,
            }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(LockError::Exists(path)),
            Err(source) => Err(LockError::Io { path, source }),
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Forgets the lock without removing the file (for a process that hands the lock over,
    /// e.g. the parent of a `-d` fork).
    pub fn leak(mut self) {
        self.remove_on_drop = false;
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if self.remove_on_drop
            && let Err(e) = fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove lock file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ctd-lock-{}-{tag}", std::process::id()))
    }

    #[test]
    fn test_exclusive_and_removed_on_drop() {
        let path = temp_path("excl");
        let _ = fs::remove_file(&path);
        let lock = LockFile::acquire(&path).unwrap();
        assert!(path.exists());
        let err = LockFile::acquire(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "lockfile `{}' exists, perhaps conntrackd already running?",
                path.display()
            )
        );
        drop(lock);
        assert!(!path.exists());
        // Free again.
        drop(LockFile::acquire(&path).unwrap());
    }

    #[test]
    fn test_leak_keeps_file() {
        let path = temp_path("leak");
        let _ = fs::remove_file(&path);
        LockFile::acquire(&path).unwrap().leak();
        assert!(path.exists());
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn test_missing_directory() {
        let err = LockFile::acquire("/nonexistent-dir-ctd/lock").unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err:?}");
    }
}
