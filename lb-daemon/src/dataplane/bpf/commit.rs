//! Writes a `Plan` into the maps in the order that keeps every switch atomic for packets in
//! flight (docs/dataplane.md, "Atomic updates"). A removed service loses its keys first. A
//! programmed service gets its real servers, then its inactive generation (table slice, then
//! configuration), then the one 4-byte store that flips `lb_svc_gen[id]`, then its keys (a
//! new key never finds an unprogrammed service). What a flip or removal retired goes to the
//! retire queue; `clear_retired` clears it once the grace period has passed. The book
//! follows each step, so after a failed write it still says what the maps hold.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    time::Instant,
};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf,
    maps::{Array, PerCpuArray, PerCpuValues},
};
use lb_common::{RealConns, RealDef, ServiceKey, ServiceStats, ServiceValue, SvcConf, consts::*};
use tracing::{info, warn};

use super::{
    maps::{map_mut, set_array_range},
    plan::{Book, Plan, Removal, ServicePlan, SvcState},
    retire::{RetireQueue, Retired},
    twins,
};
use crate::{
    config::ForwardMethod,
    dataplane::services::{self, DesiredService},
};

/// Writes `plan` (made from `book` for `desired`), updating `book` and queueing what it
/// retires.
pub fn commit(
    ebpf: &mut Ebpf,
    book: &mut Book,
    retiring: &mut RetireQueue,
    desired: &[DesiredService],
    plan: &Plan,
    fences: &BTreeMap<IpAddr, u32>,
) -> Result<()> {
    book.rename_adopted(desired);
    let programmed = program_all(ebpf, book, retiring, plan, fences);
    // After the services, and after a failure too (the book says what the maps hold): a flow
    // opened before its real server's entry exists keeps a reverse entry of its own.
    let reverse = super::real_rev::write(ebpf, book, retiring);
    programmed.and(reverse)
}

fn program_all(
    ebpf: &mut Ebpf,
    book: &mut Book,
    retiring: &mut RetireQueue,
    plan: &Plan,
    fences: &BTreeMap<IpAddr, u32>,
) -> Result<()> {
    for r in &plan.removals {
        remove_service(ebpf, book, retiring, r)?;
    }
    for s in &plan.services {
        let name = &s.desired.name;
        if s.fresh {
            zero_stats::<ServiceStats>(ebpf, MAP_SVC_DIRECT, s.id)?;
            let mut carry: Array<_, ServiceStats> = Array::try_from(map_mut(ebpf, MAP_SVC_CARRY)?)?;
            carry.set(s.id, ServiceStats::default(), 0)?;
            book.services.insert(name.clone(), SvcState::new(s.id));
        }
        let mut state = book.services.remove(name).ok_or_else(|| anyhow!("service state vanished"))?;
        let result = program(ebpf, book, &mut state, retiring, s, fences);
        book.services.insert(name.clone(), state);
        result.with_context(|| format!("programming service {name}"))?;
    }
    Ok(())
}

fn remove_service(ebpf: &mut Ebpf, book: &mut Book, retiring: &mut RetireQueue, r: &Removal) -> Result<()> {
    // Its id waits out the grace period as its real servers do: their entries name it, and a
    // service given it meanwhile would count them as its own. Its counts go with it.
    let id = book.services.remove(&r.name).map(|s| s.id);
    book.cooling.extend(id);
    for k in &r.keys {
        twins::remove::<ServiceValue>(ebpf, twins::SERVICES, k, false)?;
    }
    // Keys are gone: no new packet finds the service. Its real servers and tables go after
    // the grace period.
    let slices = r.slices.iter().map(|(off, len)| Retired::Slice(*off, *len));
    let reals = r.reals.iter().map(|id| Retired::Real { id: *id, carry_to: None });
    retiring.push(Instant::now(), reals.chain(slices).chain(id.map(Retired::ServiceId)));
    info!(service = r.name.as_str(), "service removed");
    Ok(())
}

/// One service's new generation, in the documented order.
fn program(
    ebpf: &mut Ebpf,
    book: &mut Book,
    state: &mut SvcState,
    retiring: &mut RetireQueue,
    s: &ServicePlan,
    fences: &BTreeMap<IpAddr, u32>,
) -> Result<()> {
    let d = &s.desired;
    write_reals(ebpf, book, state, s)?;
    prime_neighbours(s.reals.iter().map(|r| r.addr));
    if s.truncated {
        warn!(service = %d.name, "more than {MAX_SCAN} live real servers: least-connection scheduling considers the first {MAX_SCAN}");
    }
    let g = s.generation;
    let len = s.table.len() as u32;
    book.pool.free(s.old_slice.0, s.old_slice.1);
    book.pool.reserve(s.table_off, len);
    set_array_range(ebpf, MAP_TABLES, s.table_off, &s.table)?;
    state.slices[g as usize] = (s.table_off, len);
    let mut confs: Array<_, SvcConf> = Array::try_from(map_mut(ebpf, MAP_SVC_CONF)?)?;
    confs.set(s.id * 2 + g, s.conf, 0)?;
    let mut gens: Array<_, u32> = Array::try_from(map_mut(ebpf, MAP_SVC_GEN)?)?;
    gens.set(s.id, g, 0)?;
    // Live: the real servers that left retire from now on, and so does the other slot.
    let now = Instant::now();
    state.generation = g;
    state.last_flip = Some(now);
    for (addr, _) in &s.retired {
        state.reals.remove(addr);
    }
    retiring.push(now, s.retired.iter().map(|(_, id)| Retired::Real { id: *id, carry_to: Some(s.id) }));

    // Fenced before its keys: a service new on a VRRP backup never forwards a frame.
    let mut fence: Array<_, u32> = Array::try_from(map_mut(ebpf, MAP_SVC_FENCE)?)?;
    fence.set(s.id, fence_of(&d.keys, fences), 0)?;
    for k in &s.keys_added {
        twins::insert(ebpf, twins::SERVICES, k, &ServiceValue { id: s.id, flags: 0 })?;
    }
    for k in &s.keys_removed {
        twins::remove::<ServiceValue>(ebpf, twins::SERVICES, k, false)?;
    }
    state.keys = d.keys.clone();
    state.applied = Some(d.clone());
    info!(service = %d.name, id = s.id, reals = s.members, table = s.table.len(), scheduler = d.scheduler.name(), "service programmed");
    Ok(())
}

/// What `lb_svc_fence` holds for a service with `keys` under `fences` (VIP → `FENCE_*`): the
/// strictest of its VIPs' (a drop over a pass over nothing).
pub fn fence_of(keys: &[ServiceKey], fences: &BTreeMap<IpAddr, u32>) -> u32 {
    let fence = |k: &ServiceKey| fences.get(&services::ip_of(&k.addr, k.family)).copied().unwrap_or(0);
    keys.iter().map(fence).max().unwrap_or(0)
}

/// Writes every programmed service's `lb_svc_fence` entry under `fences`; entries already
/// right are not rewritten. One 4-byte store per service: a packet sees before or after.
pub fn write_fences(ebpf: &mut Ebpf, book: &Book, fences: &BTreeMap<IpAddr, u32>) -> Result<()> {
    let mut map: Array<_, u32> = Array::try_from(map_mut(ebpf, MAP_SVC_FENCE)?)?;
    for (name, s) in &book.services {
        let want = fence_of(&s.keys, fences);
        if map.get(&s.id, 0).unwrap_or(0) != want {
            map.set(s.id, want, 0).with_context(|| format!("fencing service {name}"))?;
        }
    }
    Ok(())
}

/// The service's real servers: a fresh (or recycled) id starts with zeroed counters, as no
/// flow of this service points at it yet; an entry already right is not rewritten.
fn write_reals(ebpf: &mut Ebpf, book: &mut Book, state: &mut SvcState, s: &ServicePlan) -> Result<()> {
    for r in &s.reals {
        if r.fresh {
            book.take_real(r.id);
            zero_stats::<ServiceStats>(ebpf, MAP_REAL_STATS, r.id)?;
            for m in [MAP_REAL_CONNS, MAP_REAL_EXPIRED] {
                let mut conns: Array<_, RealConns> = Array::try_from(map_mut(ebpf, m)?)?;
                conns.set(r.id, RealConns::default(), 0)?;
            }
            state.reals.insert(r.addr, r.id);
        }
        let (bytes, family) = services::addr_bytes(r.addr.ip());
        let tun_src = if s.desired.forward == ForwardMethod::Tun { source_for(r.addr.ip()) } else { [0; 16] };
        let def = RealDef {
            addr: bytes,
            tun_src,
            port: r.addr.port(),
            family,
            flags: REAL_PRESENT,
            svc_id: s.id,
            weight: r.weight,
            reserved: 0,
        };
        let mut reals: Array<_, RealDef> = Array::try_from(map_mut(ebpf, MAP_REALS)?)?;
        if reals.get(&r.id, 0)? != def {
            reals.set(r.id, def, 0)?;
        }
    }
    Ok(())
}

/// Clears what has been retired for the grace period: real server entries (their ids are
/// then free) and table slices (back to the pool).
pub fn clear_retired(ebpf: &mut Ebpf, book: &mut Book, ready: Vec<Retired>) -> Result<()> {
    // Clearing a real server moves its counts into the carry, which readers must know.
    let moves_counts = ready.iter().any(|r| matches!(r, Retired::Real { .. }));
    let clear = |ebpf: &mut Ebpf| ready.into_iter().try_for_each(|r| clear_one(ebpf, book, r));
    if moves_counts { super::stats::moving_carry(ebpf, clear) } else { clear(ebpf) }
}

fn clear_one(ebpf: &mut Ebpf, book: &mut Book, r: Retired) -> Result<()> {
    match r {
        Retired::Slice(off, len) => book.pool.free(off, len),
        Retired::ServiceId(id) => {
            book.cooling.remove(&id);
        }
        Retired::Real { id, carry_to } => {
            let mut reals: Array<_, RealDef> = Array::try_from(map_mut(ebpf, MAP_REALS)?)?;
            reals.set(id, RealDef::default(), 0)?;
            if let Some(svc) = carry_to {
                super::stats::carry(ebpf, svc, id)?;
            }
            book.free_reals.push_back(id);
        }
    }
    Ok(())
}

/// The local address the kernel would use towards `ip` (the outer source of TUN packets):
/// a connected UDP socket's name; nothing is sent.
fn source_for(ip: IpAddr) -> [u8; 16] {
    let bind: SocketAddr = if ip.is_ipv4() {
        "0.0.0.0:0".parse().unwrap_or(([0, 0, 0, 0], 0).into())
    } else {
        "[::]:0".parse().unwrap_or(([0u16; 8], 0).into())
    };
    let local = UdpSocket::bind(bind).and_then(|s| s.connect((ip, 9)).map(|_| s)).and_then(|s| s.local_addr());
    match local {
        Ok(a) => services::addr_bytes(a.ip()).0,
        Err(e) => {
            warn!(real = %ip, error = %e, "no route to the real server: TUN packets get no source address");
            [0; 16]
        }
    }
}

/// Sends one empty UDP datagram to each real server's address so the kernel resolves its
/// neighbour entry: the XDP FIB lookup only finds next hops the kernel already knows. One
/// datagram per address (real servers often share one on several ports), from one socket per
/// family: with 10k real servers this runs every housekeeping period. Non-blocking: datagrams
/// queued behind unresolved neighbours count against the socket's buffer, and a full one
/// must not stall the daemon (the next period tries again).
pub fn prime_neighbours(addrs: impl Iterator<Item = SocketAddr>) {
    let mut seen = std::collections::HashSet::new();
    let (mut v4, mut v6): (Option<Option<UdpSocket>>, Option<Option<UdpSocket>>) = (None, None);
    let open = |any: SocketAddr| UdpSocket::bind(any).and_then(|s| s.set_nonblocking(true).map(|()| s)).ok();
    for a in addrs.filter(|a| seen.insert(a.ip())) {
        let (socket, any): (_, SocketAddr) =
            if a.is_ipv4() { (&mut v4, ([0, 0, 0, 0], 0).into()) } else { (&mut v6, ([0u16; 8], 0).into()) };
        if let Some(s) = socket.get_or_insert_with(|| open(any)) {
            let _ = s.send_to(&[], a);
        }
    }
}

fn zero_stats<T: aya::Pod + Default + Clone>(ebpf: &mut Ebpf, map: &str, index: u32) -> Result<()> {
    let mut m: PerCpuArray<_, T> = PerCpuArray::try_from(map_mut(ebpf, map)?)?;
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| e)?;
    m.set(index, PerCpuValues::try_from(vec![T::default(); cpus])?, 0)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_are_primed_once_per_address() {
        let listen = |a: &str| {
            let s = UdpSocket::bind(a).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        };
        let (a1, a2, b) = (listen("127.0.0.1:0"), listen("127.0.0.1:0"), listen("127.0.0.2:0"));
        let addr = |s: &UdpSocket| s.local_addr().unwrap();
        prime_neighbours([addr(&a1), addr(&a2), addr(&b), addr(&a1)].into_iter());
        std::thread::sleep(std::time::Duration::from_millis(50));
        let count = |s: &UdpSocket| std::iter::from_fn(|| s.recv(&mut [0u8; 8]).ok()).count();
        // The first real server of each address gets the one datagram.
        assert_eq!((count(&a1), count(&a2), count(&b)), (1, 0, 1));
    }
}
