//! Finding the compiled eBPF objects the daemon runs: `lb-xdp` (the load balancer) and
//! `lb-decap` (`lb-daemon decap`). The benchmark's `lb-bench` object is not the daemon's.

use std::{
    borrow::Cow,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use aya::programs::ProgramError;

#[cfg(lb_embedded_ebpf)]
static XDP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-xdp.o"));
#[cfg(lb_embedded_ebpf)]
static DECAP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-decap.o"));
#[cfg(not(lb_embedded_ebpf))]
static XDP: &[u8] = &[];
#[cfg(not(lb_embedded_ebpf))]
static DECAP: &[u8] = &[];

/// The load balancer's object: the one given by `--bpf-object` (or `LB_EBPF_OBJECT`), else
/// the one embedded at build time.
pub fn load(path: Option<&Path>) -> Result<Cow<'static, [u8]>> {
    if let Some(path) = path {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read eBPF object {}", path.display()))?;
        return Ok(Cow::Owned(bytes));
    }
    if let Some(path) = std::env::var_os("LB_EBPF_OBJECT") {
        return load(Some(Path::new(&path)));
    }
    embedded(XDP)
}

/// The decapsulator's object (embedded).
pub fn decap() -> Result<Cow<'static, [u8]>> {
    embedded(DECAP)
}

/// Without the embedded objects, says how to build them rather than failing obscurely.
fn embedded(bytes: &'static [u8]) -> Result<Cow<'static, [u8]>> {
    if bytes.is_empty() {
        bail!(
            "this lb-daemon was built without its eBPF objects: run `cargo xtask build-ebpf` and \
             rebuild lb-daemon, or pass --bpf-object PATH"
        );
    }
    Ok(Cow::Borrowed(bytes))
}

/// How long loads interrupted by signals are tried again for (libbpf tries 5 times at once;
/// interruptions come in bursts, so here the tries are spread out).
const LOAD_PATIENCE: Duration = Duration::from_secs(30);

/// Loads program `name` with `load`, again when a signal interrupted the verifier.
///
/// The verifier gives up with EAGAIN whenever a signal is pending, and a stop and continue
/// of the process (a job-control shell, a CI runner pausing its jobs) is enough: a large
/// program verifies for long enough to meet one.
pub fn load_program(name: &str, load: impl FnMut() -> Result<(), ProgramError>) -> Result<()> {
    load_patiently(name, load, LOAD_PATIENCE)
}

fn load_patiently(name: &str, mut load: impl FnMut() -> Result<(), ProgramError>, patience: Duration) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        match load() {
            Err(ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && start.elapsed() < patience =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            done => return done.with_context(|| format!("the kernel refused program {name}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(errno: i32) -> ProgramError {
        ProgramError::LoadError {
            io_error: std::io::Error::from_raw_os_error(errno),
            verifier_log: aya_obj::VerifierLog::new(String::new()),
        }
    }

    #[test]
    fn an_interrupted_load_is_tried_again() {
        let mut calls = 0;
        let mut load = || {
            calls += 1;
            if calls < 3 { Err(refused(libc::EAGAIN)) } else { Ok(()) }
        };
        assert!(load_patiently("p", &mut load, Duration::from_secs(5)).is_ok());
        assert_eq!(calls, 3);
    }

    #[test]
    fn a_refusal_is_not_tried_again_and_interruptions_are_bounded() {
        let mut calls = 0;
        let err = load_program("p", || {
            calls += 1;
            Err(refused(libc::EACCES))
        })
        .unwrap_err();
        assert_eq!(calls, 1);
        assert!(format!("{err:#}").contains("the kernel refused program p"), "{err:#}");

        calls = 0;
        let err = load_patiently(
            "p",
            || {
                calls += 1;
                Err(refused(libc::EAGAIN))
            },
            Duration::from_millis(50),
        )
        .unwrap_err();
        assert!((2..10).contains(&calls), "{calls} tries");
        assert!(format!("{err:#}").contains("Resource temporarily unavailable"), "{err:#}");
    }
}
