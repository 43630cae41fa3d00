//! `lb_decap`: TC ingress program for real servers of TUN services whose kernel cannot
//! decapsulate IPIP / IPv6-in-IPv6 itself (this project's 6.18 test kernel has no ipip
//! module). It removes the outer header of a tunnelled packet so the stack sees the client's
//! packet to the VIP (held on lo), but only for packets a load balancer sent: the outer
//! source must be in `lb_decap_from` and the inner destination in `lb_decap_vips`, or anyone
//! who reaches the real server could inject packets with any source. Fragments of tunnelled
//! packets are dropped (the load balancer never fragments the outer header). Everything that
//! is not IPIP / IPv6-in-IPv6 passes untouched.
#![no_std]
#![no_main]
// Statics are named exactly as their maps (`lb_common::consts::MAP_DECAP_*`).
#![allow(non_upper_case_globals)]

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, bpf_adj_room_mode::BPF_ADJ_ROOM_MAC},
    btf_maps::{HashMap, PerCpuArray},
    helpers::bpf_skb_load_bytes,
    macros::{btf_map, classifier},
    programs::TcContext,
};
use lb_common::{
    DecapAddr, DecapStats,
    consts::{DECAP_ADDRS, FAMILY_V4, FAMILY_V6, IPPROTO_IPIP, IPPROTO_IPV6},
};
use lb_ebpf::hdr::{ETH_HLEN, ETH_P_IP, ETH_P_IPV6, IP_MF_OFFSET, IPV4_HLEN, IPV6_FRAGMENT, IPV6_HLEN};

/// Outer source addresses allowed: the load balancers' tunnel sources.
#[btf_map]
static lb_decap_from: HashMap<DecapAddr, u8, { DECAP_ADDRS as usize }> = HashMap::new();

/// Inner destination addresses allowed: the VIPs this real server holds.
#[btf_map]
static lb_decap_vips: HashMap<DecapAddr, u8, { DECAP_ADDRS as usize }> = HashMap::new();

/// What happened to tunnelled packets.
#[btf_map]
static lb_decap_stats: PerCpuArray<DecapStats, 1> = PerCpuArray::new();

/// A tunnelled packet's fate.
enum Fate {
    Decapsulated,
    ForeignSource,
    ForeignVip,
    Fragment,
}

#[classifier]
pub fn lb_decap(ctx: TcContext) -> i32 {
    let Ok(proto) = ctx.load::<[u8; 2]>(12) else { return TC_ACT_OK };
    let (family, outer, src_at, inner_dst_at) = match u16::from_be_bytes(proto) {
        ETH_P_IP => {
            let Ok(vihl) = ctx.load::<u8>(ETH_HLEN) else { return TC_ACT_OK };
            let next = ctx.load::<u8>(ETH_HLEN + 9).unwrap_or(0);
            // Only IPIP with an option-less outer header is ours (the load balancer sends
            // no others).
            if vihl != 0x45 || next != IPPROTO_IPIP {
                return TC_ACT_OK;
            }
            let frag = u16::from_be_bytes(ctx.load::<[u8; 2]>(ETH_HLEN + 6).unwrap_or([0xff; 2]));
            if frag & IP_MF_OFFSET != 0 {
                return verdict(&ctx, Fate::Fragment, 0);
            }
            (FAMILY_V4, IPV4_HLEN, ETH_HLEN + 12, ETH_HLEN + IPV4_HLEN + 16)
        }
        ETH_P_IPV6 => {
            let next = ctx.load::<u8>(ETH_HLEN + 6).unwrap_or(0);
            if next == IPV6_FRAGMENT && ctx.load::<u8>(ETH_HLEN + IPV6_HLEN).unwrap_or(0) == IPPROTO_IPV6 {
                return verdict(&ctx, Fate::Fragment, 0);
            }
            if next != IPPROTO_IPV6 {
                return TC_ACT_OK;
            }
            (FAMILY_V6, IPV6_HLEN, ETH_HLEN + 8, ETH_HLEN + IPV6_HLEN + 24)
        }
        _ => return TC_ACT_OK,
    };
    if !listed(&lb_decap_from, &ctx, src_at, family) {
        return verdict(&ctx, Fate::ForeignSource, 0);
    }
    if !listed(&lb_decap_vips, &ctx, inner_dst_at, family) {
        return verdict(&ctx, Fate::ForeignVip, 0);
    }
    verdict(&ctx, Fate::Decapsulated, outer)
}

/// Whether the address of `family` at `at` in the packet is in `list`.
#[inline(always)]
fn listed(list: &HashMap<DecapAddr, u8, { DECAP_ADDRS as usize }>, ctx: &TcContext, at: usize, family: u8) -> bool {
    // SAFETY: `DecapAddr` is plain data. Zeroed by words: the padding written as `[0; 7]` is a
    // byte-loop `memset` and an 8-byte copy at an odd stack offset, which the verifier refuses.
    let mut key: DecapAddr = unsafe { lb_ebpf::mem::zeroed() };
    key.family = family;
    // Straight into the key, a constant length per family: a copy through a temporary is
    // split at odd stack offsets.
    let to = key.addr.as_mut_ptr().cast();
    // SAFETY: the helper writes at most the given length (4 or 16) into `key.addr`.
    let read = unsafe {
        if family == FAMILY_V4 {
            bpf_skb_load_bytes(ctx.skb.skb.cast(), at as u32, to, 4)
        } else {
            bpf_skb_load_bytes(ctx.skb.skb.cast(), at as u32, to, 16)
        }
    };
    // SAFETY: only tested for presence.
    read == 0 && unsafe { list.get(&key) }.is_some()
}

/// Counts `fate`; decapsulates (removes the `outer` bytes after the MAC header) or drops.
#[inline(always)]
fn verdict(ctx: &TcContext, fate: Fate, outer: usize) -> i32 {
    if let Some(s) = lb_decap_stats.get_ptr_mut(0) {
        // SAFETY: this CPU's counters.
        let s = unsafe { &mut *s };
        match fate {
            Fate::Decapsulated => s.decapsulated += 1,
            Fate::ForeignSource => s.foreign_source += 1,
            Fate::ForeignVip => s.foreign_vip += 1,
            Fate::Fragment => s.fragment += 1,
        }
    }
    if !matches!(fate, Fate::Decapsulated) {
        return TC_ACT_SHOT as i32;
    }
    match ctx.adjust_room(-(outer as i32), BPF_ADJ_ROOM_MAC, 0) {
        Ok(()) => TC_ACT_OK as i32,
        Err(_) => TC_ACT_SHOT as i32,
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // No panics survive the verifier; this only satisfies no_std.
    loop {}
}
