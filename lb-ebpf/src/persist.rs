//! Persistence granularity: a client's address masked to a prefix.

/// `addr` with all but its first `bits` bits cleared (`bits` already capped to the family's
/// width by the caller). Two 64-bit masks, no loop: a per-byte loop with a variable prefix
/// gives the verifier a state per byte and prefix, which on 6.1 ran past its
/// million-instruction budget.
#[inline(always)]
pub fn mask_prefix(addr: &[u8; 16], bits: u32) -> [u8; 16] {
    let s = addr;
    let hi = u64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
    let lo = u64::from_be_bytes([s[8], s[9], s[10], s[11], s[12], s[13], s[14], s[15]]);
    let (mhi, mlo) = match bits {
        0 => (0, 0),
        1..=63 => (u64::MAX << (64 - bits), 0),
        64 => (u64::MAX, 0),
        65..=127 => (u64::MAX, u64::MAX << (128 - bits)),
        _ => (u64::MAX, u64::MAX),
    };
    let (h, l) = ((hi & mhi).to_be_bytes(), (lo & mlo).to_be_bytes());
    [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7]]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: clear bit by bit.
    fn slow(addr: &[u8; 16], bits: u32) -> [u8; 16] {
        let mut out = *addr;
        for i in bits..128 {
            out[(i / 8) as usize] &= !(0x80 >> (i % 8));
        }
        out
    }

    #[test]
    fn every_prefix_length_matches_the_bitwise_reference() {
        let addr: [u8; 16] = core::array::from_fn(|i| 0xa5 ^ (i as u8).wrapping_mul(37));
        for bits in 0..=128 {
            assert_eq!(mask_prefix(&addr, bits), slow(&addr, bits), "/{bits}");
        }
    }

    #[test]
    fn ipv4_slash_24_keeps_three_bytes() {
        let mut a = [0; 16];
        a[..4].copy_from_slice(&[192, 0, 2, 77]);
        assert_eq!(mask_prefix(&a, 24)[..4], [192, 0, 2, 0]);
    }
}
