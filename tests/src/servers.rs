//! Small real servers for tests and the demo: a TCP server that answers each connection with
//! its name (and echoes what it read), a UDP server that answers each datagram with its name,
//! a plain TCP echo for bulk transfers, and client helpers that ask the VIP and return which
//! real server answered (or whether a transfer came back whole).

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    addrs::{backend4, backend6},
    netns::{LbTopology, Netns},
};

pub const TIMEOUT: Duration = Duration::from_secs(3);

/// A TCP server answering everything it reads with its name and the data, and a UDP
/// server answering each datagram with its name. Stopped on drop.
pub struct Backend {
    _tcp: Acceptor,
    udp: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
    udp_thread: Option<JoinHandle<()>>,
}

impl Backend {
    pub fn start(ns: &Netns, name: String, bind: SocketAddr) -> Backend {
        let (tcp, udp) = ns.run(move || (TcpListener::bind(bind).unwrap(), UdpSocket::bind(bind).unwrap())).unwrap();
        let n1 = name.clone();
        let tcp = Acceptor::spawn(tcp, move |mut c| {
            let n = n1.clone();
            std::thread::spawn(move || {
                // Answer every read until the client closes: connections can be held open
                // and used again (long-lived flows).
                let mut buf = [0u8; 64];
                while let Ok(got) = c.read(&mut buf) {
                    if got == 0 {
                        break;
                    }
                    let reply = format!("{n}:{}", String::from_utf8_lossy(&buf[..got]));
                    if c.write_all(reply.as_bytes()).is_err() {
                        break;
                    }
                }
            });
        });
        let (udp, stop) = (Arc::new(udp), Arc::new(AtomicBool::new(false)));
        let (u, s) = (udp.clone(), stop.clone());
        // Blocked in recv until a datagram comes or drop shuts the socket down.
        let udp_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !s.load(Ordering::Relaxed) {
                if let Ok((_, from)) = u.recv_from(&mut buf)
                    && !s.load(Ordering::Relaxed)
                {
                    let _ = u.send_to(name.as_bytes(), from);
                }
            }
        });
        Backend { _tcp: tcp, udp, stop, udp_thread: Some(udp_thread) }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the blocked recv (it returns at once from then on).
        let _ = socket2::SockRef::from(&*self.udp).shutdown(std::net::Shutdown::Read);
        if let Some(t) = self.udp_thread.take() {
            let _ = t.join();
        }
    }
}

/// A listening socket served by a thread blocked in accept(2), `on` called with each
/// connection; stopped on drop by shutting the socket down, which wakes the accept. No
/// polling: sixty idle servers polling every 5 ms kept the 6.1 VM's emulated CPUs busy.
struct Acceptor {
    listener: Arc<TcpListener>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    fn spawn(listener: TcpListener, mut on: impl FnMut(TcpStream) + Send + 'static) -> Acceptor {
        let listener = Arc::new(listener);
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (listener.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) if !s.load(Ordering::Relaxed) => on(c),
                    Ok(_) => {}
                    // Shut down (stopping), or out of descriptors for a moment: no busy loop.
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Acceptor { listener, stop, thread: Some(thread) }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = socket2::SockRef::from(&*self.listener).shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A [`Backend`] named `be<i>` in each of the topology's backend namespaces, on its own IPv4
/// and IPv6 address at `port`.
pub fn backends(topo: &LbTopology, port: u16) -> Vec<Backend> {
    topo.backends
        .iter()
        .enumerate()
        .flat_map(|(i, b)| {
            [
                Backend::start(b, format!("be{i}"), (backend4(i), port).into()),
                Backend::start(b, format!("be{i}"), (backend6(i), port).into()),
            ]
        })
        .collect()
}

/// A [`Backend`] named `be<i>` in each backend namespace, at `bind(i)` only (one family, or
/// the VIP for direct return).
pub fn backends_at(topo: &LbTopology, bind: impl Fn(usize) -> SocketAddr) -> Vec<Backend> {
    topo.backends.iter().enumerate().map(|(i, b)| Backend::start(b, format!("be{i}"), bind(i))).collect()
}

/// One TCP exchange with `to` from the client namespace: which real server answered.
pub fn tcp_ask(client: &Netns, to: SocketAddr, from_port: Option<u16>) -> String {
    client
        .run(move || {
            let s = match from_port {
                Some(p) => {
                    let sock =
                        socket2::Socket::new(socket2::Domain::for_address(to), socket2::Type::STREAM, None).unwrap();
                    sock.set_reuse_address(true).unwrap();
                    let any: SocketAddr = if to.is_ipv4() { ([0, 0, 0, 0], p).into() } else { ([0u16; 8], p).into() };
                    sock.bind(&any.into()).unwrap();
                    sock.connect_timeout(&to.into(), TIMEOUT).unwrap();
                    TcpStream::from(sock)
                }
                None => TcpStream::connect_timeout(&to, TIMEOUT).unwrap_or_else(|e| panic!("connect {to}: {e}")),
            };
            let mut s = s;
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            s.write_all(b"ping").unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap_or_else(|e| panic!("read from {to}: {e}"));
            let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
            assert!(reply.ends_with(":ping"), "echo lost: {reply:?}");
            reply.trim_end_matches(":ping").to_string()
        })
        .unwrap()
}

/// Opens a connection through the VIP and keeps it: which real server holds it, and the
/// connection (its `local_addr` is the flow's client end).
pub fn tcp_hold(client: &Netns, to: SocketAddr) -> (String, TcpStream) {
    client
        .run(move || {
            let mut s = TcpStream::connect_timeout(&to, TIMEOUT).unwrap_or_else(|e| panic!("connect {to}: {e}"));
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            s.write_all(b"hold").unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap_or_else(|e| panic!("read from {to}: {e}"));
            (String::from_utf8_lossy(&buf[..n]).trim_end_matches(":hold").to_string(), s)
        })
        .unwrap()
}

/// One more exchange on a connection `tcp_hold` opened: which real server answered.
pub fn tcp_again(conn: &mut TcpStream) -> String {
    conn.write_all(b"again").unwrap();
    let mut buf = [0u8; 64];
    let n = conn.read(&mut buf).unwrap_or_else(|e| panic!("a held connection broke: {e}"));
    String::from_utf8_lossy(&buf[..n]).trim_end_matches(":again").to_string()
}

pub fn udp_ask(client: &Netns, to: SocketAddr) -> String {
    udp_ask_from(client, to, 0)
}

/// `udp_ask` from a given source port (0: any): distinct ports make distinct flows for sure.
pub fn udp_ask_from(client: &Netns, to: SocketAddr, port: u16) -> String {
    client
        .run(move || {
            let bind: SocketAddr = if to.is_ipv4() { ([0, 0, 0, 0], port).into() } else { ([0u16; 8], port).into() };
            let s = UdpSocket::bind(bind).unwrap();
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            s.send_to(b"q", to).unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = s.recv_from(&mut buf).unwrap_or_else(|e| panic!("no UDP answer from {to}: {e}"));
            assert_eq!(from, to, "the answer must come from the VIP");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
        .unwrap()
}

pub fn spread(names: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for n in names {
        *m.entry(n.clone()).or_default() += 1;
    }
    m
}

/// Python's http.server in a namespace (tests/fixtures/httpd.py): `/health` answers "ok"
/// with the status in `status_file` (200 without it), other paths answer `name`. HTTPS with
/// `tls` = (certificate, key) PEM files. Killed on drop.
pub struct HttpServer {
    child: std::process::Child,
}

impl HttpServer {
    pub fn start(
        ns: &Netns,
        name: &str,
        bind: SocketAddr,
        tls: Option<(&std::path::Path, &std::path::Path)>,
        status_file: Option<&std::path::Path>,
    ) -> anyhow::Result<HttpServer> {
        Self::start_with(ns, name, bind, tls, status_file, None)
    }

    /// HTTPS that answers nothing without a client certificate `client_ca` signed.
    pub fn start_requiring_client_cert(
        ns: &Netns,
        name: &str,
        bind: SocketAddr,
        tls: (&std::path::Path, &std::path::Path),
        client_ca: &std::path::Path,
    ) -> anyhow::Result<HttpServer> {
        Self::start_with(ns, name, bind, Some(tls), None, Some(client_ca))
    }

    fn start_with(
        ns: &Netns,
        name: &str,
        bind: SocketAddr,
        tls: Option<(&std::path::Path, &std::path::Path)>,
        status_file: Option<&std::path::Path>,
        client_ca: Option<&std::path::Path>,
    ) -> anyhow::Result<HttpServer> {
        use std::io::BufRead;
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/httpd.py");
        let mut cmd = ns.command("python3");
        cmd.arg(script)
            .args(["--bind", &bind.ip().to_string(), "--port", &bind.port().to_string(), "--name", name])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        if let Some((cert, key)) = tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        if let Some(f) = status_file {
            cmd.arg("--status-file").arg(f);
        }
        if let Some(ca) = client_ca {
            cmd.arg("--tls-client-ca").arg(ca);
        }
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        if !line.starts_with("listening") {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("httpd {name} on {bind} did not start");
        }
        Ok(HttpServer { child })
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP GET of `path` through `to` from the client namespace, on a new connection:
/// the body (the backend's name) or what went wrong.
pub fn http_ask(client: &Netns, to: SocketAddr, path: &str) -> Result<String, String> {
    let path = path.to_string();
    client
        .run(move || {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(1)).map_err(|e| format!("connect: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
            s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {to}\r\n\r\n").as_bytes()).map_err(|e| e.to_string())?;
            let mut reply = Vec::new();
            s.read_to_end(&mut reply).map_err(|e| format!("read: {e}"))?;
            let text = String::from_utf8_lossy(&reply).into_owned();
            let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no HTTP reply: {text:?}"))?;
            if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
                return Err(format!("status: {}", head.lines().next().unwrap_or("")));
            }
            Ok(body.to_string())
        })
        .unwrap_or_else(|e| Err(e.to_string()))
}

/// A minimal SMTP relay in a namespace that accepts every message and keeps its DATA.
pub struct SmtpSink {
    _acceptor: Acceptor,
    messages: Arc<std::sync::Mutex<Vec<String>>>,
}

impl SmtpSink {
    pub fn start(ns: &Netns, bind: SocketAddr) -> anyhow::Result<SmtpSink> {
        let l = ns.run(move || TcpListener::bind(bind))??;
        let messages = Arc::new(std::sync::Mutex::new(Vec::new()));
        let m = messages.clone();
        let acceptor = Acceptor::spawn(l, move |c| {
            if let Some(data) = smtp_session(c)
                && let Ok(mut v) = m.lock()
            {
                v.push(data);
            }
        });
        Ok(SmtpSink { _acceptor: acceptor, messages })
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Speaks RFC 5321's server side for one connection; returns the message it received.
fn smtp_session(c: TcpStream) -> Option<String> {
    use std::io::{BufRead, BufReader};
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut w = c.try_clone().ok()?;
    let mut r = BufReader::new(c);
    w.write_all(b"220 sink ESMTP\r\n").ok()?;
    let (mut data, mut in_data, mut got) = (String::new(), false, None);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return got;
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if in_data {
            if l == "." {
                in_data = false;
                got = Some(std::mem::take(&mut data));
                w.write_all(b"250 queued\r\n").ok()?;
            } else {
                data.push_str(l);
                data.push('\n');
            }
            continue;
        }
        let verb = l.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => w.write_all(b"250 sink\r\n").ok()?,
            "DATA" => {
                in_data = true;
                w.write_all(b"354 go ahead\r\n").ok()?
            }
            "QUIT" => {
                let _ = w.write_all(b"221 bye\r\n");
                return got;
            }
            _ => w.write_all(b"250 ok\r\n").ok()?,
        }
    }
}

/// A TCP server that sends back everything it reads, a thread per connection, for bulk
/// transfers (`echo_transfer`). Stops accepting on drop.
pub struct Echo {
    _acceptor: Acceptor,
}

impl Echo {
    pub fn start(ns: &Netns, bind: SocketAddr) -> Echo {
        let l = ns.run(move || TcpListener::bind(bind)).unwrap().unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        let acceptor = Acceptor::spawn(l, |c| {
            std::thread::spawn(move || {
                if let Ok(mut r) = c.try_clone() {
                    let mut w = c;
                    let _ = std::io::copy(&mut r, &mut w);
                }
            });
        });
        Echo { _acceptor: acceptor }
    }
}

/// Sends `size` bytes to an `Echo` at `to` from `client` and reads them back, byte-compared:
/// how long it took, or why not every byte came back (no progress for `stall` is a failure).
pub fn echo_transfer(client: &Netns, to: SocketAddr, size: usize, stall: Duration) -> Result<Duration, String> {
    client
        .run(move || {
            let data: Vec<u8> = (0..size as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            let start = Instant::now();
            let c = TcpStream::connect_timeout(&to, stall).map_err(|e| format!("connecting: {e}"))?;
            for t in [c.set_read_timeout(Some(stall)), c.set_write_timeout(Some(stall))] {
                t.map_err(|e| e.to_string())?;
            }
            let mut w = c.try_clone().map_err(|e| e.to_string())?;
            let sent = data.clone();
            let writer = std::thread::spawn(move || w.write_all(&sent).map_err(|e| format!("sending: {e}")));
            let mut back = vec![0u8; size];
            let mut got = 0;
            while got < size {
                match (&c).read(&mut back[got..]) {
                    Ok(0) => return Err(format!("closed after {got} bytes")),
                    Ok(n) => got += n,
                    Err(e) => return Err(format!("stalled after {got} of {size} bytes: {e}")),
                }
            }
            writer.join().map_err(|_| "the writer panicked".to_string())??;
            match back.iter().zip(&data).position(|(a, b)| a != b) {
                Some(at) => Err(format!("the echo differs from byte {at}")),
                None => Ok(start.elapsed()),
            }
        })
        .map_err(|e| e.to_string())?
}

/// Polls `f` every 20 ms until it holds or `timeout` passes; the last answer.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Listeners answering TCP checks (accept and close) and HTTP checks (`200 OK`), counting
/// connections.
pub struct CheckServers {
    /// Connections accepted on the TCP ports and on the HTTP port.
    pub tcp: Arc<AtomicU64>,
    pub http: Arc<AtomicU64>,
    _acceptors: Vec<Acceptor>,
}

impl CheckServers {
    /// Listens in `ns` on every address (`0.0.0.0`): TCP checks on `tcp_ports`, HTTP checks
    /// on `http_port`.
    pub fn start(ns: &Netns, tcp_ports: std::ops::Range<u16>, http_port: u16) -> anyhow::Result<Self> {
        let (tcp, http) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        // A deep accept queue: with std's 128, bursts of checks overflow it and the dropped
        // SYNs' 1 s retransmit would be measured as checker lateness.
        let listen = |port: u16| -> anyhow::Result<TcpListener> {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            s.set_reuse_address(true)?;
            s.bind(&std::net::SocketAddr::from(([0, 0, 0, 0], port)).into())?;
            s.listen(4096)?;
            Ok(s.into())
        };
        let listeners = ns.run(move || -> anyhow::Result<Vec<(TcpListener, bool)>> {
            let mut l = Vec::new();
            for p in tcp_ports {
                l.push((listen(p)?, false));
            }
            l.push((listen(http_port)?, true));
            Ok(l)
        })??;
        // Blocking accepts (a poll loop of 100 listeners costs a core).
        let acceptors = listeners
            .into_iter()
            .map(|(listener, is_http)| {
                let count = if is_http { http.clone() } else { tcp.clone() };
                Acceptor::spawn(listener, move |mut s| {
                    count.fetch_add(1, Ordering::Relaxed);
                    if is_http {
                        // One thread per request: a slow client must not stall the rest.
                        std::thread::spawn(move || {
                            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                            let mut buf = [0u8; 1024];
                            let _ = s.read(&mut buf);
                            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
                        });
                    }
                })
            })
            .collect();
        Ok(Self { tcp, http, _acceptors: acceptors })
    }
}
