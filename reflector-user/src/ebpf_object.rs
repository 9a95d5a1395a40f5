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

/// How many times [`load_retrying`] asks the kernel to load a program.
const LOAD_ATTEMPTS: u32 = 5;

/// Runs `load` (one program's `load()`), again while the kernel answers `EAGAIN`, at most
/// [`LOAD_ATTEMPTS`] times. The verifier gives up with `EAGAIN` when a signal reaches the
/// loading thread while it works, which says nothing about the program: libbpf retries the
/// same way. The programs take about 0.1 s to verify, long enough for it to happen.
///
/// # Errors
/// What the last attempt returned.
pub fn load_retrying(
    mut load: impl FnMut() -> Result<(), aya::programs::ProgramError>,
) -> Result<(), aya::programs::ProgramError> {
    let mut attempt = 1;
    loop {
        match load() {
            Err(aya::programs::ProgramError::LoadError { io_error, .. })
                if io_error.kind() == std::io::ErrorKind::WouldBlock && attempt < LOAD_ATTEMPTS =>
            {
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}
