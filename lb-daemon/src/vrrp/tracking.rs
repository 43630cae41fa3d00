//! Tracking: what `track_script`, `track_interface`, `track_file`, `track_process` and
//! `track_bfd` add to an instance's priority, or why they put it in FAULT (`weigh`, pure,
//! keepalived's rules), and the `vrrp_script` tasks, the file watcher and the process listener
//! whose results feed it (`Trackers`).

use std::{
    collections::{BTreeMap, HashMap},
    ffi::OsString,
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{info, warn};

use super::proc_events::{self, ProcQuorum};
pub use crate::check::file::parse_value;
use crate::{
    check::file::{Inotify, init_file, next_events, read_value},
    config::{self, BfdInstance, Config, TrackFile, TrackProcess, Tracked, VrrpInstance, VrrpScript},
    script::{self, Runner},
};

/// A vrrp_script's current verdict.
pub struct Tracker {
    pub cfg: VrrpScript,
    pub ok: bool,
    /// Why it cannot run (not found or not executable, unknown user, refused by
    /// `enable_script_security`), if so: then, as keepalived's `check_vrrp_script_security`
    /// removes it from every `track_script`, it affects no instance.
    pub disabled: Option<String>,
}

/// The vrrp_scripts of `cfg` that cannot run (not found or not executable, unknown user,
/// refused by `enable_script_security`) and why: `Trackers::restart` disables them, as
/// keepalived does; `-t` names them (keepalived's `-t` reports them as config errors).
pub fn unrunnable_scripts<'c>(cfg: &'c Config, runner: &Runner) -> Vec<(&'c VrrpScript, script::ScriptError)> {
    cfg.vrrp_scripts
        .iter()
        .filter_map(|s| Some((s, runner.prepare(s.script.as_ref()?, s.user.as_ref()).err()?)))
        .collect()
}

/// A tracking script's verdict changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptVerdict {
    /// Trackers are rebuilt on reload; verdicts of an older set are ignored.
    pub generation: u64,
    pub idx: usize,
    pub ok: bool,
}

/// A track_file's last value (a missing, empty or unreadable file reads 0, as keepalived's).
pub struct FileTracker {
    pub cfg: TrackFile,
    pub value: i64,
}

/// A vrrp_track_process's quorum: `None` while it cannot be known (no process events).
pub struct ProcTracker {
    pub cfg: TrackProcess,
    pub up: Option<bool>,
}

/// The `track_process` entries instance `v` follows, as (name, weight, reverse): its own, and
/// those of its sync group (`group`), where a group's entry sets the weight of the instance's
/// own entry for the same process unless that one has weight 0 (keepalived's
/// `add_vrrp_to_track_process`). `defaults`: a vrrp_track_process's own weight and reverse.
pub fn process_entries(
    v: &VrrpInstance,
    group: &[Tracked],
    defaults: impl Fn(&str) -> Option<(i32, bool)>,
) -> Vec<(String, i32, bool)> {
    let resolve = |t: &Tracked| {
        let (weight, reverse) = defaults(&t.name)?;
        Some((t.name.clone(), t.weight.unwrap_or(weight), t.reverse.unwrap_or(reverse)))
    };
    let mut out: Vec<(String, i32, bool)> = v.track_process.iter().filter_map(resolve).collect();
    for g in group {
        let Some((name, weight, reverse)) = resolve(g) else { continue };
        match out.iter_mut().find(|(n, _, _)| *n == name) {
            Some(own) if own.1 != 0 => own.1 = weight,
            Some(_) => {}
            None => out.push((name, weight, reverse)),
        }
    }
    out
}

/// A vrrp_track_process's own weight and reverse, by name, from `procs`.
pub fn process_defaults<'a>(procs: &'a [TrackProcess]) -> impl Fn(&str) -> Option<(i32, bool)> + 'a {
    move |name| procs.iter().find(|p| p.name == name).map(|p| (p.weight, p.reverse))
}

/// What a tracked object that is up/OK or not adds to the priority, or `None` for a fault
/// (keepalived's rule for scripts and interfaces): weight 0 faults when it is not OK (with
/// `reverse`, when it is); a positive weight adds while OK, a negative one while not;
/// `reverse` turns the sign (keepalived's multiplier -1).
pub fn state_effect(weight: i32, reverse: bool, ok: bool) -> Option<i32> {
    let m = if reverse { -1 } else { 1 };
    match weight {
        0 if ok == reverse => None,
        w if (w > 0 && ok) || (w < 0 && !ok) => Some(w * m),
        _ => Some(0),
    }
}

/// What a track_file's value adds (keepalived's rule): weight 0 faults on a non-zero value
/// (with `reverse`, on zero); otherwise value × weight (× -1 with `reverse`), a fault at
/// -254 or below, at most 253.
pub fn file_effect(weight: i32, reverse: bool, value: i64) -> Option<i32> {
    let m: i64 = if reverse { -1 } else { 1 };
    if weight == 0 {
        return if (value != 0) != reverse { None } else { Some(0) };
    }
    let v = value.saturating_mul(i64::from(weight)).saturating_mul(m);
    if v <= -254 { None } else { Some(v.min(253) as i32) }
}

/// The BFD sessions `track_bfd` names: their configs (default weights) and last events.
#[derive(Clone, Copy)]
pub struct BfdView<'a> {
    pub cfg: &'a [BfdInstance],
    pub events: &'a crate::bfd::Events,
}

impl BfdView<'_> {
    /// keepalived's `bfd_up`: false until the session's first Up event.
    fn up(&self, name: &str) -> bool {
        self.events.get(name).copied().unwrap_or(false)
    }

    /// What `t` (a track_bfd entry) adds, or a fault (keepalived's
    /// `initialise_track_bfd_state` and `vrrp_handle_bfd_event`: the rule of scripts and
    /// interfaces, the weight defaulting to the bfd_instance's `weight`).
    pub fn effect(&self, t: &Tracked) -> (Option<i32>, String) {
        let b = self.cfg.iter().find(|b| b.name == t.name);
        let (weight, reverse) = b.map_or((0, false), |b| (b.weight, b.reverse));
        let up = self.up(&t.name);
        let effect = state_effect(t.weight.unwrap_or(weight), t.reverse.unwrap_or(reverse), up);
        (effect, format!("BFD {} {}", t.name, if up { "up (reverse)" } else { "down" }))
    }
}

/// Weight and fault reasons of instance `v` (on `iface`) from its scripts' verdicts, its
/// files' values, its BFD sessions and its interfaces (`running`: up with carrier).
pub fn weigh(
    v: &VrrpInstance,
    iface: &str,
    scripts: &[Tracker],
    files: &[FileTracker],
    procs: (&[ProcTracker], &[Tracked]),
    bfd: BfdView,
    running: impl Fn(&str) -> bool,
) -> (i32, Vec<String>) {
    let (mut weight, mut faults) = (0i32, Vec::new());
    // keepalived's vrrp_complete_instance: a config fault for as long as the config stands.
    if v.unicast_fault_no_peer && v.unicast_peer.is_empty() {
        faults.push("Cannot use unicast without any peers".to_string());
    }
    let mut add = |effect: Option<i32>, why: String| match effect {
        Some(w) => weight += w,
        None => faults.push(why),
    };
    let reverse = |t: &Tracked, own: bool| t.reverse.unwrap_or(own);
    for t in &v.track_script {
        let Some(s) = scripts.iter().find(|s| s.cfg.name == t.name && s.disabled.is_none()) else { continue };
        let effect = state_effect(t.weight.unwrap_or(s.cfg.weight), reverse(t, s.cfg.reverse), s.ok);
        add(effect, format!("vrrp_script {} {}", t.name, if s.ok { "succeeded (reverse)" } else { "failed" }));
    }
    for t in &v.track_file {
        let Some(f) = files.iter().find(|f| f.cfg.name == t.name) else { continue };
        let effect = file_effect(t.weight.unwrap_or(f.cfg.weight), reverse(t, f.cfg.reverse), f.value);
        add(effect, format!("track_file {} reads {}", t.name, f.value));
    }
    let defaults = |name: &str| procs.0.iter().find(|p| p.cfg.name == name).map(|p| (p.cfg.weight, p.cfg.reverse));
    for (name, weight, reverse) in process_entries(v, procs.1, defaults) {
        let Some(p) = procs.0.iter().find(|p| p.cfg.name == name) else { continue };
        match p.up {
            Some(up) => add(
                state_effect(weight, reverse, up),
                format!("track_process {name} quorum {}", if up { "gained (reverse)" } else { "lost" }),
            ),
            None => add(None, format!("track_process {name}: process events are not received")),
        }
    }
    for t in &v.track_bfd {
        let (effect, why) = bfd.effect(t);
        add(effect, why);
    }
    let placed = placed_interfaces(v, iface);
    for t in &v.track_interface {
        let up = running(&t.name);
        // keepalived keeps one tracking entry per interface: an address's, route's or
        // rule's (weight 0) makes it a fault-or-nothing one (`add_vrrp_to_interface`).
        let (weight, rev) =
            if placed.contains(&t.name) { (0, false) } else { (t.weight.unwrap_or(0), reverse(t, false)) };
        add(state_effect(weight, rev, up), format!("{} {}", t.name, if up { "up (reverse)" } else { "down" }));
    }
    // The instance's own interface has its check below, unless `dont_track_primary`: then a
    // route or rule on it tracks it all the same (keepalived's weight-0 entry replaces the
    // untracked one).
    let own_checked = |n: &str| n == iface && !v.dont_track_primary;
    for name in placed.iter().filter(|n| !own_checked(n) && !v.track_interface.iter().any(|t| &t.name == *n)) {
        if !running(name) {
            faults.push(format!("{name} down"));
        }
    }
    for name in &v.track_static {
        if !running(name) {
            faults.push(format!("{name} down (track_group)"));
        }
    }
    if !v.dont_track_primary && !running(iface) {
        faults.push(format!("{iface} down"));
    }
    (weight, faults)
}

/// The interfaces instance `v` (on `iface`) tracks for what it puts on them, as keepalived
/// 2.2.7's `vrrp_complete_instance` does (TRACK_ADDR, TRACK_ROUTE, TRACK_RULE, weight 0: a
/// fault while down): each VIP's and excluded VIP's (its `dev`, else the instance's
/// interface; not the instance's own interface, or with `use_vmac` its base, under
/// `dont_track_primary`; otherwise `weigh` tracks that one anyway), each virtual route's `dev` and each
/// virtual rule's `iif` and `oif`; none of an entry with `no_track`. Sorted, once each.
pub fn placed_interfaces(v: &VrrpInstance, iface: &str) -> Vec<String> {
    let primary = |d: &str| d == iface || v.interface.as_deref() == Some(d);
    let vips = v.virtual_ipaddress.iter().chain(&v.virtual_ipaddress_excluded).filter(|a| !a.no_track);
    let vip_devs = vips.map(|a| a.dev.as_deref().unwrap_or(iface)).filter(|d| !(v.dont_track_primary && primary(d)));
    let route_devs = v.virtual_routes.iter().filter(|r| !r.no_track).filter_map(|r| r.dev.as_deref());
    let rule_devs =
        v.virtual_rules.iter().filter(|r| !r.no_track).flat_map(|r| r.iif.iter().chain(&r.oif).map(String::as_str));
    let all: std::collections::BTreeSet<&str> = vip_devs.chain(route_devs).chain(rule_devs).collect();
    all.into_iter().map(str::to_string).collect()
}

/// A tracked file's value changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileValue {
    /// Trackers are rebuilt on reload; values of an older set are ignored.
    pub generation: u64,
    pub idx: usize,
    pub value: i64,
}

/// The running vrrp_script trackers and the track_file watcher.
#[derive(Default)]
pub struct Trackers {
    generation: u64,
    tasks: Vec<JoinHandle<()>>,
    list: Vec<Tracker>,
    files: Vec<FileTracker>,
    procs: Vec<ProcTracker>,
    /// Each sync group's `track_process` entries, by member instance.
    group_procs: BTreeMap<String, Vec<Tracked>>,
    listener: Option<proc_events::Listener>,
    /// Each process tracker's count and quorum, as the listener last saw them.
    counts: Option<proc_events::Counts>,
    /// Files `init_file` has written in this run (a reload does not write them again).
    initialised: Vec<String>,
}

impl Trackers {
    pub fn list(&self) -> &[Tracker] {
        &self.list
    }

    pub fn files(&self) -> &[FileTracker] {
        &self.files
    }

    pub fn procs(&self) -> &[ProcTracker] {
        &self.procs
    }

    /// The `track_process` entries instance `name` gets from its sync group.
    pub fn group_procs(&self, name: &str) -> &[Tracked] {
        self.group_procs.get(name).map_or(&[], Vec::as_slice)
    }

    /// Whether `cfg` configures the same scripts and files as those running.
    pub fn same_as(&self, cfg: &Config) -> bool {
        config::same(
            &self.list.iter().map(|t| &t.cfg).collect::<Vec<_>>(),
            &cfg.vrrp_scripts.iter().collect::<Vec<_>>(),
        ) && config::same(
            &self.files.iter().map(|t| &t.cfg).collect::<Vec<_>>(),
            &cfg.track_files.iter().collect::<Vec<_>>(),
        ) && config::same(
            &self.procs.iter().map(|t| &t.cfg).collect::<Vec<_>>(),
            &cfg.track_processes.iter().collect::<Vec<_>>(),
        ) && config::same(&self.group_procs, &group_procs(cfg))
    }

    /// (Re)starts the trackers of `cfg`, reporting to `tx`; a script whose settings did not
    /// change keeps its OK/FAILED state. Files are read now and watched (inotify on their
    /// directories, so a file replaced by a rename is seen too).
    pub fn restart<T: From<ScriptVerdict> + From<FileValue> + From<ProcQuorum> + Send + 'static>(
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
            self.list.push(Tracker { cfg: s.clone(), ok: kept.unwrap_or(!s.init_fail), disabled: None });
            let Some(cmd) = &s.script else { continue };
            let prepared = match runner.prepare(cmd, s.user.as_ref()) {
                Ok(p) => p,
                Err(e) => {
                    // keepalived 2.2.7 (vrrp.c, check_track_script_secure): "Disabling track
                    // script NAME due to insecure" / "since not found/accessible".
                    warn!(
                        "vrrp_script {}: {e}; disabling track script {} (as keepalived: it no longer \
                         affects any instance's priority or state)",
                        s.name, s.name
                    );
                    self.list[idx].disabled = Some(e.to_string());
                    continue;
                }
            };
            let (tx, s, ok) = (tx.clone(), s.clone(), self.list[idx].ok);
            self.tasks.push(tokio::spawn(async move { run(generation, idx, s, ok, prepared, tx).await }));
        }
        self.files.clear();
        let mut watched = Vec::new();
        for (idx, f) in cfg.track_files.iter().enumerate() {
            let Some(path) = f.file.as_deref() else { continue };
            if let Some(init) = f.init
                && !self.initialised.iter().any(|p| p == path)
            {
                self.initialised.push(path.to_string());
                init_file(&f.name, Path::new(path), init);
            }
            let value = read_value(Path::new(path)).unwrap_or(0);
            info!(track_file = %f.name, file = path, value, "track_file read");
            self.files.push(FileTracker { cfg: f.clone(), value });
            watched.push((idx, PathBuf::from(path), value));
        }
        if !watched.is_empty() {
            let tx = tx.clone();
            self.tasks.push(tokio::spawn(async move { watch_files(generation, watched, tx).await }));
        }
        self.group_procs = group_procs(cfg);
        self.counts = None;
        self.procs = cfg.track_processes.iter().map(|p| ProcTracker { cfg: p.clone(), up: None }).collect();
        if !self.procs.is_empty() {
            match proc_events::start(generation, cfg.track_processes.clone(), tx.clone()) {
                Ok((listener, ups, counts)) => {
                    self.listener = Some(listener);
                    self.counts = Some(counts);
                    for (p, up) in self.procs.iter_mut().zip(ups) {
                        info!(track_process = %p.cfg.name, "track_process quorum {}", if up { "met" } else { "not met" });
                        p.up = Some(up);
                    }
                }
                Err(e) => tracing::error!(
                    "track_process: {e:#}; the instances tracking processes stay in FAULT (nothing would be seen)"
                ),
            }
        }
    }

    /// Each process tracker's name, current count and quorum (for the dumps; the count as the
    /// listener last saw it, 0 without a listener).
    pub fn process_counts(&self) -> Vec<(String, u32, bool)> {
        let counts = self.counts.as_ref().map(|c| c.lock().map(|c| c.clone()).unwrap_or_default()).unwrap_or_default();
        self.procs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.cfg.name.clone(), counts.get(i).map_or(0, |c| c.0), p.up == Some(true)))
            .collect()
    }

    /// Records a process tracker's quorum; false when it comes from a replaced listener.
    pub fn record_process(&mut self, q: ProcQuorum) -> bool {
        if q.generation != self.generation {
            return false;
        }
        let Some(p) = self.procs.get_mut(q.idx) else { return false };
        p.up = q.up;
        true
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

    /// Records a file's new value; false when it comes from a replaced watcher.
    pub fn record_file(&mut self, v: FileValue) -> bool {
        if v.generation != self.generation {
            return false;
        }
        let Some(f) = self.files.get_mut(v.idx) else { return false };
        f.value = v.value;
        info!(track_file = %f.cfg.name, value = v.value, "track_file changed");
        true
    }

    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        self.listener = None;
    }
}

/// Each sync group's `track_process` entries, by member instance.
fn group_procs(cfg: &Config) -> BTreeMap<String, Vec<Tracked>> {
    let mut out: BTreeMap<String, Vec<Tracked>> = BTreeMap::new();
    for g in cfg.vrrp_sync_groups.iter().filter(|g| !g.track_process.is_empty()) {
        for m in &g.group {
            out.entry(m.clone()).or_default().extend(g.track_process.iter().cloned());
        }
    }
    out
}

/// Watches the files' directories with inotify and sends each changed value.
async fn watch_files<T: From<FileValue>>(generation: u64, files: Vec<(usize, PathBuf, i64)>, tx: mpsc::Sender<T>) {
    let fd = match Inotify::new() {
        Ok(fd) => fd,
        Err(e) => return warn!("track_file: inotify: {e}; file changes are not seen"),
    };
    // Watch descriptor -> the files in that directory (by name), with their last values.
    let mut dirs: HashMap<nix::sys::inotify::WatchDescriptor, Vec<(usize, OsString, PathBuf, i64)>> = HashMap::new();
    for (idx, path, value) in files {
        match fd.get_ref().watch(&path) {
            Ok((wd, name)) => dirs.entry(wd).or_default().push((idx, name, path, value)),
            Err(e) => warn!("track_file: watching {}: {e}; its changes are not seen", path.display()),
        }
    }
    while let Some(events) = next_events(&fd).await {
        for ev in events {
            let Some(entries) = dirs.get_mut(&ev.wd) else { continue };
            for (idx, name, path, last) in entries.iter_mut() {
                if ev.name.as_deref() != Some(name.as_os_str()) {
                    continue;
                }
                let Some(value) = read_value(path) else { continue };
                if value != *last {
                    *last = value;
                    if tx.send(FileValue { generation, idx: *idx, value }.into()).await.is_err() {
                        return;
                    }
                }
            }
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

    pub(super) const NO_BFD: BfdView = BfdView { cfg: &[], events: &crate::bfd::Events::new() };

    /// keepalived's TRACK_ADDR, TRACK_ROUTE and TRACK_RULE: the interfaces of VIPs, excluded
    /// VIPs, virtual routes and rules fault the instance while down (not `no_track` ones; not
    /// the primary under `dont_track_primary`), and make a weighted `track_interface` of the
    /// same interface fault-or-nothing.
    #[test]
    fn what_an_instance_puts_on_an_interface_tracks_it_as_keepalived() {
        let l = crate::config::parse_str(
            "t.conf",
            "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n\
             track_interface {\n eth5 weight -20\n eth6 weight 10\n }\n\
             virtual_ipaddress {\n 192.0.2.100/24\n 192.0.2.101/24 dev eth1\n 192.0.2.102/24 dev eth7 no_track\n }\n\
             virtual_ipaddress_excluded {\n 192.0.2.103/24 dev eth5\n }\n\
             virtual_routes {\n 203.0.113.0/24 dev eth2\n 203.0.113.64/26 dev eth8 no_track\n }\n\
             virtual_rules {\n from 198.51.100.0/24 iif eth3 oif eth4 table 100\n from 198.51.100.128/25 iif eth9 table 100 no_track\n }\n}\n",
        );
        assert!(!l.has_errors(), "{:?}", l.diagnostics);
        let mut v = l.config.vrrp_instances[0].clone();
        let placed = |v: &VrrpInstance| placed_interfaces(v, "eth0");
        assert_eq!(placed(&v), ["eth0", "eth1", "eth2", "eth3", "eth4", "eth5"]);
        let down = |dev: &'static str| {
            move |v: &VrrpInstance| weigh(v, "eth0", &[], &[], (&[], &[]), NO_BFD, |n: &str| n != dev)
        };
        for dev in ["eth1", "eth2", "eth3", "eth4"] {
            assert_eq!(down(dev)(&v), (10, vec![format!("{dev} down")]), "{dev}");
        }
        for dev in ["eth7", "eth8", "eth9"] {
            assert_eq!(down(dev)(&v), (10, vec![]), "{dev} (no_track)");
        }
        // eth5 carries an excluded VIP: its weight -20 is no more; down, it faults.
        assert_eq!(down("eth5")(&v), (10, vec!["eth5 down".to_string()]));
        assert_eq!(down("eth6")(&v), (0, vec![]));
        assert_eq!(down("eth0")(&v), (10, vec!["eth0 down".to_string()]));
        v.dont_track_primary = true;
        assert_eq!(placed(&v), ["eth1", "eth2", "eth3", "eth4", "eth5"]);
        assert_eq!(down("eth0")(&v), (10, vec![]));
        // A virtual route on the primary tracks it even so.
        v.virtual_routes[0].dev = Some("eth0".into());
        assert_eq!(placed(&v), ["eth0", "eth1", "eth3", "eth4", "eth5"]);
        assert_eq!(down("eth0")(&v), (10, vec!["eth0 down".to_string()]));
    }

    #[test]
    fn bfd_sessions_weigh_as_keepalived_tracks_them() {
        let l = crate::config::parse_str(
            "t.conf",
            "bfd_instance A {\n neighbor_ip 192.0.2.2\n}\nbfd_instance B {\n neighbor_ip 192.0.2.3\n weight 15\n}\n\
             bfd_instance C {\n neighbor_ip 192.0.2.4\n weight -20\n}\n",
        );
        assert!(!l.has_errors(), "{:?}", l.diagnostics);
        let mut v = VrrpInstance::new("VI_1".into(), Span::default());
        v.dont_track_primary = true;
        v.track_bfd = vec![tracked("A", None), tracked("B", None), tracked("C", None)];
        let mut events = crate::bfd::Events::new();
        let weigh_with = |v: &VrrpInstance, events: &crate::bfd::Events| {
            weigh(v, "eth0", &[], &[], (&[], &[]), BfdView { cfg: &l.config.bfd_instances, events }, |_| true)
        };
        // No event yet: every session counts as down (keepalived's bfd_up starts false).
        assert_eq!(weigh_with(&v, &events), (-20, vec!["BFD A down".to_string()]));
        for n in ["A", "B", "C"] {
            events.insert(n.to_string(), true);
        }
        assert_eq!(weigh_with(&v, &events), (15, vec![]));
        events.insert("B".into(), false);
        assert_eq!(weigh_with(&v, &events), (0, vec![]));
        // The entry's own weight and reverse win over the instance's.
        v.track_bfd = vec![Tracked { reverse: Some(true), ..tracked("A", Some(10)) }];
        assert_eq!(weigh_with(&v, &events).0, -10);
        // Weight 0 with reverse: a fault while up.
        v.track_bfd = vec![Tracked { reverse: Some(true), ..tracked("A", Some(0)) }];
        assert_eq!(weigh_with(&v, &events).1, ["BFD A up (reverse)"]);
    }

    fn tracked(name: &str, weight: Option<i32>) -> Tracked {
        Tracked { name: name.into(), weight, reverse: None, span: Span::default() }
    }

    fn script(name: &str, weight: i32, ok: bool) -> Tracker {
        let text = format!("vrrp_script {name} {{\n script true\n weight {weight}\n}}\n");
        let l = crate::config::parse_str("t.conf", &text);
        Tracker { cfg: l.config.vrrp_scripts[0].clone(), ok, disabled: None }
    }

    #[test]
    fn weights_add_up_and_weightless_failures_are_faults() {
        let mut v = VrrpInstance::new("VI_1".into(), Span::default());
        v.track_script = vec![tracked("up", None), tracked("down", Some(-30)), tracked("vital", None)];
        v.track_interface = vec![tracked("eth1", Some(5)), tracked("eth2", None)];
        let scripts = [script("up", 20, true), script("down", 0, false), script("vital", 0, false)];
        let running = |i: &str| i == "eth0" || i == "eth1";
        let (w, faults) = weigh(&v, "eth0", &scripts, &[], (&[], &[]), NO_BFD, running);
        assert_eq!(w, 20 - 30 + 5);
        assert_eq!(faults, ["vrrp_script vital failed", "eth2 down"]);
        // The instance's own interface counts unless dont_track_primary.
        let (_, faults) = weigh(&v, "eth9", &scripts, &[], (&[], &[]), NO_BFD, running);
        assert_eq!(faults.last().map(String::as_str), Some("eth9 down"));
        v.dont_track_primary = true;
        let (_, faults) = weigh(&v, "eth9", &scripts, &[], (&[], &[]), NO_BFD, running);
        assert_eq!(faults.len(), 2);
    }

    #[test]
    fn unicast_without_peers_is_a_fault_only_with_unicast_fault_no_peer() {
        let mut v = VrrpInstance::new("VI_1".into(), Span::default());
        let faults = |v: &VrrpInstance| weigh(v, "eth0", &[], &[], (&[], &[]), NO_BFD, |_: &str| true).1;
        assert!(faults(&v).is_empty(), "no peers: multicast");
        v.unicast_fault_no_peer = true;
        assert_eq!(faults(&v), ["Cannot use unicast without any peers"]);
        v.unicast_peer = vec!["192.0.2.12".parse().unwrap()];
        assert!(faults(&v).is_empty(), "with a peer: unicast");
    }

    /// `init_fail`: a vrrp_script counts as failed from the start, before its first run
    /// (keepalived's initial state FAILED): its weight applies, or with weight 0 its instance
    /// is in fault, until the script succeeds; without it, the script starts OK.
    #[tokio::test]
    async fn init_fail_scripts_start_failed() {
        // The engine's inputs are not read here: only the state before the first run.
        struct In;
        impl From<ScriptVerdict> for In {
            fn from(_: ScriptVerdict) -> Self {
                In
            }
        }
        impl From<FileValue> for In {
            fn from(_: FileValue) -> Self {
                In
            }
        }
        impl From<ProcQuorum> for In {
            fn from(_: ProcQuorum) -> Self {
                In
            }
        }
        // Scripts that take longer than the test: only the initial state is seen.
        let text = "vrrp_script vital {\n script \"/bin/sleep 30\"\n interval 60\n init_fail\n}\n\
                    vrrp_script heavy {\n script \"/bin/sleep 30\"\n interval 60\n weight -50\n init_fail\n}\n\
                    vrrp_script fresh {\n script \"/bin/sleep 30\"\n interval 60\n}\n";
        let l = crate::config::parse_str("t.conf", text);
        assert!(!l.has_errors(), "{}", l.render());
        let runner = Runner::new(&l.config.global).unwrap();
        let (tx, _rx) = mpsc::channel::<In>(4);
        let mut t = Trackers::default();
        t.restart(&l.config, &runner, &tx);
        let ok: Vec<(&str, bool)> = t.list().iter().map(|s| (s.cfg.name.as_str(), s.ok)).collect();
        assert_eq!(ok, [("vital", false), ("heavy", false), ("fresh", true)]);
        let mut v = VrrpInstance::new("VI_1".into(), Span::default());
        v.track_script = vec![tracked("vital", None), tracked("heavy", None), tracked("fresh", None)];
        assert_eq!(
            weigh(&v, "eth0", t.list(), &[], (&[], &[]), NO_BFD, |_: &str| true),
            (-50, vec!["vrrp_script vital failed".to_string()])
        );
        t.stop();
    }

    /// A script that cannot run (missing, unknown user, insecure) is disabled as keepalived
    /// disables it: no weight, no fault, whatever its weight or last verdict.
    #[test]
    fn disabled_scripts_affect_nothing() {
        let mut v = VrrpInstance::new("VI_1".into(), Span::default());
        v.track_script = vec![tracked("vital", None), tracked("heavy", None)];
        let off = |t: Tracker| Tracker { disabled: Some("not found".into()), ..t };
        let scripts = [off(script("vital", 0, false)), off(script("heavy", -50, false))];
        let running = |_: &str| true;
        assert_eq!(weigh(&v, "eth0", &scripts, &[], (&[], &[]), NO_BFD, running), (0, vec![]));
        // The same scripts enabled and failed: a fault and a weight (the old behaviour).
        let scripts = [script("vital", 0, false), script("heavy", -50, false)];
        assert_eq!(
            weigh(&v, "eth0", &scripts, &[], (&[], &[]), NO_BFD, running),
            (-50, vec!["vrrp_script vital failed".to_string()])
        );
    }
}

#[cfg(test)]
mod process_tests {
    use super::*;
    use crate::config::Span;

    fn procs(text: &str, ups: &[Option<bool>]) -> Vec<ProcTracker> {
        let l = crate::config::parse_str("t.conf", text);
        l.config.track_processes.into_iter().zip(ups).map(|(cfg, &up)| ProcTracker { cfg, up }).collect()
    }

    fn entry(name: &str, weight: Option<i32>, reverse: Option<bool>) -> Tracked {
        Tracked { name: name.into(), weight, reverse, span: Span::default() }
    }

    /// keepalived's process_update_track_process_status: weight 0 faults without quorum
    /// (with reverse, with it); a weight adds as a script's does; unknown is a fault.
    #[test]
    fn quorum_moves_priority_or_faults() {
        let text = "vrrp_track_process a {\n process a\n}\n\
                    vrrp_track_process b {\n process b\n weight -20\n}\n\
                    vrrp_track_process c {\n process c\n weight 10 reverse\n}\n";
        let mut v = VrrpInstance::new("VI_1".into(), Span::default());
        v.dont_track_primary = true;
        v.track_process = vec![entry("a", None, None), entry("b", None, None), entry("c", None, None)];
        let run = |ups: &[Option<bool>], v: &VrrpInstance, group: &[Tracked]| {
            weigh(v, "eth0", &[], &[], (&procs(text, ups), group), super::tests::NO_BFD, |_| true)
        };
        assert_eq!(run(&[Some(true), Some(true), Some(true)], &v, &[]), (-10, vec![]));
        assert_eq!(run(&[Some(true), Some(false), Some(false)], &v, &[]), (-20, vec![]));
        let (_, faults) = run(&[Some(false), Some(true), Some(false)], &v, &[]);
        assert_eq!(faults, ["track_process a quorum lost"]);
        let (_, faults) = run(&[None, Some(true), Some(false)], &v, &[]);
        assert_eq!(faults, ["track_process a: process events are not received"]);
        // weight 0 reverse: a fault while the quorum is met.
        v.track_process = vec![entry("a", Some(0), Some(true))];
        assert_eq!(run(&[Some(false), None, None], &v, &[]), (0, vec![]));
        assert_eq!(run(&[Some(true), None, None], &v, &[]).1, ["track_process a quorum gained (reverse)"]);
        // A sync group's entry: added, or sets the weight of the instance's weighted one.
        v.track_process = vec![entry("b", Some(-5), None)];
        let group = [entry("b", Some(-30), None), entry("c", None, Some(false))];
        assert_eq!(run(&[None, Some(false), Some(true)], &v, &group), (-30 + 10, vec![]));
        v.track_process = vec![entry("b", Some(0), None)];
        let (w, faults) = run(&[None, Some(false), Some(false)], &v, &group);
        assert_eq!((w, faults.len()), (0, 1));
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;

    /// keepalived's rules (vrrp_track.c, track_file.c), case by case.
    #[test]
    fn effects_follow_keepalived() {
        // Scripts and interfaces: weight 0 is fault-or-nothing; reverse flips which.
        assert_eq!(state_effect(0, false, false), None);
        assert_eq!(state_effect(0, false, true), Some(0));
        assert_eq!(state_effect(0, true, true), None);
        assert_eq!(state_effect(0, true, false), Some(0));
        assert_eq!(state_effect(10, false, true), Some(10));
        assert_eq!(state_effect(10, false, false), Some(0));
        assert_eq!(state_effect(10, true, true), Some(-10));
        assert_eq!(state_effect(-10, false, false), Some(-10));
        assert_eq!(state_effect(-10, true, false), Some(10));
        // Files: value × weight, a fault at -254 and below, at most 253.
        assert_eq!(file_effect(1, false, 5), Some(5));
        assert_eq!(file_effect(-2, false, 5), Some(-10));
        assert_eq!(file_effect(2, true, 5), Some(-10));
        assert_eq!(file_effect(1, false, -254), None);
        assert_eq!(file_effect(10, false, 100), Some(253));
        assert_eq!(file_effect(0, false, 0), Some(0));
        assert_eq!(file_effect(0, false, 3), None);
        assert_eq!(file_effect(0, true, 0), None);
        assert_eq!(file_effect(0, true, 3), Some(0));
    }
}
