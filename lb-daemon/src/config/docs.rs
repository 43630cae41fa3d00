//! The keyword status document (docs/keywords.md), generated from the keyword tables so it
//! cannot drift: a test compares the committed file with this output.

use super::{
    global,
    keyword::{self, Keyword},
    keyword_states, lvs, parse, vrrp,
};

/// Keywords read by handlers outside the tables (inside a block's own loop).
const INLINE: &[(&str, &str)] = &[
    ("authentication", "auth_type"),
    ("authentication", "auth_pass"),
    ("virtual_server_group", "fwmark"),
    ("vrrp_sync_group", "group"),
    ("any block", "include"),
    ("global_defs", "include_check"),
];

fn names<T>(block: &'static str, table: &'static [Keyword<T>]) -> Vec<(&'static str, &'static str)> {
    table.iter().flat_map(|k| std::iter::once(k.name).chain(k.aliases.iter().copied())).map(|n| (block, n)).collect()
}

/// Every keyword lb-daemon's tables read, with the block it belongs to.
pub fn supported() -> Vec<(&'static str, &'static str)> {
    let mut all = names("top level", parse::TOP);
    all.extend(names("global_defs", global::GLOBAL_DEFS));
    all.extend(names("vrrp_script", vrrp::VRRP_SCRIPT));
    all.extend(names("track_file", vrrp::TRACK_FILE));
    all.extend(names("vrrp_track_process", vrrp::TRACK_PROCESS));
    all.extend(names("bfd_instance", vrrp::BFD_INSTANCE));
    all.extend(names("vrrp_sync_group", vrrp::SYNC_GROUP));
    all.extend(names("track_group", vrrp::TRACK_GROUP));
    all.extend(names("vrrp_instance", vrrp::VRRP_INSTANCE));
    all.extend(names("virtual_server", lvs::VIRTUAL_SERVER));
    all.extend(names("real_server", lvs::REAL_SERVER));
    all.extend(names("checkers", lvs::CHECKER));
    all.extend(names("FILE_CHECK", lvs::FILE_CHECK));
    all.extend(names("url", lvs::URL));
    all.extend(names("BFD_CHECK", lvs::BFD_CHECK));
    all.extend(names("SSL", lvs::SSL));
    all.extend(names("garp_group", vrrp::GARP_GROUP));
    all.extend(INLINE.iter().copied());
    all
}

/// The markdown of docs/keywords.md.
pub fn keyword_status() -> String {
    let ours = supported();
    let mut out = String::from(
        "# keepalived keywords in lb-daemon\n\n\
         Generated from the keyword tables (`lb-daemon/src/config/`: the block tables, `keyword.rs`'s \
         `REFUSED` and `keyword_states.rs`); `cargo test -p lb-tests --test configs` fails when this file \
         is stale and rewrites it with `LB_UPDATE_GOLDEN=1`. Each keyword keepalived knows \
         (`keepalived_keywords.txt`, from keepalived's parser) is in exactly one of three states, which \
         `config::keyword_states::tests` checks, with every test named below:\n\n\
         - **acted on** as keepalived acts on it, naming the tests that prove its effect (a few are \
         listed apart, acted on but with no test proving the effect yet);\n\
         - **refused**: an error naming its file:line:col and what to use instead (`-t` exits 5 and the \
         daemon does not start), where this version cannot do what keepalived does safely: each would \
         change which node or real server gets traffic. Besides the keywords listed, \
         with `--backend bpf` (or `lb_backend bpf`) what only \
         IPVS runs: the schedulers lblcr, sed, nq, fo, ovf and twos, firewall-mark services, `protocol \
         SCTP`, `ops`, `persistence_engine`, a real server's `uthreshold` / `lthreshold`, a real server's `lvs_method` or a sorry \
         server's `sorry_server_lvs_method` other than its service's `lb_kind`, `sorry_server_inhibit` with a sorry server, an address (or mark) two virtual servers share (keepalived adds the later one's real servers to the earlier one's service), and `lvs_timeouts` (`--backend auto` warns and uses IPVS for them);\n\
         - **accepted without effect**, only where it cannot change which node or real server gets \
         traffic (SNMP, DBus, process tuning, log detail, ...): a warning naming its file:line:col says \
         so, with the reason.\n\n\
         The states hold block by block: every keyword keepalived 2.2.7 reads in a block \
         (`keepalived_227_blocks.txt`) is in one of them there, and one it reads that nothing here \
         placed would be an error, never ignored. A keepalived keyword in a block that does not take it \
         is ignored with a warning, as keepalived ignores it. Keywords keepalived does not know are errors with a \"did you mean\" hint. `-t` exits \
         as keepalived 2.2.7's does (0 valid, 4 unreadable, 5 errors, 6 scripts without \
         `enable_script_security`); `tests/tests/corpus.rs` compares the verdicts over \
         `tests/corpus/keepalived/` and names each difference (keepalived's `-t` also fails on its \
         warnings; ours on errors only).\n\n",
    );
    let mut sorted = ours.clone();
    sorted.sort_by_key(|(b, n)| (n.to_ascii_lowercase(), *b));
    sorted.dedup();
    let proven = |block: &str, name: &str| {
        keyword_states::ACTED.iter().find(|(b, k, _)| *b == block && *k == name).map(|(_, _, tests)| *tests)
    };
    let mark = |name: &str| if keyword::is_keepalived_keyword(name) { "" } else { " (lb-daemon's own)" };
    out.push_str("## Acted on\n\n| keyword | block | proven by |\n| --- | --- | --- |\n");
    for (block, name) in &sorted {
        if let Some(tests) = proven(block, name) {
            let tests = tests.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ");
            out.push_str(&format!("| `{name}`{} | {block} | {tests} |\n", mark(name)));
        }
    }
    out.push_str("\n## Acted on, effect not yet proven by a test\n\n| keyword | block |\n| --- | --- |\n");
    for (block, name) in &sorted {
        if proven(block, name).is_none() {
            out.push_str(&format!("| `{name}`{} | {block} |\n", mark(name)));
        }
    }
    out.push_str(
        "\n## Refused (they would change who gets traffic)\n\n| keyword | block | instead |\n| --- | --- | --- |\n",
    );
    for (block, name, instead) in keyword::REFUSED {
        out.push_str(&format!("| `{name}` | {block} | {instead} |\n"));
    }
    for (name, block, instead) in keyword_states::REFUSED_ANYWHERE {
        out.push_str(&format!("| `{name}` | {block} | {instead} |\n"));
    }
    out.push_str(
        "\n## Accepted without effect\n\n| keywords | why they cannot change who gets traffic |\n| --- | --- |\n",
    );
    for (why, words) in keyword_states::WITHOUT_EFFECT {
        let words = words.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
        out.push_str(&format!("| {words} | {why} |\n"));
    }
    out
}
