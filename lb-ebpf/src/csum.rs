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

/// Checksum of an IPv4 header from scratch (20 bytes, checksum field zero or ignored).
#[inline(always)]
pub fn ipv4_header(h: &[u8; 20]) -> u16 {
    let mut copy = *h;
    copy[10] = 0;
    copy[11] = 0;
    !fold(sum_words(&copy))
}
