//! Frames `lb_xdp` hands to the daemon through the `lb_punt` ring (see lb-ebpf's `punt.rs`):
//! later fragments that arrived before their datagram's first (held, replayed shortly, given
//! up after `held::GIVE_UP_AFTER`), and IPv4 datagrams over the egress MTU with DF clear
//! (fragmented here, the fragments replayed). A replay runs `lb_xdp` again on the frame through
//! `BPF_PROG_TEST_RUN` in live-frames mode, as if it arrived again on its interface: every
//! decision stays in the program, and XDP_TX / XDP_REDIRECT transmit and XDP_PASS hands the
//! frame to the stack as for a received frame. One such run costs about 10 µs on 6.18 (the
//! page pool it sets up holds one page), so each frame gets its own.
//!
//! The decisions are pure (`handover`, `held`, `fragment`, `record`); this file is the shell:
//! a tokio task waits on the ring (`AsyncFd`) and the next replay time, and runs the replays
//! on the blocking pool.

mod fragment;
mod handover;
mod held;
mod record;

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    maps::{HashMap, MapData, RingBuf},
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp},
};
use aya_obj::programs::XdpAttachType;
use handover::Handover;
pub use handover::PuntStats;
use held::Replay;
use lb_common::{
    FragKey,
    consts::{MAP_GIVEUP, MAP_PUNT, PROG_XDP, PUNT_RECORDS},
};
use tokio::{io::unix::AsyncFd, sync::oneshot, task::JoinHandle};
use tracing::{debug, error, info, warn};

use super::bpf::BpfDataplane;

/// Records taken from the ring per wake-up at most, so replays due meanwhile are not starved
/// by a flood (the ring then fills and the program counts `punt_full`).
const DRAIN_MAX: usize = 2 * PUNT_RECORDS as usize;
/// Replay rounds per wake-up at most (a round's replays can hand back frames due at once).
const ROUNDS_MAX: usize = 8;

/// The counters as the task last published them.
type Shared = Arc<Mutex<PuntStats>>;

fn publish(to: &Shared, s: &PuntStats) {
    if let Ok(mut g) = to.lock() {
        *g = *s;
    }
}

/// The running hand-over task; stopped by `stop` (or, less tidily, on drop).
pub struct Punt {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    stats: Shared,
}

impl Punt {
    /// Takes `lb_punt` and `lb_frag_giveup` out of the data plane's object, opens a second
    /// handle on its `lb_xdp`, and starts the task. Needs a tokio runtime.
    pub fn start(dp: &mut BpfDataplane) -> Result<Punt> {
        let ebpf = dp.ebpf_mut();
        let ring = ebpf.take_map(MAP_PUNT).ok_or_else(|| anyhow!("the eBPF object has no map {MAP_PUNT}"))?;
        let ring = RingBuf::try_from(ring).with_context(|| format!("opening {MAP_PUNT}"))?;
        let giveup = ebpf.take_map(MAP_GIVEUP).ok_or_else(|| anyhow!("the eBPF object has no map {MAP_GIVEUP}"))?;
        let giveup = HashMap::try_from(giveup).with_context(|| format!("opening {MAP_GIVEUP}"))?;
        let prog: &Xdp = ebpf.program(PROG_XDP).ok_or_else(|| anyhow!("no program {PROG_XDP}"))?.try_into()?;
        // A handle of its own (a new fd on the same program) for the blocking pool.
        let info = prog.info().context("reading lb_xdp's program info")?;
        let prog = Xdp::from_program_info(info, PROG_XDP.into(), XdpAttachType::Interface)
            .context("opening a second handle on lb_xdp")?;
        // SAFETY: the ring owns its map's fd until it is dropped, and always reports that fd.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| anyhow!("polling {MAP_PUNT}: {e}"))?;
        let (stop, stopped) = oneshot::channel();
        let stats = Shared::default();
        let task = tokio::spawn(run(ring, Replayer { prog, giveup }, stopped, Arc::clone(&stats)));
        info!("fragment hand-over running (held fragments replayed, IPv4 fragmented for the egress MTU)");
        Ok(Punt { stop: Some(stop), task: Some(task), stats })
    }

    /// The hand-over's counters, for the state file and the metrics.
    pub fn stats(&self) -> PuntStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Stops the task and waits for it (it finishes the replay under way, if any).
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take()
            && let Err(e) = t.await
        {
            warn!("fragment hand-over task: {e}");
        }
    }
}

impl Drop for Punt {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Runs `lb_xdp` on frames; owns the blocking syscalls.
struct Replayer {
    prog: Xdp,
    giveup: HashMap<MapData, FragKey, u8>,
}

impl Replayer {
    /// Replays each frame in turn; per frame, whether the kernel ran it and the wall time.
    fn replay(&mut self, batch: &[Replay]) -> Vec<(bool, u64)> {
        batch
            .iter()
            .map(|r| {
                let t = Instant::now();
                let ran = self.one(r);
                if let Err(e) = &ran {
                    debug!(ifindex = r.ifindex, len = r.frame.len(), "punt: replay failed: {e:#}");
                }
                (ran.is_ok(), t.elapsed().as_nanos() as u64)
            })
            .collect()
    }

    fn one(&mut self, r: &Replay) -> Result<()> {
        if let Some(key) = r.give_up {
            // The program passes a held fragment once, when it finds its datagram here.
            self.giveup.insert(key, 1, 0).context("writing lb_frag_giveup")?;
        }
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex. Arriving on `ifindex` gives the FIB lookups and XDP_TX their device.
        let ctx: Vec<u8> =
            [0, r.frame.len() as u32, 0, r.ifindex, 0, 0].iter().flat_map(|v: &u32| v.to_ne_bytes()).collect();
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(&r.frame);
        opts.ctx_in = Some(&ctx);
        opts.repeat = 1;
        // One frame per run: a page pool of one page is all it needs.
        opts.attrs = TestRunAttrs::new().xdp_live_frames(1);
        self.prog.test_run(opts).context("BPF_PROG_TEST_RUN (live frames)")?;
        Ok(())
    }
}

async fn run(mut ring: AsyncFd<RingBuf<MapData>>, replayer: Replayer, mut stop: oneshot::Receiver<()>, stats: Shared) {
    let mut h = Handover::default();
    let mut replayer = Some(replayer);
    // Records left in the ring by a capped drain: the kernel only wakes a reader that has
    // caught up, so these are read without waiting for a wake-up.
    let mut backlog = false;
    'run: loop {
        let wake = if backlog { Some(Instant::now()) } else { h.next_due(Instant::now()) };
        tokio::select! {
            biased;
            _ = &mut stop => break,
            ready = ring.readable_mut() => match ready {
                Ok(mut guard) => {
                    if drain(guard.get_inner_mut(), &mut h) {
                        guard.clear_ready();
                    }
                }
                Err(e) => {
                    error!("polling {MAP_PUNT}: {e}; fragment hand-over stopped");
                    break;
                }
            },
            _ = sleep_until(wake) => {}
        }
        if backlog {
            backlog = !drain(ring.get_mut(), &mut h);
        }
        for _ in 0..ROUNDS_MAX {
            let batch = h.due(Instant::now());
            if batch.is_empty() {
                break;
            }
            let Some(mut r) = replayer.take() else { break };
            let done = tokio::task::spawn_blocking(move || {
                let out = r.replay(&batch);
                (r, out)
            })
            .await;
            let (r, results) = match done {
                Ok(x) => x,
                Err(e) => {
                    error!("fragment replay: {e}; fragment hand-over stopped");
                    break 'run;
                }
            };
            replayer = Some(r);
            for (ok, ns) in results {
                h.ran(ok, ns);
            }
            // What the replays handed back is in the ring now (it is written during the run).
            backlog = !drain(ring.get_mut(), &mut h);
        }
        publish(&stats, &h.stats);
    }
    publish(&stats, &h.stats);
    debug!(stats = ?h.stats, held = h.held(), "fragment hand-over stopped");
}

/// Takes up to `DRAIN_MAX` records; true when the ring is empty. Replays run to completion
/// before any drain, so once the ring is empty every replayed fragment the program handed
/// back has been seen: the others were taken (`settle`).
fn drain(ring: &mut RingBuf<MapData>, h: &mut Handover) -> bool {
    let now = Instant::now();
    for _ in 0..DRAIN_MAX {
        let Some(item) = ring.next() else {
            h.settle();
            return true;
        };
        h.on_record(&item, now);
    }
    false
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
