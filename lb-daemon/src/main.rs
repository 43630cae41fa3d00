//! Command line of lb-daemon, in keepalived's spellings where keepalived has one.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use lb_daemon::{
    config::{self, BackendKind},
    control::{Reply, Request},
    daemon::{self, Options},
    dataplane::{
        bpf::{self, AttachMode, pins},
        conns::Selector,
    },
};

#[derive(Parser)]
#[command(
    name = "lb-daemon",
    version,
    disable_version_flag = true,
    about = "keepalived-compatible load balancer with an XDP data plane",
    after_help = "lb-daemon always runs in the foreground (keepalived forks unless -n): run it under \
                  systemd or another supervisor. Signals: SIGHUP reloads the configuration, \
                  SIGTERM/SIGINT stop."
)]
struct Cli {
    /// Print the version and exit (keepalived's -v).
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// Configuration file (keepalived.conf syntax).
    #[arg(short = 'f', long = "use-file", default_value = "/etc/keepalived/keepalived.conf", global = true)]
    config: PathBuf,
    /// Check the configuration and exit, with keepalived's codes: 0 valid, 4 file unreadable,
    /// 5 configuration errors (every one printed as file:line:col).
    #[arg(short = 't', long = "config-test")]
    config_test: bool,
    /// Print (with -t) or log (at start) the parsed configuration.
    #[arg(short = 'd', long = "dump-conf")]
    dump_conf: bool,
    /// With -t: print the parsed configuration as JSON on stdout (with --diff, the changes).
    #[arg(long)]
    json: bool,
    /// With -t: what reloading the running daemon (found by --run-dir) with this file would
    /// change. Exit 0: nothing; 1: something; 2: no comparison (daemon not reachable).
    #[arg(long, requires = "config_test")]
    diff: bool,
    /// Forwarding backend; overrides the config's `lb_backend`. `auto` uses the XDP data
    /// plane when the kernel can run it and the config needs nothing only IPVS has, and
    /// IPVS otherwise.
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    backend: BackendKind,
    /// Testing aid for `--backend auto`: act as if the BPF data plane could not load.
    #[arg(long, hide = true)]
    simulate_no_bpf: bool,
    /// Log to the console as well as to syslog.
    #[arg(short = 'l', long = "log-console", global = true)]
    log_console: bool,
    /// Detailed logs (debug level).
    #[arg(short = 'D', long = "log-detail", global = true)]
    log_detail: bool,
    /// Syslog facility: 0-7 (local0-local7, as keepalived), local0-local7, user or daemon.
    #[arg(short = 'S', long = "log-facility", default_value = "daemon", value_parser = lb_daemon::logging::parse_facility)]
    log_facility: syslog_tracing::Facility,
    /// Run only VRRP (keepalived's -P): no data plane, services or checkers.
    #[arg(short = 'P', long = "vrrp", conflicts_with = "check")]
    vrrp: bool,
    /// Run only the data plane and checkers (keepalived's -C): no VRRP, no static addresses
    /// or routes.
    #[arg(short = 'C', long = "check")]
    check: bool,
    /// Stay in the foreground: accepted for keepalived's command lines; lb-daemon never forks.
    #[arg(short = 'n', long = "dont-fork")]
    dont_fork: bool,
    /// Write the daemon's pid to FILE (removed on a clean stop).
    #[arg(short = 'p', long = "pid")]
    pid: Option<PathBuf>,
    /// Directory under bpffs for pinned maps and links. Default /sys/fs/bpf/lb; in another
    /// network namespace than the host's, /sys/fs/bpf/lb-netns-NAME (NAME as in `ip netns`).
    #[arg(long, global = true)]
    pin_dir: Option<PathBuf>,
    /// Serve OpenMetrics on this local address (e.g. 127.0.0.1:9650), path /metrics.
    #[arg(long = "metrics-listen", value_name = "ADDR:PORT")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Directory (0700, ours) for the state file `lb-daemon status` reads. Default
    /// /run/lb-daemon; in another network namespace, /run/lb-daemon-netns-NAME.
    #[arg(long, global = true)]
    run_dir: Option<PathBuf>,
    /// Compiled lb-ebpf object to load instead of the embedded one.
    #[arg(long, env = "LB_EBPF_OBJECT", global = true)]
    bpf_object: Option<PathBuf>,
    /// Interface to attach the XDP program to (repeatable). Default: every interface but lo.
    /// (Long form only: `-i` is keepalived's --config-id.)
    #[arg(long = "interface", global = true)]
    interfaces: Vec<String>,
    /// The config id conditional lines (`@ID ...`, `@^ID ...`) compare with, and
    /// `${_INSTANCE}`; default: the host name up to its first dot (keepalived's -i).
    #[arg(short = 'i', long = "config-id", global = true)]
    config_id: Option<String>,
    /// Entries of each connection-tracking table (IPv4's, 104 bytes an entry, and IPv6's,
    /// 128) and of the NAT reverse table (144); all preallocated (docs/dataplane.md).
    #[arg(long, default_value_t = lb_common::consts::DEFAULT_CONNTRACK)]
    conntrack_size: u32,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    xdp_mode: AttachMode,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// On a real server of a TUN service whose kernel lacks ipip: strip the tunnel header of
    /// packets a load balancer sent to a local VIP, arriving on the interfaces given with -i,
    /// until stopped; drop other tunnelled packets.
    Decap {
        /// A load balancer's tunnel source address (repeatable, required): tunnelled packets
        /// from any other source are dropped.
        #[arg(long = "from", required = true)]
        from: Vec<std::net::IpAddr>,
        /// A VIP of this host (repeatable). Default: the addresses on lo other than loopback,
        /// followed as they change.
        #[arg(long = "vip")]
        vips: Vec<std::net::IpAddr>,
    },
    /// Print VRRP states, checker verdicts and counters from the running daemon's state file.
    Status {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print data-plane counters read from the pinned maps (works without a running daemon).
    Stats {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stop new connections (and new persistent clients) to a real server; its established
    /// connections continue. Kept across reloads until `undrain`, unless a reload changes
    /// or removes that real server.
    Drain {
        /// The real server, ADDRESS:PORT as in the config (`[ADDRESS]:PORT` for IPv6).
        real: std::net::SocketAddr,
        /// Only in this virtual server (VIP:PORT[/PROTO], `group NAME`); default: all that have it.
        #[arg(long)]
        service: Option<String>,
    },
    /// Undo `drain`.
    Undrain {
        real: std::net::SocketAddr,
        #[arg(long)]
        service: Option<String>,
    },
    /// Set a real server's weight (0-65535) while it is up, until `--reset` or a reload that
    /// changes that real server.
    Weight {
        real: std::net::SocketAddr,
        #[arg(required_unless_present = "reset")]
        weight: Option<u32>,
        /// Back to the configured (or checker-set) weight.
        #[arg(long, conflicts_with = "weight")]
        reset: bool,
        #[arg(long)]
        service: Option<String>,
    },
    /// The service takes no new connections (no sorry server either); established ones
    /// continue. Kept across reloads until `enable`, unless a reload removes the service.
    Disable {
        /// VIP:PORT[/PROTO], `group NAME/PROTO` or `fwmark N/PROTO`.
        service: String,
    },
    /// Undo `disable`.
    Enable { service: String },
    /// Stop announcing every VIP (`anycast_table`): the routers send this node no new flows
    /// once BGP withdraws the routes. Kept until `announce` or a restart.
    Withdraw,
    /// Undo `withdraw`: VIPs whose services are up are announced again.
    Announce,
    /// List tracked connections like `ipvsadm -Lnc`: the XDP data plane's flow tables from the
    /// pinned maps (works without a running daemon), or IPVS's /proc/net/ip_vs_conn.
    Conns {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Only connections to this virtual service: VIP:PORT ([VIP6]:PORT), or a VIP alone.
        #[arg(long, value_name = "VIP:PORT")]
        service: Option<Selector>,
        /// Only connections to this real server: ADDRESS:PORT, or an address alone.
        #[arg(long, value_name = "REAL:PORT")]
        real: Option<Selector>,
    },
    /// Print lb_xdp's decision for each frame (interface, verdict, reason, service, real server,
    /// flow, generation, the tuple before any rewrite) until stopped or --count records; with
    /// --pcap also write the frames as pcap-ng, each with its decision as the comment. Reads
    /// the pinned maps (works without a running daemon); run it in the load balancer's network
    /// namespace for interface names.
    Trace {
        /// Only frames of this configured service (to it, its NAT replies, ICMP errors about
        /// its flows): VIP:PORT or [VIP6]:PORT, with /tcp or /udp when both exist.
        #[arg(long, value_name = "VIP:PORT")]
        service: Option<String>,
        /// Only frames from or to this address (as parsed before any rewrite).
        #[arg(long, value_name = "ADDR")]
        client: Option<std::net::IpAddr>,
        /// Only frames counted under this reason, as `stats` names it (reason_no_service or
        /// no_service); repeatable, or comma-separated.
        #[arg(long, value_name = "NAME")]
        reason: Vec<String>,
        /// Stop after N records.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Also write the frames (their first 128 bytes as they left lb_xdp) to FILE as pcap-ng.
        #[arg(long, value_name = "FILE")]
        pcap: Option<PathBuf>,
    },
    /// Print the MD5 digest of a URL's body, as keepalived's genhash does, for a `digest` line.
    Genhash {
        /// Server address.
        #[arg(short = 's', long = "server")]
        server: std::net::IpAddr,
        /// Server port (default 80, or 443 with --use-ssl).
        #[arg(short = 'p', long = "port")]
        port: Option<u16>,
        /// The path to GET.
        #[arg(short = 'u', long = "url")]
        url: String,
        /// Use TLS (SSL_GET); the certificate is not verified, as in the checker.
        #[arg(short = 'S', long = "use-ssl")]
        ssl: bool,
        /// Host header (`virtualhost`).
        #[arg(short = 'V', long = "use-virtualhost", visible_alias = "virtualhost")]
        virtualhost: Option<String>,
        /// Name the virtual host in the TLS handshake (SNI), as keepalived's genhash -I.
        #[arg(short = 'I', long = "use-sni", visible_alias = "sni")]
        sni: bool,
        /// Mark the request's packets (SO_MARK), as keepalived's genhash -m and a checker's
        /// `fwmark`.
        #[arg(short = 'm', long = "fwmark")]
        fwmark: Option<u32>,
        /// Give up after this many seconds.
        #[arg(short = 't', long, default_value_t = 5)]
        timeout: u64,
        /// The request's HTTP version, as keepalived's genhash -P and a checker's
        /// `http_protocol`: 1.0 (default), 1.0c (with Connection: close) or 1.1.
        #[arg(short = 'P', long = "protocol", value_parser = parse_http_protocol, default_value = "1.0")]
        protocol: lb_daemon::config::HttpProtocol,
    },
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // Defaults named after the network namespace, so daemons in two never share pins or state.
    let netns = pins::netns_name();
    cli.pin_dir.get_or_insert_with(|| pins::default_pin_dir(netns.as_deref()));
    cli.run_dir.get_or_insert_with(|| lb_daemon::state::default_run_dir(netns.as_deref()));
    // The daemon logs to syslog like keepalived; one-shot commands only to the console.
    let daemon = cli.command.is_none() && !cli.config_test;
    lb_daemon::logging::init(lb_daemon::logging::LogOptions {
        console: cli.log_console || !daemon,
        detail: cli.log_detail,
        syslog: daemon.then_some(cli.log_facility),
    });
    let _ = cli.dont_fork;

    if let Some(id) = &cli.config_id {
        config::set_config_id(id);
    }
    let result = match &cli.command {
        Some(Command::Stats { json }) => stats(&cli, *json),
        Some(Command::Status { json }) => status(&cli, *json),
        Some(Command::Conns { json, service, real }) => conns(&cli, *json, service.as_ref(), real.as_ref()),
        Some(Command::Decap { from, vips }) => decap(&cli, from, vips),
        Some(Command::Drain { real, service }) => {
            control(&cli, Request::Drain { real: *real, service: service.clone() })
        }
        Some(Command::Undrain { real, service }) => {
            control(&cli, Request::Undrain { real: *real, service: service.clone() })
        }
        Some(Command::Weight { real, weight, reset: _, service }) => {
            control(&cli, Request::Weight { real: *real, service: service.clone(), weight: *weight })
        }
        Some(Command::Disable { service }) => control(&cli, Request::Disable { service: service.clone() }),
        Some(Command::Enable { service }) => control(&cli, Request::Enable { service: service.clone() }),
        Some(Command::Withdraw) => control(&cli, Request::Withdraw),
        Some(Command::Announce) => control(&cli, Request::Announce),
        Some(Command::Trace { service, client, reason, count, pcap }) => {
            lb_daemon::dataplane::trace::run(lb_daemon::dataplane::trace::Options {
                pin_dir: &pin_dir(&cli),
                service: service.as_deref(),
                client: *client,
                reasons: reason,
                count: *count,
                pcap: pcap.as_deref(),
            })
        }
        Some(Command::Genhash { server, port, url, ssl, virtualhost, sni, fwmark, timeout, protocol }) => {
            let port = port.unwrap_or(if *ssl { 443 } else { 80 });
            let target = lb_daemon::check::http::Target {
                addr: (*server, port).into(),
                from: lb_daemon::check::tcp::Origin { bind: None, mark: *fwmark, device: None },
                tls: *ssl,
                sni: if *sni { virtualhost.clone() } else { None },
                host: virtualhost.clone(),
                protocol: *protocol,
            };
            genhash(&target, url, *timeout)
        }
        None if cli.config_test => return config_test(&cli),
        None => run(cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lb-daemon: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// keepalived's `-t` exit codes (`KEEPALIVED_CHK_EXIT_*`).
const EXIT_CONFIG_FILE: u8 = 4;
const EXIT_CONFIG_TEST: u8 = 5;
const EXIT_CONFIG_TEST_SECURITY: u8 = 6;

fn config_test(cli: &Cli) -> ExitCode {
    let loaded = match config::load(&cli.config, cli.backend) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("lb-daemon: {e:#}");
            return ExitCode::from(EXIT_CONFIG_FILE);
        }
    };
    if !loaded.diagnostics.is_empty() {
        eprintln!("{}", loaded.render());
    }
    if cli.json && !cli.diff {
        match serde_json::to_string_pretty(&loaded.config) {
            Ok(j) => println!("{j}"),
            Err(e) => eprintln!("lb-daemon: {e}"),
        }
    } else if cli.dump_conf {
        println!("{:#?}", loaded.config);
    }
    // keepalived's -t looks the VRRP interfaces up on this host, and so does ours (not with
    // `-C`, which runs no VRRP).
    let host = lb_daemon::daemon::host_interface();
    let look = |name: &str| if cli.check { config::validate::Iface::Present } else { host(name) };
    let missing = config::validate::missing_interfaces(&loaded.config, look);
    for d in &missing {
        eprintln!("{}", loaded.sources.render(d));
    }
    if !missing.is_empty() {
        eprintln!("Non-existent interface specified in configuration");
    }
    let errors = loaded.errors().count() + missing.len();
    // What the daemon will disable at start, as keepalived does (its -t counts these as
    // errors; ours warns, as for keepalived's other warnings: tests/tests/corpus.rs).
    if let Ok(runner) = lb_daemon::script::Runner::new(&loaded.config.global) {
        for (s, e) in lb_daemon::vrrp::tracking::unrunnable_scripts(&loaded.config, &runner) {
            let why = format!(
                "vrrp_script {}: {e}; it will be disabled (no effect on any instance), as keepalived disables it",
                s.name
            );
            eprintln!("{}", loaded.sources.render(&config::Diagnostic::warning(s.span, why)));
        }
    }
    // keepalived's parser removes a MISC_CHECK whose user does not exist (check_misc.c
    // `misc_user_handler`), so its script never counts as one that runs; the daemon drops it
    // at start the same way.
    let mut dropped = Vec::new();
    for rs in loaded.config.virtual_servers.iter().flat_map(|vs| &vs.real_servers) {
        for c in &rs.checkers {
            if let config::CheckKind::Misc { path: Some(path), user: Some(user), .. } = &c.kind
                && let Err(e) = lb_daemon::script::identity(user)
            {
                let why =
                    format!("MISC_CHECK {}: {e}; the checker will be removed, as keepalived removes it", path.command);
                eprintln!("{}", loaded.sources.render(&config::Diagnostic::warning(path.span, why)));
                dropped.push(path);
            }
        }
    }
    // keepalived's -t: scripts without enable_script_security is its highest verdict (6),
    // over any other error. The daemon still runs them (as keepalived does), warning at start.
    let insecure = !loaded.config.global.enable_script_security
        && config::scripts(&loaded.config).iter().any(|(s, _)| !dropped.iter().any(|d| std::ptr::eq(*d, *s)));
    if insecure {
        eprintln!(
            "{}: SECURITY VIOLATION - scripts are being executed but script_security not enabled \
             (add enable_script_security to global_defs)",
            cli.config.display()
        );
    }
    if insecure && !cli.diff {
        ExitCode::from(EXIT_CONFIG_TEST_SECURITY)
    } else if errors > 0 {
        eprintln!("{}: {errors} error(s)", cli.config.display());
        ExitCode::from(EXIT_CONFIG_TEST)
    } else if cli.diff {
        diff(cli, loaded.config)
    } else {
        ExitCode::SUCCESS
    }
}

/// `-t --diff` exit codes (as diff(1)): the configuration is valid, and a reload with it
/// changes nothing / something; or the running daemon could not be asked.
const EXIT_DIFF_SAME: u8 = 0;
const EXIT_DIFF_CHANGES: u8 = 1;
const EXIT_DIFF_TROUBLE: u8 = 2;

/// Sends the parsed configuration (the daemon may not see this file: systemd's PrivateTmp)
/// for the running daemon to compare with its own.
fn diff(cli: &Cli, config: config::Config) -> ExitCode {
    let asked = lb_daemon::control::request(&run_dir(cli), &Request::Preview { config: Box::new(config) });
    let mut preview = match asked {
        Ok(Reply { ok: true, preview: Some(p), .. }) => p,
        Ok(r) => {
            eprintln!("lb-daemon: the running daemon could not compare: {}", r.message);
            return ExitCode::from(EXIT_DIFF_TROUBLE);
        }
        Err(e) => {
            eprintln!("lb-daemon: {e:#}");
            return ExitCode::from(EXIT_DIFF_TROUBLE);
        }
    };
    if !preview.leaving.is_empty() {
        match read_conns(cli) {
            Ok((all, _, _)) => {
                preview.rescheduled_flows = Some(lb_daemon::control::rescheduled(&all, &preview.leaving))
            }
            Err(e) => eprintln!("lb-daemon: counting the flows that would be rescheduled: {e:#}"),
        }
    }
    if cli.json {
        match serde_json::to_string_pretty(&preview) {
            Ok(j) => println!("{j}"),
            Err(e) => eprintln!("lb-daemon: {e}"),
        }
    } else {
        for c in &preview.changes {
            println!("{c}");
        }
        for b in &preview.buckets {
            println!("{} ({}): {} of {} table buckets change real server", b.service, b.scheduler, b.moved, b.total);
        }
        if let Some(n) = preview.rescheduled_flows {
            println!("{n} tracked flow(s) of leaving real servers would be rescheduled");
        }
        if preview.changes.is_empty() {
            println!("no change");
        }
    }
    ExitCode::from(if preview.changes.is_empty() { EXIT_DIFF_SAME } else { EXIT_DIFF_CHANGES })
}

/// Sends a runtime-control request to the running daemon and prints its answer.
fn control(cli: &Cli, req: Request) -> anyhow::Result<()> {
    let reply = lb_daemon::control::request(&run_dir(cli), &req)?;
    if !reply.ok {
        anyhow::bail!("{}", reply.message);
    }
    println!("{}", reply.message);
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let _pid = cli.pid.as_deref().map(lb_daemon::pidfile::PidFile::create).transpose()?;
    let opts = Options {
        config: cli.config,
        pin_dir: cli.pin_dir.unwrap_or_default(),
        bpf_object: cli.bpf_object,
        interfaces: cli.interfaces,
        attach_mode: cli.xdp_mode,
        dump_conf: cli.dump_conf,
        backend: cli.backend,
        sizes: bpf::Sizes { conntrack: cli.conntrack_size },
        run_dir: cli.run_dir.unwrap_or_default(),
        metrics: cli.metrics_listen,
        simulate_no_bpf: cli.simulate_no_bpf,
        subsystems: if cli.vrrp {
            daemon::Subsystems::VrrpOnly
        } else if cli.check {
            daemon::Subsystems::CheckersOnly
        } else {
            daemon::Subsystems::All
        },
    };
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(daemon::run(opts))
}

fn decap(cli: &Cli, from: &[std::net::IpAddr], vips: &[std::net::IpAddr]) -> anyhow::Result<()> {
    // `--bpf-object` names the decapsulator's object here.
    let object = match cli.bpf_object.as_deref() {
        Some(path) => lb_daemon::dataplane::object::load(Some(path))?,
        None => lb_daemon::dataplane::object::decap()?,
    };
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(lb_daemon::dataplane::decap::run(
        &object,
        lb_daemon::dataplane::decap::Options { interfaces: &cli.interfaces, from, vips },
    ))
}

fn parse_http_protocol(s: &str) -> Result<lb_daemon::config::HttpProtocol, String> {
    lb_daemon::config::HttpProtocol::parse(s).ok_or_else(|| format!("`{s}` is not 1.0, 1.0c or 1.1"))
}

fn genhash(target: &lb_daemon::check::http::Target, url: &str, timeout: u64) -> anyhow::Result<()> {
    use lb_daemon::check::http;
    let reply = tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(timeout),
            http::get(target, url, http::Want { digest: true, keep: 0 }),
        )
        .await
        .map_err(|_| anyhow::anyhow!("{}: no answer within {timeout} s", target.addr))?
        .map_err(|e| anyhow::anyhow!("{}{url}: {e}", target.addr))
    })?;
    println!("status {}", reply.status);
    println!("MD5SUM = {}", reply.digest.unwrap_or_default());
    Ok(())
}

fn status(cli: &Cli, json: bool) -> anyhow::Result<()> {
    let s = lb_daemon::state::read(&run_dir(cli))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!("lb-daemon pid {} ({})", s.pid, s.config);
    match &s.backend {
        Some(b) => match b.changes {
            Some(n) => println!("backend: {} ({n} kernel changes since start)", b.kind),
            None => println!("backend: {}", b.kind),
        },
        None => println!("backend: none (-P)"),
    }
    println!("vrrp:");
    for v in &s.vrrp {
        let rejected: Vec<String> = v.rejected.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "  {:<16} vrid {:<3} {:<7} priority {:<3} sent {:<6} received {:<6} rejected [{}]",
            v.instance,
            v.vrid,
            v.state,
            v.priority,
            v.adverts_sent,
            v.adverts_received,
            rejected.join(", ")
        );
    }
    println!("checks:");
    for c in &s.checks {
        println!(
            "  {:<24} -> {:<22} #{} {:<4} {}",
            c.service,
            c.real,
            c.check,
            if c.up { "UP" } else { "DOWN" },
            c.reason
        );
    }
    for q in &s.quorum_lost {
        println!("  {q}: quorum lost");
    }
    if !s.overrides.is_empty() {
        println!("overrides (lb-daemon drain/weight/disable):");
        for o in &s.overrides {
            let weight = o.weight.map(|w| format!(" weight {w}")).unwrap_or_default();
            match &o.real {
                Some(r) => println!("  {:<24} -> {:<22} {}{weight}", o.service, r, o.kind),
                None => println!("  {:<24} {}", o.service, o.kind),
            }
        }
    }
    if let Some(t) = s.anycast_table {
        println!("anycast (routes in table {t}):");
        for a in &s.anycast {
            match &a.reason {
                None => println!("  {:<24} announced", a.vip),
                Some(why) => println!("  {:<24} withdrawn: {why}", a.vip),
            }
        }
    }
    println!("checker counters: {}", s.checker_counters);
    Ok(())
}

/// The pin directory (its default filled in by `main`).
fn pin_dir(cli: &Cli) -> PathBuf {
    cli.pin_dir.clone().unwrap_or_default()
}

fn run_dir(cli: &Cli) -> PathBuf {
    cli.run_dir.clone().unwrap_or_default()
}

fn stats(cli: &Cli, json: bool) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let pin_dir = pin_dir(cli);
    pins::prepare(&pin_dir, pins::Purpose::Read)?;
    let snap = bpf::read_stats(&pin_dir)
        .context("reading the BPF data plane's pinned maps (with the IPVS backend, use `ipvsadm -Ln --stats`)")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&snap)?);
        return Ok(());
    }
    println!("data plane ({}):", pin_dir.display());
    for (name, value) in &snap.global.0 {
        if *value != 0 || name.ends_with("packets") {
            println!("  {name:<22} {value}");
        }
    }
    println!("services:");
    for s in &snap.services {
        println!(
            "  {:<28} id {:<4} packets {:<10} bytes {:<12} new flows {:<8} drops {}{}",
            s.service,
            s.id,
            s.packets,
            s.bytes,
            s.new_flows,
            s.drops,
            if s.sorry_active { "  (quorum lost: sorry server)" } else { "" }
        );
        for r in &s.reals {
            println!(
                "    -> {:<26} weight {:<5} {:<11} conns {:<6} packets {:<10} bytes {:<12} new flows {}",
                r.real,
                r.weight,
                if r.scheduled { "scheduled" } else { "unscheduled" },
                r.active_conns,
                r.packets,
                r.bytes,
                r.new_flows
            );
        }
    }
    Ok(())
}

/// Every connection entry of the backend the daemon runs (or whose pins exist), where from.
fn read_conns(
    cli: &Cli,
) -> anyhow::Result<(Vec<lb_daemon::dataplane::conns::Conn>, lb_daemon::dataplane::conns::Source, String)> {
    use lb_daemon::{
        dataplane::conns::{self, Source},
        ipvs,
    };
    let pin_dir = pin_dir(cli);
    pins::prepare(&pin_dir, pins::Purpose::Read)?;
    let running = lb_daemon::state::read(&run_dir(cli)).ok().and_then(|s| s.backend).map(|b| b.kind);
    let source = conns::choose(
        running.as_deref(),
        pin_dir.join(lb_common::consts::MAP_CONNTRACK).exists(),
        std::path::Path::new(ipvs::conns::PROC_FILE).exists(),
    )?;
    Ok(match source {
        Source::Bpf => (bpf::read_conns(&pin_dir)?, source, format!("XDP connection entries ({})", pin_dir.display())),
        Source::Ipvs => (ipvs::conns::read()?, source, "IPVS connection entries".to_string()),
    })
}

fn conns(cli: &Cli, json: bool, service: Option<&Selector>, real: Option<&Selector>) -> anyhow::Result<()> {
    use lb_daemon::dataplane::conns::{self, Source};
    let (all, source, title) = read_conns(cli)?;
    let mut list = conns::filter(all, service, real);
    conns::sort(&mut list);
    if json {
        let backend = if source == Source::Bpf { "bpf" } else { "ipvs" };
        let out = serde_json::json!({ "backend": backend, "connections": list });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", conns::render_text(&list, &title));
    }
    Ok(())
}
