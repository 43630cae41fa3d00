//! lb-daemon: a keepalived-compatible load balancer with an XDP data plane.
//!
//! `config` reads keepalived.conf into a typed model; `check` runs the health checkers;
//! `dataplane` (XDP) or `ipvs` forwards; `vrrp` elects a master; `daemon` ties them together
//! for the process's lifetime, its core deciding and its shell doing the I/O. `main.rs` is
//! only the CLI. Modules import one way (`layering` below checks the order).

pub mod bfd;
pub mod check;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod fuzzing;
pub mod ipvs;
pub mod logging;
pub mod metrics;
pub mod netlink;
pub mod notify;
pub mod pcre;
pub mod pidfile;
pub mod script;
pub mod state;
pub mod vrrp;

/// The one-way import order of the modules above, from the source: each may use only those
/// before it (DEVELOPERS.md, "The daemon's other parts").
#[cfg(test)]
mod layering {
    use std::path::Path;

    const ORDER: [&str; 17] = [
        "pcre",
        "config",
        "logging",
        "pidfile",
        "script",
        "netlink",
        "notify",
        "bfd",
        "check",
        "dataplane",
        "ipvs",
        "vrrp",
        "state",
        "control",
        "metrics",
        "fuzzing",
        "daemon",
    ];

    /// Top-level modules named by `crate::` paths in `text` (comments aside), grouped
    /// imports (`use crate::{a::b, c}`) included.
    fn used(text: &str) -> Vec<String> {
        let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
        let mut out = Vec::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let (mut depth, mut item) = (0, String::new());
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => out.push(std::mem::take(&mut item)),
                        c if depth == 0 => item.push(c),
                        _ => {}
                    }
                }
                out.push(item);
            } else {
                out.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
            }
        }
        out.iter()
            .map(|s| s.trim().split("::").next().unwrap_or("").trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    #[test]
    fn modules_import_one_way() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for (rank, module) in ORDER.iter().enumerate() {
            let mut paths = Vec::new();
            let dir = src.join(module);
            if dir.is_dir() {
                files(&dir, &mut paths);
            } else {
                paths.push(src.join(format!("{module}.rs")));
            }
            for p in paths {
                for u in used(&std::fs::read_to_string(&p).unwrap()) {
                    let at = ORDER.iter().position(|m| *m == u);
                    assert!(at.is_some_and(|at| at <= rank), "{} uses crate::{u}, which comes after it", p.display());
                }
            }
        }
    }
}
