//! Health checkers (HTTP_GET, SSL_GET, TCP_CHECK, MISC_CHECK, UDP_CHECK, DNS_CHECK,
//! PING_CHECK, SMTP_CHECK, BFD_CHECK): one tokio task per real
//! server and checker, each on its own schedule, reporting only when its verdict changes.
//! The daemon's core decides which checkers run (`diff`) and owns the `Health` they feed;
//! `Checkers` runs their tasks.

pub mod dns;
mod error;
pub mod file;
pub mod health;
pub mod http;
pub mod ping;
pub mod smtp;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod walk;

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{info, warn};

use crate::{
    config::{CheckKind, Checker, Config, RealServer, ServiceAddr, TrackFile, Url, UrlRegex, VirtualServer},
    script::{self, Prepared, Runner},
};
pub use error::ProbeError;
pub use health::CheckId;
use health::{CheckState, Health, Report};

/// What a checker does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Tcp {
        addr: SocketAddr,
        from: tcp::Origin,
    },
    Http {
        target: http::Target,
        urls: Vec<Url>,
        /// `enable_sni`: a URL's own virtualhost is its SNI too.
        sni: bool,
        /// `fast_recovery`: no pause while the server comes back (`walk::UrlWalk`).
        fast_recovery: bool,
    },
    /// A script refused at start (not found, insecure) keeps the check failed and says why.
    Misc {
        script: Result<Prepared, script::ScriptError>,
        dynamic: bool,
    },
    Udp {
        addr: SocketAddr,
        from: tcp::Origin,
        spec: udp::Spec,
    },
    Dns {
        addr: SocketAddr,
        from: tcp::Origin,
        name: String,
        qtype: u16,
    },
    Ping {
        addr: IpAddr,
        bind: Option<IpAddr>,
    },
    Smtp {
        hosts: Vec<smtp::Host>,
        helo: String,
    },
    /// FILE_CHECK: no rounds; the file's value on start and after each change.
    File {
        name: String,
        path: std::path::PathBuf,
        init: Option<crate::config::TrackFileInit>,
        weight: i32,
        reverse: bool,
    },
    /// BFD_CHECK: follows the events of the `bfd_instance` of that name (no probing).
    Bfd {
        name: String,
    },
}

/// A checker's whole behaviour, without config locations: an equal spec after a reload
/// keeps its task (and verdict) running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub kind: &'static str,
    pub probe: Probe,
    pub delay_loop: Duration,
    pub retry: u32,
    pub delay_before_retry: Duration,
    /// The whole exchange (connect, TLS, request, body; a script's run) must end within it.
    pub timeout: Duration,
    pub warmup: Option<Duration>,
    /// `alpha`: start down.
    pub initially_up: bool,
    /// `ha_suspend`: skip rounds while this address is not configured on this node.
    pub suspend_unless_local: Option<IpAddr>,
}

/// Whether a checker starts with the daemon or at a reload: keepalived's start (check_data.c
/// `validate_check_config`, "for non alpha mode, one failure is enough initially") gives the
/// first round no retries; a checker a reload starts gets them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Begin {
    Boot,
    Reload,
}

/// keepalived's retry rule for every checker but HTTP_GET and SSL_GET (`walk::UrlWalk`): a
/// server that is up goes down after `retry` further failed attempts `delay_before_retry`
/// apart; a server that is down comes up on its first success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracker {
    pub up: bool,
    failures: u32,
    retry: u32,
    /// A round has ended (keepalived's `has_run`).
    has_run: bool,
    /// Started with the daemon: no retries before the first round ends.
    boot: bool,
}

/// What to do after a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Verdict unchanged or changed (see `Tracker::up`); wait `delay_loop`.
    Round,
    /// Failed but retries remain; wait `delay_before_retry`.
    Retry,
}

impl Tracker {
    pub fn new(up: bool, retry: u32) -> Self {
        Self { up, failures: 0, retry, has_run: false, boot: false }
    }

    /// A tracker for a checker started with the daemon (`Begin::Boot`).
    pub fn at_boot(self) -> Self {
        Self { boot: true, ..self }
    }

    pub fn success(&mut self) -> Next {
        self.failures = 0;
        self.has_run = true;
        self.up = true;
        Next::Round
    }

    pub fn failure(&mut self) -> Next {
        if self.up && self.failures < self.retry && (self.has_run || !self.boot) {
            self.failures += 1;
            return Next::Retry;
        }
        self.failures = 0;
        self.up = false;
        self.has_run = true;
        Next::Round
    }
}

/// Every checker the config asks for.
pub fn specs(cfg: &Config, runner: &Runner) -> BTreeMap<CheckId, Spec> {
    let files = &cfg.track_files;
    let mut out = BTreeMap::new();
    for vs in &cfg.virtual_servers {
        let service = vs.name();
        let suspend = match (&vs.addr, vs.ha_suspend) {
            (ServiceAddr::Inet(sa), true) => Some(sa.ip()),
            _ => None,
        };
        for rs in &vs.real_servers {
            for (index, c) in rs.checkers.iter().enumerate() {
                let id = CheckId { service: service.clone(), real: rs.addr, index };
                let spec = spec(vs, rs, c, runner, suspend, files);
                if let Some(why) = disabled(&spec) {
                    // keepalived's words (check_misc.c): the real server keeps its other
                    // checkers, and with none left it counts as up.
                    warn!(check = %id, "Disabling misc script {why}");
                    continue;
                }
                out.insert(id, spec);
            }
        }
    }
    out
}

/// Why keepalived would drop this checker at load: a MISC_CHECK with no script, one that is
/// missing or insecure (check_misc.c `check_misc_script_security` frees such checkers), or
/// one whose `user` does not exist (its parser removes it).
fn disabled(spec: &Spec) -> Option<String> {
    match &spec.probe {
        Probe::Misc { script: Err(script::ScriptError::Empty(s)), .. } => Some(format!("'{s}' since it is empty")),
        Probe::Misc { script: Err(script::ScriptError::NotFound { script, .. }), .. } => {
            Some(format!("'{script}' since not found/accessible"))
        }
        Probe::Misc { script: Err(script::ScriptError::Insecure { script, .. }), .. } => {
            Some(format!("'{script}' due to insecure"))
        }
        // check_misc.c `misc_user_handler`: "Failed to set uid/gid ... - removing".
        Probe::Misc { script: Err(e @ (script::ScriptError::NoUser(_) | script::ScriptError::NoGroup(_))), .. } => {
            Some(format!("since its uid/gid cannot be set ({e})"))
        }
        _ => None,
    }
}

/// A checker's timings as keepalived 2.2.7 resolves them (check_data.c, `validate_check_config`):
/// the checker's own value, else its real server's, else its virtual server's (the real
/// server took that over), else the checker type's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub delay_loop: u32,
    pub retry: u32,
    pub delay_before_retry: u32,
    pub connect_timeout: u32,
    pub warmup: Option<u32>,
    pub alpha: bool,
}

pub fn timing(vs: &VirtualServer, rs: &RealServer, c: &Checker) -> Timing {
    // The type's defaults: MISC_CHECK does not retry; HTTP_GET and SSL_GET wait 3 s
    // between retries.
    let delay_loop = c.delay_loop.or(rs.delay_loop).unwrap_or(vs.delay_loop);
    // DNS_CHECK: 3 retries, each after the delay loop.
    let (default_retry, default_delay_before_retry) = match c.kind {
        CheckKind::Misc { .. } => (0, 1),
        CheckKind::HttpGet { .. } | CheckKind::SslGet { .. } => (1, 3),
        CheckKind::Dns { .. } => (3, delay_loop),
        _ => (1, 1),
    };
    Timing {
        delay_loop,
        retry: c.retry.or(rs.retry).or(vs.retry).unwrap_or(default_retry),
        delay_before_retry: c
            .delay_before_retry
            .or(rs.delay_before_retry)
            .or(vs.delay_before_retry)
            .unwrap_or(default_delay_before_retry),
        connect_timeout: c.connect_timeout.or(rs.connect_timeout).unwrap_or(vs.connect_timeout),
        // keepalived's default warmup is the delay loop; this version starts at once (docs/checkers.md).
        warmup: c.warmup.or(rs.warmup).or(vs.warmup),
        alpha: c.alpha.unwrap_or_else(|| rs.alpha(vs)),
    }
}

fn spec(
    vs: &VirtualServer,
    rs: &RealServer,
    c: &Checker,
    runner: &Runner,
    suspend: Option<IpAddr>,
    files: &[TrackFile],
) -> Spec {
    let real = rs.addr;
    let t = timing(vs, rs, c);
    let addr = SocketAddr::new(c.connect_ip.unwrap_or(real.ip()), c.connect_port.unwrap_or(real.port()));
    let bind = c.bindto.map(|ip| SocketAddr::new(ip, c.bind_port.unwrap_or(0)));
    let device = |name: &Option<String>| name.as_deref().and_then(tcp::IfName::new);
    let from = tcp::Origin { bind, mark: c.fwmark, device: device(&c.bind_if) };
    let connect_timeout = Duration::from_secs(u64::from(t.connect_timeout));
    let (kind, probe, timeout) = match &c.kind {
        CheckKind::Tcp => ("TCP_CHECK", Probe::Tcp { addr, from }, connect_timeout),
        CheckKind::HttpGet { urls, virtualhost, protocol } | CheckKind::SslGet { urls, virtualhost, protocol, .. } => {
            let (tls, enable_sni) = match c.kind {
                CheckKind::SslGet { enable_sni, .. } => (true, enable_sni),
                _ => (false, false),
            };
            let host = virtualhost.clone().or_else(|| rs.virtualhost.clone()).or_else(|| vs.virtualhost.clone());
            // keepalived's ssl_connect names the checker's virtualhost, else the virtual
            // server's: never the real server's, which only the Host header takes.
            let sni = if enable_sni { virtualhost.clone().or_else(|| vs.virtualhost.clone()) } else { None };
            let target = http::Target { addr, from, tls, sni, host, protocol: *protocol };
            (
                if tls { "SSL_GET" } else { "HTTP_GET" },
                Probe::Http { target, urls: urls.clone(), sni: enable_sni, fast_recovery: c.fast_recovery },
                connect_timeout,
            )
        }
        CheckKind::Misc { path, timeout, dynamic, user } => {
            let script = match path {
                Some(p) => runner.prepare(p, user.as_ref()),
                None => Err(script::ScriptError::Empty(String::new())),
            };
            // keepalived: misc_timeout defaults to the delay loop.
            let secs = Duration::from_secs(u64::from(timeout.unwrap_or(t.delay_loop)));
            ("MISC_CHECK", Probe::Misc { script, dynamic: *dynamic }, secs)
        }
        CheckKind::Udp { payload, require_reply, reply, mask, min_len, max_len } => {
            let spec = udp::Spec {
                payload: payload.clone(),
                require_reply: *require_reply,
                reply: reply.clone(),
                mask: mask.clone(),
                min_len: *min_len,
                max_len: *max_len,
            };
            ("UDP_CHECK", Probe::Udp { addr, from, spec }, connect_timeout)
        }
        CheckKind::Dns { qtype, name, .. } => {
            ("DNS_CHECK", Probe::Dns { addr, from, name: name.clone(), qtype: *qtype }, connect_timeout)
        }
        // keepalived 2.2.7 reads a PING_CHECK's fwmark and never sets it on its ICMP socket.
        CheckKind::Ping => ("PING_CHECK", Probe::Ping { addr: addr.ip(), bind: c.bindto }, connect_timeout),
        CheckKind::Smtp { helo_name, main, hosts } => {
            let own = main.then(|| smtp::Host { addr, from, timeout: connect_timeout });
            let hosts: Vec<smtp::Host> = own
                .into_iter()
                .chain(hosts.iter().map(|h| smtp::Host {
                    addr: SocketAddr::new(h.connect_ip.unwrap_or(real.ip()), h.connect_port.unwrap_or(real.port())),
                    from: tcp::Origin {
                        bind: h.bindto.map(|ip| SocketAddr::new(ip, h.bind_port.unwrap_or(0))),
                        mark: h.fwmark,
                        device: device(&h.bind_if),
                    },
                    timeout: h.connect_timeout.map_or(connect_timeout, |t| Duration::from_secs(u64::from(t))),
                }))
                .collect();
            let total = hosts.iter().map(|h| h.timeout).sum();
            ("SMTP_CHECK", Probe::Smtp { hosts, helo: helo_name.clone() }, total)
        }
        CheckKind::File { track_file, weight, reverse } => {
            // validate() refuses an unknown name; a file without a path reads 0.
            let f = files.iter().find(|f| &f.name == track_file);
            let probe = Probe::File {
                name: track_file.clone(),
                path: f.and_then(|f| f.file.clone()).unwrap_or_default().into(),
                init: f.and_then(|f| f.init),
                weight: weight.or(f.map(|f| f.weight)).unwrap_or(1),
                reverse: reverse.or(f.map(|f| f.reverse)).unwrap_or(false),
            };
            // keepalived: no alpha; the verdict is known once the file is read.
            return Spec {
                kind: "FILE_CHECK",
                probe,
                delay_loop: Duration::ZERO,
                retry: 0,
                delay_before_retry: Duration::ZERO,
                timeout: Duration::ZERO,
                warmup: None,
                initially_up: false,
                suspend_unless_local: None,
            };
        }
        CheckKind::Bfd { name } => ("BFD_CHECK", Probe::Bfd { name: name.clone() }, connect_timeout),
    };
    Spec {
        kind,
        probe,
        delay_loop: Duration::from_secs(u64::from(t.delay_loop)),
        retry: t.retry,
        delay_before_retry: Duration::from_secs(u64::from(t.delay_before_retry)),
        timeout,
        warmup: t.warmup.map(|w| Duration::from_secs(u64::from(w))),
        initially_up: !t.alpha,
        suspend_unless_local: suspend,
    }
}

/// The status codes a url accepts: configured ranges, else keepalived's 200-299.
fn status_ok(url: &Url, status: u16) -> bool {
    if url.status_code.is_empty() {
        (200..300).contains(&status)
    } else {
        url.status_code.iter().any(|(a, b)| (*a..=*b).contains(&status))
    }
}

fn describe_codes(url: &Url) -> String {
    if url.status_code.is_empty() {
        return "200-299".into();
    }
    let codes: Vec<String> =
        url.status_code.iter().map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
    codes.join(",")
}

/// keepalived's check_regex over the answer as received, status line and headers included
/// (as much as `http::MAX_REGEX_ANSWER` keeps), as if it came in one read: a complete match
/// must start within `min_offset..=max_offset`; a hard partial one (reaching the end) or a
/// PCRE2 match error matches nothing, as in keepalived; `regex_no_match` turns it round.
pub fn regex_passes(r: &UrlRegex, answer: &[u8]) -> bool {
    let matched = r.min_offset <= answer.len()
        && compiled(r).is_some_and(|p| match p.find(answer, r.min_offset, r.jit_stack) {
            Ok(crate::pcre::Found::At(start)) => r.max_offset.is_none_or(|max| start <= max),
            _ => false,
        });
    matched != r.no_match
}

/// Each pattern compiled once per process (keepalived shares one `regex_t` per pattern and
/// options too); config loading has already compiled it once, so this does not fail.
fn compiled(r: &UrlRegex) -> Option<std::sync::Arc<crate::pcre::Pattern>> {
    type Cache = std::sync::Mutex<HashMap<(String, u32), std::sync::Arc<crate::pcre::Pattern>>>;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let key = (r.pattern.clone(), r.option_bits());
    if let Some(re) = cache.get(&key) {
        return Some(re.clone());
    }
    let re = std::sync::Arc::new(r.compile().ok()?);
    cache.insert(key, re.clone());
    Some(re)
}

/// One url of an HTTP_GET / SSL_GET: its status, digest and regex as keepalived checks them.
async fn check_url(target: &http::Target, url: &Url, sni: bool) -> Result<(), ProbeError> {
    // keepalived: the URL's virtualhost first, for the Host header and SNI.
    let own;
    let target = match &url.virtualhost {
        Some(v) => {
            own =
                http::Target { host: Some(v.clone()), sni: if sni { Some(v.clone()) } else { None }, ..target.clone() };
            &own
        }
        None => target,
    };
    let keep = if url.regex.is_some() { http::MAX_REGEX_ANSWER } else { 0 };
    let reply = http::get(target, &url.path, http::Want { digest: url.digest.is_some(), keep }).await?;
    if !status_ok(url, reply.status) {
        return Err(ProbeError::Status { path: url.path.clone(), got: reply.status, want: describe_codes(url) });
    }
    if let (Some(want), Some(got)) = (&url.digest, reply.digest)
        && *want != got
    {
        return Err(ProbeError::Digest { path: url.path.clone(), got, want: want.clone() });
    }
    if let Some(r) = &url.regex
        && !regex_passes(r, &reply.raw)
    {
        return Err(ProbeError::Regex { path: url.path.clone(), pattern: r.pattern.clone(), no_match: r.no_match });
    }
    Ok(())
}

/// One run of a probe: Ok with an optional dynamic weight, or why it failed. HTTP_GET and
/// SSL_GET check url number `url` only (keepalived checks one per run, `walk.rs`); the
/// others ignore it.
pub async fn probe(p: &Probe, url: usize, timeout: Duration) -> Result<Option<u32>, ProbeError> {
    let run = async {
        match p {
            Probe::Tcp { addr, from } => tcp::check(*addr, *from).await.map(|_| None),
            Probe::Http { target, urls, sni, .. } => {
                let u = urls.get(url).ok_or_else(|| ProbeError::Http(format!("no url number {url}")))?;
                check_url(target, u, *sni).await.map(|()| None)
            }
            Probe::Misc { script, dynamic } => {
                let prepared = script.as_ref().map_err(|e| ProbeError::Refused(e.to_string()))?;
                // The script's own timeout kills it; the outer one below is only a backstop.
                match script::run(prepared, &[], timeout).await {
                    script::Outcome::Exited(0) => Ok(None),
                    script::Outcome::Exited(code @ 2..=255) if *dynamic => Ok(Some(code as u32 - 2)),
                    script::Outcome::TimedOut => Err(ProbeError::Timeout(timeout)),
                    other => Err(ProbeError::Script(other.to_string())),
                }
            }
            Probe::Udp { addr, from, spec } => udp::check(*addr, *from, spec, timeout).await.map(|_| None),
            Probe::Dns { addr, from, name, qtype } => {
                dns::check(*addr, *from, name, *qtype, timeout).await.map(|_| None)
            }
            Probe::Ping { addr, bind } => ping::check(*addr, *bind, timeout).await.map(|_| None),
            Probe::Smtp { hosts, helo } => smtp::check(hosts, helo).await.map(|_| None),
            Probe::File { .. } => Err(ProbeError::Refused("FILE_CHECK has no rounds".into())),
            // Not probed: `bfd_task` follows the session's events instead.
            Probe::Bfd { name } => Err(ProbeError::Refused(format!("BFD_CHECK {name} is not probed"))),
        }
    };
    match tokio::time::timeout(timeout + Duration::from_millis(100), run).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout(timeout)),
    }
}

/// What a BFD_CHECK says given its session's last event (`None`: none yet) and its start
/// (keepalived's check_bfd.c: the checker keeps its alpha-given state until an event).
pub fn bfd_verdict(event: Option<bool>, initially_up: bool) -> bool {
    event.unwrap_or(initially_up)
}

/// A BFD_CHECK: reports its session's events as verdicts (the first one at once, so status
/// says why), nothing in between.
async fn bfd_task(id: CheckId, name: String, initially_up: bool, tx: mpsc::Sender<Report>) {
    let mut events = crate::bfd::events();
    let mut last: Option<bool> = None;
    loop {
        let event = events.borrow_and_update().get(&name).copied();
        let up = bfd_verdict(event, initially_up);
        if last != Some(up) {
            let reason = match event {
                Some(true) => format!("BFD_CHECK: BFD session {name} is up"),
                Some(false) => format!("BFD_CHECK: BFD session {name} is down"),
                None => format!("BFD_CHECK: BFD session {name} has not come up yet"),
            };
            if last.is_some() {
                info!(check = %id, "BFD check of [{name}] is {}", if up { "UP" } else { "DOWN" });
            }
            last = Some(up);
            let state = CheckState { up, weight: None, offset: 0, reason };
            if tx.send(Report { id: id.clone(), state }).await.is_err() {
                return;
            }
        }
        if events.changed().await.is_err() {
            return;
        }
    }
}

async fn task(id: CheckId, spec: Spec, begin: Begin, tx: mpsc::Sender<Report>) {
    if let Probe::Bfd { name } = &spec.probe {
        return bfd_task(id, name.clone(), spec.initially_up, tx).await;
    }
    if let Some(w) = spec.warmup.filter(|w| !w.is_zero()) {
        // keepalived's warmup: a random delay up to `warmup` spreads the first rounds.
        let ms = rand::random_range(0..=w.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut rounds = Rounds::new(&spec, begin);
    let mut weight = None;
    let mut suspended = false;
    let mut last_failure = String::new();
    let mut first = true;
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        if let Some(due) = due.take() {
            TIMING.late(tokio::time::Instant::now().saturating_duration_since(due));
        }
        if let Some(vip) = spec.suspend_unless_local {
            let now = !crate::netlink::is_local(vip);
            if now != suspended {
                info!(check = %id, "ha_suspend: {} ({vip} {})", if now { "checks paused" } else { "checks resumed" },
                    if now { "is not on this node" } else { "is on this node" });
                suspended = now;
                if now {
                    // Status shows why this check has no fresh verdict; health is unchanged.
                    let state = CheckState {
                        up: rounds.up(),
                        weight,
                        offset: 0,
                        reason: format!("ha_suspend: paused while {vip} is not on this node"),
                    };
                    if tx.send(Report { id: id.clone(), state }).await.is_err() {
                        return;
                    }
                }
            }
            if suspended {
                tokio::time::sleep(spec.delay_loop).await;
                continue;
            }
        }
        let was = (rounds.up(), weight);
        let result = probe(&spec.probe, rounds.url(), spec.timeout).await;
        let step = rounds.record(result.is_ok(), &spec);
        let reason = match result {
            Ok(w) => {
                weight = w;
                last_failure.clear();
                if !rounds.up() {
                    // HTTP_GET / SSL_GET on the way back (walk.rs): say when the next url is due.
                    info!(check = %id, "{}: passed while down; next check in {:?}", spec.kind, step.pause);
                }
                "check passed".to_string()
            }
            Err(e) => {
                let reason = e.to_string();
                if step.retrying {
                    info!(check = %id, kind = spec.kind, "failed ({e}); retrying in {:?}", step.pause);
                } else if !was.0 && reason != last_failure {
                    // Already down: no transition to report, but say what it fails on now.
                    info!(check = %id, "still down: {}: {reason}", spec.kind);
                }
                last_failure.clone_from(&reason);
                reason
            }
        };
        // Report transitions, and the first verdict (so status shows a real reason).
        if (rounds.up(), weight) != was || (first && step.settled) {
            first = false;
            let state = CheckState { up: rounds.up(), weight, offset: 0, reason: format!("{}: {reason}", spec.kind) };
            if tx.send(Report { id: id.clone(), state }).await.is_err() {
                return; // the daemon is shutting down
            }
        }
        TIMING.done();
        let pause = step.pause;
        let at = tokio::time::Instant::now() + pause;
        due = Some(at);
        tokio::time::sleep_until(at).await;
    }
}

/// A checker's verdict rules: keepalived's url walk for HTTP_GET and SSL_GET, the common
/// retry rule for the others.
enum Rounds {
    Plain(Tracker),
    Walk(walk::UrlWalk),
}

/// What one run led to.
struct Step {
    /// Before the next run.
    pause: Duration,
    /// The failure is being retried (the server is still up).
    retrying: bool,
    /// The checker has a verdict of its own (not only its starting one).
    settled: bool,
}

impl Rounds {
    fn new(spec: &Spec, begin: Begin) -> Self {
        match &spec.probe {
            Probe::Http { urls, fast_recovery, .. } => {
                let pace = walk::Pace {
                    retry: spec.retry,
                    delay_loop: spec.delay_loop,
                    delay_before_retry: spec.delay_before_retry,
                    fast_recovery: *fast_recovery,
                };
                Rounds::Walk(walk::UrlWalk::new(urls.len(), spec.initially_up, pace, begin))
            }
            _ => {
                let tracker = Tracker::new(spec.initially_up, spec.retry);
                let tracker = if begin == Begin::Boot { tracker.at_boot() } else { tracker };
                Rounds::Plain(tracker)
            }
        }
    }

    fn up(&self) -> bool {
        match self {
            Rounds::Plain(tracker) => tracker.up,
            Rounds::Walk(w) => w.up,
        }
    }

    /// The url the next run checks (HTTP_GET, SSL_GET).
    fn url(&self) -> usize {
        match self {
            Rounds::Plain(_) => 0,
            Rounds::Walk(w) => w.url(),
        }
    }

    /// A run's result; the spec gives the plain checkers' pauses (a walk keeps its own).
    fn record(&mut self, ok: bool, spec: &Spec) -> Step {
        match self {
            Rounds::Plain(tracker) => {
                let next = if ok { tracker.success() } else { tracker.failure() };
                let retrying = next == Next::Retry;
                let pause = if retrying { spec.delay_before_retry } else { spec.delay_loop };
                Step { pause, retrying, settled: !retrying }
            }
            Rounds::Walk(w) => {
                let pause = if ok { w.passed() } else { w.failed() };
                let retrying = !ok && w.retrying();
                Step { pause, retrying, settled: !retrying }
            }
        }
    }
}

/// A FILE_CHECK: reports the file's effect on start and whenever the value changes
/// (keepalived's checker rule, `file::effect`).
async fn file_task(id: CheckId, probe: Probe, hub: file::Hub, tx: mpsc::Sender<Report>) {
    let Probe::File { name, path, init, weight, reverse } = probe else { return };
    let Some(mut rx) = hub.subscribe(&name, &path, init).await else { return };
    let mut last = None;
    loop {
        let value = *rx.borrow_and_update();
        let effect = file::effect(weight, reverse, value);
        if last != Some(effect) {
            last = Some(effect);
            let reason = match effect {
                None => format!("FILE_CHECK: track_file {name} reads {value}: failed"),
                Some(w) => format!("FILE_CHECK: track_file {name} reads {value}: weight {w:+}"),
            };
            let state = CheckState { up: effect.is_some(), weight: None, offset: effect.unwrap_or(0), reason };
            if tx.send(Report { id: id.clone(), state }).await.is_err() {
                return;
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// How late checker rounds start against their schedule (the end of the previous round plus
/// `delay_loop` or `delay_before_retry`), in whole milliseconds, and how many rounds ended:
/// process-wide counters the daemon writes to `checker-timing.json` in its run directory
/// (the benchmark reads them; see docs/benchmarks.md).
pub struct RoundTiming {
    done: std::sync::atomic::AtomicU64,
    /// Lateness in ms, 0..LATE_BUCKETS-1; the last bucket holds everything later.
    late_ms: [std::sync::atomic::AtomicU64; LATE_BUCKETS],
}

const LATE_BUCKETS: usize = 10_001;

pub static TIMING: RoundTiming = RoundTiming {
    done: std::sync::atomic::AtomicU64::new(0),
    late_ms: [const { std::sync::atomic::AtomicU64::new(0) }; LATE_BUCKETS],
};

impl RoundTiming {
    fn late(&self, by: Duration) {
        let ms = (by.as_millis() as usize).min(LATE_BUCKETS - 1);
        self.late_ms[ms].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn done(&self) {
        self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// `{"rounds_done": N, "late_ms": [[ms, count], ...]}` (non-empty buckets only).
    pub fn snapshot(&self) -> serde_json::Value {
        use std::sync::atomic::Ordering::Relaxed;
        let late: Vec<[u64; 2]> = (0..LATE_BUCKETS)
            .filter_map(|i| {
                let n = self.late_ms[i].load(Relaxed);
                (n > 0).then_some([i as u64, n])
            })
            .collect();
        serde_json::json!({ "rounds_done": self.done.load(Relaxed), "late_ms": late })
    }
}

/// Checkers by id: what should run, or what runs.
pub type Checks = BTreeMap<CheckId, Spec>;

/// How the checkers `running` become `wanted`: unchanged ones keep running (and their
/// verdicts), changed ones restart, removed ones stop. Returns the checkers to stop and
/// those to start; `running` and `health` (which forgets stopped checkers and registers
/// started ones with their initial verdict) follow.
pub fn diff(running: &mut Checks, wanted: Checks, health: &mut Health) -> (Vec<CheckId>, Vec<(CheckId, Spec)>) {
    let stale: Vec<CheckId> =
        running.iter().filter(|(id, s)| wanted.get(*id) != Some(*s)).map(|(id, _)| id.clone()).collect();
    for id in &stale {
        running.remove(id);
        health.forget(id);
    }
    let mut start = Vec::new();
    for (id, spec) in wanted {
        if running.contains_key(&id) {
            continue;
        }
        health.register(id.clone(), spec.initially_up);
        running.insert(id.clone(), spec.clone());
        start.push((id, spec));
    }
    (stale, start)
}

/// The running checker tasks.
pub struct Checkers {
    tasks: BTreeMap<CheckId, JoinHandle<()>>,
    tx: mpsc::Sender<Report>,
    /// FILE_CHECKs' shared watcher, started with the first one.
    files: Option<file::Hub>,
}

impl Checkers {
    pub fn new() -> (Self, mpsc::Receiver<Report>) {
        let (tx, rx) = mpsc::channel(1024);
        (Self { tasks: BTreeMap::new(), tx, files: None }, rx)
    }

    /// Starts checker `id`; its reports arrive on the receiver `new` returned.
    pub fn start(&mut self, id: CheckId, spec: Spec, begin: Begin) {
        if let Probe::Misc { script: Err(e), .. } = &spec.probe {
            warn!(check = %id, "MISC_CHECK cannot run: {e}; the check counts as failed");
        }
        let handle = if matches!(spec.probe, Probe::File { .. }) {
            let hub = self.files.get_or_insert_with(file::Hub::start).clone();
            tokio::spawn(file_task(id.clone(), spec.probe, hub, self.tx.clone()))
        } else {
            tokio::spawn(task(id.clone(), spec, begin, self.tx.clone()))
        };
        if let Some(old) = self.tasks.insert(id, handle) {
            old.abort();
        }
    }

    pub fn stop_check(&mut self, id: &CheckId) {
        if let Some(handle) = self.tasks.remove(id) {
            handle.abort();
        }
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub fn stop(&mut self) {
        for (_, h) in std::mem::take(&mut self.tasks) {
            h.abort();
        }
    }
}

impl Drop for Checkers {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// keepalived's start ("for non alpha mode, one failure is enough initially"): a checker
    /// started with the daemon takes its server down on the first failure of its first
    /// round; after a round it retries, and one a reload starts retries from the first.
    #[test]
    fn at_boot_the_first_failure_is_enough() {
        let mut t = Tracker::new(true, 2).at_boot();
        assert_eq!((t.failure(), t.up), (Next::Round, false));
        let mut t = Tracker::new(true, 2).at_boot();
        assert_eq!((t.success(), t.failure(), t.up), (Next::Round, Next::Retry, true));
        let mut t = Tracker::new(true, 2);
        assert_eq!((t.failure(), t.up), (Next::Retry, true));
    }

    #[test]
    fn retries_then_down_and_up_on_first_success() {
        let mut t = Tracker::new(true, 2);
        assert_eq!(t.failure(), Next::Retry);
        assert_eq!(t.failure(), Next::Retry);
        assert!(t.up);
        assert_eq!(t.failure(), Next::Round);
        assert!(!t.up);
        // Down: failures just wait for the next round.
        assert_eq!(t.failure(), Next::Round);
        assert_eq!(t.success(), Next::Round);
        assert!(t.up);
        // A success between failures resets the count.
        t.failure();
        t.success();
        assert_eq!(t.failure(), Next::Retry);
        // retry 0: the first failure takes it down.
        let mut t = Tracker::new(true, 0);
        assert_eq!(t.failure(), Next::Round);
        assert!(!t.up);
    }

    /// keepalived's check_regex semantics: a match must start within min..=max (lookbehind
    /// may see before min), `regex_no_match` inverts, a min beyond the answer never matches;
    /// regex_options are PCRE2's compile flags.
    #[test]
    fn regex_verdicts_follow_keepalived() {
        let cfg = |url_lines: &str| {
            let c = crate::config::parse_str(
                "r.conf",
                &format!(
                    "virtual_server 192.0.2.10 80 {{\n protocol TCP\n real_server 198.51.100.11 80 {{\n  HTTP_GET {{\n   url {{\n    \
                     path /\n{url_lines}\n   }}\n  }}\n }}\n}}\n"
                ),
            );
            assert!(!c.has_errors(), "{}", c.render());
            let CheckKind::HttpGet { urls, .. } = &c.config.virtual_servers[0].real_servers[0].checkers[0].kind else {
                panic!()
            };
            urls[0].regex.clone().unwrap()
        };
        // (url lines, answer, passes)
        let cases: &[(&str, &str, bool)] = &[
            ("regex OK", "status: OK\n", true),
            ("regex ^OK", "status: OK\n", false),
            ("regex ok", "status: OK\n", false),
            ("regex ok\nregex_options caseless", "status: OK\n", true),
            ("regex ERROR\nregex_no_match", "all OK\n", true),
            ("regex ERROR\nregex_no_match", "an ERROR\n", false),
            ("regex ab\nregex_min_offset 3", "ab ab\n", true),
            ("regex ab\nregex_min_offset 4", "ab ab\n", false),
            ("regex ab\nregex_max_offset 2", "xxxab\n", false),
            ("regex ab\nregex_max_offset 3", "xxxab\n", true),
            ("regex (?<=x)ab\nregex_min_offset 1", "xab\n", true),
            ("regex $\nregex_min_offset 4", "abc", false),
            ("regex ^OK$", "a\nOK\nb", false),
            ("regex ^OK$\nregex_options multiline", "a\nOK\nb", true),
            ("regex a.b", "a\nb\n", false),
            ("regex a.b\nregex_options dotall ucp", "a\nb\n", true),
            ("regex \"all OK\"", "all OK\n", true),
            // What reaches the end of the answer is a hard partial match: keepalived waits for
            // more and, at the end of the stream, counts no match.
            ("regex ok$", "it is ok", false),
            ("regex ok\\s*", "it is ok", false),
            // keepalived unescapes the pattern: `\d` is `d`, `\\d` PCRE2's digit class.
            ("regex \"\\d+ OK\"", "200 OK\n", false),
            ("regex \"\\d+ OK\"", "dd OK\n", true),
            ("regex \"\\\\d+ OK\"", "200 OK\n", true),
            ("regex \"OK\\r\\n\"", "200 OK\r\n\r\n", true),
        ];
        for (lines, answer, passes) in cases {
            let r = cfg(lines);
            assert_eq!(regex_passes(&r, answer.as_bytes()), *passes, "{lines:?} on {answer:?}");
        }
        let r = cfg("regex_options caseless ucp extended\nregex x");
        assert_eq!(r.option_bits(), pcre2_sys::PCRE2_CASELESS | pcre2_sys::PCRE2_UCP | pcre2_sys::PCRE2_EXTENDED);
        // regex_stack: a match that outgrows PCRE2's default JIT stack fails (keepalived logs
        // the match error and counts no match); a larger stack lets it through.
        let deep: Vec<u8> = b"ab".repeat(50_000).into_iter().chain(*b"c\n").collect();
        assert!(!regex_passes(&cfg("regex ^(a|b)*c"), &deep));
        assert!(regex_passes(&cfg("regex ^(a|b)*c\nregex_stack 32768 67108864"), &deep));
    }

    #[test]
    fn status_ranges() {
        let mut u = Url { path: "/".into(), digest: None, status_code: Vec::new(), virtualhost: None, regex: None };
        assert!(status_ok(&u, 204) && !status_ok(&u, 301) && !status_ok(&u, 503));
        u.status_code = vec![(301, 302), (503, 503)];
        assert!(status_ok(&u, 302) && status_ok(&u, 503) && !status_ok(&u, 200));
        assert_eq!(describe_codes(&u), "301-302,503");
    }

    /// BFD_CHECK's `alpha` (keepalived's check_bfd.c `bfd_alpha_handler`): the real server
    /// starts down and stays so until its session's first event says up; without it, up
    /// until an event says down. An event decides either way.
    #[test]
    fn bfd_check_alpha_starts_the_real_server_down_until_the_session_is_up() {
        let conf = |alpha: &str| {
            format!(
                "bfd_instance B1 {{\n neighbor_ip 192.0.2.2\n}}\nvirtual_server 203.0.113.10 80 {{\n protocol TCP\n \
                 real_server 198.51.100.11 80 {{\n  BFD_CHECK {{\n   name B1\n{alpha}  }}\n }}\n}}\n"
            )
        };
        let initially = |alpha: &str| {
            let l = crate::config::parse_str("t.conf", &conf(alpha));
            assert!(!l.has_errors(), "{}", l.render());
            let specs = specs(&l.config, &Runner::new(&l.config.global).unwrap());
            let spec = specs.values().next().unwrap();
            assert!(matches!(spec.probe, Probe::Bfd { .. }));
            spec.initially_up
        };
        let (with, without) = (initially("   alpha\n"), initially(""));
        assert_eq!((with, without), (false, true));
        assert!(!bfd_verdict(None, with) && bfd_verdict(Some(true), with));
        assert!(bfd_verdict(None, without) && !bfd_verdict(Some(false), without));
        // And in the health the data plane follows: registered down, so not scheduled.
        let mut health = crate::check::health::Health::default();
        let id = CheckId { service: "203.0.113.10:80/tcp".into(), real: "198.51.100.11:80".parse().unwrap(), index: 0 };
        health.register(id, with);
        assert!(!health.real("203.0.113.10:80/tcp", "198.51.100.11:80".parse().unwrap()).up);
    }

    #[test]
    fn specs_follow_keepalived_defaults() {
        let l = crate::config::parse_str(
            "t.conf",
            "virtual_server 203.0.113.10 80 {\n protocol TCP\n delay_loop 7\n alpha\n virtualhost vs.example\n \
             real_server 198.51.100.11 8080 {\n  TCP_CHECK {\n   connect_port 81\n   retry 3\n  }\n  \
             SSL_GET {\n   url {\n    path /\n   }\n   connect_timeout 2\n  }\n }\n}\n",
        );
        assert!(!l.has_errors(), "{:?}", l.diagnostics);
        let runner = Runner::new(&l.config.global).unwrap();
        let specs = specs(&l.config, &runner);
        let ids: Vec<String> = specs.keys().map(|i| i.to_string()).collect();
        assert_eq!(
            ids,
            [
                "203.0.113.10:80/tcp -> 198.51.100.11:8080 check #1",
                "203.0.113.10:80/tcp -> 198.51.100.11:8080 check #2"
            ]
        );
        let s: Vec<&Spec> = specs.values().collect();
        assert_eq!(s[0].probe, Probe::Tcp { addr: "198.51.100.11:81".parse().unwrap(), from: tcp::Origin::default() });
        assert_eq!((s[0].retry, s[0].delay_loop, s[0].timeout), (3, Duration::from_secs(7), Duration::from_secs(5)));
        assert!(!s[0].initially_up);
        match &s[1].probe {
            Probe::Http { target, .. } => {
                assert!(target.tls);
                assert_eq!(target.host.as_deref(), Some("vs.example"));
            }
            p => panic!("{p:?}"),
        }
        assert_eq!(s[1].timeout, Duration::from_secs(2));
    }

    /// DNS_CHECK's own defaults: 3 retries, each after the delay loop; set ones win.
    #[test]
    fn dns_check_retries_three_times_after_the_delay_loop() {
        let l = crate::config::parse_str(
            "t.conf",
            "virtual_server 203.0.113.10 53 {\n delay_loop 9\n protocol UDP\n \
             real_server 198.51.100.11 53 {\n  DNS_CHECK {\n  }\n  DNS_CHECK {\n   retry 1\n   delay_before_retry 2\n  }\n }\n}\n",
        );
        assert!(!l.has_errors(), "{}", l.render());
        let (vs, rs) = (&l.config.virtual_servers[0], &l.config.virtual_servers[0].real_servers[0]);
        let t = |i: usize| {
            let t = timing(vs, rs, &rs.checkers[i]);
            (t.retry, t.delay_before_retry)
        };
        assert_eq!(t(0), (3, 9));
        assert_eq!(t(1), (1, 2));
    }

    /// keepalived 2.2.7's order (check_data.c): the checker's value, else its real server's,
    /// else its virtual server's (whatever the order of the lines), else the type's default.
    #[test]
    fn checkers_inherit_real_server_then_virtual_server_values() {
        let l = crate::config::parse_str(
            "t.conf",
            "virtual_server 203.0.113.10 80 {\n protocol TCP\n delay_loop 30\n \
             real_server 198.51.100.11 80 {\n  retry 2\n  delay_loop 3\n  connect_timeout 2\n  warmup 4\n  \
             delay_before_retry 6\n  alpha\n  virtualhost rs.example\n  \
             TCP_CHECK {\n  }\n  HTTP_GET {\n   url {\n    path /\n   }\n   retry 0\n   delay_loop 5\n   \
             alpha false\n  }\n }\n \
             real_server 198.51.100.12 80 {\n  TCP_CHECK {\n   alpha\n  }\n  \
             MISC_CHECK {\n   misc_path /bin/true\n  }\n }\n \
             retry 4\n delay_before_retry 7\n connect_timeout 8\n warmup 9\n}\n\
             virtual_server 203.0.113.11 80 {\n protocol TCP\n real_server 198.51.100.13 80 {\n  \
             HTTP_GET {\n   url {\n    path /\n   }\n  }\n  MISC_CHECK {\n   misc_path /bin/true\n  }\n  \
             TCP_CHECK {\n  }\n }\n}\n",
        );
        assert!(!l.has_errors(), "{}", l.render());
        let runner = Runner::new(&l.config.global).unwrap();
        let s: Vec<Spec> = specs(&l.config, &runner).into_values().collect();
        let secs = Duration::from_secs;
        let timing =
            |s: &Spec| (s.kind, s.retry, s.delay_loop, s.delay_before_retry, s.timeout, s.warmup, s.initially_up);
        // Real server level over the virtual server's; the checker's own (alpha too) over both.
        assert_eq!(timing(&s[0]), ("TCP_CHECK", 2, secs(3), secs(6), secs(2), Some(secs(4)), false));
        assert_eq!(timing(&s[1]), ("HTTP_GET", 0, secs(5), secs(6), secs(2), Some(secs(4)), true));
        match &s[1].probe {
            Probe::Http { target, .. } => assert_eq!(target.host.as_deref(), Some("rs.example")),
            p => panic!("{p:?}"),
        }
        // Virtual server level (set after the real servers) over the types' defaults.
        assert_eq!(timing(&s[2]), ("TCP_CHECK", 4, secs(30), secs(7), secs(8), Some(secs(9)), false));
        assert_eq!((s[3].kind, s[3].retry, s[3].delay_before_retry), ("MISC_CHECK", 4, secs(7)));
        // Nothing set: the types' own defaults (MISC_CHECK does not retry; HTTP waits 3 s).
        let d: Vec<_> = s[4..].iter().map(|s| (s.kind, s.retry, s.delay_before_retry, s.timeout)).collect();
        assert_eq!(
            d,
            [
                ("HTTP_GET", 1, secs(3), secs(5)),
                ("MISC_CHECK", 0, secs(1), secs(60)),
                ("TCP_CHECK", 1, secs(1), secs(5))
            ]
        );
    }

    #[tokio::test]
    async fn reload_keeps_unchanged_checkers_and_their_verdicts() {
        let conf = |timeout: u32| {
            crate::config::parse_str(
                "t.conf",
                &format!(
                    "virtual_server 203.0.113.10 80 {{\n protocol TCP\n delay_loop 60\n real_server 127.0.0.1 9 {{\n  \
                     TCP_CHECK {{\n   connect_timeout {timeout}\n  }}\n }}\n}}\n"
                ),
            )
            .config
        };
        let runner = Runner::new(&Default::default()).unwrap();
        let mut health = Health::default();
        let (mut checkers, mut rx) = Checkers::new();
        let mut running = Checks::new();
        // What the daemon does with a config: diff, then start and stop tasks.
        let mut sync = |cfg: &Config, checkers: &mut Checkers, health: &mut Health| {
            let (stop, start) = diff(&mut running, specs(cfg, &runner), health);
            stop.iter().for_each(|id| checkers.stop_check(id));
            start.into_iter().for_each(|(id, spec)| checkers.start(id, spec, Begin::Reload));
        };
        sync(&conf(1), &mut checkers, &mut health);
        assert_eq!(checkers.len(), 1);
        // Nothing listens on port 9: the first round reports DOWN.
        let r = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert!(!r.state.up && r.state.reason.starts_with("TCP_CHECK: connect failed"), "{r:?}");
        let real: SocketAddr = "127.0.0.1:9".parse().unwrap();
        health.record(r);
        assert!(!health.real("203.0.113.10:80/tcp", real).up);
        // Same config (spans may differ): same task, same verdict.
        sync(&conf(1), &mut checkers, &mut health);
        assert!(!health.real("203.0.113.10:80/tcp", real).up);
        // A changed checker starts over (up until it fails again).
        sync(&conf(2), &mut checkers, &mut health);
        assert!(health.real("203.0.113.10:80/tcp", real).up);
        sync(&Config::default(), &mut checkers, &mut health);
        assert!(checkers.is_empty());
    }

    /// keepalived frees a MISC_CHECK whose script is missing or whose user does not exist
    /// (check_misc.c): the real server keeps its other checkers, and with none left counts as
    /// up.
    #[test]
    fn a_misc_check_without_its_script_is_dropped_as_keepalived_does() {
        let l = crate::config::parse_str(
            "t.conf",
            "virtual_server 203.0.113.10 80 {\n protocol TCP\n real_server 198.51.100.11 80 {\n  \
             MISC_CHECK {\n   misc_path \"/nonexistent/check 1\"\n  }\n  \
             MISC_CHECK {\n   misc_path /bin/true\n  }\n }\n \
             real_server 198.51.100.12 80 {\n  MISC_CHECK {\n   misc_path /nonexistent/check\n  }\n }\n \
             real_server 198.51.100.13 80 {\n  MISC_CHECK {\n   misc_path /bin/true\n   user no-such-user-lb\n  }\n }\n}\n",
        );
        assert!(!l.has_errors(), "{}", l.render());
        let runner = Runner::new(&l.config.global).unwrap();
        let specs = specs(&l.config, &runner);
        let kept: Vec<(String, usize)> = specs.keys().map(|id| (id.real.ip().to_string(), id.index)).collect();
        assert_eq!(kept, [("198.51.100.11".to_string(), 1)]);
        let mut health = Health::default();
        diff(&mut Default::default(), specs, &mut health);
        let real = |ip: &str| health.real("203.0.113.10:80/tcp", SocketAddr::new(ip.parse().unwrap(), 80));
        assert!(real("198.51.100.12").up, "no checker left: up");
        assert!(real("198.51.100.13").up, "its user does not exist: dropped, no checker left: up");
    }

    #[tokio::test]
    async fn misc_check_exit_codes() {
        let runner = Runner::new(&Default::default()).unwrap();
        let prep =
            |cmd: &str| runner.prepare(&crate::config::Script { command: cmd.into(), span: Default::default() }, None);
        let t = Duration::from_secs(5);
        assert_eq!(probe(&Probe::Misc { script: prep("true"), dynamic: false }, 0, t).await, Ok(None));
        let e = probe(&Probe::Misc { script: prep("false"), dynamic: false }, 0, t).await.unwrap_err();
        assert_eq!(e.to_string(), "script exit status 1");
        // misc_dynamic: 2..255 set the weight to code - 2; 1 is still a failure.
        let five = prep("/bin/sh -c 'exit 7'");
        assert_eq!(probe(&Probe::Misc { script: five.clone(), dynamic: true }, 0, t).await, Ok(Some(5)));
        assert!(probe(&Probe::Misc { script: five, dynamic: false }, 0, t).await.is_err());
        let slow = prep("sleep 3");
        let e = probe(&Probe::Misc { script: slow, dynamic: false }, 0, Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(e, ProbeError::Timeout(_)), "{e}");
    }

    #[tokio::test]
    async fn http_verdicts() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Answers every connection with `reply` after `delay`.
        async fn server(reply: &'static [u8], delay: Duration) -> SocketAddr {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = l.accept().await {
                    tokio::spawn(async move {
                        let mut buf = [0u8; 2048];
                        let _ = s.read(&mut buf).await;
                        tokio::time::sleep(delay).await;
                        let _ = s.write_all(reply).await;
                    });
                }
            });
            addr
        }
        let url = |digest: Option<&str>| Url {
            path: "/".into(),
            digest: digest.map(Into::into),
            status_code: vec![],
            virtualhost: None,
            regex: None,
        };
        let http = |addr, urls| Probe::Http {
            target: http::Target {
                addr,
                from: tcp::Origin::default(),
                tls: false,
                sni: None,
                host: None,
                protocol: Default::default(),
            },
            urls,
            sni: false,
            fast_recovery: false,
        };
        let t = Duration::from_secs(2);
        let ok = server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", Duration::ZERO).await;
        let md5_hello = "5d41402abc4b2a76b9719d911017c592";
        assert_eq!(probe(&http(ok, vec![url(Some(md5_hello))]), 0, t).await, Ok(None));
        let e = probe(&http(ok, vec![url(Some(&"0".repeat(32)))]), 0, t).await.unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        // One url per run: the run checks the url it is given, and only that one.
        let two = http(ok, vec![url(Some(md5_hello)), url(Some(&"0".repeat(32)))]);
        assert_eq!(probe(&two, 0, t).await, Ok(None));
        let e = probe(&two, 1, t).await.unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        let busy = server(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", Duration::ZERO).await;
        let e = probe(&http(busy, vec![url(None)]), 0, t).await.unwrap_err();
        assert_eq!(e.to_string(), "/: status 503, expected 200-299");
        let slow = server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", Duration::from_secs(5)).await;
        let started = std::time::Instant::now();
        let e = probe(&http(slow, vec![url(None)]), 0, Duration::from_millis(300)).await.unwrap_err();
        assert!(matches!(e, ProbeError::Timeout(_)), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // Plain HTTP answering a TLS client: the handshake fails with a clear error.
        let tls = Probe::Http {
            target: http::Target {
                addr: ok,
                from: tcp::Origin::default(),
                tls: true,
                sni: None,
                host: None,
                protocol: Default::default(),
            },
            urls: vec![url(None)],
            sni: false,
            fast_recovery: false,
        };
        let e = probe(&tls, 0, t).await.unwrap_err();
        assert!(matches!(e, ProbeError::Tls(_)), "{e}");
    }

    /// `connect_ip` / `connect_port` are where a checker connects instead of the real
    /// server, and `bindto` / `bind_port` the address and port it connects from: a TCP_CHECK
    /// for an unreachable real server passes against a local listener, which sees the bound
    /// source.
    #[tokio::test]
    async fn checkers_connect_to_connect_ip_from_bindto_and_bind_port() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let from = std::net::TcpListener::bind("127.0.0.2:0").unwrap().local_addr().unwrap().port();
        let text = format!(
            "virtual_server 203.0.113.10 80 {{\n protocol TCP\n real_server 198.51.100.11 8080 {{\n  TCP_CHECK {{\n   \
             connect_ip 127.0.0.1\n   connect_port {port}\n   bindto 127.0.0.2\n   bind_port {from}\n  }}\n }}\n}}\n"
        );
        let l2 = crate::config::parse_str("t.conf", &text);
        assert!(!l2.has_errors(), "{}", l2.render());
        let runner = Runner::new(&l2.config.global).unwrap();
        let spec = specs(&l2.config, &runner).into_values().next().unwrap();
        let (probed, accepted) = tokio::join!(probe(&spec.probe, 0, Duration::from_secs(2)), async {
            tokio::time::timeout(Duration::from_secs(2), l.accept()).await
        });
        probed.unwrap();
        let (_, peer) = accepted.unwrap().unwrap();
        assert_eq!(peer, SocketAddr::new("127.0.0.2".parse().unwrap(), from));
    }
}
