//! keepalived's notify FIFOs: one line per state change, written in the order the changes
//! happen (notify scripts run concurrently and can finish out of order).
//!
//! `notify_fifo` gets every line, `vrrp_notify_fifo` the VRRP ones (`INSTANCE "VI_1" MASTER
//! 100`, `GROUP "G" BACKUP 0`), `lvs_notify_fifo` the checker ones (`VS [203.0.113.10]:tcp:80
//! UP`, `RS [198.51.100.11]:tcp:80 [203.0.113.10]:tcp:80 DOWN`). As keepalived
//! (lib/notify.c `fifo_open`): the FIFO is created (0644) when missing and removed at exit
//! only if we created it, its reader script starts before it is opened, with the FIFO's path
//! as its last argument, and writes never block (a full FIFO drops the line).

use std::{
    collections::BTreeMap,
    fs::File,
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use nix::{sys::stat::Mode, unistd};
use tracing::{info, warn};

use crate::{
    config::NotifyFifos,
    script::{Prepared, Runner},
};

/// Which lines a FIFO takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Vrrp,
    Lvs,
}

/// A VRRP instance or sync group entered `state` (keepalived's `notify_fifo` line).
pub fn vrrp_line(group: bool, name: &str, state: &str, priority: u8) -> String {
    let kind = if group { "GROUP" } else { "INSTANCE" };
    format!("{kind} \"{name}\" {state} {priority}\n")
}

/// A virtual server's quorum (`vs` as keepalived logs it, e.g. `[203.0.113.10]:tcp:80`).
pub fn vs_line(vs: &str, up: bool) -> String {
    format!("VS {vs} {}\n", if up { "UP" } else { "DOWN" })
}

/// A real server went up or down.
pub fn rs_line(rs: &str, vs: &str, up: bool) -> String {
    format!("RS {rs} {vs} {}\n", if up { "UP" } else { "DOWN" })
}

/// The FIFOs a configuration names, by path: a path named twice is opened once and takes
/// the union of the streams (keepalived drops the duplicate so no line is written twice).
/// Its script is the first one configured (global, then VRRP, then LVS: keepalived prefers
/// VRRP's over LVS's on a shared FIFO).
pub fn plan(f: &NotifyFifos) -> Vec<Planned> {
    let mut by_path: BTreeMap<PathBuf, Planned> = BTreeMap::new();
    let all = [Stream::Vrrp, Stream::Lvs];
    for (fifo, streams) in [(&f.global, &all[..]), (&f.vrrp, &all[..1]), (&f.lvs, &all[1..])] {
        let Some(path) = &fifo.path else { continue };
        let p = by_path.entry(path.clone()).or_insert_with(|| Planned {
            path: path.clone(),
            owner: fifo.owner.clone(),
            script: None,
            streams: Vec::new(),
        });
        for s in streams {
            if !p.streams.contains(s) {
                p.streams.push(*s);
            }
        }
        if p.script.is_none() {
            p.script = fifo.script.clone();
        }
    }
    by_path.into_values().collect()
}

/// One FIFO to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub path: PathBuf,
    pub owner: Option<crate::config::RunAs>,
    pub script: Option<(crate::config::Script, Option<crate::config::RunAs>)>,
    pub streams: Vec<Stream>,
}

/// The open FIFOs of the running configuration.
#[derive(Debug, Default)]
pub struct Fifos {
    config: NotifyFifos,
    open: Vec<Open>,
}

#[derive(Debug)]
struct Open {
    path: PathBuf,
    streams: Vec<Stream>,
    file: Mutex<File>,
    /// Whether we made it (and remove it at the end).
    created: AtomicBool,
    reader: Mutex<Option<std::process::Child>>,
}

impl Fifos {
    /// Opens the FIFOs `config` names; one that cannot be opened is logged and left out, as
    /// keepalived does.
    pub fn open(config: &NotifyFifos, runner: &Runner) -> Self {
        let open = plan(config).into_iter().filter_map(|p| open_one(p, runner)).collect();
        Self { config: config.clone(), open }
    }

    /// The FIFOs of a reloaded configuration: these same ones when it names the same, else
    /// new ones, taking over the removal of paths `old` created and both name (`old` is
    /// dropped when the last user lets go of it, and must not remove them then).
    pub fn reload(old: &Arc<Fifos>, config: &NotifyFifos, runner: &Runner) -> Arc<Fifos> {
        if &old.config == config {
            return old.clone();
        }
        let mut new = Self::open(config, runner);
        for n in &mut new.open {
            if let Some(o) = old.open.iter().find(|o| o.path == n.path) {
                let took = o.created.swap(false, Ordering::SeqCst);
                *n.created.get_mut() |= took;
            }
        }
        Arc::new(new)
    }

    /// Stops the reader scripts, as keepalived does first thing at shutdown (its STOP lines
    /// then go into FIFOs nobody reads, unless a reader of the operator's own has them open).
    pub fn stop_readers(&self) {
        for o in &self.open {
            if let Some(c) = o.reader.lock().ok().and_then(|mut r| r.take()) {
                stop_reader(c);
            }
        }
    }

    /// Writes `line` to every FIFO that takes `stream`.
    pub fn write(&self, stream: Stream, line: &str) {
        for o in self.open.iter().filter(|o| o.streams.contains(&stream)) {
            let Ok(mut f) = o.file.lock() else { continue };
            // One write of less than PIPE_BUF bytes: whole or not at all.
            if let Err(e) = f.write(line.as_bytes()) {
                warn!(fifo = %o.path.display(), "notify fifo: line dropped: {e}");
            }
        }
    }
}

impl Drop for Fifos {
    /// Removes the FIFOs we created before closing them (so a reader that reopens in a loop
    /// cannot find them again) and stops their scripts.
    fn drop(&mut self) {
        for o in &mut self.open {
            if *o.created.get_mut() {
                let _ = std::fs::remove_file(&o.path);
            }
            if let Some(c) = o.reader.get_mut().ok().and_then(Option::take) {
                stop_reader(c);
            }
        }
    }
}

/// SIGTERM to the reader's process group, then reaps it.
fn stop_reader(mut c: std::process::Child) {
    let _ = nix::sys::signal::killpg(unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let _ = c.wait();
}

fn open_one(p: Planned, runner: &Runner) -> Option<Open> {
    let path = p.path.as_path();
    let created = match unistd::mkfifo(path, Mode::from_bits_truncate(0o644)) {
        Ok(()) => true,
        Err(nix::errno::Errno::EEXIST) => false,
        Err(e) => {
            warn!(fifo = %path.display(), "Unable to create notify fifo: {e}");
            return None;
        }
    };
    if created && let Some(owner) = &p.owner {
        chown(path, owner);
    }
    let reader = p.script.as_ref().and_then(|(s, user)| match runner.prepare(s, user.as_ref()) {
        Ok(prepared) => start_reader(&prepared, path),
        Err(e) => {
            warn!(fifo = %path.display(), "notify fifo script: {e}");
            None
        }
    });
    // Read and write, so opening never waits for a reader and a reader that comes and goes
    // never makes our writes fail with EPIPE.
    let file =
        std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW).open(path);
    match file {
        Ok(file) => {
            info!(fifo = %path.display(), "notify fifo open");
            Some(Open {
                path: p.path,
                streams: p.streams,
                file: Mutex::new(file),
                created: created.into(),
                reader: Mutex::new(reader),
            })
        }
        Err(e) => {
            warn!(fifo = %path.display(), "Unable to open notify fifo: {e}");
            if created {
                let _ = std::fs::remove_file(path);
            }
            None
        }
    }
}

fn chown(path: &Path, owner: &crate::config::RunAs) {
    let user = unistd::User::from_name(&owner.user).ok().flatten();
    let group = owner.group.as_ref().and_then(|g| unistd::Group::from_name(g).ok().flatten());
    let (uid, gid) = (user.as_ref().map(|u| u.uid), group.map(|g| g.gid).or(user.map(|u| u.gid)));
    if let Err(e) = unistd::chown(path, uid, gid) {
        warn!(fifo = %path.display(), "Failed to set uid:gid for fifo: {e}");
    }
}

/// The reader script, in its own process group, with the FIFO's path as its last argument;
/// it runs until we close the FIFO.
fn start_reader(p: &Prepared, fifo: &Path) -> Option<std::process::Child> {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = std::process::Command::new(&p.program);
    cmd.args(&p.args).arg(fifo).stdin(std::process::Stdio::null()).process_group(0);
    if unistd::Uid::effective().is_root() && !p.identity.uid.is_root() {
        cmd.uid(p.identity.uid.as_raw()).gid(p.identity.gid.as_raw());
    }
    match cmd.spawn() {
        Ok(c) => Some(c),
        Err(e) => {
            warn!(script = %p.command, "notify fifo script: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    #[test]
    fn lines_are_keepalived_s() {
        assert_eq!(vrrp_line(false, "VI_1", "MASTER", 100), "INSTANCE \"VI_1\" MASTER 100\n");
        assert_eq!(vrrp_line(true, "G", "BACKUP", 0), "GROUP \"G\" BACKUP 0\n");
        assert_eq!(vs_line("[203.0.113.10]:tcp:80", false), "VS [203.0.113.10]:tcp:80 DOWN\n");
        assert_eq!(
            rs_line("[198.51.100.11]:tcp:80", "[203.0.113.10]:tcp:80", true),
            "RS [198.51.100.11]:tcp:80 [203.0.113.10]:tcp:80 UP\n"
        );
    }

    /// A path named by two keywords is one FIFO taking both streams; the first script wins.
    #[test]
    fn a_shared_path_is_one_fifo() {
        let l = parse_str(
            "t.conf",
            "global_defs {\n notify_fifo /run/all\n vrrp_notify_fifo /run/all\n \
             vrrp_notify_fifo_script \"/bin/cat -u\" root\n lvs_notify_fifo /run/lvs nobody\n \
             lvs_notify_fifo_script /bin/cat\n}\n",
        );
        assert!(!l.has_errors(), "{}", l.render());
        let p = plan(&l.config.global.notify_fifos);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].path.to_str(), p[0].streams.clone()), (Some("/run/all"), vec![Stream::Vrrp, Stream::Lvs]));
        assert_eq!(
            p[0].script.as_ref().map(|(s, u)| (s.command.as_str(), u.clone().map(|u| u.user))),
            Some(("/bin/cat -u", Some("root".to_string())))
        );
        assert_eq!((p[1].path.to_str(), p[1].streams.clone()), (Some("/run/lvs"), vec![Stream::Lvs]));
        assert_eq!(p[1].owner.as_ref().map(|o| o.user.as_str()), Some("nobody"));
    }
}
