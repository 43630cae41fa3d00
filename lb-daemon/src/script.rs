//! Running the config's scripts (notify_*, vrrp_script, MISC_CHECK, quorum_up/down) the way
//! keepalived does: exec'd directly (no shell unless the script is one), as `script_user`,
//! refused when `enable_script_security` finds a path a non-root user could rewrite, and
//! bounded by a timeout that kills the script's whole process group.

use std::{
    ffi::OsString,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::{Gid, Group, Pid, Uid, User},
};
use thiserror::Error;

use crate::config::{GlobalDefs, RunAs, Script};

/// keepalived's default script user, used when it exists and `script_user` is unset.
const DEFAULT_SCRIPT_USER: &str = "keepalived_script";

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ScriptError {
    #[error("script `{0}` is empty")]
    Empty(String),
    #[error("script `{script}`: {path} not found or not executable")]
    NotFound { script: String, path: String },
    #[error("script user `{0}` does not exist")]
    NoUser(String),
    #[error("script group `{0}` does not exist")]
    NoGroup(String),
    #[error(
        "script `{script}` refused by enable_script_security: {path} {why}; fix its ownership/mode or run it elsewhere"
    )]
    Insecure { script: String, path: String, why: String },
}

/// Who a script runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// A script resolved and checked, ready to run any number of times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The command as configured, for logs.
    pub command: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub identity: Identity,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signalled(i32),
    TimedOut,
    SpawnFailed(String),
}

impl Outcome {
    pub fn success(&self) -> bool {
        *self == Outcome::Exited(0)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Exited(c) => write!(f, "exit status {c}"),
            Outcome::Signalled(s) => write!(f, "killed by signal {s}"),
            Outcome::TimedOut => write!(f, "timed out (killed)"),
            Outcome::SpawnFailed(e) => write!(f, "could not start: {e}"),
        }
    }
}

/// The global script settings: default identity and whether paths are checked.
#[derive(Clone, Debug)]
pub struct Runner {
    default: Identity,
    security: bool,
}

impl Runner {
    /// `script_user` if set, else keepalived_script if that user exists, else root (as
    /// keepalived does).
    pub fn new(global: &GlobalDefs) -> Result<Self, ScriptError> {
        let default = match &global.script_user {
            Some(r) => identity(r)?,
            None => match User::from_name(DEFAULT_SCRIPT_USER).ok().flatten() {
                Some(u) => Identity { name: u.name, uid: u.uid, gid: u.gid },
                None => Identity { name: "root".into(), uid: Uid::from_raw(0), gid: Gid::from_raw(0) },
            },
        };
        Ok(Self { default, security: global.enable_script_security })
    }

    pub fn default_identity(&self) -> &Identity {
        &self.default
    }

    /// Splits the command line, finds the program and, with `enable_script_security`,
    /// refuses it if it runs with root's privileges (as root, in root's group, or set-uid /
    /// set-gid root) and it or any directory above it can be rewritten by a non-root user:
    /// keepalived's `check_script_secure` (lib/notify.c), which checks only such scripts.
    pub fn prepare(&self, script: &Script, user: Option<&RunAs>) -> Result<Prepared, ScriptError> {
        let words = shlex::split(&script.command)
            .unwrap_or_else(|| script.command.split_whitespace().map(str::to_string).collect());
        let (first, args) = words.split_first().ok_or_else(|| ScriptError::Empty(script.command.clone()))?;
        let program = find_program(first)
            .ok_or_else(|| ScriptError::NotFound { script: script.command.clone(), path: first.clone() })?;
        let identity = match user {
            Some(r) => identity(r)?,
            None => self.default.clone(),
        };
        if self.security
            && runs_privileged(&program, &identity)
            && let Some((path, why)) = insecure(&program)
        {
            return Err(ScriptError::Insecure {
                script: script.command.clone(),
                path: path.display().to_string(),
                why,
            });
        }
        Ok(Prepared { command: script.command.clone(), program, args: args.to_vec(), identity })
    }
}

/// The user and group a `user USER [GROUP]` option names, looked up in the host's databases.
pub fn identity(r: &RunAs) -> Result<Identity, ScriptError> {
    let u = User::from_name(&r.user).ok().flatten().ok_or_else(|| ScriptError::NoUser(r.user.clone()))?;
    let gid = match &r.group {
        Some(g) => Group::from_name(g).ok().flatten().ok_or_else(|| ScriptError::NoGroup(g.clone()))?.gid,
        None => u.gid,
    };
    Ok(Identity { name: u.name, uid: u.uid, gid })
}

/// An absolute or relative path as given, or the first executable match in PATH.
fn find_program(name: &str) -> Option<PathBuf> {
    let executable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if name.contains('/') {
        let p = PathBuf::from(name);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/sbin:/usr/bin:/sbin:/bin"));
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| executable(p))
}

/// keepalived's `need_script_protection`: the script runs as root or in root's group, or is
/// set-uid root / set-gid root (and executable by that class).
fn runs_privileged(program: &Path, who: &Identity) -> bool {
    if who.uid.is_root() || who.gid.as_raw() == 0 {
        return true;
    }
    std::fs::metadata(program)
        .is_ok_and(|m| (m.uid() == 0 && m.mode() & 0o4100 == 0o4100) || (m.gid() == 0 && m.mode() & 0o2010 == 0o2010))
}

/// The first component of `program`'s path (the file, then each directory up to `/`) that
/// a non-root user could change, and why; `None` when the whole chain is root's.
/// keepalived's `check_security`: owned by root, and not writable by a group other than
/// root's or by everyone (a sticky directory, as /tmp, may be).
pub fn insecure(program: &Path) -> Option<(PathBuf, String)> {
    let Ok(real) = std::fs::canonicalize(program) else {
        return Some((program.to_path_buf(), "cannot be resolved".into()));
    };
    let mut cur: Option<&Path> = Some(&real);
    while let Some(p) = cur {
        let Ok(m) = std::fs::metadata(p) else {
            return Some((p.to_path_buf(), "cannot be read".into()));
        };
        let mode = m.mode();
        if m.uid() != 0 {
            return Some((p.to_path_buf(), format!("is owned by uid {}, not root", m.uid())));
        }
        // A sticky directory (/tmp) does not let others replace root's files.
        let sticky = m.is_dir() && mode & 0o1000 != 0;
        if !sticky && mode & 0o020 != 0 && m.gid() != 0 {
            return Some((p.to_path_buf(), format!("is writable by group {}", m.gid())));
        }
        if !sticky && mode & 0o002 != 0 {
            return Some((p.to_path_buf(), "is world-writable".into()));
        }
        cur = p.parent();
    }
    None
}

/// Runs `p` with extra arguments; never longer than `timeout`. The script gets its own
/// process group, which is killed on timeout and once the script exits, so children it
/// left behind do not pile up.
pub async fn run(p: &Prepared, extra: &[String], timeout: Duration) -> Outcome {
    run_in_group(p, extra, timeout, true).await
}

/// Runs `p` once (keepalived's startup and shutdown scripts): like `run`, but what the
/// script started and left running stays, as keepalived leaves it; only a script that
/// times out is killed with its process group.
pub async fn run_once(p: &Prepared, timeout: Duration) -> Outcome {
    run_in_group(p, &[], timeout, false).await
}

async fn run_in_group(p: &Prepared, extra: &[String], timeout: Duration, reap_group: bool) -> Outcome {
    let mut cmd = tokio::process::Command::new(&p.program);
    cmd.args(&p.args)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if Uid::effective().is_root() && !p.identity.uid.is_root() {
        cmd.uid(p.identity.uid.as_raw()).gid(p.identity.gid.as_raw());
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::SpawnFailed(e.to_string()),
    };
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    let outcome = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(c), _) => Outcome::Exited(c),
                (None, Some(s)) => Outcome::Signalled(s),
                _ => Outcome::Exited(-1),
            }
        }
        Ok(Err(e)) => Outcome::SpawnFailed(e.to_string()),
        Err(_) => Outcome::TimedOut,
    };
    if let Some(pgid) = pgid.filter(|_| reap_group || outcome == Outcome::TimedOut) {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    if outcome == Outcome::TimedOut {
        // Reap the leader we just killed.
        let _ = child.wait().await;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diag::Span;

    fn script(cmd: &str) -> Script {
        Script { command: cmd.into(), span: Span::default() }
    }

    fn runner(security: bool) -> Runner {
        Runner { default: identity(&RunAs { user: "root".into(), group: None }).unwrap(), security }
    }

    #[tokio::test]
    async fn exit_codes_arguments_and_timeouts() {
        let r = runner(false);
        let p = r.prepare(&script("/bin/sh -c 'exit $0' 7"), None).unwrap();
        assert_eq!(p.args, ["-c", "exit $0", "7"]);
        assert_eq!(run(&p, &[], Duration::from_secs(5)).await, Outcome::Exited(7));
        let p = r.prepare(&script("sleep 5"), None).unwrap();
        let t = std::time::Instant::now();
        assert_eq!(run(&p, &[], Duration::from_millis(200)).await, Outcome::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(4), "the timeout must kill the script");
        assert!(matches!(r.prepare(&script("/nonexistent/x"), None), Err(ScriptError::NotFound { .. })));
        assert!(matches!(r.prepare(&script("true"), Some(&RunAs { user: "no-such-user-x".into(), group: None })),
            Err(ScriptError::NoUser(u)) if u == "no-such-user-x"));
    }

    #[tokio::test]
    async fn children_of_a_timed_out_script_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-ran");
        let cmd = format!("/bin/sh -c '(sleep 1; touch {}) & sleep 5'", marker.display());
        let p = runner(false).prepare(&script(&cmd), None).unwrap();
        assert_eq!(run(&p, &[], Duration::from_millis(200)).await, Outcome::TimedOut);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "the script's background child outlived the timeout");
    }

    /// `script_user nobody`: the script runs with nobody's uid and gid and none of root's
    /// supplementary groups (the suite runs as root, as the daemon does).
    #[tokio::test]
    async fn scripts_run_as_script_user_without_root_groups() {
        assert!(Uid::effective().is_root(), "run the suite as root");
        let nobody = User::from_name("nobody").unwrap().expect("a nobody user");
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let out = dir.path().join("ids");
        let r = Runner { default: identity(&RunAs { user: "nobody".into(), group: None }).unwrap(), security: false };
        let cmd = format!("/bin/sh -c 'id -u > {0}; id -G >> {0}'", out.display());
        let p = r.prepare(&script(&cmd), None).unwrap();
        assert_eq!(run(&p, &[], Duration::from_secs(5)).await, Outcome::Exited(0));
        let ids = std::fs::read_to_string(&out).unwrap();
        assert_eq!(ids, format!("{}\n{}\n", nobody.uid, nobody.gid), "uid, then every group");
    }

    #[test]
    fn script_security_refuses_writable_paths() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("check.sh");
        std::fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = script(&file.display().to_string());
        // Root-owned chain (the temp dir under /tmp, sticky): accepted.
        if Uid::effective().is_root() {
            runner(true).prepare(&s, None).expect("root-owned script is secure");
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o757)).unwrap();
        let e = runner(true).prepare(&s, None).unwrap_err();
        assert!(e.to_string().contains("world-writable"), "{e}");
        // Without enable_script_security the same script runs.
        runner(false).prepare(&s, None).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = runner(true).prepare(&s, None).unwrap_err();
        assert!(e.to_string().contains(&dir.path().display().to_string()), "{e}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // keepalived checks only scripts that run with root's privileges: the same writable
        // script run as nobody is not refused, unless it is set-uid root.
        if Uid::effective().is_root() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o757)).unwrap();
            let nobody = RunAs { user: "nobody".into(), group: Some("nogroup".into()) };
            runner(true).prepare(&s, Some(&nobody)).expect("an unprivileged script is not checked");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o4757)).unwrap();
            let e = runner(true).prepare(&s, Some(&nobody)).unwrap_err();
            assert!(e.to_string().contains("world-writable"), "{e}");
            // A set-uid root file that nobody else can write is secure (keepalived's rule).
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o4755)).unwrap();
            runner(true).prepare(&s, None).expect("set-uid alone is not insecure");
        }
    }
}
