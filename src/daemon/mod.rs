//! The running daemon: start-up, the thread layout, shutdown.
//!
//! Start sequence (control-and-cli.md §2.4): umask 0177 → open the log → create the lock file
//! with `O_EXCL` → fork when `-d` → block SIGINT/SIGTERM → open the request sockets (commit,
//! flush) → subscribe to events → spawn the workers → dump the kernel table into the internal
//! cache → spawn the reader and the link thread → bind the control socket →
//! "-- starting in … mode --" → wait for a termination signal. Shutdown sets one flag, wakes
//! every thread, joins them, unlinks the socket and the lock file and exits 0. A failure during
//! initialisation removes the lock file and exits 1.
//!
//! Threads (see `runtime`): one netlink reader, one worker per CPU (pinned, each owning a
//! shard of both caches), one link thread (FTFW endpoint + the single sequence counter +
//! the link), one control thread. Rings connect them; no lock on the event path.

pub mod commit;
pub mod ctl;
pub mod inject;
pub mod log;
pub mod stats;
pub mod statsmode;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::cache::SendPolicy;
use crate::channel::LinkPool;
use crate::config::{Config, SchedPolicy, SyncMode, Transport};
use crate::ctl::render::stats::ChannelKind;
use crate::ctl::{CtlServer, LockFile};
use crate::filter::{ExpFilter, UserFilter};
use crate::netlink::ct::Conntrack;
use crate::netlink::events::{EventGroups, EventOptions, EventSocket};
use crate::netlink::exp::Expectation;
use crate::netlink::filter::{KernelFilter, Policy as KPolicy};
use crate::netlink::socket::{CtHandle, DumpFilter};
use crate::runtime::reader::{self, OwnPorts, Router};
use crate::runtime::receiver::Dispatcher;
use crate::runtime::sender::{LinkIo, LinkThread, ModeConfig};
use crate::runtime::worker::{
    Cmd, CtChange, ExpEvent, KernelEvent, Origin, Worker, WorkerConfig, WorkerIo,
};
use crate::runtime::{Producer, Ring, Waker, placement};
use crate::sync::{alarm, ftfw, notrack};
use crate::sys::{notify, sched, signal};
use log::Log;
use stats::{LinkStats, ReaderStats, ShardStats};

/// Events per shard ring (each slot is one batch; a batch is one recv drain).
const EVENT_RING: usize = 1 << 16;
/// Smallest event socket buffer we run with: the reader drains fast, but a burst of
/// hundreds of thousands of events must fit while a worker catches up.
const MIN_NETLINK_BUFFER: usize = 16 << 20;

/// Why the daemon could not start; printed by `main` and turned into exit status 1.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

fn err(msg: impl Into<String>) -> StartError {
    StartError(msg.into())
}

/// Runs the daemon until SIGINT/SIGTERM (or a KILL request). `background` is `-d`.
pub fn run(conf: &Config, background: bool) -> Result<(), StartError> {
    signal::set_umask(0o177);
    signal::tune_allocator();
    let mut log = Log::open(conf.general.log_file.as_deref(), !background)
        .map_err(|e| err(format!("can't open logfile: {e}")))?
        .with_syslog(conf.general.syslog);
    let lock = match LockFile::acquire(&conf.general.lock_file) {
        Ok(l) => l,
        Err(e) => {
            log.error(&e.to_string());
            return Err(err(e.to_string()));
        }
    };
    // With `-d` the parent exits only once the child serves its control socket (or has
    // failed): the C daemon forks after its initialisation, and keepalived notify scripts
    // (primary-backup.sh's backup branch) run `-t`/`-n` right after `-d` returns.
    let mut ready = None;
    if background {
        let (mut rx, tx) = std::io::pipe().map_err(|e| err(format!("pipe: {e}")))?;
        match signal::fork().map_err(|e| err(format!("fork: {e}")))? {
            Some(_child) => {
                // The child owns the lock now.
                lock.leak();
                drop(tx);
                let mut byte = [0u8; 1];
                return match std::io::Read::read(&mut rx, &mut byte) {
                    Ok(1) => Ok(()),
                    // EOF: the child exited before it was ready; it logged why.
                    _ => Err(err("daemon failed to start (see the log file)")),
                };
            }
            None => {
                drop(rx);
                ready = Some(tx);
                signal::detach().map_err(|e| err(format!("detach: {e}")))?;
                log.detach_console();
            }
        }
    }
    let log = Arc::new(log);
    {
        use tracing_subscriber::layer::SubscriberExt;
        // Only the first daemon in a process installs it (tests may run several).
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(log::LogLayer(Arc::clone(&log))),
        );
    }
    // `lock` lives until this function returns: removed after a clean shutdown or a
    // failed initialisation alike.
    let _lock = lock;
    match start(conf, background, &log, ready) {
        Ok(()) => Ok(()),
        Err(e) => {
            log.error(&e.0);
            Err(e)
        }
    }
}

/// The ctnetlink event socket (conntrack and, with ExpectationSync, expectation groups).
fn subscribe(
    sync: &crate::config::Sync,
    g: &crate::config::General,
) -> Result<EventSocket, StartError> {
    EventSocket::subscribe(
        EventGroups {
            conntrack: true,
            expectations: !matches!(sync.expectation_sync, crate::config::ExpectationSync::Off),
        },
        // An explicit NetlinkBufferSize is honoured as in C; otherwise we run with a large
        // buffer (the C default is the system's, a few hundred KiB).
        match g.netlink_buffer_size {
            Some(b) => EventOptions {
                buffer_size: Some(b as usize),
                buffer_max_growth: g.netlink_buffer_size_max_growth as usize,
                reliable: g.netlink_events_reliable,
            },
            None => EventOptions {
                buffer_size: Some(MIN_NETLINK_BUFFER),
                buffer_max_growth: (g.netlink_buffer_size_max_growth as usize)
                    .max(MIN_NETLINK_BUFFER * 4),
                reliable: g.netlink_events_reliable,
            },
        },
    )
    .map_err(|e| err(format!("can't open netlink event socket: {e}")))
}

fn start(
    conf: &Config,
    background: bool,
    log: &Arc<Log>,
    ready: Option<std::io::PipeWriter>,
) -> Result<(), StartError> {
    let started = Instant::now();
    signal::block_termination().map_err(|e| err(format!("signals: {e}")))?;
    let sync = match (&conf.sync, &conf.stats) {
        (Some(sync), _) => sync,
        (None, Some(st)) => return statsmode::run(conf, st, background, log, ready, started),
        (None, None) => return Err(err("no Sync or Stats section: nothing to run")),
    };
    // DisableInternalCache is a NOTRACK option (the grammar allows it nowhere else).
    let bypass = sync.disable_internal_cache && sync.mode == SyncMode::Notrack;
    if sync.channels.is_empty() {
        return Err(err("no dedicated link configured"));
    }
    let pool = LinkPool::open(sync).map_err(|e| err(format!("can't open dedicated link: {e}")))?;
    let devices: Vec<String> = sync
        .channels
        .iter()
        .map(|c| c.interface.clone().unwrap_or_default())
        .collect();
    let kind = match sync.transport() {
        Some(Transport::Multicast) => ChannelKind::Multicast,
        Some(Transport::Tcp) => ChannelKind::Tcp,
        _ => ChannelKind::Udp,
    };
    let link_status = Arc::new(parking_lot::Mutex::new(pool.status()));
    let current = Arc::new(AtomicUsize::new(pool.current()));

    // One commit socket per CPU: a commit splits the entries over them, in parallel (the
    // kernel does the insertion work in the sending thread).
    let commit = (0..placement::available_cpus()
        .len()
        .clamp(1, reader::MAX_COMMIT_SOCKETS))
        .map(|_| CtHandle::open().map_err(|e| err(format!("commit socket: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut commit_ports = [0; reader::MAX_COMMIT_SOCKETS];
    for (p, h) in commit_ports.iter_mut().zip(&commit) {
        *p = h.port_id();
    }
    let mut flush = CtHandle::open().map_err(|e| err(format!("flush socket: {e}")))?;
    let inject = if sync.disable_external_cache {
        Some(CtHandle::open().map_err(|e| err(format!("inject socket: {e}")))?)
    } else {
        None
    };
    let own = OwnPorts {
        commit: commit_ports,
        flush: flush.port_id(),
        inject: inject.as_ref().map_or(0, CtHandle::port_id),
    };
    let g = &conf.general;
    // `PollSecs`: no event socket; the maintenance thread dumps the table instead (§8.4).
    let polling = g.poll_secs.is_some();
    let events = if polling {
        None
    } else {
        Some(subscribe(sync, g)?)
    };

    let shutdown = Arc::new(AtomicBool::new(false));
    let cpus = placement::available_cpus();
    let n = placement::default_workers(cpus.len());
    let places = placement::plan_on(&cpus, n);
    let link_waker = Arc::new(Waker::new().map_err(|e| err(format!("eventfd: {e}")))?);
    let link_stats = Arc::new(LinkStats::default());
    let reader_stats = Arc::new(ReaderStats::default());
    let (mut ev_prod, mut peer_prod, mut cmd_prod, mut tx_cons, mut shard_stats) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut exp_prod = Vec::new();
    let exp_filter = ExpFilter::new(&sync.expectation_sync);
    let mut wakers = vec![Arc::clone(&link_waker)];
    let epoch = Instant::now();
    // Kernel-space filtering (BPF on the event socket) is not wired yet: the same sets are
    // applied in user space, which gives the same result at some CPU cost.
    let filter = Some(UserFilter::new(&g.filter)).filter(|f| !f.is_empty());
    // `Filter From Kernelspace`: a BPF program on the event socket does the filtering of
    // events; dumps and resyncs still go through the user-space filter (§8.5).
    let kernel_filtered = g.filter.from == crate::config::FilterFrom::Kernelspace
        && filter.is_some()
        && match events
            .as_ref()
            .map(|ev| ev.set_filter(&kernel_filter(&g.filter)))
        {
            Some(Ok(())) => true,
            // Polling: no events to filter in the kernel.
            None => false,
            Some(Err(e)) => {
                log.warning(&format!(
                    "kernel-space filter refused ({e}); filtering events in user space"
                ));
                false
            }
        };
    let wcfg = WorkerConfig {
        send: SendPolicy {
            tcp_window_tracking: sync.tcp_window_tracking,
            commit_timeout: sync.commit_timeout,
        },
        batch: 1024,
        limit: (g.hash_limit as usize).div_ceil(n),
        capacity: (g.hash_size as usize).div_ceil(n).min(1 << 16),
        track_all: sync.mode == SyncMode::Alarm,
        cache_timeout: (sync.mode == SyncMode::Alarm).then_some(sync.cache_timeout),
        kernel_filtered,
        bypass,
        epoch,
    };
    for (shard, place) in places.into_iter().enumerate() {
        let waker = Arc::new(Waker::new().map_err(|e| err(format!("eventfd: {e}")))?);
        wakers.push(Arc::clone(&waker));
        let (ep, ec) = Ring::with_waker(EVENT_RING, Arc::clone(&waker));
        let (xp, xc) = Ring::with_waker(1 << 12, Arc::clone(&waker));
        let (pp, pc) = Ring::with_waker(EVENT_RING, Arc::clone(&waker));
        let (cp, cc) = Ring::with_waker(64, Arc::clone(&waker));
        let (tp, tc) = Ring::with_waker(EVENT_RING, Arc::clone(&link_waker));
        let st = Arc::new(ShardStats::default());
        ev_prod.push(ep);
        exp_prod.push(xp);
        peer_prod.push(pp);
        cmd_prod.push(cp);
        tx_cons.push(tc);
        shard_stats.push(Arc::clone(&st));
        let io = WorkerIo {
            events: ec,
            exp_events: xc,
            peer: pc,
            cmds: cc,
            tx: tp,
            waker,
            stats: st,
            shutdown: Arc::clone(&shutdown),
        };
        let worker = Worker::new(shard, wcfg, io, filter.clone(), exp_filter.clone());
        threads.push(
            thread::Builder::new()
                .name(format!("ctd-worker{shard}"))
                .spawn(move || {
                    if let Err(e) = placement::pin_current(&place) {
                        warn!(error = %e, "cannot pin worker");
                    }
                    worker.run();
                })
                .map_err(|e| err(format!("spawn worker: {e}")))?,
        );
    }

    // Start-up dump into the internal cache (no messages sent, §8.1); none without one.
    let mut router = Router::new(ev_prod, exp_prod);
    // Polling: the first poll finds everything and sends it as new (§8.4).
    if !bypass && !polling {
        flush
            .dump_conntracks(&DumpFilter::default(), |ct: &Conntrack| {
                router.route(KernelEvent {
                    change: CtChange::New,
                    origin: Origin::Dump,
                    ct: *ct,
                });
            })
            .map_err(|e| err(format!("can't dump the kernel conntrack table: {e}")))?;
    }
    router.flush_blocking(&shutdown);
    if exp_filter.enabled() && !bypass && !polling {
        // Masters first (above), then their expectations.
        flush
            .dump_expectations(0, |e: &Expectation| {
                router.route_exp(ExpEvent {
                    change: CtChange::New,
                    origin: Origin::Dump,
                    exp: *e,
                });
            })
            .map_err(|e| err(format!("can't dump the kernel expectation table: {e}")))?;
        router.flush_blocking(&shutdown);
    }

    // The dump is in the rings; wait until the workers have applied it, so that READY=1
    // and the first `-i` both see the loaded table.
    applied_barrier(&router, &mut cmd_prod, &shutdown);

    // A clean stop goes in stages (see the end of this function), each with its flag.
    let reader_stop = Arc::new(AtomicBool::new(false));
    let link_drain = Arc::new(AtomicBool::new(false));
    let reader = match events {
        Some(events) => {
            let sched_cfg = g.scheduler;
            let (rs, stop) = (Arc::clone(&reader_stats), Arc::clone(&reader_stop));
            let limit = g.event_iteration_limit;
            Some(
                thread::Builder::new()
                    .name("ctd-reader".into())
                    .spawn(move || {
                        set_realtime(sched_cfg);
                        reader::run(events, router, own, rs, stop, limit)
                    })
                    .map_err(|e| err(format!("spawn reader: {e}")))?,
            )
        }
        None => None,
    };

    let (link_cmd_p, link_cmd_c) = Ring::with_waker(64, Arc::clone(&link_waker));
    let mode = match sync.mode {
        SyncMode::Alarm => ModeConfig::Alarm(alarm::Config {
            refresh_time: Duration::from_secs(u64::from(sync.refresh_time)),
            cache_timeout: Duration::from_secs(u64::from(sync.cache_timeout)),
            seed: u64::from(std::process::id()),
            ..alarm::Config::default()
        }),
        SyncMode::Notrack => ModeConfig::Notrack(notrack::Config {
            startup_resync: sync.startup_resync,
            disable_internal_cache: bypass,
            ..notrack::Config::default()
        }),
        _ => ModeConfig::Ftfw(ftfw::Config {
            ack_window: sync.ack_window_size,
            resend_queue_size: sync.resend_queue_size as usize,
            startup_resync: sync.startup_resync,
            ..ftfw::Config::default()
        }),
    };
    let mut dispatch = Dispatcher::new(peer_prod);
    let kernel_resync = bypass.then(|| Arc::new(AtomicBool::new(false)));
    if let Some(flag) = &kernel_resync {
        dispatch = dispatch.with_kernel_resync(Arc::clone(flag));
    }
    let inject_stats = inject
        .as_ref()
        .map(|_| Arc::new(stats::CacheCounters::default()));
    if let (Some(h), Some(st)) = (inject, &inject_stats) {
        let waker = Arc::new(Waker::new().map_err(|e| err(format!("eventfd: {e}")))?);
        wakers.push(Arc::clone(&waker));
        let (ip, ic) = Ring::with_waker(EVENT_RING, waker);
        dispatch = dispatch.with_inject(ip);
        let injector = inject::Injector::new(
            h,
            ic,
            Arc::clone(st),
            sync.tcp_window_tracking,
            Arc::clone(&shutdown),
        );
        threads.push(
            thread::Builder::new()
                .name("ctd-inject".into())
                .spawn(move || injector.run())
                .map_err(|e| err(format!("spawn injector: {e}")))?,
        );
    }
    let lt = LinkThread::new(
        pool,
        mode,
        LinkIo {
            from_workers: tx_cons,
            cmds: link_cmd_c,
            dispatch,
            waker: link_waker,
            stats: Arc::clone(&link_stats),
            shutdown: Arc::clone(&shutdown),
            drain: Arc::clone(&link_drain),
            current: Arc::clone(&current),
            links: Arc::clone(&link_status),
        },
        Instant::now(),
    );
    let link = thread::Builder::new()
        .name("ctd-link".into())
        .spawn(move || lt.run())
        .map_err(|e| err(format!("spawn link thread: {e}")))?;

    // Without a UNIX block the C daemon still starts, but no client can reach it. The
    // handler exists anyway: its maintenance thread runs PollSecs and the overrun resync.
    let listener = match &g.unix_path {
        Some(p) => {
            Some(CtlServer::bind(p).map_err(|e| err(format!("can't open unix socket: {e}")))?)
        }
        None => None,
    };
    let handler = ctl::Handler::new(
        ctl::CtlOps {
            workers: cmd_prod,
            commit,
            flush,
            commit_cfg: commit::CommitConfig {
                commit_timeout: sync.commit_timeout,
                tcp_window_tracking: sync.tcp_window_tracking,
                kind: crate::cache::CommitKind::Commit,
            },
            epoch,
            expectations: exp_filter.enabled(),
            purge_timeout: Duration::from_secs(u64::from(sync.purge_timeout)),
            overrun_resync: g
                .netlink_overrun_resync
                .map(|s| Duration::from_secs(u64::from(s))),
            poll: g.poll_secs.map(|s| Duration::from_secs(u64::from(s))),
            kernel_resync,
            filter,
            bypass,
        },
        ctl::CtlView {
            shards: shard_stats,
            link_stats,
            links: link_status,
            reader_stats,
            kind,
            devices,
            current,
            log: Arc::clone(log),
            started,
            inject: inject_stats,
            bypass,
            error_queue_length: sync.error_queue_length,
            link: parking_lot::Mutex::new(link_cmd_p),
        },
    );
    let handler = Arc::new(handler);
    ctl::Handler::start_maintenance(&handler, Arc::clone(&shutdown));
    let ctl_handler = Arc::clone(&handler);
    let server = match listener {
        Some(l) => Some(
            l.serve(handler)
                .map_err(|e| err(format!("control socket: {e}")))?,
        ),
        None => None,
    };

    log.notice("initialization completed");
    if let Some(mut tx) = ready {
        // The parent is waiting on this byte; if it is already gone there is nobody to tell.
        let _ = std::io::Write::write_all(&mut tx, b"1");
    }
    log.notice(if background {
        "-- starting in daemon mode --"
    } else {
        "-- starting in console mode --"
    });
    let notifier = service_notifier(g.systemd, log);
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
            signal::Received::Reopen => match log.reopen() {
                Ok(()) => log.notice("log file reopened (SIGHUP)"),
                Err(e) => log.error(&format!("can't reopen logfile: {e}")),
            },
            signal::Received::Terminate(sig) => {
                tracing::debug!(sig, "termination signal");
                break;
            }
        }
    }
    if let Some(n) = &notifier {
        let _ = n.notify("STOPPING=1");
    }
    log.notice("---- shutdown received ----");
    // Stop without losing what the peer does not have yet: the reader takes what the
    // kernel already queued and stops, the workers apply everything it routed (their
    // transmit requests reach the link thread), and the link thread sends it and waits for
    // the ACKs (bounded). Only then does everything else stop.
    reader_stop.store(true, Ordering::Release);
    if let Some(router) = reader.and_then(|h| h.join().ok()) {
        let by = Instant::now() + Duration::from_secs(2);
        while !router.is_drained() && Instant::now() < by {
            thread::sleep(Duration::from_millis(1));
        }
    }
    ctl_handler.worker_barrier();
    link_drain.store(true, Ordering::Release);
    if let Some(w) = wakers.first() {
        w.wake();
    }
    let _ = link.join();
    shutdown.store(true, Ordering::Release);
    for w in &wakers {
        w.wake();
    }
    // Unlinks the socket (only while it is still ours).
    drop(server);
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// `$NOTIFY_SOCKET`'s notifier when `Systemd` is on (the default, as Debian's C build);
/// a bad address is a warning, not a reason to fail.
fn service_notifier(enabled: bool, log: &Log) -> Option<notify::Notifier> {
    if !enabled {
        return None;
    }
    notify::Notifier::from_env().unwrap_or_else(|e| {
        log.warning(&format!("systemd notification disabled: {e}"));
        None
    })
}

/// Returns once every worker has applied what `router` handed it: the event rings are empty
/// (popped), then one command round trip per worker (a worker applies the events it popped
/// before the commands it popped with them).
fn applied_barrier(router: &Router, workers: &mut [Producer<Cmd>], shutdown: &AtomicBool) {
    while !router.is_drained() && !shutdown.load(Ordering::Acquire) {
        thread::sleep(Duration::from_millis(1));
    }
    ctl::worker_round_trip(workers, Duration::from_secs(60));
}

/// Applies `Scheduler` to the calling thread (the netlink reader); the C default is
/// SCHED_RR at the maximum priority. Failure (no CAP_SYS_NICE) is a warning, not fatal.
fn set_realtime(cfg: crate::config::Scheduler) {
    let policy = match cfg.policy {
        Some(SchedPolicy::Fifo) => sched::SchedPolicy::Fifo,
        _ => sched::SchedPolicy::Rr,
    };
    let prio = match cfg.policy {
        Some(_) => i32::from(cfg.priority),
        None => sched::priority_range(policy).map_or(1, |(_, max)| max),
    };
    let prio = sched::clamp_priority(policy, prio).unwrap_or(1);
    if let Err(e) = sched::set_current_thread_scheduler(policy, prio) {
        warn!(error = %e, "cannot set the reader's real-time scheduling");
    }
}

/// The kernel-space form of `General { Filter }` for the event socket's BPF program.
fn kernel_filter(f: &crate::config::Filter) -> KernelFilter {
    use crate::config::Policy as P;
    use std::net::IpAddr;
    let pol = |p: P| match p {
        P::Accept => KPolicy::Accept,
        _ => KPolicy::Ignore,
    };
    let mut k = KernelFilter::default();
    if let Some(s) = &f.protocol {
        let nums = s
            .items
            .iter()
            .filter_map(|p| u8::try_from(p.number).ok())
            .collect();
        k.protocols = Some((pol(s.policy), nums));
    }
    if let Some(s) = &f.address {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for p in &s.items {
            match p.addr {
                IpAddr::V4(a) => v4.push((a, p.prefix_len.min(32))),
                IpAddr::V6(a) => v6.push((a, p.prefix_len.min(128))),
            }
        }
        k.v4 = Some((pol(s.policy), v4));
        k.v6 = Some((pol(s.policy), v6));
    }
    if let Some(s) = &f.state {
        let states = s.items.iter().map(|&t| t as u8).collect();
        k.tcp_states = Some((pol(s.policy), states));
    }
    k
}
