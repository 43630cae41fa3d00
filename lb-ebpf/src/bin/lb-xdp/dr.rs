//! DR: the frame goes unchanged to the real server's MAC.

use aya_ebpf::programs::XdpContext;
use lb_common::{RealDef, Reason};
use lb_ebpf::verdict::{Verdict, XDP_PASS};

use crate::{
    icmp,
    nexthop::{self, Next, l3_at},
    scratch::Frame,
};

#[inline(never)]
pub fn dr(ctx: &XdpContext, f: &Frame, real: &RealDef) -> Verdict {
    match nexthop::lookup(ctx, f, &f.src, &real.addr, f.ip_len as usize) {
        Next::Hop { ifindex, smac, dmac } => {
            Verdict::new(nexthop::transmit(ctx, f, l3_at(f), ifindex, smac, dmac), Reason::FwdDr)
        }
        Next::TooBig(mtu) => icmp::oversized(ctx, f, mtu),
        Next::Unknown => Verdict::new(XDP_PASS, Reason::NoRoute),
    }
}
