//! Where the pins live, so that they outlive the daemon in every way it is run.
//!
//! Pins must be on a bpffs that outlives the process: `kill -9` keeps forwarding only because
//! the pinned XDP links and maps stay. `ip netns exec NS lb-daemon` runs the daemon in a
//! private mount namespace with a fresh /sys, where /sys/fs/bpf is an empty sysfs directory; a
//! bpffs mounted there would be private too and vanish with the process, taking the links with
//! it, and the next `ip netns exec NS lb-daemon stats` would not see it. So when /sys/fs/bpf is
//! not a bpffs and an ancestor process runs in another mount namespace that has one (the
//! host's), that bpffs is mounted on our /sys/fs/bpf (`adopt`). Every command that opens pins
//! calls `prepare` first, so the daemon and `stats`/`conns` find the same directory.
//!
//! Two daemons in two network namespaces then share one bpffs: the default pin directory (and
//! run directory, `crate::state::default_run_dir`) of a daemon in a network namespace other
//! than the host's is named after the namespace (`netns_name`).

use std::{
    ffi::CString,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use tracing::{info, warn};

use lb_common::consts::PIN_DIR;

/// Where bpffs is mounted (systemd mounts it at boot).
pub const BPFFS: &str = "/sys/fs/bpf";
/// Ancestors looked at for the host's mount namespace (a bound on a /proc walk).
const MAX_ANCESTORS: usize = 64;

pub fn is_bpffs(p: &Path) -> bool {
    nix::sys::statfs::statfs(p).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
}

/// What opening the pins needs: a daemon creates them, the commands only read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Create,
    Read,
}

/// One ancestor process, as far as /proc lets us see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ancestor {
    pub pid: i32,
    /// Whether it shares our mount namespace; None when its namespace is not readable to us.
    pub same_mount_ns: Option<bool>,
    /// Whether its /sys/fs/bpf is a bpffs.
    pub has_bpffs: bool,
}

/// What to do about /sys/fs/bpf before using pins under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// It is a bpffs (the host's, or one a private namespace shares with it): use it.
    Ready,
    /// Mount this ancestor's bpffs (the host's) on ours: pins then outlive this process.
    Adopt(i32),
    /// Nothing is mounted here or anywhere we can see: mount a bpffs (a fresh machine).
    MountOwn,
    /// We run in a private mount namespace and the host has no bpffs: one mounted here would
    /// vanish with this process, and the pinned XDP links with it.
    Refuse,
}

/// The decision, from what /proc shows (nearest ancestor first).
pub fn plan(own_is_bpffs: bool, ancestors: &[Ancestor], purpose: Purpose) -> Plan {
    if own_is_bpffs {
        return Plan::Ready;
    }
    let elsewhere = ancestors.iter().filter(|a| a.same_mount_ns == Some(false));
    if let Some(host) = elsewhere.clone().find(|a| a.has_bpffs) {
        return Plan::Adopt(host.pid);
    }
    match purpose {
        // Reading: nothing to mount; opening the pins says what is missing.
        Purpose::Read => Plan::Ready,
        Purpose::Create if elsewhere.count() > 0 => Plan::Refuse,
        Purpose::Create => Plan::MountOwn,
    }
}

/// Makes /sys/fs/bpf a bpffs that outlives this process before pins under `pin_dir` are used
/// (see the module's comment); pins elsewhere are the caller's business.
pub fn prepare(pin_dir: &Path, purpose: Purpose) -> Result<()> {
    let root = Path::new(BPFFS);
    if !pin_dir.starts_with(root) {
        return Ok(());
    }
    match plan(is_bpffs(root), &ancestors(), purpose) {
        Plan::Ready => Ok(()),
        Plan::Adopt(pid) => {
            adopt(pid).with_context(|| {
                format!("mounting the bpffs of pid {pid}'s mount namespace (the host's) on {BPFFS}")
            })?;
            if !is_bpffs(root) {
                bail!("{BPFFS} is still not a bpffs after mounting the host's there");
            }
            if purpose == Purpose::Create {
                info!(from_pid = pid, "private mount namespace (ip netns exec?): pinning in the host's bpffs");
            }
            Ok(())
        }
        Plan::MountOwn => {
            nix::mount::mount(Some("bpf"), root, Some("bpf"), nix::mount::MsFlags::empty(), None::<&str>)
                .with_context(|| format!("mounting bpffs on {BPFFS}"))?;
            info!(path = BPFFS, "mounted bpffs");
            warn!(
                "if this process runs in a private mount namespace, pins under {BPFFS} vanish with it (and kill -9 \
                 stops forwarding): mount bpffs on the host's {BPFFS} first"
            );
            Ok(())
        }
        Plan::Refuse => bail!(
            "this process runs in a private mount namespace (as under `ip netns exec`) and the host has no bpffs \
             on {BPFFS}: pins made here would vanish with this process, and kill -9 would stop forwarding. \
             Mount one on the host first (`mount -t bpf bpf {BPFFS}`), or run the daemon with \
             `nsenter --net=/run/netns/NAME` instead, which keeps the host's mounts"
        ),
    }
}

/// (device, inode) of a namespace file: what identifies a namespace.
fn ns_id(path: &str) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn parent_of(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|p| p.trim().parse().ok())
}

/// Our ancestors up to pid 1 of our pid namespace, nearest first.
fn ancestors() -> Vec<Ancestor> {
    let own = ns_id("/proc/self/ns/mnt");
    let mut out = Vec::new();
    let mut pid = parent_of(std::process::id() as i32);
    while let Some(p) = pid.filter(|p| *p > 0) {
        let other = ns_id(&format!("/proc/{p}/ns/mnt"));
        let same_mount_ns = other.zip(own).map(|(o, s)| o == s);
        let has_bpffs = same_mount_ns == Some(false) && is_bpffs(Path::new(&format!("/proc/{p}/root{BPFFS}")));
        out.push(Ancestor { pid: p, same_mount_ns, has_bpffs });
        if p == 1 || out.len() >= MAX_ANCESTORS {
            break;
        }
        pid = parent_of(p);
    }
    out
}

/// Mounts the bpffs at /sys/fs/bpf in `pid`'s mount namespace on our /sys/fs/bpf. A bind mount
/// from another namespace's mount is refused (EINVAL), so a child process enters that
/// namespace, clones the mount there (`open_tree`), comes back to ours and attaches the clone
/// (`move_mount`). A child, because only a single-threaded process may change its mount
/// namespace; ours stays as it is, and the mount lands in the namespace we share.
fn adopt(pid: i32) -> Result<()> {
    let host = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).context("opening its mount namespace")?;
    let own = std::fs::File::open("/proc/self/ns/mnt").context("opening our mount namespace")?;
    let target = CString::new(BPFFS)?;
    let empty = CString::new("")?;
    let (rd, wr) = nix::unistd::pipe()?;
    // SAFETY: the child makes only raw system calls (no allocation, no locks) and exits.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: system calls on descriptors and strings prepared before the fork.
            unsafe {
                let mut step = 1;
                let ok = libc::setns(host.as_raw_fd(), libc::CLONE_NEWNS) == 0 && {
                    step = 2;
                    let tree = libc::syscall(
                        libc::SYS_open_tree,
                        libc::AT_FDCWD,
                        target.as_ptr(),
                        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_long,
                    );
                    tree >= 0
                        && {
                            step = 3;
                            libc::setns(own.as_raw_fd(), libc::CLONE_NEWNS) == 0
                        }
                        && {
                            step = 4;
                            libc::syscall(
                                libc::SYS_move_mount,
                                tree,
                                empty.as_ptr(),
                                libc::AT_FDCWD,
                                target.as_ptr(),
                                MOVE_MOUNT_F_EMPTY_PATH,
                            ) == 0
                        }
                };
                let report: [i32; 2] = if ok { [0, 0] } else { [step, *libc::__errno_location()] };
                libc::write(wr.as_raw_fd(), report.as_ptr().cast(), 8);
                libc::_exit(0);
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            let mut buf = [0u8; 8];
            let n = nix::unistd::read(&rd, &mut buf).unwrap_or(0);
            let _ = nix::sys::wait::waitpid(child, None);
            if n != 8 {
                bail!("the helper process reported nothing");
            }
            let step = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
            let what = ["", "setns into its mount namespace", "open_tree", "setns back", "move_mount"];
            match what.get(step as usize) {
                Some(_) if step == 0 => Ok(()),
                Some(w) => bail!("{w}: {}", std::io::Error::from_raw_os_error(errno)),
                None => bail!("unexpected report {step}"),
            }
        }
    }
}

/// `open_tree(2)` and `move_mount(2)` flags (linux/mount.h).
const OPEN_TREE_CLONE: libc::c_long = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_long = 4;

/// The network namespace we run in, when it is not the host's: its name under /run/netns
/// (`ip netns`), else `ns-INODE`. None in the host's (pid 1's) namespace, or when that cannot
/// be told (pid 1's namespace unreadable and ours unnamed).
pub fn netns_name() -> Option<String> {
    let own = ns_id("/proc/self/ns/net")?;
    let named: Vec<(String, (u64, u64))> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.to_string();
                    ns_id(e.path().to_str()?).map(|id| (name, id))
                })
                .collect()
        })
        .unwrap_or_default();
    name_netns(own, ns_id("/proc/1/ns/net"), &named)
}

/// `netns_name`'s decision: `own` and the host's (pid 1's, when readable) network namespace
/// ids, and the named namespaces.
pub fn name_netns(own: (u64, u64), host: Option<(u64, u64)>, named: &[(String, (u64, u64))]) -> Option<String> {
    if host == Some(own) {
        return None;
    }
    let mut names: Vec<&String> = named.iter().filter(|(_, id)| *id == own).map(|(n, _)| n).collect();
    names.sort();
    match names.first() {
        Some(n) => Some((*n).clone()),
        None if host.is_some() => Some(format!("ns-{}", own.1)),
        None => None,
    }
}

/// The pin directory when `--pin-dir` is not given: `/sys/fs/bpf/lb`, or
/// `/sys/fs/bpf/lb-netns-NAME` in network namespace NAME.
pub fn default_pin_dir(netns: Option<&str>) -> PathBuf {
    match netns {
        None => PathBuf::from(PIN_DIR),
        Some(n) => PathBuf::from(format!("{PIN_DIR}-netns-{n}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Ancestor = Ancestor { pid: 40, same_mount_ns: Some(false), has_bpffs: true };
    const SAME: Ancestor = Ancestor { pid: 41, same_mount_ns: Some(true), has_bpffs: false };
    const HIDDEN: Ancestor = Ancestor { pid: 1, same_mount_ns: None, has_bpffs: false };
    const BARE: Ancestor = Ancestor { pid: 42, same_mount_ns: Some(false), has_bpffs: false };

    #[test]
    fn a_mounted_bpffs_is_used_as_it_is() {
        for a in [&[HOST][..], &[SAME, HIDDEN], &[]] {
            assert_eq!(plan(true, a, Purpose::Create), Plan::Ready);
        }
    }

    #[test]
    fn a_private_namespace_takes_the_nearest_hosts_bpffs() {
        // `ip netns exec NS lb-daemon`: the parent (a shell) is in the host's namespace.
        assert_eq!(plan(false, &[HOST, HIDDEN], Purpose::Create), Plan::Adopt(40));
        // `ip netns exec NS sh -c 'lb-daemon ...'`: the shell shares our private namespace.
        assert_eq!(plan(false, &[SAME, HOST, HIDDEN], Purpose::Read), Plan::Adopt(40));
        // A namespace between us and the host without a bpffs is skipped.
        assert_eq!(plan(false, &[BARE, HOST], Purpose::Create), Plan::Adopt(40));
    }

    #[test]
    fn no_bpffs_anywhere_mounts_one_or_refuses_in_a_private_namespace() {
        // A fresh machine: nothing mounted, no other namespace in sight.
        assert_eq!(plan(false, &[SAME, HIDDEN], Purpose::Create), Plan::MountOwn);
        assert_eq!(plan(false, &[], Purpose::Create), Plan::MountOwn);
        // Private, and the host has none: a bpffs here would die with us.
        assert_eq!(plan(false, &[BARE, HIDDEN], Purpose::Create), Plan::Refuse);
        // Commands that only read never mount.
        assert_eq!(plan(false, &[BARE], Purpose::Read), Plan::Ready);
        assert_eq!(plan(false, &[], Purpose::Read), Plan::Ready);
    }

    #[test]
    fn network_namespaces_name_the_defaults() {
        let (host, ns_a, ns_b) = ((4, 100), (4, 200), (4, 300));
        let named = vec![("blue".to_string(), ns_a), ("attached-host".to_string(), host)];
        assert_eq!(name_netns(host, Some(host), &named), None, "the host's, even when it has a name too");
        assert_eq!(name_netns(ns_a, Some(host), &named).as_deref(), Some("blue"));
        assert_eq!(name_netns(ns_a, None, &named).as_deref(), Some("blue"), "pid 1 unreadable, named");
        assert_eq!(name_netns(ns_b, Some(host), &named).as_deref(), Some("ns-300"));
        assert_eq!(name_netns(ns_b, None, &named), None, "cannot tell: the default");
        let two = vec![("b".to_string(), ns_a), ("a".to_string(), ns_a)];
        assert_eq!(name_netns(ns_a, None, &two).as_deref(), Some("a"), "two names: the first in order");
        assert_eq!(default_pin_dir(None), PathBuf::from("/sys/fs/bpf/lb"));
        assert_eq!(default_pin_dir(Some("blue")), PathBuf::from("/sys/fs/bpf/lb-netns-blue"));
    }
}
