//! OpenMetrics endpoint (prometheus-client over hyper): VRRP states and transitions, advert
//! drops by receive check, checker verdicts and changes, per-service and per-real traffic and
//! data-plane drops by reason, all read fresh at each scrape.

use std::{net::SocketAddr, path::PathBuf};

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

use crate::{dataplane::bpf::StatsSnapshot, state::Status, vrrp::State};

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
pub fn render(status: &Status, dp: Option<&StatsSnapshot>) -> String {
    let mut r = Registry::with_prefix("lb");
    register_vrrp(&mut r, status);
    register_checkers(&mut r, status);
    register_punt(&mut r, status);
    register_overrides(&mut r, status);
    if let Some(dp) = dp {
        register_dataplane(&mut r, dp);
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

/// Serves `/metrics` on `addr` until the task is dropped.
pub async fn serve(addr: SocketAddr, status: watch::Receiver<Status>, pin_dir: PathBuf) -> Result<()> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("metrics endpoint: binding {addr}"))?;
    info!(%addr, "metrics endpoint listening (/metrics)");
    tokio::spawn(async move {
        loop {
            let (conn, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    warn!("metrics endpoint: {e}");
                    continue;
                }
            };
            let (status, pin_dir) = (status.clone(), pin_dir.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let body = if req.uri().path() == "/metrics" {
                        let dp = crate::dataplane::bpf::read_stats(&pin_dir).ok();
                        Some(render(&status.borrow(), dp.as_ref()))
                    } else {
                        None
                    };
                    async move {
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
        let text = render(&status, None);
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
}
