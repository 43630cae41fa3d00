//! Network namespaces and veth links for tests and the demo.
//!
//! Names are unique per process and run (`lbt-<role>-<pid>-<n>`), so parallel tests and
//! concurrent runs never collide; a namespace is deleted (with every process still in it)
//! when its `Netns` is dropped, also while unwinding from a panic. Namespaces left by a
//! process that died without unwinding are swept by [`sweep_stale`]. Addresses are the
//! documentation addresses of [`crate::addrs`].

use std::{
    fs::File,
    os::fd::AsFd,
    path::PathBuf,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context as _, Result, bail};

use crate::addrs::{
    CLIENT4, CLIENT6, LB_BACKEND_SIDE4, LB_BACKEND_SIDE6, LB_CLIENT_SIDE4, LB_CLIENT_SIDE6, SEGMENT_CLIENT6, VIP4,
    VIP6, backend4, backend6, node4, node6,
};

const PREFIX: &str = "lbt-";
static NEXT: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with loopback up. `role` (a few letters) makes names readable.
    pub fn new(role: &str) -> Result<Self> {
        sweep_stale();
        sweep_stale_pins();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{role}-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip -n NAME ARGS...`
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let out = run(Command::new("ip").arg("-n").arg(&self.name).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A command that runs inside the namespace via `nsenter --net`. Unlike
    /// `ip netns exec`, this keeps the host's /sys (and so /sys/fs/bpf) mounted.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path().display())).arg("--").arg(program);
        cmd
    }

    /// `ip netns exec`: for commands that must see the namespace's own /sys
    /// (per-device sysfs knobs such as `/sys/class/net/DEV/threaded`).
    pub fn exec_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// The MAC address of `dev` here (`aa:bb:...`).
    pub fn mac(&self, dev: &str) -> Result<String> {
        let out = self.ip(&["-br", "link", "show", dev])?;
        out.split_whitespace().nth(2).map(str::to_string).context("no MAC in `ip -br link`")
    }

    /// Whether an XDP program is attached to `iface` here.
    pub fn xdp_attached(&self, iface: &str) -> bool {
        self.ip(&["link", "show", iface]).is_ok_and(|l| l.contains("prog/xdp"))
    }

    /// Runs a shell snippet inside the namespace, failing on a non-zero exit.
    pub fn sh(&self, script: &str) -> Result<String> {
        let out = run(self.exec_command("sh").args(["-c", script]))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `f` on a thread that has entered this namespace; sockets it opens stay in it.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        let file = File::open(self.path()).with_context(|| format!("opening {}", self.path().display()))?;
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .context("setns into the test namespace")?;
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("thread in namespace panicked"))?
        })
    }

    /// Index of `iface` inside this namespace.
    pub fn ifindex(&self, iface: &str) -> Result<u32> {
        let iface = iface.to_string();
        self.run(move || nix::net::if_::if_nametoindex(iface.as_str()))?
            .with_context(|| format!("no interface in {}", self.name))
    }

    /// Processes still running in the namespace.
    pub fn pids(&self) -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Creates a veth pair with one end in each namespace, both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    run(Command::new("ip").args([
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]))?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["link", "set", b_if, "up"])?;
    Ok(())
}

/// Adds `cidr` to `iface` in `ns` (IPv6 without duplicate address detection, so it is usable
/// at once).
pub fn addr(ns: &Netns, iface: &str, cidr: &str) -> Result<()> {
    if cidr.contains(':') {
        ns.ip(&["-6", "addr", "add", cidr, "dev", iface, "nodad"])?;
    } else {
        ns.ip(&["addr", "add", cidr, "dev", iface])?;
    }
    Ok(())
}

/// Deletes namespaces this harness made in processes that no longer exist (a test killed
/// with SIGKILL cannot unwind).
pub fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let mut parts = rest.rsplitn(3, '-');
        let (_n, pid) = (parts.next(), parts.next().and_then(|p| p.parse::<i32>().ok()));
        if let Some(pid) = pid {
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
            if !alive {
                let _ = Command::new("ip").args(["netns", "del", &name]).output();
            }
        }
    }
}

/// Removes pin directories (`/sys/fs/bpf/lbt-*-PID-*`, and `lb-netns-lbt-*-PID-*`, the
/// default of a daemon in one of our namespaces) of test processes that no longer exist: a
/// test killed with SIGKILL cannot remove its own.
pub fn sweep_stale_pins() {
    let Ok(entries) = std::fs::read_dir("/sys/fs/bpf") else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.trim_start_matches("lb-netns-").starts_with(PREFIX) {
            continue;
        }
        let pid = name.split('-').filter_map(|p| p.parse::<i32>().ok()).next();
        if let Some(pid) = pid
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
        {
            let _ = lb_daemon::dataplane::bpf::remove_pins_in(&e.path());
        }
    }
}

/// Runs a command, failing with its stderr when it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out)
}

/// The standard test topology: client — load balancer — switch (bridge) — backends.
///
/// ```text
///  client 192.0.2.2/24, 2001:db8:c::2/64, default via the LB
///    │ c0            (so the VIPs 203.0.113.10 / 2001:db8:f::10 are reached through it)
///  lb  l0 192.0.2.1/24, 2001:db8:c::1/64
///      l1 198.51.100.1/24, 2001:db8:b::1/64
///    │
///  switch: bridge br0 (GRO on its ports, see shared/notes/topologies.md)
///    │ ...
///  backend i: b0 198.51.100.(11+i)/24, 2001:db8:b::(11+i)/64, default via the LB
/// ```
pub struct LbTopology {
    pub client: Netns,
    pub lb: Netns,
    pub switch: Netns,
    pub backends: Vec<Netns>,
}

impl LbTopology {
    pub fn new(backends: usize) -> Result<Self> {
        let client = Netns::new("cli")?;
        let lb = Netns::new("lb")?;
        let switch = Netns::new("sw")?;
        veth(&client, "c0", &lb, "l0")?;
        addr(&client, "c0", &format!("{CLIENT4}/24"))?;
        addr(&client, "c0", &format!("{CLIENT6}/64"))?;
        addr(&lb, "l0", &format!("{LB_CLIENT_SIDE4}/24"))?;
        addr(&lb, "l0", &format!("{LB_CLIENT_SIDE6}/64"))?;
        client.ip(&["route", "add", "default", "via", &LB_CLIENT_SIDE4.to_string()])?;
        client.ip(&["-6", "route", "add", "default", "via", &LB_CLIENT_SIDE6.to_string()])?;

        switch.ip(&["link", "add", "br0", "type", "bridge"])?;
        switch.ip(&["link", "set", "br0", "up"])?;
        veth(&lb, "l1", &switch, "s0")?;
        switch.ip(&["link", "set", "s0", "master", "br0"])?;
        addr(&lb, "l1", &format!("{LB_BACKEND_SIDE4}/24"))?;
        addr(&lb, "l1", &format!("{LB_BACKEND_SIDE6}/64"))?;
        lb.sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")?;

        let mut list = Vec::new();
        for i in 0..backends {
            let b = Netns::new(&format!("be{i}"))?;
            let port = format!("s{}", i + 1);
            veth(&b, "b0", &switch, &port)?;
            switch.ip(&["link", "set", &port, "master", "br0"])?;
            addr(&b, "b0", &format!("{}/24", backend4(i)))?;
            addr(&b, "b0", &format!("{}/64", backend6(i)))?;
            b.ip(&["route", "add", "default", "via", &LB_BACKEND_SIDE4.to_string()])?;
            b.ip(&["-6", "route", "add", "default", "via", &LB_BACKEND_SIDE6.to_string()])?;
            list.push(b);
        }
        // XDP_REDIRECT out of a veth is only delivered when the peer has NAPI: GRO on at the
        // far ends of the load balancer's links (shared/notes/topologies.md).
        client.sh("ethtool -K c0 gro on >/dev/null")?;
        switch.sh("ethtool -K s0 gro on >/dev/null")?;
        Ok(Self { client, lb, switch, backends: list })
    }

    /// Sets up direct return (DR and TUN): every backend holds both VIPs on lo without
    /// answering ARP for them and without reverse-path filtering, and the lb accepts the
    /// VIP-sourced replies its kernel would otherwise drop as martians
    /// (shared/notes/topologies.md).
    pub fn direct_return(&self) -> Result<()> {
        for b in &self.backends {
            b.sh(&format!(
                "ip addr add {VIP4}/32 dev lo && ip -6 addr add {VIP6}/128 dev lo && \
                 sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
                 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.b0.rp_filter=0"
            ))?;
        }
        self.lb.sh(
            "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.l1.rp_filter=0 net.ipv4.conf.l1.accept_local=1",
        )?;
        Ok(())
    }

    /// Every namespace name, for checking that cleanup removed them.
    pub fn names(&self) -> Vec<String> {
        let mut v = vec![self.client.name().to_string(), self.lb.name().to_string(), self.switch.name().to_string()];
        v.extend(self.backends.iter().map(|b| b.name().to_string()));
        v
    }
}

/// Routers and a client on one broadcast segment (a bridge in its own namespace), for VRRP:
///
/// ```text
///  client c0 192.0.2.2/24, 2001:db8:1::2/64
///    │
///  switch: bridge br0, port s0 (client), s1.. (nodes)
///    │
///  node i: l0 192.0.2.(11+i)/24, 2001:db8:1::(11+i)/64
/// ```
/// Duplicate address detection is off, so link-local addresses (VRRPv3's IPv6 source) are
/// usable as soon as the links are up.
pub struct Segment {
    pub switch: Netns,
    pub client: Netns,
    pub nodes: Vec<Netns>,
}

impl Segment {
    pub fn new(nodes: usize) -> Result<Self> {
        let switch = Netns::new("sw")?;
        switch.ip(&["link", "add", "br0", "type", "bridge"])?;
        switch.ip(&["link", "set", "br0", "up"])?;
        let no_dad = "sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0";
        let client = Netns::new("cli")?;
        client.sh(no_dad)?;
        veth(&client, "c0", &switch, "s0")?;
        switch.ip(&["link", "set", "s0", "master", "br0"])?;
        addr(&client, "c0", &format!("{CLIENT4}/24"))?;
        addr(&client, "c0", &format!("{SEGMENT_CLIENT6}/64"))?;
        let mut list = Vec::new();
        for i in 0..nodes {
            let n = Netns::new(&format!("vr{i}"))?;
            n.sh(no_dad)?;
            let port = format!("s{}", i + 1);
            veth(&n, "l0", &switch, &port)?;
            switch.ip(&["link", "set", &port, "master", "br0"])?;
            addr(&n, "l0", &format!("{}/24", node4(i)))?;
            addr(&n, "l0", &format!("{}/64", node6(i)))?;
            list.push(n);
        }
        Ok(Self { switch, client, nodes: list })
    }

    /// Takes node `i` off the bridge; its link stays up (no carrier loss, no FAULT): a
    /// partition, as a failed switch path looks to VRRP.
    pub fn cut(&self, i: usize) -> Result<()> {
        self.switch.ip(&["link", "set", &format!("s{}", i + 1), "nomaster"]).map(|_| ())
    }

    pub fn heal(&self, i: usize) -> Result<()> {
        self.switch.ip(&["link", "set", &format!("s{}", i + 1), "master", "br0"]).map(|_| ())
    }

    /// The MAC address of node `i`'s l0.
    pub fn mac(&self, i: usize) -> Result<String> {
        self.nodes[i].mac("l0")
    }

    /// Whether node `i` holds `ip`.
    pub fn holds(&self, i: usize, ip: impl std::fmt::Display) -> bool {
        self.nodes[i].ip(&["-br", "addr", "show", "l0"]).is_ok_and(|o| o.contains(&format!(" {ip}/")))
    }

    /// The client's neighbour entry for `ip` (its MAC), if any.
    pub fn client_neigh(&self, ip: impl std::fmt::Display) -> Option<String> {
        let out = self.client.ip(&["neigh", "show", &ip.to_string(), "dev", "c0"]).ok()?;
        let words: Vec<&str> = out.split_whitespace().collect();
        words.iter().position(|w| *w == "lladdr").and_then(|p| words.get(p + 1)).map(|s| s.to_string())
    }
}
