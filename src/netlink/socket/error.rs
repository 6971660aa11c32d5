//! Errors of the ctnetlink I/O layer: a typed [`NlError`] for whole operations and
//! [`KernelError`] for the kernel's answer to one request (wrapped in `io::Error` inside a
//! [`BatchReport`](super::BatchReport)), both naming the operation and the errno.

use std::fmt;
use std::io;

/// A kernel error answer to one request: the operation and the errno.
///
/// Batch errors are `io::Error`s wrapping this value: their `kind()` follows the errno
/// (`AlreadyExists` for EEXIST, `NotFound` for ENOENT) and [`errno_of`] recovers the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelError {
    /// The operation, e.g. `"create conntrack"`.
    pub op: &'static str,
    /// The positive errno the kernel returned.
    pub errno: i32,
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let os = io::Error::from_raw_os_error(self.errno);
        write!(
            f,
            "ctnetlink {}: {} ({os})",
            self.op,
            errno_name(self.errno)
        )
    }
}

impl std::error::Error for KernelError {}

impl From<KernelError> for io::Error {
    fn from(e: KernelError) -> Self {
        Self::new(Self::from_raw_os_error(e.errno).kind(), e)
    }
}

/// The errno inside an error of this layer, whether it is a plain OS error or a
/// [`KernelError`] wrapped by a [`BatchReport`](super::BatchReport).
pub fn errno_of(e: &io::Error) -> Option<i32> {
    e.raw_os_error().or_else(|| {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<KernelError>())
            .map(|k| k.errno)
    })
}

/// The symbolic name of the errnos ctnetlink returns (`"EEXIST"`), or `"E?"`.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::ENOBUFS => "ENOBUFS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EMSGSIZE => "EMSGSIZE",
        _ => "E?",
    }
}

/// Errors of the ctnetlink I/O layer, each naming the operation it interrupted.
#[derive(Debug)]
#[non_exhaustive]
pub enum NlError {
    /// A socket call failed.
    Io {
        /// The operation (e.g. `"dump conntracks"`).
        op: &'static str,
        /// The system error.
        source: io::Error,
    },
    /// The kernel refused a whole request (not one entry of a batch).
    Kernel(KernelError),
    /// A message from the kernel could not be decoded.
    Codec {
        /// The operation.
        op: &'static str,
        /// The decoding error.
        source: crate::netlink::Error,
    },
    /// The table changed under a dump (NLM_F_DUMP_INTR): what was seen may be incomplete or
    /// hold duplicates; run the dump again.
    DumpInterrupted {
        /// The operation.
        op: &'static str,
        /// Entries delivered before the dump ended.
        seen: usize,
    },
    /// The kernel-space event filter could not be compiled.
    Filter(crate::netlink::filter::FilterError),
    /// No answer from the kernel within the handle's timeout.
    Timeout {
        /// The operation.
        op: &'static str,
    },
}

impl fmt::Display for NlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { op, source } => write!(f, "ctnetlink {op}: {source}"),
            Self::Kernel(k) => k.fmt(f),
            Self::Codec { op, source } => write!(f, "ctnetlink {op}: {source}"),
            Self::DumpInterrupted { op, seen } => {
                write!(f, "ctnetlink {op}: dump interrupted after {seen} entries")
            }
            Self::Filter(e) => write!(f, "ctnetlink event filter: {e}"),
            Self::Timeout { op } => write!(f, "ctnetlink {op}: no answer from the kernel"),
        }
    }
}

impl std::error::Error for NlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Codec { source, .. } => Some(source),
            Self::Kernel(k) => Some(k),
            Self::Filter(e) => Some(e),
            _ => None,
        }
    }
}

impl NlError {
    /// The errno behind this error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Io { source, .. } => errno_of(source),
            Self::Kernel(k) => Some(k.errno),
            _ => None,
        }
    }
}

pub(super) fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> NlError {
    move |source| NlError::Io { op, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_kernel_error_context() {
        let e: io::Error = KernelError {
            op: "create conntrack",
            errno: libc::EEXIST,
        }
        .into();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(errno_of(&e), Some(libc::EEXIST));
        let s = e.to_string();
        assert!(s.starts_with("ctnetlink create conntrack: EEXIST ("), "{s}");
        assert_eq!(errno_of(&io::Error::from_raw_os_error(2)), Some(2));
    }
}
