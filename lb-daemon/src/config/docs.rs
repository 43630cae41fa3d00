//! The keyword status document (docs/keywords.md), generated from the keyword tables so it
//! cannot drift: a test compares the committed file with this output.

use super::{
    global,
    keyword::{self, Keyword},
    lvs, parse, vrrp,
};

/// Keywords read by handlers outside the tables (inside a block's own loop).
const INLINE: &[(&str, &str)] = &[
    ("authentication", "auth_type"),
    ("authentication", "auth_pass"),
    ("virtual_server_group", "fwmark"),
    ("vrrp_sync_group", "group"),
    ("any block", "include"),
];

fn names<T>(block: &'static str, table: &'static [Keyword<T>]) -> Vec<(&'static str, &'static str)> {
    table.iter().flat_map(|k| std::iter::once(k.name).chain(k.aliases.iter().copied())).map(|n| (block, n)).collect()
}

/// Every keyword lb-daemon's tables read, with the block it belongs to.
pub fn supported() -> Vec<(&'static str, &'static str)> {
    let mut all = names("top level", parse::TOP);
    all.extend(names("global_defs", global::GLOBAL_DEFS));
    all.extend(names("vrrp_script", vrrp::VRRP_SCRIPT));
    all.extend(names("vrrp_sync_group", vrrp::SYNC_GROUP));
    all.extend(names("vrrp_instance", vrrp::VRRP_INSTANCE));
    all.extend(names("virtual_server", lvs::VIRTUAL_SERVER));
    all.extend(names("real_server", lvs::REAL_SERVER));
    all.extend(names("checkers", lvs::CHECKER));
    all.extend(names("url", lvs::URL));
    all.extend(INLINE.iter().copied());
    all
}

/// The markdown of docs/keywords.md.
pub fn keyword_status() -> String {
    let ours = supported();
    let mut out = String::from(
        "# keepalived keywords in lb-daemon\n\n\
         Generated from the keyword tables (`lb-daemon/src/config/`); `cargo test -p lb-tests --test configs` \
         fails when this file is stale and rewrites it with `LB_UPDATE_GOLDEN=1`.\n\n\
         - **parsed**: read into the typed model (what acts on it is listed per issue in the README).\n\
         - **warned**: keepalived knows it, lb-daemon does not act on it yet; it is skipped with a warning \
         naming its file:line:col, never silently and never as an error.\n\
         - **refused**: keepalived settings that are errors (`-t` exits 5 and the daemon does not start). \
         The keywords listed under Refused would change which node or real server gets traffic, and this \
         version does not act on them yet: each error says what to use instead. `auth_type AH` (lb-daemon \
         has no IPsec AH): the daemon does not start. With `--backend bpf` (or `lb_backend bpf`), what only IPVS runs: the \
         schedulers lblcr, sed, nq, fo, ovf and twos, firewall-mark services, `protocol SCTP` and `ops` \
         (`--backend auto` warns and uses IPVS for them).\n\
         - Keywords keepalived does not know are errors with a \"did you mean\" hint.\n\n\
         ## Parsed\n\n| keyword | block |\n| --- | --- |\n",
    );
    let mut sorted = ours.clone();
    sorted.sort_by_key(|(b, n)| (n.to_ascii_lowercase(), *b));
    sorted.dedup();
    for (block, name) in &sorted {
        let mark = if keyword::is_keepalived_keyword(name) { "" } else { " (lb-daemon's own)" };
        out.push_str(&format!("| `{name}`{mark} | {block} |\n"));
    }
    out.push_str("\n## Refused (they change who gets traffic; not acted on yet)\n\n| keyword | block | instead |\n| --- | --- | --- |\n");
    for (block, name, instead) in keyword::REFUSED {
        out.push_str(&format!("| `{name}` | {block} | {instead} |\n"));
    }
    out.push_str("\n## Warned (keepalived keywords not acted on yet)\n\n");
    let warned: Vec<&str> = keyword::keepalived_keywords()
        .filter(|k| !ours.iter().any(|(_, n)| n == k) && !keyword::REFUSED.iter().any(|(_, n, _)| n == k))
        .collect();
    out.push_str(&warned.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "));
    out.push('\n');
    out
}
