//! The kernel program, embedded at build time when the eBPF toolchain was present.
//! (Owned by the build helper: see build.rs.)

/// The compiled kernel object, or `None` when this binary was built without it.
#[must_use]
pub fn kernel_object() -> Option<&'static [u8]> {
    None
}
