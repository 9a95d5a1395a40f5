//! The kernel program, embedded at build time when the eBPF toolchain was present.
//!
//! `build.rs` builds `reflector-ebpf` into `$OUT_DIR/reflector` and sets `cfg(reflector_ebpf)`;
//! without the toolchain it sets neither, and this binary carries no kernel program.

/// Tells the user why this binary cannot run and how to get one that can.
pub const NOT_BUILT_IN: &str = "this reflector binary was built without its kernel (eBPF) \
     program, so it cannot reflect anything. Rebuild it with `cargo xtask build` (which \
     installs the eBPF toolchain: nightly Rust with rust-src, and bpf-linker), or build and \
     start it in one step with `cargo xtask run -- ARGS`. If REFLECTOR_SKIP_EBPF=1 was set \
     for the build, unset it.";

/// The compiled kernel object (an eBPF ELF file, with BTF), or `None` when this binary was
/// built without it (see [`NOT_BUILT_IN`]).
#[must_use]
pub fn kernel_object() -> Option<&'static [u8]> {
    #[cfg(reflector_ebpf)]
    {
        // aya parses the ELF in place, so it needs the bytes aligned as the file was.
        Some(aya::include_bytes_aligned!(concat!(
            env!("OUT_DIR"),
            "/reflector"
        )))
    }
    #[cfg(not(reflector_ebpf))]
    {
        None
    }
}
