//! The control-socket server: an accept loop on its own thread.
//!
//! Behaviour kept from the C daemon (reference control-and-cli.md §1):
//! * any file at the path is unlinked before `bind` (the lock file, not the socket, is what
//!   keeps two daemons apart), the socket is made mode 0600, and it is unlinked on shutdown;
//! * one request per connection: four bytes in, text out, close;
//! * a connection closed before any byte arrives counts as "local read failed" and gets no
//!   reply;
//! * a code the daemon does not define gets no reply (0 bytes, connection closed) and no log
//!   line. Observed on 1.4.7: its "local unknown request" line stays 0 for such codes, so
//!   [`ServerStats::unknown_request`] is ours, for diagnostics; the daemon decides what to
//!   print there.
//!
//! One deliberate difference: the C daemon does a single `read` into an uninitialised
//! `int`, so a 2-byte request is served with whatever the other two bytes were (observed:
//! `15 00` + EOF was answered as STATS). We wait up to the read timeout for all four bytes
//! and treat fewer as a failed read: no real client splits its request, and serving
//! garbage is not a behaviour worth copying.
//!
//! Where we differ on purpose: the C daemon reads the request inside its single event loop,
//! so a client that connects and never writes blocks the whole daemon. Here every connection
//! runs on its own short-lived thread with a read timeout, at most
//! [`ServerOptions::max_connections`] at a time; the accept thread waits for a free slot
//! while the kernel's listen backlog holds the rest. A silent client costs one slot for
//! [`ServerOptions::read_timeout`], and a flood of clients is served in turn.
//!
//! The listen backlog is whatever std's `UnixListener::bind` asks for (at least 128 on
//! Linux), not the C daemon's 100: std offers no knob without `unsafe`, and a longer queue
//! only means fewer refused clients.

use std::fs;
use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::proto::{self, ProtoError, REQUEST_LEN, RequestCode};

/// What the daemon does with a request. Implemented by the daemon, one per process.
///
/// `handle` runs on a connection thread; several may run at once. It writes the reply text
/// to `out` (buffered; flushed by the server) and returns when the request is done. A
/// blocking request such as a commit (`-c`) returns only when the commit has finished, which
/// is what makes `conntrackd -c` synchronous for keepalived scripts. Requests that the
/// current mode does not serve should write nothing and return `Ok(())`, as the C daemon
/// does. An `Err` is logged and the connection closed; it never stops the server.
pub trait CtlHandler: Send + Sync {
    /// Serves one request that [`RequestCode::is_known`].
    fn handle(&self, code: RequestCode, out: &mut dyn Write) -> io::Result<()>;
}

/// Tunables of [`CtlServer`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Socket file mode; the C daemon's `umask 0177` gives 0600.
    pub mode: u32,
    /// How long a client may take to send its four bytes.
    pub read_timeout: Duration,
    /// How long a write to a client that stopped reading may block before the reply is
    /// abandoned; generous, because `conntrackd -i | less` legitimately stalls.
    pub write_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            mode: 0o600,
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(60),
            max_connections: 32,
        }
    }
}

/// Counters for the "runtime stats" block of `-s runtime`.
#[derive(Debug, Default)]
pub struct ServerStats {
    accepted: AtomicU64,
    read_failed: AtomicU64,
    unknown_request: AtomicU64,
}

impl ServerStats {
    /// Connections accepted.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Requests that did not arrive whole ("local read failed" in the C daemon, which
    /// counts the connections that sent nothing).
    pub fn read_failed(&self) -> u64 {
        self.read_failed.load(Ordering::Relaxed)
    }

    /// Requests with a code the daemon does not define (see the module doc: the C daemon
    /// leaves its "local unknown request" line at 0 for these).
    pub fn unknown_request(&self) -> u64 {
        self.unknown_request.load(Ordering::Relaxed)
    }
}

/// A bound control socket, not yet serving.
#[derive(Debug)]
pub struct CtlServer {
    listener: UnixListener,
    path: PathBuf,
    // (dev, ino) of the socket file we created: shutdown unlinks the path only while it is
    // still ours, never a successor daemon's.
    id: (u64, u64),
    opts: ServerOptions,
}

impl CtlServer {
    /// [`Self::bind_with`] with the default options.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::bind_with(path, ServerOptions::default())
    }

    /// Unlinks whatever is at `path` (as the C daemon does), binds, listens and sets the
    /// file mode.
    pub fn bind_with(path: impl AsRef<Path>, opts: ServerOptions) -> io::Result<Self> {
        let path = path.as_ref().to_owned();
        match fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(opts.mode))?;
        let meta = fs::symlink_metadata(&path)?;
        Ok(Self {
            listener,
            path,
            id: (meta.dev(), meta.ino()),
            opts,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts the accept thread; requests go to `handler` until the returned handle is shut
    /// down or dropped.
    pub fn serve(self, handler: Arc<dyn CtlHandler>) -> io::Result<ServerHandle> {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            active: Mutex::new(0),
            freed: Condvar::new(),
            stats: ServerStats::default(),
            opts: self.opts,
        });
        let listener = self.listener;
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("ctl-accept".into())
                .spawn(move || accept_loop(&listener, &shared, &handler))?
        };
        Ok(ServerHandle {
            shared,
            thread: Some(thread),
            path: self.path,
            id: self.id,
        })
    }
}

/// The running server. Dropping it stops the accept thread and unlinks the socket.
#[derive(Debug)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
    id: (u64, u64),
}

impl ServerHandle {
    /// The counters for `-s runtime`.
    pub fn stats(&self) -> &ServerStats {
        &self.shared.stats
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, waits for the accept thread and unlinks the socket. Connections
    /// already being served finish on their own threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.freed.notify_all();
        // `accept` cannot be interrupted with std alone; a connection of our own wakes it.
        match UnixStream::connect(&self.path) {
            Ok(_) => {
                let _ = thread.join();
            }
            Err(e) => {
                // The path was removed or replaced under us: the thread stays blocked in
                // accept until the process exits. Joining would hang, so leave it.
                tracing::warn!(path = %self.path.display(), error = %e,
                    "cannot wake the control accept thread");
            }
        }
        if let Ok(meta) = fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.id
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    active: Mutex<usize>,
    freed: Condvar,
    stats: ServerStats,
    opts: ServerOptions,
}

impl Shared {
    /// Waits for a connection slot; `false` when the server is stopping.
    fn take_slot(&self) -> bool {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        while *active >= self.opts.max_connections.max(1) {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            active = self
                .freed
                .wait_timeout(active, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *active += 1;
        true
    }

    fn release_slot(&self) {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        *active = active.saturating_sub(1);
        self.freed.notify_one();
    }
}

/// Gives a slot back even when the handler panics.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release_slot();
    }
}

fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>, handler: &Arc<dyn CtlHandler>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                // EMFILE and friends repeat at once; don't spin on them.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
        if !shared.take_slot() {
            break;
        }
        let slot = Slot(Arc::clone(shared));
        let handler = Arc::clone(handler);
        let spawned = thread::Builder::new()
            .name("ctl-conn".into())
            .spawn(move || {
                let slot = slot;
                serve_one(stream, &slot.0, handler.as_ref());
            });
        if let Err(e) = spawned {
            // The closure (stream and slot) was dropped with the error: the client sees
            // EOF, the slot is free again.
            tracing::warn!(error = %e, "cannot spawn a control connection thread");
        }
    }
    tracing::debug!("control accept loop stopped");
}

/// Reads one request and answers it.
fn serve_one(mut stream: UnixStream, shared: &Shared, handler: &dyn CtlHandler) {
    let opts = &shared.opts;
    let _ = stream.set_read_timeout(Some(opts.read_timeout));
    let _ = stream.set_write_timeout(Some(opts.write_timeout));
    let mut buf = [0u8; REQUEST_LEN];
    let len = read_request(&mut stream, &mut buf);
    let code = match proto::decode(&buf[..len]) {
        Ok(code) => code,
        Err(ProtoError::Unknown(code)) => {
            shared.stats.unknown_request.fetch_add(1, Ordering::Relaxed);
            // The C daemon logs nothing here; a log line per bogus local request would let
            // any local process fill the log.
            tracing::debug!(code = code.0, "unknown control request");
            return;
        }
        Err(e) => {
            shared.stats.read_failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "control request read failed");
            return;
        }
    };
    tracing::debug!(?code, "control request");
    let mut out = BufWriter::new(&stream);
    let res = handler.handle(code, &mut out).and_then(|()| out.flush());
    drop(out);
    if let Err(e) = res {
        tracing::debug!(?code, error = %e, "control reply not delivered");
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// Reads up to four bytes, stopping at EOF, an error or the read timeout; returns how many
/// arrived. A peer may legally split the int over several writes.
fn read_request(stream: &mut UnixStream, buf: &mut [u8; REQUEST_LEN]) -> usize {
    let mut len = 0;
    while len < REQUEST_LEN {
        match stream.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    struct Echo;

    impl CtlHandler for Echo {
        fn handle(&self, code: RequestCode, out: &mut dyn Write) -> io::Result<()> {
            writeln!(out, "code {}", code.0)
        }
    }

    fn ask(path: &Path, bytes: &[u8]) -> Vec<u8> {
        let mut s = UnixStream::connect(path).unwrap();
        s.write_all(bytes).unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).unwrap();
        reply
    }

    fn temp_sock(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ctd-srv-{}-{tag}", std::process::id()))
    }

    struct Panicky;

    impl CtlHandler for Panicky {
        fn handle(&self, code: RequestCode, out: &mut dyn Write) -> io::Result<()> {
            if code == RequestCode::KILL {
                panic!("handler bug");
            }
            writeln!(out, "ok")
        }
    }

    #[test]
    fn test_handler_panic_is_contained() {
        let path = temp_sock("panic");
        let opts = ServerOptions {
            max_connections: 1,
            ..Default::default()
        };
        let handle = CtlServer::bind_with(&path, opts)
            .unwrap()
            .serve(Arc::new(Panicky))
            .unwrap();
        // The panicking connection is closed without a reply, and its slot (the only one)
        // comes back.
        assert_eq!(ask(&path, &20i32.to_ne_bytes()), b"");
        assert_eq!(ask(&path, &21i32.to_ne_bytes()), b"ok\n");
        assert_eq!(ask(&path, &20i32.to_ne_bytes()), b"");
        assert_eq!(ask(&path, &21i32.to_ne_bytes()), b"ok\n");
        drop(handle);
        assert!(!path.exists());
    }

    #[test]
    fn test_serve_and_shutdown() {
        let path = temp_sock("basic");
        // A stale file is replaced, as the C daemon does.
        fs::write(&path, b"stale").unwrap();
        let server = CtlServer::bind(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let handle = server.serve(Arc::new(Echo)).unwrap();
        assert_eq!(ask(&path, &21i32.to_ne_bytes()), b"code 21\n");
        // Split int.
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(&[29]).unwrap();
        thread::sleep(Duration::from_millis(20));
        s.write_all(&[0, 0, 0]).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "code 29\n");
        // Unknown code and short request: nothing.
        assert_eq!(ask(&path, &99i32.to_ne_bytes()), b"");
        assert_eq!(ask(&path, &[21, 0]), b"");
        assert_eq!(handle.stats().unknown_request(), 1);
        assert_eq!(handle.stats().read_failed(), 1);
        handle.shutdown();
        assert!(!path.exists());
    }
}
