//! The control socket server and the daemon's request handler.
//!
//! The accept loop is a TEMPORARY shim (the `ctl` branch brings `CtlServer`); the handler
//! logic (what each request does to the running daemon) is ours and stays. Requests are
//! served one at a time on this thread: a commit keeps the client connected until it is
//! done (sync-modes.md §6 step 7), which `primary-backup.sh` relies on.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::commit;
use super::log::Log;
use super::stats::{
    CacheTotals, LinkStats, ReaderStats, ShardStats, render_cache_stats, render_stats,
};
use crate::cache::{CtKey, shard_of};
use crate::netlink::ct::Conntrack;
use crate::netlink::socket::{CtHandle, DumpFilter};
use crate::runtime::ring::Producer;
use crate::runtime::sender::LinkCmd;
use crate::runtime::worker::{Cmd, CtChange, KernelEvent, Origin};

/// Request codes (control-and-cli.md §1.3).
mod code {
    pub(super) const CT_FLUSH_MASTER: i32 = 0;
    pub(super) const CT_RESYNC_MASTER: i32 = 1;
    pub(super) const CT_DUMP_INTERNAL: i32 = 16;
    pub(super) const CT_DUMP_EXTERNAL: i32 = 17;
    pub(super) const CT_COMMIT: i32 = 18;
    pub(super) const CT_FLUSH_CACHE: i32 = 19;
    pub(super) const KILL: i32 = 20;
    pub(super) const STATS: i32 = 21;
    pub(super) const SEND_BULK: i32 = 22;
    pub(super) const REQUEST_DUMP: i32 = 23;
    pub(super) const RESET_TIMERS: i32 = 26;
    pub(super) const STATS_CACHE: i32 = 29;
    pub(super) const STATS_RUNTIME: i32 = 30;
    pub(super) const CT_FLUSH_INT_CACHE: i32 = 33;
    pub(super) const CT_FLUSH_EXT_CACHE: i32 = 34;
    pub(super) const ALL_FLUSH_MASTER: i32 = 43;
    pub(super) const ALL_RESYNC_MASTER: i32 = 44;
    pub(super) const ALL_FLUSH_CACHE: i32 = 45;
    pub(super) const ALL_COMMIT: i32 = 46;
    pub(super) const EXP_DUMP_INTERNAL: i32 = 40;
    pub(super) const EXP_DUMP_EXTERNAL: i32 = 41;
    pub(super) const EXP_COMMIT: i32 = 42;
}

/// Everything the handler reaches into.
#[derive(Debug)]
pub struct CtlState {
    /// One command ring per worker.
    pub workers: Vec<Producer<Cmd>>,
    /// To the link thread.
    pub link: Producer<LinkCmd>,
    /// Per-shard counters.
    pub shards: Vec<Arc<ShardStats>>,
    /// Link counters.
    pub link_stats: Arc<LinkStats>,
    /// Netlink reader counters.
    pub reader_stats: Arc<ReaderStats>,
    /// The commit socket (its port id is the COMMIT origin).
    pub commit: CtHandle,
    /// The flush socket (FLUSH origin); also used for `-R` dumps.
    pub flush: CtHandle,
    /// Commit parameters.
    pub commit_cfg: commit::CommitConfig,
    /// Transport name for `-s` ("UDP", "multicast", "TCP").
    pub transport: &'static str,
    /// Interface of each link, in config order.
    pub devices: Vec<String>,
    /// Index of the current link (the link thread updates it).
    pub current: Arc<AtomicUsize>,
    /// The log.
    pub log: Arc<Log>,
    /// Daemon start, for `-s runtime`.
    pub started: Instant,
    /// The caches' clock origin.
    pub epoch: Instant,
}

/// Binds the control socket at `path` (replacing a stale file) with the C backlog of 100.
pub fn bind(path: &PathBuf) -> std::io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path)
}

/// The accept loop. Returns when `shutdown` is set (the main thread connects once to wake
/// it).
pub fn serve(listener: UnixListener, mut state: CtlState, shutdown: Arc<AtomicBool>) {
    let span = tracing::info_span!("ctl");
    let _g = span.enter();
    for conn in listener.incoming() {
        if shutdown.load(Ordering::Acquire) {
            break;
        }
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut req = [0u8; 4];
        if conn.read_exact(&mut req).is_err() {
            debug!("short control request");
            continue;
        }
        let code = i32::from_ne_bytes(req);
        state.handle(code, &mut conn);
    }
}

impl CtlState {
    fn broadcast<T: Send + 'static>(&mut self, make: impl Fn(mpsc::Sender<T>) -> Cmd) -> Vec<T> {
        let (tx, rx) = mpsc::channel();
        let mut asked = 0;
        for w in &mut self.workers {
            if w.push(make(tx.clone())).is_ok() {
                asked += 1;
            }
        }
        drop(tx);
        (0..asked)
            .filter_map(|_| rx.recv_timeout(Duration::from_secs(30)).ok())
            .collect()
    }

    fn totals(&self) -> (CacheTotals, CacheTotals) {
        (
            CacheTotals::sum(self.shards.iter().map(|s| &s.internal)),
            CacheTotals::sum(self.shards.iter().map(|s| &s.external)),
        )
    }

    fn flush_caches(&mut self, internal: bool, external: bool) {
        self.broadcast(|done| Cmd::Flush {
            internal,
            external,
            done,
        });
    }

    /// Serves one request; the reply (if any) goes to `out`.
    pub fn handle(&mut self, code: i32, out: &mut UnixStream) {
        let reply = match code {
            code::KILL => {
                self.log.notice("---- shutdown received ----");
                if let Err(e) = crate::sys::signal::terminate_self() {
                    warn!(error = %e, "cannot signal ourselves");
                }
                String::new()
            }
            code::STATS => {
                let (i, e) = self.totals();
                {
                    let cur = self.current.load(Ordering::Relaxed);
                    let dev = self.devices.get(cur).map_or("", String::as_str);
                    render_stats(&i, &e, &self.link_stats, self.transport, dev)
                }
            }
            code::STATS_CACHE => {
                let (i, e) = self.totals();
                render_cache_stats(&i, &e)
            }
            code::STATS_RUNTIME => self.runtime_stats(),
            code::CT_DUMP_INTERNAL => self.broadcast(Cmd::DumpInternal).concat(),
            code::CT_DUMP_EXTERNAL => self.broadcast(Cmd::DumpExternal).concat(),
            code::EXP_DUMP_INTERNAL => self.broadcast(Cmd::DumpInternalExp).concat(),
            code::EXP_DUMP_EXTERNAL => self.broadcast(Cmd::DumpExternalExp).concat(),
            code::CT_COMMIT | code::ALL_COMMIT | code::EXP_COMMIT => {
                if code != code::EXP_COMMIT {
                    let all: Vec<_> = self.broadcast(Cmd::CollectExternal).concat();
                    commit::commit(
                        &mut self.commit,
                        &all,
                        self.epoch,
                        &self.commit_cfg,
                        &self.log,
                    );
                }
                // Expectations after conntracks: the kernel needs the master and its helper.
                if code != code::CT_COMMIT {
                    let all: Vec<_> = self.broadcast(Cmd::CollectExternalExp).concat();
                    if !all.is_empty() {
                        commit::commit_expectations(
                            &mut self.commit,
                            &all,
                            self.epoch,
                            &self.commit_cfg,
                            &self.log,
                        );
                    }
                }
                String::new()
            }
            code::CT_FLUSH_CACHE | code::ALL_FLUSH_CACHE => {
                self.flush_caches(true, true);
                String::new()
            }
            code::CT_FLUSH_INT_CACHE => {
                self.flush_caches(true, false);
                String::new()
            }
            code::CT_FLUSH_EXT_CACHE => {
                self.flush_caches(false, true);
                String::new()
            }
            code::CT_FLUSH_MASTER | code::ALL_FLUSH_MASTER => {
                self.log.notice("flushing kernel conntrack table");
                if let Err(e) = self.flush.flush_conntracks(0) {
                    self.log
                        .error(&format!("flushing kernel conntrack table: {e}"));
                }
                String::new()
            }
            code::CT_RESYNC_MASTER | code::ALL_RESYNC_MASTER => {
                self.resync_with_kernel();
                String::new()
            }
            code::SEND_BULK => {
                for w in &mut self.workers {
                    let _ = w.push(Cmd::Bulk);
                }
                String::new()
            }
            code::REQUEST_DUMP => {
                let _ = self.link.push(LinkCmd::RequestResync);
                String::new()
            }
            code::RESET_TIMERS => String::new(),
            _ => String::new(),
        };
        if !reply.is_empty() {
            let _ = out.write_all(reply.as_bytes());
        }
    }

    /// `-R`: dump the kernel table into the internal cache (no messages sent).
    fn resync_with_kernel(&mut self) {
        let n = self.workers.len();
        let mut per: Vec<Vec<KernelEvent>> = (0..n).map(|_| Vec::new()).collect();
        let res = self
            .flush
            .dump_conntracks(&DumpFilter::default(), |ct: &Conntrack| {
                let s = shard_of(&CtKey::from_conntrack(ct), n);
                per[s].push(KernelEvent {
                    change: CtChange::New,
                    origin: Origin::Dump,
                    ct: *ct,
                });
            });
        if let Err(e) = res {
            self.log.error(&format!("resync with kernel table: {e}"));
            return;
        }
        for (w, evs) in self.workers.iter_mut().zip(per) {
            let _ = w.push(Cmd::Load(evs));
        }
    }

    fn runtime_stats(&self) -> String {
        let up = self.started.elapsed().as_secs();
        let (d, h, m) = (up / 86_400, up % 86_400 / 3600, up % 3600 / 60);
        let mut s = String::from("daemon uptime: ");
        if d > 0 {
            s.push_str(&format!("{d} day{} ", if d == 1 { "" } else { "s" }));
        }
        if h > 0 {
            s.push_str(&format!("{h} h {m} min\n\n"));
        } else {
            s.push_str(&format!("{m} min\n\n"));
        }
        let r = &self.reader_stats;
        s.push_str(&format!(
            "netlink stats:\n\tevents received:\t{:20}\n\tevents filtered:\t{:20}\n\
             \tevents unknown type:\t\t{:12}\n\tcatch event failed:\t\t{:12}\n\
             \tdump unknown type:\t\t{:12}\n\tnetlink overrun:\t\t{:12}\n\
             \tflush kernel table:\t\t{:12}\n\tresync with kernel table:\t{:12}\n\
             \tcurrent buffer size (in bytes):\t{:12}\n\n",
            r.events.get(),
            0,
            0,
            r.bad.get(),
            0,
            r.overruns.get(),
            0,
            0,
            r.buffer_size.get()
        ));
        s
    }
}
