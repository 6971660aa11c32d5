//! Interface state of the dedicated links, from rtnetlink (`RTMGRP_LINK`).
//!
//! Why rtnetlink and not polling `/sys/class/net/IF/{operstate,carrier}`: it is what the C
//! daemon does, a change is seen the moment the kernel makes it (no polling interval to
//! tune against failover time), and sysfs answers for the namespace sysfs was *mounted* in,
//! not the one the daemon's sockets live in. The socket is opened in the caller's
//! namespace like the links themselves.
//!
//! Parsing is pure ([`parse_link_messages`]) so it is unit-tested on bytes;
//! [`LinkMonitor`] only reads the socket and feeds the results to a [`LinkPool`].

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use super::LinkPool;
use crate::sys::rtnetlink::LinkMonitorSocket;

/// `IFF_UP`.
pub const IFF_UP: u32 = libc::IFF_UP as u32;
/// `IFF_RUNNING` (operationally up: carrier present).
pub const IFF_RUNNING: u32 = libc::IFF_RUNNING as u32;

/// What `-s link` prints as `status=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfState {
    /// UP and RUNNING.
    Running,
    /// UP without carrier.
    NoCarrier,
    /// Not UP (or unknown interface).
    Down,
}

impl IfState {
    /// From `IFF_*` flags.
    pub fn from_flags(flags: u32) -> Self {
        match (flags & IFF_UP != 0, flags & IFF_RUNNING != 0) {
            (true, true) => Self::Running,
            (true, false) => Self::NoCarrier,
            (false, _) => Self::Down,
        }
    }

    /// The C daemon's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::NoCarrier => "NO-CARRIER",
            Self::Down => "DOWN",
        }
    }
}

/// One `RTM_NEWLINK`/`RTM_DELLINK` notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkEvent<'a> {
    /// Interface index.
    pub index: i32,
    /// `IFLA_IFNAME`, if present and valid UTF-8.
    pub name: Option<&'a str>,
    /// `ifi_flags` (`IFF_*`); 0 for a deleted link.
    pub flags: u32,
}

const NLMSG_HDRLEN: usize = 16;
const IFINFO_LEN: usize = 16;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const IFLA_IFNAME: u16 = 3;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Walks the netlink messages of one `recv` and calls `f` for every link notification.
/// Malformed input ends the walk quietly (the kernel does not send it; a resync via
/// [`LinkPool::refresh_states`] repairs anything missed).
pub fn parse_link_messages<'a>(buf: &'a [u8], mut f: impl FnMut(LinkEvent<'a>)) {
    let mut off = 0;
    while let (Some(len), Some(ty)) = (u32_at(buf, off), u16_at(buf, off + 4)) {
        let len = len as usize;
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            return;
        }
        let msg = &buf[off..off + len];
        if (ty == RTM_NEWLINK || ty == RTM_DELLINK) && len >= NLMSG_HDRLEN + IFINFO_LEN {
            let ifi = &msg[NLMSG_HDRLEN..];
            let index = u32_at(ifi, 4).unwrap_or(0) as i32;
            let flags = if ty == RTM_DELLINK {
                0
            } else {
                u32_at(ifi, 8).unwrap_or(0)
            };
            f(LinkEvent {
                index,
                name: ifname(&msg[NLMSG_HDRLEN + IFINFO_LEN..]),
                flags,
            });
        }
        off += (len + 3) & !3;
    }
}

/// Finds `IFLA_IFNAME` among rtattrs.
fn ifname(mut attrs: &[u8]) -> Option<&str> {
    while let (Some(len), Some(ty)) = (u16_at(attrs, 0), u16_at(attrs, 2)) {
        let len = usize::from(len);
        if len < 4 || len > attrs.len() {
            return None;
        }
        if ty == IFLA_IFNAME {
            let v = &attrs[4..len];
            let v = v.split(|&b| b == 0).next().unwrap_or(v);
            return std::str::from_utf8(v).ok();
        }
        attrs = attrs.get((len + 3) & !3..)?;
    }
    None
}

/// Watches link notifications and applies them to a [`LinkPool`]. Poll its descriptor
/// for input next to the links' descriptors.
#[derive(Debug)]
pub struct LinkMonitor {
    sock: LinkMonitorSocket,
    buf: Box<[u8]>,
}

impl LinkMonitor {
    /// Subscribes in the calling thread's namespace (the one the links were opened in).
    pub fn open() -> io::Result<Self> {
        Ok(Self {
            sock: LinkMonitorSocket::open()?,
            buf: vec![0; 32 * 1024].into_boxed_slice(),
        })
    }

    /// Reads every pending notification and feeds it to `pool`. Returns the number of
    /// notifications seen. After an overrun (`ENOBUFS`) it re-reads all states instead.
    pub fn poll(&mut self, pool: &mut LinkPool) -> io::Result<usize> {
        let mut seen = 0;
        loop {
            match self.sock.recv(&mut self.buf) {
                Ok(n) => parse_link_messages(&self.buf[..n], |ev| {
                    seen += 1;
                    if let Some(name) = ev.name {
                        pool.on_link_state(
                            name,
                            ev.flags & IFF_UP != 0,
                            ev.flags & IFF_RUNNING != 0,
                        );
                    }
                }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(seen),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    pool.refresh_states();
                    seen += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsFd for LinkMonitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newlink(ty: u16, index: i32, flags: u32, name: &str) -> Vec<u8> {
        let attr_len = 4 + name.len() + 1;
        let len = NLMSG_HDRLEN + IFINFO_LEN + ((attr_len + 3) & !3);
        let mut b = Vec::new();
        b.extend_from_slice(&(len as u32).to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(&[0; 10]); // flags, seq, pid
        b.extend_from_slice(&[0, 0, 1, 0]); // family, pad, type
        b.extend_from_slice(&index.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes()); // change
        b.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        b.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
        b.extend_from_slice(name.as_bytes());
        b.push(0);
        b.resize(len, 0);
        b
    }

    #[test]
    fn test_parse_two_messages() {
        let mut buf = newlink(RTM_NEWLINK, 7, IFF_UP | IFF_RUNNING, "vethA");
        buf.extend(newlink(RTM_DELLINK, 8, IFF_UP, "vethB"));
        let mut evs = Vec::new();
        parse_link_messages(&buf, |e| evs.push(e));
        assert_eq!(
            evs,
            [
                LinkEvent {
                    index: 7,
                    name: Some("vethA"),
                    flags: IFF_UP | IFF_RUNNING
                },
                LinkEvent {
                    index: 8,
                    name: Some("vethB"),
                    flags: 0
                },
            ]
        );
    }

    #[test]
    fn test_parse_garbage_never_panics() {
        let good = newlink(RTM_NEWLINK, 1, IFF_UP, "eth0");
        for cut in 0..good.len() {
            parse_link_messages(&good[..cut], |_| {});
        }
        let mut bad = good.clone();
        bad[0] = 3; // nlmsg_len < header
        parse_link_messages(&bad, |_| panic!("no event expected"));
        let mut bad = good;
        bad[32] = 2; // rta_len < 4
        let mut n = 0;
        parse_link_messages(&bad, |e| {
            assert_eq!(e.name, None);
            n += 1;
        });
        assert_eq!(n, 1);
    }

    #[test]
    fn test_ifstate() {
        assert_eq!(IfState::from_flags(IFF_UP | IFF_RUNNING), IfState::Running);
        assert_eq!(IfState::from_flags(IFF_UP), IfState::NoCarrier);
        assert_eq!(IfState::from_flags(IFF_RUNNING), IfState::Down);
        assert_eq!(IfState::from_flags(0).as_str(), "DOWN");
    }
}
