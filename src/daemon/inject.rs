//! `DisableExternalCache`: received state goes straight into the kernel (sync-modes.md
//! §5.3), from a dedicated thread with its own netlink socket (the INJECT origin: the
//! reader ignores the events it causes).
//!
//! Messages are applied in arrival order, in runs of the same operation so that each run is
//! one netlink batch:
//!
//! | message | kernel operation |
//! |---|---|
//! | CT_NEW | create; on EEXIST delete and create once more |
//! | CT_UPD | update; on ENOENT create; on any other error delete + create |
//! | CT_DEL | delete (ENOENT ignored) |
//! | EXP_NEW / EXP_UPD | create; on EEXIST delete + create once |
//! | EXP_DEL | delete |
//!
//! The timeout is the message's own (no aging correction).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{debug, info_span};

use super::stats::CacheCounters;
use crate::cache::convert::{self, CommitKind, CommitPolicy};
use crate::cache::exp::exp_kernel_from_wire;
use crate::netlink::ct::Conntrack;
use crate::netlink::exp::Expectation;
use crate::netlink::socket::{BatchReport, CtHandle, errno_of};
use crate::runtime::ring::Consumer;
use crate::runtime::worker::TxPayload;
use crate::wire::MsgType;

/// One received data message to inject.
#[derive(Debug, Clone, Copy)]
pub struct InjectItem {
    /// CT_* or EXP_*.
    pub msg_type: MsgType,
    /// The payload.
    pub payload: TxPayload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    CtCreate,
    CtUpdate,
    CtDelete,
    ExpCreate,
    ExpDelete,
}

fn op_of(t: MsgType) -> Op {
    match t {
        MsgType::CT_NEW => Op::CtCreate,
        MsgType::CT_UPD => Op::CtUpdate,
        MsgType::CT_DEL => Op::CtDelete,
        MsgType::EXP_DEL => Op::ExpDelete,
        _ => Op::ExpCreate,
    }
}

/// The injector thread's state.
#[derive(Debug)]
pub struct Injector {
    h: CtHandle,
    rx: Consumer<InjectItem>,
    stats: Arc<CacheCounters>,
    tcp_window_tracking: bool,
    shutdown: Arc<AtomicBool>,
}

impl Injector {
    /// An injector over its own request socket `h` (whose port id the reader treats as the
    /// INJECT origin).
    pub fn new(
        h: CtHandle,
        rx: Consumer<InjectItem>,
        stats: Arc<CacheCounters>,
        tcp_window_tracking: bool,
        shutdown: Arc<AtomicBool>,
    ) -> Self {
        Self {
            h,
            rx,
            stats,
            tcp_window_tracking,
            shutdown,
        }
    }

    /// Runs until shutdown.
    pub fn run(mut self) {
        let span = info_span!("inject");
        let _g = span.enter();
        let mut items = Vec::new();
        while !self.shutdown.load(Ordering::Acquire) {
            let n = self
                .rx
                .pop_batch_or_wait(&mut items, 4096, Some(Duration::from_millis(200)))
                .unwrap_or(0);
            if n == 0 {
                continue;
            }
            let mut start = 0;
            while start < items.len() {
                let op = op_of(items[start].msg_type);
                let end = items[start..]
                    .iter()
                    .position(|i| op_of(i.msg_type) != op)
                    .map_or(items.len(), |p| start + p);
                self.apply(op, &items[start..end]);
                start = end;
            }
            items.clear();
        }
        debug!("injector stopped");
    }

    fn policy(&self, kind: CommitKind) -> CommitPolicy {
        CommitPolicy {
            commit_timeout: 0,
            tcp_window_tracking: self.tcp_window_tracking,
            kind,
        }
    }

    fn cts(&self, items: &[InjectItem], kind: CommitKind) -> Vec<Conntrack> {
        let p = self.policy(kind);
        items
            .iter()
            .filter_map(|i| match &i.payload {
                TxPayload::Ct(r) => convert::kernel_from_wire(r, 0, 0, &p).ok(),
                TxPayload::Exp(_) => None,
            })
            .collect()
    }

    fn exps(&self, items: &[InjectItem]) -> Vec<Expectation> {
        let p = self.policy(CommitKind::InjectCreate);
        items
            .iter()
            .filter_map(|i| match &i.payload {
                TxPayload::Exp(r) => exp_kernel_from_wire(r, 0, 0, &p).ok(),
                TxPayload::Ct(_) => None,
            })
            .collect()
    }

    fn apply(&mut self, op: Op, items: &[InjectItem]) {
        let st = Arc::clone(&self.stats);
        match op {
            Op::CtCreate => {
                let cts = self.cts(items, CommitKind::InjectCreate);
                let rep = self.h.create(&cts);
                let again = failed(
                    &cts,
                    rep,
                    |e| e == libc::EEXIST,
                    &st.created,
                    &st.create_failed,
                );
                if !again.is_empty() {
                    let _ = self.h.delete(&again);
                    count(
                        self.h.create(&again),
                        again.len(),
                        &st.created,
                        &st.create_failed,
                    );
                }
            }
            Op::CtUpdate => {
                let cts = self.cts(items, CommitKind::InjectUpdate);
                let full = self.cts(items, CommitKind::InjectCreate);
                let rep = self.h.update(&cts);
                let mut missing = Vec::new();
                let mut broken = Vec::new();
                match rep {
                    Ok(r) => {
                        st.updated.add(r.ok as u64);
                        for (i, e) in &r.errors {
                            if errno_of(e) == Some(libc::ENOENT) {
                                missing.push(full[*i]);
                            } else {
                                broken.push(full[*i]);
                            }
                        }
                    }
                    Err(_) => st.update_failed.add(cts.len() as u64),
                }
                count(
                    self.h.create(&missing),
                    missing.len(),
                    &st.created,
                    &st.update_failed,
                );
                if !broken.is_empty() {
                    let _ = self.h.delete(&broken);
                    count(
                        self.h.create(&broken),
                        broken.len(),
                        &st.updated,
                        &st.update_failed,
                    );
                }
            }
            Op::CtDelete => {
                let cts = self.cts(items, CommitKind::InjectCreate);
                let rep = self.h.delete(&cts);
                // ENOENT is not a failure here.
                let _ = failed(
                    &cts,
                    rep,
                    |e| e == libc::ENOENT,
                    &st.destroyed,
                    &st.destroy_failed,
                );
            }
            Op::ExpCreate => {
                let exps = self.exps(items);
                match self.h.create_expectations(&exps) {
                    Ok(r) => {
                        let again: Vec<Expectation> = r
                            .errors
                            .iter()
                            .filter(|(_, e)| errno_of(e) == Some(libc::EEXIST))
                            .map(|(i, _)| exps[*i])
                            .collect();
                        if !again.is_empty() {
                            let _ = self.h.delete_expectations(&again);
                            let _ = self.h.create_expectations(&again);
                        }
                    }
                    Err(e) => debug!(error = %e, "inject expectations"),
                }
            }
            Op::ExpDelete => {
                let exps = self.exps(items);
                let _ = self.h.delete_expectations(&exps);
            }
        }
    }
}

/// Counts a batch result: ok → `ok`; errors for which `retry` holds are returned (their
/// entries), the others counted in `fail`.
fn failed(
    cts: &[Conntrack],
    rep: Result<BatchReport, crate::netlink::socket::NlError>,
    retry: impl Fn(i32) -> bool,
    ok: &super::stats::Counter,
    fail: &super::stats::Counter,
) -> Vec<Conntrack> {
    let mut again = Vec::new();
    match rep {
        Ok(r) => {
            ok.add(r.ok as u64);
            for (i, e) in &r.errors {
                if errno_of(e).is_some_and(&retry) {
                    again.push(cts[*i]);
                } else {
                    fail.inc();
                }
            }
        }
        Err(_) => fail.add(cts.len() as u64),
    }
    again
}

fn count(
    rep: Result<BatchReport, crate::netlink::socket::NlError>,
    n: usize,
    ok: &super::stats::Counter,
    fail: &super::stats::Counter,
) {
    if n == 0 {
        return;
    }
    match rep {
        Ok(r) => {
            ok.add(r.ok as u64);
            fail.add(r.errors.len() as u64);
        }
        Err(_) => fail.add(n as u64),
    }
}
