//! Stats mode (`Stats { }` instead of `Sync { }`): no replication; the daemon keeps a cache
//! of the kernel's connections from ctnetlink events and writes one line per destroyed
//! connection to the `Stats { LogFile }` (control-and-cli.md §3.1).
//!
//! Facts from the C daemon 1.4.7, checked against Debian's binary:
//! * the cache is filled by a start-up dump, then by events: NEW adds (an existing key is
//!   left alone), UPDATE merges into the object (or adds it), DESTROY removes it and, only
//!   when it was cached, logs the event's conntrack and adds its counters to "traffic
//!   processed";
//! * a log line is `ctime()`, a TAB, the default text of the destroy event's conntrack
//!   (counters and `delta-time=` when the kernel reports them) and a newline;
//! * `-i` prints the cached objects without timeout, counters or `use=`, with
//!   `delta-time=` and ` [active since Ns]`; `-s` is the "cache stats:" and traffic
//!   blocks; `-s cache` names the cache `stats`; `-f internal` (and code 19) log
//!   "flushing caches" and count every object as destroyed; `-F` and `-R` act on the
//!   kernel table ("flushing kernel conntrack table", "resync with master conntrack
//!   table"); every sync-only request gets no reply.
//!
//! Unlike sync mode there is one thread for events and the cache: the C daemon does this
//! work in one loop too, and nothing here is replicated, so the cache sits behind a mutex
//! that the reader takes once per batch and the control thread only for `-i`, `-f`, `-R`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hashbrown::HashMap;
use parking_lot::Mutex;
use tracing::{debug, warn};

use super::log::{Level, Log, SYSLOG_SOCKET, Syslog, ctime};
use super::stats::{Counter, ReaderStats};
use super::{StartError, err};
use crate::cache::CtKey;
use crate::config::{Config, Stats};
use crate::ctl::render::entry::{conntrack_line_at, dump_line};
use crate::ctl::render::stats::{
    self as render, CacheDetail, CacheSummary, ChildKind, RuntimeStats, Traffic,
};
use crate::ctl::render::xml::conntrack_xml_at;
use crate::ctl::{CtlHandler, CtlServer, RequestCode as C};
use crate::filter::UserFilter;
use crate::netlink::ct::Conntrack;
use crate::netlink::events::{EventGroups, EventKind, EventOptions, EventSocket};
use crate::netlink::socket::{CtHandle, DumpFilter};
use crate::sys::signal;

/// Receive buffer per drain of the event socket.
const BATCH_BYTES: usize = 1 << 20;

/// One cached connection.
#[derive(Debug, Clone)]
struct Obj {
    ct: Conntrack,
    /// When it entered the cache, for ` [active since Ns]`.
    since: Instant,
}

/// The stats cache and its `-s cache` counters (32-bit, wrapping as the C ones).
#[derive(Debug, Default)]
struct Cache {
    map: HashMap<CtKey, Obj, ahash::RandomState>,
    c: CacheDetail,
    bytes: u64,
    packets: u64,
}

/// What the C cache keeps of a conntrack: no timeout (it counts down in the kernel only).
fn cached(ct: &Conntrack) -> Conntrack {
    let mut ct = *ct;
    ct.timeout = None;
    ct
}

/// Copies every attribute `upd` carries onto `old` (the tuples are the key and stay).
fn merge(old: &mut Conntrack, upd: &Conntrack) {
    macro_rules! take {
        ($($f:ident),*) => { $( if upd.$f.is_some() { old.$f = upd.$f; } )* };
    }
    take!(
        reply,
        master,
        status,
        mark,
        zone,
        labels,
        helper,
        protoinfo,
        nat_src,
        nat_dst,
        seq_adj_orig,
        seq_adj_reply,
        synproxy,
        id,
        counters_orig,
        counters_reply,
        timestamp
    );
}

impl Cache {
    fn add(&mut self, key: CtKey, ct: &Conntrack) {
        self.map.insert(
            key,
            Obj {
                ct: cached(ct),
                since: Instant::now(),
            },
        );
        self.c.add_ok = self.c.add_ok.wrapping_add(1);
    }

    fn new_event(&mut self, ct: &Conntrack) {
        let key = CtKey::from_conntrack(ct);
        if !self.map.contains_key(&key) {
            self.add(key, ct);
        }
    }

    /// UPDATE events and resync dumps: merge, or add what is unknown.
    fn update_force(&mut self, ct: &Conntrack) {
        let key = CtKey::from_conntrack(ct);
        match self.map.get_mut(&key) {
            Some(o) => {
                merge(&mut o.ct, &cached(ct));
                self.c.upd_ok = self.c.upd_ok.wrapping_add(1);
            }
            None => self.add(key, ct),
        }
    }

    /// A DESTROY event: true when the connection was cached (then it is logged).
    fn destroy(&mut self, ct: &Conntrack) -> bool {
        if self.map.remove(&CtKey::from_conntrack(ct)).is_none() {
            return false;
        }
        self.c.del_ok = self.c.del_ok.wrapping_add(1);
        let sum = |f: fn(&crate::netlink::ct::Counters) -> u64| {
            ct.counters_orig.as_ref().map_or(0, f) + ct.counters_reply.as_ref().map_or(0, f)
        };
        self.bytes = self.bytes.wrapping_add(sum(|c| c.bytes));
        self.packets = self.packets.wrapping_add(sum(|c| c.packets));
        true
    }

    fn flush(&mut self) {
        let n = self.map.len() as u32;
        self.map.clear();
        self.c.del_ok = self.c.del_ok.wrapping_add(n);
    }

    fn detail(&self) -> CacheDetail {
        let n = self.map.len() as u32;
        CacheDetail {
            active: n,
            active_entries: n,
            total_entries: n,
            ..self.c
        }
    }

    fn summary(&self) -> CacheSummary {
        let d = self.detail();
        CacheSummary {
            active: d.active,
            created: d.add_ok,
            create_failed: d.add_fail,
            updated: d.upd_ok,
            update_failed: d.upd_fail,
            destroyed: d.del_ok,
            destroy_failed: d.del_fail,
        }
    }

    /// `-i` / `-i -x` text, one line per object.
    fn dump(&self, xml: bool) -> String {
        let now = unix_now();
        let mut out = String::with_capacity(self.map.len() * 200);
        for o in self.map.values() {
            let mut ct = o.ct;
            // The C cache object keeps neither counters nor the use count.
            ct.counters_orig = None;
            ct.counters_reply = None;
            ct.use_count = None;
            if xml {
                out.push_str(&conntrack_xml_at(&ct, Some(now)));
                out.push('\n');
            } else {
                out.push_str(&dump_line(
                    &conntrack_line_at(&ct, Some(now)),
                    None,
                    o.since.elapsed().as_secs(),
                ));
            }
        }
        out
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `Stats { LogFile }` writer: one `write` per line, so that a reader of the file (or
/// a crash) never sees half a line; `Stats { Syslog }` gets the same text without the time
/// (at `info`, as the C daemon sends it).
#[derive(Debug)]
struct ConnLog {
    path: Option<PathBuf>,
    file: Option<File>,
    syslog: Option<Syslog>,
}

fn open_append(p: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(p)
}

impl ConnLog {
    fn open(st: &Stats) -> io::Result<Self> {
        let file = st.log_file.as_deref().map(open_append).transpose()?;
        let syslog = match st.syslog {
            Some(f) => Some(Syslog::new(f.to_libc(), Path::new(SYSLOG_SOCKET))?),
            None => None,
        };
        Ok(Self {
            path: st.log_file.clone(),
            file,
            syslog,
        })
    }

    /// SIGHUP: the file is opened again (after a rotation); on failure the old one stays.
    fn reopen(&mut self) -> io::Result<()> {
        if let Some(p) = &self.path {
            self.file = Some(open_append(p)?);
        }
        Ok(())
    }

    fn destroyed(&mut self, when: SystemTime, ct: &Conntrack) {
        // The C daemon unsets the timeout of every event it handles.
        let text = conntrack_line_at(&cached(ct), Some(unix_now()));
        if let Some(f) = &mut self.file {
            let line = format!("{}\t{text}\n", ctime(when));
            if let Err(e) = f.write_all(line.as_bytes()) {
                debug!(error = %e, "stats log write failed");
            }
        }
        if let Some(s) = &self.syslog {
            s.send(Level::Info, &text);
        }
    }
}

/// Counters of the control side that `-s runtime` prints.
#[derive(Debug, Default)]
struct OpCounters {
    flush_kernel: Counter,
    resync_kernel: Counter,
    filtered: Counter,
}

/// Everything the reader and the control handler share.
#[derive(Debug)]
struct State {
    cache: Mutex<Cache>,
    conn_log: Mutex<ConnLog>,
    filter: Option<UserFilter>,
    reader: ReaderStats,
    ops: OpCounters,
    /// Requests being served that the C daemon runs in a child (`-s process`).
    children: Mutex<Vec<(u32, ChildKind)>>,
    /// The request socket for `-F` and `-R` (only the control thread uses it).
    request: Mutex<CtHandle>,
    log: Arc<Log>,
    started: Instant,
}

impl State {
    fn accepts(&self, ct: &Conntrack) -> bool {
        self.filter.as_ref().is_none_or(|f| f.accepts(ct))
    }

    /// `-R` and the start-up dump: every kernel entry the filter accepts, merged.
    fn resync(&self, h: &mut CtHandle) -> Result<(), crate::netlink::socket::NlError> {
        let mut all = Vec::new();
        h.dump_conntracks(&DumpFilter::default(), |ct: &Conntrack| {
            if self.accepts(ct) {
                all.push(*ct);
            }
        })?;
        let mut cache = self.cache.lock();
        for ct in &all {
            cache.update_force(ct);
        }
        Ok(())
    }

    /// `-F`: deletes what the filter accepts from the kernel table; the destroy events
    /// then empty the cache and are logged, as in C.
    fn flush_kernel(&self) {
        let _child = Child::register(self, ChildKind::Flush);
        self.ops.flush_kernel.inc();
        let mut h = self.request.lock();
        let res = match &self.filter {
            Some(f) => {
                let mut doomed = Vec::new();
                let r = h.dump_conntracks(&DumpFilter::default(), |ct: &Conntrack| {
                    if f.accepts(ct) {
                        doomed.push(*ct);
                    }
                });
                r.and_then(|_| h.delete(&doomed).map(drop))
            }
            None => h.flush_conntracks(0),
        };
        if let Err(e) = res {
            self.log
                .error(&format!("flushing kernel conntrack table: {e}"));
        }
    }

    fn runtime(&self) -> String {
        let r = &self.reader;
        render::runtime(&RuntimeStats {
            uptime: self.started.elapsed(),
            events_received: r.events.get(),
            events_filtered: self.ops.filtered.get(),
            events_unknown_type: 0,
            catch_event_failed: r.bad.get() as u32,
            dump_unknown_type: 0,
            netlink_overrun: r.overruns.get() as u32,
            flush_kernel_table: self.ops.flush_kernel.get() as u32,
            resync_kernel_table: self.ops.resync_kernel.get() as u32,
            netlink_buffer_size: r.buffer_size.get() as u32,
            child_failed: 0,
            child_segfault: 0,
            child_termsig: 0,
            select_failed: 0,
            wait_failed: 0,
            local_read_failed: 0,
            local_unknown_request: 0,
        })
    }
}

/// A request that the C daemon serves from a child process, listed by `-s process` while
/// it runs (with our pid: the work runs in a thread of the daemon).
struct Child<'a> {
    state: &'a State,
    kind: ChildKind,
}

impl<'a> Child<'a> {
    fn register(state: &'a State, kind: ChildKind) -> Self {
        state.children.lock().push((std::process::id(), kind));
        Self { state, kind }
    }
}

impl Drop for Child<'_> {
    fn drop(&mut self) {
        let mut list = self.state.children.lock();
        if let Some(i) = list.iter().position(|&(_, k)| k == self.kind) {
            list.remove(i);
        }
    }
}

/// The control handler of a stats-mode daemon.
#[derive(Debug)]
struct Handler(Arc<State>);

impl CtlHandler for Handler {
    fn handle(&self, code: C, out: &mut dyn Write) -> io::Result<()> {
        let st = &*self.0;
        let text = match code {
            C::STATS => {
                let cache = st.cache.lock();
                render::stats_summary(
                    &cache.summary(),
                    &Traffic {
                        bytes: cache.bytes,
                        packets: cache.packets,
                    },
                )
            }
            C::STATS_CACHE => render::caches(&[("stats", st.cache.lock().detail())]),
            C::STATS_RUNTIME => st.runtime(),
            C::STATS_PROCESS => render::processes(&st.children.lock()),
            C::CT_DUMP_INTERNAL | C::CT_DUMP_INT_XML => {
                let _child = Child::register(st, ChildKind::Any);
                st.cache.lock().dump(code == C::CT_DUMP_INT_XML)
            }
            C::CT_FLUSH_CACHE | C::CT_FLUSH_INT_CACHE => {
                st.log.notice("flushing caches");
                st.cache.lock().flush();
                String::new()
            }
            C::CT_FLUSH_MASTER | C::ALL_FLUSH_MASTER => {
                st.log.notice("flushing kernel conntrack table");
                st.flush_kernel();
                String::new()
            }
            C::CT_RESYNC_MASTER | C::ALL_RESYNC_MASTER => {
                st.log.notice("resync with master conntrack table");
                st.ops.resync_kernel.inc();
                let mut h = st.request.lock();
                if let Err(e) = st.resync(&mut h) {
                    st.log
                        .error(&format!("resync with master conntrack table: {e}"));
                }
                String::new()
            }
            C::KILL => {
                // Logged once by the main thread when the signal arrives, as C logs it once.
                if let Err(e) = signal::terminate_self() {
                    warn!(error = %e, "cannot signal ourselves");
                }
                String::new()
            }
            // Sync-only requests: no reply, as the C daemon in stats mode.
            _ => String::new(),
        };
        out.write_all(text.as_bytes())
    }
}

/// The event thread: applies every event to the cache and logs destroyed connections.
fn read_events(
    mut sock: EventSocket,
    mut dump: CtHandle,
    st: Arc<State>,
    shutdown: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; BATCH_BYTES];
    let mut events: Vec<(EventKind, Conntrack)> = Vec::new();
    let mut gone: Vec<Conntrack> = Vec::new();
    while !shutdown.load(Ordering::Acquire) {
        match sock.wait(Some(Duration::from_millis(200))) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                warn!(error = %e, "waiting for netlink events failed");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        }
        let batch = match sock.recv_batch(&mut buf) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "receiving netlink events failed");
                continue;
            }
        };
        let mut n = 0u64;
        for ev in batch.iter() {
            n += 1;
            if ev.kind.is_expectation() {
                continue;
            }
            match Conntrack::parse(ev.family(), ev.attrs()) {
                Ok(ct) if st.accepts(&ct) => events.push((ev.kind, ct)),
                Ok(_) => st.ops.filtered.inc(),
                Err(_) => st.reader.bad.inc(),
            }
        }
        st.reader.events.add(n);
        let overrun = batch.overrun;
        {
            let mut cache = st.cache.lock();
            for (kind, ct) in &events {
                match kind {
                    EventKind::CtNew => cache.new_event(ct),
                    EventKind::CtUpdate => cache.update_force(ct),
                    _ => {
                        if cache.destroy(ct) {
                            gone.push(*ct);
                        }
                    }
                }
            }
        }
        events.clear();
        if !gone.is_empty() {
            let now = SystemTime::now();
            let mut log = st.conn_log.lock();
            for ct in &gone {
                log.destroyed(now, ct);
            }
            gone.clear();
        }
        if overrun {
            // Events were lost: start again from the kernel's table, as the C daemon does.
            st.reader.overruns.inc();
            st.cache.lock().flush();
            if let Err(e) = st.resync(&mut dump) {
                st.log.error(&format!("overrun resync: {e}"));
            }
        }
        st.reader.buffer_size.set(sock.stats().buffer_size as u64);
    }
}

/// Runs a stats-mode daemon until SIGINT/SIGTERM (or a KILL request); `mod.rs::start` calls
/// it when the configuration has a `Stats` section and no `Sync` one.
pub(super) fn run(
    conf: &Config,
    stats: &Stats,
    background: bool,
    log: &Arc<Log>,
    ready: Option<io::PipeWriter>,
    started: Instant,
) -> Result<(), StartError> {
    let g = &conf.general;
    let conn_log =
        ConnLog::open(stats).map_err(|e| err(format!("can't open stats log file: {e}")))?;
    // As in sync mode: an explicit NetlinkBufferSize is honoured, otherwise a large buffer
    // (an overrun loses destroy events, hence log lines, until the resync).
    let opts = match g.netlink_buffer_size {
        Some(b) => EventOptions {
            buffer_size: Some(b as usize),
            buffer_max_growth: g.netlink_buffer_size_max_growth as usize,
            reliable: g.netlink_events_reliable,
        },
        None => EventOptions {
            buffer_size: Some(super::MIN_NETLINK_BUFFER),
            buffer_max_growth: (g.netlink_buffer_size_max_growth as usize)
                .max(super::MIN_NETLINK_BUFFER * 4),
            reliable: g.netlink_events_reliable,
        },
    };
    let events = EventSocket::subscribe(
        EventGroups {
            conntrack: true,
            expectations: false,
        },
        opts,
    )
    .map_err(|e| err(format!("can't open netlink event socket: {e}")))?;
    let mut dump = CtHandle::open().map_err(|e| err(format!("dump socket: {e}")))?;
    let request = CtHandle::open().map_err(|e| err(format!("request socket: {e}")))?;
    let filter = Some(UserFilter::new(&g.filter)).filter(|f| !f.is_empty());
    let state = Arc::new(State {
        cache: Mutex::new(Cache::default()),
        conn_log: Mutex::new(conn_log),
        filter,
        reader: ReaderStats::default(),
        ops: OpCounters::default(),
        children: Mutex::new(Vec::new()),
        request: Mutex::new(request),
        log: Arc::clone(log),
        started,
    });
    // Events are subscribed first, so nothing between the dump and the first read is lost.
    state
        .resync(&mut dump)
        .map_err(|e| err(format!("can't dump the kernel conntrack table: {e}")))?;
    state
        .reader
        .buffer_size
        .set(events.stats().buffer_size as u64);

    let shutdown = Arc::new(AtomicBool::new(false));
    let reader: JoinHandle<()> = {
        let (st, sd) = (Arc::clone(&state), Arc::clone(&shutdown));
        let sched = g.scheduler;
        thread::Builder::new()
            .name("ctd-stats".into())
            .spawn(move || {
                // `Scheduler` (default SCHED_RR, as the C daemon's whole process).
                super::set_realtime(sched);
                read_events(events, dump, st, sd);
            })
            .map_err(|e| err(format!("spawn reader: {e}")))?
    };
    let server = match &g.unix_path {
        Some(p) => {
            let server =
                CtlServer::bind(p).map_err(|e| err(format!("can't open unix socket: {e}")))?;
            Some(
                server
                    .serve(Arc::new(Handler(Arc::clone(&state))))
                    .map_err(|e| err(format!("control socket: {e}")))?,
            )
        }
        None => None,
    };

    log.notice("initialization completed");
    if let Some(mut tx) = ready {
        // The parent is waiting on this byte; if it is already gone there is nobody to tell.
        let _ = tx.write_all(b"1");
    }
    log.notice(if background {
        "-- starting in daemon mode --"
    } else {
        "-- starting in console mode --"
    });
    let notifier = super::service_notifier(g.systemd, log);
    if let Some(n) = &notifier {
        // After a fork (`-d`) the reporting process is not the one systemd started.
        let msg = if background {
            format!("READY=1\nMAINPID={}", signal::pid())
        } else {
            "READY=1".to_owned()
        };
        if let Err(e) = n.notify(&msg) {
            log.warning(&format!("can't notify the service manager: {e}"));
        }
    }
    loop {
        match signal::wait_signal().map_err(|e| err(format!("sigwait: {e}")))? {
            signal::Received::Reopen => {
                let res = log.reopen().and_then(|()| state.conn_log.lock().reopen());
                match res {
                    Ok(()) => log.notice("log file reopened (SIGHUP)"),
                    Err(e) => log.error(&format!("can't reopen logfile: {e}")),
                }
            }
            signal::Received::Terminate(sig) => {
                debug!(sig, "termination signal");
                break;
            }
        }
    }
    if let Some(n) = &notifier {
        let _ = n.notify("STOPPING=1");
    }
    log.notice("---- shutdown received ----");
    shutdown.store(true, Ordering::Release);
    drop(server);
    let _ = reader.join();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::ct::Counters;
    use crate::netlink::tuple::{L4, Tuple};

    fn flow(sport: u16) -> Conntrack {
        let mut o = Tuple::new(
            "10.231.0.1".parse().unwrap(),
            "10.231.0.2".parse().unwrap(),
            17,
        );
        o.l4 = L4::Ports { sport, dport: 53 };
        let mut ct = Conntrack::new(2, o);
        ct.status = Some(0x8);
        ct.timeout = Some(30);
        ct.mark = Some(1);
        ct
    }

    /// The C stats cache: NEW leaves a known key alone, UPDATE merges what it carries (or
    /// adds), DESTROY of an unknown key is not logged or counted, flush counts as destroyed.
    #[test]
    fn test_cache_follows_the_c_stats_cache() {
        let mut c = Cache::default();
        c.new_event(&flow(1));
        let mut again = flow(1);
        again.mark = Some(2);
        c.new_event(&again);
        assert_eq!(c.map.len(), 1);
        assert_eq!(c.map.values().next().unwrap().ct.mark, Some(1));
        let mut upd = flow(1);
        upd.mark = None;
        upd.status = Some(0xa);
        c.update_force(&upd);
        let ct = c.map.values().next().unwrap().ct;
        assert_eq!((ct.mark, ct.status, ct.timeout), (Some(1), Some(0xa), None));
        c.update_force(&flow(2));
        assert!(!c.destroy(&flow(3)));
        let mut gone = flow(2);
        gone.counters_orig = Some(Counters {
            packets: 3,
            bytes: 252,
        });
        gone.counters_reply = Some(Counters {
            packets: 3,
            bytes: 252,
        });
        assert!(c.destroy(&gone));
        assert_eq!((c.bytes, c.packets), (504, 6));
        c.flush();
        let s = c.summary();
        assert_eq!(
            (
                s.active,
                s.created,
                s.updated,
                s.destroyed,
                s.destroy_failed
            ),
            (0, 2, 1, 2, 0)
        );
        assert!(c.dump(false).is_empty());
    }

    /// `Stats { Syslog }`: the conntrack text without the time, at `info`.
    #[test]
    fn test_destroyed_flow_to_syslog() {
        let dir = std::env::temp_dir().join(format!("ctd-sm-{}", std::process::id()));
        let _ = std::fs::create_dir(&dir);
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let rx = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let local2 = 18 << 3;
        let mut log = ConnLog {
            path: None,
            file: None,
            syslog: Some(Syslog::new(local2, &path).unwrap()),
        };
        log.destroyed(SystemTime::now(), &flow(9));
        let mut buf = [0u8; 512];
        let n = rx.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(got.starts_with(&format!("<{}>", local2 | 6)), "{got}");
        assert!(
            got.ends_with(&format!(
                "conntrack-tools[{}]: udp      17 src=10.231.0.1 dst=10.231.0.2 sport=9 \
                 dport=53 [UNREPLIED] mark=1",
                std::process::id()
            )),
            "{got}"
        );
    }

    /// `-i` drops what the C cache object does not keep (timeout, counters, use count).
    #[test]
    fn test_dump_line_of_a_cached_object() {
        let mut c = Cache::default();
        let mut ct = flow(7);
        ct.counters_orig = Some(Counters::default());
        ct.use_count = Some(1);
        c.new_event(&ct);
        assert_eq!(
            c.dump(false),
            "udp      17 src=10.231.0.1 dst=10.231.0.2 sport=7 dport=53 [UNREPLIED] mark=1 \
             [active since 0s]\n"
        );
    }
}
