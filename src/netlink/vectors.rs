//! Tests against bytes captured from the kernel and from conntrack(8) 1.4.7: see
//! `tests/vectors/netlink/README.md` for the command behind each file.

use super::consts::*;
use super::ct::Conntrack;
use super::exp::Expectation;
use super::msg::{MsgBuilder, NlMsg, Payload, messages};

macro_rules! vectors {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../../tests/vectors/netlink/", $name)))),*]
    };
}

/// Every captured file.
static VECTORS: &[(&str, &[u8])] = vectors![
    "tcp4_create.req.bin",
    "tcp4_create.resp.bin",
    "tcp4_dump.req.bin",
    "tcp4_dump.resp.bin",
    "tcp4_eexist.req.bin",
    "tcp4_eexist.resp.bin",
    "tcp4_delete.req.bin",
    "tcp4_delete.resp.bin",
    "tcp4_enoent.req.bin",
    "tcp4_enoent.resp.bin",
    "tcp4_events.resp.bin",
    "udp4_labels_create.req.bin",
    "udp4_labels_create.resp.bin",
    "udp4_labels_dump.resp.bin",
    "icmp4_create.req.bin",
    "icmp4_dump.resp.bin",
    "tcp6_create.req.bin",
    "tcp6_dump.req.bin",
    "tcp6_dump.resp.bin",
    "icmp6_create.req.bin",
    "icmp6_dump.resp.bin",
    "sctp4_create.req.bin",
    "sctp4_dump.resp.bin",
    "gre4_create.req.bin",
    "gre4_dump.resp.bin",
    "snat4_create.req.bin",
    "dnat4_create.req.bin",
    "nat4_dump.resp.bin",
    "ftp_ct_dump.resp.bin",
    "ftp_exp_dump.req.bin",
    "ftp_exp_dump.resp.bin",
    "ftp_exp_create.req.bin",
    "ftp_exp_create.resp.bin",
    "ftp_exp_dump2.resp.bin",
    "ftp_exp_events.resp.bin",
];

/// What one message decodes to.
#[derive(Debug, PartialEq)]
enum Decoded {
    Ct {
        op: u8,
        flags: u16,
        ct: Conntrack,
    },
    Exp {
        op: u8,
        flags: u16,
        exp: Expectation,
    },
    Control(Payload<'static>),
}

fn decode(buf: &[u8]) -> Vec<Decoded> {
    messages(buf)
        .map(|m| {
            let m = m.unwrap();
            match m.classify().unwrap() {
                Payload::Nfnl {
                    subsys: NFNL_SUBSYS_CTNETLINK,
                    op,
                    family,
                    attrs,
                } => Decoded::Ct {
                    op,
                    flags: m.flags(),
                    ct: Conntrack::parse(family, attrs).unwrap(),
                },
                Payload::Nfnl {
                    subsys: NFNL_SUBSYS_CTNETLINK_EXP,
                    op,
                    family,
                    attrs,
                } => Decoded::Exp {
                    op,
                    flags: m.flags(),
                    exp: Expectation::parse(family, attrs).unwrap(),
                },
                Payload::Done => Decoded::Control(Payload::Done),
                Payload::Error {
                    errno,
                    original_seq,
                } => Decoded::Control(Payload::Error {
                    errno,
                    original_seq,
                }),
                other => panic!("unexpected {other:?}"),
            }
        })
        .collect()
}

fn vector(name: &str) -> &'static [u8] {
    VECTORS.iter().find(|(n, _)| *n == name).unwrap().1
}

#[test]
fn test_dump_all() {
    for (name, bytes) in VECTORS {
        println!("== {name}");
        for m in messages(bytes) {
            let m = m.unwrap();
            print!(
                "type {:#06x} flags {:#x} seq {} pid {}: ",
                m.msg_type(),
                m.flags(),
                m.seq(),
                m.pid()
            );
            match m.classify().unwrap() {
                Payload::Nfnl {
                    subsys: NFNL_SUBSYS_CTNETLINK,
                    family,
                    attrs,
                    ..
                } => {
                    println!("{:#?}", Conntrack::parse(family, attrs))
                }
                Payload::Nfnl {
                    subsys: NFNL_SUBSYS_CTNETLINK_EXP,
                    family,
                    attrs,
                    ..
                } => {
                    println!("{:#?}", Expectation::parse(family, attrs))
                }
                p => println!("{p:?}"),
            }
        }
    }
    let _ = (decode, vector, MsgBuilder::new, NlMsg::<&[u8]>::new_checked);
}
