//! Golden files: output compared with a committed file, which `LB_UPDATE_GOLDEN=1` rewrites
//! instead (then review the diff and commit it).

use std::path::Path;

/// Whether this run rewrites golden files instead of comparing.
pub fn updating() -> bool {
    std::env::var_os("LB_UPDATE_GOLDEN").is_some()
}

/// Compares `actual` with the file at `path`, or rewrites the file when updating.
pub fn golden(path: &Path, actual: &str) {
    if updating() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (LB_UPDATE_GOLDEN=1 creates it)", path.display()));
    assert!(want == actual, "{} is stale; diff it against:\n{actual}", path.display());
}
