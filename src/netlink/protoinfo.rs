//! `CTA_PROTOINFO`: per-protocol state of a conntrack (TCP, SCTP, DCCP) as plain data.
//!
//! Every field is optional because requests carry only what is to be set (conntrackd's
//! updates send the TCP state alone) while kernel dumps carry all of them.
//!
//! DCCP: the kernel this crate is tested on (Linux 6.18) has no DCCP tracker any more, so no
//! kernel capture exists; the DCCP codec is covered by hand-built byte tests only.

use super::attr::nlas;
use super::consts::*;
use super::error::Error;
use super::msg::MsgBuilder;
use super::tuple::{be32, byte};

/// `CTA_PROTOINFO_TCP_FLAGS_*`: `struct nf_ct_tcp_flags { u8 flags; u8 mask; }`; the mask
/// says which bits of `flags` a request sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags {
    /// `IP_CT_TCP_FLAG_*` bits.
    pub flags: u8,
    /// Which bits of `flags` are meaningful.
    pub mask: u8,
}

/// `CTA_PROTOINFO_TCP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpInfo {
    /// `TCP_CONNTRACK_*` state.
    pub state: Option<u8>,
    /// Window scale seen in the original direction.
    pub wscale_orig: Option<u8>,
    /// Window scale seen in the reply direction.
    pub wscale_reply: Option<u8>,
    /// Original-direction flags.
    pub flags_orig: Option<TcpFlags>,
    /// Reply-direction flags.
    pub flags_reply: Option<TcpFlags>,
}

/// `CTA_PROTOINFO_SCTP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SctpInfo {
    /// `SCTP_CONNTRACK_*` state.
    pub state: Option<u8>,
    /// Verification tag, original direction.
    pub vtag_orig: Option<u32>,
    /// Verification tag, reply direction.
    pub vtag_reply: Option<u32>,
}

/// `CTA_PROTOINFO_DCCP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DccpInfo {
    /// DCCP conntrack state.
    pub state: Option<u8>,
    /// Role of the original direction (0 client, 1 server).
    pub role: Option<u8>,
    /// Handshake sequence number.
    pub handshake_seq: Option<u64>,
}

/// The protocol part of `CTA_PROTOINFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtoInfo {
    /// `CTA_PROTOINFO_TCP`.
    Tcp(TcpInfo),
    /// `CTA_PROTOINFO_SCTP`.
    Sctp(SctpInfo),
    /// `CTA_PROTOINFO_DCCP`.
    Dccp(DccpInfo),
}

impl ProtoInfo {
    /// Parses the value of `CTA_PROTOINFO`. An empty nest or one with only unknown protocols
    /// gives `None` (and counts them in `unknown`).
    pub fn parse(value: &[u8], unknown: &mut u16) -> Result<Option<Self>, Error> {
        let mut out = None;
        for nla in nlas(value) {
            let nla = nla?;
            match nla.ty {
                CTA_PROTOINFO_TCP => out = Some(Self::Tcp(parse_tcp(nla.value, unknown)?)),
                CTA_PROTOINFO_SCTP => out = Some(Self::Sctp(parse_sctp(nla.value, unknown)?)),
                CTA_PROTOINFO_DCCP => out = Some(Self::Dccp(parse_dccp(nla.value, unknown)?)),
                _ => *unknown = unknown.saturating_add(1),
            }
        }
        Ok(out)
    }

    /// Emits `CTA_PROTOINFO { CTA_PROTOINFO_<proto> { present fields } }`.
    pub fn emit(&self, b: &mut MsgBuilder<'_>) {
        let outer = b.nest_start(CTA_PROTOINFO);
        match self {
            Self::Tcp(t) => {
                let n = b.nest_start(CTA_PROTOINFO_TCP);
                if let Some(v) = t.state {
                    b.put_u8(CTA_PROTOINFO_TCP_STATE, v);
                }
                if let Some(v) = t.wscale_orig {
                    b.put_u8(CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, v);
                }
                if let Some(v) = t.wscale_reply {
                    b.put_u8(CTA_PROTOINFO_TCP_WSCALE_REPLY, v);
                }
                if let Some(f) = t.flags_orig {
                    b.put_bytes(CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, &[f.flags, f.mask]);
                }
                if let Some(f) = t.flags_reply {
                    b.put_bytes(CTA_PROTOINFO_TCP_FLAGS_REPLY, &[f.flags, f.mask]);
                }
                b.nest_end(n);
            }
            Self::Sctp(s) => {
                let n = b.nest_start(CTA_PROTOINFO_SCTP);
                if let Some(v) = s.state {
                    b.put_u8(CTA_PROTOINFO_SCTP_STATE, v);
                }
                if let Some(v) = s.vtag_orig {
                    b.put_u32_be(CTA_PROTOINFO_SCTP_VTAG_ORIGINAL, v);
                }
                if let Some(v) = s.vtag_reply {
                    b.put_u32_be(CTA_PROTOINFO_SCTP_VTAG_REPLY, v);
                }
                b.nest_end(n);
            }
            Self::Dccp(d) => {
                let n = b.nest_start(CTA_PROTOINFO_DCCP);
                if let Some(v) = d.state {
                    b.put_u8(CTA_PROTOINFO_DCCP_STATE, v);
                }
                if let Some(v) = d.role {
                    b.put_u8(CTA_PROTOINFO_DCCP_ROLE, v);
                }
                if let Some(v) = d.handshake_seq {
                    b.put_u64_be(CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ, v);
                }
                b.nest_end(n);
            }
        }
        b.nest_end(outer);
    }
}

fn tcp_flags(v: &[u8], what: &'static str) -> Result<TcpFlags, Error> {
    match *v {
        [flags, mask] => Ok(TcpFlags { flags, mask }),
        _ => Err(Error::BadLength(what)),
    }
}

fn parse_tcp(value: &[u8], unknown: &mut u16) -> Result<TcpInfo, Error> {
    let mut t = TcpInfo::default();
    for nla in nlas(value) {
        let nla = nla?;
        match nla.ty {
            CTA_PROTOINFO_TCP_STATE => t.state = Some(byte(&nla, "CTA_PROTOINFO_TCP_STATE")?),
            CTA_PROTOINFO_TCP_WSCALE_ORIGINAL => {
                t.wscale_orig = Some(byte(&nla, "CTA_PROTOINFO_TCP_WSCALE_ORIGINAL")?);
            }
            CTA_PROTOINFO_TCP_WSCALE_REPLY => {
                t.wscale_reply = Some(byte(&nla, "CTA_PROTOINFO_TCP_WSCALE_REPLY")?);
            }
            CTA_PROTOINFO_TCP_FLAGS_ORIGINAL => {
                t.flags_orig = Some(tcp_flags(nla.value, "CTA_PROTOINFO_TCP_FLAGS_ORIGINAL")?);
            }
            CTA_PROTOINFO_TCP_FLAGS_REPLY => {
                t.flags_reply = Some(tcp_flags(nla.value, "CTA_PROTOINFO_TCP_FLAGS_REPLY")?);
            }
            _ => *unknown = unknown.saturating_add(1),
        }
    }
    Ok(t)
}

fn parse_sctp(value: &[u8], unknown: &mut u16) -> Result<SctpInfo, Error> {
    let mut s = SctpInfo::default();
    for nla in nlas(value) {
        let nla = nla?;
        match nla.ty {
            CTA_PROTOINFO_SCTP_STATE => s.state = Some(byte(&nla, "CTA_PROTOINFO_SCTP_STATE")?),
            CTA_PROTOINFO_SCTP_VTAG_ORIGINAL => {
                s.vtag_orig = Some(be32(&nla, "CTA_PROTOINFO_SCTP_VTAG_ORIGINAL")?);
            }
            CTA_PROTOINFO_SCTP_VTAG_REPLY => {
                s.vtag_reply = Some(be32(&nla, "CTA_PROTOINFO_SCTP_VTAG_REPLY")?);
            }
            _ => *unknown = unknown.saturating_add(1),
        }
    }
    Ok(s)
}

fn parse_dccp(value: &[u8], unknown: &mut u16) -> Result<DccpInfo, Error> {
    let mut d = DccpInfo::default();
    for nla in nlas(value) {
        let nla = nla?;
        match nla.ty {
            CTA_PROTOINFO_DCCP_STATE => d.state = Some(byte(&nla, "CTA_PROTOINFO_DCCP_STATE")?),
            CTA_PROTOINFO_DCCP_ROLE => d.role = Some(byte(&nla, "CTA_PROTOINFO_DCCP_ROLE")?),
            CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ => {
                let v = nla.array("CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ")?;
                d.handshake_seq = Some(u64::from_be_bytes(v));
            }
            // Alignment padding for the u64 (the kernel's nla_put_be64 may add it).
            CTA_PROTOINFO_DCCP_PAD => {}
            _ => *unknown = unknown.saturating_add(1),
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(buf: &[u8]) -> &[u8] {
        // Skip nlmsghdr + nfgenmsg + the CTA_PROTOINFO header.
        &buf[24..]
    }

    // DCCP is hand-built: Linux 6.18 no longer tracks DCCP, so no kernel capture exists.
    #[rustfmt::skip]
    static DCCP: [u8; 32] = [
        // CTA_PROTOINFO_DCCP | NESTED, len 32
        0x20, 0x00, 0x02, 0x80,
        //   CTA_PROTOINFO_DCCP_STATE = 4 (OPEN), padding
        0x05, 0x00, 0x01, 0x00,  0x04, 0x00, 0x00, 0x00,
        //   CTA_PROTOINFO_DCCP_ROLE = 1 (server), padding
        0x05, 0x00, 0x02, 0x00,  0x01, 0x00, 0x00, 0x00,
        //   CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ = 0x0102030405060708 (BE64)
        0x0c, 0x00, 0x03, 0x00,  0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
    ];

    #[test]
    fn test_dccp() {
        let mut u = 0;
        let want = ProtoInfo::Dccp(DccpInfo {
            state: Some(4),
            role: Some(1),
            handshake_seq: Some(0x0102_0304_0506_0708),
        });
        assert_eq!(ProtoInfo::parse(&DCCP, &mut u), Ok(Some(want)));
        let mut buf = Vec::new();
        let mut b = MsgBuilder::new(&mut buf, 1, 0, 0, 0, AF_INET);
        want.emit(&mut b);
        b.finish();
        assert_eq!(body(&buf), DCCP);
        // With the kernel's pad attribute in front of the u64, and an unknown one.
        #[rustfmt::skip]
        let padded = [
            // CTA_PROTOINFO_DCCP | NESTED, len 24
            0x18, 0x00, 0x02, 0x80,
            //   CTA_PROTOINFO_DCCP_PAD (empty)
            0x04, 0x00, 0x04, 0x00,
            //   type 9 (unknown), empty
            0x04, 0x00, 0x09, 0x00,
            //   CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ = 1
            0x0c, 0x00, 0x03, 0x00,  0, 0, 0, 0, 0, 0, 0, 1,
        ];
        let want = ProtoInfo::Dccp(DccpInfo {
            handshake_seq: Some(1),
            ..DccpInfo::default()
        });
        assert_eq!(ProtoInfo::parse(&padded, &mut u), Ok(Some(want)));
        assert_eq!(u, 1);
    }

    #[test]
    fn test_tcp_sctp_roundtrip() {
        for p in [
            ProtoInfo::Tcp(TcpInfo {
                state: Some(TCP_CONNTRACK_ESTABLISHED),
                wscale_orig: Some(7),
                wscale_reply: Some(9),
                flags_orig: Some(TcpFlags {
                    flags: 0x23,
                    mask: 0x23,
                }),
                flags_reply: Some(TcpFlags {
                    flags: 0x08,
                    mask: 0x08,
                }),
            }),
            ProtoInfo::Tcp(TcpInfo {
                state: Some(1),
                ..TcpInfo::default()
            }),
            ProtoInfo::Sctp(SctpInfo {
                state: Some(SCTP_CONNTRACK_ESTABLISHED),
                vtag_orig: Some(0x1122_3344),
                vtag_reply: Some(0x5566_7788),
            }),
        ] {
            let mut buf = Vec::new();
            let mut b = MsgBuilder::new(&mut buf, 1, 0, 0, 0, AF_INET);
            p.emit(&mut b);
            b.finish();
            let mut u = 0;
            assert_eq!(ProtoInfo::parse(body(&buf), &mut u), Ok(Some(p)));
            assert_eq!(u, 0);
        }
    }

    #[test]
    fn test_bad_lengths() {
        let mut u = 0;
        #[rustfmt::skip]
        let bad_flags = [
            // CTA_PROTOINFO_TCP | NESTED, len 12
            0x0c, 0x00, 0x01, 0x80,
            //   CTA_PROTOINFO_TCP_FLAGS_ORIGINAL with 3 bytes
            0x07, 0x00, 0x04, 0x00,  0x01, 0x01, 0x01, 0x00,
        ];
        assert_eq!(
            ProtoInfo::parse(&bad_flags, &mut u),
            Err(Error::BadLength("CTA_PROTOINFO_TCP_FLAGS_ORIGINAL"))
        );
        assert_eq!(ProtoInfo::parse(&[], &mut u), Ok(None));
    }
}
