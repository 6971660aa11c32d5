//! Commit: the external cache into the kernel (`conntrackd -c`, sync-modes.md §6).
//!
//! Entries are created in large netlink batches through the commit socket (whose port id
//! marks the resulting events as COMMIT origin: applied to the internal cache, never
//! replicated). Unrelated conntracks go first, related ones (with a master) second, since
//! the kernel needs the master to exist. An entry that already exists is deleted and
//! created once more, as the C daemon does.

use std::time::Instant;

use super::log::Log;
use crate::cache::Secs;
use crate::cache::convert::{self, CommitPolicy};
use crate::cache::exp::exp_kernel_from_wire;
use crate::netlink::ct::Conntrack;
use crate::netlink::exp::Expectation;
use crate::netlink::socket::{CtHandle, errno_of};
use crate::wire::{ct, exp};

/// Commit parameters from the `Sync` section.
pub type CommitConfig = CommitPolicy;

/// Outcome of one commit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitReport {
    /// Entries created.
    pub ok: usize,
    /// Entries that could not be committed.
    pub failed: usize,
}

/// Creates every entry of `entries` (`(payload, last update in cache seconds since
/// `epoch`)`) in the kernel, blocking until the kernel acknowledged all of them, and logs
/// the C daemon's summary. The work is split over the handles `hs`, one thread each.
pub fn commit(
    hs: &mut [CtHandle],
    entries: &[(ct::Repr, Secs)],
    epoch: Instant,
    cfg: &CommitConfig,
    log: &Log,
) -> CommitReport {
    let start = Instant::now();
    let now = start.duration_since(epoch).as_secs() as Secs;
    let mut report = CommitReport::default();
    let (mut plain, mut related) = (Vec::new(), Vec::new());
    for (r, updated) in entries {
        match convert::kernel_from_wire(r, now, *updated, cfg) {
            Ok(ct) if ct.master.is_some() => related.push(ct),
            Ok(ct) => plain.push(ct),
            Err(_) => report.failed += 1,
        }
    }
    for pass in [&plain, &related] {
        create_parallel(hs, pass, &mut report, log);
    }
    log.notice(&format!("Committed {} new entries", report.ok));
    if report.failed > 0 {
        log.notice(&format!("{} entries can't be committed", report.failed));
    }
    let took = start.elapsed().as_secs_f64();
    log.notice(&format!("commit has taken {took:.6} seconds"));
    if report.ok > 0 && took > 0.0 {
        // Not a C line: the rate, for operators who size failover windows.
        log.notice(&format!(
            "commit rate: {:.0} entries/s over {} sockets",
            report.ok as f64 / took,
            hs.len()
        ));
    }
    report
}

/// Below this many entries one socket does it: threads cost more than they save.
const PARALLEL_MIN: usize = 4096;

/// [`create_pass`] over `cts` split in equal parts, one per handle, in parallel.
fn create_parallel(hs: &mut [CtHandle], cts: &[Conntrack], report: &mut CommitReport, log: &Log) {
    let single = hs.len() == 1 || cts.len() < PARALLEL_MIN;
    let Some(first) = hs.first_mut() else {
        report.failed += cts.len();
        return;
    };
    if single {
        create_pass(first, cts, report, log);
        return;
    }
    let part = cts.len().div_ceil(hs.len());
    let parts: Vec<CommitReport> = std::thread::scope(|s| {
        let running: Vec<_> = hs
            .iter_mut()
            .zip(cts.chunks(part))
            .map(|(h, chunk)| {
                let t = s.spawn(move || {
                    let mut r = CommitReport::default();
                    create_pass(h, chunk, &mut r, log);
                    r
                });
                (t, chunk.len())
            })
            .collect();
        running
            .into_iter()
            .map(|(t, n)| t.join().unwrap_or(CommitReport { ok: 0, failed: n }))
            .collect()
    });
    for r in parts {
        report.ok += r.ok;
        report.failed += r.failed;
    }
}

fn create_pass(h: &mut CtHandle, cts: &[Conntrack], report: &mut CommitReport, log: &Log) {
    if cts.is_empty() {
        return;
    }
    let rep = match h.create(cts) {
        Ok(r) => r,
        Err(e) => {
            log.error(&format!("commit: {e}"));
            report.failed += cts.len();
            return;
        }
    };
    report.ok += rep.ok;
    let mut again = Vec::new();
    for (i, e) in &rep.errors {
        if errno_of(e) == Some(libc::EEXIST) {
            again.push(cts[*i]);
        } else {
            log.error(&format!("commit: {e}"));
            report.failed += 1;
        }
    }
    if again.is_empty() {
        return;
    }
    // Already there: delete and create once more (§6 step 5).
    let _ = h.delete(&again);
    match h.create(&again) {
        Ok(r) => {
            report.ok += r.ok;
            report.failed += r.errors.len();
        }
        Err(e) => {
            log.error(&format!("commit: {e}"));
            report.failed += again.len();
        }
    }
}

/// Creates the replicated expectations (after the conntracks: the kernel needs each master
/// with its helper), with the same delete-and-retry on EEXIST.
pub fn commit_expectations(
    h: &mut CtHandle,
    entries: &[(exp::Repr, Secs)],
    epoch: Instant,
    cfg: &CommitConfig,
    log: &Log,
) -> CommitReport {
    let now = Instant::now().duration_since(epoch).as_secs() as Secs;
    let mut report = CommitReport::default();
    let exps: Vec<Expectation> = entries
        .iter()
        .filter_map(
            |(r, updated)| match exp_kernel_from_wire(r, now, *updated, cfg) {
                Ok(e) => Some(e),
                Err(_) => {
                    report.failed += 1;
                    None
                }
            },
        )
        .collect();
    if exps.is_empty() {
        return report;
    }
    match h.create_expectations(&exps) {
        Ok(rep) => {
            report.ok += rep.ok;
            let mut again = Vec::new();
            for (i, e) in &rep.errors {
                if errno_of(e) == Some(libc::EEXIST) {
                    again.push(exps[*i]);
                } else {
                    log.error(&format!("commit expectation: {e}"));
                    report.failed += 1;
                }
            }
            if !again.is_empty() {
                let _ = h.delete_expectations(&again);
                match h.create_expectations(&again) {
                    Ok(r) => {
                        report.ok += r.ok;
                        report.failed += r.errors.len();
                    }
                    Err(_) => report.failed += again.len(),
                }
            }
        }
        Err(e) => {
            log.error(&format!("commit expectations: {e}"));
            report.failed += exps.len();
        }
    }
    log.notice(&format!("Committed {} new expectations", report.ok));
    report
}
