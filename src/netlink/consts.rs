//! Wire constants of netlink, nfnetlink and ctnetlink, under their C names.
//!
//! Values come from the Linux UAPI headers (`linux/netlink.h`,
//! `linux/netfilter/nfnetlink.h`, `nfnetlink_conntrack.h`, `nf_conntrack_common.h`,
//! `nf_conntrack_tcp.h`, `nf_conntrack_sctp.h`). The C names are kept so a reader can grep
//! the kernel and the C daemon's documentation for them.

// ---- netlink (linux/netlink.h) -------------------------------------------------------------

/// `NETLINK_NETFILTER`: the netlink protocol number of nfnetlink sockets.
pub const NETLINK_NETFILTER: i32 = 12;

/// Control message: nothing, ignore.
pub const NLMSG_NOOP: u16 = 1;
/// Control message: error or (errno 0) acknowledgement.
pub const NLMSG_ERROR: u16 = 2;
/// Control message: end of a multipart (dump) reply.
pub const NLMSG_DONE: u16 = 3;
/// Control message: data lost.
pub const NLMSG_OVERRUN: u16 = 4;
/// Types below this are reserved control messages.
pub const NLMSG_MIN_TYPE: u16 = 0x10;

/// Request flag: this message is a request.
pub const NLM_F_REQUEST: u16 = 0x01;
/// Multipart message, terminated by NLMSG_DONE.
pub const NLM_F_MULTI: u16 = 0x02;
/// Request an ACK (NLMSG_ERROR with errno 0) on success.
pub const NLM_F_ACK: u16 = 0x04;
/// Echo this request back.
pub const NLM_F_ECHO: u16 = 0x08;
/// Dump was inconsistent due to a sequence change.
pub const NLM_F_DUMP_INTR: u16 = 0x10;
/// Dump was filtered as requested.
pub const NLM_F_DUMP_FILTERED: u16 = 0x20;
/// GET modifier: specify tree root.
pub const NLM_F_ROOT: u16 = 0x100;
/// GET modifier: return all matching.
pub const NLM_F_MATCH: u16 = 0x200;
/// GET modifier: atomic get.
pub const NLM_F_ATOMIC: u16 = 0x400;
/// GET modifier: dump the whole table.
pub const NLM_F_DUMP: u16 = NLM_F_ROOT | NLM_F_MATCH;
/// NEW modifier: override an existing object.
pub const NLM_F_REPLACE: u16 = 0x100;
/// NEW modifier: fail if the object exists.
pub const NLM_F_EXCL: u16 = 0x200;
/// NEW modifier: create if it does not exist.
pub const NLM_F_CREATE: u16 = 0x400;
/// NEW modifier: add to the end of a list.
pub const NLM_F_APPEND: u16 = 0x800;
/// ACK flag: the request was capped (the original message is only its header).
pub const NLM_F_CAPPED: u16 = 0x100;
/// ACK flag: extended ACK TLVs follow the original message.
pub const NLM_F_ACK_TLVS: u16 = 0x200;

/// Attribute type flag: the payload is a nest of attributes.
pub const NLA_F_NESTED: u16 = 1 << 15;
/// Attribute type flag: the payload is in network byte order.
pub const NLA_F_NET_BYTEORDER: u16 = 1 << 14;
/// Mask that strips both attribute type flags.
pub const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

// ---- nfnetlink (linux/netfilter/nfnetlink.h) -----------------------------------------------

/// `nfgenmsg.version` value.
pub const NFNETLINK_V0: u8 = 0;
pub const NFNL_SUBSYS_NONE: u8 = 0;
pub const NFNL_SUBSYS_CTNETLINK: u8 = 1;
pub const NFNL_SUBSYS_CTNETLINK_EXP: u8 = 2;
pub const NFNL_SUBSYS_CTNETLINK_TIMEOUT: u8 = 8;
pub const NFNL_SUBSYS_CTHELPER: u8 = 9;

/// Multicast groups (`enum nfnetlink_groups`).
pub const NFNLGRP_CONNTRACK_NEW: u32 = 1;
pub const NFNLGRP_CONNTRACK_UPDATE: u32 = 2;
pub const NFNLGRP_CONNTRACK_DESTROY: u32 = 3;
pub const NFNLGRP_CONNTRACK_EXP_NEW: u32 = 4;
pub const NFNLGRP_CONNTRACK_EXP_UPDATE: u32 = 5;
pub const NFNLGRP_CONNTRACK_EXP_DESTROY: u32 = 6;

// ---- ctnetlink message types (nfnetlink_conntrack.h) ---------------------------------------

pub const IPCTNL_MSG_CT_NEW: u8 = 0;
pub const IPCTNL_MSG_CT_GET: u8 = 1;
pub const IPCTNL_MSG_CT_DELETE: u8 = 2;
pub const IPCTNL_MSG_CT_GET_CTRZERO: u8 = 3;
pub const IPCTNL_MSG_CT_GET_STATS_CPU: u8 = 4;
pub const IPCTNL_MSG_CT_GET_STATS: u8 = 5;
pub const IPCTNL_MSG_CT_GET_DYING: u8 = 6;
pub const IPCTNL_MSG_CT_GET_UNCONFIRMED: u8 = 7;

pub const IPCTNL_MSG_EXP_NEW: u8 = 0;
pub const IPCTNL_MSG_EXP_GET: u8 = 1;
pub const IPCTNL_MSG_EXP_DELETE: u8 = 2;
pub const IPCTNL_MSG_EXP_GET_STATS_CPU: u8 = 3;

// ---- enum ctattr_type ----------------------------------------------------------------------

pub const CTA_TUPLE_ORIG: u16 = 1;
pub const CTA_TUPLE_REPLY: u16 = 2;
pub const CTA_STATUS: u16 = 3;
pub const CTA_PROTOINFO: u16 = 4;
pub const CTA_HELP: u16 = 5;
pub const CTA_NAT_SRC: u16 = 6;
pub const CTA_TIMEOUT: u16 = 7;
pub const CTA_MARK: u16 = 8;
pub const CTA_COUNTERS_ORIG: u16 = 9;
pub const CTA_COUNTERS_REPLY: u16 = 10;
pub const CTA_USE: u16 = 11;
pub const CTA_ID: u16 = 12;
pub const CTA_NAT_DST: u16 = 13;
pub const CTA_TUPLE_MASTER: u16 = 14;
pub const CTA_SEQ_ADJ_ORIG: u16 = 15;
pub const CTA_SEQ_ADJ_REPLY: u16 = 16;
pub const CTA_SECMARK: u16 = 17;
pub const CTA_ZONE: u16 = 18;
pub const CTA_SECCTX: u16 = 19;
pub const CTA_TIMESTAMP: u16 = 20;
pub const CTA_MARK_MASK: u16 = 21;
pub const CTA_LABELS: u16 = 22;
pub const CTA_LABELS_MASK: u16 = 23;
pub const CTA_SYNPROXY: u16 = 24;
pub const CTA_FILTER: u16 = 25;
pub const CTA_STATUS_MASK: u16 = 26;
/// BE64 nanoseconds at which the kernel generated the event (Linux >= 6.14; newer than the
/// UAPI header installed here, seen on 6.18 in events when `nf_conntrack_timestamp` is on).
pub const CTA_TIMESTAMP_EVENT: u16 = 27;

// enum ctattr_tuple
pub const CTA_TUPLE_IP: u16 = 1;
pub const CTA_TUPLE_PROTO: u16 = 2;
pub const CTA_TUPLE_ZONE: u16 = 3;

// enum ctattr_ip
pub const CTA_IP_V4_SRC: u16 = 1;
pub const CTA_IP_V4_DST: u16 = 2;
pub const CTA_IP_V6_SRC: u16 = 3;
pub const CTA_IP_V6_DST: u16 = 4;

// enum ctattr_l4proto
pub const CTA_PROTO_NUM: u16 = 1;
pub const CTA_PROTO_SRC_PORT: u16 = 2;
pub const CTA_PROTO_DST_PORT: u16 = 3;
pub const CTA_PROTO_ICMP_ID: u16 = 4;
pub const CTA_PROTO_ICMP_TYPE: u16 = 5;
pub const CTA_PROTO_ICMP_CODE: u16 = 6;
pub const CTA_PROTO_ICMPV6_ID: u16 = 7;
pub const CTA_PROTO_ICMPV6_TYPE: u16 = 8;
pub const CTA_PROTO_ICMPV6_CODE: u16 = 9;

// enum ctattr_protoinfo and its per-protocol nests
pub const CTA_PROTOINFO_TCP: u16 = 1;
pub const CTA_PROTOINFO_DCCP: u16 = 2;
pub const CTA_PROTOINFO_SCTP: u16 = 3;
pub const CTA_PROTOINFO_TCP_STATE: u16 = 1;
pub const CTA_PROTOINFO_TCP_WSCALE_ORIGINAL: u16 = 2;
pub const CTA_PROTOINFO_TCP_WSCALE_REPLY: u16 = 3;
pub const CTA_PROTOINFO_TCP_FLAGS_ORIGINAL: u16 = 4;
pub const CTA_PROTOINFO_TCP_FLAGS_REPLY: u16 = 5;
pub const CTA_PROTOINFO_DCCP_STATE: u16 = 1;
pub const CTA_PROTOINFO_DCCP_ROLE: u16 = 2;
pub const CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ: u16 = 3;
pub const CTA_PROTOINFO_DCCP_PAD: u16 = 4;
pub const CTA_PROTOINFO_SCTP_STATE: u16 = 1;
pub const CTA_PROTOINFO_SCTP_VTAG_ORIGINAL: u16 = 2;
pub const CTA_PROTOINFO_SCTP_VTAG_REPLY: u16 = 3;

// enum ctattr_counters
pub const CTA_COUNTERS_PACKETS: u16 = 1;
pub const CTA_COUNTERS_BYTES: u16 = 2;
pub const CTA_COUNTERS32_PACKETS: u16 = 3;
pub const CTA_COUNTERS32_BYTES: u16 = 4;
pub const CTA_COUNTERS_PAD: u16 = 5;

// enum ctattr_tstamp
pub const CTA_TIMESTAMP_START: u16 = 1;
pub const CTA_TIMESTAMP_STOP: u16 = 2;
pub const CTA_TIMESTAMP_PAD: u16 = 3;

// enum ctattr_nat / ctattr_protonat
pub const CTA_NAT_V4_MINIP: u16 = 1;
pub const CTA_NAT_V4_MAXIP: u16 = 2;
pub const CTA_NAT_PROTO: u16 = 3;
pub const CTA_NAT_V6_MINIP: u16 = 4;
pub const CTA_NAT_V6_MAXIP: u16 = 5;
pub const CTA_PROTONAT_PORT_MIN: u16 = 1;
pub const CTA_PROTONAT_PORT_MAX: u16 = 2;

// enum ctattr_seqadj
pub const CTA_SEQADJ_CORRECTION_POS: u16 = 1;
pub const CTA_SEQADJ_OFFSET_BEFORE: u16 = 2;
pub const CTA_SEQADJ_OFFSET_AFTER: u16 = 3;

// enum ctattr_synproxy
pub const CTA_SYNPROXY_ISN: u16 = 1;
pub const CTA_SYNPROXY_ITS: u16 = 2;
pub const CTA_SYNPROXY_TSOFF: u16 = 3;

// enum ctattr_help
pub const CTA_HELP_NAME: u16 = 1;
pub const CTA_HELP_INFO: u16 = 2;

// ---- enum ctattr_expect ----------------------------------------------------------------------

pub const CTA_EXPECT_MASTER: u16 = 1;
pub const CTA_EXPECT_TUPLE: u16 = 2;
pub const CTA_EXPECT_MASK: u16 = 3;
pub const CTA_EXPECT_TIMEOUT: u16 = 4;
pub const CTA_EXPECT_ID: u16 = 5;
pub const CTA_EXPECT_HELP_NAME: u16 = 6;
pub const CTA_EXPECT_ZONE: u16 = 7;
pub const CTA_EXPECT_FLAGS: u16 = 8;
pub const CTA_EXPECT_CLASS: u16 = 9;
pub const CTA_EXPECT_NAT: u16 = 10;
pub const CTA_EXPECT_FN: u16 = 11;
pub const CTA_EXPECT_NAT_DIR: u16 = 1;
pub const CTA_EXPECT_NAT_TUPLE: u16 = 2;

/// Expectation flags (`NF_CT_EXPECT_*`).
pub const NF_CT_EXPECT_PERMANENT: u32 = 0x1;
pub const NF_CT_EXPECT_INACTIVE: u32 = 0x2;
pub const NF_CT_EXPECT_USERSPACE: u32 = 0x4;

// ---- status bits (enum ip_conntrack_status) ------------------------------------------------

pub const IPS_EXPECTED: u32 = 0x1;
pub const IPS_SEEN_REPLY: u32 = 0x2;
pub const IPS_ASSURED: u32 = 0x4;
pub const IPS_CONFIRMED: u32 = 0x8;
pub const IPS_SRC_NAT: u32 = 0x10;
pub const IPS_DST_NAT: u32 = 0x20;
pub const IPS_NAT_MASK: u32 = IPS_SRC_NAT | IPS_DST_NAT;
pub const IPS_SEQ_ADJUST: u32 = 0x40;
pub const IPS_SRC_NAT_DONE: u32 = 0x80;
pub const IPS_DST_NAT_DONE: u32 = 0x100;
pub const IPS_DYING: u32 = 0x200;
pub const IPS_FIXED_TIMEOUT: u32 = 0x400;
pub const IPS_TEMPLATE: u32 = 0x800;
pub const IPS_UNTRACKED: u32 = 0x1000;
pub const IPS_HELPER: u32 = 0x2000;
pub const IPS_OFFLOAD: u32 = 0x4000;
pub const IPS_HW_OFFLOAD: u32 = 0x8000;

// ---- TCP (nf_conntrack_tcp.h, enum tcp_conntrack) ------------------------------------------

pub const TCP_CONNTRACK_NONE: u8 = 0;
pub const TCP_CONNTRACK_SYN_SENT: u8 = 1;
pub const TCP_CONNTRACK_SYN_RECV: u8 = 2;
pub const TCP_CONNTRACK_ESTABLISHED: u8 = 3;
pub const TCP_CONNTRACK_FIN_WAIT: u8 = 4;
pub const TCP_CONNTRACK_CLOSE_WAIT: u8 = 5;
pub const TCP_CONNTRACK_LAST_ACK: u8 = 6;
pub const TCP_CONNTRACK_TIME_WAIT: u8 = 7;
pub const TCP_CONNTRACK_CLOSE: u8 = 8;
pub const TCP_CONNTRACK_SYN_SENT2: u8 = 9;

pub const IP_CT_TCP_FLAG_WINDOW_SCALE: u8 = 0x01;
pub const IP_CT_TCP_FLAG_SACK_PERM: u8 = 0x02;
pub const IP_CT_TCP_FLAG_CLOSE_INIT: u8 = 0x04;
pub const IP_CT_TCP_FLAG_BE_LIBERAL: u8 = 0x08;
pub const IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED: u8 = 0x10;
pub const IP_CT_TCP_FLAG_MAXACK_SET: u8 = 0x20;

// ---- SCTP (nf_conntrack_sctp.h, enum sctp_conntrack) ---------------------------------------

pub const SCTP_CONNTRACK_NONE: u8 = 0;
pub const SCTP_CONNTRACK_CLOSED: u8 = 1;
pub const SCTP_CONNTRACK_COOKIE_WAIT: u8 = 2;
pub const SCTP_CONNTRACK_COOKIE_ECHOED: u8 = 3;
pub const SCTP_CONNTRACK_ESTABLISHED: u8 = 4;
pub const SCTP_CONNTRACK_SHUTDOWN_SENT: u8 = 5;
pub const SCTP_CONNTRACK_SHUTDOWN_RECD: u8 = 6;
pub const SCTP_CONNTRACK_SHUTDOWN_ACK_SENT: u8 = 7;
pub const SCTP_CONNTRACK_HEARTBEAT_SENT: u8 = 8;

// ---- address families and L4 protocol numbers used to pick tuple attributes -----------------

pub const AF_UNSPEC: u8 = 0;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_DCCP: u8 = 33;
pub const IPPROTO_GRE: u8 = 47;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_SCTP: u8 = 132;
pub const IPPROTO_UDPLITE: u8 = 136;
