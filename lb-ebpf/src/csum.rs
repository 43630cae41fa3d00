//! Incremental Internet checksum updates (RFC 1624): HC' = ~(~HC + ~m + m'), word by word,
//! so a rewrite costs the changed bytes, not the packet.

/// Sums `b` as big-endian 16-bit words (even length).
#[inline(always)]
fn sum_words<const N: usize>(b: &[u8; N]) -> u32 {
    let mut s = 0u32;
    let mut i = 0;
    while i + 1 < N {
        s += u32::from(u16::from_be_bytes([b[i], b[i + 1]]));
        i += 2;
    }
    s
}

#[inline(always)]
fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The checksum `csum` (as stored, big-endian) after `old` bytes became `new`.
#[inline(always)]
pub fn replace<const N: usize>(csum: u16, old: &[u8; N], new: &[u8; N]) -> u16 {
    // ~old summed = N/2 * 0xffff - sum(old); fold handles the end-around carry.
    let not_old = (N as u32 / 2) * 0xffff - sum_words(old);
    !fold(u32::from(!csum) + not_old + sum_words(new))
}

/// `replace` for a 16-byte (IPv6) address, read as four words straight into registers: the
/// generic loop over 16 bytes costs hundreds of bytes of stack, which the call chain lacks.
#[inline(always)]
pub fn replace16(csum: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    !fold(u32::from(!csum).wrapping_add(sum16(new)).wrapping_add(8 * 0xffff - sum16(old)))
}

#[inline(always)]
pub fn sum16(a: &[u8; 16]) -> u32 {
    let mut s = 0u32;
    for i in 0..4 {
        let w = u32::from_be_bytes([a[i * 4], a[i * 4 + 1], a[i * 4 + 2], a[i * 4 + 3]]);
        s += (w >> 16) + (w & 0xffff);
    }
    s
}

/// Checksum of an IPv4 header from scratch (20 bytes, checksum field zero or ignored).
#[inline(always)]
pub fn ipv4_header(h: &[u8; 20]) -> u16 {
    let mut copy = *h;
    copy[10] = 0;
    copy[11] = 0;
    !fold(sum_words(&copy))
}

/// The Internet checksum of `b` (even length) plus an already summed `extra` (a pseudo-header).
#[inline(always)]
pub fn checksum<const N: usize>(b: &[u8; N], extra: u32) -> u16 {
    !fold(sum_words(b).wrapping_add(extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 over any even-length slice: the reference the incremental forms must match.
    fn full(b: &[u8], extra: u32) -> u16 {
        let mut s: u64 = u64::from(extra);
        for w in b.chunks(2) {
            s += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// A small deterministic generator (xorshift) so the cases are the same every run.
    fn bytes(seed: &mut u64, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                *seed as u8
            })
            .collect()
    }

    #[test]
    fn ipv4_header_matches_a_known_packet() {
        // RFC 1071's classic example header: checksum 0xb861.
        let h: [u8; 20] = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(ipv4_header(&h), 0xb861);
    }

    #[test]
    fn replace_equals_recomputing() {
        let mut seed = 0x1234_5678_9abc_def1;
        for _ in 0..2000 {
            let mut msg = bytes(&mut seed, 40);
            let before = full(&msg, 0);
            let at = (bytes(&mut seed, 1)[0] as usize % 9) * 4;
            let old: [u8; 4] = msg[at..at + 4].try_into().unwrap();
            let new: [u8; 4] = bytes(&mut seed, 4).try_into().unwrap();
            msg[at..at + 4].copy_from_slice(&new);
            let after = full(&msg, 0);
            // 0x0000 and 0xffff are the same value in ones' complement; compare as such.
            let got = replace(before, &old, &new);
            assert!(
                got == after || (got == 0xffff && after == 0) || (got == 0 && after == 0xffff),
                "{got:#x} {after:#x}"
            );
        }
    }

    #[test]
    fn replace16_equals_replace_over_four_words() {
        let mut seed = 0x0f0f_1234_5555_aaaa;
        for _ in 0..2000 {
            let c = u16::from_be_bytes(bytes(&mut seed, 2).try_into().unwrap());
            let old: [u8; 16] = bytes(&mut seed, 16).try_into().unwrap();
            let new: [u8; 16] = bytes(&mut seed, 16).try_into().unwrap();
            let mut want = c;
            for i in 0..4 {
                let o: [u8; 4] = old[i * 4..i * 4 + 4].try_into().unwrap();
                let n: [u8; 4] = new[i * 4..i * 4 + 4].try_into().unwrap();
                want = replace(want, &o, &n);
            }
            let got = replace16(c, &old, &new);
            assert!(got == want || (got | want == 0xffff && got & want == 0), "{got:#x} {want:#x}");
        }
    }

    #[test]
    fn checksum_with_pseudo_header_sum() {
        let mut seed = 99;
        let msg: [u8; 36] = bytes(&mut seed, 36).try_into().unwrap();
        let extra = sum16(&[7; 16]) + 58;
        assert_eq!(checksum(&msg, extra), full(&msg, extra));
    }
}
