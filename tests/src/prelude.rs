//! What the test files share, in one import: `use lb_tests::prelude::*;`. The documentation
//! addresses, temp files and directories, the namespace topologies, the daemon runner, real
//! servers, and the readers of a running data plane. Packet fixtures (`fixture`, `packets`)
//! and the VM (`vm`) are imported by the few files that use them.

pub use crate::{
    addrs::*,
    daemon::{self, Daemon, Keepalived},
    golden::golden,
    inspect::{self, conns_json, map_dump, map_show, read_stats, scheduled, sorry_active, stats_json},
    netns::{LbTopology, Netns, Segment},
    require_root,
    servers::{
        Backend, TIMEOUT, backends, backends_at, spread, tcp_again, tcp_ask, tcp_hold, udp_ask,
        wait_until as eventually,
    },
    temp::{TempConfig, TempDir, lines},
    workspace_root,
};
