//! FTP-like control traffic that makes the kernel FTP helper create an expectation.
//!
//! The kernel helper only parses the control connection, so a few lines are enough: the
//! server greets (`220`), the client asks `PASV` (IPv4) or `EPSV` (IPv6), and the server's
//! `227 … (a,b,c,d,p1,p2)` / `229 … (|||port|)` reply makes every namespace whose conntrack
//! has the helper attached to this flow (see `enable_conntrack_with_ftp`) expect a data
//! connection from the client to `server:port`. The expectation lives only as long as its
//! master connection, so [`FtpSession`] keeps the control connection open until dropped.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::ct::{exp_list, field};
use super::netns::NetNs;

/// The FTP control port; the helper rule in `enable_conntrack_with_ftp` matches it.
pub(crate) const FTP_PORT: u16 = 21;

/// How long any single step (accept, connect, one reply) may take before the test fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// An open FTP control connection whose passive-mode reply has been exchanged; closing it
/// (drop) ends the server thread and lets the kernel drop the expectation.
#[derive(Debug)]
pub(crate) struct FtpSession {
    control: Option<TcpStream>,
    server: Option<JoinHandle<Result<(), String>>>,
    reply: String,
    client_addr: SocketAddr,
    server_addr: SocketAddr,
    data_port: u16,
}

/// Opens a control connection from `client` to `server_ip:21` in `server` (the two
/// namespaces must be routed to each other, e.g. by a `Veth`) and has the server announce a
/// passive data port `data_port`. Returns once the client has read the reply, so the
/// expectation already exists in every namespace that tracks the flow with the FTP helper.
///
/// `client` and `server` may be the same namespace (traffic over `lo` or a local address).
pub(crate) fn make_expectation(
    client: &NetNs,
    server: &NetNs,
    server_ip: IpAddr,
    data_port: u16,
) -> FtpSession {
    let server_addr = SocketAddr::new(server_ip, FTP_PORT);
    let listener = server
        .run_in(|| TcpListener::bind(server_addr))
        .unwrap_or_else(|e| panic!("bind {server_addr} in {}: {e}", server.name()));
    let handle = thread::spawn(move || serve(listener, data_port));

    let control = client
        .run_in(|| TcpStream::connect_timeout(&server_addr, STEP_TIMEOUT))
        .unwrap_or_else(|e| panic!("connect {server_addr} from {}: {e}", client.name()));
    let client_addr = control
        .local_addr()
        .expect("local address of control connection");
    let mut session = FtpSession {
        control: Some(control),
        server: Some(handle),
        reply: String::new(),
        client_addr,
        server_addr,
        data_port,
    };
    let greeting = session.read_line();
    assert!(greeting.starts_with("220"), "bad greeting {greeting:?}");
    let command = if server_ip.is_ipv4() {
        "PASV\r\n"
    } else {
        "EPSV\r\n"
    };
    session.write(command);
    session.reply = session.read_line();
    assert!(
        session.reply.starts_with("227") || session.reply.starts_with("229"),
        "bad reply to {command:?}: {:?}",
        session.reply
    );
    session
}

impl FtpSession {
    /// The server's passive-mode reply line, e.g. `227 Entering Passive Mode
    /// (10,231,1,2,195,80)`.
    pub(crate) fn reply(&self) -> &str {
        &self.reply
    }

    /// The client's end of the control connection (the master's original source).
    pub(crate) fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// The server's end of the control connection (`server_ip:21`).
    pub(crate) fn server_addr(&self) -> SocketAddr {
        self.server_addr
    }

    /// The announced data port (the expectation's destination port).
    pub(crate) fn data_port(&self) -> u16 {
        self.data_port
    }

    /// The line of `conntrack -L expect` in `ns` that this session created, if any: the one
    /// whose destination port is the data port and whose master source port is the client's.
    pub(crate) fn expectation(&self, ns: &NetNs) -> Option<String> {
        let dport = self.data_port.to_string();
        let master_sport = self.client_addr.port().to_string();
        exp_list(ns).into_iter().find(|l| {
            field(l, "dport") == Some(dport.as_str())
                && master_field(l, "sport") == Some(master_sport.as_str())
        })
    }

    /// Like [`Self::expectation`] but panics with the whole expectation table when absent.
    pub(crate) fn expect_expectation(&self, ns: &NetNs) -> String {
        self.expectation(ns).unwrap_or_else(|| {
            panic!(
                "no expectation for port {} in {}; table: {:?}",
                self.data_port,
                ns.name(),
                exp_list(ns)
            )
        })
    }

    fn write(&mut self, line: &str) {
        let stream = self.control.as_mut().expect("control connection open");
        stream
            .write_all(line.as_bytes())
            .expect("write to FTP server");
    }

    fn read_line(&mut self) -> String {
        let stream = self.control.as_ref().expect("control connection open");
        stream
            .set_read_timeout(Some(STEP_TIMEOUT))
            .expect("set read timeout");
        // Byte-wise so no read-ahead is lost between calls; the lines are tiny.
        let mut reader = BufReader::with_capacity(1, stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("read from FTP server");
        line.trim_end().to_owned()
    }
}

impl Drop for FtpSession {
    fn drop(&mut self) {
        if let Some(stream) = self.control.take() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if let Some(handle) = self.server.take() {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("FTP server thread: {e}"),
                Err(_) => eprintln!("FTP server thread panicked"),
            }
        }
    }
}

/// `key=value` after the `master-src=` token of an expectation line (the master tuple).
fn master_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let master = &line[line.find("master-src=")?..];
    field(master, key)
}

/// The server side: one client, greeting, one passive-mode reply, then wait for EOF.
/// Errors are returned (not panics) because nobody may be joining this thread yet.
fn serve(listener: TcpListener, data_port: u16) -> Result<(), String> {
    // Non-blocking accept with a deadline, so a client that never comes cannot hang Drop.
    listener
        .set_nonblocking(true)
        .map_err(e("listener nonblocking"))?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let (mut stream, _) = loop {
        match listener.accept() {
            Ok(conn) => break conn,
            Err(err) if err.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(err) => return Err(format!("accept: {err}")),
        }
    };
    stream
        .set_nonblocking(false)
        .map_err(e("stream blocking"))?;
    let server_ip = stream.local_addr().map_err(e("local_addr"))?.ip();
    stream
        .write_all(b"220 ctd test ftp\r\n")
        .map_err(e("greeting"))?;
    let mut reader = BufReader::new(stream.try_clone().map_err(e("clone"))?);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(e("read command"))?;
    let reply = match (line.trim_end(), server_ip) {
        // The helper only records the expectation if the address in the reply is the
        // server's own address on this connection.
        ("PASV", IpAddr::V4(ip)) => {
            let [a, b, c, d] = ip.octets();
            let (p1, p2) = (data_port >> 8, data_port & 0xff);
            format!("227 Entering Passive Mode ({a},{b},{c},{d},{p1},{p2})\r\n")
        }
        ("EPSV", _) => format!("229 Entering Extended Passive Mode (|||{data_port}|)\r\n"),
        (other, _) => format!("500 unexpected {other:?}\r\n"),
    };
    stream.write_all(reply.as_bytes()).map_err(e("reply"))?;
    // Hold the connection (and so the expectation) until the client closes it.
    line.clear();
    while reader.read_line(&mut line).map_err(e("read until EOF"))? > 0 {
        line.clear();
    }
    Ok(())
}

/// Maps an I/O error to text naming the step that failed.
fn e(what: &'static str) -> impl Fn(std::io::Error) -> String {
    move |err| format!("{what}: {err}")
}
