//! OpenMetrics endpoint (prometheus-client over hyper): VRRP states and transitions, advert
//! drops by receive check, checker verdicts and changes, per-service and per-real traffic and
//! data-plane verdicts by reason, all read fresh at each scrape; the flow tables' occupancy
//! and evictions, which take a walk of the tables, at most every `TABLES_EVERY`.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use http_body_util::Full;
use hyper::{Request, Response, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{
    dataplane::bpf::{FlowTableStats, StatsSnapshot},
    state::Status,
    vrrp::State,
};

/// How often a scrape may walk the flow tables (one system call per entry).
pub const TABLES_EVERY: Duration = Duration::from_secs(5);

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn state_code(s: State) -> i64 {
    match s {
        State::Init | State::Stopped => 0,
        State::Backup => 1,
        State::Master => 2,
        State::Fault => 3,
    }
}

/// The exposition text for one scrape.
pub fn render(status: &Status, dp: Option<&StatsSnapshot>, tables: &[FlowTableStats]) -> String {
    let mut r = Registry::with_prefix("lb");
    register_vrrp(&mut r, status);
    register_checkers(&mut r, status);
    register_punt(&mut r, status);
    register_overrides(&mut r, status);
    if let Some(dp) = dp {
        register_dataplane(&mut r, dp);
    }
    if !tables.is_empty() {
        register_flow_tables(&mut r, tables);
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

fn register_vrrp(r: &mut Registry, status: &Status) {
    let vrrp_state = Family::<Labels, Gauge>::default();
    let vrrp_priority = Family::<Labels, Gauge>::default();
    let became_master = Family::<Labels, Counter>::default();
    let adverts_sent = Family::<Labels, Counter>::default();
    let adverts_received = Family::<Labels, Counter>::default();
    let adverts_rejected = Family::<Labels, Counter>::default();
    for v in &status.vrrp {
        let l = labels(&[("instance", &v.instance)]);
        vrrp_state.get_or_create(&l).set(state_code(v.state));
        vrrp_priority.get_or_create(&l).set(i64::from(v.priority));
        became_master.get_or_create(&l).inc_by(v.became_master);
        adverts_sent.get_or_create(&l).inc_by(v.adverts_sent);
        adverts_received.get_or_create(&l).inc_by(v.adverts_received);
        for (check, n) in &v.rejected {
            adverts_rejected.get_or_create(&labels(&[("instance", &v.instance), ("check", check)])).inc_by(*n);
        }
    }
    r.register("vrrp_state", "VRRP state: 0 init/stopped, 1 backup, 2 master, 3 fault", vrrp_state);
    r.register("vrrp_priority", "Effective VRRP priority", vrrp_priority);
    r.register("vrrp_became_master", "Transitions to MASTER", became_master);
    r.register("vrrp_adverts_sent", "Adverts sent", adverts_sent);
    r.register("vrrp_adverts_received", "Adverts accepted", adverts_received);
    r.register("vrrp_adverts_rejected", "Adverts dropped, by receive check", adverts_rejected);
}

fn register_checkers(r: &mut Registry, status: &Status) {
    let check_up = Family::<Labels, Gauge>::default();
    for c in &status.checks {
        let idx = c.check.to_string();
        let l = labels(&[("service", &c.service), ("real", &c.real), ("check", &idx)]);
        check_up.get_or_create(&l).set(i64::from(c.up));
    }
    r.register("checker_up", "Health checker verdict: 1 up, 0 down", check_up);
    let changes = Family::<Labels, Counter>::default();
    for (k, dir) in
        [("real_up", "up"), ("real_down", "down"), ("quorum_up", "quorum_up"), ("quorum_down", "quorum_down")]
    {
        let n = status.checker_counters.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        changes.get_or_create(&labels(&[("change", dir)])).inc_by(n);
    }
    r.register("checker_changes", "Real server and quorum changes", changes);
}

fn register_overrides(r: &mut Registry, status: &Status) {
    let overrides = Family::<Labels, Gauge>::default();
    for o in &status.overrides {
        let real = o.real.as_deref().unwrap_or("");
        let l = labels(&[("service", &o.service), ("real", real), ("kind", &o.kind)]);
        overrides.get_or_create(&l).set(o.weight.map_or(-1, i64::from));
    }
    r.register(
        "override",
        "Runtime overrides (lb-daemon drain/weight/disable): the weight in force, 0 when drained, -1 for a disabled service",
        overrides,
    );
}

fn register_punt(r: &mut Registry, status: &Status) {
    let Some(p) = &status.punt else { return };
    let frames = Family::<Labels, Counter>::default();
    for (outcome, n) in [
        ("held", p.held),
        ("replayed", p.replayed),
        ("forwarded_after_replay", p.forwarded_after_replay),
        ("given_up", p.given_up),
        ("dropped_full", p.dropped_full),
        ("fragmented", p.fragmented),
        ("fragments_out", p.fragments_out),
        ("refused", p.refused),
        ("malformed", p.malformed),
        ("replay_errors", p.replay_errors),
    ] {
        frames.get_or_create(&labels(&[("outcome", outcome)])).inc_by(n);
    }
    r.register("punt_frames", "Frames the data plane handed to the daemon, by what became of them", frames);
}

fn register_dataplane(r: &mut Registry, dp: &StatsSnapshot) {
    let svc_packets = Family::<Labels, Counter>::default();
    let svc_bytes = Family::<Labels, Counter>::default();
    let svc_flows = Family::<Labels, Counter>::default();
    let real_packets = Family::<Labels, Counter>::default();
    let real_bytes = Family::<Labels, Counter>::default();
    let real_conns = Family::<Labels, Gauge>::default();
    for s in &dp.services {
        let l = labels(&[("service", &s.service)]);
        svc_packets.get_or_create(&l).inc_by(s.packets);
        svc_bytes.get_or_create(&l).inc_by(s.bytes);
        svc_flows.get_or_create(&l).inc_by(s.new_flows);
        for rs in &s.reals {
            let l = labels(&[("service", &s.service), ("real", &rs.real)]);
            real_packets.get_or_create(&l).inc_by(rs.packets);
            real_bytes.get_or_create(&l).inc_by(rs.bytes);
            real_conns.get_or_create(&l).set(rs.active_conns as i64);
        }
    }
    r.register("service_packets", "Packets to a service", svc_packets);
    r.register("service_bytes", "Bytes to a service", svc_bytes);
    r.register("service_new_flows", "Flows scheduled by a service", svc_flows);
    r.register("real_packets", "Packets forwarded to a real server", real_packets);
    r.register("real_bytes", "Bytes forwarded to a real server", real_bytes);
    r.register("real_active_connections", "Tracked connections to a real server", real_conns);
    let drops = Family::<Labels, Counter>::default();
    for (name, v) in &dp.global.0 {
        if let Some(reason) = name.strip_prefix("reason_") {
            drops.get_or_create(&labels(&[("reason", reason)])).inc_by(*v);
        }
    }
    r.register("dataplane_verdicts", "Data-plane packet verdicts by reason", drops);
}

fn register_flow_tables(r: &mut Registry, tables: &[FlowTableStats]) {
    let entries = Family::<Labels, Gauge>::default();
    let capacity = Family::<Labels, Gauge>::default();
    let inserts = Family::<Labels, Counter>::default();
    let deletes = Family::<Labels, Counter>::default();
    let evictions = Family::<Labels, Counter>::default();
    for t in tables {
        let l = labels(&[("table", t.table)]);
        entries.get_or_create(&l).set(t.entries as i64);
        capacity.get_or_create(&l).set(i64::from(t.capacity));
        inserts.get_or_create(&l).inc_by(t.inserts);
        deletes.get_or_create(&l).inc_by(t.deletes);
        evictions.get_or_create(&l).inc_by(t.evictions);
    }
    let every = TABLES_EVERY.as_secs();
    r.register(
        "flow_table_entries",
        format!(
            "Entries in a flow table (conntrack: tracked flows, expired ones too until replaced; halfopen: flows \
             before the client's second packet), counted by walking its keys at most every {every} s (cached \
             between walks)"
        ),
        entries,
    );
    r.register("flow_table_capacity", "Entries a flow table holds at most (an LRU hash)", capacity);
    r.register(
        "flow_table_inserts",
        format!("New keys the data plane inserted into a flow table, as of the last walk (at most {every} s old)"),
        inserts,
    );
    r.register(
        "flow_table_deletes",
        "Entries deleted from a flow table (conntrack: expired or reused flows replaced by the data plane, \
         expired flows the daemon removed; halfopen: flows promoted to conntrack), as of the last walk",
        deletes,
    );
    r.register(
        "flow_table_evictions",
        format!(
            "Entries the kernel's LRU dropped to make room, live or already expired (expired entries are not \
             deleted, they wait to be recycled): inserts - deletes - entries, as of the last walk (at most \
             {every} s old); approximate by the flows opened during the walk, never overstated"
        ),
        evictions,
    );
}

/// The last walk of the flow tables, reused until `TABLES_EVERY` has passed.
#[derive(Default)]
struct TablesCache {
    at: Option<Instant>,
    tables: Vec<FlowTableStats>,
}

impl TablesCache {
    fn due(&self, now: Instant) -> bool {
        self.at.is_none_or(|at| now.duration_since(at) >= TABLES_EVERY)
    }

    /// Takes a new walk. An eviction count never goes down while the pins are the same (a
    /// walk racing with new flows can count fewer than the one before); when the counters went
    /// back (the pins were made anew), the new count stands.
    fn update(&mut self, now: Instant, mut fresh: Vec<FlowTableStats>) {
        for t in &mut fresh {
            if let Some(old) = self.tables.iter().find(|o| o.table == t.table && o.inserts <= t.inserts) {
                t.evictions = t.evictions.max(old.evictions);
            }
        }
        self.at = Some(now);
        self.tables = fresh;
    }
}

/// One scrape's data-plane reads (blocking system calls: run off the async workers).
fn scrape(pin_dir: &std::path::Path, cache: &Mutex<TablesCache>) -> (Option<StatsSnapshot>, Vec<FlowTableStats>) {
    let dp = crate::dataplane::bpf::read_stats(pin_dir).ok();
    let Ok(mut c) = cache.lock() else { return (dp, Vec::new()) };
    let now = Instant::now();
    if dp.is_some() && c.due(now) {
        match crate::dataplane::bpf::read_flow_tables(pin_dir) {
            Ok(t) => c.update(now, t),
            Err(e) => warn!("metrics: reading the flow tables: {e:#}"),
        }
    }
    (dp, c.tables.clone())
}

/// Serves `/metrics` on `addr` until the task is dropped.
pub async fn serve(addr: SocketAddr, status: watch::Receiver<Status>, pin_dir: PathBuf) -> Result<()> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("metrics endpoint: binding {addr}"))?;
    info!(%addr, "metrics endpoint listening (/metrics)");
    let cache = Arc::new(Mutex::new(TablesCache::default()));
    tokio::spawn(async move {
        loop {
            let (conn, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    warn!("metrics endpoint: {e}");
                    continue;
                }
            };
            let (status, pin_dir, cache) = (status.clone(), pin_dir.clone(), cache.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let wanted = req.uri().path() == "/metrics";
                    let (status, pin_dir, cache) = (status.clone(), pin_dir.clone(), cache.clone());
                    async move {
                        let body = if wanted {
                            let read = tokio::task::spawn_blocking(move || scrape(&pin_dir, &cache)).await;
                            let (dp, tables) = read.unwrap_or_default();
                            Some(render(&status.borrow(), dp.as_ref(), &tables))
                        } else {
                            None
                        };
                        match body {
                            Some(text) => Response::builder()
                                .header("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
                                .body(Full::new(Bytes::from(text))),
                            None => Response::builder().status(404).body(Full::new(Bytes::from_static(b"not found\n"))),
                        }
                    }
                });
                if let Err(e) =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(conn), svc).await
                {
                    warn!("metrics endpoint connection: {e}");
                }
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{CheckStatus, VrrpStatus};

    #[test]
    fn named_series_with_values() {
        let status = Status {
            vrrp: vec![VrrpStatus {
                instance: "VI_1".into(),
                state: State::Master,
                priority: 150,
                became_master: 2,
                rejected: [("Password".to_string(), 7)].into(),
                ..Default::default()
            }],
            checks: vec![CheckStatus {
                service: "192.0.2.10:80/tcp".into(),
                real: "198.51.100.11:80".into(),
                check: 1,
                up: false,
                ..Default::default()
            }],
            checker_counters: serde_json::json!({"real_down": 3}),
            ..Default::default()
        };
        let text = render(&status, None, &[]);
        for line in [
            "lb_vrrp_state{instance=\"VI_1\"} 2",
            "lb_vrrp_priority{instance=\"VI_1\"} 150",
            "lb_vrrp_became_master_total{instance=\"VI_1\"} 2",
            "lb_vrrp_adverts_rejected_total{instance=\"VI_1\",check=\"Password\"} 7",
            "lb_checker_up{service=\"192.0.2.10:80/tcp\",real=\"198.51.100.11:80\",check=\"1\"} 0",
            "lb_checker_changes_total{change=\"down\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn overrides_are_series_with_the_weight_in_force() {
        let o = |real: Option<&str>, kind: &str, weight| crate::state::OverrideStatus {
            service: "192.0.2.10:80/tcp".into(),
            real: real.map(Into::into),
            kind: kind.into(),
            weight,
        };
        let status = Status {
            overrides: vec![o(Some("198.51.100.11:80"), "drained", Some(0)), o(None, "disabled", None)],
            ..Default::default()
        };
        let text = render(&status, None, &[]);
        for line in [
            "lb_override{service=\"192.0.2.10:80/tcp\",real=\"198.51.100.11:80\",kind=\"drained\"} 0",
            "lb_override{service=\"192.0.2.10:80/tcp\",real=\"\",kind=\"disabled\"} -1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
    }

    fn table(name: &'static str, inserts: u64, evictions: u64) -> FlowTableStats {
        FlowTableStats { table: name, entries: 4, capacity: 262_144, inserts, deletes: 2, evictions }
    }

    #[test]
    fn flow_tables_say_how_they_are_counted() {
        let text = render(&Status::default(), None, &[table("conntrack", 9, 3), table("halfopen", 5, 0)]);
        for line in [
            "lb_flow_table_entries{table=\"conntrack\"} 4",
            "lb_flow_table_capacity{table=\"halfopen\"} 262144",
            "lb_flow_table_inserts_total{table=\"conntrack\"} 9",
            "lb_flow_table_deletes_total{table=\"conntrack\"} 2",
            "lb_flow_table_evictions_total{table=\"conntrack\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        let help = |family: &str| {
            text.lines().find(|l| l.starts_with(&format!("# HELP lb_{family} "))).unwrap_or_default().to_string()
        };
        assert!(help("flow_table_entries").contains("at most every 5 s"), "{text}");
        assert!(help("flow_table_evictions").contains("inserts - deletes - entries"), "{text}");
        assert!(!render(&Status::default(), None, &[]).contains("flow_table"), "no pins, no flow tables");
    }

    #[test]
    fn the_walk_is_cached_and_evictions_never_go_back_for_the_same_pins() {
        let t0 = Instant::now();
        let mut c = TablesCache::default();
        assert!(c.due(t0));
        c.update(t0, vec![table("conntrack", 100, 7)]);
        assert!(!c.due(t0 + Duration::from_secs(4)) && c.due(t0 + TABLES_EVERY));
        // A walk that raced with new flows counts fewer: the count stays.
        c.update(t0 + TABLES_EVERY, vec![table("conntrack", 120, 5)]);
        assert_eq!(c.tables[0].evictions, 7);
        c.update(t0 + TABLES_EVERY * 2, vec![table("conntrack", 130, 9)]);
        assert_eq!(c.tables[0].evictions, 9);
        // Pins made anew (counters went back): the new count stands.
        c.update(t0 + TABLES_EVERY * 3, vec![table("conntrack", 10, 0)]);
        assert_eq!(c.tables[0].evictions, 0);
    }
}
