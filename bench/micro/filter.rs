//! Micro-benchmark of the user-space filter (`conntrackd::filter::UserFilter::accepts`),
//! evaluated once per kernel event before the cache.
//!
//! Cases: no filter; a protocol + TCP state filter (Debian's example configuration);
//! 10 000 IPv4 prefixes of mixed lengths /8–/32 plus 1 000 IPv6 ones, once with `Ignore`
//! and traffic that matches none (the worst case: one hash probe per distinct prefix length,
//! on both the original and the reply source) and once with `Accept` and about half the
//! traffic inside; and 10 000 exact addresses (one probe). Queries are the generated flow mix.
//!
//! Run: `cargo run --release -p conntrackd-bench --bin micro-filter [-- --runs N --scale F]`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use conntrackd::config::{Filter, FilterSet, Policy, Prefix, Protocol, TcpState};
use conntrackd::filter::UserFilter;
use conntrackd::netlink::ct::Conntrack;
use conntrackd_bench::flows::{Rng, flow};
use conntrackd_bench::{Opts, header, measure, row};

const PREFIXES: usize = 10_000;

fn main() {
    let opts = Opts::from_args(7);
    header("micro-filter", &opts);
    let flows: Vec<Conntrack> = (0..4096).map(|i| flow(i * 4099)).collect();
    let reps = opts.n(400_000).div_ceil(flows.len());
    let ops = reps * flows.len();
    let bench = |name: &str, f: &Filter| {
        let uf = UserFilter::new(f);
        let accepted = flows.iter().filter(|c| uf.accepts(c)).count();
        let s = measure(opts.runs, ops, || {
            let mut n = 0usize;
            for _ in 0..reps {
                for c in &flows {
                    n += usize::from(uf.accepts(black_box(c)));
                }
            }
            n
        });
        let note = format!(
            "accepts {:.0} %",
            100.0 * accepted as f64 / flows.len() as f64
        );
        row(name, &s, &note);
    };

    bench("no filter", &Filter::default());

    let proto_state = Filter {
        protocol: Some(FilterSet {
            policy: Policy::Accept,
            items: ["TCP", "UDP"]
                .iter()
                .zip([6, 17])
                .map(|(n, number)| Protocol {
                    name: (*n).into(),
                    number,
                })
                .collect(),
        }),
        state: Some(FilterSet {
            policy: Policy::Accept,
            items: vec![TcpState::Established],
        }),
        ..Filter::default()
    };
    bench("Protocol Accept {TCP UDP} + State Accept", &proto_state);

    let mut rng = Rng::new(42);
    // Outside 10.0.0.0/8 (original sources) and 192.0.0.0/8 (reply sources), and IPv6 ones
    // in 2a00::/16: nothing matches.
    let outside: Vec<Prefix> = mixed(&mut rng, PREFIXES, |a| !matches!(a >> 24, 10 | 192));
    let lens = {
        let mut l: Vec<u8> = outside
            .iter()
            .filter(|p| p.addr.is_ipv4())
            .map(|p| p.prefix_len)
            .collect();
        l.sort_unstable();
        l.dedup();
        l.len()
    };
    let addr = |policy, items| Filter {
        address: Some(FilterSet { policy, items }),
        ..Filter::default()
    };
    bench(
        &format!("Address Ignore, 11k nets ({lens} v4 lengths), no hit"),
        &addr(Policy::Ignore, outside.clone()),
    );

    // Half the IPv4 prefixes inside 10.0.0.0/8 as /9–/12: about half the flows match one.
    let mut inside = outside[..PREFIXES / 2].to_vec();
    inside.extend((0..PREFIXES / 2).map(|_| {
        let len = 9 + rng.below(4) as u8;
        let a = 0x0a00_0000 | (rng.next_u64() as u32 & 0x00ff_ffff);
        Prefix {
            addr: IpAddr::V4(Ipv4Addr::from(a)),
            prefix_len: len,
        }
    }));
    bench(
        "Address Accept, 11k nets, half inside",
        &addr(Policy::Accept, inside),
    );

    let exact: Vec<Prefix> = (0..PREFIXES as u32)
        .map(|i| Prefix {
            addr: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i * 7))),
            prefix_len: 32,
        })
        .collect();
    bench(
        "Address Ignore, 10k exact addresses",
        &addr(Policy::Ignore, exact),
    );
}

/// `n` IPv4 prefixes of lengths /8–/32 whose address passes `keep`, plus `n / 10` IPv6
/// /32–/128 prefixes inside 2a00::/16.
fn mixed(rng: &mut Rng, n: usize, keep: impl Fn(u32) -> bool) -> Vec<Prefix> {
    let mut out = Vec::with_capacity(n + n / 10);
    while out.len() < n {
        let a = rng.next_u64() as u32;
        if keep(a) {
            out.push(Prefix {
                addr: IpAddr::V4(Ipv4Addr::from(a)),
                prefix_len: 8 + rng.below(25) as u8,
            });
        }
    }
    for _ in 0..n / 10 {
        let a = u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64());
        let a = a & !(0xffffu128 << 112) | (0x2a00u128 << 112);
        out.push(Prefix {
            addr: IpAddr::V6(Ipv6Addr::from(a)),
            prefix_len: 32 + rng.below(97) as u8,
        });
    }
    out
}
