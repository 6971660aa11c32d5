//! The service manager's readiness protocol (`sd_notify(3)`), without libsystemd.
//!
//! A service started with `Type=notify` finds a datagram socket's address in
//! `$NOTIFY_SOCKET` and sends it newline-separated `KEY=VALUE` assignments: `READY=1` once
//! it serves, `STOPPING=1` when it begins to shut down, `MAINPID=` when the process that
//! reports is not the one systemd started. The address is a filesystem path, or an abstract
//! socket name when it starts with `@` (the `@` stands for the leading NUL byte). Each
//! message is one datagram; nothing comes back. The C daemon does the same through
//! libsystemd when built with it (Debian's is) and `Systemd on` (the default).

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// A connection-less sender towards the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names, or `None` when it is unset or empty (not
    /// started by a service manager that wants to hear from us).
    pub fn from_env() -> io::Result<Option<Self>> {
        match std::env::var_os(NOTIFY_SOCKET) {
            Some(v) if !v.is_empty() => Self::new(&v.to_string_lossy()).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier for `address`: an absolute path, or `@name` for an abstract socket.
    pub fn new(address: &str) -> io::Result<Self> {
        let addr = if let Some(name) = address.strip_prefix('@') {
            SocketAddr::from_abstract_name(name.as_bytes())?
        } else if address.starts_with('/') {
            SocketAddr::from_pathname(address)?
        } else {
            // e.g. `vsock:` addresses of newer systemd, for VMs: not ours to support.
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("unsupported {NOTIFY_SOCKET} address `{address}'"),
            ));
        };
        Ok(Self {
            sock: UnixDatagram::unbound()?,
            addr,
        })
    }

    /// Sends one message (`"READY=1"`, `"STOPPING=1"`, several lines joined by `\n`).
    pub fn notify(&self, state: &str) -> io::Result<()> {
        let n = self.sock.send_to_addr(state.as_bytes(), &self.addr)?;
        if n != state.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short notification datagram",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn test_path_and_abstract() {
        let path = std::env::temp_dir().join(format!("ctd-notify-unit-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Notifier::new(&path.to_string_lossy())
            .unwrap()
            .notify("READY=1\nMAINPID=7")
            .unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nMAINPID=7");
        let _ = std::fs::remove_file(&path);

        let name = format!("ctd-notify-unit-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Notifier::new(&format!("@{name}"))
            .unwrap()
            .notify("STOPPING=1")
            .unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn test_bad_addresses() {
        assert_eq!(
            Notifier::new("vsock:2:1234").unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );
        assert!(Notifier::new("relative/path").is_err());
        // Nobody listening: an error to report, not a panic.
        let gone = Notifier::new("/nonexistent-dir/notify").unwrap();
        assert!(gone.notify("READY=1").is_err());
    }
}
