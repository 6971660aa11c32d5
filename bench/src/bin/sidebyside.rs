//! Side-by-side benchmark: Debian's C conntrackd 1.4.7 and ours, back to back, on the same
//! two-namespace testbed, with byte-identical conntrackd.conf files and the same `ctgen` load
//! in the primary's kernel table. Every figure is reported for both daemons and as the ratio
//! ours/C of the same run.
//!
//! ```text
//! sidebyside [--quick | --full] [--out DIR] [--c BIN] [--ours BIN] [--ctgen BIN]
//! ```
//!
//! Writes `DIR/raw.csv` (scenario,impl,metric,value), `DIR/summary.md` (ratio tables) and
//! `DIR/SETUP` (command lines, kernel, CPU, versions). Needs root. See bench/README.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use conntrackd_bench::latency::{self, StampListener};
use conntrackd_bench::plot;
use conntrackd_bench::testbed::{
    ADDR, CONNTRACK_MAX, Capture, ConntrackMax, Daemon, IFACE, Mode, Netns, Testbed, Transport,
    Watchdog, config, json_num, run, thread_cpu,
};

/// One implementation under test.
#[derive(Clone, Debug)]
struct Impl {
    label: &'static str,
    bin: PathBuf,
}

#[derive(Clone, Debug)]
enum Scenario {
    /// ctgen burst of `n` mixed entries; then optionally bulk resync and commit.
    Burst {
        mode: Mode,
        transport: Transport,
        n: u64,
        bulk: bool,
        commit: bool,
    },
    /// ctgen churn at `rate` events/s (0 = max) for `secs`, `live` entries kept alive.
    Churn { rate: u64, secs: u64, live: u64 },
    /// Replication latency (FTFW/UDP) under a paced churn of `rate` events/s for `secs`,
    /// `live` entries prefilled first (see `conntrackd_bench::latency`).
    Latency { rate: u64, secs: u64, live: u64 },
}

impl Scenario {
    /// Rough seconds one daemon's run takes on an idle machine (testbed, load, settle), for
    /// the progress line.
    fn estimate_s(&self) -> u64 {
        match self {
            Self::Burst {
                n, bulk, commit, ..
            } => {
                4 + n / 50_000
                    + u64::from(*bulk) * (1 + n / 200_000)
                    + u64::from(*commit) * (1 + n / 40_000)
            }
            Self::Churn { secs, live, .. } => 4 + secs + live / 50_000,
            Self::Latency { secs, live, .. } => 5 + secs + live / 25_000,
        }
    }

    fn name(&self) -> String {
        match self {
            Self::Burst {
                mode,
                transport,
                n,
                bulk,
                commit,
            } => format!(
                "burst-{}k-{}-{}{}{}",
                n / 1000,
                mode.label(),
                transport.label(),
                if *bulk { "+bulk" } else { "" },
                if *commit { "+commit" } else { "" }
            ),
            Self::Churn { rate, secs, live } => {
                let r = if *rate == 0 {
                    "max".to_owned()
                } else {
                    format!("{}k", rate / 1000)
                };
                format!("churn-{r}-{secs}s-live{}k-ftfw-udp", live / 1000)
            }
            Self::Latency { rate, secs, live } => format!(
                "latency-{}k-{secs}s-live{}k-ftfw-udp",
                rate / 1000,
                live / 1000
            ),
        }
    }
}

/// impl -> metric -> value.
type ByImpl = BTreeMap<String, BTreeMap<String, f64>>;

struct Ctx {
    watchdog: Watchdog,
    ctgen: PathBuf,
    out: PathBuf,
    serial: u32,
    /// Seconds to wait for the backup's external cache to hold everything.
    sync_timeout: Duration,
    /// scenario -> impl -> metric -> value (insertion-ordered metric list per scenario).
    results: BTreeMap<String, (Vec<String>, ByImpl)>,
    csv: String,
    commands: Vec<String>,
    /// The global nf_conntrack_max this run needs (checked after every phase: it is global,
    /// and another process on the machine may lower it under us).
    max_want: u64,
    order: Vec<String>,
}

impl Ctx {
    fn record(&mut self, scenario: &str, imp: &str, metric: &str, value: f64) {
        if !self.order.iter().any(|s| s == scenario) {
            self.order.push(scenario.to_owned());
        }
        let entry = self.results.entry(scenario.to_owned()).or_default();
        if !entry.0.iter().any(|m| m == metric) {
            entry.0.push(metric.to_owned());
        }
        entry
            .1
            .entry(imp.to_owned())
            .or_default()
            .insert(metric.to_owned(), value);
        let _ = writeln!(self.csv, "{scenario},{imp},{metric},{value}");
        eprintln!("  {scenario} {imp} {metric} = {value}");
    }

    /// Runs ctgen and returns its JSON line; the command goes to SETUP.
    fn ctgen(&mut self, args: &[&str]) -> io::Result<String> {
        let cmd = format!("{} {}", self.ctgen.display(), args.join(" "));
        if !self.commands.contains(&cmd) {
            self.commands.push(cmd.clone());
        }
        let out = Command::new(&self.ctgen).args(args).output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "{cmd}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(text)
    }
}

fn sleep_ms(ms: u64) {
    thread::sleep(Duration::from_millis(ms));
}

/// Polls `f` every 20 ms until it returns `want` or more; returns the elapsed time since
/// `start` when it did, or None at `timeout` (measured from now).
fn wait_for(
    start: Instant,
    timeout: Duration,
    want: u64,
    mut f: impl FnMut() -> io::Result<u64>,
) -> Option<f64> {
    let deadline = Instant::now() + timeout;
    loop {
        if matches!(f(), Ok(v) if v >= want) {
            return Some(start.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            return None;
        }
        sleep_ms(20);
    }
}

/// Starts both nodes of one implementation on a fresh testbed.
fn start_pair(
    ctx: &mut Ctx,
    imp: &Impl,
    mode: Mode,
    transport: Transport,
) -> io::Result<(Testbed, Daemon, Daemon)> {
    ctx.serial += 1;
    let tb = Testbed::build(&ctx.watchdog, ctx.serial)?;
    let mut daemons = Vec::new();
    for (node, ns) in [(0, &tb.a), (1, &tb.b)] {
        let dir = PathBuf::from(format!(
            "/tmp/ctb-{}-{}-{}-{}",
            std::process::id(),
            ctx.serial,
            imp.label,
            ["a", "b"][node]
        ));
        let text = config(mode, transport, node, &dir);
        // Keep one copy of each config text in the run directory (identical for C and ours
        // up to the private dir path).
        let keep = ctx.out.join(format!(
            "conntrackd-{}-{}-node{}.conf",
            mode.label(),
            transport.label(),
            ["A", "B"][node]
        ));
        let generic = text.replace(&dir.display().to_string(), "/tmp/ctb-DIR");
        fs::write(keep, generic)?;
        daemons.push(Daemon::start(&ctx.watchdog, &imp.bin, ns, dir, &text)?);
    }
    let b = daemons.pop().expect("two daemons");
    let a = daemons.pop().expect("two daemons");
    // Let FTFW exchange its hello/resync before the load.
    sleep_ms(500);
    Ok((tb, a, b))
}

/// Keeps the per-thread CPU split of both daemons in the run directory (what the CPU figure
/// is made of).
fn dump_threads(ctx: &Ctx, sc: &str, imp: &str, a: &Daemon, b: &Daemon) {
    let safe: String = sc
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let text = format!(
        "# {sc} {imp}: TID COMM cpu_s (utime+stime since start)\n## node A (primary)\n{}## node B (backup)\n{}",
        thread_cpu(a.pid()),
        thread_cpu(b.pid())
    );
    let _ = fs::write(ctx.out.join(format!("threads-{safe}-{imp}.txt")), text);
}

/// Records the global nf_conntrack_max if something lowered it below what the run needs
/// (entries beyond it are refused by the kernel, so a commit or burst would stop short).
fn check_max(ctx: &mut Ctx, sc: &str, imp: &str) {
    let now: u64 = fs::read_to_string(CONNTRACK_MAX)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    if now < ctx.max_want {
        eprintln!(
            "WARNING: nf_conntrack_max is {now}, below the {} this run set: another process \
             changed the global value; entries beyond it were refused",
            ctx.max_want
        );
        ctx.record(
            sc,
            imp,
            "WARNING nf_conntrack_max lowered by another process",
            now as f64,
        );
    }
}

fn burst(ctx: &mut Ctx, sc: &str, imp: &Impl, s: &Scenario) -> io::Result<()> {
    let Scenario::Burst {
        mode,
        transport,
        n,
        bulk,
        commit,
    } = *s
    else {
        unreachable!()
    };
    let (tb, a, b) = start_pair(ctx, imp, mode, transport)?;
    let (a0, b0) = (a.sample()?, b.sample()?);
    let l = imp.label;
    let ns_a = tb.a.name().to_owned();
    let n_s = n.to_string();
    eprintln!("   load: ctgen burst {n}");
    let start = Instant::now();
    let j = ctx.ctgen(&["--netns", &ns_a, "--json", "burst", &n_s, "--proto", "mix"])?;
    let gen_s = start.elapsed().as_secs_f64();
    ctx.record(
        sc,
        l,
        "ctgen_rate_per_s",
        json_num(&j, "rate").unwrap_or(0.0),
    );
    let synced = wait_for(start, ctx.sync_timeout, n, || b.cache_count(true));
    let (a1, b1) = (a.sample()?, b.sample()?);
    // Per-thread split of the burst phase (before bulk and commit add to it).
    dump_threads(ctx, sc, l, &a, &b);
    let ext = b.cache_count(true)?;
    let int = a.cache_count(false)?;
    let kern = tb.a.conntrack_count()?;
    ctx.record(sc, l, "kernel_entries_A", kern as f64);
    ctx.record(sc, l, "internal_cache_A", int as f64);
    ctx.record(sc, l, "external_cache_B", ext as f64);
    ctx.record(
        sc,
        l,
        "lost_entries (A kernel - B external)",
        kern.saturating_sub(ext) as f64,
    );
    let ev = a.runtime_counter("events received:").unwrap_or(0);
    ctx.record(sc, l, "events_received_A", ev as f64);
    ctx.record(
        sc,
        l,
        "netlink_overrun_A",
        a.runtime_counter("netlink overrun:").unwrap_or(0) as f64,
    );
    ctx.record(sc, l, "ctgen_seconds", gen_s);
    match synced {
        Some(t) => {
            ctx.record(sc, l, "time_to_full_external_cache_s", t);
            ctx.record(sc, l, "end_to_end_entries_per_s", n as f64 / t);
        }
        None => ctx.record(sc, l, "time_to_full_external_cache_s (timeout)", f64::NAN),
    }
    let cpu_a = a1.cpu_s - a0.cpu_s;
    let cpu_b = b1.cpu_s - b0.cpu_s;
    ctx.record(sc, l, "cpu_s_A", cpu_a);
    ctx.record(sc, l, "cpu_s_B", cpu_b);
    ctx.record(
        sc,
        l,
        "cpu_us_per_event_A+B",
        (cpu_a + cpu_b) * 1e6 / n as f64,
    );
    if int > 0 {
        let d = a1.rss_kib.saturating_sub(a0.rss_kib) as f64 * 1024.0;
        ctx.record(sc, l, "rss_bytes_per_entry_A (internal)", d / int as f64);
    }
    if ext > 0 {
        let d = b1.rss_kib.saturating_sub(b0.rss_kib) as f64 * 1024.0;
        ctx.record(sc, l, "rss_bytes_per_entry_B (external)", d / ext as f64);
    }
    ctx.record(sc, l, "rss_kib_A", a1.rss_kib as f64);
    ctx.record(sc, l, "rss_kib_B", b1.rss_kib as f64);

    if bulk {
        eprintln!("   bulk resync (-f external on B, -B on A)");
        // Empty the backup's external cache, then time `-B` on the primary until the backup
        // holds every entry again.
        let (ok, text) = b.client(&["-f", "external"])?;
        if !ok {
            eprintln!("{l}: -f external: {text}");
        }
        let _ = wait_for(Instant::now(), Duration::from_secs(10), 1, || {
            b.cache_count(true).map(|c| u64::from(c == 0))
        });
        let left = b.cache_count(true)?;
        let want = int;
        let (a2, b2) = (a.sample()?, b.sample()?);
        let start = Instant::now();
        let (ok, text) = a.client(&["-B"])?;
        if !ok {
            eprintln!("{l}: -B: {text}");
        }
        let t = wait_for(start, ctx.sync_timeout, want, || b.cache_count(true));
        let (a3, b3) = (a.sample()?, b.sample()?);
        ctx.record(sc, l, "bulk_external_after_flush", left as f64);
        match t {
            Some(t) => {
                ctx.record(sc, l, "bulk_resync_s", t);
                ctx.record(sc, l, "bulk_resync_entries_per_s", want as f64 / t);
            }
            None => ctx.record(sc, l, "bulk_resync_s (timeout)", f64::NAN),
        }
        ctx.record(
            sc,
            l,
            "bulk_external_B",
            b.cache_count(true).unwrap_or(0) as f64,
        );
        ctx.record(
            sc,
            l,
            "bulk_cpu_s_A+B",
            a3.cpu_s - a2.cpu_s + b3.cpu_s - b2.cpu_s,
        );
    }

    if commit {
        eprintln!("   commit (-c on B)");
        let ext = b.cache_count(true)?;
        let before = tb.b.conntrack_count()?;
        let b2 = b.sample()?;
        let start = Instant::now();
        let (ok, text) = b.client(&["-c"])?;
        let client_s = start.elapsed().as_secs_f64();
        if !ok {
            eprintln!("{l}: -c: {text}");
        }
        // The backup's table already holds its own sync-link flows, which are also among the
        // replicated entries, so "done" is: the table holds at least every external entry.
        let t = wait_for(start, ctx.sync_timeout, ext, || tb.b.conntrack_count());
        let b3 = b.sample()?;
        let after = tb.b.conntrack_count()?;
        ctx.record(sc, l, "commit_external_entries", ext as f64);
        ctx.record(sc, l, "commit_kernel_B_before", before as f64);
        ctx.record(sc, l, "commit_client_s", client_s);
        ctx.record(sc, l, "commit_kernel_B_after", after as f64);
        match t {
            Some(t) => {
                let t = t.max(client_s);
                ctx.record(sc, l, "commit_s", t);
                ctx.record(sc, l, "commit_entries_per_s", ext as f64 / t);
            }
            None => ctx.record(sc, l, "commit_s (timeout)", f64::NAN),
        }
        ctx.record(sc, l, "commit_cpu_s_B", b3.cpu_s - b2.cpu_s);
    }
    check_max(ctx, sc, l);
    drop((a, b));
    drop(tb);
    Ok(())
}

fn churn(ctx: &mut Ctx, sc: &str, imp: &Impl, s: &Scenario) -> io::Result<()> {
    let Scenario::Churn { rate, secs, live } = *s else {
        unreachable!()
    };
    let (tb, a, b) = start_pair(ctx, imp, Mode::Ftfw, Transport::Udp)?;
    let l = imp.label;
    let (a0, b0) = (a.sample()?, b.sample()?);
    let ns_a = tb.a.name().to_owned();
    let rate_s = if rate == 0 {
        "max".to_owned()
    } else {
        rate.to_string()
    };
    eprintln!(
        "   load: ctgen churn {rate_s}/s for {secs} s, {live} live (until ~{})",
        clock_in(secs + live / 100_000)
    );
    let j = ctx.ctgen(&[
        "--netns",
        &ns_a,
        "--json",
        "churn",
        "--rate",
        &rate_s,
        "--duration",
        &secs.to_string(),
        "--live",
        &live.to_string(),
        "--proto",
        "mix",
    ])?;
    let end = Instant::now();
    let events = json_num(&j, "events").unwrap_or(0.0) as u64;
    let prefill = json_num(&j, "prefill").unwrap_or(0.0) as u64;
    ctx.record(
        sc,
        l,
        "ctgen_rate_per_s",
        json_num(&j, "rate").unwrap_or(0.0),
    );
    ctx.record(
        sc,
        l,
        "ctgen_lag_max_ms",
        json_num(&j, "lag_max_ms").unwrap_or(0.0),
    );
    ctx.record(sc, l, "ctgen_events", events as f64);
    // Settle: the backup's external cache must equal the primary's kernel table and the
    // daemon must have read every event ctgen caused.
    let expected_events = prefill + events;
    let settle = wait_for(end, ctx.sync_timeout, 1, || {
        let k = tb.a.conntrack_count()?;
        let e = b.cache_count(true)?;
        let i = a.cache_count(false)?;
        let ev = a.runtime_counter("events received:")?;
        Ok(u64::from(k == e && k == i && ev >= expected_events))
    });
    let (a1, b1) = (a.sample()?, b.sample()?);
    let kern = tb.a.conntrack_count()?;
    let ext = b.cache_count(true)?;
    let int = a.cache_count(false)?;
    let ev = a.runtime_counter("events received:")?;
    ctx.record(sc, l, "kernel_entries_A", kern as f64);
    ctx.record(sc, l, "internal_cache_A", int as f64);
    ctx.record(sc, l, "external_cache_B", ext as f64);
    ctx.record(
        sc,
        l,
        "table_mismatch |A kernel - B external|",
        kern.abs_diff(ext) as f64,
    );
    ctx.record(sc, l, "events_expected", expected_events as f64);
    ctx.record(sc, l, "events_received_A", ev as f64);
    ctx.record(
        sc,
        l,
        "events_lost (expected - received)",
        expected_events.saturating_sub(ev) as f64,
    );
    ctx.record(
        sc,
        l,
        "netlink_overrun_A",
        a.runtime_counter("netlink overrun:").unwrap_or(0) as f64,
    );
    match settle {
        Some(t) => ctx.record(sc, l, "settle_after_load_s", t),
        None => ctx.record(sc, l, "settle_after_load_s (timeout)", f64::NAN),
    }
    let cpu_a = a1.cpu_s - a0.cpu_s;
    let cpu_b = b1.cpu_s - b0.cpu_s;
    ctx.record(sc, l, "cpu_s_A", cpu_a);
    ctx.record(sc, l, "cpu_s_B", cpu_b);
    ctx.record(
        sc,
        l,
        "cpu_us_per_event_A+B",
        (cpu_a + cpu_b) * 1e6 / expected_events.max(1) as f64,
    );
    dump_threads(ctx, sc, l, &a, &b);
    check_max(ctx, sc, l);
    drop((a, b));
    drop(tb);
    Ok(())
}

/// Replication latency under paced churn: kernel NEW-event timestamp in A → first arrival
/// of a sync message for that entry on B's end of the sync link (`conntrackd_bench::latency`).
fn latency(ctx: &mut Ctx, sc: &str, imp: &Impl, s: &Scenario) -> io::Result<()> {
    let Scenario::Latency { rate, secs, live } = *s else {
        unreachable!()
    };
    let (tb, a, b) = start_pair(ctx, imp, Mode::Ftfw, Transport::Udp)?;
    let l = imp.label;
    // Per namespace: only A's new entries get the timestamp extension, so only A's events
    // carry CTA_TIMESTAMP_EVENT (for both daemons alike).
    tb.a.sysctl("net/netfilter/nf_conntrack_timestamp", "1")?;
    let ns_a = tb.a.name().to_owned();
    let live_s = live.to_string();
    // Prefill first and let it replicate, so that only the paced events are timed.
    eprintln!("   prefill {live} entries");
    ctx.ctgen(&[
        "--netns", &ns_a, "--json", "burst", &live_s, "--proto", "mix",
    ])?;
    if wait_for(Instant::now(), ctx.sync_timeout, live, || {
        b.cache_count(true)
    })
    .is_none()
    {
        return Err(io::Error::other(format!(
            "prefill of {live} did not reach B's external cache within {:?}",
            ctx.sync_timeout
        )));
    }
    let cap_dir = PathBuf::from(format!(
        "/tmp/ctb-{}-{}-capture",
        std::process::id(),
        ctx.serial
    ));
    ctx.watchdog.guard_dir(&cap_dir)?;
    fs::create_dir_all(&cap_dir)?;
    let pcap = cap_dir.join("sync.pcap");
    let filter = format!("udp and src host {} and dst port 3781", ADDR[0]);
    let mut cap = Capture::start(&tb.b, IFACE[1], &pcap, &filter)?;
    let cap_cmd = format!("ip netns exec <B> {}", cap.command());
    if !ctx.commands.contains(&cap_cmd) {
        ctx.commands.push(cap_cmd);
    }
    let sync_net = match ADDR[0].parse::<std::net::Ipv4Addr>() {
        Ok(a) => [a.octets()[0], a.octets()[1]],
        Err(_) => [10, 231],
    };
    let stamps = StampListener::start(tb.a.path(), sync_net)?;
    eprintln!(
        "   load: ctgen churn {rate}/s for {secs} s (until ~{})",
        clock_in(secs)
    );
    let j = ctx.ctgen(&[
        "--netns",
        &ns_a,
        "--json",
        "churn",
        "--rate",
        &rate.to_string(),
        "--duration",
        &secs.to_string(),
        "--live",
        &live_s,
        "--proto",
        "mix",
        "--no-prefill",
    ])?;
    let end = Instant::now();
    ctx.record(
        sc,
        l,
        "ctgen_rate_per_s",
        json_num(&j, "rate").unwrap_or(0.0),
    );
    ctx.record(
        sc,
        l,
        "ctgen_lag_max_ms",
        json_num(&j, "lag_max_ms").unwrap_or(0.0),
    );
    let creates = json_num(&j, "creates").unwrap_or(0.0);
    ctx.record(sc, l, "ctgen_creates", creates);
    // Until B holds what A's kernel holds (every NEW has been sent, or given up on).
    let settle = wait_for(end, ctx.sync_timeout, 1, || {
        let k = tb.a.conntrack_count()?;
        Ok(u64::from(k == b.cache_count(true)?))
    });
    if settle.is_none() {
        ctx.record(sc, l, "settle_after_load_s (timeout)", f64::NAN);
    }
    // Let the last datagrams reach the capture ring.
    sleep_ms(200);
    let st = stamps.finish()?;
    let cs = cap.stop()?;
    eprintln!("   reading {} ({} packets)", pcap.display(), cs.captured);
    let (dgrams, skipped) = latency::read_pcap(&fs::read(&pcap)?)?;
    let (arrivals, bad) = latency::first_arrivals(&dgrams);
    let sum = latency::summarize(&st.start_ns, &arrivals);
    let _ = fs::remove_dir_all(&cap_dir);
    ctx.record(sc, l, "latency_p50_us", sum.p50_us);
    ctx.record(sc, l, "latency_p90_us", sum.p90_us);
    ctx.record(sc, l, "latency_p99_us", sum.p99_us);
    ctx.record(sc, l, "latency_p99.9_us", sum.p999_us);
    ctx.record(sc, l, "latency_max_us", sum.max_us);
    ctx.record(sc, l, "new_events_stamped_A", sum.stamped as f64);
    ctx.record(sc, l, "entries_matched_at_B", sum.matched as f64);
    ctx.record(
        sc,
        l,
        "matched_fraction",
        sum.matched as f64 / sum.stamped.max(1) as f64,
    );
    ctx.record(sc, l, "arrival_before_stamp", sum.negative as f64);
    ctx.record(sc, l, "new_events_unstamped_A", st.unstamped as f64);
    ctx.record(sc, l, "stamp_listener_overruns", st.overruns as f64);
    ctx.record(sc, l, "capture_packets", cs.captured as f64);
    ctx.record(sc, l, "capture_dropped_by_kernel", cs.dropped as f64);
    ctx.record(sc, l, "capture_undecoded", (skipped + bad) as f64);
    ctx.record(
        sc,
        l,
        "netlink_overrun_A",
        a.runtime_counter("netlink overrun:").unwrap_or(0) as f64,
    );
    check_max(ctx, sc, l);
    drop((a, b));
    drop(tb);
    Ok(())
}

/// Wall-clock time (UTC, HH:MM:SS) `secs` from now, for progress lines.
fn clock_in(secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + secs;
    format!(
        "{:02}:{:02}:{:02} UTC",
        now / 3600 % 24,
        now / 60 % 60,
        now % 60
    )
}

/// The physical limits of this run (perf/README.md): creation rate with a bare event drain.
fn baseline(ctx: &mut Ctx, n: u64, churn_secs: u64) -> io::Result<()> {
    ctx.serial += 1;
    let name = format!("ctb-{}-{}-drain", std::process::id(), ctx.serial);
    let ns = Netns::create(&ctx.watchdog, &name)?;
    ns.enable_conntrack()?;
    let sc = "baseline (no daemon)";
    let n_s = n.to_string();
    let j = ctx.ctgen(&[
        "--netns", &name, "--json", "burst", &n_s, "--proto", "mix", "--repeat", "3",
    ])?;
    ctx.record(
        sc,
        "limit",
        "burst_no_listener_per_s",
        json_num(&j, "rate").unwrap_or(0.0),
    );
    ctx.ctgen(&["--netns", &name, "flush"])?;
    let j = ctx.ctgen(&[
        "--netns", &name, "--json", "--drain", "burst", &n_s, "--proto", "mix", "--repeat", "3",
    ])?;
    ctx.record(
        sc,
        "limit",
        "burst_bare_drain_per_s",
        json_num(&j, "rate").unwrap_or(0.0),
    );
    ctx.ctgen(&["--netns", &name, "flush"])?;
    let j = ctx.ctgen(&[
        "--netns",
        &name,
        "--json",
        "--drain",
        "churn",
        "--rate",
        "max",
        "--duration",
        &churn_secs.to_string(),
        "--live",
        "10000",
        "--proto",
        "mix",
    ])?;
    ctx.record(
        sc,
        "limit",
        "churn_max_bare_drain_per_s",
        json_num(&j, "rate").unwrap_or(0.0),
    );
    let overruns = j
        .find("\"drain\"")
        .and_then(|at| json_num(&j[at..], "overruns"))
        .unwrap_or(0.0);
    ctx.record(sc, "limit", "churn_max_bare_drain_overruns", overruns);
    Ok(())
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "—".to_owned()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn summary(ctx: &Ctx) -> String {
    let mut s = String::new();
    for sc in &ctx.order {
        let (metrics, by_impl) = &ctx.results[sc];
        let _ = writeln!(s, "### {sc}\n");
        if let Some(limit) = by_impl.get("limit") {
            let _ = writeln!(s, "| metric | value |\n|---|---|");
            for m in metrics {
                let _ = writeln!(s, "| {m} | {} |", fmt(limit[m]));
            }
            let _ = writeln!(s);
            continue;
        }
        let _ = writeln!(s, "| metric | C 1.4.7 | ours | ours/C |\n|---|---|---|---|");
        for m in metrics {
            let get = |i: &str| by_impl.get(i).and_then(|x| x.get(m)).copied();
            let (c, o) = (get("c"), get("ours"));
            let ratio = match (c, o) {
                (Some(c), Some(o)) if c != 0.0 && !c.is_nan() && !o.is_nan() => {
                    format!("{:.2}", o / c)
                }
                _ => "—".to_owned(),
            };
            let show = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), fmt);
            let _ = writeln!(s, "| {m} | {} | {} | {ratio} |", show(c), show(o));
        }
        let _ = writeln!(s);
    }
    s
}

fn setup_text(ctx: &Ctx, impls: &[Impl], argv: &[String], max_old: u64, max_run: u64) -> String {
    let sh = |c: &str| run(&["sh", "-c", c]).1.trim().to_owned();
    let mut s = String::new();
    let _ = writeln!(s, "driver: {}", argv.join(" "));
    let _ = writeln!(s, "date: {}", sh("date -u +%FT%TZ"));
    let _ = writeln!(s, "host: {}", sh("hostname"));
    let _ = writeln!(s, "kernel: {}", sh("uname -srvm"));
    let _ = writeln!(
        s,
        "cpu: {} ({} online)",
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
        sh("nproc")
    );
    let _ = writeln!(s, "loadavg at end: {}", sh("cat /proc/loadavg"));
    let _ = writeln!(s, "memory: {}", sh("grep MemTotal /proc/meminfo"));
    let _ = writeln!(s, "git: {}", sh("git rev-parse HEAD 2>/dev/null; git status --porcelain 2>/dev/null | wc -l | sed 's/$/ dirty files/'").replace('\n', " "));
    let _ = writeln!(
        s,
        "nf_conntrack_max: {max_old} before the run; the run needs {max_run} (raised only if lower, restored at the end)"
    );
    for i in impls {
        let (_, v) = run(&[&i.bin.to_string_lossy(), "-v"]);
        let _ = writeln!(s, "{}: {} ({})", i.label, i.bin.display(), v.trim());
    }
    let _ = writeln!(
        s,
        "\nconfigs: the conntrackd-*-node*.conf files here, byte-identical for both daemons \
         (the private dir is /tmp/ctb-PID-SERIAL-IMPL-NODE, shown as /tmp/ctb-DIR). No Scheduler \
         block: both use SCHED_RR at maximum priority (the 1.4.7 default)."
    );
    let _ = writeln!(
        s,
        "\nload commands (NS = the primary namespace of each run):"
    );
    for c in &ctx.commands {
        let _ = writeln!(s, "  {c}");
    }
    let _ = writeln!(
        s,
        "\ndaemon client commands: BIN -C CONF -f external; BIN -C CONF -B (primary); \
         BIN -C CONF -c (backup); -s / -s runtime polled over the UNIX socket every 20 ms."
    );
    let _ = writeln!(
        s,
        "\nlatency-* scenarios: sysctl net.netfilter.nf_conntrack_timestamp=1 in A only (per \
         namespace); the driver's own NEW-group ctnetlink listener in A (64 MiB SO_RCVBUFFORCE) \
         records CTA_TIMESTAMP_EVENT per original tuple; the tcpdump above captures B's end of \
         the sync link; latency = first CT_NEW/CT_UPD arrival for the tuple - kernel stamp."
    );
    s
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("sidebyside: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> io::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut quick = true;
    let mut out: Option<PathBuf> = None;
    let mut c_bin = PathBuf::from("/usr/sbin/conntrackd");
    let mut ours_bin = exe_dir.join("conntrackd");
    let mut ctgen = exe_dir.join("ctgen");
    let mut only: Option<String> = None;
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| io::Error::other(format!("{a} needs a value")))
        };
        match a.as_str() {
            "--quick" => quick = true,
            "--full" => quick = false,
            "--out" => out = Some(PathBuf::from(val()?)),
            "--c" => c_bin = PathBuf::from(val()?),
            "--ours" => ours_bin = PathBuf::from(val()?),
            "--ctgen" => ctgen = PathBuf::from(val()?),
            "--only" => only = Some(val()?),
            "-h" | "--help" => {
                println!(
                    "sidebyside [--quick|--full] [--out DIR] [--c BIN] [--ours BIN] [--ctgen BIN] [--only SUBSTR]"
                );
                return Ok(());
            }
            other => return Err(io::Error::other(format!("unknown argument {other}"))),
        }
    }
    for p in [&c_bin, &ours_bin, &ctgen] {
        if !p.exists() {
            return Err(io::Error::other(format!(
                "{} not found (build --release first)",
                p.display()
            )));
        }
    }
    let out = out.unwrap_or_else(|| {
        let d = run(&["date", "-u", "+%Y-%m-%d"]).1.trim().to_owned();
        let h = run(&["hostname"]).1.trim().to_owned();
        PathBuf::from(format!("bench/runs/{d}-{h}"))
    });
    fs::create_dir_all(&out)?;

    let (scenarios, base_n, churn_secs, sync_timeout) = if quick {
        (
            vec![
                Scenario::Burst {
                    mode: Mode::Ftfw,
                    transport: Transport::Udp,
                    n: 100_000,
                    bulk: true,
                    commit: true,
                },
                Scenario::Burst {
                    mode: Mode::Alarm,
                    transport: Transport::Udp,
                    n: 100_000,
                    bulk: false,
                    commit: false,
                },
                Scenario::Churn {
                    rate: 50_000,
                    secs: 10,
                    live: 10_000,
                },
                Scenario::Latency {
                    rate: 50_000,
                    secs: 5,
                    live: 10_000,
                },
            ],
            100_000,
            5,
            Duration::from_secs(45),
        )
    } else {
        let mut v = Vec::new();
        for n in [100_000, 500_000, 1_000_000] {
            v.push(Scenario::Burst {
                mode: Mode::Ftfw,
                transport: Transport::Udp,
                n,
                bulk: n == 1_000_000,
                commit: n >= 500_000,
            });
        }
        v.push(Scenario::Burst {
            mode: Mode::Alarm,
            transport: Transport::Udp,
            n: 100_000,
            bulk: false,
            commit: false,
        });
        v.push(Scenario::Burst {
            mode: Mode::Ftfw,
            transport: Transport::Multicast,
            n: 100_000,
            bulk: false,
            commit: false,
        });
        v.push(Scenario::Burst {
            mode: Mode::Alarm,
            transport: Transport::Multicast,
            n: 100_000,
            bulk: false,
            commit: false,
        });
        for rate in [50_000, 100_000, 200_000, 400_000, 0] {
            v.push(Scenario::Churn {
                rate,
                secs: 30,
                live: 50_000,
            });
        }
        for rate in [10_000, 50_000, 100_000] {
            v.push(Scenario::Latency {
                rate,
                secs: 10,
                live: 50_000,
            });
        }
        (v, 100_000, 10, Duration::from_secs(120))
    };
    // Only what the selected scenarios need: `--only` must not raise the global value for a
    // 1M burst it does not run.
    let max_n = scenarios
        .iter()
        .filter(|s| only.as_ref().is_none_or(|o| s.name().contains(o.as_str())))
        .map(|s| match s {
            Scenario::Burst { n, .. } => *n,
            Scenario::Churn { live, .. } | Scenario::Latency { live, .. } => *live,
        })
        .max()
        .unwrap_or(0);
    let impls = [
        Impl {
            label: "c",
            bin: c_bin,
        },
        Impl {
            label: "ours",
            bin: ours_bin,
        },
    ];

    let watchdog = Watchdog::start()?;
    let mut ctx = Ctx {
        watchdog,
        ctgen,
        out: out.clone(),
        serial: 0,
        sync_timeout,
        results: BTreeMap::new(),
        csv: "scenario,impl,metric,value\n".to_owned(),
        commands: Vec::new(),
        max_want: 0,
        order: Vec::new(),
    };
    // Each namespace's table is limited by the global value; the backup holds the committed
    // copy in its own namespace, so max_n plus a margin suffices per namespace.
    let want_max = (max_n + max_n / 4).max(262_144);
    let max = ConntrackMax::raise(&ctx.watchdog, want_max)?;
    let max_old = max.old();
    ctx.max_want = want_max;

    let selected = |s: &Scenario| only.as_ref().is_none_or(|o| s.name().contains(o.as_str()));
    let total_runs = 2 * scenarios.iter().filter(|s| selected(s)).count();
    let est: u64 = scenarios
        .iter()
        .filter(|s| selected(s))
        .map(Scenario::estimate_s)
        .sum::<u64>()
        * 2
        // The baseline: three bursts twice over, and a churn.
        + if only.is_none() { 2 * base_n / 20_000 + churn_secs + 4 } else { 0 };
    eprintln!(
        "== {}{total_runs} daemon runs ({} scenarios x C and ours); about {} min on an idle machine",
        if only.is_none() {
            "baseline, then "
        } else {
            ""
        },
        total_runs / 2,
        est.div_ceil(60)
    );
    let t0 = Instant::now();
    let mut failures = Vec::new();
    if only.is_none() {
        eprintln!("== [baseline] bare drain: ctgen bursts and churn max, no daemon");
        if let Err(e) = baseline(&mut ctx, base_n, churn_secs) {
            failures.push(format!("baseline: {e}"));
        }
    }
    let mut done_runs = 0;
    for (i, s) in scenarios.iter().enumerate() {
        let sc = s.name();
        if !selected(s) {
            continue;
        }
        // Alternate which daemon goes first, so neither always gets the warmer/cooler slot.
        let order: Vec<&Impl> = if i % 2 == 0 {
            vec![&impls[0], &impls[1]]
        } else {
            vec![&impls[1], &impls[0]]
        };
        for imp in order {
            done_runs += 1;
            eprintln!(
                "== [{done_runs}/{total_runs}, {:.0} s] {sc}: {}",
                t0.elapsed().as_secs_f64(),
                imp.label
            );
            let r = match s {
                Scenario::Burst { .. } => burst(&mut ctx, &sc, imp, s),
                Scenario::Churn { .. } => churn(&mut ctx, &sc, imp, s),
                Scenario::Latency { .. } => latency(&mut ctx, &sc, imp, s),
            };
            if let Err(e) = r {
                eprintln!("   FAILED: {e}");
                failures.push(format!("{sc} {}: {e}", imp.label));
            }
        }
    }
    let wall = t0.elapsed().as_secs_f64();

    fs::write(out.join("raw.csv"), &ctx.csv)?;
    // Charts are a convenience: a missing font must not cost the run its numbers.
    let charts = match plot::write_charts(&ctx.csv, &out) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("charts not drawn: {e}");
            Vec::new()
        }
    };
    let mut sum = format!(
        "# side-by-side run ({}), {:.0} s wall\n\nEvery row: both daemons in the same run, \
         same testbed, same config, same load; ours/C is the ratio of the two values.\n\n",
        if quick { "quick" } else { "full" },
        wall
    );
    sum.push_str(&summary(&ctx));
    if !failures.is_empty() {
        sum.push_str("\n## failures\n\n");
        for f in &failures {
            let _ = writeln!(sum, "- {f}");
        }
    }
    fs::write(out.join("summary.md"), &sum)?;
    let setup = setup_text(&ctx, &impls, &argv, max_old, want_max);
    fs::write(out.join("SETUP"), setup)?;
    drop(max);
    ctx.watchdog.finish();
    println!("{sum}");
    eprintln!("wrote {}/{{raw.csv,summary.md,SETUP}}", out.display());
    for c in &charts {
        eprintln!("wrote {}", c.display());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(format!("{} failures", failures.len())))
    }
}
