//! Files a test writes (configs, scripts, logs), under the system temp directory in a
//! directory per test, `lbt-<tag>-<pid>`, removed on drop. The pid keeps concurrent runs
//! apart; within one test binary each test passes its own tag.

use std::{
    ffi::OsStr,
    ops::Deref,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

/// A directory for one test's files, emptied when made and removed on drop.
pub struct TempDir(PathBuf, String);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("lbt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()));
        TempDir(p, tag.to_string())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The tag it was made with: a test names its other per-test resources (pin directories)
    /// after it too.
    pub fn tag(&self) -> &str {
        &self.1
    }

    /// Writes `text` to `name` here; its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        p
    }

    /// Writes an executable script (mode 0755); its path.
    pub fn script(&self, name: &str, text: &str) -> PathBuf {
        let p = self.file(name, text);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// A notify script that appends its arguments to `<name>.log`: (script, log).
    pub fn recorder(&self, name: &str) -> (PathBuf, PathBuf) {
        let log = self.0.join(format!("{name}.log"));
        let s = self.script(&format!("{name}.sh"), &format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()));
        (s, log)
    }
}

impl Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One config file (`keepalived.conf`) in its own [`TempDir`]; derefs to its path.
pub struct TempConfig {
    path: PathBuf,
    _dir: TempDir,
}

impl TempConfig {
    pub fn new(tag: &str, text: &str) -> TempConfig {
        let dir = TempDir::new(tag);
        TempConfig { path: dir.file("keepalived.conf", text), _dir: dir }
    }

    /// Replaces the file's text (before a SIGHUP).
    pub fn rewrite(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap_or_else(|e| panic!("writing {}: {e}", self.path.display()));
    }
}

impl Deref for TempConfig {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempConfig {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// So it passes as a command's argument, like a `PathBuf`.
impl AsRef<OsStr> for TempConfig {
    fn as_ref(&self) -> &OsStr {
        self.path.as_os_str()
    }
}

/// The lines of a file (a recorder's log), none when it does not exist yet.
pub fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_string).collect()
}
