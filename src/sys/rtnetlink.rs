//! A `NETLINK_ROUTE` socket subscribed to link notifications (`RTMGRP_LINK`).
//!
//! The C daemon watches its dedicated links' interfaces this way, so a cable pulled or an
//! `ip link set down` is noticed at once, without polling. Parsing the messages is pure code
//! and lives in `channel::linkstate`; this file only owns the socket.

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;

/// A non-blocking rtnetlink socket that receives `RTM_NEWLINK`/`RTM_DELLINK` multicasts of
/// the network namespace it was created in.
#[derive(Debug)]
pub struct LinkMonitorSocket {
    fd: OwnedFd,
}

impl LinkMonitorSocket {
    /// Opens the socket in the calling thread's namespace and joins `RTMGRP_LINK`.
    pub fn open() -> io::Result<Self> {
        // SAFETY: socket(2) takes plain integers and returns a new descriptor or -1.
        let fd = cvt(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        })?;
        // SAFETY: `fd` was just returned by socket(2) and nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain old data; all-zero is valid (pid 0 = kernel assigns).
        let mut sa: libc::sockaddr_nl = unsafe { mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = libc::RTMGRP_LINK as u32;
        // SAFETY: `sa` is a live sockaddr_nl of the length passed.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sa).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        Ok(Self { fd })
    }

    /// Reads one batch of netlink messages into `buf` (non-blocking). `WouldBlock` when
    /// nothing is pending; `ENOBUFS` when notifications were lost (re-read all states then).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a live slice of `buf.len()` writable bytes.
        let n = cvt(unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        })?;
        Ok(n as usize)
    }
}

impl AsFd for LinkMonitorSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
