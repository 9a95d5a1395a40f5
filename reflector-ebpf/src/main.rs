//! reflector's kernel data plane. A packet to a mapped listen port `L` goes straight back to
//! its sender's port `P`; the sender's replies come back from `L`. One parser, one policy
//! and one rewrite serve both attach points (XDP and TC); see `reflector-common` for the
//! maps and counters they share with the control plane.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(
    target_arch = "bpf",
    expect(
        clippy::inline_always,
        reason = "the data path is inlined on purpose: BPF-to-BPF calls cost instructions and \
                  lose the verifier's packet-pointer bounds across the call"
    )
)]

#[cfg(target_arch = "bpf")]
mod consts;
#[cfg(target_arch = "bpf")]
mod csum;
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

/// Built for the host (e.g. by `cargo check --workspace`), this crate is empty.
#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
#[cfg(target_arch = "bpf")]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
