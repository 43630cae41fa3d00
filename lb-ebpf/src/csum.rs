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
