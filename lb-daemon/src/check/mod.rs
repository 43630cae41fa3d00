//! Health checkers (HTTP_GET, SSL_GET, TCP_CHECK, MISC_CHECK): one tokio task per real
//! server and checker, each on its own schedule, reporting only when its verdict changes.
//! The daemon's core decides which checkers run (`diff`) and owns the `Health` they feed;
//! `Checkers` runs their tasks.

mod error;
pub mod health;
pub mod http;
pub mod tcp;

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{info, warn};

use crate::{
    config::{CheckKind, Checker, Config, ServiceAddr, Url, VirtualServer},
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
        bind: Option<SocketAddr>,
    },
    Http {
        target: http::Target,
        urls: Vec<Url>,
    },
    /// A script refused at start (not found, insecure) keeps the check failed and says why.
    Misc {
        script: Result<Prepared, script::ScriptError>,
        dynamic: bool,
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

/// keepalived's retry rule: a server that is up goes down after `retry` further failed
/// attempts `delay_before_retry` apart; a server that is down comes up on its first success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracker {
    pub up: bool,
    failures: u32,
    retry: u32,
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
        Self { up, failures: 0, retry }
    }

    pub fn success(&mut self) -> Next {
        self.failures = 0;
        self.up = true;
        Next::Round
    }

    pub fn failure(&mut self) -> Next {
        if self.up && self.failures < self.retry {
            self.failures += 1;
            return Next::Retry;
        }
        self.failures = 0;
        self.up = false;
        Next::Round
    }
}

/// Every checker the config asks for.
pub fn specs(cfg: &Config, runner: &Runner) -> BTreeMap<CheckId, Spec> {
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
                out.insert(id, spec(vs, rs.addr, c, runner, suspend));
            }
        }
    }
    out
}

fn spec(vs: &VirtualServer, real: SocketAddr, c: &Checker, runner: &Runner, suspend: Option<IpAddr>) -> Spec {
    let addr = SocketAddr::new(c.connect_ip.unwrap_or(real.ip()), c.connect_port.unwrap_or(real.port()));
    let bind = c.bindto.map(|ip| SocketAddr::new(ip, c.bind_port.unwrap_or(0)));
    let connect_timeout = Duration::from_secs(u64::from(c.connect_timeout));
    let (kind, probe, timeout) = match &c.kind {
        CheckKind::Tcp => ("TCP_CHECK", Probe::Tcp { addr, bind }, connect_timeout),
        CheckKind::HttpGet { urls, virtualhost } | CheckKind::SslGet { urls, virtualhost } => {
            let tls = matches!(c.kind, CheckKind::SslGet { .. });
            let host = virtualhost.clone().or_else(|| vs.virtualhost.clone());
            let target = http::Target { addr, bind, tls, host };
            (if tls { "SSL_GET" } else { "HTTP_GET" }, Probe::Http { target, urls: urls.clone() }, connect_timeout)
        }
        CheckKind::Misc { path, timeout, dynamic, user } => {
            let script = match path {
                Some(p) => runner.prepare(p, user.as_ref()),
                None => Err(script::ScriptError::Empty(String::new())),
            };
            // keepalived: misc_timeout defaults to the delay loop.
            let t = Duration::from_secs(u64::from(timeout.unwrap_or(c.delay_loop.unwrap_or(vs.delay_loop))));
            ("MISC_CHECK", Probe::Misc { script, dynamic: *dynamic }, t)
        }
    };
    Spec {
        kind,
        probe,
        delay_loop: Duration::from_secs(u64::from(c.delay_loop.unwrap_or(vs.delay_loop))),
        retry: c.retry,
        delay_before_retry: Duration::from_secs(u64::from(c.delay_before_retry)),
        timeout,
        warmup: c.warmup.map(|w| Duration::from_secs(u64::from(w))),
        initially_up: !vs.alpha,
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

/// One round of a probe: Ok with an optional dynamic weight, or why it failed.
pub async fn probe(p: &Probe, timeout: Duration) -> Result<Option<u32>, ProbeError> {
    let run = async {
        match p {
            Probe::Tcp { addr, bind } => tcp::check(*addr, *bind).await.map(|_| None),
            Probe::Http { target, urls } => {
                for url in urls {
                    let reply = http::get(target, &url.path, url.digest.is_some()).await?;
                    if !status_ok(url, reply.status) {
                        return Err(ProbeError::Status {
                            path: url.path.clone(),
                            got: reply.status,
                            want: describe_codes(url),
                        });
                    }
                    if let (Some(want), Some(got)) = (&url.digest, reply.digest)
                        && *want != got
                    {
                        return Err(ProbeError::Digest { path: url.path.clone(), got, want: want.clone() });
                    }
                }
                Ok(None)
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
        }
    };
    match tokio::time::timeout(timeout + Duration::from_millis(100), run).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout(timeout)),
    }
}

async fn task(id: CheckId, spec: Spec, tx: mpsc::Sender<Report>) {
    if let Some(w) = spec.warmup.filter(|w| !w.is_zero()) {
        // keepalived's warmup: a random delay up to `warmup` spreads the first rounds.
        let ms = rand::random_range(0..=w.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut tracker = Tracker::new(spec.initially_up, spec.retry);
    let mut weight = None;
    let mut suspended = false;
    let mut last_failure = String::new();
    let mut first = true;
    loop {
        if let Some(vip) = spec.suspend_unless_local {
            let now = !crate::netlink::is_local(vip);
            if now != suspended {
                info!(check = %id, "ha_suspend: {} ({vip} {})", if now { "checks paused" } else { "checks resumed" },
                    if now { "is not on this node" } else { "is on this node" });
                suspended = now;
                if now {
                    // Status shows why this check has no fresh verdict; health is unchanged.
                    let state = CheckState {
                        up: tracker.up,
                        weight,
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
        let was = (tracker.up, weight);
        let (next, reason) = match probe(&spec.probe, spec.timeout).await {
            Ok(w) => {
                weight = w;
                last_failure.clear();
                (tracker.success(), "check passed".to_string())
            }
            Err(e) => {
                let next = tracker.failure();
                let reason = e.to_string();
                if next == Next::Retry {
                    info!(check = %id, kind = spec.kind, "failed ({e}); retrying in {:?}", spec.delay_before_retry);
                } else if !was.0 && reason != last_failure {
                    // Already down: no transition to report, but say what it fails on now.
                    info!(check = %id, "still down: {}: {reason}", spec.kind);
                }
                last_failure.clone_from(&reason);
                (next, reason)
            }
        };
        // Report transitions, and the first verdict (so status shows a real reason).
        if (tracker.up, weight) != was || (first && next == Next::Round) {
            first = false;
            let state = CheckState { up: tracker.up, weight, reason: format!("{}: {reason}", spec.kind) };
            if tx.send(Report { id: id.clone(), state }).await.is_err() {
                return; // the daemon is shutting down
            }
        }
        let pause = if next == Next::Retry { spec.delay_before_retry } else { spec.delay_loop };
        tokio::time::sleep(pause).await;
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
}

impl Checkers {
    pub fn new() -> (Self, mpsc::Receiver<Report>) {
        let (tx, rx) = mpsc::channel(1024);
        (Self { tasks: BTreeMap::new(), tx }, rx)
    }

    /// Starts checker `id`; its reports arrive on the receiver `new` returned.
    pub fn start(&mut self, id: CheckId, spec: Spec) {
        if let Probe::Misc { script: Err(e), .. } = &spec.probe {
            warn!(check = %id, "MISC_CHECK cannot run: {e}; the check counts as failed");
        }
        let handle = tokio::spawn(task(id.clone(), spec, self.tx.clone()));
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

    #[test]
    fn status_ranges() {
        let mut u = Url { path: "/".into(), digest: None, status_code: Vec::new() };
        assert!(status_ok(&u, 204) && !status_ok(&u, 301) && !status_ok(&u, 503));
        u.status_code = vec![(301, 302), (503, 503)];
        assert!(status_ok(&u, 302) && status_ok(&u, 503) && !status_ok(&u, 200));
        assert_eq!(describe_codes(&u), "301-302,503");
    }

    #[test]
    fn specs_follow_keepalived_defaults() {
        let l = crate::config::parse_str(
            "t.conf",
            "virtual_server 203.0.113.10 80 {\n delay_loop 7\n alpha\n virtualhost vs.example\n \
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
        assert_eq!(s[0].probe, Probe::Tcp { addr: "198.51.100.11:81".parse().unwrap(), bind: None });
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

    #[tokio::test]
    async fn reload_keeps_unchanged_checkers_and_their_verdicts() {
        let conf = |timeout: u32| {
            crate::config::parse_str(
                "t.conf",
                &format!(
                    "virtual_server 203.0.113.10 80 {{\n delay_loop 60\n real_server 127.0.0.1 9 {{\n  \
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
            start.into_iter().for_each(|(id, spec)| checkers.start(id, spec));
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

    #[tokio::test]
    async fn misc_check_exit_codes() {
        let runner = Runner::new(&Default::default()).unwrap();
        let prep =
            |cmd: &str| runner.prepare(&crate::config::Script { command: cmd.into(), span: Default::default() }, None);
        let t = Duration::from_secs(5);
        assert_eq!(probe(&Probe::Misc { script: prep("true"), dynamic: false }, t).await, Ok(None));
        let e = probe(&Probe::Misc { script: prep("false"), dynamic: false }, t).await.unwrap_err();
        assert_eq!(e.to_string(), "script exit status 1");
        // misc_dynamic: 2..255 set the weight to code - 2; 1 is still a failure.
        let five = prep("/bin/sh -c 'exit 7'");
        assert_eq!(probe(&Probe::Misc { script: five.clone(), dynamic: true }, t).await, Ok(Some(5)));
        assert!(probe(&Probe::Misc { script: five, dynamic: false }, t).await.is_err());
        let slow = prep("sleep 3");
        let e = probe(&Probe::Misc { script: slow, dynamic: false }, Duration::from_millis(200)).await.unwrap_err();
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
        let url = |digest: Option<&str>| Url { path: "/".into(), digest: digest.map(Into::into), status_code: vec![] };
        let http = |addr, urls| Probe::Http { target: http::Target { addr, bind: None, tls: false, host: None }, urls };
        let t = Duration::from_secs(2);
        let ok = server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", Duration::ZERO).await;
        let md5_hello = "5d41402abc4b2a76b9719d911017c592";
        assert_eq!(probe(&http(ok, vec![url(Some(md5_hello))]), t).await, Ok(None));
        let e = probe(&http(ok, vec![url(Some(&"0".repeat(32)))]), t).await.unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        let busy = server(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", Duration::ZERO).await;
        let e = probe(&http(busy, vec![url(None)]), t).await.unwrap_err();
        assert_eq!(e.to_string(), "/: status 503, expected 200-299");
        let slow = server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", Duration::from_secs(5)).await;
        let started = std::time::Instant::now();
        let e = probe(&http(slow, vec![url(None)]), Duration::from_millis(300)).await.unwrap_err();
        assert!(matches!(e, ProbeError::Timeout(_)), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // Plain HTTP answering a TLS client: the handshake fails with a clear error.
        let tls =
            Probe::Http { target: http::Target { addr: ok, bind: None, tls: true, host: None }, urls: vec![url(None)] };
        let e = probe(&tls, t).await.unwrap_err();
        assert!(matches!(e, ProbeError::Tls(_)), "{e}");
    }
}
