//! The benchmark's reference programs: XDP programs that are not reflector, loaded next to
//! it so its cost is read against theirs, and the pass-through a veth peer runs. They live
//! in this object of their own so reflector's kernel object carries only reflector.
//!
//! The test harness (`reflector-tests`) embeds this object, because both the benchmark and
//! the tests load these programs through it.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(
    target_arch = "bpf",
    expect(
        clippy::inline_always,
        reason = "the reference reflector is one function, as the verifier sees reflector's"
    )
)]

#[cfg(target_arch = "bpf")]
mod baseline;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod pass;
#[cfg(target_arch = "bpf")]
mod reference;

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
