//! One BFD session's state machine (RFC 5880 asynchronous mode, as keepalived 2.2.7's
//! bfd_scheduler.c runs it): states Down/Init/Up/AdminDown, discriminators, negotiated
//! intervals, poll/final for timer changes, detection time. Pure: the caller hands in the
//! time and received packets, and asks what to send and when to wake up. The I/O is
//! `shell.rs`'s.

use std::time::{Duration, Instant};

/// A session's state (the packet's two-bit State field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl State {
    fn from_bits(b: u8) -> Self {
        match b & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

/// Diagnostic codes (RFC 5880 4.1).
pub const DIAG_NONE: u8 = 0;
pub const DIAG_EXPIRED: u8 = 1;
pub const DIAG_NBR_DOWN: u8 = 3;

/// A BFD control packet without authentication (24 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub diag: u8,
    pub state: State,
    pub poll: bool,
    pub fin: bool,
    pub cpi: bool,
    pub auth: bool,
    pub demand: bool,
    pub multipoint: bool,
    pub mult: u8,
    pub my_discr: u32,
    pub your_discr: u32,
    /// Microseconds.
    pub min_tx: u32,
    pub min_rx: u32,
    pub min_echo_rx: u32,
}

pub const PACKET_LEN: usize = 24;

impl Packet {
    /// Parses and checks a received packet as RFC 5880 6.8.6 (and keepalived's
    /// `bfd_check_packet`) do; `Err` says why it is discarded.
    pub fn parse(b: &[u8]) -> Result<Packet, &'static str> {
        if b.len() < PACKET_LEN {
            return Err("shorter than a BFD control packet");
        }
        if usize::from(b[3]) != b.len() {
            return Err("length field differs from the packet's size");
        }
        if b[0] >> 5 != 1 {
            return Err("not BFD version 1");
        }
        let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let p = Packet {
            diag: b[0] & 0x1f,
            state: State::from_bits(b[1] >> 6),
            poll: b[1] & 0x20 != 0,
            fin: b[1] & 0x10 != 0,
            cpi: b[1] & 0x08 != 0,
            auth: b[1] & 0x04 != 0,
            demand: b[1] & 0x02 != 0,
            multipoint: b[1] & 0x01 != 0,
            mult: b[2],
            my_discr: be(4),
            your_discr: be(8),
            min_tx: be(12),
            min_rx: be(16),
            min_echo_rx: be(20),
        };
        if p.mult == 0 {
            return Err("detect multiplier is zero");
        }
        if p.multipoint {
            return Err("multipoint bit set");
        }
        if p.my_discr == 0 {
            return Err("my discriminator is zero");
        }
        if p.your_discr == 0 && !matches!(p.state, State::Down | State::AdminDown) {
            return Err("your discriminator is zero and the state is not Down or AdminDown");
        }
        if p.poll && p.fin {
            return Err("both poll and final set");
        }
        if p.diag > 8 {
            return Err("unknown diagnostic");
        }
        Ok(p)
    }

    pub fn encode(&self) -> [u8; PACKET_LEN] {
        let mut b = [0u8; PACKET_LEN];
        b[0] = (1 << 5) | (self.diag & 0x1f);
        b[1] = ((self.state as u8) << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.fin) << 4)
            | (u8::from(self.cpi) << 3)
            | (u8::from(self.auth) << 2)
            | (u8::from(self.demand) << 1)
            | u8::from(self.multipoint);
        b[2] = self.mult;
        b[3] = PACKET_LEN as u8;
        b[4..8].copy_from_slice(&self.my_discr.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_discr.to_be_bytes());
        b[12..16].copy_from_slice(&self.min_tx.to_be_bytes());
        b[16..20].copy_from_slice(&self.min_rx.to_be_bytes());
        b[20..24].copy_from_slice(&self.min_echo_rx.to_be_bytes());
        b
    }
}

/// The configured side of a session (microseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub min_rx: u32,
    pub min_tx: u32,
    pub idle_tx: u32,
    pub mult: u8,
    pub passive: bool,
}

/// What a step tells the trackers: keepalived's BFD events, sent when the session comes up
/// and when it goes down from Up (not when the neighbour signalled AdminDown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Up,
    Down,
}

/// What to do after a step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Send a control packet now (`Session::packet`).
    pub send: bool,
    pub event: Option<Event>,
    /// A state change, for the log: (from, to, local diagnostic).
    pub changed: Option<(State, State, u8)>,
}

fn us(v: u32) -> Duration {
    Duration::from_micros(u64::from(v))
}

#[derive(Clone, Debug)]
pub struct Session {
    pub p: Params,
    pub state: State,
    pub remote_state: State,
    pub local_discr: u32,
    pub remote_discr: u32,
    pub local_diag: u8,
    pub remote_diag: u8,
    pub remote_min_rx: u32,
    pub remote_min_tx: u32,
    pub remote_mult: u8,
    pub remote_demand: bool,
    pub poll: bool,
    pub fin: bool,
    /// The interval we send at (negotiated), and the peer's (what detection counts on).
    pub local_tx_intv: u32,
    pub remote_tx_intv: u32,
    /// remote multiplier × remote_tx_intv.
    pub detect_time: u64,
    pub last_seen: Option<Instant>,
    next_tx: Option<Instant>,
    expire_at: Option<Instant>,
    reset_at: Option<Instant>,
    rng: u64,
}

impl Session {
    /// A session in Down, sending at the idle interval unless passive. `discr` is the
    /// local discriminator (non-zero, unique on this node); `seed` drives the jitter.
    pub fn new(p: Params, discr: u32, seed: u64, now: Instant) -> Self {
        let mut s = Session {
            p,
            state: State::Down,
            remote_state: State::Down,
            local_discr: discr,
            remote_discr: 0,
            local_diag: DIAG_NONE,
            remote_diag: DIAG_NONE,
            remote_min_rx: 1,
            remote_min_tx: 0,
            remote_mult: 0,
            remote_demand: false,
            poll: false,
            fin: false,
            local_tx_intv: p.idle_tx,
            remote_tx_intv: 0,
            detect_time: 0,
            last_seen: None,
            next_tx: None,
            expire_at: None,
            reset_at: None,
            rng: seed | 1,
        };
        if !p.passive {
            s.next_tx = Some(now);
        }
        s
    }

    /// The detection time: how long without a packet before an Up session goes Down.
    pub fn detection_time(&self) -> Duration {
        Duration::from_micros(self.detect_time)
    }

    /// When `on_timer` must run next.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.next_tx, self.expire_at, self.reset_at].into_iter().flatten().min()
    }

    /// The interval to the next periodic packet: the negotiated one less 10-25% jitter
    /// (RFC 5880 6.8.7; keepalived's `get_jitter`).
    fn tx_interval(&mut self) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let intv = u64::from(self.local_tx_intv);
        let (lo, hi) = (intv / 10, intv / 4);
        let jitter = if hi > lo { lo + self.rng % (hi - lo + 1) } else { lo };
        Duration::from_micros(intv - jitter)
    }

    /// The packet to send now; a final answers a poll once.
    pub fn packet(&mut self) -> Packet {
        if self.poll && self.fin {
            self.poll = false;
        }
        let pkt = Packet {
            diag: self.local_diag,
            state: self.state,
            poll: self.poll,
            fin: self.fin,
            cpi: false,
            auth: false,
            demand: false,
            multipoint: false,
            mult: self.p.mult,
            my_discr: self.local_discr,
            your_discr: self.remote_discr,
            min_tx: if self.state == State::Up { self.p.min_tx } else { self.p.idle_tx },
            min_rx: self.p.min_rx,
            min_echo_rx: 0,
        };
        self.fin = false;
        pkt
    }

    fn idle_tx(&mut self) {
        self.local_tx_intv = self.p.idle_tx.max(self.remote_min_rx);
    }

    fn fall(&mut self, old: State, step: &mut Step) {
        // RFC 5880: not Up, the desired min TX is at least one second.
        self.idle_tx();
        self.expire_at = None;
        if old == State::Up && self.remote_state != State::AdminDown {
            step.event = Some(Event::Down);
        }
    }

    fn down(&mut self, now: Instant, diag: u8, new_discr: u32, step: &mut Step) {
        let old = self.state;
        if old == State::Up {
            self.local_discr = new_discr;
        }
        self.state = State::Down;
        self.local_diag = diag;
        step.changed = Some((old, State::Down, diag));
        // keepalived resets the remote variables one detection time later.
        self.reset_at = Some(now + Duration::from_micros(self.detect_time));
        if self.p.passive {
            self.next_tx = None;
        }
        self.fall(old, step);
    }

    fn rise(&mut self, now: Instant) {
        self.local_diag = DIAG_NONE;
        self.reset_at = None;
        if self.expire_at.is_none() {
            self.expire_at = Some(now + Duration::from_micros(self.detect_time));
        }
    }

    fn up(&mut self, now: Instant, step: &mut Step) {
        step.changed = Some((self.state, State::Up, DIAG_NONE));
        self.state = State::Up;
        self.rise(now);
        // Moving from the idle to the configured TX interval is a timer change: poll.
        if self.p.idle_tx != self.p.min_tx && !self.fin {
            self.poll = true;
        }
        step.event = Some(Event::Up);
    }

    fn init(&mut self, now: Instant, step: &mut Step) {
        step.changed = Some((self.state, State::Init, DIAG_NONE));
        self.state = State::Init;
        self.rise(now);
        if self.p.passive && self.next_tx.is_none() {
            let i = self.tx_interval();
            self.next_tx = Some(now + i);
        }
    }

    /// A received packet that passed `Packet::parse` and belongs to this session (found by
    /// your-discriminator, or by address when it is zero; TTL and auth checked by the
    /// caller). `new_discr` replaces the local discriminator if the session leaves Up.
    pub fn on_packet(&mut self, now: Instant, pkt: &Packet, new_discr: u32) -> Step {
        let mut step = Step::default();
        let old_local_tx = self.local_tx_intv;
        self.remote_discr = pkt.my_discr;
        self.remote_state = pkt.state;
        self.remote_diag = pkt.diag;
        self.remote_min_rx = pkt.min_rx;
        self.remote_min_tx = pkt.min_tx;
        self.remote_demand = pkt.demand;
        self.remote_mult = pkt.mult;
        if pkt.fin {
            self.poll = false;
        }
        // Intervals change only through poll/final once Up (RFC 5880 6.8.3).
        if self.state != State::Up || pkt.poll || pkt.fin {
            if self.remote_state == State::Up && matches!(self.state, State::Init | State::Up) {
                self.local_tx_intv = self.p.min_tx.max(self.remote_min_rx);
            } else {
                self.idle_tx();
            }
            self.remote_tx_intv = self.p.min_rx.max(self.remote_min_tx);
        }
        self.detect_time = u64::from(self.remote_mult) * u64::from(self.remote_tx_intv);
        if self.local_tx_intv < old_local_tx && self.next_tx.is_some() {
            let i = self.tx_interval();
            self.next_tx = Some(now + i);
        }
        match (self.state, self.remote_state) {
            (State::Down, _) if self.remote_state == State::AdminDown => {}
            (_, State::AdminDown) => self.down(now, DIAG_NBR_DOWN, new_discr, &mut step),
            (State::Down, State::Down) => self.init(now, &mut step),
            (State::Down, State::Init) => self.up(now, &mut step),
            (State::Init, State::Init | State::Up) => self.up(now, &mut step),
            (State::Up, State::Down) => self.down(now, DIAG_NBR_DOWN, new_discr, &mut step),
            _ => {}
        }
        let both_up = self.state == State::Up && self.remote_state == State::Up;
        if self.remote_demand && both_up {
            self.next_tx = None;
        } else if self.next_tx.is_none() && (!self.p.passive || self.state != State::Down) {
            let i = self.tx_interval();
            self.next_tx = Some(now + i);
        }
        if pkt.poll {
            self.fin = true;
            step.send = true;
        }
        self.last_seen = Some(now);
        if self.state == State::Up && self.expire_at.is_some() {
            self.expire_at = Some(now + Duration::from_micros(self.detect_time));
        }
        step
    }

    /// Timers due at `now`: detection time expiry, the reset of the remote variables, the
    /// periodic packet.
    pub fn on_timer(&mut self, now: Instant, new_discr: u32) -> Step {
        let mut step = Step::default();
        if self.expire_at.is_some_and(|t| t <= now) {
            self.expire_at = None;
            self.remote_discr = 0;
            self.down(now, DIAG_EXPIRED, new_discr, &mut step);
        }
        if self.reset_at.is_some_and(|t| t <= now) {
            self.reset_at = None;
            self.remote_state = State::Down;
            self.remote_discr = 0;
            self.remote_demand = false;
            self.poll = false;
            self.fin = false;
            self.idle_tx();
        }
        if self.next_tx.is_some_and(|t| t <= now) {
            step.send = true;
            let i = self.tx_interval();
            self.next_tx = Some(now + i);
        }
        step
    }

    /// The intervals in force, for the log and status: (sent at, detection time).
    pub fn timers(&self) -> (Duration, Duration) {
        (us(self.local_tx_intv), self.detection_time())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u32 = 1000;

    fn params(min_rx: u32, min_tx: u32, mult: u8) -> Params {
        Params { min_rx: min_rx * MS, min_tx: min_tx * MS, idle_tx: 1000 * MS, mult, passive: false }
    }

    /// The peer's packet: its state, discriminators and intervals (ms).
    fn peer(state: State, my: u32, your: u32, min_tx: u32, min_rx: u32, mult: u8) -> Packet {
        Packet {
            diag: 0,
            state,
            poll: false,
            fin: false,
            cpi: false,
            auth: false,
            demand: false,
            multipoint: false,
            mult,
            my_discr: my,
            your_discr: your,
            min_tx: min_tx * MS,
            min_rx: min_rx * MS,
            min_echo_rx: 0,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn packets_round_trip_and_bad_ones_are_refused() {
        let p = peer(State::Init, 7, 9, 300, 200, 3);
        let b = p.encode();
        assert_eq!(b[0], 0x20);
        assert_eq!(b[1] >> 6, 2);
        assert_eq!(b[3], 24);
        assert_eq!(Packet::parse(&b), Ok(p));
        let bad = |f: &dyn Fn(&mut [u8; 24])| {
            let mut b = p.encode();
            f(&mut b);
            Packet::parse(&b).is_err()
        };
        assert!(bad(&|b| b[0] = 0x40)); // version 2
        assert!(bad(&|b| b[2] = 0)); // multiplier 0
        assert!(bad(&|b| b[1] |= 1)); // multipoint
        assert!(bad(&|b| b[4..8].copy_from_slice(&[0; 4]))); // my discriminator 0
        assert!(bad(&|b| b[8..12].copy_from_slice(&[0; 4]))); // your 0 while Init
        assert!(bad(&|b| b[1] |= 0x30)); // poll and final
        assert!(bad(&|b| b[3] = 25)); // length
        assert!(Packet::parse(&b[..20]).is_err());
        // your discriminator 0 is fine in Down.
        assert!(Packet::parse(&peer(State::Down, 7, 0, 1000, 1000, 3).encode()).is_ok());
    }

    #[test]
    fn three_way_handshake_then_negotiated_detection_time() {
        let t0 = Instant::now();
        let mut s = Session::new(params(20, 20, 5), 11, 1, t0);
        assert_eq!(s.next_deadline(), Some(t0));
        let st = s.on_timer(t0, 12);
        assert!(st.send);
        let first = s.packet();
        assert_eq!((first.state, first.your_discr, first.min_tx), (State::Down, 0, 1000 * MS));
        // The peer says Down: we go Init.
        let st = s.on_packet(t0 + ms(5), &peer(State::Down, 99, 0, 1000, 50, 3), 12);
        assert_eq!(s.state, State::Init);
        assert_eq!(st.changed, Some((State::Down, State::Init, DIAG_NONE)));
        assert_eq!(st.event, None);
        // The peer says Init: Up, and an event.
        let st = s.on_packet(t0 + ms(10), &peer(State::Init, 99, 11, 1000, 50, 3), 12);
        assert_eq!(s.state, State::Up);
        assert_eq!(st.event, Some(Event::Up));
        // Up: the next packet polls (idle 1 s -> 20 ms) and advertises min_tx.
        let p = s.packet();
        assert!(p.poll && p.min_tx == 20 * MS && p.your_discr == 99);
        // The peer is still idle (1 s): detection is 3 × max(20 ms, 1000 ms).
        assert_eq!(s.detection_time(), ms(3000));
        // The peer polls with its new 100 ms: we answer with final at once.
        let mut poll = peer(State::Up, 99, 11, 100, 50, 3);
        poll.poll = true;
        let st = s.on_packet(t0 + ms(20), &poll, 12);
        assert!(st.send);
        let p = s.packet();
        assert!(p.fin && !p.poll, "a final answers, and carries our own parameters");
        assert_eq!(s.detection_time(), ms(300));
        // Our poll is answered with final: we send at max(our 20 ms, their 50 ms).
        let mut fin = peer(State::Up, 99, 11, 100, 50, 3);
        fin.fin = true;
        s.on_packet(t0 + ms(30), &fin, 12);
        assert_eq!(s.local_tx_intv, 50 * MS);
        assert!(!s.packet().poll);
    }

    /// A session already Up at t0 + 30 ms with a 300 ms detection time.
    fn up_session(t0: Instant) -> Session {
        let mut s = Session::new(params(20, 20, 5), 11, 1, t0);
        s.on_packet(t0, &peer(State::Down, 99, 0, 100, 50, 3), 12);
        s.on_packet(t0 + ms(10), &peer(State::Init, 99, 11, 100, 50, 3), 12);
        let mut poll = peer(State::Up, 99, 11, 100, 50, 3);
        poll.poll = true;
        s.on_packet(t0 + ms(30), &poll, 12);
        assert_eq!((s.state, s.detection_time()), (State::Up, ms(300)));
        s
    }

    #[test]
    fn silence_for_the_detection_time_takes_it_down() {
        let t0 = Instant::now();
        let mut s = up_session(t0);
        // Packets keep it up.
        for k in 1..10u64 {
            let st = s.on_timer(t0 + ms(30 + 100 * k - 1), 12);
            assert_eq!(st.event, None);
            s.on_packet(t0 + ms(30 + 100 * k), &peer(State::Up, 99, 11, 100, 50, 3), 12);
        }
        let last = t0 + ms(930);
        assert_eq!(s.on_timer(last + ms(299), 12).event, None);
        assert_eq!(s.state, State::Up);
        let st = s.on_timer(last + ms(300), 12);
        assert_eq!(st.event, Some(Event::Down));
        assert_eq!(st.changed, Some((State::Up, State::Down, DIAG_EXPIRED)));
        assert_eq!((s.remote_discr, s.local_discr), (0, 12), "a new discriminator after Up");
        // Down sends at the idle interval and says why.
        let p = s.packet();
        assert_eq!((p.state, p.diag, p.min_tx, p.your_discr), (State::Down, DIAG_EXPIRED, 1000 * MS, 0));
    }

    #[test]
    fn neighbour_down_is_an_event_and_admin_down_is_not() {
        let t0 = Instant::now();
        let mut s = up_session(t0);
        let st = s.on_packet(t0 + ms(100), &peer(State::Down, 99, 11, 1000, 50, 3), 12);
        assert_eq!((s.state, st.event, s.local_diag), (State::Down, Some(Event::Down), DIAG_NBR_DOWN));
        let mut s = up_session(t0);
        let st = s.on_packet(t0 + ms(100), &peer(State::AdminDown, 99, 11, 1000, 50, 3), 12);
        assert_eq!(s.state, State::Down, "the session goes down");
        assert_eq!(st.event, None, "keepalived tells no tracker: AdminDown is not a failure (RFC 5880 6.8.6)");
        // Still AdminDown: stays Down, no Init.
        s.on_packet(t0 + ms(200), &peer(State::AdminDown, 99, 11, 1000, 50, 3), 12);
        assert_eq!(s.state, State::Down);
        // Back to Down: the handshake starts again.
        s.on_packet(t0 + ms(300), &peer(State::Down, 98, 0, 1000, 50, 3), 12);
        assert_eq!(s.state, State::Init);
    }

    #[test]
    fn init_without_answer_expires_and_passive_waits() {
        let t0 = Instant::now();
        let mut s = Session::new(params(20, 20, 5), 11, 1, t0);
        s.on_packet(t0, &peer(State::Down, 99, 0, 1000, 50, 3), 12);
        assert_eq!(s.state, State::Init);
        // Init expires after 3 × 1000 ms, with no event (it never was Up).
        let st = s.on_timer(t0 + ms(3000), 12);
        assert_eq!((s.state, st.event), (State::Down, None));
        // Passive: nothing sent until the peer speaks.
        let mut p = params(20, 20, 5);
        p.passive = true;
        let s = Session::new(p, 11, 1, t0);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn transmissions_are_jittered_within_the_interval() {
        let t0 = Instant::now();
        let mut s = Session::new(params(20, 20, 5), 11, 7, t0);
        for _ in 0..100 {
            let i = s.tx_interval();
            assert!(i >= ms(750) && i <= ms(900), "{i:?}");
        }
    }
}
