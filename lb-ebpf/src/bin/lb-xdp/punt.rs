//! Handing a frame to the daemon (`lb_punt`) when the program cannot finish it alone: a
//! later fragment that arrived before its datagram's first (the daemon replays it shortly,
//! when the first has decided), or an IPv4 datagram over the egress MTU with DF clear (the
//! daemon fragments it and replays the fragments, which then fit). Replays run this program
//! again through `BPF_PROG_TEST_RUN` in live-frames mode, so every decision stays here.

use aya_ebpf::{helpers::bpf_xdp_load_bytes, programs::XdpContext};
use lb_common::{
    Reason,
    consts::{PUNT_EARLY_FRAGMENT, PUNT_MAX},
};
use lb_ebpf::verdict::{Verdict, XDP_DROP};

use crate::{maps::lb_punt, parse::frame_len, scratch::Frame};

/// Copies the frame into a `PuntRecord` of kind `kind` (`PUNT_*`) and drops it here: counted
/// as `frag_held` / `frag_needed`, or `punt_full` when the ring has no room.
#[inline(never)]
pub fn hand_over(ctx: &XdpContext, f: &Frame, kind: u8, mtu: u16) -> Verdict {
    let full = Verdict::new(XDP_DROP, Reason::PuntFull);
    let len = frame_len(ctx);
    if len == 0 || len > PUNT_MAX {
        return full;
    }
    let Some(mut entry) = lb_punt.reserve(0) else { return full };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` is the reserved record; every field is written before it is submitted.
    unsafe {
        (*rec).ifindex = f.ifindex;
        (*rec).len = len as u32;
        (*rec).kind = kind;
        (*rec).pad8 = 0;
        (*rec).mtu = mtu;
        (*rec).pad32 = 0;
    }
    // 1..=PUNT_MAX in a form the verifier can follow (the identity on that range).
    let n = ((len - 1) & (PUNT_MAX - 1)) as u32 + 1;
    // SAFETY: the helper checks the frame holds `n` bytes; `frame` has room for PUNT_MAX.
    let copied = unsafe { bpf_xdp_load_bytes(ctx.ctx, 0, (&raw mut (*rec).frame).cast(), n) };
    if copied != 0 {
        entry.discard(0);
        return full;
    }
    entry.submit(0);
    let reason = if kind == PUNT_EARLY_FRAGMENT { Reason::FragHeld } else { Reason::FragNeeded };
    Verdict::new(XDP_DROP, reason)
}
