//! Fragmented UDP datagrams end to end, with the hosts' default offloads (tx checksum, TSO,
//! GSO left on): datagrams larger than the MTU, fragmented by the client's kernel, reach
//! exactly one real server whole by NAT, DR and TUN over IPv4 and IPv6, and their echoes
//! (fragmented by the real server's kernel) come back whole from the VIP. Fragments that
//! arrive before their datagram's first are held by the daemon and replayed (`lb_punt`); an
//! IPv4 packet the tunnel cannot carry is fragmented by the daemon, or, with DF set, answered
//! with "fragmentation needed".

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use etherparse::{
    EtherType, Ethernet2Header, IpFragOffset, IpNumber, Ipv4Header, Ipv6FragmentHeader, Ipv6Header, UdpHeader,
};
use lb_tests::{packets::mac_from_text, prelude::*, servers::wait_until};

const PORT: u16 = 5000;
/// Client source ports: one flow each, so rr spreads the datagrams.
const CLIENT_PORTS: [u16; 6] = [41001, 41002, 41003, 41004, 41005, 41006];
/// Payload sizes: 3 and 7 fragments on a 1500-byte link.
const SIZES: [usize; 2] = [4000, 9000];

/// lb-daemon on the topology's load balancer with `conf`.
fn lb(topo: &LbTopology, tag: &str, conf: &str) -> (TempConfig, PathBuf, Daemon) {
    daemon::on_lb(topo, &format!("frag-{tag}"), conf, &[])
}

/// The standard topology (its hosts keep their default offloads).
fn topology(backends: usize) -> LbTopology {
    LbTopology::new(backends).unwrap()
}

fn vip4() -> SocketAddr {
    SocketAddr::new(VIP4.into(), PORT)
}

fn vip6() -> SocketAddr {
    SocketAddr::new(VIP6.into(), PORT)
}

/// Datagram `id` of `len` bytes (at least 12): the id, the length, then bytes both decide.
fn payload(id: u64, len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len as u64).map(|i| ((i ^ id).wrapping_mul(0x9e37_79b9) >> 7) as u8).collect();
    p[..8].copy_from_slice(&id.to_be_bytes());
    p[8..12].copy_from_slice(&(len as u32).to_be_bytes());
    p
}

/// The id of a datagram that arrived exactly as `payload` wrote it.
fn whole(p: &[u8]) -> Option<u64> {
    let id = u64::from_be_bytes(p.get(..8)?.try_into().ok()?);
    let len = u32::from_be_bytes(p.get(8..12)?.try_into().ok()?) as usize;
    (len == p.len() && payload(id, len) == p).then_some(id)
}

/// A UDP real server that records the id of every datagram it receives whole and echoes it
/// back behind its name (8 bytes, space-padded). Stopped on drop.
struct Echo {
    name: String,
    got: Arc<Mutex<Vec<u64>>>,
    damaged: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start(ns: &Netns, name: &str, bind: SocketAddr) -> Echo {
        let sock = ns.run(move || UdpSocket::bind(bind)).unwrap().unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let (got, damaged): (Arc<Mutex<Vec<u64>>>, Arc<Mutex<u64>>) = Default::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (g, dmg, s) = (Arc::clone(&got), Arc::clone(&damaged), Arc::clone(&stop));
        let tag = format!("{name:<8}");
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                // lb-daemon primes its neighbour entries with empty datagrams.
                if n == 0 {
                    continue;
                }
                match whole(&buf[..n]) {
                    Some(id) => {
                        g.lock().unwrap().push(id);
                        let mut reply = tag.as_bytes().to_vec();
                        reply.extend_from_slice(&buf[..n]);
                        let _ = sock.send_to(&reply, from);
                    }
                    None => *dmg.lock().unwrap() += 1,
                }
            }
        });
        Echo { name: name.to_string(), got, damaged, stop, thread: Some(thread) }
    }

    fn got(&self) -> Vec<u64> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Echo servers on every backend, on the addresses `binds(i)` gives.
fn echoes(topo: &LbTopology, binds: impl Fn(usize) -> Vec<SocketAddr>) -> Vec<Echo> {
    let mut out = Vec::new();
    for (i, b) in topo.backends.iter().enumerate() {
        for a in binds(i) {
            out.push(Echo::start(b, &format!("be{i}"), a));
        }
    }
    out
}

/// Waits for the echo of datagram `id` (`len` bytes) on `sock`: the name of the real server
/// that sent it back, from `to`, whole. Echoes of earlier datagrams are skipped.
fn await_echo(sock: &UdpSocket, to: SocketAddr, id: u64, len: usize) -> Result<String, String> {
    let mut buf = vec![0u8; 65536];
    let deadline = std::time::Instant::now() + TIMEOUT;
    while std::time::Instant::now() < deadline {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                continue;
            }
            Err(e) => return Err(format!("datagram {id}: {e}")),
        };
        let Some(got) = buf.get(8..n).and_then(whole) else { return Err(format!("datagram {id}: a damaged echo")) };
        if got != id {
            continue;
        }
        if from != to {
            return Err(format!("datagram {id}: echo from {from}, not from the VIP {to}"));
        }
        if n != 8 + len {
            return Err(format!("datagram {id}: echo of {} bytes", n - 8));
        }
        return Ok(String::from_utf8_lossy(&buf[..8]).trim().to_string());
    }
    Err(format!("datagram {id} ({len} bytes): no echo within {TIMEOUT:?}"))
}

/// A UDP socket in the client's namespace's thread, bound to `port`, with a short read
/// timeout (the caller loops until its own deadline).
fn client_socket(to: SocketAddr, port: u16) -> UdpSocket {
    let any: SocketAddr = if to.is_ipv4() { ([0, 0, 0, 0], port).into() } else { ([0u16; 8], port).into() };
    let s = UdpSocket::bind(any).unwrap_or_else(|e| panic!("bind {any}: {e}"));
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    s
}

/// Sends each datagram (id, length) to `to` from the client ports in turn, each after the
/// echo of the one before: which real server echoed each, or what went wrong.
fn exchange(client: &Netns, to: SocketAddr, datagrams: &[(u64, usize)]) -> Vec<(u64, Result<String, String>)> {
    let datagrams = datagrams.to_vec();
    client
        .run(move || {
            let socks: Vec<UdpSocket> = CLIENT_PORTS.iter().map(|p| client_socket(to, *p)).collect();
            datagrams
                .iter()
                .enumerate()
                .map(|(k, &(id, len))| {
                    let s = &socks[k % socks.len()];
                    let sent = s.send_to(&payload(id, len), to).map_err(|e| format!("datagram {id}: send: {e}"));
                    (id, sent.and_then(|_| await_echo(s, to, id, len)))
                })
                .collect()
        })
        .unwrap()
}

/// Every datagram of `results` was echoed, and arrived whole at exactly one real server:
/// the one that echoed it. Returns how many real servers took part.
fn check_delivery(servers: &[Echo], results: &[(u64, Result<String, String>)]) -> usize {
    let failed: Vec<&String> = results.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{} of {} datagrams failed: {failed:#?}", failed.len(), results.len());
    let mut at: HashMap<u64, Vec<&str>> = HashMap::new();
    for s in servers {
        for id in s.got() {
            at.entry(id).or_default().push(&s.name);
        }
        assert_eq!(*s.damaged.lock().unwrap(), 0, "{} received damaged datagrams", s.name);
    }
    let mut used = std::collections::BTreeSet::new();
    for (id, r) in results {
        let echoed_by = r.as_deref().unwrap_or_default();
        assert_eq!(
            at.get(id).map(Vec::as_slice),
            Some(&[echoed_by][..]),
            "datagram {id}: received by {:?}",
            at.get(id)
        );
        used.insert(echoed_by.to_string());
    }
    used.len()
}

/// Two rounds of `SIZES` datagrams from every client port to `vip`, ids from `base`: each
/// arrives whole at one real server, and rr spreads them over both.
fn big_datagrams(topo: &LbTopology, servers: &[Echo], vip: SocketAddr, base: u64) {
    let datagrams: Vec<(u64, usize)> = (0..2 * CLIENT_PORTS.len())
        .flat_map(|k| SIZES.iter().enumerate().map(move |(j, len)| (base + (k * SIZES.len() + j) as u64, *len)))
        .collect();
    let results = exchange(&topo.client, vip, &datagrams);
    let used = check_delivery(servers, &results);
    assert_eq!(used, 2, "rr over {} flows must use both real servers ({vip})", CLIENT_PORTS.len());
}

fn global(pins: &Path) -> BTreeMap<&'static str, u64> {
    lb_daemon::dataplane::bpf::read_stats(pins).unwrap().global.0
}

/// The hand-over's counters from the daemon's state file (`punt`), once `ready` holds.
fn punt_stats(d: &Daemon, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    wait_until(Duration::from_secs(3), || {
        last = d.state().map(|s| s["punt"].clone()).unwrap_or_default();
        ready(&last)
    });
    last
}

fn n(v: &serde_json::Value, field: &str) -> u64 {
    v[field].as_u64().unwrap_or(0)
}

/// What one replay costs, from the daemon's own timing of its BPF_PROG_TEST_RUN calls.
fn print_replay_cost(what: &str, punt: &serde_json::Value) {
    let runs = n(punt, "runs");
    if runs > 0 {
        println!(
            "{what}: {runs} replays, {:.1} µs each on average, {:.1} µs at most",
            n(punt, "run_ns") as f64 / runs as f64 / 1e3,
            n(punt, "run_max_ns") as f64 / 1e3
        );
    }
}

const NAT_CONF: &str = "
virtual_server 203.0.113.10 5000 {
    lb_algo rr
    lb_kind NAT
    protocol UDP
    real_server 198.51.100.11 5000 {
    }
    real_server 198.51.100.12 5000 {
    }
}
virtual_server 2001:db8:f::10 5000 {
    lb_algo rr
    lb_kind NAT
    protocol UDP
    real_server 2001:db8:b::11 5000 {
    }
    real_server 2001:db8:b::12 5000 {
    }
}
";

fn nat_servers(topo: &LbTopology) -> Vec<Echo> {
    echoes(topo, |i| vec![SocketAddr::new(backend4(i).into(), PORT), SocketAddr::new(backend6(i).into(), PORT)])
}

/// NAT: the first fragment of each datagram is scheduled and rewritten, the later ones
/// follow it (`lb_frags`); the real server's fragmented echo gets the VIP back as source.
#[test]
fn nat_datagrams_over_the_mtu_arrive_whole_and_echoes_return_from_the_vip() {
    require_root();
    let topo = topology(2);
    let servers = nat_servers(&topo);
    let (_cfg, pins, _d) = lb(&topo, "fragnat", NAT_CONF);
    big_datagrams(&topo, &servers, vip4(), 0);
    big_datagrams(&topo, &servers, vip6(), 1000);
    let g = global(&pins);
    // 4000 bytes: 3 fragments; 9000: 7. Both ways, both families: 2 × 2 × 12 × 8 later ones.
    assert!(g["frags_followed"] >= 2 * 2 * 12 * 8, "{g:?}");
    assert!(g["reason_nat_reply"] > 0 && g["reason_fragment"] == 0, "{g:?}");
}

const DR_CONF: &str = "
virtual_server 203.0.113.10 5000 {
    lb_algo rr
    lb_kind DR
    protocol UDP
    real_server 198.51.100.11 5000 {
    }
    real_server 198.51.100.12 5000 {
    }
}
virtual_server 2001:db8:f::10 5000 {
    lb_algo rr
    lb_kind DR
    protocol UDP
    real_server 2001:db8:b::11 5000 {
    }
    real_server 2001:db8:b::12 5000 {
    }
}
";

/// Real servers of DR and TUN services answer on the VIPs (held on their lo).
fn vip_servers(topo: &LbTopology) -> Vec<Echo> {
    topo.direct_return().unwrap();
    echoes(topo, |_| vec![vip4(), vip6()])
}

/// DR: every fragment goes to the first fragment's real server's MAC; the echoes return
/// directly (through the load balancer's stack, not its XDP program).
#[test]
fn dr_datagrams_over_the_mtu_arrive_whole_at_one_real_server() {
    require_root();
    let topo = topology(2);
    let servers = vip_servers(&topo);
    let (_cfg, pins, _d) = lb(&topo, "fragdr", DR_CONF);
    big_datagrams(&topo, &servers, vip4(), 0);
    big_datagrams(&topo, &servers, vip6(), 1000);
    let g = global(&pins);
    assert!(g["frags_followed"] >= 2 * 12 * 8 && g["reason_fwd_dr"] > 0, "{g:?}");
}

const TUN_CONF: &str = "
virtual_server 203.0.113.10 5000 {
    lb_algo rr
    lb_kind TUN
    protocol UDP
    real_server 198.51.100.11 5000 {
    }
    real_server 198.51.100.12 5000 {
    }
}
virtual_server 2001:db8:f::10 5000 {
    lb_algo rr
    lb_kind TUN
    protocol UDP
    real_server 2001:db8:b::11 5000 {
    }
    real_server 2001:db8:b::12 5000 {
    }
}
";

/// TUN real servers on this kernel (no ipip module) decapsulate with `lb-daemon decap`.
fn decaps(topo: &LbTopology) -> Vec<Daemon> {
    topo.backends.iter().map(daemon::decap).collect()
}

/// The client's path MTU towards `vip` as its kernel has it (`ip route get`).
fn path_mtu(client: &Netns, vip: IpAddr) -> Option<u16> {
    let out = client.ip(&["route", "get", &vip.to_string()]).ok()?;
    let words: Vec<&str> = out.split_whitespace().collect();
    words.iter().position(|w| *w == "mtu").and_then(|i| words.get(i + 1)).and_then(|m| m.parse().ok())
}

/// TUN: the tunnel header does not fit behind a 1500-byte fragment. IPv4 fragments (DF clear)
/// are cut again by the daemon and replayed; an IPv6 sender gets "packet too big" and
/// fragments smaller from then on (the first datagram is lost, as with IPVS).
#[test]
fn tun_datagrams_over_the_mtu_arrive_whole_at_one_real_server() {
    require_root();
    let topo = topology(2);
    let servers = vip_servers(&topo);
    let _decaps = decaps(&topo);
    let (_cfg, pins, d) = lb(&topo, "fragtun", TUN_CONF);
    big_datagrams(&topo, &servers, vip4(), 0);
    // 12 datagrams of 4000 bytes (2 full-size fragments each) and 12 of 9000 (6 each): every
    // full-size fragment is handed over and cut in two.
    let g = global(&pins);
    assert_eq!(g["reason_frag_needed"], 12 * 2 + 12 * 6, "{g:?}");
    let punt = punt_stats(&d, |p| n(p, "fragments_out") >= 2 * 96);
    assert_eq!((n(&punt, "fragmented"), n(&punt, "fragments_out"), n(&punt, "refused")), (96, 192, 0), "{punt}");
    print_replay_cost("TUN, IPv4 fragments cut for the tunnel", &punt);

    // IPv6: the client learns the tunnel's MTU from the first datagrams' "packet too big".
    let learned = wait_until(Duration::from_secs(5), || {
        let _ = exchange(&topo.client, vip6(), &[(u64::MAX, 4000)]);
        path_mtu(&topo.client, vip6().ip()) == Some(1460)
    });
    assert!(learned, "the client never learned the tunnel's MTU: {:?}", path_mtu(&topo.client, vip6().ip()));
    for s in &servers {
        s.got.lock().unwrap().clear();
    }
    big_datagrams(&topo, &servers, vip6(), 1000);
}

/// The tunnel is 20 bytes short of a full-size client packet: a 1472-byte datagram (a
/// 1500-byte IPv4 packet) with DF clear is fragmented by the daemon (`reason_frag_needed`)
/// and arrives whole; with DF set the client gets "fragmentation needed" for 1480 instead.
#[test]
fn tun_fragments_a_full_size_packet_without_df_and_answers_one_with_df() {
    require_root();
    let topo = topology(2);
    let servers = vip_servers(&topo);
    let _decaps = decaps(&topo);
    let (_cfg, pins, d) = lb(&topo, "fragmtu", TUN_CONF);
    let before = global(&pins);
    let results = topo
        .client
        .run(|| {
            CLIENT_PORTS
                .iter()
                .enumerate()
                .map(|(k, port)| {
                    let s = client_socket(vip4(), *port);
                    set_pmtudisc(&s, libc::IP_PMTUDISC_DONT);
                    let id = k as u64;
                    let sent = s.send_to(&payload(id, 1472), vip4()).map_err(|e| e.to_string());
                    (id, sent.and_then(|_| await_echo(&s, vip4(), id, 1472)))
                })
                .collect::<Vec<_>>()
        })
        .unwrap();
    check_delivery(&servers, &results);
    let g = global(&pins);
    let needed = g["reason_frag_needed"] - before["reason_frag_needed"];
    assert_eq!(needed, CLIENT_PORTS.len() as u64, "each datagram was handed over once: {g:?}");
    let punt = punt_stats(&d, |p| n(p, "fragments_out") >= 2 * CLIENT_PORTS.len() as u64);
    assert_eq!((n(&punt, "fragmented"), n(&punt, "fragments_out")), (6, 12), "1456 + 24 bytes each: {punt}");
    print_replay_cost("TUN, 1472-byte datagrams cut in two", &punt);

    // DF set: the packet fits the client's link, not the tunnel. The answer lowers the
    // client's path MTU to the tunnel's (1500 less 20).
    let mtu = topo
        .client
        .run(|| {
            let s = client_socket(vip4(), 41100);
            s.connect(vip4()).unwrap();
            set_pmtudisc(&s, libc::IP_PMTUDISC_DO);
            s.send(&payload(100, 1472)).unwrap();
            let mut mtu = 0;
            wait_until(Duration::from_secs(3), || {
                mtu = ip_mtu(&s);
                mtu == 1480
            });
            mtu
        })
        .unwrap();
    assert_eq!(mtu, 1480, "the client's path MTU after \"fragmentation needed\"");
    assert!(global(&pins)["reason_too_big"] > before["reason_too_big"]);
    assert!(servers.iter().all(|s| !s.got().contains(&100)), "a DF packet too big must not be fragmented");
}

fn set_pmtudisc(s: &UdpSocket, how: libc::c_int) {
    // SAFETY: setsockopt on a valid fd with an int option.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&raw const how).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "IP_MTU_DISCOVER: {}", std::io::Error::last_os_error());
}

/// The path MTU of a connected socket (IP_MTU).
fn ip_mtu(s: &UdpSocket) -> i32 {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into an int of the given length.
    let r = unsafe { libc::getsockopt(s.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MTU, (&raw mut v).cast(), &mut len) };
    if r == 0 { v } else { -1 }
}

/// The UDP datagram `payload(id, len)` from `src`:`sport` to `dst`:`PORT`, cut by hand into IP
/// fragments of `chunk` data bytes (a multiple of 8), as Ethernet frames `src_mac` → `dst_mac`.
fn fragments(
    (src_mac, dst_mac): ([u8; 6], [u8; 6]),
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    frag_id: u32,
    (id, len): (u64, usize),
    chunk: usize,
) -> Vec<Vec<u8>> {
    let data = payload(id, len);
    let (segment, ether_type) = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let ip = Ipv4Header::new(0, 64, IpNumber::UDP, s.octets(), d.octets()).unwrap();
            let udp = UdpHeader::with_ipv4_checksum(sport, PORT, &ip, &data).unwrap();
            ([udp.to_bytes().to_vec(), data].concat(), EtherType::IPV4)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ip = Ipv6Header {
                next_header: IpNumber::UDP,
                hop_limit: 64,
                source: s.octets(),
                destination: d.octets(),
                ..Default::default()
            };
            let udp = UdpHeader::with_ipv6_checksum(sport, PORT, &ip, &data).unwrap();
            ([udp.to_bytes().to_vec(), data].concat(), EtherType::IPV6)
        }
        _ => panic!("mixed families"),
    };
    let eth = Ethernet2Header { source: src_mac, destination: dst_mac, ether_type }.to_bytes();
    let pieces: Vec<&[u8]> = segment.chunks(chunk).collect();
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let more = i + 1 < pieces.len();
            let offset = IpFragOffset::try_new((i * chunk / 8) as u16).unwrap();
            let mut frame = eth.to_vec();
            match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    let mut ip =
                        Ipv4Header::new(piece.len() as u16, 64, IpNumber::UDP, s.octets(), d.octets()).unwrap();
                    (ip.identification, ip.dont_fragment, ip.more_fragments, ip.fragment_offset) =
                        (frag_id as u16, false, more, offset);
                    ip.header_checksum = ip.calc_header_checksum();
                    frame.extend_from_slice(&ip.to_bytes());
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    let ip = Ipv6Header {
                        payload_length: (8 + piece.len()) as u16,
                        next_header: IpNumber::IPV6_FRAGMENTATION_HEADER,
                        hop_limit: 64,
                        source: s.octets(),
                        destination: d.octets(),
                        ..Default::default()
                    };
                    frame.extend_from_slice(&ip.to_bytes());
                    frame.extend_from_slice(&Ipv6FragmentHeader::new(IpNumber::UDP, offset, more, frag_id).to_bytes());
                }
                _ => unreachable!(),
            }
            frame.extend_from_slice(piece);
            frame
        })
        .collect()
}

/// Sends whole Ethernet frames out of `ifindex` (AF_PACKET), from the calling thread's
/// namespace.
fn send_frames(ifindex: u32, frames: &[&Vec<u8>]) {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; zero is a valid start.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    for f in frames {
        sll.sll_addr[..6].copy_from_slice(&f[..6]);
        // SAFETY: `f` and `sll` outlive the call; the lengths are theirs.
        let r = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                f.as_ptr().cast(),
                f.len(),
                0,
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(r, f.len() as isize, "sending a frame: {}", std::io::Error::last_os_error());
    }
}

/// A datagram whose last fragment arrives first: the program hands it to the daemon
/// (`reason_frag_held`), which replays it once the first fragment has decided; it arrives
/// whole and its echo comes back. A fragment whose first never comes is given up on after
/// 100 ms and passed to the load balancer's stack.
#[test]
fn fragments_before_their_first_are_held_and_replayed() {
    require_root();
    let topo = topology(2);
    let servers = nat_servers(&topo);
    let (_cfg, pins, d) = lb(&topo, "fragooo", NAT_CONF);
    let macs = (mac_from_text(&topo.client.mac("c0").unwrap()), mac_from_text(&topo.lb.mac("l0").unwrap()));
    let ifindex = topo.client.ifindex("c0").unwrap();
    let client6: IpAddr = "2001:db8:c::2".parse().unwrap();
    let client4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let before = global(&pins);

    let mut results = Vec::new();
    for (k, (src, vip)) in [(client4, vip4()), (client6, vip6())].into_iter().enumerate() {
        let (id, len) = (k as u64, 3000);
        let port = CLIENT_PORTS[k];
        let frames = fragments(macs, src, vip.ip(), port, 0x4242 + k as u32, (id, len), 1232);
        assert_eq!(frames.len(), 3);
        let echo = topo
            .client
            .run(|| {
                let s = client_socket(vip, port);
                // Last, first, middle.
                send_frames(ifindex, &[&frames[2], &frames[0], &frames[1]]);
                await_echo(&s, vip, id, len)
            })
            .unwrap();
        results.push((id, echo));
    }
    check_delivery(&servers, &results);
    let g = global(&pins);
    assert_eq!(g["reason_frag_held"] - before["reason_frag_held"], 2, "{g:?}");
    let punt = punt_stats(&d, |p| n(p, "forwarded_after_replay") >= 2);
    assert_eq!((n(&punt, "held"), n(&punt, "forwarded_after_replay"), n(&punt, "given_up")), (2, 2, 0), "{punt}");
    print_replay_cost("held fragments", &punt);

    // A middle fragment alone: held, replayed while it keeps coming back, then given up.
    let frames = fragments(macs, client4, vip4().ip(), CLIENT_PORTS[2], 0x4343, (7, 3000), 1232);
    topo.client.run(|| send_frames(ifindex, &[&frames[1]])).unwrap();
    let punt = punt_stats(&d, |p| n(p, "given_up") >= 1);
    assert_eq!((n(&punt, "held"), n(&punt, "given_up"), n(&punt, "forwarded_after_replay")), (3, 1, 2), "{punt}");
    assert!(n(&punt, "replayed") >= 2 + 5, "five replays before giving up: {punt}");
    let g = global(&pins);
    assert!(g["reason_fragment"] > before["reason_fragment"], "the given-up fragment passes to the stack: {g:?}");
    assert!(servers.iter().all(|s| !s.got().contains(&7)));
}
