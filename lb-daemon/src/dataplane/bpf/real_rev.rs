//! `lb_real_rev` (and its IPv4 entries by a narrow key, `lb_real_rev4`: `twins`): for each NAT
//! real server (address, port, protocol), the one VIP and port its replies are checked
//! against in the data plane. A flow to that VIP and real server keeps no
//! reverse entry of its own (two LRU inserts fewer per connection): its replies are translated
//! when the forward tables hold the flow for that real server. A real server that several
//! VIPs reach (two services, a group) has one of them here; flows to the others keep
//! per-flow reverse entries.
//!
//! An entry is replaced only when it no longer names a programmed real server of its
//! service at that VIP and port, nor one still in its retirement grace period: then its flows
//! are gone (the VIP's key was removed, or the real server left and its flows are scheduled
//! elsewhere). Flows opened while there is no entry, or before one is written, keep per-flow
//! entries, so writes need no order.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result};
use aya::{Ebpf, maps::HashMap};
use lb_common::{NatRev, ServiceKey, consts::MAP_REAL_REV};

use super::{
    plan::{Book, SvcState},
    retire::RetireQueue,
    twins,
};
use crate::{config::ForwardMethod, dataplane::services};

/// What `lb_real_rev` should hold for the services in `book`, keeping `current`'s entries that
/// are still right, those of adopted services not yet compared (whose method is unknown) and
/// those of real servers `retiring`.
pub fn desired(
    book: &Book,
    current: &BTreeMap<ServiceKey, NatRev>,
    retiring: &BTreeSet<u32>,
) -> BTreeMap<ServiceKey, NatRev> {
    let mut choices: BTreeMap<ServiceKey, Vec<NatRev>> = BTreeMap::new();
    let mut unknown: BTreeSet<u32> = BTreeSet::new();
    for s in book.services.values() {
        match &s.applied {
            None => {
                unknown.insert(s.id);
            }
            Some(d) if d.forward == ForwardMethod::Nat => {
                for (key, rev) in reply_choices(s, d) {
                    choices.entry(key).or_default().push(rev);
                }
            }
            Some(_) => {}
        }
    }
    let mut out: BTreeMap<ServiceKey, NatRev> = current
        .iter()
        .filter(|(_, v)| unknown.contains(&v.svc_id) || retiring.contains(&v.real_id))
        .map(|(k, v)| (*k, *v))
        .collect();
    for (key, options) in choices {
        if out.contains_key(&key) {
            continue;
        }
        let kept = current.get(&key).filter(|v| options.contains(v));
        if let Some(v) = kept.or(options.first()) {
            out.insert(key, *v);
        }
    }
    out
}

/// Each NAT real server of service `s` (configuration `d`), with each VIP and port of the
/// service in its family that could answer for its replies. Real servers and VIPs without a
/// port (the reply's port is then the client's destination port) have none.
fn reply_choices<'a>(
    s: &'a SvcState,
    d: &'a services::DesiredService,
) -> impl Iterator<Item = (ServiceKey, NatRev)> + 'a {
    d.reals.iter().filter(|r| r.addr.port() != 0).filter_map(move |r| s.reals.get(&r.addr).map(|id| (r, *id))).flat_map(
        move |(r, real_id)| {
            let (addr, family) = services::addr_bytes(r.addr.ip());
            d.keys.iter().filter(move |k| k.family == family && k.port != 0).map(move |k| {
                let key = ServiceKey { addr, port: r.addr.port(), proto: k.proto, family, pad: 0 };
                (key, NatRev { vip: k.addr, vport: k.port, svc_id: s.id, real_id, ..Default::default() })
            })
        },
    )
}

/// Brings `lb_real_rev` to `desired(book)`, updating `book.real_rev` as it goes. An object
/// without the map (an older build, as the benchmarks' baseline) gives every NAT flow its own
/// reverse entry: nothing to write.
pub fn write(ebpf: &mut Ebpf, book: &mut Book, retiring: &RetireQueue) -> Result<()> {
    if ebpf.map(MAP_REAL_REV).is_none() {
        return Ok(());
    }
    let want = desired(book, &book.real_rev, &retiring.reals().collect());
    for (k, v) in &want {
        if book.real_rev.get(k) != Some(v) {
            twins::insert(ebpf, twins::REAL_REV, k, v)?;
            book.real_rev.insert(*k, *v);
        }
    }
    let gone: Vec<ServiceKey> = book.real_rev.keys().filter(|k| !want.contains_key(k)).copied().collect();
    for k in gone {
        twins::remove::<NatRev>(ebpf, twins::REAL_REV, &k, true)?;
        book.real_rev.remove(&k);
    }
    Ok(())
}

/// What a previous daemon left in `lb_real_rev` (nothing if the object has no such map).
pub fn adopt(ebpf: &Ebpf) -> Result<BTreeMap<ServiceKey, NatRev>> {
    if ebpf.map(MAP_REAL_REV).is_none() {
        return Ok(BTreeMap::new());
    }
    let map: HashMap<_, ServiceKey, NatRev> =
        HashMap::try_from(super::maps::map_ref(ebpf, MAP_REAL_REV)?).context(MAP_REAL_REV)?;
    map.iter().map(|e| e.context(MAP_REAL_REV)).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::{
        config::Scheduler,
        dataplane::bpf::plan::tests::{committed, service},
    };

    /// `lb_real_rev` as (real server, VIP:port, service id) rows.
    fn rows(m: &BTreeMap<ServiceKey, NatRev>) -> Vec<(String, String, u32)> {
        let name = |a: &[u8; 16], f: u8, p: u16| format!("{}:{p}", services::ip_of(a, f));
        m.iter().map(|(k, v)| (name(&k.addr, k.family, k.port), name(&v.vip, k.family, v.vport), v.svc_id)).collect()
    }

    fn row(real: &str, vip: &str, svc: u32) -> (String, String, u32) {
        (real.into(), vip.into(), svc)
    }

    #[test]
    fn each_nat_real_server_answers_for_its_vip() {
        let mut dr = service("dr", "203.0.113.11", Scheduler::Rr, &[("198.51.100.13:80", 1)]);
        dr.forward = ForwardMethod::Dr;
        let no_port = service("any", "203.0.113.12", Scheduler::Rr, &[("198.51.100.14:0", 1)]);
        let web =
            service("web", "203.0.113.10", Scheduler::Rr, &[("198.51.100.11:8080", 1), ("198.51.100.12:8080", 0)]);
        let book = committed(&Book::new(1000), &[web, dr, no_port], Instant::now());
        let id = book.services["web"].id;
        // A drained real server (weight 0) still has flows; DR and portless ones have none.
        assert_eq!(
            rows(&desired(&book, &BTreeMap::new(), &BTreeSet::new())),
            [row("198.51.100.11:8080", "203.0.113.10:80", id), row("198.51.100.12:8080", "203.0.113.10:80", id)]
        );
    }

    #[test]
    fn a_shared_real_server_keeps_its_vip_until_that_service_goes() {
        let real = [("198.51.100.11:8080", 1)];
        let (a, b) =
            (service("a", "203.0.113.10", Scheduler::Rr, &real), service("b", "203.0.113.11", Scheduler::Rr, &real));
        let t = Instant::now();
        let book = committed(&Book::new(1000), &[a.clone(), b.clone()], t);
        let (ia, ib) = (book.services["a"].id, book.services["b"].id);
        let first = desired(&book, &BTreeMap::new(), &BTreeSet::new());
        assert_eq!(rows(&first), [row("198.51.100.11:8080", "203.0.113.10:80", ia)]);
        // An entry naming the other service is kept: flows to it rely on it.
        let mut other = first.clone();
        other.values_mut().for_each(|v| {
            *v = NatRev {
                vip: b.keys[0].addr,
                svc_id: ib,
                real_id: book.services["b"].reals[&"198.51.100.11:8080".parse().unwrap()],
                ..*v
            }
        });
        assert_eq!(desired(&book, &other, &BTreeSet::new()), other);
        // Service a goes: its entry is replaced by b's.
        let without_a = committed(&book, &[b], t);
        assert_eq!(
            rows(&desired(&without_a, &first, &BTreeSet::new())),
            [row("198.51.100.11:8080", "203.0.113.11:80", ib)]
        );
    }

    #[test]
    fn a_retiring_real_server_keeps_its_entry_until_cleared() {
        let two = [("198.51.100.11:8080", 1), ("198.51.100.12:8080", 1)];
        let t = Instant::now();
        let book = committed(&Book::new(1000), &[service("web", "203.0.113.10", Scheduler::Rr, &two)], t);
        let current = desired(&book, &BTreeMap::new(), &BTreeSet::new());
        let gone = book.services["web"].reals[&"198.51.100.12:8080".parse().unwrap()];
        let later = t + std::time::Duration::from_secs(1);
        let after = committed(&book, &[service("web", "203.0.113.10", Scheduler::Rr, &two[..1])], later);
        // Its flows are still forwarded until the grace period ends.
        assert_eq!(desired(&after, &current, &BTreeSet::from([gone])), current);
        assert_eq!(rows(&desired(&after, &current, &BTreeSet::new())), rows(&current)[..1]);
    }

    #[test]
    fn an_adopted_service_keeps_its_entries_until_compared() {
        let web = service("web", "203.0.113.10", Scheduler::Rr, &[("198.51.100.11:8080", 1)]);
        let mut book = committed(&Book::new(1000), &[web], Instant::now());
        let current = desired(&book, &BTreeMap::new(), &BTreeSet::new());
        let s = book.services.get_mut("web").unwrap();
        s.applied = None;
        assert_eq!(desired(&book, &current, &BTreeSet::new()), current);
        book.services.clear();
        assert!(desired(&book, &current, &BTreeSet::new()).is_empty(), "a service gone takes its entries");
    }
}
