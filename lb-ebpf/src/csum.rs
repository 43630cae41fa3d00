//! Incremental Internet checksum updates (RFC 1624): HC' = ~(~HC + ~m + m'), word by word,
//! so a rewrite costs the changed bytes, not the packet.

/// Sums `b` as big-endian 16-bit words (even length).
#[inline(always)]
pub fn sum_words<const N: usize>(b: &[u8; N]) -> u32 {
    let mut s = 0u32;
    let mut i = 0;
    while i + 1 < N {
        s += u32::from(u16::from_be_bytes([b[i], b[i + 1]]));
        i += 2;
    }
    s
}

/// Folds a 32-bit ones' complement sum to 16 bits (end-around carry).
#[inline(always)]
pub fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Folds a sum of little-endian words (what `bpf_csum_diff` returns over packet bytes on a
/// little-endian machine, folded or not) into the network-order 16-bit sum. Byte-swapping
/// commutes with ones' complement addition, so one swap at the end is enough.
#[inline(always)]
pub fn fold_le(s: u64) -> u16 {
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff_ffff) + (s >> 32);
    fold(s as u32).swap_bytes()
}

/// The TCP/UDP pseudo-header sum (RFC 793, RFC 768, RFC 8200 §8.1) for addresses as stored
/// in `ServiceKey` (IPv4 in the first four bytes, the rest zero, which adds nothing).
#[inline(always)]
pub fn pseudo_header(src: &[u8; 16], dst: &[u8; 16], proto: u8, l4_len: u32) -> u32 {
    sum16(src) + sum16(dst) + u32::from(proto) + (l4_len >> 16) + (l4_len & 0xffff)
}

/// `fold(pseudo_header(..))`, cheaply: the addresses as little-endian 32-bit words (IPv4: only
/// the first), summed without byte swaps and swapped once at the end (`fold_le`). For the
/// test every forwarded TCP/UDP frame pays (`may_be_partial`).
#[inline(always)]
pub fn pseudo_header_folded(src: &[u8; 16], dst: &[u8; 16], v4: bool, proto: u8, l4_len: u32) -> u16 {
    let word = |a: &[u8; 16], i: usize| u64::from(u32::from_le_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]));
    let mut s = word(src, 0) + word(dst, 0);
    if !v4 {
        for i in 1..4 {
            s += word(src, i * 4) + word(dst, i * 4);
        }
    }
    // The protocol and the length as the big-endian words they are, read little-endian.
    s += u64::from(u16::from(proto).swap_bytes());
    s += u64::from(((l4_len >> 16) as u16).swap_bytes()) + u64::from((l4_len as u16).swap_bytes());
    fold_le(s)
}

/// Whether a TCP/UDP checksum field may hold only the pseudo-header sum, as a sender that left
/// the checksum to offload writes it (`CHECKSUM_PARTIAL`). A complete checksum matches this
/// by chance once in 65,536 frames: `complete` tells the two apart.
#[inline(always)]
pub fn may_be_partial(field: u16, pseudo: u32) -> bool {
    field == fold(pseudo)
}

/// The complete checksum for a segment whose field is `field`, pseudo-header sum `pseudo` and
/// whose bytes (field included) sum to `segment` (network order, folded): `None` when the
/// field already holds a valid checksum. A UDP result of 0 must be sent as 0xffff.
#[inline(always)]
pub fn complete(field: u16, pseudo: u32, segment: u16) -> Option<u16> {
    if fold(pseudo + u32::from(segment)) == 0xffff {
        return None;
    }
    // The segment without its field: subtracting is adding the complement.
    Some(!fold(pseudo + u32::from(segment) + u32::from(!field)))
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

    /// What `bpf_csum_diff` computes over packet memory on a little-endian machine: 32-bit
    /// little-endian words, zero-padded, with end-around carry.
    fn csum_diff_le(b: &[u8]) -> u64 {
        let mut s: u64 = 0;
        for w in b.chunks(4) {
            let mut x = [0u8; 4];
            x[..w.len()].copy_from_slice(w);
            s += u64::from(u32::from_le_bytes(x));
        }
        s
    }

    #[test]
    fn little_endian_sums_fold_to_network_order() {
        let mut seed = 5;
        for len in [2usize, 20, 37, 512, 1480, 1481] {
            let b = bytes(&mut seed, len);
            let mut padded = b.clone();
            if len % 2 == 1 {
                padded.push(0);
            }
            assert_eq!(fold_le(csum_diff_le(&b)), !full(&padded, 0), "{len}");
        }
    }

    /// A TCP segment as a sender with checksum offload leaves it (the field holds the folded
    /// pseudo-header sum) is completed to exactly the checksum a full computation gives; a
    /// segment with a valid checksum is left alone.
    #[test]
    fn completes_partial_checksums_and_leaves_complete_ones() {
        let mut seed = 77;
        for len in [20usize, 21, 60, 1460, 1461] {
            let src: [u8; 16] = core::array::from_fn(|i| if i < 4 { [192, 0, 2, 1][i] } else { 0 });
            let dst: [u8; 16] = core::array::from_fn(|i| if i < 4 { [203, 0, 113, 7][i] } else { 0 });
            let pseudo = pseudo_header(&src, &dst, 6, len as u32);
            let mut seg = bytes(&mut seed, len);
            seg[16] = 0;
            seg[17] = 0;
            let mut padded = seg.clone();
            if len % 2 == 1 {
                padded.push(0);
            }
            let right = full(&padded, pseudo);
            // Offloaded: the field holds the pseudo-header sum.
            seg[16..18].copy_from_slice(&fold(pseudo).to_be_bytes());
            assert!(may_be_partial(fold(pseudo), pseudo));
            let got = complete(fold(pseudo), pseudo, fold_le(csum_diff_le(&seg)));
            assert_eq!(got, Some(right), "len {len}");
            // Complete already: nothing to do.
            seg[16..18].copy_from_slice(&right.to_be_bytes());
            assert_eq!(complete(right, pseudo, fold_le(csum_diff_le(&seg))), None, "len {len}");
        }
    }

    #[test]
    fn pseudo_header_folded_is_the_folded_pseudo_header() {
        let mut seed = 5;
        for case in 0..2000 {
            let v4 = case % 2 == 0;
            let mut addr = || -> [u8; 16] {
                let b = bytes(&mut seed, 16);
                core::array::from_fn(|i| if v4 && i >= 4 { 0 } else { b[i] })
            };
            let (src, dst) = (addr(), addr());
            let r = bytes(&mut seed, 3);
            let proto = r[0];
            let len = u32::from(u16::from_be_bytes([r[1], r[2]])) << (case % 3 * 4);
            assert_eq!(
                pseudo_header_folded(&src, &dst, v4, proto, len),
                fold(pseudo_header(&src, &dst, proto, len)),
                "{src:?} {dst:?} {proto} {len}"
            );
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
