//! BFD (keepalived's `bfd_instance`): sessions with neighbours, whose ups and downs
//! `track_bfd` (VRRP) and `BFD_CHECK` (checkers) follow. `session.rs` is the pure state
//! machine; `shell.rs` runs every session on a thread of its own (so neither the VRRP
//! engine's thread nor the checkers' runtime can delay a packet or a detection), and
//! publishes keepalived's events: a session's last event (up, or down from Up) by name.

pub mod session;
mod shell;

use std::{
    collections::BTreeMap,
    sync::{Mutex, OnceLock},
};

use tokio::sync::{mpsc, watch};
use tracing::error;

use crate::config::BfdInstance;

/// Each session's last event: `true` after it came up, `false` after it went down from Up,
/// and its state (up or not) whenever the sessions are (re)configured, as keepalived's BFD
/// process reports them at start and at each reload. A session the BFD thread has not
/// reported yet is absent (the trackers then keep their initial view: VRRP counts it down, a
/// BFD_CHECK keeps its alpha-given start).
pub type Events = BTreeMap<String, bool>;

struct Shared {
    events: watch::Sender<Events>,
    cmd: Mutex<Option<mpsc::UnboundedSender<Vec<BfdInstance>>>>,
}

/// One set of sessions per process: the daemon configures it, VRRP and the checkers read it.
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| Shared { events: watch::Sender::new(Events::new()), cmd: Mutex::new(None) })
}

/// Every session's last event, and its changes.
pub fn events() -> watch::Receiver<Events> {
    shared().events.subscribe()
}

/// Runs the sessions `cfg` configures: unchanged ones keep running (and their state),
/// changed ones restart, removed ones stop. The BFD thread starts with the first session.
pub fn apply(cfg: &[BfdInstance]) {
    let s = shared();
    let mut cmd = s.cmd.lock().unwrap_or_else(|e| e.into_inner());
    if cmd.as_ref().is_some_and(|c| c.send(cfg.to_vec()).is_ok()) {
        return;
    }
    if cfg.is_empty() {
        return;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let events = s.events.clone();
    let started = std::thread::Builder::new().name("lb-bfd".into()).spawn(move || shell::run(rx, events));
    match started {
        Ok(_) => {
            let _ = tx.send(cfg.to_vec());
            *cmd = Some(tx);
        }
        Err(e) => error!("BFD not running: starting its thread: {e}"),
    }
}
