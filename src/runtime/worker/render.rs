//! `-i` / `-e` rendering of one shard (plain and XML), through `ctl::render`.

use super::{Dump, Worker};
use crate::cache::convert;
use crate::cache::entry::Stored;
use crate::cache::exp::exp_kernel_from_wire;
use crate::cache::{ObjStatus, Secs};
use crate::ctl::render::entry::{conntrack_line, dump_line, expect_line};
use crate::ctl::render::xml::{conntrack_xml, expect_xml};
use crate::wire::ct;

impl Worker {
    /// The lines of a `-i`/`-e` dump of this shard. The caches hold only the replicated
    /// attributes, so a line shows what the sync protocol carries (the reply tuple is the
    /// mirrored original, as a commit would create it).
    pub(super) fn render(&self, what: Dump, secs: Secs) -> String {
        let policy = convert::CommitPolicy::default();
        let mut s = String::new();
        let since = |created: Secs| u64::from(secs.saturating_sub(created));
        match what {
            Dump::Internal { exp: false, xml } | Dump::External { exp: false, xml } => {
                let internal = matches!(what, Dump::Internal { .. });
                let objs: Vec<_> = if internal {
                    self.internal
                        .iter()
                        .filter(|(_, o)| o.meta.status != ObjStatus::Dead)
                        .map(|(k, o)| (o.val.unpack(k), o.meta.created))
                        .collect()
                } else {
                    self.external
                        .iter()
                        .map(|(k, o)| (o.val.unpack(k), o.meta.created))
                        .collect()
                };
                for (r, created) in objs {
                    let Ok(mut ct) = convert::kernel_from_wire(&r, secs, secs, &policy) else {
                        continue;
                    };
                    ct.timeout = None;
                    ct.protoinfo = display_protoinfo(&r);
                    if !internal {
                        // The external object only knows the original tuple (§3.2).
                        ct.reply = None;
                        ct.nat_src = None;
                        ct.nat_dst = None;
                    }
                    if xml {
                        s.push_str(&conntrack_xml(&ct));
                        s.push('\n');
                    } else {
                        s.push_str(&dump_line(&conntrack_line(&ct), None, since(created)));
                    }
                }
            }
            Dump::Internal { exp: true, xml } | Dump::External { exp: true, xml } => {
                let objs: Vec<_> = if matches!(what, Dump::Internal { .. }) {
                    self.internal_exp
                        .iter()
                        .filter(|(_, o)| o.meta.status != ObjStatus::Dead)
                        .map(|(k, o)| (Stored::unpack(&o.val, k), o.meta.created))
                        .collect()
                } else {
                    self.external_exp
                        .iter()
                        .map(|(k, o)| (Stored::unpack(&o.val, k), o.meta.created))
                        .collect()
                };
                for (r, created) in objs {
                    let Ok(e) = exp_kernel_from_wire(&r, secs, secs, &policy) else {
                        continue;
                    };
                    if xml {
                        s.push_str(&expect_xml(&e));
                        s.push('\n');
                    } else {
                        s.push_str(&dump_line(&expect_line(&e), None, since(created)));
                    }
                }
            }
        }
        s
    }
}

/// The protocol state of a cached payload, for display only.
fn display_protoinfo(r: &ct::Repr) -> Option<crate::netlink::protoinfo::ProtoInfo> {
    use crate::netlink::protoinfo::{ProtoInfo, SctpInfo, TcpInfo};
    if let Some(state) = r.tcp_state {
        return Some(ProtoInfo::Tcp(TcpInfo {
            state: Some(state),
            ..TcpInfo::default()
        }));
    }
    r.sctp_state.map(|state| {
        ProtoInfo::Sctp(SctpInfo {
            state: Some(state),
            ..SctpInfo::default()
        })
    })
}
