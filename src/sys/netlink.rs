//! AF_NETLINK sockets on raw libc.
//!
//! [`NetlinkSocket`] owns one `socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol)` and
//! exposes exactly the operations the ctnetlink layer needs: bind with a legacy group bitmask,
//! receive-buffer sizing (SO_RCVBUFFORCE with the unprivileged fallback), the reliability
//! switches of `NetlinkEventsReliable`, non-blocking mode, send to the kernel, receive from the
//! kernel, poll, and attaching a classic BPF program. Everything above this file is safe code.

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::cvt;

/// `NETLINK_NETFILTER`, the netlink protocol of nfnetlink (ctnetlink lives on it).
pub const NETLINK_NETFILTER: i32 = libc::NETLINK_NETFILTER;

/// The kernel caps classic BPF programs at this many instructions (`BPF_MAXINSNS`).
pub const BPF_MAXINSNS: usize = 4096;

/// Most datagrams one [`NetlinkSocket::recv_many`] call takes.
pub const RECV_MANY_MAX: usize = 64;

/// What [`NetlinkSocket::recv_many`] says about one datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes stored in the slot.
    pub len: usize,
    /// The datagram was larger than the slot; the rest is lost.
    pub truncated: bool,
    /// Sent by the kernel (port id 0); anything else should be ignored.
    pub from_kernel: bool,
}

/// An owned AF_NETLINK socket. Not `Clone`: the fd has exactly one owner and closes on drop.
#[derive(Debug)]
pub struct NetlinkSocket {
    fd: OwnedFd,
}

/// A zeroed `sockaddr_nl` with the family set (its padding field is private in libc).
fn sockaddr_nl(pid: u32, groups: u32) -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is a plain C struct of integers; all-zero is a valid value.
    let mut sa: libc::sockaddr_nl = unsafe { mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    sa.nl_pid = pid;
    sa.nl_groups = groups;
    sa
}

const SOCKADDR_NL_LEN: libc::socklen_t = size_of::<libc::sockaddr_nl>() as libc::socklen_t;

impl NetlinkSocket {
    /// Opens a raw netlink socket of `protocol` (e.g. [`NETLINK_NETFILTER`]), close-on-exec.
    pub fn open(protocol: i32) -> io::Result<Self> {
        // SAFETY: socket(2) takes no pointers; a non-negative return is a fresh fd we own.
        let fd = cvt(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        })?;
        // SAFETY: `fd` was just returned by socket(2), is open, and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Binds the socket, letting the kernel choose the port id, and joins the legacy multicast
    /// groups in `groups` (bit `n - 1` = group `n`; ctnetlink events are groups 1..=6).
    pub fn bind(&self, groups: u32) -> io::Result<()> {
        let sa = sockaddr_nl(0, groups);
        // SAFETY: `sa` is a valid sockaddr_nl that outlives the call; the length matches it.
        cvt(unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&raw const sa).cast::<libc::sockaddr>(),
                SOCKADDR_NL_LEN,
            )
        })?;
        Ok(())
    }

    /// The port id (`nl_pid`) the kernel assigned at bind time. The kernel stamps events caused
    /// by this socket's requests with it, which is how the daemon recognises its own writes.
    pub fn local_port(&self) -> io::Result<u32> {
        let mut sa = sockaddr_nl(0, 0);
        let mut len = SOCKADDR_NL_LEN;
        // SAFETY: `sa` and `len` are valid for writes for the call; `len` holds sa's size.
        cvt(unsafe {
            libc::getsockname(
                self.fd.as_raw_fd(),
                (&raw mut sa).cast::<libc::sockaddr>(),
                &mut len,
            )
        })?;
        Ok(sa.nl_pid)
    }

    /// Joins multicast group `group` (its number, not a bitmask) after bind.
    pub fn add_membership(&self, group: u32) -> io::Result<()> {
        self.setsockopt_int(
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            group as libc::c_int,
        )
    }

    /// Requests a receive buffer of `bytes` with SO_RCVBUFFORCE (ignores `rmem_max`, needs
    /// CAP_NET_ADMIN), falling back to SO_RCVBUF. The kernel doubles the value it stores, so
    /// read the effective size back with [`recv_buffer_size`](Self::recv_buffer_size).
    pub fn set_recv_buffer_force(&self, bytes: usize) -> io::Result<()> {
        let val = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        match self.setsockopt_int(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, val) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                self.setsockopt_int(libc::SOL_SOCKET, libc::SO_RCVBUF, val)
            }
            Err(e) => Err(e),
        }
    }

    /// The effective receive buffer size in bytes (SO_RCVBUF as the kernel reports it).
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        let v = self.getsockopt_int(libc::SOL_SOCKET, libc::SO_RCVBUF)?;
        Ok(usize::try_from(v).unwrap_or(0))
    }

    /// NETLINK_BROADCAST_ERROR: multicast delivery failures to this socket are reported back to
    /// the sender (the conntrack core then retries destroy events instead of losing them).
    pub fn set_broadcast_error(&self, on: bool) -> io::Result<()> {
        self.setsockopt_int(
            libc::SOL_NETLINK,
            libc::NETLINK_BROADCAST_ERROR,
            libc::c_int::from(on),
        )
    }

    /// NETLINK_NO_ENOBUFS: stop signalling ENOBUFS to this socket on receive-queue overflow.
    pub fn set_no_enobufs(&self, on: bool) -> io::Result<()> {
        self.setsockopt_int(
            libc::SOL_NETLINK,
            libc::NETLINK_NO_ENOBUFS,
            libc::c_int::from(on),
        )
    }

    /// NETLINK_CAP_ACK: error replies carry only the failing request's header, not its
    /// payload. Keeps ACK traffic of large batches small.
    pub fn set_cap_ack(&self, on: bool) -> io::Result<()> {
        self.setsockopt_int(
            libc::SOL_NETLINK,
            libc::NETLINK_CAP_ACK,
            libc::c_int::from(on),
        )
    }

    /// Switches O_NONBLOCK on or off.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: F_GETFL on an fd we own takes no pointer argument.
        let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
        let new = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if new != flags {
            // SAFETY: F_SETFL with an int flag word on an fd we own.
            cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) })?;
        }
        Ok(())
    }

    /// Sends one datagram (one or more netlink messages) to the kernel (port id 0).
    /// EINTR is retried; any other error is returned.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let sa = sockaddr_nl(0, 0);
        loop {
            // SAFETY: `buf` is valid for reads of `buf.len()` bytes and `sa` is a valid
            // sockaddr_nl of the given length; both outlive the call.
            let r = cvt(unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    0,
                    (&raw const sa).cast::<libc::sockaddr>(),
                    SOCKADDR_NL_LEN,
                )
            });
            match r {
                Ok(n) => return Ok(n as usize),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Receives one datagram sent by the kernel into `buf` and returns its length.
    ///
    /// Datagrams from user-space senders (port id ≠ 0) are dropped: only the kernel speaks
    /// ctnetlink. ENOBUFS (the receive queue overflowed and messages were lost) surfaces as an
    /// `io::Error` whose `raw_os_error()` is `ENOBUFS`; EAGAIN as `WouldBlock` in non-blocking
    /// mode. A datagram larger than `buf` is an `InvalidData` error rather than silent loss.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut sa = sockaddr_nl(0, 0);
            let mut len = SOCKADDR_NL_LEN;
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes; `sa`/`len` are valid
            // for writes and `len` holds sa's size. MSG_TRUNC makes the return value the full
            // datagram length, which we compare with the buffer.
            let r = cvt(unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
                    (&raw mut sa).cast::<libc::sockaddr>(),
                    &mut len,
                )
            });
            let n = match r {
                Ok(n) => n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if sa.nl_pid != 0 {
                continue;
            }
            if n > buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("netlink datagram of {n} bytes truncated to {}", buf.len()),
                ));
            }
            return Ok(n);
        }
    }

    /// Receives up to `meta.len()` (at most [`RECV_MANY_MAX`]) datagrams in one `recvmmsg`
    /// without blocking: datagram `i` lands in `buf[i * slot..]` and is described by
    /// `meta[i]`. Returns how many arrived; `WouldBlock` if none, ENOBUFS as for [`recv`].
    ///
    /// [`recv`]: Self::recv
    pub fn recv_many(
        &self,
        buf: &mut [u8],
        slot: usize,
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        let n = meta.len().min(RECV_MANY_MAX).min(buf.len() / slot.max(1));
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "recv_many: no room",
            ));
        }
        let mut addrs = [sockaddr_nl(0, 0); RECV_MANY_MAX];
        let mut iovs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; RECV_MANY_MAX];
        // SAFETY: mmsghdr is a plain C struct of integers and pointers; all-zero (null
        // pointers, zero lengths) is a valid value.
        let mut hdrs: [libc::mmsghdr; RECV_MANY_MAX] = unsafe { mem::zeroed() };
        for (i, chunk) in buf.chunks_exact_mut(slot).take(n).enumerate() {
            iovs[i].iov_base = chunk.as_mut_ptr().cast();
            iovs[i].iov_len = slot;
            hdrs[i].msg_hdr.msg_name = (&raw mut addrs[i]).cast();
            hdrs[i].msg_hdr.msg_namelen = SOCKADDR_NL_LEN;
            hdrs[i].msg_hdr.msg_iov = &raw mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        let got = loop {
            // SAFETY: the first `n` headers point at distinct, live slots of `buf`, at
            // `addrs` entries of the stated length and at `iovs`; all outlive the call.
            let r = cvt(unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            });
            match r {
                Ok(got) => break got as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        for i in 0..got {
            meta[i] = RecvMeta {
                len: hdrs[i].msg_len as usize,
                truncated: hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                from_kernel: addrs[i].nl_pid == 0,
            };
        }
        Ok(got)
    }

    /// Waits until the socket is readable (or has a pending error such as ENOBUFS).
    /// Returns `false` on timeout; `None` waits forever. EINTR restarts with the time left.
    pub fn poll_readable(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let ms = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    // Round up so a 0.5 ms timeout does not become a busy 0 ms poll.
                    libc::c_int::try_from(left.as_micros().div_ceil(1000))
                        .unwrap_or(libc::c_int::MAX)
                }
            };
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: `pfd` is one valid pollfd, valid for reads and writes during the call.
            match cvt(unsafe { libc::poll(&mut pfd, 1, ms) }) {
                Ok(0) => return Ok(false),
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Attaches a classic BPF program (SO_ATTACH_FILTER), replacing any previous one.
    pub fn attach_filter(&self, prog: &[libc::sock_filter]) -> io::Result<()> {
        if prog.is_empty() || prog.len() > BPF_MAXINSNS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("BPF program of {} instructions", prog.len()),
            ));
        }
        let fprog = libc::sock_fprog {
            len: prog.len() as libc::c_ushort,
            // The kernel only reads through this pointer (it copies the program in).
            filter: prog.as_ptr().cast_mut(),
        };
        // SAFETY: `fprog` points at `prog.len()` valid instructions that outlive the call;
        // the kernel copies them and does not keep the pointer.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&raw const fprog).cast(),
                size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    /// Removes an attached BPF program (SO_DETACH_FILTER).
    pub fn detach_filter(&self) -> io::Result<()> {
        self.setsockopt_int(libc::SOL_SOCKET, libc::SO_DETACH_FILTER, 0)
    }

    fn setsockopt_int(&self, level: i32, name: i32, val: libc::c_int) -> io::Result<()> {
        // SAFETY: `val` is a c_int valid for reads during the call; the length matches it.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&raw const val).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    fn getsockopt_int(&self, level: i32, name: i32) -> io::Result<libc::c_int> {
        let mut val: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `val` and `len` are valid for writes; `len` holds val's size.
        cvt(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&raw mut val).cast(),
                &mut len,
            )
        })?;
        Ok(val)
    }
}

impl AsFd for NetlinkSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_open_bind_port() {
        let s = NetlinkSocket::open(NETLINK_NETFILTER).unwrap();
        s.bind(0).unwrap();
        assert_ne!(s.local_port().unwrap(), 0);
        // Group 3 = NFNLGRP_CONNTRACK_DESTROY (the socket is never read here).
        s.add_membership(3).unwrap();
    }

    #[test]
    fn test_recv_buffer_size_set() {
        let s = NetlinkSocket::open(NETLINK_NETFILTER).unwrap();
        s.set_recv_buffer_force(64 * 1024).unwrap();
        // Root gets SO_RCVBUFFORCE (kernel doubles); without privilege SO_RCVBUF is capped by
        // rmem_max, so only check that it moved to something sane.
        let got = s.recv_buffer_size().unwrap();
        assert!(got >= 4096, "{got}");
        // SAFETY: geteuid takes no arguments and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(got, 128 * 1024);
        }
    }

    #[test]
    fn test_options_and_nonblocking() {
        let s = NetlinkSocket::open(NETLINK_NETFILTER).unwrap();
        s.bind(0).unwrap();
        s.set_broadcast_error(true).unwrap();
        s.set_no_enobufs(true).unwrap();
        s.set_cap_ack(true).unwrap();
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let e = s.recv(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(!s.poll_readable(Some(Duration::from_millis(1))).unwrap());
    }

    #[test]
    fn test_recv_many_acks() {
        let s = NetlinkSocket::open(NETLINK_NETFILTER).unwrap();
        s.bind(0).unwrap();
        let mut buf = [0u8; 4 * 256];
        let mut meta = [RecvMeta::default(); 4];
        let e = s.recv_many(&mut buf, 256, &mut meta).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // Three NLMSG_NOOP requests with NLM_F_ACK: three ACK datagrams.
        let mut req = Vec::new();
        for seq in 1u32..=3 {
            req.extend_from_slice(&16u32.to_ne_bytes());
            req.extend_from_slice(&1u16.to_ne_bytes());
            req.extend_from_slice(&(0x1u16 | 0x4).to_ne_bytes());
            req.extend_from_slice(&seq.to_ne_bytes());
            req.extend_from_slice(&0u32.to_ne_bytes());
        }
        s.send(&req).unwrap();
        let got = s.recv_many(&mut buf, 256, &mut meta).unwrap();
        assert_eq!(got, 3);
        for (i, m) in meta[..3].iter().enumerate() {
            assert!(m.from_kernel && !m.truncated && m.len >= 36, "{m:?}");
            let seq_of_request = &buf[i * 256 + 28..i * 256 + 32];
            assert_eq!(seq_of_request, &(i as u32 + 1).to_ne_bytes());
        }
    }

    #[test]
    fn test_attach_filter() {
        let s = NetlinkSocket::open(NETLINK_NETFILTER).unwrap();
        // "ret #0xffffffff": accept everything.
        let prog = [libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: u32::MAX,
        }];
        s.attach_filter(&prog).unwrap();
        s.detach_filter().unwrap();
        assert!(s.attach_filter(&[]).is_err());
    }
}
