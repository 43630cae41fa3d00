//! `lb_decap`: TC ingress program for real servers of TUN services whose kernel cannot
//! decapsulate IPIP / IPv6-in-IPv6 itself (this project's 6.18 test kernel has no ipip
//! module). It removes the outer header of tunnelled packets so the stack sees the client's
//! packet to the VIP (held on lo); everything else passes untouched.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, bpf_adj_room_mode::BPF_ADJ_ROOM_MAC},
    macros::classifier,
    programs::TcContext,
};
use lb_common::consts::{IPPROTO_IPIP, IPPROTO_IPV6};

use lb_ebpf::hdr::{ETH_HLEN, ETH_P_IP, ETH_P_IPV6, IPV4_HLEN, IPV6_HLEN};

#[classifier]
pub fn lb_decap(ctx: TcContext) -> i32 {
    let Ok(proto) = ctx.load::<[u8; 2]>(12) else { return TC_ACT_OK };
    let (outer, inner_proto) = match u16::from_be_bytes(proto) {
        ETH_P_IP => {
            let Ok(vihl) = ctx.load::<u8>(ETH_HLEN) else { return TC_ACT_OK };
            // Outer headers with options are not ours (the load balancer never sends them).
            if vihl != 0x45 {
                return TC_ACT_OK;
            }
            (IPV4_HLEN, ctx.load::<u8>(ETH_HLEN + 9).unwrap_or(0))
        }
        ETH_P_IPV6 => (IPV6_HLEN, ctx.load::<u8>(ETH_HLEN + 6).unwrap_or(0)),
        _ => return TC_ACT_OK,
    };
    let expected = if outer == IPV4_HLEN { IPPROTO_IPIP } else { IPPROTO_IPV6 };
    if inner_proto != expected {
        return TC_ACT_OK;
    }
    // Removes `outer` bytes right after the MAC header: the inner packet follows.
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
