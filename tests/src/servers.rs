//! Small real servers for tests and the demo: a TCP server that answers each connection with
//! its name (and echoes what it read), a UDP server that answers each datagram with its name,
//! and client helpers that ask the VIP and return which real server answered.

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use crate::netns::Netns;

pub const TIMEOUT: Duration = Duration::from_secs(3);

/// A TCP server answering everything it reads with its name and the data, and a UDP
/// server answering each datagram with its name. Stopped on drop.
pub struct Backend {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Backend {
    pub fn start(ns: &Netns, name: String, bind: SocketAddr) -> Backend {
        let stop = Arc::new(AtomicBool::new(false));
        let (tcp, udp) = ns
            .run(move || {
                let tcp = TcpListener::bind(bind).unwrap();
                tcp.set_nonblocking(true).unwrap();
                let udp = UdpSocket::bind(bind).unwrap();
                udp.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                (tcp, udp)
            })
            .unwrap();
        let (n1, s1) = (name.clone(), stop.clone());
        let t1 = std::thread::spawn(move || {
            while !s1.load(Ordering::Relaxed) {
                match tcp.accept() {
                    Ok((mut c, _)) => {
                        let n = n1.clone();
                        std::thread::spawn(move || {
                            // Answer every read until the client closes: connections can be
                            // held open and used again (long-lived flows).
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
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        let (n2, s2) = (name, stop.clone());
        let t2 = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !s2.load(Ordering::Relaxed) {
                if let Ok((_, from)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(n2.as_bytes(), from);
                }
            }
        });
        Backend { stop, threads: vec![t1, t2] }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
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

pub fn udp_ask(client: &Netns, to: SocketAddr) -> String {
    client
        .run(move || {
            let bind: SocketAddr = if to.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
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
