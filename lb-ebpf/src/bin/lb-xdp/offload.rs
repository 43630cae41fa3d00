//! Frames a local sender left to checksum offload. A TCP/UDP stack transmitting through a
//! veth with tx checksum offload (the default) writes only the pseudo-header sum into the
//! checksum field and marks the skb `CHECKSUM_PARTIAL`; XDP cannot see that mark, and a
//! frame sent on by XDP_TX or a redirect arrives at its receiver as `CHECKSUM_NONE`, which then
//! drops it as corrupt. So before such a frame leaves, the program completes its checksum.
//!
//! A field equal to the folded pseudo-header sum may hold only that sum; a sum over the whole
//! segment then tells a partial checksum (completed here) from a complete one that matches by
//! chance (left alone). Only such frames pay for the sum.
//!
//! Generic XDP is different: the frame keeps its skb, still `CHECKSUM_PARTIAL`, which the
//! egress device or the receiver completes from the field. There the field must stay a
//! pseudo-header sum (`Frame::csum_partial` tells the NAT rewrite so), and a frame too large
//! to sum here (TSO/GSO, always partial) is taken as partial.

use aya_ebpf::{
    bindings::xdp_md,
    helpers::{bpf_csum_diff, bpf_loop, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use lb_common::consts::{FAMILY_V4, IFACE_GENERIC, IPPROTO_TCP, IPPROTO_UDP};
use lb_ebpf::{
    csum,
    hdr::{TCP_CHECK_OFF, UDP_CHECK_OFF},
};

use crate::{
    maps::{lb_csum_buf, lb_stats},
    nexthop::l4_at,
    parse::ptr_at,
    scratch::{Frame, frag},
};

use crate::scratch::CSUM_CHUNK as CHUNK;
/// Steps at most: frames on native XDP fit a page.
const MAX_CHUNKS: u32 = 8;

/// State of the segment sum, passed to the `bpf_loop` callback.
#[repr(C)]
struct Sum {
    ctx: *mut xdp_md,
    off: u32,
    end: u32,
    sum: u64,
    failed: u32,
}

/// One `CHUNK` of the segment: copied into the per-CPU buffer (zero-padded to whole 32-bit
/// words), then summed by the kernel.
#[inline(never)]
extern "C" fn sum_step(i: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `ctx` is the caller's `Sum`, alive for the whole loop.
    let s = unsafe { &mut *ctx.cast::<Sum>() };
    let at = s.off + (i as u32) * CHUNK as u32;
    if at >= s.end {
        return 1;
    }
    let len = (s.end - at).min(CHUNK as u32);
    let Some(buf) = lb_csum_buf.get_ptr_mut(0) else {
        s.failed = 1;
        return 1;
    };
    // SAFETY: this CPU's buffer, CHUNK + 4 bytes; `len` is 1..=CHUNK.
    let buf = unsafe { &mut *buf };
    // 1..=CHUNK in a form the verifier can follow (the identity on that range).
    let len = ((len as usize).wrapping_sub(1) & (CHUNK - 1)) + 1;
    // SAFETY: the helper checks the range lies in the frame and writes `len` bytes to `buf`.
    if unsafe { bpf_xdp_load_bytes(s.ctx, at, buf.as_mut_ptr().cast(), len as u32) } != 0 {
        s.failed = 1;
        return 1;
    }
    // Zero the rest of the last word: the odd byte of an odd-length segment is summed as the
    // high byte of a word whose low byte is 0 (RFC 1071).
    let words = (len + 3) & !3;
    for j in 0..3 {
        let k = len + j;
        if k < words && k < buf.len() {
            buf[k] = 0;
        }
    }
    // SAFETY: `words` bytes of `buf` are initialised and within it.
    let r = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, buf.as_mut_ptr().cast(), words as u32, 0) };
    if r < 0 {
        s.failed = 1;
        return 1;
    }
    s.sum += r as u64;
    0
}

/// What `complete_partial` found.
pub enum Checksum {
    /// Complete (or completed here): rewrites update it as a checksum.
    Complete,
    /// Generic XDP: left to offload (`Frame::csum_partial` set).
    Partial,
    /// Generic XDP: cannot tell (see `Reason::CsumAmbiguous`).
    Ambiguous,
}

/// Completes the TCP/UDP checksum of `f` if the sender left it to offload (native XDP), or
/// notes that it stays partial (generic XDP). A segment that cannot be read is sent as it is.
/// The test every forwarded frame pays is inline; only a frame whose field holds the
/// pseudo-header sum pays the call.
#[inline(always)]
pub fn complete_partial(ctx: &XdpContext, f: &mut Frame) -> Checksum {
    if may_be_partial(ctx, f) { complete_or_note(ctx, f) } else { Checksum::Complete }
}

/// Whether `f`'s TCP/UDP checksum field may hold only the pseudo-header sum (what `examine`
/// goes on to find out).
#[inline(always)]
fn may_be_partial(ctx: &XdpContext, f: &Frame) -> bool {
    checksum_field(ctx, f).is_some_and(|(_, value)| {
        value == csum::pseudo_header_folded(&f.src, &f.dst, f.family == FAMILY_V4, f.proto, f.l4_len())
    })
}

/// Where `f`'s TCP/UDP checksum field sits (from the L4 header) and what it holds; None when
/// there is no checksum to complete: not TCP/UDP, a fragment (the kernel completes checksums
/// before it fragments), a field beyond the frame, or UDP over IPv4 without a checksum (0),
/// which stays without one.
#[inline(always)]
fn checksum_field(ctx: &XdpContext, f: &Frame) -> Option<(usize, u16)> {
    let check_off = match f.proto {
        IPPROTO_TCP => TCP_CHECK_OFF,
        IPPROTO_UDP => UDP_CHECK_OFF,
        _ => return None,
    };
    if f.frag != frag::NONE {
        return None;
    }
    let field = ptr_at::<[u8; 2]>(ctx, l4_at(f) + check_off)?;
    // SAFETY: bounds checked by `ptr_at`.
    let value = u16::from_be_bytes(unsafe { *field });
    let no_udp_csum = f.proto == IPPROTO_UDP && f.family == FAMILY_V4 && value == 0;
    (!no_udp_csum).then_some((check_off, value))
}

/// `complete_partial` for a frame that may be partial.
#[inline(never)]
fn complete_or_note(ctx: &XdpContext, f: &mut Frame) -> Checksum {
    let generic = f.iface & IFACE_GENERIC != 0;
    match examine(ctx, f, generic) {
        Found::Complete => Checksum::Complete,
        Found::Partial if generic => {
            f.csum_partial = 1;
            Checksum::Partial
        }
        Found::Partial => Checksum::Complete,
        Found::Ambiguous if generic => Checksum::Ambiguous,
        Found::Ambiguous => Checksum::Complete,
    }
}

enum Found {
    Complete,
    Partial,
    /// Matches the pseudo-header sum and verifies: complete for native XDP (only the bytes
    /// count there), undecidable for generic XDP.
    Ambiguous,
}

/// Reads (and, for native XDP, completes) the checksum.
#[inline(always)]
fn examine(ctx: &XdpContext, f: &Frame, generic: bool) -> Found {
    let Some((check_off, value)) = checksum_field(ctx, f) else { return Found::Complete };
    let l4_len = f.l4_len();
    let pseudo = csum::pseudo_header(&f.src, &f.dst, f.proto, l4_len);
    if !csum::may_be_partial(value, pseudo) {
        return Found::Complete;
    }
    let mut s = Sum { ctx: ctx.ctx, off: f.l4_off, end: f.l4_off + l4_len, sum: 0, failed: 0 };
    if s.off + MAX_CHUNKS * (CHUNK as u32) < s.end {
        // Larger than native XDP frames get: a TSO/GSO frame in generic mode, partial.
        return Found::Partial;
    }
    // SAFETY: `sum_step` matches bpf_loop's callback type; `s` outlives the call.
    unsafe { bpf_loop(MAX_CHUNKS, sum_step as *mut core::ffi::c_void, (&mut s as *mut Sum).cast(), 0) };
    if s.failed != 0 {
        return Found::Complete;
    }
    let Some(mut c) = csum::complete(value, pseudo, csum::fold_le(s.sum)) else { return Found::Ambiguous };
    if generic {
        return Found::Partial;
    }
    if f.proto == IPPROTO_UDP && c == 0 {
        c = 0xffff;
    }
    let Some(field) = ptr_at::<[u8; 2]>(ctx, l4_at(f) + check_off) else { return Found::Complete };
    // SAFETY: bounds checked by `ptr_at`.
    unsafe { *field = c.to_be_bytes() };
    if let Some(st) = lb_stats.get_ptr_mut(0) {
        // SAFETY: this CPU's counters.
        unsafe { (*st).csum_completed += 1 };
    }
    Found::Partial
}
