//! Scheduling tables, computed here so the data plane only indexes them (Katran's split):
//! weighted sequences for rr/wrr, weighted hash tables for sh/dh, Maglev for mh, and
//! (real, weight) pairs for the least-connection schedulers.

use lb_common::consts::{MAX_SCAN, MAX_SEQUENCE, MH_TABLE_SIZE, SH_TABLE_SIZE};

use crate::config::Scheduler;

/// A live real server as the table builders see it: its data-plane id, a stable name for
/// hashing (its address and port), and its weight (> 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: u32,
    pub name: String,
    pub weight: u32,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Weights divided by their gcd, then scaled down (keeping each at least 1) until they sum to
/// at most `max`.
fn reduced(members: &[Member], max: u32) -> Vec<u32> {
    let g = members.iter().fold(0, |g, m| gcd(g, m.weight)).max(1);
    let mut w: Vec<u32> = members.iter().map(|m| m.weight / g).collect();
    let sum: u64 = w.iter().map(|&x| u64::from(x)).sum();
    if sum > u64::from(max) {
        w = w.iter().map(|&x| ((u64::from(x) * u64::from(max) / sum) as u32).max(1)).collect();
    }
    w
}

/// IPVS's weighted round robin order: each pass serves every member whose weight reaches the
/// current level, the level stepping down from the largest weight. rr is wrr with equal weights.
pub fn wrr_sequence(members: &[Member]) -> Vec<u32> {
    let w = reduced(members, MAX_SEQUENCE);
    let max = w.iter().copied().max().unwrap_or(0);
    let mut seq = Vec::new();
    for level in (1..=max).rev() {
        for (m, &wi) in members.iter().zip(&w) {
            if wi >= level {
                seq.push(m.id);
            }
        }
    }
    seq
}

/// A weighted hash table for sh/dh: buckets dealt round-robin to members repeated by weight
/// (as IPVS's sh), so a bucket's owner is stable while the member set is.
pub fn hash_table(members: &[Member]) -> Vec<u32> {
    let seq = wrr_sequence(members);
    if seq.is_empty() {
        return Vec::new();
    }
    (0..SH_TABLE_SIZE as usize).map(|i| seq[i % seq.len()]).collect()
}

/// A service's Maglev seed when the config sets none: from its name (address, port,
/// protocol), never from the host, so every node computes the same one, and two services on
/// the same real servers do not share one layout.
pub fn default_seed(service: &str) -> u64 {
    fnv(0x5eed_0003, service)
}

/// 64-bit FNV-1a with a seed: a stable hash of member names for Maglev permutations.
fn fnv(seed: u64, s: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Finalise: FNV's low bits are weak.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// Maglev lookup table (Eisenbud et al., NSDI 2016) of `size` (a prime) entries, weighted:
/// each round a member takes as many free slots as its weight, walking its own permutation
/// (`offset + j * skip mod size`). Depends only on the member set and `seed` (`mh_seed`), so
/// every load balancer with the same config builds the same table: a flow that ECMP moves to
/// another node reaches the same real server.
pub fn maglev(members: &[Member], size: u32, seed: u64) -> Vec<u32> {
    if members.is_empty() {
        return Vec::new();
    }
    let m = u64::from(size);
    let w = reduced(members, size);
    let perms: Vec<(u64, u64)> = members
        .iter()
        .map(|mb| {
            (fnv(0x5eed_0001 ^ seed, &mb.name) % m, fnv(0x5eed_0002 ^ seed.rotate_left(17), &mb.name) % (m - 1) + 1)
        })
        .collect();
    let mut next = vec![0u64; members.len()];
    let mut table = vec![u32::MAX; size as usize];
    let mut filled = 0u32;
    'fill: loop {
        for (i, mb) in members.iter().enumerate() {
            for _ in 0..w[i] {
                let (offset, skip) = perms[i];
                let mut c = (offset + next[i] * skip) % m;
                while table[c as usize] != u32::MAX {
                    next[i] += 1;
                    c = (offset + next[i] * skip) % m;
                }
                table[c as usize] = mb.id;
                next[i] += 1;
                filled += 1;
                if filled == size {
                    break 'fill;
                }
            }
        }
    }
    table
}

/// (id, weight) pairs for lc/wlc/lblc, at most `MAX_SCAN` of them (the data plane's loop
/// bound); `truncated` tells the caller to warn.
pub fn pairs(members: &[Member]) -> (Vec<u32>, bool) {
    let take = members.len().min(MAX_SCAN as usize);
    (members[..take].iter().flat_map(|m| [m.id, m.weight]).collect(), members.len() > take)
}

/// sh-fallback / mh-fallback, as IPVS's sh and mh with `IP_VS_SVC_F_SCHED1`: members with
/// weight 0 keep their place in the table (laid out with weight 1, as IPVS's sh deals a
/// weight-0 destination one bucket per round; IPVS's mh lays one out with its last non-zero
/// weight, which is the same for the usual weight 1), and each of their buckets goes to the first
/// live member along a walk of the table, so the clients of live members never move. The
/// walk is the kernel's: for sh, buckets `2i, 2i + 1, ...` from bucket `i` (`ip_vs_sh.c`
/// adds the offset to a start that is already the bucket); for mh, a rehash with a growing
/// offset (`ip_vs_mh.c`), here a mix of the bucket and the offset. The data plane then only
/// indexes the table, as without the flag. `live` must not be empty.
fn fallback_table(sched: Scheduler, members: &[Member], live: &[Member], seed: u64) -> Vec<u32> {
    let placed: Vec<Member> = members.iter().map(|m| Member { weight: m.weight.max(1), ..m.clone() }).collect();
    let base = if sched == Scheduler::Sh { hash_table(&placed) } else { maglev(&placed, MH_TABLE_SIZE, seed) };
    let is_live = |id: u32| live.iter().any(|m| m.id == id);
    let n = base.len() as u64;
    let probe = |i: u64, k: u64| -> usize {
        if sched == Scheduler::Sh { ((2 * i + k) % n) as usize } else { (splitmix((i << 32) | k) % n) as usize }
    };
    (0..n)
        .map(|i| {
            let own = base[i as usize];
            if is_live(own) {
                return own;
            }
            (0..n).map(|k| base[probe(i, k)]).find(|id| is_live(*id)).unwrap_or(live[0].id)
        })
        .collect()
}

/// splitmix64's finaliser: the mh fallback walk's rehash.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The table for `sched` over the live members (weight > 0); with sh-fallback or
/// mh-fallback in `flags` (`config::SCHED_FLAG_*`), weight-0 members keep their buckets and
/// lend them to live ones (`fallback_table`).
pub fn build(sched: Scheduler, members: &[Member], flags: u32, seed: u64) -> (Vec<u32>, bool) {
    let live: Vec<Member> = members.iter().filter(|m| m.weight > 0).cloned().collect();
    if sched.falls_back(flags) && !live.is_empty() && live.len() < members.len() {
        return (fallback_table(sched, members, &live, seed), false);
    }
    match sched {
        Scheduler::Rr => {
            let equal: Vec<Member> = live.iter().map(|m| Member { weight: 1, ..m.clone() }).collect();
            (wrr_sequence(&equal), false)
        }
        Scheduler::Wrr => (wrr_sequence(&live), false),
        Scheduler::Sh | Scheduler::Dh => (hash_table(&live), false),
        Scheduler::Mh => (maglev(&live, MH_TABLE_SIZE, seed), false),
        Scheduler::Lc | Scheduler::Wlc | Scheduler::Lblc => pairs(&live),
        // IPVS only: the data plane has no code for them (`bpf::sched_code`), so no service
        // with one of them gets this far.
        Scheduler::Lblcr | Scheduler::Sed | Scheduler::Nq | Scheduler::Fo | Scheduler::Ovf | Scheduler::Twos => {
            (Vec::new(), false)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{SCHED_FLAG_1, SCHED_FLAG_2, SCHED_FLAG_3};

    fn members(weights: &[u32]) -> Vec<Member> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Member { id: i as u32, name: format!("198.51.100.{}:80", 10 + i), weight: w })
            .collect()
    }

    fn counts(t: &[u32]) -> HashMap<u32, usize> {
        let mut c = HashMap::new();
        for &x in t {
            *c.entry(x).or_default() += 1;
        }
        c
    }

    #[test]
    fn wrr_is_proportional_and_interleaved() {
        let seq = wrr_sequence(&members(&[4, 2, 1]));
        assert_eq!(seq, [0, 0, 0, 1, 0, 1, 2]);
        let seq = wrr_sequence(&members(&[300, 100]));
        assert_eq!(counts(&seq), HashMap::from([(0, 3), (1, 1)]));
    }

    #[test]
    fn huge_weights_are_scaled_to_the_sequence_bound() {
        let seq = wrr_sequence(&members(&[65535, 65534, 1]));
        assert!(seq.len() <= MAX_SEQUENCE as usize + 3, "{}", seq.len());
        assert!(seq.contains(&2), "every live member keeps a slot");
    }

    #[test]
    fn maglev_is_balanced_by_weight() {
        let t = maglev(&members(&[1, 1, 2]), MH_TABLE_SIZE, 0);
        let c = counts(&t);
        let total = MH_TABLE_SIZE as f64;
        for (id, share) in [(0u32, 0.25), (1, 0.25), (2, 0.5)] {
            let got = c[&id] as f64 / total;
            assert!((got - share).abs() < 0.01, "member {id}: {got}");
        }
    }

    /// The bound: removing one of N real servers moves at most 1% of the flows that
    /// were on the others (100k synthetic flows through the table).
    #[test]
    fn maglev_removal_moves_at_most_one_percent_of_other_flows() {
        for n in [3usize, 5, 10, 32] {
            let all = members(&vec![1; n]);
            let before = maglev(&all, MH_TABLE_SIZE, 0);
            let removed = (n / 2) as u32;
            let rest: Vec<Member> = all.iter().filter(|m| m.id != removed).cloned().collect();
            let after = maglev(&rest, MH_TABLE_SIZE, 0);
            let (mut others, mut moved) = (0u32, 0u32);
            for flow in 0..100_000u64 {
                let h = fnv(7, &format!("203.0.113.{}:{}", flow % 251, flow)) % u64::from(MH_TABLE_SIZE);
                let (b, a) = (before[h as usize], after[h as usize]);
                if b != removed {
                    others += 1;
                    moved += u32::from(a != b);
                }
            }
            let pct = f64::from(moved) * 100.0 / f64::from(others);
            assert!(pct <= 1.0, "n={n}: {pct:.2}% of the other flows moved");
        }
    }

    #[test]
    fn hash_table_deals_buckets_by_weight() {
        let t = hash_table(&members(&[1, 3]));
        assert_eq!(t.len(), SH_TABLE_SIZE as usize);
        let c = counts(&t);
        assert!((c[&1] as f64 / c[&0] as f64 - 3.0).abs() < 0.01);
    }

    /// sh-fallback / mh-fallback: a real server at weight 0 lends its buckets to the live
    /// ones and nobody else's bucket changes; without the flag the table is rebuilt over the
    /// live ones (for sh most buckets change owner). Flags of other schedulers change nothing.
    #[test]
    fn fallback_moves_only_the_clients_of_a_weight_zero_member() {
        for sched in [Scheduler::Sh, Scheduler::Mh] {
            // Weight 1 → 0: IPVS's sh lays a weight-0 destination out as weight 1, so its
            // table keeps its shape (other weights re-deal it, in the kernel too).
            let (all, _) = build(sched, &members(&[1, 1, 1, 1]), SCHED_FLAG_1, 0);
            let (plain, _) = build(sched, &members(&[1, 1, 1, 1]), 0, 0);
            assert_eq!(all, plain, "{sched:?}: with every member live the flag changes nothing");
            let (fb, _) = build(sched, &members(&[1, 0, 1, 1]), SCHED_FLAG_1, 0);
            assert_eq!(fb.len(), all.len());
            let mut lent = HashMap::new();
            for (b, a) in all.iter().zip(&fb) {
                if *b == 1 {
                    assert_ne!(*a, 1, "{sched:?}: a weight-0 member keeps no bucket");
                    *lent.entry(*a).or_insert(0usize) += 1;
                } else {
                    assert_eq!(a, b, "{sched:?}: a live member's bucket moved");
                }
            }
            // mh's rehash spreads the lent buckets over the three live members; sh's walk
            // from bucket 2i gives all of them to the next member in the round (as the
            // kernel's does over its round-robin table).
            let spread = if sched == Scheduler::Mh { 3 } else { 1 };
            assert_eq!(lent.len(), spread, "{sched:?}: {lent:?}");
            let (rebuilt, _) = build(sched, &members(&[1, 0, 1, 1]), 0, 0);
            assert!(!rebuilt.contains(&1));
            if sched == Scheduler::Sh {
                let moved = all.iter().zip(&rebuilt).filter(|(b, a)| **b != 1 && a != b).count();
                assert!(moved > all.len() / 4, "without the flag sh re-deals the table: {moved}");
            }
            // mh-fallback's bit is sh-fallback's: flag-1 is the same request.
            let (port_only, _) = build(sched, &members(&[1, 0, 1, 1]), SCHED_FLAG_2 | SCHED_FLAG_3, 0);
            assert_eq!(port_only, rebuilt, "{sched:?}: only flag-1 is the fallback");
        }
        let (rr, _) = build(Scheduler::Rr, &members(&[1, 0, 5]), SCHED_FLAG_1, 0);
        assert_eq!(rr, [0, 2], "rr has no fallback");
        // Nobody live: no table (the sorry server or nothing), flag or not.
        assert!(build(Scheduler::Sh, &members(&[0, 0]), SCHED_FLAG_1, 0).0.is_empty());
    }

    /// The sh walk starts at bucket 2i as ip_vs_sh_get_fallback's does.
    #[test]
    fn sh_fallback_walks_from_twice_the_bucket() {
        let ms = members(&[1, 0, 1]);
        let base = hash_table(&members(&[1, 1, 1]));
        let (fb, _) = build(Scheduler::Sh, &ms, SCHED_FLAG_1, 0);
        let n = base.len();
        for i in (0..n).filter(|&i| base[i] == 1) {
            let want = (0..n).map(|k| base[(2 * i + k) % n]).find(|id| *id != 1).unwrap();
            assert_eq!(fb[i], want, "bucket {i}");
        }
    }

    #[test]
    fn weight_zero_members_are_left_out() {
        let (t, _) = build(Scheduler::Rr, &members(&[1, 0, 5]), 0, 0);
        assert_eq!(t, [0, 2]);
        let (p, truncated) = build(Scheduler::Wlc, &members(&[2, 0, 3]), 0, 0);
        assert_eq!((p, truncated), (vec![0, 2, 2, 3], false));
    }
}
