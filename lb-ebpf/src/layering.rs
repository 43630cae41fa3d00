//! The programs' modules import one way (a module uses only those before it in `ORDER`) and
//! the library's modules are leaves: read from the sources, so a new import that reaches
//! back up fails here rather than in a review.

use std::{fs, path::Path};

/// `lb-xdp`'s modules, lowest first (as `src/bin/lb-xdp/main.rs` documents them).
const ORDER: [&str; 17] = [
    "scratch", "maps", "time", "parse", "stats", "sched", "flow", "nexthop", "offload", "punt", "icmp", "nat", "dr",
    "tun", "frags", "trace", "main",
];

/// The modules of `ORDER` that `source` names: `crate::m` paths, `use crate::{m, ...}` lists
/// and `m::item` paths.
fn used(source: &str) -> Vec<&'static str> {
    let code: String = source.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    ORDER
        .iter()
        .copied()
        .filter(|m| {
            let word = |at: usize| {
                at == 0 || !code.as_bytes()[at - 1].is_ascii_alphanumeric() && code.as_bytes()[at - 1] != b'_'
            };
            code.match_indices(&format!("{m}::")).any(|(at, _)| word(at))
                || code.match_indices(&format!("crate::{m}")).next().is_some()
                || code.match_indices(&format!("    {m},")).next().is_some()
        })
        .collect()
}

#[test]
fn lb_xdp_modules_import_one_way() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin/lb-xdp");
    for (i, m) in ORDER.iter().enumerate() {
        let source = fs::read_to_string(dir.join(format!("{m}.rs"))).unwrap();
        let later: Vec<_> =
            used(&source).into_iter().filter(|u| ORDER.iter().position(|o| o == u).unwrap() > i).collect();
        assert!(later.is_empty() || *m == "main", "{m} uses {later:?}, which come after it");
    }
    let listed: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    for file in &listed {
        assert!(ORDER.contains(&file.as_str()), "{file}.rs is not in ORDER");
    }
}

#[test]
fn library_modules_are_leaves() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for e in fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "rs") && !path.ends_with("lib.rs") && !path.ends_with("layering.rs") {
            let source = fs::read_to_string(&path).unwrap();
            assert!(!source.contains("crate::"), "{} imports another library module", path.display());
        }
    }
}
