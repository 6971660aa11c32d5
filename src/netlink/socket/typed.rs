//! The typed half of [`CtHandle`]: dumps decoded into [`Conntrack`] / [`Expectation`], GET
//! by tuple, and the batched create/update/delete requests built from them.

use tracing::debug;

use super::{
    BatchReport, CT_GET, CtHandle, DumpStats, EXP_GET, KernelError, NlError, Req, ReqKind, io_err,
};
use crate::netlink::consts::{
    CTA_EXPECT_TUPLE, CTA_EXPECT_ZONE, CTA_MARK, CTA_MARK_MASK, CTA_TUPLE_ORIG, CTA_ZONE,
    IPCTNL_MSG_CT_GET, IPS_CONFIRMED, NFNL_SUBSYS_CTNETLINK,
};
use crate::netlink::ct::Conntrack;
use crate::netlink::exp::Expectation;
use crate::netlink::msg::{Payload, messages};

/// Which conntracks a dump returns. The kernel filters by family, mark and (non-zero) zone
/// itself; the same conditions are checked again here so that zone 0 and kernels without
/// zone filtering give the same answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpFilter {
    /// AF_INET / AF_INET6, or 0 for both.
    pub family: u8,
    /// `(value, mask)`: entries whose `mark & mask == value` (as the kernel compares).
    pub mark: Option<(u32, u32)>,
    /// Only entries of this zone (absent zone = 0).
    pub zone: Option<u16>,
}

impl DumpFilter {
    fn matches(&self, ct: &Conntrack) -> bool {
        let mark_ok = self
            .mark
            .is_none_or(|(m, mask)| ct.mark.unwrap_or(0) & mask == m);
        let zone_ok = self.zone.is_none_or(|z| ct.zone.unwrap_or(0) == z);
        mark_ok && zone_ok
    }
}

/// What an update may carry: the kernel refuses changes of NAT, helper and master (EBUSY /
/// EINVAL), so conntrackd strips them (ctnetlink-notes §7).
fn for_update(ct: &Conntrack) -> Conntrack {
    Conntrack {
        nat_src: None,
        nat_dst: None,
        master: None,
        helper: None,
        ..*ct
    }
}

/// Emits `ct` with the status fix-up libnetfilter_conntrack applies: the kernel marks a new
/// entry CONFIRMED before it applies CTA_STATUS and refuses to clear the bit (EBUSY), so the
/// bit is always sent.
fn emit_ct(ct: &Conntrack, req: Req<'_>) {
    let mut b = req.start(ct.family);
    let ct = Conntrack {
        status: ct.status.map(|s| s | IPS_CONFIRMED),
        ..*ct
    };
    ct.emit(&mut b);
    b.finish();
}

/// Emits what identifies `ct`: the original tuple and the zone.
fn emit_ct_key(ct: &Conntrack, req: Req<'_>) {
    let mut b = req.start(ct.family);
    ct.orig.emit(&mut b, CTA_TUPLE_ORIG);
    if let Some(z) = ct.zone {
        b.put_u16_be(CTA_ZONE, z);
    }
    b.finish();
}

impl CtHandle {
    /// Dumps the conntrack table, decoded, through `f`.
    pub fn dump_conntracks(
        &mut self,
        filter: &DumpFilter,
        mut f: impl FnMut(&Conntrack),
    ) -> Result<DumpStats, NlError> {
        let mut st = DumpStats::default();
        self.dump_raw(
            CT_GET,
            filter.family,
            "dump conntracks",
            |b| {
                if let Some((mark, mask)) = filter.mark {
                    b.put_u32_be(CTA_MARK, mark);
                    b.put_u32_be(CTA_MARK_MASK, mask);
                }
                if let Some(z) = filter.zone.filter(|&z| z != 0) {
                    b.put_u16_be(CTA_ZONE, z);
                }
            },
            |m| match m.classify() {
                Ok(Payload::Nfnl { family, attrs, .. }) => match Conntrack::parse(family, attrs) {
                    Ok(ct) if filter.matches(&ct) => {
                        st.entries += 1;
                        f(&ct);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        debug!(error = %e, "undecodable conntrack in dump");
                        st.bad += 1;
                    }
                },
                _ => st.bad += 1,
            },
        )?;
        Ok(st)
    }

    /// Dumps the expectation table (of `family`, 0 = all), decoded, through `f`.
    pub fn dump_expectations(
        &mut self,
        family: u8,
        mut f: impl FnMut(&Expectation),
    ) -> Result<DumpStats, NlError> {
        let mut st = DumpStats::default();
        self.dump_raw(
            EXP_GET,
            family,
            "dump expectations",
            |_| {},
            |m| match m.classify() {
                Ok(Payload::Nfnl { family, attrs, .. }) => {
                    match Expectation::parse(family, attrs) {
                        Ok(e) => {
                            st.entries += 1;
                            f(&e);
                        }
                        Err(e) => {
                            debug!(error = %e, "undecodable expectation in dump");
                            st.bad += 1;
                        }
                    }
                }
                _ => st.bad += 1,
            },
        )?;
        Ok(st)
    }

    /// Looks one conntrack up by original tuple (and zone); `None` if it does not exist.
    pub fn get_conntrack(&mut self, key: &Conntrack) -> Result<Option<Conntrack>, NlError> {
        const OP: &str = "get conntrack";
        let seq = self.next_seq(1);
        self.tx.clear();
        let req = Req {
            buf: &mut self.tx,
            kind: ReqKind::new(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET, 0, OP),
            seq,
        };
        emit_ct_key(key, req);
        self.sock.send(&self.tx).map_err(io_err(OP))?;
        let mut found = None;
        loop {
            let n = self.recv(OP)?;
            for m in messages(&self.rx[..n]) {
                let m = m.map_err(|source| NlError::Codec { op: OP, source })?;
                if m.seq() != seq {
                    continue;
                }
                match m.classify() {
                    Ok(Payload::Error { errno: 0, .. }) => return Ok(found),
                    Ok(Payload::Error { errno, .. }) if errno == libc::ENOENT => return Ok(None),
                    Ok(Payload::Error { errno, .. }) => {
                        return Err(NlError::Kernel(KernelError { op: OP, errno }));
                    }
                    Ok(Payload::Nfnl { family, attrs, .. }) => {
                        found = Some(
                            Conntrack::parse(family, attrs)
                                .map_err(|source| NlError::Codec { op: OP, source })?,
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    /// Creates conntracks (CT_NEW, CREATE | EXCL): EEXIST for entries that exist. The caller
    /// prepares the entries (timeout, reply tuple, status); IPS_CONFIRMED is added here.
    pub fn create(&mut self, cts: &[Conntrack]) -> Result<BatchReport, NlError> {
        self.batch_raw(ReqKind::CT_CREATE, cts, emit_ct)
    }

    /// Updates conntracks (CT_NEW without CREATE): ENOENT for entries that do not exist.
    /// NAT ranges, helper and master tuple are left out (the kernel refuses to change them).
    pub fn update(&mut self, cts: &[Conntrack]) -> Result<BatchReport, NlError> {
        self.batch_raw(ReqKind::CT_UPDATE, cts, |ct, req| {
            emit_ct(&for_update(ct), req)
        })
    }

    /// Deletes conntracks by original tuple and zone: ENOENT for entries that do not exist.
    pub fn delete(&mut self, cts: &[Conntrack]) -> Result<BatchReport, NlError> {
        self.batch_raw(ReqKind::CT_DELETE, cts, emit_ct_key)
    }

    /// Creates expectations (EXP_NEW, CREATE | EXCL). The master conntrack must exist with
    /// the named helper attached.
    pub fn create_expectations(&mut self, exps: &[Expectation]) -> Result<BatchReport, NlError> {
        self.batch_raw(ReqKind::EXP_CREATE, exps, |e, req| {
            let mut b = req.start(e.family);
            e.emit(&mut b);
            b.finish();
        })
    }

    /// Updates expectations (EXP_NEW without CREATE): the kernel applies only the timeout.
    pub fn update_expectations(&mut self, exps: &[Expectation]) -> Result<BatchReport, NlError> {
        self.batch_raw(ReqKind::EXP_UPDATE, exps, |e, req| {
            let mut b = req.start(e.family);
            e.emit(&mut b);
            b.finish();
        })
    }

    /// Deletes expectations by their tuple (and zone).
    pub fn delete_expectations(&mut self, exps: &[Expectation]) -> Result<BatchReport, NlError> {
        self.batch_raw(ReqKind::EXP_DELETE, exps, |e, req| {
            let mut b = req.start(e.family);
            e.tuple.emit(&mut b, CTA_EXPECT_TUPLE);
            if let Some(z) = e.zone {
                b.put_u16_be(CTA_EXPECT_ZONE, z);
            }
            b.finish();
        })
    }
}
