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
        // ALARM's external objects expire CacheTimeout after their last update: ` [expires
        // in Ns]` (§3.2); other caches have no timer.
        let internal = matches!(what, Dump::Internal { .. });
        let expires = |updated: Secs| {
            (!internal)
                .then_some(self.cfg.cache_timeout)
                .flatten()
                .map(|t| u64::from(t.saturating_sub(secs.saturating_sub(updated))))
        };
        match what {
            Dump::Internal { exp: false, xml } | Dump::External { exp: false, xml } => {
                let objs: Vec<_> = if internal {
                    self.internal
                        .iter()
                        .filter(|(_, o)| o.meta.status != ObjStatus::Dead)
                        .map(|(k, o)| (o.val.unpack(k), o.meta.created, o.meta.updated))
                        .collect()
                } else {
                    self.external
                        .iter()
                        .map(|(k, o)| (o.val.unpack(k), o.meta.created, o.meta.updated))
                        .collect()
                };
                for (r, created, updated) in objs {
                    let Ok(mut ct) = convert::kernel_from_wire(&r, secs, secs, &policy) else {
                        continue;
                    };
                    ct.timeout = None;
                    ct.protoinfo = display_protoinfo(&r);
                    if internal {
                        // Show the reply tuple the kernel holds, NAT applied, as C does.
                        nat_reply(&mut ct);
                    } else {
                        // The external object only knows the original tuple (§3.2).
                        ct.reply = None;
                        ct.nat_src = None;
                        ct.nat_dst = None;
                    }
                    if xml {
                        s.push_str(&conntrack_xml(&ct));
                        s.push('\n');
                    } else {
                        s.push_str(&dump_line(
                            &conntrack_line(&ct),
                            expires(updated),
                            since(created),
                        ));
                    }
                }
            }
            Dump::Internal { exp: true, xml } | Dump::External { exp: true, xml } => {
                let objs: Vec<_> = if matches!(what, Dump::Internal { .. }) {
                    self.internal_exp
                        .iter()
                        .filter(|(_, o)| o.meta.status != ObjStatus::Dead)
                        .map(|(k, o)| (Stored::unpack(&o.val, k), o.meta.created, o.meta.updated))
                        .collect()
                } else {
                    self.external_exp
                        .iter()
                        .map(|(k, o)| (Stored::unpack(&o.val, k), o.meta.created, o.meta.updated))
                        .collect()
                };
                for (r, created, updated) in objs {
                    let Ok(e) = exp_kernel_from_wire(&r, secs, secs, &policy) else {
                        continue;
                    };
                    if xml {
                        s.push_str(&expect_xml(&e));
                        s.push('\n');
                    } else {
                        s.push_str(&dump_line(
                            &expect_line(&e),
                            expires(updated),
                            since(created),
                        ));
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

/// Rewrites the mirrored reply tuple of a commit request into the one the kernel built:
/// SNAT replaces the reply destination, DNAT the reply source (address and, if given,
/// port), and the NAT requests themselves are dropped (a listing does not print them).
fn nat_reply(ct: &mut crate::netlink::ct::Conntrack) {
    use crate::netlink::tuple::L4;
    let (snat, dnat) = (ct.nat_src.take(), ct.nat_dst.take());
    let Some(reply) = ct.reply.as_mut() else {
        return;
    };
    if let Some(n) = snat {
        if let Some(ip) = n.min_ip {
            reply.dst = ip;
        }
        if let (Some(p), L4::Ports { dport, .. }) = (n.min_port, &mut reply.l4) {
            *dport = p;
        }
    }
    if let Some(n) = dnat {
        if let Some(ip) = n.min_ip {
            reply.src = ip;
        }
        if let (Some(p), L4::Ports { sport, .. }) = (n.min_port, &mut reply.l4) {
            *sport = p;
        }
    }
}
