//! `-p FILE`: the daemon's pid, written as keepalived does, removed on a clean stop. Created
//! without following a symlink planted at its path (keepalived's CVE-2018-19044 class).

use std::{
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

pub struct PidFile(PathBuf);

impl PidFile {
    pub fn create(path: &Path) -> Result<Self> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .with_context(|| format!("writing pid file {} (a symlink there is refused)", path.display()))?;
        writeln!(f, "{}", std::process::id()).with_context(|| format!("writing pid file {}", path.display()))?;
        Ok(Self(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_pid_refuses_symlinks_and_removes_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lb.pid");
        {
            let _p = PidFile::create(&path).unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", std::process::id()));
        }
        assert!(!path.exists());
        let target = dir.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(PidFile::create(&path).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
