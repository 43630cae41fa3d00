//! Limits and names in one place (Katran's style): both sides read them from here.

/// Version of the pinned map layout. A daemon finding pins with another version refuses
/// to adopt them (and says how to clear them) rather than misreading them.
pub const LAYOUT_VERSION: u32 = 1;

/// Directory under bpffs holding this project's pinned maps and links.
pub const PIN_DIR: &str = "/sys/fs/bpf/lb";

/// Most virtual services (VIP, port, protocol) the data plane holds.
pub const MAX_SERVICES: u32 = 4096;

/// Map names, as they appear in `bpftool map list` (the kernel keeps 15 characters).
pub const MAP_SERVICES: &str = "lb_services";
pub const MAP_STATS: &str = "lb_stats";
pub const MAP_SVC_STATS: &str = "lb_svc_stats";
pub const MAP_META: &str = "lb_meta";
/// Every pinned map, in the order the daemon adopts them.
pub const PINNED_MAPS: [&str; 4] = [MAP_META, MAP_SERVICES, MAP_STATS, MAP_SVC_STATS];

/// Program names, as in the ELF object and `bpftool prog list`.
pub const PROG_XDP: &str = "lb_xdp";

/// Address families as stored in keys (not AF_* values: those differ between systems).
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// IP protocol numbers the data plane parses.
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

/// How many 802.1Q/802.1ad tags the parser walks before giving up (QinQ is two).
pub const MAX_VLAN_DEPTH: usize = 2;
