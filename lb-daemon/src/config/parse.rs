//! The top-level keyword table; each block's own table lives with its handlers
//! (`global`, `vrrp`, `lvs`).

use super::{
    global,
    keyword::{Ctx, Keyword},
    lvs,
    model::Config,
    tree::Stmt,
    vrrp,
};

/// Builds the model from the statement tree (includes already expanded).
pub fn config(ctx: &mut Ctx, stmts: &[Stmt]) -> Config {
    let mut cfg = Config::default();
    ctx.apply(TOP, &mut cfg, stmts, "the top level");
    vrrp::track_static_interfaces(ctx, &mut cfg);
    global::complete(&mut cfg);
    cfg
}

pub(crate) const TOP: &[Keyword<Config>] = &[
    Keyword::new("global_defs", global::global_defs),
    Keyword::new("instance", global::instance),
    Keyword::new("use_pid_dir", global::use_pid_dir),
    Keyword::new("static_ipaddress", global::static_ipaddress),
    Keyword::new("static_routes", global::static_routes),
    Keyword::new("static_rules", global::static_rules),
    Keyword::new("vrrp_script", vrrp::vrrp_script),
    Keyword::new("track_file", vrrp::track_file).alias(&["vrrp_track_file"]),
    Keyword::new("vrrp_track_process", vrrp::vrrp_track_process),
    Keyword::new("bfd_instance", vrrp::bfd_instance),
    Keyword::new("track_group", vrrp::track_group),
    Keyword::new("vrrp_sync_group", vrrp::vrrp_sync_group),
    Keyword::new("vrrp_instance", vrrp::vrrp_instance),
    Keyword::new("garp_group", vrrp::garp_group),
    Keyword::new("interface_up_down_delays", vrrp::interface_up_down_delays),
    Keyword::new("virtual_server_group", lvs::virtual_server_group),
    Keyword::new("virtual_server", lvs::virtual_server),
    Keyword::new("SSL", lvs::ssl),
];
