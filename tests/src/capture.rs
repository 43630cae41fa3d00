//! Frames as they cross the wire: tcpdump on one interface of a namespace (a switch port, so
//! the time is when the frame left the router), recording when each was seen: VRRP adverts
//! and who sent them, or any filter's lines. Stopped on drop.

use std::{
    io::{BufRead, BufReader},
    net::IpAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, Result};

use crate::netns::Netns;

/// One advert: seconds since the epoch (tcpdump's clock, the system's) and its source.
pub type Seen = (f64, IpAddr);

pub struct AdvertCapture {
    child: Child,
    lines: Arc<Mutex<Vec<(f64, String)>>>,
}

impl AdvertCapture {
    /// Starts recording the IPv4 VRRP adverts on `iface` of `ns`; returns once tcpdump's
    /// filter is in place.
    pub fn start(ns: &Netns, iface: &str) -> Result<AdvertCapture> {
        Self::with_filter(ns, iface, "ip proto 112")
    }

    /// Records what tcpdump prints for `filter`.
    pub fn with_filter(ns: &Netns, iface: &str, filter: &str) -> Result<AdvertCapture> {
        Self::with_args(ns, iface, &[], filter)
    }

    /// Records what tcpdump prints for `filter`, with the Ethernet header first ("SRC > DST,
    /// ethertype ...": `-e`).
    pub fn with_link_headers(ns: &Netns, iface: &str, filter: &str) -> Result<AdvertCapture> {
        Self::with_args(ns, iface, &["-e"], filter)
    }

    fn with_args(ns: &Netns, iface: &str, extra: &[&str], filter: &str) -> Result<AdvertCapture> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "tcpdump", "-i", iface, "-nn", "-tt", "-l", "--immediate-mode"])
            .args(extra)
            .arg(filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting tcpdump")?;
        let out = child.stdout.take().context("tcpdump stdout")?;
        let err = child.stderr.take().context("tcpdump stderr")?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if l.contains("listening on") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let s = lines.clone();
        std::thread::spawn(move || {
            // "1796207335.373893 IP 192.0.2.11 > 224.0.0.18: VRRPv2, Advertisement, ..."
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some((ts, rest)) = l.split_once(' ')
                    && let Ok(ts) = ts.parse::<f64>()
                {
                    s.lock().map(|mut v| v.push((ts, rest.to_string()))).ok();
                }
            }
        });
        let capture = AdvertCapture { child, lines };
        ready_rx.recv_timeout(Duration::from_secs(5)).context("tcpdump did not start listening")?;
        Ok(capture)
    }

    /// Every line so far, after its time stamp.
    pub fn lines(&self) -> Vec<(f64, String)> {
        self.lines.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Every advert so far, by source.
    pub fn seen(&self) -> Vec<Seen> {
        self.lines()
            .into_iter()
            .filter_map(|(ts, l)| Some((ts, l.split_whitespace().nth(1)?.parse::<IpAddr>().ok()?)))
            .collect()
    }

    /// The times of the adverts from `src`.
    pub fn from(&self, src: impl Into<IpAddr>) -> Vec<f64> {
        let src = src.into();
        self.seen().into_iter().filter(|(_, s)| *s == src).map(|(t, _)| t).collect()
    }
}

impl Drop for AdvertCapture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The intervals between consecutive times.
pub fn intervals(times: &[f64]) -> Vec<f64> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Seconds since the epoch now, on the clock tcpdump stamps with.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
