//! reflector's kernel data plane. A packet to a mapped listen port `L` goes straight back to
//! its sender's port `P`; the sender's replies come back from `L`. One parser, one policy
//! and one rewrite serve both attach points (XDP and TC); see `reflector-common` for the
//! maps and counters they share with the control plane.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![expect(
    clippy::inline_always,
    reason = "the data path is inlined on purpose: BPF-to-BPF calls cost instructions and \
              lose the verifier's packet-pointer bounds across the call"
)]

// Pure code (no maps, no helpers, no packet pointers) is built on the host too, where its
// property tests run against independent implementations (`cargo test -p reflector-ebpf`).
#[cfg_attr(
    not(any(target_arch = "bpf", test)),
    expect(dead_code, reason = "only the BPF build and the tests call it")
)]
mod addr;
#[cfg_attr(
    not(any(target_arch = "bpf", test)),
    expect(dead_code, reason = "only the BPF build and the tests call it")
)]
mod csum;

#[cfg(target_arch = "bpf")]
mod admission;
#[cfg(target_arch = "bpf")]
mod consts;
#[cfg(target_arch = "bpf")]
mod ip;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod parse;
#[cfg(target_arch = "bpf")]
mod pipeline;
#[cfg(target_arch = "bpf")]
mod policy;
#[cfg(target_arch = "bpf")]
mod rewrite;
#[cfg(target_arch = "bpf")]
mod sockets;
#[cfg(target_arch = "bpf")]
mod stats;
#[cfg(target_arch = "bpf")]
mod tc;
#[cfg(target_arch = "bpf")]
mod xdp;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach here; nothing to do at run time.
    loop {}
}

/// Built for the host (by `cargo test --workspace`), this crate is its pure modules and their
/// tests.
#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
#[cfg(target_arch = "bpf")]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
