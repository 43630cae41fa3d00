//! The next-hop cache's rules (`lb_nexthop`, `lb_nexthop_sel`): which slot is live, and
//! whether a cached next hop may carry a packet. Anything else asks the FIB.

use lb_common::{NextHop, consts::NEXTHOP_LIVE};

/// The live slot's index in `lb_nexthop` for real server `real` whose selector is `sel`;
/// None when the daemon cached nothing for it.
#[inline(always)]
pub fn live_slot(real: u32, sel: u32) -> Option<u32> {
    (sel & NEXTHOP_LIVE != 0).then_some(real * 2 + (sel & 1))
}

/// Whether `hop` was computed for `addr` and a packet of `len` bytes fits its MTU. Compared
/// as four words: a byte-wise compare costs sixteen loads and shifts on BPF.
#[inline(always)]
pub fn carries(hop: &NextHop, addr: &[u8; 16], len: usize) -> bool {
    // SAFETY: `addr` starts `NextHop`, which is 8-byte aligned: four aligned words.
    let ours = unsafe { &*(hop as *const NextHop).cast::<[u32; 4]>() };
    let word = |i: usize| u32::from_ne_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    len <= usize::from(hop.mtu) && ours[0] == word(0) && ours[1] == word(4) && ours[2] == word(8) && ours[3] == word(12)
}

const _: () = assert!(core::mem::offset_of!(NextHop, addr) == 0);

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(addr: [u8; 16], mtu: u16) -> NextHop {
        NextHop { addr, mtu, ifindex: 3, family: lb_common::consts::FAMILY_V4, ..Default::default() }
    }

    #[test]
    fn only_a_live_selector_names_a_slot() {
        assert_eq!(live_slot(7, 0), None);
        assert_eq!(live_slot(7, 1), None, "a slot bit without NEXTHOP_LIVE");
        assert_eq!(live_slot(7, NEXTHOP_LIVE), Some(14));
        assert_eq!(live_slot(7, NEXTHOP_LIVE | 1), Some(15));
        assert_eq!(live_slot(7, 5 << 2 | NEXTHOP_LIVE | 1), Some(15), "the generation bits do not move the slot");
    }

    #[test]
    fn a_hop_carries_packets_to_its_own_address_within_its_mtu() {
        let a = [192, 0, 2, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let h = hop(a, 1500);
        assert!(carries(&h, &a, 1500));
        assert!(!carries(&h, &a, 1501), "larger than the MTU: the FIB answers");
        for i in 0..16 {
            let mut other = a;
            other[i] ^= 1;
            assert!(!carries(&h, &other, 60), "byte {i} differs: a reused real server id");
        }
    }
}
