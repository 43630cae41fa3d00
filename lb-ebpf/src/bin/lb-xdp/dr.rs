//! DR: the frame goes unchanged to the real server's MAC.

use aya_ebpf::programs::XdpContext;
use lb_common::{RealDef, Reason};
use lb_ebpf::verdict::{Verdict, XDP_DROP, XDP_PASS};

use crate::{
    nexthop::{self, Next, l3_at},
    scratch::Frame,
};

#[inline(never)]
pub fn dr(ctx: &XdpContext, f: &Frame, real_id: u32, real: &RealDef) -> Verdict {
    match nexthop::to_real(ctx, f, real_id, real, f.ip_len as usize) {
        Next::Hop => Verdict::new(nexthop::transmit(ctx, f, l3_at(f)), Reason::FwdDr),
        // Generic XDP, a TSO/GSO frame: it cannot be redirected, and the kernel would deliver
        // it to the VIP here rather than route it to the real server.
        Next::TooBig(_) if f.csum_partial != 0 => Verdict::new(XDP_DROP, Reason::GsoDropped),
        Next::TooBig(_) => Verdict::oversized(),
        Next::Unknown => Verdict::new(XDP_PASS, Reason::NoRoute),
    }
}
