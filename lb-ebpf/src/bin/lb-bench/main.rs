//! Programs for `cargo xtask bench`, never attached by the daemon: the cheapest possible XDP
//! programs (per-packet baselines), and the throughput benchmark's packet generator, sink
//! counter and redirect ceiling. Its own object: the daemon never loads it.
#![no_std]
#![no_main]
// Statics are named exactly as their maps (`lb_common::consts::MAP_BENCH_*`).
#![allow(non_upper_case_globals)]

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, PerCpuArray, ProgramArray},
    helpers::bpf_redirect,
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use lb_ebpf::csum;

#[xdp]
pub fn bench_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[xdp]
pub fn bench_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

/// Bytes of the generator's frame (Ethernet + IPv4 + UDP + payload).
const FRAME: usize = 64;
/// Flows the generator rotates over (UDP source ports `PORT_BASE..`).
const FLOWS: u64 = 1024;
const PORT_BASE: u64 = 20_000;

/// The generator's frame, written by the benchmark; `[0]` only.
#[btf_map]
static bench_frame: Array<[u64; FRAME / 8], 1> = Array::new();

/// Per CPU: `[0]` runs of `bench_tx` or frames counted by `bench_count`, `[1]` frames
/// `bench_tx` transmitted.
#[btf_map]
static bench_counter: PerCpuArray<u64, 2> = PerCpuArray::new();

/// The generator transmits one run in `[0]` (0 or 1: every run) and drops the others: frames
/// evenly spaced at a fraction of its full rate. (Pacing between test runs cannot work: each
/// live-frames run costs milliseconds of setup.)
#[btf_map]
static bench_every: Array<u64, 1> = Array::new();

/// The ceiling's next hop: `[ifindex, dst MAC as u64]`.
#[btf_map]
static bench_next: Array<u64, 2> = Array::new();

#[inline(always)]
fn count(slot: u32) -> u64 {
    let Some(c) = bench_counter.get_ptr_mut(slot) else { return 0 };
    // SAFETY: this CPU's slot.
    let c = unsafe { &mut *c };
    *c += 1;
    *c
}

/// The packet generator: run by BPF_PROG_TEST_RUN in live-frames mode on the sending veth
/// (`XDP_TX` transmits each frame to its peer). It writes the whole template over the page
/// every time: live-frames pages are recycled with whatever the receiver left in them. The
/// UDP source port rotates over `FLOWS` flows (the UDP checksum is 0: none). Runs not
/// transmitted (see `bench_every`) are dropped before any write.
#[xdp]
pub fn bench_tx(ctx: XdpContext) -> u32 {
    let every = bench_every.get(0).copied().unwrap_or(1).max(1);
    let n = count(0);
    if n % every != 0 {
        return xdp_action::XDP_DROP;
    }
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + FRAME > end {
        return xdp_action::XDP_ABORTED;
    }
    let Some(t) = bench_frame.get(0) else { return xdp_action::XDP_ABORTED };
    let p = start as *mut u64;
    for (i, w) in t.iter().enumerate() {
        // SAFETY: `FRAME` bytes are in the packet (checked above); unaligned: the packet's
        // start need not be 8-aligned.
        unsafe { p.add(i).write_unaligned(*w) };
    }
    let port = (PORT_BASE + count(1) % FLOWS) as u16;
    // SAFETY: bytes 34..36 (UDP source port) are inside the checked frame.
    unsafe { (start as *mut u8).add(34).cast::<[u8; 2]>().write_unaligned(port.to_be_bytes()) };
    xdp_action::XDP_TX
}

/// `bench_fresh`'s frame: `[0]` the template, `FRESH_LEN` bytes (shorter frames padded, as
/// Ethernet pads them).
#[btf_map]
static bench_fresh_frame: Array<[u64; FRESH_LEN / 8], 1> = Array::new();

/// `bench_fresh`'s settings, written by the benchmark before each timed run: which TCP port
/// it rotates (`[0]`: 0 the source, 1 the destination) and the runs so far (`[1]`, reset to 0
/// to start the port sequence over).
#[btf_map]
static bench_fresh_cfg: Array<u64, 2> = Array::new();

/// `bench_fresh`'s target: `[0]`, `lb_xdp` or `bench_pass`.
#[btf_map]
static bench_fresh_target: ProgramArray<1> = ProgramArray::new();

/// The length of every frame `bench_fresh` writes.
const FRESH_LEN: usize = 64;
/// Offsets in an untagged IPv4 frame with a 20-byte header: the TCP ports and checksum.
const TCP4_PORTS: usize = 34;
const TCP4_CSUM: usize = 50;

/// A new flow per run, warm: writes the template (an untagged IPv4 TCP frame) over the frame
/// (a repeated test run sees what the previous run left), with the rotated port set to the
/// template's plus the number of runs so far and the checksum adjusted, then tail-calls `[0]`
/// of `bench_fresh_target`. Run once with `lb_xdp` and once with `bench_pass` there, the
/// difference is what `lb_xdp` costs for a flow it has never seen (or, with a reply's or an
/// ACK's template after a SYN run, for the n-th packet of the n-th connection). Straight-line
/// code: no loop for the verifier to walk.
#[xdp]
pub fn bench_fresh(ctx: XdpContext) -> u32 {
    let (Some(&which), Some(runs), Some(t)) =
        (bench_fresh_cfg.get(0), bench_fresh_cfg.get_ptr_mut(1), bench_fresh_frame.get(0))
    else {
        return xdp_action::XDP_ABORTED;
    };
    let (start, end) = (ctx.data(), ctx.data_end());
    // Two comparisons: the verifier learns the packet's length from `>`, not from `!=`.
    if start + FRESH_LEN > end || start + FRESH_LEN < end || which > 1 {
        return xdp_action::XDP_ABORTED;
    }
    let p = start as *mut u64;
    // SAFETY: the frame is `FRESH_LEN` bytes (checked above); unaligned: its start need not
    // be 8-aligned.
    unsafe {
        p.write_unaligned(t[0]);
        p.add(1).write_unaligned(t[1]);
        p.add(2).write_unaligned(t[2]);
        p.add(3).write_unaligned(t[3]);
        p.add(4).write_unaligned(t[4]);
        p.add(5).write_unaligned(t[5]);
        p.add(6).write_unaligned(t[6]);
        p.add(7).write_unaligned(t[7]);
    }
    // SAFETY: this program's own slot; test runs are single-threaded.
    let n = unsafe {
        let n = *runs;
        *runs = n + 1;
        n
    };
    // SAFETY: ports and checksum are inside the frame (checked above).
    unsafe {
        let ports = (start as *mut u8).add(TCP4_PORTS).cast::<[u8; 2]>();
        let port_p = if which == 0 { ports } else { ports.add(1) };
        let csum_p = (start as *mut u8).add(TCP4_CSUM).cast::<[u8; 2]>();
        let old = port_p.read_unaligned();
        let new = u16::from_be_bytes(old).wrapping_add(n as u16).to_be_bytes();
        port_p.write_unaligned(new);
        let hc = u16::from_be_bytes(csum_p.read_unaligned());
        csum_p.write_unaligned(csum::replace(hc, &old, &new).to_be_bytes());
        bench_fresh_target.tail_call(&ctx, 0);
    }
    xdp_action::XDP_ABORTED
}

/// The generator's source address (192.0.2.2), as the sink recognises its frames.
const GEN_SRC: [u8; 4] = [192, 0, 2, 2];

/// The throughput benchmark's sink: counts and drops the generator's frames (IPv4 from
/// `GEN_SRC`); anything else (ARP, the load balancer's own datagrams) goes to the stack.
#[xdp]
pub fn bench_count(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + 34 > end {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: bytes 12..34 are inside the frame (checked above).
    let (ethertype, src) = unsafe {
        (
            (start as *const [u8; 2]).add(6).read_unaligned(),
            (start as *const u8).add(26).cast::<[u8; 4]>().read_unaligned(),
        )
    };
    if ethertype != [0x08, 0x00] || src != GEN_SRC {
        return xdp_action::XDP_PASS;
    }
    count(0);
    xdp_action::XDP_DROP
}

/// The ceiling of a forwarding path on this topology: the least an XDP forwarder must do
/// (set the next hop's MAC, redirect), nothing more.
#[xdp]
pub fn bench_redirect(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + 14 > end {
        return xdp_action::XDP_DROP;
    }
    let (Some(ifindex), Some(mac)) = (bench_next.get(0), bench_next.get(1)) else { return xdp_action::XDP_DROP };
    let mac = mac.to_be_bytes();
    // SAFETY: the 14-byte Ethernet header is inside the frame (checked above).
    unsafe { (start as *mut [u8; 6]).write_unaligned([mac[2], mac[3], mac[4], mac[5], mac[6], mac[7]]) };
    unsafe { bpf_redirect(*ifindex as u32, 0) as u32 }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // No panics survive the verifier; this only satisfies no_std.
    loop {}
}
