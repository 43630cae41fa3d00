//! Runtime control: `lb-daemon drain|undrain|weight|disable|enable` and `-t --diff` talk to
//! the running daemon over a unix socket in its run directory. One JSON request line, one
//! JSON reply line. The socket is 0600 in the daemon's 0700 run directory, and the daemon
//! also checks the caller's uid (SO_PEERCRED): only root (or the daemon's own user) changes
//! who gets traffic.
//!
//! This module owns the protocol and both ends' I/O; what a request means is decided by the
//! daemon's core (`daemon::node`).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::SocketAddr,
    os::unix::{fs::PermissionsExt, net::UnixStream},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _},
    sync::{mpsc, oneshot},
};
use tracing::warn;

use crate::{config::Config, dataplane::conns::Conn};

pub const SOCKET: &str = "lb-daemon.sock";
/// A request line longer than this is refused (a parsed configuration for a preview is the
/// largest: about 500 bytes per real server).
const MAX_REQUEST: usize = 32 * 1024 * 1024;
/// A client that connects and says nothing is dropped after this.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the command line waits for the daemon (a reload in progress delays the answer).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// No new flows (and no new persistent clients) for `real`; its tracked flows continue.
    Drain {
        real: SocketAddr,
        service: Option<String>,
    },
    Undrain {
        real: SocketAddr,
        service: Option<String>,
    },
    /// `None` returns to the configured (or checker-set) weight.
    Weight {
        real: SocketAddr,
        service: Option<String>,
        weight: Option<u32>,
    },
    /// The service takes no new connections (its tracked flows continue).
    Disable {
        service: String,
    },
    Enable {
        service: String,
    },
    /// Withdraw every VIP's announcement (`anycast_table`) until `Announce`; forwarding
    /// goes on for the flows the routers still send.
    Withdraw,
    /// Undo `Withdraw`: VIPs whose services are up are announced again.
    Announce,
    /// What a reload to this configuration would change (`-t --diff`). The command line
    /// parses the file: the daemon may not see the same files (systemd's PrivateTmp).
    Preview {
        config: Box<Config>,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    /// What was done, or why not.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<Preview>,
}

impl Reply {
    pub fn ok(message: impl Into<String>) -> Self {
        Self { ok: true, message: message.into(), preview: None }
    }

    pub fn err(message: impl Into<String>) -> Self {
        Self { ok: false, message: message.into(), preview: None }
    }
}

/// What a reload would change, as `-t --diff` prints it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    pub changes: Vec<Change>,
    /// Hash-scheduled services (sh, dh, mh) present before and after, with how many table
    /// buckets change owner.
    pub buckets: Vec<Buckets>,
    /// Real servers (or whole services, `real` None) whose tracked flows a reload would
    /// reschedule: they leave the data plane.
    pub leaving: Vec<Leaving>,
    /// Tracked flows (not reply translations) of what is leaving, counted by the command
    /// line from the flow tables; None when they could not be read.
    #[serde(default)]
    pub rescheduled_flows: Option<u64>,
}

/// One difference. `what` names the kind (`service added`, `real server removed`, `weight`,
/// `vrrp instance changed`, ...); `from`/`to` hold the old and new values where there are any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub what: String,
    pub service: Option<String>,
    pub real: Option<String>,
    pub instance: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buckets {
    pub service: String,
    pub scheduler: String,
    pub moved: u32,
    pub total: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaving {
    pub service: String,
    /// Each address, port and protocol the service answers to, as the flow tables name them
    /// (`203.0.113.10:80/tcp`): a group's members one by one.
    pub keys: Vec<String>,
    pub real: Option<SocketAddr>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.what)?;
        for (label, v) in [("instance", &self.instance), ("service", &self.service), ("real", &self.real)] {
            if let Some(v) = v {
                write!(f, " {label} {v}")?;
            }
        }
        match (&self.from, &self.to) {
            (Some(a), Some(b)) => write!(f, ": {a} -> {b}"),
            (None, Some(b)) => write!(f, ": {b}"),
            (Some(a), None) => write!(f, ": was {a}"),
            (None, None) => Ok(()),
        }
    }
}

/// How many of `conns` (tracked flows; reply translations aside) belong to what is leaving:
/// their real server leaves its service, or their service goes.
pub fn rescheduled(conns: &[Conn], leaving: &[Leaving]) -> u64 {
    conns
        .iter()
        .filter(|c| !c.table.is_reverse())
        .filter(|c| {
            let key = format!("{}/{}", c.vip, c.protocol);
            leaving.iter().any(|l| {
                l.keys.contains(&key)
                    && l.real.is_none_or(|r| c.real.is_some_and(|e| SocketAddr::from((e.ip, e.port)) == r))
            })
        })
        .count() as u64
}

pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join(SOCKET)
}

/// Sends `req` to the daemon running with `run_dir` and returns its reply.
pub fn request(run_dir: &Path, req: &Request) -> Result<Reply> {
    let path = socket_path(run_dir);
    let mut s = UnixStream::connect(&path)
        .with_context(|| format!("connecting to {} (is lb-daemon running with this --run-dir?)", path.display()))?;
    s.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    s.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    s.write_all(&line).with_context(|| format!("writing to {}", path.display()))?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).with_context(|| format!("reading from {}", path.display()))?;
    if answer.is_empty() {
        bail!("{} closed without an answer", path.display());
    }
    serde_json::from_str(&answer).with_context(|| format!("the daemon's answer is not understood: {answer:?}"))
}

/// A request from the socket, and where its reply goes.
pub type Incoming = (Request, oneshot::Sender<Reply>);

/// Fails when another daemon answers on `<run_dir>/lb-daemon.sock`: two daemons must not
/// share a run directory (the second would take the first's socket and state file).
pub fn check_free(run_dir: &Path) -> Result<()> {
    let path = socket_path(run_dir);
    if UnixStream::connect(&path).is_ok() {
        bail!("another lb-daemon answers on {}: give this one its own --run-dir", path.display());
    }
    Ok(())
}

/// Listens on `<run_dir>/lb-daemon.sock` (replacing a stale one, never a live one); requests
/// come out of the returned channel for the daemon's loop to answer, one at a time.
pub fn serve(run_dir: &Path) -> Result<mpsc::Receiver<Incoming>> {
    check_free(run_dir)?;
    let path = socket_path(run_dir);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() || m.is_dir() => {
            bail!("{} exists and is not a socket; refusing to replace it", path.display())
        }
        Ok(_) => std::fs::remove_file(&path).with_context(|| format!("removing stale {}", path.display()))?,
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(&path).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", path.display()))?;
    let (tx, rx) = mpsc::channel(16);
    let me = nix::unistd::geteuid().as_raw();
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!("control socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, me, tx).await {
                    warn!("control socket: {e:#}");
                }
            });
        }
    });
    Ok(rx)
}

/// Reads one request from `stream`, hands it to the daemon and writes the reply back.
async fn answer(stream: tokio::net::UnixStream, me: u32, tx: mpsc::Sender<Incoming>) -> Result<()> {
    let uid = stream.peer_cred().context("reading the caller's credentials")?.uid();
    let (read, mut write) = stream.into_split();
    let reply = if uid != 0 && uid != me {
        Reply::err(format!("uid {uid} may not control lb-daemon (root only)"))
    } else {
        match tokio::time::timeout(READ_TIMEOUT, read_request(read)).await {
            Err(_) => Reply::err("no request within 5 s"),
            Ok(Err(e)) => Reply::err(format!("{e:#}")),
            Ok(Ok(req)) => {
                let (reply_tx, reply_rx) = oneshot::channel();
                tx.send((req, reply_tx)).await.context("the daemon is stopping")?;
                reply_rx.await.unwrap_or_else(|_| Reply::err("the daemon is stopping"))
            }
        }
    };
    let mut line = serde_json::to_vec(&reply)?;
    line.push(b'\n');
    write.write_all(&line).await.context("writing the reply")?;
    Ok(())
}

async fn read_request(read: tokio::net::unix::OwnedReadHalf) -> Result<Request> {
    let mut line = String::new();
    let mut limited = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST as u64));
    limited.read_line(&mut line).await.context("reading the request")?;
    if !line.ends_with('\n') {
        bail!("the request is not one line of at most {MAX_REQUEST} bytes");
    }
    serde_json::from_str(&line).with_context(|| format!("not a request: {:?}", line.trim_end()))
}

/// Whether `arg` (as given to `--service` or `disable`) names the service called `name`
/// (`VirtualServer::name`: `192.0.2.10:80/tcp`, `[2001:db8::1]:80/udp`, `group web/tcp`,
/// `fwmark 1/tcp`). Without `/PROTO`, every protocol matches.
pub fn names_service(arg: &str, name: &str) -> bool {
    let (arg, proto) = match arg.trim().rsplit_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (arg.trim(), None),
    };
    name.rsplit_once('/').is_some_and(|(base, p)| {
        proto.is_none_or(|want| want.eq_ignore_ascii_case(p))
            && (base == arg || canonical(arg).is_some_and(|c| c == base))
    })
}

/// `2001:db8::1:80`-style spellings aside, a socket address written as the config names it.
fn canonical(arg: &str) -> Option<String> {
    let sa: SocketAddr = arg.parse().ok()?;
    Some(match sa {
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_named_with_or_without_their_protocol() {
        assert!(names_service("192.0.2.10:80", "192.0.2.10:80/tcp"));
        assert!(names_service("192.0.2.10:80/tcp", "192.0.2.10:80/tcp"));
        assert!(!names_service("192.0.2.10:80/udp", "192.0.2.10:80/tcp"));
        assert!(!names_service("192.0.2.10:8080", "192.0.2.10:80/tcp"));
        assert!(!names_service("192.0.2.1:80", "192.0.2.10:80/tcp"));
        assert!(names_service("[2001:db8:0::1]:80", "[2001:db8::1]:80/tcp"));
        assert!(names_service("group web", "group web/tcp"));
        assert!(names_service("fwmark 7/tcp", "fwmark 7/tcp"));
        assert!(names_service("[2001:db8:0::1]:80/TCP", "[2001:db8::1]:80/tcp"));
    }

    #[test]
    fn requests_are_one_json_object_tagged_by_command() {
        let r = Request::Weight { real: "192.0.2.1:80".parse().unwrap(), service: None, weight: Some(3) };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"cmd":"weight","real":"192.0.2.1:80","service":null,"weight":3}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"reboot"}"#).is_err());
    }

    #[test]
    fn flows_of_leaving_real_servers_are_counted_once() {
        use crate::dataplane::conns::{Endpoint, Table};
        let ep = |s: &str| {
            let a: SocketAddr = s.parse().unwrap();
            Endpoint { ip: a.ip(), port: a.port() }
        };
        let conn = |table, real: &str, service: Option<&str>| Conn {
            table,
            protocol: "tcp".into(),
            client: ep("192.0.2.2:40000"),
            vip: ep("203.0.113.10:80"),
            real: Some(ep(real)),
            real_id: None,
            service: service.map(Into::into),
            state: "ESTABLISHED".into(),
            expires_in_s: None,
            idle_s: None,
        };
        let svc = Some("203.0.113.10:80/tcp");
        let conns = [
            conn(Table::Conntrack, "198.51.100.11:80", svc),
            conn(Table::NatRev, "198.51.100.11:80", svc),
            conn(Table::Halfopen, "198.51.100.11:80", svc),
            conn(Table::Conntrack, "198.51.100.12:80", svc),
            // IPVS entries name no service: their VIP and protocol match all the same.
            conn(Table::Ipvs, "198.51.100.11:80", None),
        ];
        let leaving = |real: Option<&str>| {
            vec![Leaving {
                service: "group web/tcp".into(),
                keys: vec!["203.0.113.9:80/tcp".into(), "203.0.113.10:80/tcp".into()],
                real: real.map(|r| r.parse().unwrap()),
            }]
        };
        assert_eq!(rescheduled(&conns, &leaving(Some("198.51.100.11:80"))), 3);
        assert_eq!(rescheduled(&conns, &leaving(None)), 4);
        assert_eq!(rescheduled(&conns, &leaving(Some("198.51.100.13:80"))), 0);
    }

    #[test]
    fn changes_read_as_one_line() {
        let c = Change {
            what: "weight".into(),
            service: Some("192.0.2.10:80/tcp".into()),
            real: Some("198.51.100.11:80".into()),
            from: Some("1".into()),
            to: Some("3".into()),
            ..Default::default()
        };
        assert_eq!(c.to_string(), "weight service 192.0.2.10:80/tcp real 198.51.100.11:80: 1 -> 3");
    }

    #[tokio::test]
    async fn a_request_reaches_the_daemon_and_its_reply_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let mut rx = serve(dir.path()).unwrap();
        let mode = std::fs::metadata(socket_path(dir.path())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let daemon = tokio::spawn(async move {
            let (req, reply) = rx.recv().await.unwrap();
            assert_eq!(req, Request::Enable { service: "192.0.2.10:80".into() });
            reply.send(Reply::ok("enabled")).unwrap();
        });
        let path = dir.path().to_path_buf();
        let reply =
            tokio::task::spawn_blocking(move || request(&path, &Request::Enable { service: "192.0.2.10:80".into() }))
                .await
                .unwrap()
                .unwrap();
        daemon.await.unwrap();
        assert_eq!(reply, Reply::ok("enabled"));
        // Garbage gets an error, not a hang.
        let path = socket_path(dir.path());
        let answer = tokio::task::spawn_blocking(move || {
            let mut s = UnixStream::connect(path).unwrap();
            s.write_all(b"{\"cmd\":\"reboot\"}\n").unwrap();
            let mut answer = String::new();
            BufReader::new(s).read_line(&mut answer).unwrap();
            answer
        })
        .await
        .unwrap();
        let reply: Reply = serde_json::from_str(&answer).unwrap();
        assert!(!reply.ok && reply.message.contains("not a request"), "{reply:?}");
        // A second daemon on this run directory must not take the socket.
        let e = serve(dir.path()).unwrap_err();
        assert!(e.to_string().contains("another lb-daemon answers"), "{e}");
    }
}
