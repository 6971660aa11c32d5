//! ctgen: creates, updates and deletes conntrack entries in a namespace's kernel table
//! through ctnetlink as fast as the kernel allows, and reports the rate it achieved.
//!
//! Requests are batched (a 64 KiB datagram holds ~450 creates), carry no NLM_F_ACK and are
//! built straight into one reusable buffer; the kernel answers only failures, which are
//! drained after each send and counted by errno. `--drain` attaches the bare event drain on
//! its own thread for the run, so "rate with no listener" and "rate with a listener" come
//! from the same binary. ctgen sends no packets; it only writes the table of `--netns NAME`
//! (or of the current namespace).
//!
//! ```text
//! ctgen [--netns NAME] [--json] [--drain] [--batch-bytes B] [--timeout SECS] COMMAND
//!   burst N [--proto udp|tcp|icmp|ipv6|mix] [--op create|update|delete] [--first I]
//!           [--repeat K]
//!   churn --rate R|max --duration S [--live L] [--proto P] [--slice-us US] [--first I]
//!         [--no-prefill]
//!   flush
//!   count
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use conntrackd::netlink::socket::CtHandle;
use conntrackd_perf::drain::{DEFAULT_RCVBUF, Drain, DrainStats};
use conntrackd_perf::flows::{Op, Proto};
use conntrackd_perf::json::Obj;
use conntrackd_perf::sysctl::{ConntrackMaxGuard, conntrack_count, conntrack_max};
use conntrackd_perf::writer::{DEFAULT_BATCH_BYTES, ErrorCounts, Writer};
use conntrackd_perf::{netns_path, thread_sched};

const USAGE: &str =
    "usage: ctgen [--netns NAME] [--json] [--drain] [--batch-bytes B] [--timeout SECS] COMMAND
  burst N [--proto udp|tcp|icmp|ipv6|mix] [--op create|update|delete] [--first I] [--repeat K]
  churn --rate R|max --duration S [--live L] [--proto P] [--slice-us US] [--first I]
        [--no-prefill]
  flush
  count";

/// Slack above the entries we need when raising `nf_conntrack_max` (the kernel refuses at
/// `count > max`, and other entries may appear meanwhile).
const MAX_MARGIN: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmd {
    Burst {
        n: u64,
        op: Op,
        repeat: u32,
    },
    Churn {
        rate: Option<f64>,
        duration: Duration,
        live: u64,
        slice: Duration,
        /// The L flows from `--first` already exist (an earlier `burst L`): no prefill.
        prefilled: bool,
    },
    Flush,
    Count,
}

#[derive(Debug)]
struct Args {
    netns: Option<String>,
    json: bool,
    drain: bool,
    batch_bytes: usize,
    timeout: u32,
    proto: Proto,
    first: u64,
    cmd: Cmd,
}

fn parse_args(argv: &[String]) -> Result<Args> {
    let mut it = argv.iter();
    let (mut netns, mut json, mut drain) = (None, false, false);
    let (mut batch_bytes, mut timeout) = (DEFAULT_BATCH_BYTES, 3600u32);
    let (mut proto, mut first, mut op) = (Proto::Mix, 0u64, Op::Create);
    let (mut rate, mut duration, mut live, mut slice_us) = (None, None, 1000u64, 1000u64);
    let mut pos: Vec<&str> = Vec::new();
    let (mut rate_max, mut repeat, mut prefilled) = (false, 1u32, false);
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .map(String::as_str)
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--netns" => netns = Some(val("--netns")?.to_owned()),
            "--json" => json = true,
            "--drain" => drain = true,
            "--batch-bytes" => batch_bytes = val("--batch-bytes")?.parse()?,
            "--timeout" => timeout = val("--timeout")?.parse()?,
            "--proto" => {
                let v = val("--proto")?;
                proto = Proto::parse(v).with_context(|| format!("unknown --proto {v}"))?;
            }
            "--op" => {
                let v = val("--op")?;
                op = Op::parse(v).with_context(|| format!("unknown --op {v}"))?;
            }
            "--first" => first = val("--first")?.parse()?,
            "--rate" => match val("--rate")? {
                "max" => rate_max = true,
                v => rate = Some(v.parse::<f64>().context("--rate")?),
            },
            "--duration" => duration = Some(val("--duration")?.parse::<f64>()?),
            "--live" => live = val("--live")?.parse()?,
            "--repeat" => repeat = val("--repeat")?.parse()?,
            "--slice-us" => slice_us = val("--slice-us")?.parse()?,
            "--no-prefill" => prefilled = true,
            "-h" | "--help" => bail!("{USAGE}"),
            s if s.starts_with('-') => bail!("unknown option {s}\n{USAGE}"),
            s => pos.push(s),
        }
    }
    let cmd = match pos.as_slice() {
        ["burst", n] => Cmd::Burst {
            n: n.parse().context("burst N")?,
            op,
            repeat,
        },
        ["churn"] => {
            if rate.is_none() && !rate_max {
                bail!("churn needs --rate R (events/s) or --rate max");
            }
            if rate.is_some_and(|r| r <= 0.0) {
                bail!("--rate must be positive");
            }
            let d = duration.context("churn needs --duration S")?;
            Cmd::Churn {
                rate,
                duration: Duration::from_secs_f64(d),
                live,
                slice: Duration::from_micros(slice_us.max(50)),
                prefilled,
            }
        }
        ["flush"] => Cmd::Flush,
        ["count"] => Cmd::Count,
        _ => bail!("{USAGE}"),
    };
    Ok(Args {
        netns,
        json,
        drain,
        batch_bytes,
        timeout,
        proto,
        first,
        cmd,
    })
}

/// Runs `f` on a thread inside the namespace (sockets it opens stay there), or here.
fn in_ns<T: Send>(ns: Option<&Path>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    match ns {
        None => f(),
        Some(p) => conntrackd::sys::netns::run_in(p, f)
            .with_context(|| format!("enter namespace {}", p.display()))?,
    }
}

/// The drain thread of `--drain`.
struct DrainThread {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<DrainStats>>,
}

impl DrainThread {
    fn start(ns: Option<&Path>) -> Result<Self> {
        let mut d = in_ns(ns, || Drain::open(DEFAULT_RCVBUF))?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("drain".into())
            .spawn(move || d.run(&s, None))?;
        Ok(Self { stop, handle })
    }

    /// Stops the drain once it has read what is queued (all events of the run by now).
    fn finish(self) -> Result<DrainStats> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.join() {
            Ok(r) => r,
            Err(_) => bail!("drain thread panicked"),
        }
    }
}

fn drain_json(d: &DrainStats) -> String {
    Obj::new()
        .int("events", d.events)
        .int("new", d.new)
        .int("update", d.update)
        .int("destroy", d.destroy)
        .int("overruns", d.overruns)
        .float("rate", d.rate(), 0)
        .int("rcvbuf", d.rcvbuf as u64)
        .finish()
}

fn errors_json(e: &ErrorCounts) -> String {
    Obj::new()
        .int("eexist", e.eexist)
        .int("enoent", e.enoent)
        .int("enomem", e.enomem)
        .int("other", e.other)
        .int("last_other_errno", e.last_other.unsigned_abs().into())
        .int("lost", e.lost)
        .finish()
}

fn errors_human(e: &ErrorCounts) -> String {
    let mut s = format!("errors {}", e.total());
    if e.total() > 0 {
        s += &format!(
            " (EEXIST {}, ENOENT {}, ENOMEM {}, other {} last errno {}, lost {})",
            e.eexist, e.enoent, e.enomem, e.other, e.last_other, e.lost
        );
    }
    s
}

/// The median (upper one for even lengths); NaN when empty.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn kilo(rate: f64) -> String {
    format!("{:.1}k/s", rate / 1000.0)
}

/// Everything a run reports besides its mode-specific numbers.
struct Common<'a> {
    args: &'a Args,
    ns: Option<&'a Path>,
    count_before: u64,
}

impl Common<'_> {
    fn head(&self, mode: &str) -> Obj {
        Obj::new()
            .str("mode", mode)
            .str("netns", self.args.netns.as_deref().unwrap_or(""))
            .str("proto", self.args.proto.name())
            .int("batch_bytes", self.args.batch_bytes as u64)
            .int("count_before", self.count_before)
    }

    /// Appends the kernel's count after the run (returned too), the limit in force and the
    /// drain's numbers.
    fn tail(&self, o: Obj, drain: Option<&DrainStats>) -> Result<(Obj, u64)> {
        let after = conntrack_count(self.ns)?;
        let o = o
            .int("count_after", after)
            .int("conntrack_max", conntrack_max()?);
        let o = match drain {
            Some(d) => o.raw("drain", &drain_json(d)),
            None => o.str("listener", "none"),
        };
        Ok((o, after))
    }
}

fn burst(c: &Common<'_>, n: u64, op: Op, repeat: u32) -> Result<()> {
    let a = c.args;
    let _guard = if op == Op::Create {
        ConntrackMaxGuard::ensure(c.count_before + n + MAX_MARGIN)?
    } else {
        None
    };
    let mut w = in_ns(c.ns, || Writer::open(a.batch_bytes))?;
    // Only for --repeat: the table goes back to empty between runs of creates.
    let mut flusher = None;
    let mut rates = Vec::with_capacity(repeat as usize);
    // Per run: entries per second of our own CPU time, and the share of the run spent
    // runnable but not running (other processes had the CPU).
    let (mut cpu_rates, mut waits) = (Vec::new(), Vec::new());
    let mut d = None;
    for r in 0..repeat.max(1) {
        if r > 0 && op == Op::Create {
            if flusher.is_none() {
                flusher = Some(in_ns(c.ns, || CtHandle::open().context("open ctnetlink"))?);
            }
            if let Some(h) = flusher.as_mut() {
                h.flush_conntracks(0).context("flush between repeats")?;
            }
        }
        let drain = a.drain.then(|| DrainThread::start(c.ns)).transpose()?;
        let s0 = thread_sched();
        let t0 = Instant::now();
        for i in a.first..a.first + n {
            w.push(a.proto, i, op, a.timeout)?;
        }
        w.flush()?;
        rates.push(n as f64 / t0.elapsed().as_secs_f64());
        if let (Some((c0, w0)), Some((c1, w1))) = (s0, thread_sched()) {
            cpu_rates.push(n as f64 / (c1 - c0).as_secs_f64());
            waits.push((w1 - w0).as_secs_f64() * rates[rates.len() - 1] / n as f64);
        }
        d = drain.map(DrainThread::finish).transpose()?;
    }
    let rates_json = format!(
        "[{}]",
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let best = rates.iter().copied().fold(0.0, f64::max);
    let rate = median(&mut rates);
    let rate_cpu = median(&mut cpu_rates);
    let runq_wait = median(&mut waits);
    let o = c
        .head("burst")
        .str("op", op.name())
        .int("n", n)
        .int("repeat", rates.len() as u64)
        .float("seconds", n as f64 / rate, 6)
        .float("rate", rate, 0)
        .float("rate_best", best, 0)
        .raw("rates", &rates_json)
        .float("rate_cpu", rate_cpu, 0)
        .float("runq_wait_share", runq_wait, 3)
        .int("errors", w.errors.total())
        .raw("error_kinds", &errors_json(&w.errors))
        .int("datagrams", w.datagrams);
    let (o, after) = c.tail(o, d.as_ref())?;
    if a.json {
        println!("{}", o.finish());
    } else {
        let reps = if rates.len() > 1 {
            format!(" (median of {}, best {})", rates.len(), kilo(best))
        } else {
            String::new()
        };
        println!(
            "burst {} {} x{n}: {}{reps}, {} per CPU-second, {:.0}% waiting for a CPU, {}, \
             {} datagrams, count {} -> {after}{}",
            op.name(),
            a.proto.name(),
            kilo(rate),
            kilo(rate_cpu),
            runq_wait * 100.0,
            errors_human(&w.errors),
            w.datagrams,
            c.count_before,
            d.map(|d| format!(", drain {} events ({} overruns)", d.events, d.overruns))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn churn(
    c: &Common<'_>,
    rate: Option<f64>,
    duration: Duration,
    live: u64,
    slice: Duration,
    prefilled: bool,
) -> Result<()> {
    let a = c.args;
    let _guard = ConntrackMaxGuard::ensure(c.count_before + live + MAX_MARGIN)?;
    let mut w = in_ns(c.ns, || Writer::open(a.batch_bytes))?;
    let drain = a.drain.then(|| DrainThread::start(c.ns)).transpose()?;
    // Prefill to the steady-state size at full speed, outside the timed window (unless an
    // earlier `burst L` did, so that whoever watches sees only the paced events).
    let t0 = Instant::now();
    if !prefilled {
        for i in a.first..a.first + live {
            w.push(a.proto, i, Op::Create, a.timeout)?;
        }
    }
    w.flush()?;
    let prefill_secs = t0.elapsed().as_secs_f64();
    let (mut oldest, mut next, mut live_now) = (a.first, a.first + live, live);
    let (mut done, mut creates, mut deletes) = (0u64, 0u64, 0u64);
    // The worst lag behind the schedule, and when it happened (seconds into the run).
    let (mut lag_max, mut lag_at) = (0.0f64, 0.0f64);
    // Unpaced: check the clock every this many events.
    const MAX_CHUNK: u64 = 256;
    let s0 = thread_sched();
    let start = Instant::now();
    let end = start + duration;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let target = match rate {
            Some(r) => ((now - start).as_secs_f64() * r) as u64,
            None => done + MAX_CHUNK,
        };
        while done < target {
            // Keep between live-1 and live entries: delete the oldest once full.
            if live_now >= live.max(1) {
                w.push(a.proto, oldest, Op::Delete, 0)?;
                oldest += 1;
                live_now -= 1;
                deletes += 1;
            } else {
                w.push(a.proto, next, Op::Create, a.timeout)?;
                next += 1;
                live_now += 1;
                creates += 1;
            }
            done += 1;
        }
        if let Some(r) = rate {
            w.flush()?;
            // How far behind the schedule we are once this slice is out.
            let after = Instant::now();
            let behind = (after - start).as_secs_f64() - done as f64 / r;
            if behind > lag_max {
                lag_max = behind;
                lag_at = (after - start).as_secs_f64();
            }
            let k = ((after - start).as_nanos() / slice.as_nanos()) as u32 + 1;
            let tick = start + slice * k;
            if tick > after {
                std::thread::sleep(tick.min(end) - after);
            }
        }
    }
    w.flush()?;
    let secs = start.elapsed().as_secs_f64();
    let (cpu, wait) = match (s0, thread_sched()) {
        (Some((c0, w0)), Some((c1, w1))) => ((c1 - c0).as_secs_f64(), (w1 - w0).as_secs_f64()),
        _ => (f64::NAN, f64::NAN),
    };
    let d = drain.map(DrainThread::finish).transpose()?;
    let achieved = done as f64 / secs;
    let o = c
        .head("churn")
        .float("rate_target", rate.unwrap_or(0.0), 0)
        .float("duration", duration.as_secs_f64(), 3)
        .int("live", live)
        .int("prefill", if prefilled { 0 } else { live })
        .float("prefill_seconds", prefill_secs, 6)
        .int("events", done)
        .int("creates", creates)
        .int("deletes", deletes)
        .float("seconds", secs, 6)
        .float("rate", achieved, 0)
        .float("lag_max_ms", lag_max.max(0.0) * 1000.0, 3)
        .float("lag_max_at", lag_at, 3)
        .float("cpu_seconds", cpu, 6)
        .float("runq_wait_share", wait / secs, 3)
        .int("errors", w.errors.total())
        .raw("error_kinds", &errors_json(&w.errors));
    let (o, after) = c.tail(o, d.as_ref())?;
    if a.json {
        println!("{}", o.finish());
    } else {
        println!(
            "churn {} target {} for {:.1} s, live {live}: {done} events ({creates} creates, \
             {deletes} deletes) in {secs:.3} s = {}, {}, {}, count {after}{}",
            a.proto.name(),
            rate.map_or_else(|| "max".into(), kilo),
            duration.as_secs_f64(),
            kilo(achieved),
            if rate.is_some() {
                format!(
                    "max lag {:.1} ms at {lag_at:.2} s",
                    lag_max.max(0.0) * 1000.0
                )
            } else {
                "unpaced".into()
            },
            errors_human(&w.errors),
            d.map(|d| format!(", drain {} events ({} overruns)", d.events, d.overruns))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn flush(c: &Common<'_>) -> Result<()> {
    let mut h = in_ns(c.ns, || CtHandle::open().context("open ctnetlink"))?;
    let t0 = Instant::now();
    h.flush_conntracks(0).context("flush")?;
    let secs = t0.elapsed().as_secs_f64();
    let o = c.head("flush").float("seconds", secs, 6);
    let (o, after) = c.tail(o, None)?;
    if c.args.json {
        println!("{}", o.finish());
    } else {
        println!(
            "flush: {} -> {after} entries in {secs:.3} s",
            c.count_before
        );
    }
    Ok(())
}

fn run(args: &Args) -> Result<()> {
    let path: Option<PathBuf> = args.netns.as_deref().map(netns_path);
    let ns = path.as_deref();
    if let Some(p) = ns
        && !p.exists()
    {
        bail!("no namespace {} (create it with ip netns add)", p.display());
    }
    let c = Common {
        args,
        ns,
        count_before: conntrack_count(ns)?,
    };
    match args.cmd {
        Cmd::Burst { n, op, repeat } => burst(&c, n, op, repeat),
        Cmd::Churn {
            rate,
            duration,
            live,
            slice,
            prefilled,
        } => churn(&c, rate, duration, live, slice, prefilled),
        Cmd::Flush => flush(&c),
        Cmd::Count => {
            if args.json {
                println!("{}", c.head("count").finish());
            } else {
                println!("{}", c.count_before);
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let res = parse_args(&argv).and_then(|a| run(&a));
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
