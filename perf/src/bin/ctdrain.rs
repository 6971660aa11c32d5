//! ctdrain: the bare event drain as its own process.
//!
//! Subscribes to conntrack NEW/UPDATE/DESTROY events in `--netns NAME` (or the current
//! namespace) with a large SO_RCVBUFFORCE buffer, reads them with `recvmmsg`, discards them,
//! and after `--seconds S` prints how many it saw, of which kind, the ENOBUFS overruns and the
//! event rate over the window from the first to the last event. It prints `ready` on stderr
//! once subscribed, so a script (or test) can start the load only then: with
//! `nf_conntrack_events=2`, entries created before a listener exists never emit events.
//!
//! ```text
//! ctdrain [--netns NAME] [--seconds S] [--rcvbuf BYTES] [--json]
//! ```

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use conntrackd_perf::drain::{DEFAULT_RCVBUF, Drain};
use conntrackd_perf::json::Obj;
use conntrackd_perf::netns_path;

const USAGE: &str = "usage: ctdrain [--netns NAME] [--seconds S] [--rcvbuf BYTES] [--json]";

fn run(argv: &[String]) -> Result<()> {
    let (mut netns, mut seconds, mut rcvbuf, mut json) = (None, 10.0f64, DEFAULT_RCVBUF, false);
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .map(String::as_str)
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--netns" => netns = Some(val("--netns")?.to_owned()),
            "--seconds" => seconds = val("--seconds")?.parse()?,
            "--rcvbuf" => rcvbuf = val("--rcvbuf")?.parse()?,
            "--json" => json = true,
            _ => bail!("{USAGE}"),
        }
    }
    let mut d = match netns.as_deref() {
        None => Drain::open(rcvbuf)?,
        Some(n) => {
            let p = netns_path(n);
            conntrackd::sys::netns::run_in(&p, || Drain::open(rcvbuf))
                .with_context(|| format!("enter namespace {}", p.display()))??
        }
    };
    eprintln!("ready");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let st = d.run(&AtomicBool::new(false), Some(deadline))?;
    if json {
        let o = Obj::new()
            .str("mode", "drain")
            .str("netns", netns.as_deref().unwrap_or(""))
            .float("seconds", seconds, 3)
            .int("events", st.events)
            .int("new", st.new)
            .int("update", st.update)
            .int("destroy", st.destroy)
            .int("overruns", st.overruns)
            .int("bytes", st.bytes)
            .float("active_seconds", st.active_seconds, 6)
            .float("rate", st.rate(), 0)
            .int("rcvbuf", st.rcvbuf as u64);
        println!("{}", o.finish());
    } else {
        println!(
            "drain: {} events (new {}, update {}, destroy {}) in {:.3} s active = {:.1}k/s, \
             {} overruns, rcvbuf {}",
            st.events,
            st.new,
            st.update,
            st.destroy,
            st.active_seconds,
            st.rate() / 1000.0,
            st.overruns,
            st.rcvbuf
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctdrain: {e:#}");
            ExitCode::FAILURE
        }
    }
}
