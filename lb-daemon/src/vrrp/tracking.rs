//! Tracking: what `track_script` and `track_interface` add to an instance's priority, or why
//! they put it in FAULT (`weigh`, pure), and the `vrrp_script` tasks whose OK/FAILED states
//! feed it (`Trackers`).

use std::time::Duration;

use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{info, warn};

use crate::{
    config::{self, Config, VrrpInstance, VrrpScript},
    script::{self, Runner},
};

/// A vrrp_script's current verdict.
pub struct Tracker {
    pub cfg: VrrpScript,
    pub ok: bool,
}

/// A tracking script's verdict changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptVerdict {
    /// Trackers are rebuilt on reload; verdicts of an older set are ignored.
    pub generation: u64,
    pub idx: usize,
    pub ok: bool,
}

/// Weight and fault reasons of instance `v` (on `iface`) from its scripts' verdicts and its
/// interfaces (`running`: up with carrier).
pub fn weigh(v: &VrrpInstance, iface: &str, scripts: &[Tracker], running: impl Fn(&str) -> bool) -> (i32, Vec<String>) {
    let (mut weight, mut faults) = (0i32, Vec::new());
    for t in &v.track_script {
        let Some(s) = scripts.iter().find(|s| s.cfg.name == t.name) else { continue };
        let w = t.weight.unwrap_or(s.cfg.weight);
        match (w, s.ok) {
            (0, false) => faults.push(format!("vrrp_script {} failed", t.name)),
            (w, true) if w > 0 => weight += w,
            (w, false) if w < 0 => weight += w,
            _ => {}
        }
    }
    for t in &v.track_interface {
        match (t.weight.unwrap_or(0), running(&t.name)) {
            (0, false) => faults.push(format!("{} down", t.name)),
            (w, true) if w > 0 => weight += w,
            (w, false) if w < 0 => weight += w,
            _ => {}
        }
    }
    if !v.dont_track_primary && !running(iface) {
        faults.push(format!("{iface} down"));
    }
    (weight, faults)
}

/// The running vrrp_script trackers.
#[derive(Default)]
pub struct Trackers {
    generation: u64,
    tasks: Vec<JoinHandle<()>>,
    list: Vec<Tracker>,
}

impl Trackers {
    pub fn list(&self) -> &[Tracker] {
        &self.list
    }

    /// Whether `cfg` configures the same scripts as those running.
    pub fn same_as(&self, cfg: &Config) -> bool {
        config::same(
            &self.list.iter().map(|t| &t.cfg).collect::<Vec<_>>(),
            &cfg.vrrp_scripts.iter().collect::<Vec<_>>(),
        )
    }

    /// (Re)starts the trackers of `cfg`, reporting to `tx`; a script whose settings did not
    /// change keeps its OK/FAILED state.
    pub fn restart<T: From<ScriptVerdict> + Send + 'static>(
        &mut self,
        cfg: &Config,
        runner: &Runner,
        tx: &mpsc::Sender<T>,
    ) {
        self.stop();
        self.generation += 1;
        let generation = self.generation;
        let old = std::mem::take(&mut self.list);
        for (idx, s) in cfg.vrrp_scripts.iter().enumerate() {
            let kept = old.iter().find(|o| o.cfg.name == s.name && config::same(&o.cfg, s)).map(|o| o.ok);
            self.list.push(Tracker { cfg: s.clone(), ok: kept.unwrap_or(!s.init_fail) });
            let Some(cmd) = &s.script else { continue };
            let prepared = match runner.prepare(cmd, s.user.as_ref()) {
                Ok(p) => p,
                Err(e) => {
                    warn!("vrrp_script {}: {e}; it counts as failed", s.name);
                    self.list[idx].ok = false;
                    continue;
                }
            };
            let (tx, s, ok) = (tx.clone(), s.clone(), self.list[idx].ok);
            self.tasks.push(tokio::spawn(async move { run(generation, idx, s, ok, prepared, tx).await }));
        }
    }

    /// Records a verdict; false when it comes from trackers a reload replaced.
    pub fn record(&mut self, v: ScriptVerdict) -> bool {
        if v.generation != self.generation {
            return false;
        }
        let Some(s) = self.list.get_mut(v.idx) else { return false };
        s.ok = v.ok;
        info!(script = %s.cfg.name, "vrrp_script {}", if v.ok { "succeeded: OK" } else { "failed: FAILED" });
        true
    }

    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

/// Runs a vrrp_script every `interval`; reports OK/FAILED after `rise`/`fall` results in a row.
async fn run<T: From<ScriptVerdict>>(
    generation: u64,
    idx: usize,
    s: VrrpScript,
    mut ok: bool,
    p: script::Prepared,
    tx: mpsc::Sender<T>,
) {
    let interval = Duration::from_secs(u64::from(s.interval.max(1)));
    let timeout = Duration::from_secs(u64::from(s.timeout.unwrap_or(s.interval).max(1)));
    let mut run_len = 0u32;
    let mut last: Option<bool> = None;
    loop {
        let success = script::run(&p, &[], timeout).await.success();
        run_len = if last == Some(success) { run_len + 1 } else { 1 };
        last = Some(success);
        let needed = if success { s.rise.max(1) } else { s.fall.max(1) };
        if success != ok && run_len >= needed {
            ok = success;
            if tx.send(ScriptVerdict { generation, idx, ok }.into()).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Span, Tracked};

    fn tracked(name: &str, weight: Option<i32>) -> Tracked {
        Tracked { name: name.into(), weight, span: Span::default() }
    }

    fn script(name: &str, weight: i32, ok: bool) -> Tracker {
        let text = format!("vrrp_script {name} {{\n script true\n weight {weight}\n}}\n");
        let l = crate::config::parse_str("t.conf", &text);
        Tracker { cfg: l.config.vrrp_scripts[0].clone(), ok }
    }

    #[test]
    fn weights_add_up_and_weightless_failures_are_faults() {
        let mut v = VrrpInstance::new("VI_1".into(), Span::default());
        v.track_script = vec![tracked("up", None), tracked("down", Some(-30)), tracked("vital", None)];
        v.track_interface = vec![tracked("eth1", Some(5)), tracked("eth2", None)];
        let scripts = [script("up", 20, true), script("down", 0, false), script("vital", 0, false)];
        let running = |i: &str| i == "eth0" || i == "eth1";
        let (w, faults) = weigh(&v, "eth0", &scripts, running);
        assert_eq!(w, 20 - 30 + 5);
        assert_eq!(faults, ["vrrp_script vital failed", "eth2 down"]);
        // The instance's own interface counts unless dont_track_primary.
        let (_, faults) = weigh(&v, "eth9", &scripts, running);
        assert_eq!(faults.last().map(String::as_str), Some("eth9 down"));
        v.dont_track_primary = true;
        let (_, faults) = weigh(&v, "eth9", &scripts, running);
        assert_eq!(faults.len(), 2);
    }
}
