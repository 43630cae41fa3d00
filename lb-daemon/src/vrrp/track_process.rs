//! `vrrp_track_process`, the pure part: whether a process (its comm and command line) matches
//! a tracker, and the counting of matching processes against `quorum..=quorum_max` with
//! keepalived 2.2.7's `fork_delay` / `terminate_delay` rules (core/track_process.c). The
//! listener that feeds it process events and /proc scans is `proc_events.rs`.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::config::{ParamMatch, TrackProcess};

/// Whether a process with `comm` (/proc/PID/comm) and `cmdline` (/proc/PID/cmdline: the
/// arguments, each ended by a NUL) is one `t` counts. Without `full_command` the name is
/// compared with the comm; with it, with the command line's first word; parameters as
/// `param_match` says. Exact comparisons, no patterns (keepalived's rule).
pub fn matches(t: &TrackProcess, comm: &str, cmdline: &[u8]) -> bool {
    let Some(want) = t.process.as_deref() else { return false };
    if !t.full_command {
        return comm == want;
    }
    let (name, params) = match cmdline.iter().position(|&b| b == 0) {
        Some(i) => (&cmdline[..i], &cmdline[i + 1..]),
        None => (cmdline, &[][..]),
    };
    name == want.as_bytes() && (t.param_match == ParamMatch::None || params_match(t, params))
}

/// keepalived's `check_params`: `params` (NUL-ended words) against the configured ones.
fn params_match(t: &TrackProcess, params: &[u8]) -> bool {
    let want: Vec<u8> = t.params.iter().flat_map(|p| p.bytes().chain([0])).collect();
    let configured = !t.params.is_empty();
    if params.len() < want.len() {
        return false;
    }
    match t.param_match {
        ParamMatch::Exact => params.len() == want.len() && (!configured || params == want.as_slice()),
        _ if !configured => true,
        ParamMatch::Partial => params[..want.len()] == want[..],
        // The last configured word may be the start of the process's.
        ParamMatch::Initial => params[..want.len() - 1] == want[..want.len() - 1],
        ParamMatch::None => true,
    }
}

/// Whether `count` matching processes make the quorum.
pub fn in_range(t: &TrackProcess, count: u32) -> bool {
    (t.quorum..=t.quorum_max).contains(&count)
}

/// The bytes of /proc/PID/cmdline worth reading for `specs` (keepalived reads the longest
/// configured name and parameters plus two bytes): enough to tell "exactly these" from "more".
pub fn cmdline_len(specs: &[TrackProcess]) -> Option<usize> {
    specs
        .iter()
        .filter(|t| t.full_command)
        .map(|t| {
            let name = t.process.as_deref().map_or(0, str::len) + 1;
            name + t.params.iter().map(|p| p.len() + 1).sum::<usize>() + 2
        })
        .max()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    /// A change caused by a fork waits `fork_delay`.
    Fork,
    /// A change caused by an exit waits `terminate_delay`.
    Terminate,
}

#[derive(Clone, Debug)]
struct Counter {
    count: u32,
    up: bool,
    timer: Option<(Pending, Instant)>,
}

/// A tracker's quorum changed (what the instances tracking it see).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub idx: usize,
    pub up: bool,
}

/// The processes counted for each tracker, by pid, and each tracker's quorum.
#[derive(Debug)]
pub struct Table {
    specs: Vec<TrackProcess>,
    counters: Vec<Counter>,
    pids: HashMap<u32, Vec<usize>>,
}

/// A process as a /proc scan sees it.
pub struct Seen {
    pub pid: u32,
    pub comm: String,
    pub cmdline: Vec<u8>,
}

impl Table {
    /// The table after the first scan: each quorum as it is now, without delay.
    pub fn new(specs: Vec<TrackProcess>, procs: &[Seen]) -> Self {
        let counters = specs.iter().map(|_| Counter { count: 0, up: false, timer: None }).collect();
        let mut t = Table { specs, counters, pids: HashMap::new() };
        t.count_all(procs);
        for (c, s) in t.counters.iter_mut().zip(&t.specs) {
            c.up = in_range(s, c.count);
        }
        t
    }

    pub fn specs(&self) -> &[TrackProcess] {
        &self.specs
    }

    pub fn up(&self, idx: usize) -> bool {
        self.counters[idx].up
    }

    pub fn count(&self, idx: usize) -> u32 {
        self.counters[idx].count
    }

    fn count_all(&mut self, procs: &[Seen]) {
        self.pids.clear();
        for c in &mut self.counters {
            c.count = 0;
        }
        for p in procs {
            for (idx, s) in self.specs.iter().enumerate() {
                if matches(s, &p.comm, &p.cmdline) {
                    self.pids.entry(p.pid).or_default().push(idx);
                    self.counters[idx].count += 1;
                }
            }
        }
    }

    /// A full rescan after lost events (keepalived's reinitialise): counts afresh; a quorum
    /// gained counts at once, one lost after `terminate_delay`.
    pub fn rescan(&mut self, procs: &[Seen], now: Instant) -> Vec<Change> {
        for c in &mut self.counters {
            c.timer = None;
        }
        self.count_all(procs);
        let mut out = Vec::new();
        for idx in 0..self.specs.len() {
            let now_in = in_range(&self.specs[idx], self.counters[idx].count);
            let delay = self.specs[idx].terminate_delay_us;
            if !now_in && self.counters[idx].up && delay > 0 {
                self.counters[idx].timer = Some((Pending::Terminate, now + Duration::from_micros(delay)));
            } else {
                self.set(idx, now_in, &mut out);
            }
        }
        out
    }

    fn set(&mut self, idx: usize, up: bool, out: &mut Vec<Change>) {
        if self.counters[idx].up != up {
            self.counters[idx].up = up;
            out.push(Change { idx, up });
        }
    }

    fn gain(&mut self, idx: usize, by_fork: bool, now: Instant, out: &mut Vec<Change>) {
        let (spec, c) = (&self.specs[idx], &mut self.counters[idx]);
        let before = in_range(spec, c.count);
        c.count += 1;
        let after = in_range(spec, c.count);
        if before == after {
            return;
        }
        match c.timer {
            // A process back before its predecessor's exit counted: no change at all.
            Some((Pending::Terminate, _)) => c.timer = None,
            _ if by_fork && spec.fork_delay_us > 0 => {
                c.timer = Some((Pending::Fork, now + Duration::from_micros(spec.fork_delay_us)));
                return;
            }
            _ => {}
        }
        self.set(idx, after, out);
    }

    fn lose(&mut self, idx: usize, by_exit: bool, now: Instant, out: &mut Vec<Change>) {
        let (spec, c) = (&self.specs[idx], &mut self.counters[idx]);
        let before = in_range(spec, c.count);
        c.count = c.count.saturating_sub(1);
        let after = in_range(spec, c.count);
        if before == after {
            return;
        }
        match c.timer {
            Some((Pending::Fork, _)) => c.timer = None,
            _ if by_exit && spec.terminate_delay_us > 0 => {
                c.timer = Some((Pending::Terminate, now + Duration::from_micros(spec.terminate_delay_us)));
                return;
            }
            _ => {}
        }
        self.set(idx, after, out);
    }

    fn counted(&self, pid: u32, idx: usize) -> bool {
        self.pids.get(&pid).is_some_and(|l| l.contains(&idx))
    }

    fn add(&mut self, pid: u32, idx: usize, by_fork: bool, now: Instant, out: &mut Vec<Change>) {
        self.pids.entry(pid).or_default().push(idx);
        self.gain(idx, by_fork, now, out);
    }

    fn remove(&mut self, pid: u32, idx: usize, now: Instant, out: &mut Vec<Change>) {
        if let Some(l) = self.pids.get_mut(&pid) {
            l.retain(|&i| i != idx);
            if l.is_empty() {
                self.pids.remove(&pid);
            }
        }
        self.lose(idx, false, now, out);
    }

    /// A process exec'd (or was seen for the first time): counted by every tracker it now
    /// matches, no longer by those it does not. No delay (keepalived's).
    pub fn exec(&mut self, pid: u32, comm: &str, cmdline: &[u8], now: Instant) -> Vec<Change> {
        let mut out = Vec::new();
        for idx in 0..self.specs.len() {
            let (m, was) = (matches(&self.specs[idx], comm, cmdline), self.counted(pid, idx));
            if m && !was {
                self.add(pid, idx, false, now, &mut out);
            } else if !m && was {
                self.remove(pid, idx, now, &mut out);
            }
        }
        out
    }

    /// A process changed its comm (prctl PR_SET_NAME): trackers of names (not of command
    /// lines) follow it at once.
    pub fn comm(&mut self, pid: u32, comm: &str, now: Instant) -> Vec<Change> {
        let mut out = Vec::new();
        for idx in 0..self.specs.len() {
            if self.specs[idx].full_command {
                continue;
            }
            let (m, was) = (matches(&self.specs[idx], comm, &[]), self.counted(pid, idx));
            if m && !was {
                self.add(pid, idx, false, now, &mut out);
            } else if !m && was {
                self.remove(pid, idx, now, &mut out);
            }
        }
        out
    }

    /// A counted process forked: the child counts for the same trackers; a quorum change it
    /// makes waits `fork_delay` (unless it undoes a pending exit).
    pub fn fork(&mut self, parent: u32, child: u32, now: Instant) -> Vec<Change> {
        let mut out = Vec::new();
        let Some(idxs) = self.pids.get(&parent).cloned() else { return out };
        for idx in idxs {
            if !self.counted(child, idx) {
                self.add(child, idx, true, now, &mut out);
            }
        }
        out
    }

    /// A counted process exited; a quorum change it makes waits `terminate_delay` (unless it
    /// undoes a pending fork).
    pub fn exit(&mut self, pid: u32, now: Instant) -> Vec<Change> {
        let mut out = Vec::new();
        for idx in self.pids.remove(&pid).unwrap_or_default() {
            self.lose(idx, true, now, &mut out);
        }
        out
    }

    /// When the next delay ends.
    pub fn next_due(&self) -> Option<Instant> {
        self.counters.iter().filter_map(|c| c.timer.map(|(_, at)| at)).min()
    }

    /// Delays that ended by `now`: the quorum is what the count says then.
    pub fn tick(&mut self, now: Instant) -> Vec<Change> {
        let mut out = Vec::new();
        for idx in 0..self.specs.len() {
            if self.counters[idx].timer.is_some_and(|(_, at)| at <= now) {
                self.counters[idx].timer = None;
                let up = in_range(&self.specs[idx], self.counters[idx].count);
                self.set(idx, up, &mut out);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(body: &str) -> TrackProcess {
        let text = format!("vrrp_track_process p {{\n{body}\n}}\n");
        let l = crate::config::parse_str("t.conf", &text);
        assert!(l.diagnostics.iter().all(|d| d.severity != crate::config::Severity::Error), "{:?}", l.diagnostics);
        l.config.track_processes[0].clone()
    }

    fn argv(words: &[&str]) -> Vec<u8> {
        words.iter().flat_map(|w| w.bytes().chain([0])).collect()
    }

    #[test]
    fn names_match_the_comm_or_the_command_line() {
        let t = spec("process nginx");
        assert!(matches(&t, "nginx", &argv(&["/usr/sbin/nginx"])));
        assert!(!matches(&t, "nginx2", &[]));
        assert!(!matches(&t, "ngin", &[]));
        let t = spec("process /usr/sbin/nginx\nfull_command");
        assert!(matches(&t, "nginx", &argv(&["/usr/sbin/nginx", "-g", "daemon off;"])));
        assert!(!matches(&t, "/usr/sbin/nginx", &argv(&["nginx"])));
        // No parameters configured and no param_match: any parameters.
        assert!(matches(&t, "x", &argv(&["/usr/sbin/nginx"])));
    }

    #[test]
    fn parameters_match_as_keepalived_compares_them() {
        // Parameters given: exact by default.
        let t = spec("process sleep 100 x");
        assert!(t.full_command);
        assert!(matches(&t, "sleep", &argv(&["sleep", "100", "x"])));
        assert!(!matches(&t, "sleep", &argv(&["sleep", "100", "x", "y"])));
        assert!(!matches(&t, "sleep", &argv(&["sleep", "100", "xy"])));
        assert!(!matches(&t, "sleep", &argv(&["sleep", "100"])));
        // partial: the first ones, whole words.
        let t = spec("process sleep 100\nparam_match partial");
        assert!(matches(&t, "sleep", &argv(&["sleep", "100", "x"])));
        assert!(!matches(&t, "sleep", &argv(&["sleep", "1000"])));
        // initial: the last may be the start of a longer word.
        let t = spec("process sleep 100\nparam_match initial");
        assert!(matches(&t, "sleep", &argv(&["sleep", "1000"])));
        assert!(matches(&t, "sleep", &argv(&["sleep", "100", "x"])));
        assert!(!matches(&t, "sleep", &argv(&["sleep", "10"])));
        // param_match alone: no parameters at all.
        let t = spec("process sleep\nparam_match");
        assert!(matches(&t, "sleep", &argv(&["sleep"])));
        assert!(!matches(&t, "sleep", &argv(&["sleep", "1"])));
        // partial without parameters: any.
        let t = spec("process sleep\nparam_match partial");
        assert!(matches(&t, "sleep", &argv(&["sleep", "1"])));
    }

    fn seen(pid: u32, comm: &str) -> Seen {
        Seen { pid, comm: comm.into(), cmdline: argv(&[comm]) }
    }

    #[test]
    fn quorum_follows_exec_and_exit() {
        let now = Instant::now();
        let mut t = Table::new(vec![spec("process d\nquorum 2")], &[seen(1, "d"), seen(2, "x")]);
        assert!(!t.up(0));
        assert_eq!(t.exec(2, "d", &argv(&["d"]), now), [Change { idx: 0, up: true }]);
        // Seen twice: counted once.
        assert!(t.exec(2, "d", &argv(&["d"]), now).is_empty());
        assert_eq!(t.count(0), 2);
        assert_eq!(t.exit(1, now), [Change { idx: 0, up: false }]);
        assert!(t.exit(77, now).is_empty());
        // An exec into another program stops counting it.
        assert_eq!(t.exec(3, "d", &[], now), [Change { idx: 0, up: true }]);
        assert_eq!(t.exec(3, "e", &[], now), [Change { idx: 0, up: false }]);
        assert_eq!(t.count(0), 1);
    }

    #[test]
    fn quorum_max_too_many_is_down() {
        let now = Instant::now();
        let mut t = Table::new(vec![spec("process d\nquorum_max 1")], &[seen(1, "d")]);
        assert!(t.up(0));
        assert_eq!(t.exec(2, "d", &[], now), [Change { idx: 0, up: false }]);
        assert_eq!(t.exit(2, now), [Change { idx: 0, up: true }]);
        // quorum_max 0: up while none runs.
        let mut t = Table::new(vec![spec("process d\nquorum_max 0")], &[]);
        assert!(t.up(0));
        assert_eq!(t.exec(2, "d", &[], now), [Change { idx: 0, up: false }]);
    }

    #[test]
    fn comm_changes_follow_names_only() {
        let now = Instant::now();
        let mut t = Table::new(vec![spec("process d"), spec("process d\nfull_command")], &[seen(1, "d")]);
        assert!(t.up(0) && t.up(1));
        assert_eq!(t.comm(1, "worker", now), [Change { idx: 0, up: false }]);
        assert!(t.up(1));
        assert_eq!(t.comm(1, "d", now), [Change { idx: 0, up: true }]);
    }

    #[test]
    fn delays_hold_changes_from_forks_and_exits() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut t = Table::new(vec![spec("process d\nfork_delay 1\nterminate_delay 2")], &[]);
        // An exec counts at once; a forked child of a counted process after fork_delay.
        assert_eq!(t.exec(1, "d", &[], t0), [Change { idx: 0, up: true }]);
        assert!(t.exit(1, t0).is_empty());
        assert_eq!(t.next_due(), Some(t0 + ms(2000)));
        assert!(t.tick(t0 + ms(1999)).is_empty());
        assert_eq!(t.tick(t0 + ms(2000)), [Change { idx: 0, up: false }]);
        assert_eq!(t.next_due(), None);
        // Back before terminate_delay ends: no change at all.
        t.exec(2, "d", &[], t0);
        assert!(t.exit(2, t0).is_empty());
        assert!(t.exec(3, "d", &[], t0 + ms(10)).is_empty());
        assert_eq!(t.next_due(), None);
        assert!(t.up(0));
        // A fork: the quorum (2) is reached fork_delay later.
        let mut t = Table::new(vec![spec("process d\nquorum 2\nfork_delay 1")], &[seen(1, "d")]);
        assert!(t.fork(1, 2, t0).is_empty());
        assert!(t.fork(9, 10, t0).is_empty());
        assert_eq!(t.tick(t0 + ms(1000)), [Change { idx: 0, up: true }]);
        // Children of untracked processes are not counted; a child exiting during its
        // fork_delay cancels it.
        let mut t = Table::new(vec![spec("process d\nquorum 2\nfork_delay 1")], &[seen(1, "d")]);
        t.fork(1, 2, t0);
        assert!(t.exit(2, t0).is_empty());
        assert_eq!(t.next_due(), None);
        assert!(!t.up(0));
    }

    /// `delay` is both delays at once (keepalived's `vrrp_tprocess_delay_general`).
    #[test]
    fn delay_holds_both_forks_and_exits() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut t = Table::new(vec![spec("process d\nquorum 2\ndelay 0.5")], &[seen(1, "d")]);
        assert!(t.fork(1, 2, t0).is_empty());
        assert!(t.tick(t0 + ms(499)).is_empty());
        assert_eq!(t.tick(t0 + ms(500)), [Change { idx: 0, up: true }]);
        assert!(t.exit(2, t0 + ms(600)).is_empty());
        assert_eq!(t.next_due(), Some(t0 + ms(1100)));
        assert_eq!(t.tick(t0 + ms(1100)), [Change { idx: 0, up: false }]);
    }

    #[test]
    fn a_rescan_counts_afresh() {
        let t0 = Instant::now();
        let mut t = Table::new(vec![spec("process d\nterminate_delay 1"), spec("process e")], &[seen(1, "d")]);
        assert_eq!(t.rescan(&[seen(5, "e")], t0), [Change { idx: 1, up: true }]);
        assert_eq!(t.tick(t0 + Duration::from_secs(1)), [Change { idx: 0, up: false }]);
        assert_eq!(t.exit(5, t0), [Change { idx: 1, up: false }]);
    }
}
