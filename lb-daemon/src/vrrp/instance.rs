//! One VRRP instance's state machine (RFC 5798 §6.4, with keepalived's choices), pure: it is
//! fed the time, adverts and tracking changes, and answers with what to do. The engine does
//! the I/O; tests drive it with a fake clock.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::packet::Advert;

/// An instance's (or sync group's) state. The state file, `status` and dumps show it by
/// its keepalived name (`MASTER`), and `status` reads it back from the state file.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub enum State {
    #[default]
    Init,
    Backup,
    Master,
    Fault,
    /// After a graceful stop.
    Stopped,
}

impl State {
    pub const ALL: [State; 5] = [State::Init, State::Backup, State::Master, State::Fault, State::Stopped];

    pub fn name(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
            State::Stopped => "STOP",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// The name in quotes, as the data and stats dumps (`{:#?}` of the status) have always
/// printed it.
impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.name(), f)
    }
}

impl std::str::FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        State::ALL.into_iter().find(|st| st.name() == s).ok_or_else(|| format!("unknown VRRP state `{s}`"))
    }
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for State {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a transition happened, for the log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send an advert with this priority now.
    Advert(u8),
    /// The state changed; the engine adds/removes VIPs, sends gratuitous ARPs, notifies.
    Transition { from: State, to: State, why: String },
    /// Master heard a lower-priority master: re-announce the VIPs (keepalived's
    /// `garp_lower_prio_repeat` / `_delay`) so the network converges on us (split-brain
    /// heal); the advert that forces a new election, unless `lower_prio_no_advert`, comes as
    /// its own `Advert`.
    Reassert,
}

/// An instance's fixed settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub version: u8,
    pub base_priority: u8,
    pub advert_int_cs: u16,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// This node's address on the link (equal priorities: the higher address wins).
    pub primary: IpAddr,
    /// keepalived's `down_timer_adverts`: Master_Down_Interval = N × interval + skew (RFC: 3).
    pub down_timer_adverts: u8,
    /// keepalived's `lower_prio_no_advert`: a master hearing a lower priority advert sends
    /// no advert back (and keeps its advert timer).
    pub lower_prio_no_advert: bool,
    /// keepalived's `higher_prio_send_advert`: a master hearing a higher priority advert
    /// sends one advert at its own priority before it yields (off by default).
    pub higher_prio_send_advert: bool,
}

#[derive(Clone, Debug)]
pub struct Instance {
    pub s: Settings,
    pub state: State,
    /// Sum of tracking weights (scripts, interfaces), applied to non-owner priorities.
    pub track_weight: i32,
    /// Reasons the instance is in FAULT (a down interface, a failed weightless script).
    pub faults: Vec<String>,
    /// v3: the master's advertised interval, learned as a backup.
    master_adver_int_cs: u16,
    /// Next advert (master) or master-down moment (backup).
    deadline: Option<Instant>,
    started: Instant,
    /// `vrrp_startup_delay`: until then a backup's Master_Down timer runs from this moment,
    /// not from now (keepalived's `vrrp_delayed_start_time` in `vrrp_init_instance_sands`).
    pub delayed_start: Option<Instant>,
}

impl Instance {
    pub fn new(s: Settings, now: Instant) -> Self {
        let int = s.advert_int_cs;
        Self {
            s,
            state: State::Init,
            track_weight: 0,
            faults: Vec::new(),
            master_adver_int_cs: int,
            deadline: None,
            started: now,
            delayed_start: None,
        }
    }

    /// Effective priority: 255 for the address owner, else base + tracking, within 1..=254.
    pub fn priority(&self) -> u8 {
        if self.s.base_priority == 255 {
            return 255;
        }
        (i32::from(self.s.base_priority) + self.track_weight).clamp(1, 254) as u8
    }

    fn cs(cs: u16) -> Duration {
        Duration::from_millis(u64::from(cs) * 10)
    }

    /// Skew_Time: v2 (256 − priority) / 256 s; v3 scaled by the master's interval.
    pub fn skew(&self) -> Duration {
        let p = u64::from(256 - u16::from(self.priority()));
        if self.s.version == 2 {
            Duration::from_micros(p * 1_000_000 / 256)
        } else {
            Duration::from_micros(p * u64::from(self.master_adver_int_cs) * 10_000 / 256)
        }
    }

    /// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time; keepalived's
    /// `down_timer_adverts` replaces the 3 (`VRRP_MS_DOWN_TIMER`).
    pub fn master_down_interval(&self) -> Duration {
        let int = if self.s.version == 2 { self.s.advert_int_cs } else { self.master_adver_int_cs };
        Self::cs(int) * u32::from(self.s.down_timer_adverts.max(1)) + self.skew()
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Every state change goes through here: one `Transition` effect per change.
    fn enter(&mut self, to: State, why: impl Into<String>, out: &mut Vec<Effect>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        out.push(Effect::Transition { from, to, why: why.into() });
    }

    /// keepalived's `vrrp_state_goto_master`: advertise at once, then every interval.
    fn goto_master(&mut self, now: Instant, why: &str, out: &mut Vec<Effect>) {
        self.enter(State::Master, why, out);
        out.push(Effect::Advert(self.priority()));
        self.deadline = Some(now + Self::cs(self.s.advert_int_cs));
    }

    /// Listen for a master for a Master_Down_Interval.
    fn goto_backup(&mut self, now: Instant, why: impl Into<String>, out: &mut Vec<Effect>) {
        self.enter(State::Backup, why, out);
        self.deadline = Some(self.backup_wait(now, self.master_down_interval()));
    }

    /// A backup's timer: `wait` from now, or from the delayed start while it is ahead.
    fn backup_wait(&self, now: Instant, wait: Duration) -> Instant {
        self.delayed_start.filter(|d| *d > now).unwrap_or(now) + wait
    }

    /// No timers in FAULT; a master hands over at once (the backup takes over after its
    /// skew) with a priority-0 advert.
    fn goto_fault(&mut self, why: impl Into<String>, out: &mut Vec<Effect>) {
        let was_master = self.state == State::Master;
        self.enter(State::Fault, why, out);
        self.deadline = None;
        if was_master {
            out.push(Effect::Advert(0));
        }
    }

    /// Leaves INIT: the address owner takes over at once; everyone else listens for a
    /// Master_Down_Interval first (keepalived waits one advert interval + skew with a
    /// non-owner `state MASTER`; here the full interval).
    pub fn start(&mut self, now: Instant) -> Vec<Effect> {
        let mut out = Vec::new();
        self.started = now;
        if !self.faults.is_empty() {
            let why = self.faults.join(", ");
            self.enter(State::Fault, why, &mut out);
        } else if self.priority() == 255 {
            self.goto_master(now, "address owner (priority 255)", &mut out);
        } else {
            self.goto_backup(now, "start", &mut out);
        }
        out
    }

    /// Leaves INIT as master straight away: the node still holds every VIP (a restart of a
    /// master). Faults still win.
    pub fn resume(&mut self, now: Instant) -> Vec<Effect> {
        if !self.faults.is_empty() {
            return self.start(now);
        }
        let mut out = Vec::new();
        self.started = now;
        self.goto_master(now, "resumed: the VIPs are still here from the previous run", &mut out);
        out
    }

    /// The deadline passed (or not yet: then nothing happens).
    pub fn on_timer(&mut self, now: Instant) -> Vec<Effect> {
        let mut out = Vec::new();
        let Some(d) = self.deadline else { return out };
        if now < d {
            return out;
        }
        match self.state {
            State::Master => self.master_timer(now, d, &mut out),
            State::Backup => self.backup_timer(now, &mut out),
            State::Init | State::Fault | State::Stopped => self.deadline = None,
        }
        out
    }

    /// keepalived's `vrrp_state_master_tx`: the next advert, on the interval's grid (a late
    /// wake-up does not push every later advert back).
    fn master_timer(&mut self, now: Instant, due: Instant, out: &mut Vec<Effect>) {
        out.push(Effect::Advert(self.priority()));
        let int = Self::cs(self.s.advert_int_cs);
        self.deadline = Some(due.max(now - int) + int);
    }

    /// keepalived's `vrrp_state_backup` timeout: no master within Master_Down_Interval.
    fn backup_timer(&mut self, now: Instant, out: &mut Vec<Effect>) {
        self.goto_master(now, "no advert from a master within Master_Down_Interval", out);
    }

    /// An advert that passed every receive check, from `src`.
    pub fn on_advert(&mut self, now: Instant, src: IpAddr, a: &Advert) -> Vec<Effect> {
        let mut out = Vec::new();
        match self.state {
            State::Backup => self.backup_rx(now, a),
            State::Master => self.master_rx(now, src, a, &mut out),
            State::Init | State::Fault | State::Stopped => {}
        }
        out
    }

    /// keepalived's `vrrp_state_backup` on an advert: a live master resets the timer.
    fn backup_rx(&mut self, now: Instant, a: &Advert) {
        if a.priority == 0 {
            // The master is leaving: take over after Skew_Time only.
            self.deadline = Some(self.backup_wait(now, self.skew()));
            return;
        }
        if self.s.version == 3 {
            self.master_adver_int_cs = a.interval_cs.max(1);
        }
        let in_preempt_delay = now < self.started + self.s.preempt_delay;
        if !self.s.preempt || a.priority >= self.priority() || in_preempt_delay {
            self.deadline = Some(self.backup_wait(now, self.master_down_interval()));
        }
        // Else a lower priority master and we preempt: let the timer run out.
    }

    /// keepalived's `vrrp_state_master_rx`: yield to a better master, re-assert over a
    /// worse one.
    fn master_rx(&mut self, now: Instant, src: IpAddr, a: &Advert, out: &mut Vec<Effect>) {
        let mine = self.priority();
        let theirs_wins = a.priority > mine || (a.priority == mine && src > self.s.primary);
        if a.priority == 0 {
            out.push(Effect::Advert(mine));
            self.deadline = Some(now + Self::cs(self.s.advert_int_cs));
        } else if theirs_wins {
            // With higher_prio_send_advert, a last advert at our priority before yielding:
            // the winner hears a lower-priority master and re-announces the VIPs.
            if self.s.higher_prio_send_advert {
                out.push(Effect::Advert(mine));
            }
            if self.s.version == 3 {
                self.master_adver_int_cs = a.interval_cs.max(1);
            }
            self.goto_backup(now, format!("higher priority advert ({} from {src})", a.priority), out);
        } else {
            // keepalived's `vrrp_state_master_rx` on a lower priority: an advert (which
            // restarts the advert timer) unless `lower_prio_no_advert`, and the gratuitous
            // ARPs of `garp_lower_prio_repeat`.
            out.push(Effect::Reassert);
            if !self.s.lower_prio_no_advert {
                out.push(Effect::Advert(mine));
                self.deadline = Some(now + Self::cs(self.s.advert_int_cs));
            }
        }
    }

    /// Tracking changed: new weight sum and fault reasons.
    pub fn track(&mut self, now: Instant, weight: i32, faults: Vec<String>) -> Vec<Effect> {
        let mut out = Vec::new();
        let before = self.priority();
        self.track_weight = weight;
        self.faults = faults;
        match self.state {
            State::Init | State::Stopped => {}
            State::Fault if self.faults.is_empty() => self.goto_backup(now, "fault cleared", &mut out),
            State::Fault => {}
            State::Master | State::Backup if !self.faults.is_empty() => {
                self.goto_fault(self.faults.join(", "), &mut out)
            }
            State::Master if self.priority() != before => {
                // Advertise the new priority right away: a backup may now preempt us.
                out.push(Effect::Advert(self.priority()));
                self.deadline = Some(now + Self::cs(self.s.advert_int_cs));
            }
            State::Master | State::Backup => {}
        }
        out
    }

    /// A sync group moves this member with the others (`sync_group::SyncGroup::followers`).
    pub fn follow_group(&mut self, now: Instant, to: State, why: &str) -> Vec<Effect> {
        let mut out = Vec::new();
        match to {
            State::Master if self.state == State::Backup => self.goto_master(now, why, &mut out),
            State::Backup if self.state == State::Master => self.goto_backup(now, why.to_string(), &mut out),
            State::Backup if self.state == State::Fault && self.faults.is_empty() => {
                self.goto_backup(now, why.to_string(), &mut out)
            }
            State::Fault if matches!(self.state, State::Master | State::Backup) => self.goto_fault(why, &mut out),
            _ => {}
        }
        out
    }

    /// keepalived's `set_vrrp_backup`: something else deleted one of a master's addresses
    /// (`what`). It leaves as a stopping master does (a priority-0 advert, then its other
    /// addresses go) and listens for a Skew_Time only: with no other master it takes over
    /// again at once and adds the addresses back.
    pub fn address_lost(&mut self, now: Instant, what: &str) -> Vec<Effect> {
        let mut out = Vec::new();
        if self.state != State::Master {
            return out;
        }
        out.push(Effect::Advert(0));
        self.enter(State::Backup, format!("{what} was deleted"), &mut out);
        self.deadline = Some(now + self.skew());
        out
    }

    /// Graceful stop: a master sends a priority-0 advert so a backup takes over at once.
    pub fn stop(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        if self.state == State::Master {
            out.push(Effect::Advert(0));
        }
        self.enter(State::Stopped, "stopping", &mut out);
        self.deadline = None;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(prio: u8) -> Settings {
        Settings {
            version: 2,
            base_priority: prio,
            advert_int_cs: 100,
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary: "192.0.2.1".parse().unwrap(),
            down_timer_adverts: 3,
            lower_prio_no_advert: false,
            higher_prio_send_advert: false,
        }
    }

    fn advert(prio: u8) -> Advert {
        Advert { version: 2, vrid: 1, priority: prio, interval_cs: 100, addrs: vec![], password: None }
    }

    fn transitions(e: &[Effect]) -> Vec<State> {
        e.iter().filter_map(|e| if let Effect::Transition { to, .. } = e { Some(*to) } else { None }).collect()
    }

    const PEER: &str = "192.0.2.2";

    /// keepalived's `set_vrrp_backup`: a master whose address was deleted sends priority 0,
    /// becomes backup and takes over again after Skew_Time unless a master is heard; a
    /// backup is not moved.
    #[test]
    fn a_master_losing_an_address_hands_over_and_returns_after_the_skew() {
        let t0 = Instant::now();
        let mut i = Instance::new(settings(100), t0);
        i.start(t0);
        i.on_timer(t0 + i.master_down_interval());
        assert_eq!(i.state, State::Master);
        let t1 = t0 + Duration::from_secs(10);
        let e = i.address_lost(t1, "192.0.2.100");
        assert_eq!(e[0], Effect::Advert(0));
        assert_eq!(transitions(&e), [State::Backup]);
        assert_eq!(i.deadline(), Some(t1 + i.skew()));
        assert!(i.address_lost(t1, "192.0.2.100").is_empty(), "a backup has nothing to lose");
        assert_eq!(transitions(&i.on_timer(t1 + i.skew())), [State::Master]);
    }

    #[test]
    fn timers_follow_the_rfc() {
        let i = Instance::new(settings(100), Instant::now());
        // v2: skew = (256-100)/256 s; down = 3 s + skew.
        assert_eq!(i.skew(), Duration::from_micros(609_375));
        assert_eq!(i.master_down_interval(), Duration::from_micros(3_609_375));
        let mut v3 = Instance::new(Settings { version: 3, advert_int_cs: 10, ..settings(200) }, Instant::now());
        assert_eq!(v3.skew(), Duration::from_micros(56 * 10 * 10_000 / 256));
        v3.master_adver_int_cs = 100;
        assert_eq!(v3.master_down_interval(), Duration::from_secs(3) + Duration::from_micros(56 * 1_000_000 / 256));
    }

    /// `vrrp_startup_delay`: a backup's timers run from the end of the delay while it is
    /// ahead (at start, and when an advert resets them), from now after it; the address
    /// owner takes over at once all the same.
    #[test]
    fn a_startup_delay_holds_back_the_first_takeover_only() {
        let t0 = Instant::now();
        let delay = Duration::from_secs(5);
        let mut i = Instance::new(settings(100), t0);
        i.delayed_start = Some(t0 + delay);
        i.start(t0);
        let down = i.master_down_interval();
        assert_eq!(i.deadline(), Some(t0 + delay + down));
        assert!(i.on_timer(t0 + down).is_empty(), "took over inside the delay");
        i.on_advert(t0 + Duration::from_secs(1), "192.0.2.9".parse().unwrap(), &advert(200));
        assert_eq!(i.deadline(), Some(t0 + delay + down));
        let later = t0 + Duration::from_secs(6);
        i.on_advert(later, "192.0.2.9".parse().unwrap(), &advert(200));
        assert_eq!(i.deadline(), Some(later + down));
        assert_eq!(i.state, State::Backup);
        let mut owner = Instance::new(settings(255), t0);
        owner.delayed_start = Some(t0 + delay);
        owner.start(t0);
        assert_eq!(owner.state, State::Master);
    }

    #[test]
    fn down_timer_adverts_sets_how_many_adverts_a_backup_waits() {
        // keepalived's VRRP_MS_DOWN_TIMER: N × interval + skew, v2 and v3 alike.
        let t0 = Instant::now();
        let mut i = Instance::new(Settings { down_timer_adverts: 5, ..settings(100) }, t0);
        assert_eq!(i.master_down_interval(), Duration::from_secs(5) + i.skew());
        i.start(t0);
        let t1 = t0 + Duration::from_secs(1);
        i.on_advert(t1, PEER.parse().unwrap(), &advert(150));
        // The RFC's 3 adverts plus skew pass: still backup; at 5 + skew it takes over.
        assert!(i.on_timer(t1 + Duration::from_secs(4)).is_empty());
        assert_eq!(i.state, State::Backup);
        assert_eq!(transitions(&i.on_timer(t1 + Duration::from_secs(5) + i.skew())), [State::Master]);
        let mut v3 = Instance::new(Settings { version: 3, down_timer_adverts: 1, ..settings(200) }, t0);
        v3.master_adver_int_cs = 50;
        assert_eq!(v3.master_down_interval(), Duration::from_millis(500) + v3.skew());
    }

    #[test]
    fn a_master_hearing_a_lower_priority_answers_unless_lower_prio_no_advert() {
        let t0 = Instant::now();
        let peer: IpAddr = PEER.parse().unwrap();
        for no_advert in [false, true] {
            let mut m = Instance::new(Settings { lower_prio_no_advert: no_advert, ..settings(100) }, t0);
            m.start(t0);
            let t1 = t0 + m.master_down_interval();
            m.on_timer(t1);
            assert_eq!(m.state, State::Master);
            let next = m.deadline();
            let later = t1 + Duration::from_millis(300);
            let e = m.on_advert(later, peer, &advert(50));
            // The gratuitous ARPs (garp_lower_prio_repeat) come either way; the advert that
            // forces a new election, restarting the advert timer, only without the option.
            assert!(e.contains(&Effect::Reassert));
            if no_advert {
                assert_eq!(e, [Effect::Reassert]);
                assert_eq!(m.deadline(), next, "the advert timer keeps its grid");
            } else {
                assert!(e.contains(&Effect::Advert(100)));
                assert_eq!(m.deadline(), Some(later + Duration::from_secs(1)));
            }
            assert_eq!(m.state, State::Master);
        }
    }

    #[test]
    fn backup_takes_over_when_the_master_falls_silent() {
        let t0 = Instant::now();
        let mut i = Instance::new(settings(100), t0);
        assert_eq!(transitions(&i.start(t0)), [State::Backup]);
        let t1 = t0 + Duration::from_secs(1);
        assert!(i.on_advert(t1, PEER.parse().unwrap(), &advert(150)).is_empty());
        // Just before Master_Down_Interval after the last advert: still backup.
        assert!(i.on_timer(t1 + i.master_down_interval() - Duration::from_millis(1)).is_empty());
        let e = i.on_timer(t1 + i.master_down_interval());
        assert_eq!(transitions(&e), [State::Master]);
        assert!(e.contains(&Effect::Advert(100)));
        // Then an advert every second.
        let next = i.deadline().unwrap();
        assert_eq!(i.on_timer(next), [Effect::Advert(100)]);
    }

    #[test]
    fn priority_zero_means_take_over_after_skew() {
        let t0 = Instant::now();
        let mut i = Instance::new(settings(100), t0);
        i.start(t0);
        i.on_advert(t0, PEER.parse().unwrap(), &advert(0));
        assert_eq!(i.deadline(), Some(t0 + i.skew()));
        assert_eq!(transitions(&i.on_timer(t0 + i.skew())), [State::Master]);
    }

    #[test]
    fn preemption_rules() {
        let t0 = Instant::now();
        let peer: IpAddr = PEER.parse().unwrap();
        // Preempt (default): a lower-priority master does not reset our timer.
        let mut i = Instance::new(settings(150), t0);
        i.start(t0);
        let d = i.deadline();
        i.on_advert(t0 + Duration::from_secs(1), peer, &advert(100));
        assert_eq!(i.deadline(), d);
        // nopreempt: it does.
        let mut n = Instance::new(Settings { preempt: false, ..settings(150) }, t0);
        n.start(t0);
        n.on_advert(t0 + Duration::from_secs(1), peer, &advert(100));
        assert!(n.deadline() > d);
        // preempt_delay: only once the delay since start has passed.
        let mut p = Instance::new(Settings { preempt_delay: Duration::from_secs(10), ..settings(150) }, t0);
        p.start(t0);
        p.on_advert(t0 + Duration::from_secs(1), peer, &advert(100));
        assert!(p.deadline() > d);
        let late = t0 + Duration::from_secs(11);
        let before = p.deadline();
        p.on_advert(late, peer, &advert(100));
        assert_eq!(p.deadline(), before);
    }

    #[test]
    fn master_yields_to_higher_priority_or_equal_priority_higher_address() {
        let t0 = Instant::now();
        let mut i = Instance::new(settings(255), t0);
        assert_eq!(transitions(&i.start(t0)), [State::Master], "address owner");
        let mut m = Instance::new(settings(100), t0);
        m.start(t0);
        m.on_timer(t0 + m.master_down_interval());
        assert_eq!(m.state, State::Master);
        // Lower priority: we re-assert (split-brain heal).
        let e = m.on_advert(t0, PEER.parse().unwrap(), &advert(50));
        assert!(e.contains(&Effect::Reassert));
        // Equal priority from a lower address: we stay; from a higher one: we yield.
        assert!(transitions(&m.on_advert(t0, "192.0.2.0".parse().unwrap(), &advert(100))).is_empty());
        let e = m.on_advert(t0, PEER.parse().unwrap(), &advert(100));
        assert_eq!(transitions(&e), [State::Backup]);
    }

    #[test]
    fn a_master_yielding_answers_only_with_higher_prio_send_advert() {
        let t0 = Instant::now();
        for send in [false, true] {
            let mut m = Instance::new(Settings { higher_prio_send_advert: send, ..settings(100) }, t0);
            m.start(t0);
            m.on_timer(t0 + m.master_down_interval());
            assert_eq!(m.state, State::Master);
            let e = m.on_advert(t0, PEER.parse().unwrap(), &advert(150));
            assert_eq!(transitions(&e), [State::Backup]);
            let adverts: Vec<&Effect> = e.iter().filter(|e| matches!(e, Effect::Advert(_))).collect();
            assert_eq!(adverts, if send { vec![&Effect::Advert(100)] } else { vec![] }, "send {send}");
        }
    }

    #[test]
    fn tracking_weights_and_faults() {
        let t0 = Instant::now();
        let mut m = Instance::new(settings(100), t0);
        m.start(t0);
        m.on_timer(t0 + m.master_down_interval());
        // A failing script with weight -60: the new priority is advertised at once.
        assert_eq!(m.track(t0, -60, vec![]), [Effect::Advert(40)]);
        assert_eq!(m.priority(), 40);
        // Clamped to 1..=254.
        m.track(t0, -200, vec![]);
        assert_eq!(m.priority(), 1);
        // An interface down: FAULT, with a priority-0 advert as we were master.
        let e = m.track(t0, 0, vec!["eth0 down".into()]);
        assert_eq!(transitions(&e), [State::Fault]);
        assert!(e.contains(&Effect::Advert(0)));
        assert_eq!(transitions(&m.track(t0, 0, vec![])), [State::Backup]);
        // Graceful stop of a master: priority 0.
        m.on_timer(m.deadline().unwrap());
        assert_eq!(m.state, State::Master);
        let e = m.stop();
        assert_eq!(e[0], Effect::Advert(0));
        assert_eq!(transitions(&e), [State::Stopped]);
    }

    #[test]
    fn states_read_and_print_as_keepalived_names() {
        for st in State::ALL {
            let json = serde_json::to_string(&st).unwrap();
            assert_eq!(json, format!("\"{}\"", st.name()));
            assert_eq!(serde_json::from_str::<State>(&json).unwrap(), st);
            assert_eq!(format!("{st:?}"), json, "dumps print the quoted name");
        }
        assert_eq!(format!("{:<7}|", State::Master), "MASTER |");
        assert!(serde_json::from_str::<State>("\"master\"").is_err());
    }
}
