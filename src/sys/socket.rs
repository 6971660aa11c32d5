//! IP sockets for the sync channels: creation, options, multicast membership, interface
//! queries, and batched datagram I/O (`sendmmsg`/`recvmmsg` over stack `mmsghdr` arrays).
//!
//! Every socket is created non-blocking and close-on-exec and is owned by an [`OwnedFd`].
//! The batch calls follow quinn-udp's `unix.rs`: at most [`BATCH_SIZE`] datagrams per system
//! call, all headers and I/O vectors on the stack, no heap per batch.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;

/// Datagrams per `sendmmsg`/`recvmmsg` call (quinn-udp uses the same number).
pub const BATCH_SIZE: usize = 32;

/// `SO_NO_CHECK` (asm-generic/socket.h); the libc crate does not export it for Linux.
pub const SO_NO_CHECK: libc::c_int = 11;

/// A socket address in the kernel's layout, converted from and to `std::net::SocketAddr`.
#[derive(Clone, Copy)]
struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    fn new(addr: &SocketAddr) -> Self {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and suitably aligned for
                // sockaddr_in; we write one whole value through a properly cast pointer.
                unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in>(), sin) };
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo().to_be(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above, for sockaddr_in6.
                unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in6>(), sin6) };
                size_of::<libc::sockaddr_in6>()
            }
        };
        Self {
            storage,
            len: len as libc::socklen_t,
        }
    }

    fn as_ptr(&self) -> *const libc::sockaddr {
        (&raw const self.storage).cast()
    }
}

/// Reads a kernel-filled address; `None` for families other than IPv4/IPv6.
fn to_std(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in; storage is large
            // enough and aligned for it.
            let sin = unsafe { &*(std::ptr::from_ref(storage).cast::<libc::sockaddr_in>()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(std::ptr::from_ref(storage).cast::<libc::sockaddr_in6>()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Creates a non-blocking, close-on-exec socket of the family of `ip` and the given type
/// (`SOCK_DGRAM` or `SOCK_STREAM`).
pub fn socket(ip: IpAddr, ty: libc::c_int) -> io::Result<OwnedFd> {
    let family = if ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket(2) takes plain integers and returns a new descriptor or -1.
    let fd =
        cvt(unsafe { libc::socket(family, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket(2), is valid and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(level, name)` with a value of type `T` (an int or an option struct).
fn setsockopt<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of exactly the length passed; the kernel only reads it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(val).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// `setsockopt` with an `int` value.
pub fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd, level, name, &val)
}

/// `getsockopt` of an `int` value.
pub fn get_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut val: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `val` and `len` are live locals; the kernel writes at most `len` bytes.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw mut val).cast(),
            &raw mut len,
        )
    })?;
    Ok(val)
}

/// Takes the pending error of a socket (`SO_ERROR`), e.g. the result of a non-blocking
/// `connect`.
pub fn take_error(fd: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let err = get_int(fd, libc::SOL_SOCKET, libc::SO_ERROR)?;
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}

/// `bind(2)`.
pub fn bind(fd: BorrowedFd<'_>, addr: &SocketAddr) -> io::Result<()> {
    let raw = RawAddr::new(addr);
    // SAFETY: `raw` holds a valid address of `raw.len` bytes for the whole call.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), raw.as_ptr(), raw.len) })?;
    Ok(())
}

/// `connect(2)`. On a non-blocking socket this normally fails with `EINPROGRESS`
/// (`io::ErrorKind::WouldBlock` is not used for that; check `raw_os_error()`).
pub fn connect(fd: BorrowedFd<'_>, addr: &SocketAddr) -> io::Result<()> {
    let raw = RawAddr::new(addr);
    // SAFETY: as for bind.
    cvt(unsafe { libc::connect(fd.as_raw_fd(), raw.as_ptr(), raw.len) })?;
    Ok(())
}

/// `listen(2)`.
pub fn listen(fd: BorrowedFd<'_>, backlog: libc::c_int) -> io::Result<()> {
    // SAFETY: plain integers.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(())
}

/// `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC`; returns the connection and the peer.
pub fn accept(fd: BorrowedFd<'_>) -> io::Result<(OwnedFd, Option<SocketAddr>)> {
    // SAFETY: all-zero sockaddr_storage is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage`/`len` are live locals describing a buffer the kernel may fill.
    let conn = cvt(unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            (&raw mut storage).cast(),
            &raw mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    })?;
    // SAFETY: accept4 returned a fresh descriptor that nobody else owns.
    let conn = unsafe { OwnedFd::from_raw_fd(conn) };
    Ok((conn, to_std(&storage)))
}

/// The local address of a socket (`getsockname`).
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddr> {
    // SAFETY: all-zero sockaddr_storage is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage`/`len` are live locals describing a buffer the kernel may fill.
    cvt(unsafe { libc::getsockname(fd.as_raw_fd(), (&raw mut storage).cast(), &raw mut len) })?;
    to_std(&storage).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))
}

/// Joins IPv4 `group` on the interface that owns `iface_addr` (`IP_ADD_MEMBERSHIP` with an
/// `ip_mreq`, as the C daemon does).
pub fn join_v4(fd: BorrowedFd<'_>, group: Ipv4Addr, iface_addr: Ipv4Addr) -> io::Result<()> {
    let mreq = libc::ip_mreq {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from_ne_bytes(group.octets()),
        },
        imr_interface: libc::in_addr {
            s_addr: u32::from_ne_bytes(iface_addr.octets()),
        },
    };
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &mreq)
}

/// Joins IPv6 `group` on interface `ifindex` (`IPV6_ADD_MEMBERSHIP`).
pub fn join_v6(fd: BorrowedFd<'_>, group: Ipv6Addr, ifindex: u32) -> io::Result<()> {
    let mreq = libc::ipv6_mreq {
        ipv6mr_multiaddr: libc::in6_addr {
            s6_addr: group.octets(),
        },
        ipv6mr_interface: ifindex,
    };
    setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &mreq)
}

/// Sets the outgoing interface of IPv4 multicast by address (`IP_MULTICAST_IF`, `in_addr`).
pub fn set_multicast_if_v4(fd: BorrowedFd<'_>, iface_addr: Ipv4Addr) -> io::Result<()> {
    let addr = libc::in_addr {
        s_addr: u32::from_ne_bytes(iface_addr.octets()),
    };
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &addr)
}

/// Builds an `ifreq` naming `name`; fails if the name does not fit `IFNAMSIZ`.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ || name.as_bytes().contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    // SAFETY: ifreq is plain old data (a name array and a union of PODs); zero is valid.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

/// The MTU of interface `name`, asked through any socket `fd` of the right namespace.
pub fn if_mtu(fd: BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFMTU reads ifr_name and writes ifr_mtu inside the live `req`.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &raw mut req) })?;
    // SAFETY: the kernel filled the ifru_mtu member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(u32::try_from(mtu).unwrap_or(0))
}

/// The `IFF_*` flags of interface `name` (`SIOCGIFFLAGS`), asked through socket `fd`.
pub fn if_flags(fd: BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_flags inside the live `req`.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &raw mut req) })?;
    // SAFETY: the kernel filled the ifru_flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    Ok(u32::from(flags as u16))
}

/// The index of interface `name` in the calling thread's network namespace.
pub fn if_index(name: &str) -> io::Result<u32> {
    let cname = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"))?;
    // SAFETY: `cname` is a NUL-terminated string alive for the call.
    let idx = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// `send(2)` on a connected stream, non-blocking and without SIGPIPE.
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live slice of `buf.len()` readable bytes.
    let n = cvt(unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    })?;
    Ok(n as usize)
}

/// `recv(2)`, non-blocking. `Ok(0)` means the peer closed the stream.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live slice of `buf.len()` writable bytes.
    let n = cvt(unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    })?;
    Ok(n as usize)
}

/// Writes up to [`BATCH_SIZE`] buffers back to back into a connected stream with one
/// `sendmsg` (non-blocking, no SIGPIPE). Returns the bytes written, which may end inside a
/// buffer.
pub fn send_vectored(fd: BorrowedFd<'_>, bufs: &[&[u8]]) -> io::Result<usize> {
    let n = bufs.len().min(BATCH_SIZE);
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: iovec is plain old data; all-zero is valid and used entries are filled below.
    let mut iovs: [libc::iovec; BATCH_SIZE] = unsafe { mem::zeroed() };
    for (iov, b) in iovs.iter_mut().zip(&bufs[..n]) {
        // Read-only for a send, whatever the C type says.
        iov.iov_base = b.as_ptr().cast_mut().cast();
        iov.iov_len = b.len();
    }
    // SAFETY: msghdr is plain old data; all-zero is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = iovs.as_mut_ptr();
    msg.msg_iovlen = n;
    // SAFETY: `msg` points at `n` live iovecs over the caller's buffers, all of which
    // outlive the call; the kernel only reads them.
    let sent = cvt(unsafe {
        libc::sendmsg(
            fd.as_raw_fd(),
            &raw const msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })?;
    Ok(sent as usize)
}

/// Sends up to [`BATCH_SIZE`] of `datagrams` with one `sendmmsg` call, each to `dest` (or to
/// the connected peer if `None`). Returns how many the kernel took; the caller loops.
pub fn sendmmsg(
    fd: BorrowedFd<'_>,
    dest: Option<&SocketAddr>,
    datagrams: &[&[u8]],
) -> io::Result<usize> {
    let n = datagrams.len().min(BATCH_SIZE);
    if n == 0 {
        return Ok(0);
    }
    let raw = dest.map(RawAddr::new);
    let (name, namelen) = match &raw {
        Some(r) => (r.as_ptr().cast_mut().cast::<libc::c_void>(), r.len),
        None => (std::ptr::null_mut(), 0),
    };
    // SAFETY: iovec and mmsghdr are plain old data; all-zero values are valid (null pointers,
    // zero lengths) and every used entry is filled in below.
    let mut iovs: [libc::iovec; BATCH_SIZE] = unsafe { mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; BATCH_SIZE] = unsafe { mem::zeroed() };
    for (i, d) in datagrams[..n].iter().enumerate() {
        // The kernel only reads through iov_base for a send; the cast to *mut is required by
        // the struct's C type, not a licence to write.
        iovs[i].iov_base = d.as_ptr().cast_mut().cast();
        iovs[i].iov_len = d.len();
        hdrs[i].msg_hdr.msg_name = name;
        hdrs[i].msg_hdr.msg_namelen = namelen;
        hdrs[i].msg_hdr.msg_iov = &raw mut iovs[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `n` headers point at live iovecs, which point at the caller's
    // datagrams, and at `raw`'s address (or null); all outlive the call. The kernel writes
    // only `msg_len` of each header.
    let sent = cvt(unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            hdrs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })?;
    Ok(sent as usize)
}

/// What `recvmmsg` reported for one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes written into the slot.
    pub len: usize,
    /// The sender, if the kernel reported an IP address.
    pub addr: Option<SocketAddr>,
    /// The datagram was longer than the slot (`MSG_TRUNC`): its tail is lost.
    pub truncated: bool,
}

impl RecvMeta {
    /// An empty entry, for initialising arrays.
    pub const EMPTY: Self = Self {
        len: 0,
        addr: None,
        truncated: false,
    };
}

/// Receives up to `min(BATCH_SIZE, meta.len(), slots)` datagrams with one non-blocking
/// `recvmmsg` call. `buf` is cut into consecutive slots of `slot_len` bytes; datagram `i`
/// lands in slot `i` and is described by `meta[i]`. Returns how many arrived
/// (`WouldBlock` if none).
pub fn recvmmsg(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    slot_len: usize,
    meta: &mut [RecvMeta],
) -> io::Result<usize> {
    assert!(slot_len > 0, "recvmmsg: zero slot length");
    let n = (buf.len() / slot_len).min(meta.len()).min(BATCH_SIZE);
    if n == 0 {
        return Ok(0);
    }
    // Zeroed rather than uninit so that reading the family back is always defined.
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut addrs: [libc::sockaddr_storage; BATCH_SIZE] = unsafe { mem::zeroed() };
    // SAFETY: iovec and mmsghdr are plain old data; all-zero is valid and used entries are
    // filled in below.
    let mut iovs: [libc::iovec; BATCH_SIZE] = unsafe { mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; BATCH_SIZE] = unsafe { mem::zeroed() };
    for (i, slot) in buf.chunks_exact_mut(slot_len).take(n).enumerate() {
        iovs[i].iov_base = slot.as_mut_ptr().cast();
        iovs[i].iov_len = slot_len;
        hdrs[i].msg_hdr.msg_name = (&raw mut addrs[i]).cast();
        hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        hdrs[i].msg_hdr.msg_iov = &raw mut iovs[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `n` headers point at live iovecs over disjoint slots of `buf` and at
    // live address storage; all outlive the call. A null timeout means "no timeout" and
    // MSG_DONTWAIT makes the call return at once.
    let got = cvt(unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            hdrs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    })? as usize;
    for i in 0..got {
        let h = &hdrs[i];
        let addr = if h.msg_hdr.msg_namelen > 0 {
            to_std(&addrs[i])
        } else {
            None
        };
        meta[i] = RecvMeta {
            len: (h.msg_len as usize).min(slot_len),
            addr,
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        };
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn test_addr_roundtrip() {
        for a in [
            "10.231.1.1:3780",
            "[fe80::1%7]:3780",
            "[fd00:231::2]:0",
            "0.0.0.0:65535",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            let raw = RawAddr::new(&a);
            assert_eq!(to_std(&raw.storage), Some(a));
        }
    }

    #[test]
    fn test_bind_local_addr_loopback() {
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let fd = socket(lo.ip(), libc::SOCK_DGRAM).unwrap();
        bind(fd.as_fd(), &lo).unwrap();
        let got = local_addr(fd.as_fd()).unwrap();
        assert_eq!(got.ip(), lo.ip());
        assert_ne!(got.port(), 0);
        assert_eq!(if_index("lo").unwrap(), 1);
        assert!(if_mtu(fd.as_fd(), "lo").unwrap() >= 1500);
        assert!(if_flags(fd.as_fd(), "lo").unwrap() & libc::IFF_UP as u32 != 0);
        assert!(if_index("no-such-if0").is_err());
        assert!(ifreq("a-name-that-is-too-long").is_err());
    }
}
