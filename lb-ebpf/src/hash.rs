//! Hashing of addresses for the hash schedulers (sh, dh, mh).

/// A 32-bit mix of an address (splitmix64 finaliser over its two halves): cheap, and spreads
/// neighbouring addresses over the whole table.
#[inline(always)]
pub fn hash_addr(a: &[u8; 16]) -> u32 {
    mix(fold(a))
}

/// An address and a port (sh-port, mh-port): the port enters before the mix, so
/// neighbouring ports of one client spread like neighbouring addresses.
#[inline(always)]
pub fn hash_addr_port(a: &[u8; 16], port: u16) -> u32 {
    mix(fold(a) ^ u64::from(port).wrapping_mul(0xd6e8_feb8_6659_fd93))
}

#[inline(always)]
fn fold(a: &[u8; 16]) -> u64 {
    let hi = u64::from_ne_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]);
    let lo = u64::from_ne_bytes([a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]]);
    hi ^ lo.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15
}

#[inline(always)]
fn mix(mut x: u64) -> u32 {
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

    #[test]
    fn port_hash_values_are_stable_and_differ_from_the_address_hash() {
        assert_eq!(hash_addr_port(&v4(192, 0, 2, 1), 0), hash_addr(&v4(192, 0, 2, 1)));
        assert_eq!(hash_addr_port(&v4(192, 0, 2, 1), 40000), 630_655_294);
        assert_ne!(hash_addr_port(&v4(192, 0, 2, 1), 40001), hash_addr_port(&v4(192, 0, 2, 1), 40000));
    }

    /// Neighbouring source ports of one client spread evenly too (sh-port).
    #[test]
    fn neighbouring_ports_spread() {
        const BUCKETS: usize = 13;
        let mut counts = [0u32; BUCKETS];
        for p in 0..13_000u16 {
            counts[hash_addr_port(&v4(192, 0, 2, 1), 32768 + p) as usize % 4093 % BUCKETS] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
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
