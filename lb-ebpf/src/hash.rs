//! Hashing of addresses for the hash schedulers (sh, dh, mh).

/// A 32-bit mix of an address (splitmix64 finaliser over its two halves): cheap, and spreads
/// neighbouring addresses over the whole table.
#[inline(always)]
pub fn hash_addr(a: &[u8; 16]) -> u32 {
    let hi = u64::from_ne_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]);
    let lo = u64::from_ne_bytes([a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]]);
    let mut x = hi ^ lo.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> [u8; 16] {
        let mut x = [0; 16];
        x[..4].copy_from_slice(&[a, b, c, d]);
        x
    }

    /// The value is part of the contract with flows already placed: a change moves every
    /// sh/dh/mh client. (Little-endian host and BPF target read the words alike.)
    #[test]
    fn hash_values_are_stable() {
        assert_eq!(hash_addr(&v4(192, 0, 2, 1)), 1_341_264_530);
        assert_eq!(hash_addr(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), 2_689_965_171);
    }

    /// Neighbouring client addresses spread evenly over a prime-sized table (sh's 4093).
    #[test]
    fn neighbouring_addresses_spread() {
        const BUCKETS: usize = 13;
        let mut counts = [0u32; BUCKETS];
        for i in 0..13_000u32 {
            let b = i.to_be_bytes();
            counts[hash_addr(&v4(198, b[1], b[2], b[3])) as usize % 4093 % BUCKETS] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }
}
