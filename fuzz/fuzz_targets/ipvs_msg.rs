//! The IPVS generic-netlink decoder on arbitrary bytes, as the kernel's replies reach it:
//! a whole netlink message, then each typed reading of its attributes. Must never panic.
#![no_main]

use lb_daemon::ipvs::msg::{self, Dest, IpvsMsg, Service, SyncDaemon};
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::NetlinkMessage;
use netlink_packet_generic::GenlMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = NetlinkMessage::<GenlMessage<IpvsMsg>>::deserialize(data)
        && let netlink_packet_core::NetlinkPayload::InnerMessage(g) = m.payload
    {
        let p = g.payload;
        let _ = Service::parse(&p);
        let _ = Dest::parse(&p, msg::AF_INET);
        let _ = Dest::parse(&p, msg::AF_INET6);
        let _ = SyncDaemon::parse(&p);
        let _ = msg::parse_info(&p);
    }
});
