//! Starts lb-daemon in a namespace and stops it, collecting its log.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use nix::{sys::signal::Signal, unistd::Pid};

use crate::netns::Netns;

/// The lb-daemon binary of this build (`cargo test --workspace` builds it next to the tests),
/// or `LB_DAEMON_BIN` (`cargo xtask bench` measures the release build).
pub fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("LB_DAEMON_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("test binary has no directory")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("lb-daemon");
    if !bin.exists() {
        bail!("{} is missing: build it with `cargo build -p lb-daemon` (`cargo xtask test` does)", bin.display());
    }
    Ok(bin)
}

/// A unique pin directory for one test's daemon, so tests never share pinned maps.
pub fn pin_dir(tag: &str) -> PathBuf {
    PathBuf::from(format!("/sys/fs/bpf/lbt-{tag}-{}", std::process::id()))
}

/// The run directory (state file) of the daemon pinned at `pin_dir`: unique like the pins.
pub fn run_dir_for(pin_dir: &Path) -> PathBuf {
    let name = pin_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    std::env::temp_dir().join(format!("{name}-run"))
}

/// CPU seconds (user + system) the process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is 14th, stime 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64
}

pub struct Daemon {
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
    /// Pins to remove on drop (a killed daemon cannot).
    pub pin_dir: Option<PathBuf>,
}

impl Daemon {
    /// Runs `lb-daemon -l -f config --pin-dir pin_dir ARGS` in `ns` and waits (up to 30 s) for it
    /// to report ready; fails with its log if it exits first.
    pub fn start(ns: &Netns, config: &Path, pin_dir: &Path, args: &[&str]) -> Result<Self> {
        Self::start_env(ns, config, pin_dir, args, &[])
    }

    /// `start` with the daemon's syslog(3) lines sent to the datagram socket `socket` instead
    /// of /dev/log: the daemon runs in a private mount namespace where `socket` is bind-mounted
    /// at /dev/log (on a private tmpfs /dev holding the usual device nodes).
    pub fn start_with_syslog(ns: &Netns, config: &Path, pin_dir: &Path, args: &[&str], socket: &Path) -> Result<Self> {
        // $1: the socket, $2: an empty directory to keep the real /dev at; then the command.
        const SETUP: &str = r#"set -e
sock=$1; old=$2; shift 2
mount --rbind /dev "$old"
mount -t tmpfs -o mode=755 lbt-dev /dev
for f in null zero full random urandom tty; do
    touch "/dev/$f"
    mount --bind "$old/$f" "/dev/$f"
done
ln -s /proc/self/fd /dev/fd
touch /dev/log
mount --bind "$sock" /dev/log
exec "$@""#;
        let old_dev = socket.with_extension("dev");
        std::fs::create_dir_all(&old_dev)?;
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", SETUP, "sh"])
            .arg(socket)
            .arg(&old_dev)
            .arg("nsenter")
            .arg(format!("--net={}", ns.path().display()))
            .arg("--")
            .arg(binary()?);
        Self::start_cmd(cmd, config, pin_dir, args, &[])
    }

    /// `start` with extra environment variables.
    pub fn start_env(ns: &Netns, config: &Path, pin_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Self> {
        Self::start_cmd(ns.command(binary()?), config, pin_dir, args, env)
    }

    /// `cmd` (which runs lb-daemon in the test's namespace) with the daemon's own arguments:
    /// `-l` (the log goes to stderr too, where the harness reads it), the config, the pin and
    /// run directories, then `args`.
    fn start_cmd(
        cmd: std::process::Command,
        config: &Path,
        pin_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let run_dir = run_dir_for(pin_dir);
        let mut all: Vec<&std::ffi::OsStr> = vec![
            "-l".as_ref(),
            "-f".as_ref(),
            config.as_os_str(),
            "--pin-dir".as_ref(),
            pin_dir.as_os_str(),
            "--run-dir".as_ref(),
            run_dir.as_os_str(),
        ];
        all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
        // keepalived's dump files go to $TMPDIR: each test daemon's own, never the host's /tmp.
        let tmpdir = run_dir.to_string_lossy().into_owned();
        let env: Vec<(&str, &str)> = [("TMPDIR", tmpdir.as_str())].into_iter().chain(env.iter().copied()).collect();
        let mut d = Self::spawn_cmd(cmd, &all, "lb-daemon ready", &env)?;
        d.pin_dir = Some(pin_dir.to_path_buf());
        Ok(d)
    }

    /// Runs `lb-daemon ARGS` in `ns` and waits (up to 30 s) for a log line containing `ready`.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(ns: &Netns, args: &[S], ready: &str) -> Result<Self> {
        Self::spawn_cmd(ns.command(binary()?), args, ready, &[])
    }

    /// Runs `ip netns exec NS lb-daemon ARGS` (a private mount namespace with the namespace's
    /// own /sys, as operators run it) and waits for a log line containing `ready`. The pins
    /// it makes are not known here: set `pin_dir` for the drop to remove them.
    pub fn spawn_netns_exec<S: AsRef<std::ffi::OsStr>>(ns: &Netns, args: &[S], ready: &str) -> Result<Self> {
        Self::spawn_cmd(ns.exec_command(binary()?), args, ready, &[])
    }

    fn spawn_cmd<S: AsRef<std::ffi::OsStr>>(
        mut cmd: std::process::Command,
        args: &[S],
        ready: &str,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let mut child = cmd
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning lb-daemon")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().context("no stderr")?;
        let sink = log.clone();
        let ready = ready.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(&ready) {
                    let _ = tx.send(());
                }
                sink.lock().map(|mut l| l.push(line)).ok();
            }
        });
        let mut d = Self { child: Some(child), log, pin_dir: None };
        // Under the VM's software emulation, loading (the verifier) alone takes tens of seconds.
        let ready_within = if crate::vm::in_vm() { 180 } else { 30 };
        match rx.recv_timeout(Duration::from_secs(ready_within)) {
            Ok(()) => Ok(d),
            Err(_) => {
                let status = d.stop().ok();
                bail!("lb-daemon did not become ready ({status:?}); its log:\n{}", d.log().join("\n"))
            }
        }
    }

    /// Waits up to `timeout` for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.log().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// `lb-daemon status --json` for this daemon (its state file).
    pub fn status(&self) -> Result<serde_json::Value> {
        let pins = self.pin_dir.as_deref().context("no pin dir")?;
        let out = std::process::Command::new(binary()?)
            .args(["status", "--json", "--run-dir"])
            .arg(run_dir_for(pins))
            .output()?;
        if !out.status.success() {
            bail!("lb-daemon status: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// The state file itself (what `status --json` prints), without starting a process: for
    /// polling loops, above all in the VM where every exec is slow.
    pub fn state(&self) -> Result<serde_json::Value> {
        let pins = self.pin_dir.as_deref().context("no pin dir")?;
        let p = run_dir_for(pins).join("state.json");
        // The first state file follows "ready" within one publish period (250 ms).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            // Missing before the first write; read mid-write it may not parse: try again.
            let got = std::fs::read(&p)
                .with_context(|| p.display().to_string())
                .and_then(|b| serde_json::from_slice(&b).with_context(|| format!("parsing {}", p.display())));
            match got {
                Ok(v) => return Ok(v),
                Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(e),
            }
        }
    }

    /// SIGRTMIN+2, then the JSON dump it writes into the run directory (the daemon's view of
    /// its services and counters), waiting up to 20 s (the VM is slow) for the write.
    pub fn json_dump(&self) -> Result<serde_json::Value> {
        let pins = self.pin_dir.as_deref().context("no pin dir")?;
        let written = || self.log().iter().filter(|l| l.contains("Json dump written")).count();
        let before = written();
        let pid = self.pid().context("daemon already stopped")?;
        // SAFETY: plain kill(2) to our child; nix's Signal has no real-time signals.
        if unsafe { libc::kill(pid as i32, libc::SIGRTMIN() + 2) } != 0 {
            bail!("kill SIGRTMIN+2: {}", std::io::Error::last_os_error());
        }
        if !crate::servers::wait_until(Duration::from_secs(20), || written() > before) {
            bail!("no JSON dump written; the log:\n{}", self.log().join("\n"));
        }
        let p = run_dir_for(pins).join("lb-daemon.json");
        serde_json::from_slice(&std::fs::read(&p).with_context(|| p.display().to_string())?).context("the JSON dump")
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn signal(&self, sig: Signal) -> Result<()> {
        let pid = self.pid().context("daemon already stopped")?;
        nix::sys::signal::kill(Pid::from_raw(pid as i32), sig)?;
        Ok(())
    }

    /// SIGTERM, then waits up to 10 s (SIGKILL after that). Returns the exit status. In the
    /// software-emulated VM, where every step runs many times slower, up to 30 s.
    pub fn stop(&mut self) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("daemon already stopped")?;
        let _ = nix::sys::signal::kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let within = if crate::vm::in_vm() { 30 } else { 10 };
        for _ in 0..within * 10 {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child.kill()?;
        let log = self.log();
        let tail = log[log.len().saturating_sub(20)..].join("\n");
        bail!("lb-daemon ignored SIGTERM for {within} s; killed. Its last log lines:\n{tail}")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A killed daemon cannot remove its pins.
        if let Some(p) = &self.pin_dir {
            let _ = lb_daemon::dataplane::bpf::remove_pins_in(p);
            let _ = std::fs::remove_dir_all(run_dir_for(p));
        }
    }
}

/// Debian's keepalived (2.2.7) in a namespace: as a VRRP peer (`keepalived -n -l -D --vrrp`)
/// or, with `checkers`, as the IPVS oracle (`--check`), with its own pid files, its console
/// log kept in `log`. Killed on drop.
pub struct Keepalived {
    child: Option<Child>,
    log: PathBuf,
}

impl Keepalived {
    pub fn start(ns: &Netns, config: &Path, dir: &Path, tag: &str) -> Result<Self> {
        Self::start_env(ns, config, dir, tag, &[])
    }

    /// `start` with extra environment variables (`TMPDIR`: where its dumps go).
    pub fn start_env(ns: &Netns, config: &Path, dir: &Path, tag: &str, env: &[(&str, &Path)]) -> Result<Self> {
        Self::spawn(ns, config, dir, tag, env, "--vrrp")
    }

    /// keepalived's checker process only: it programs IPVS from the config and its checkers'
    /// verdicts.
    pub fn checkers(ns: &Netns, config: &Path, dir: &Path, tag: &str) -> Result<Self> {
        Self::spawn(ns, config, dir, tag, &[], "--check")
    }

    fn spawn(ns: &Netns, config: &Path, dir: &Path, tag: &str, env: &[(&str, &Path)], only: &str) -> Result<Self> {
        let log = dir.join(format!("{tag}.log"));
        let out = std::fs::File::create(&log)?;
        let child = ns
            .command("keepalived")
            .envs(env.iter().copied())
            .args(["-n", "-l", "-D", only, "-f"])
            .arg(config)
            .arg("-p")
            .arg(dir.join(format!("{tag}.pid")))
            .arg("-r")
            .arg(dir.join(format!("{tag}-vrrp.pid")))
            .arg("-c")
            .arg(dir.join(format!("{tag}-check.pid")))
            .arg("-b")
            .arg(dir.join(format!("{tag}-bfd.pid")))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("spawning keepalived (apt package keepalived; `cargo xtask setup` installs it)")?;
        Ok(Self { child: Some(child), log })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The parent's pid (it passes the dump signals on to its VRRP process).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// SIGTERM (keepalived sends priority 0 and removes its VIPs), then waits.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            nix::sys::signal::kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM)?;
            for _ in 0..100 {
                if c.try_wait()?.is_some() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            c.kill()?;
            c.wait()?;
            bail!("keepalived ignored SIGTERM for 10 s");
        }
        Ok(())
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // keepalived's VRRP child would outlive a killed parent: TERM lets it clean up.
            let _ = nix::sys::signal::kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            for _ in 0..50 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// lb-daemon on `topo`'s load balancer with the config `conf` (and `args`): the config file
/// (removed on drop), the pin directory and the running daemon.
pub fn on_lb(
    topo: &crate::netns::LbTopology,
    tag: &str,
    conf: &str,
    args: &[&str],
) -> (crate::temp::TempConfig, PathBuf, Daemon) {
    let cfg = crate::temp::TempConfig::new(&format!("lb-{tag}"), conf);
    let pins = pin_dir(tag);
    let d = Daemon::start(&topo.lb, &cfg, &pins, args).unwrap_or_else(|e| panic!("starting lb-daemon ({tag}): {e:#}"));
    (cfg, pins, d)
}

/// `lb-daemon decap` on a real server of `LbTopology`, taking tunnelled packets from its load
/// balancer (the outer source TUN uses: the address on the real servers' link).
pub fn decap(real: &Netns) -> Daemon {
    use crate::addrs::{LB_BACKEND_SIDE4, LB_BACKEND_SIDE6};
    let (from4, from6) = (LB_BACKEND_SIDE4.to_string(), LB_BACKEND_SIDE6.to_string());
    Daemon::spawn(real, &["decap", "--interface", "b0", "--from", &from4, "--from", &from6], "lb-daemon decap ready")
        .unwrap_or_else(|e| panic!("starting lb-daemon decap: {e:#}"))
}

/// The time of day, in seconds, of a daemon log line ("2026-12-03T11:12:47.373882Z  INFO ...").
pub fn log_time(line: &str) -> Option<f64> {
    let (_, time) = line.split_whitespace().next()?.split_once('T')?;
    let mut parts = time.trim_end_matches('Z').split(':');
    let (h, m, s) =
        (parts.next()?.parse::<f64>().ok()?, parts.next()?.parse::<f64>().ok()?, parts.next()?.parse::<f64>().ok()?);
    Some(h * 3600.0 + m * 60.0 + s)
}
