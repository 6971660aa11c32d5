//! Commit: the external cache into the kernel (`conntrackd -c`, sync-modes.md §6).
//!
//! Entries are created in large netlink batches through the commit socket (whose port id
//! marks the resulting events as COMMIT origin: applied to the internal cache, never
//! replicated). Unrelated conntracks go first, related ones (with a master) second, since
//! the kernel needs the master to exist. An entry that already exists is deleted and
//! created once more, as the C daemon does.

use std::time::Instant;

use super::convert;
use super::log::Log;
use crate::netlink::ct::Conntrack;
use crate::netlink::socket::{CtHandle, errno_of};
use crate::wire::ct;

/// Commit parameters from the `Sync` section.
#[derive(Debug, Clone, Copy)]
pub struct CommitConfig {
    /// `CommitTimeout` (0: estimate from the entry's own timeout).
    pub commit_timeout: u32,
    /// `TCPWindowTracking`.
    pub window_tracking: bool,
}

/// Outcome of one commit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitReport {
    /// Entries created.
    pub ok: usize,
    /// Entries that could not be committed.
    pub failed: usize,
}

/// The timeout of a committed entry (§6 step 4).
fn timeout_of(r: &ct::Repr, age: u64, cfg: &CommitConfig) -> u32 {
    if cfg.commit_timeout > 0 {
        return cfg.commit_timeout;
    }
    let left = i64::from(r.timeout.unwrap_or(0)) - age as i64;
    if left < 0 { 60 } else { left as u32 }
}

/// Creates every entry of `entries` (`(payload, seconds since last update)`) in the kernel,
/// blocking until the kernel acknowledged all of them, and logs the C daemon's summary.
pub fn commit(
    h: &mut CtHandle,
    entries: &[(ct::Repr, u64)],
    cfg: &CommitConfig,
    log: &Log,
) -> CommitReport {
    let start = Instant::now();
    let mut report = CommitReport::default();
    let (mut plain, mut related) = (Vec::new(), Vec::new());
    for (r, age) in entries {
        match convert::kernel_from_wire(r, timeout_of(r, *age, cfg), cfg.window_tracking) {
            Some(ct) if ct.master.is_some() => related.push(ct),
            Some(ct) => plain.push(ct),
            None => report.failed += 1,
        }
    }
    for pass in [&plain, &related] {
        create_pass(h, pass, &mut report, log);
    }
    log.notice(&format!("Committed {} new entries", report.ok));
    if report.failed > 0 {
        log.notice(&format!("{} entries can't be committed", report.failed));
    }
    log.notice(&format!(
        "commit has taken {:.6} seconds",
        start.elapsed().as_secs_f64()
    ));
    report
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
