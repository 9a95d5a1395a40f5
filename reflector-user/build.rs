//! Builds the kernel program (`reflector-ebpf`) and leaves it at `$OUT_DIR/reflector`, where
//! `src/ebpf_object.rs` embeds it.
//!
//! Without the eBPF toolchain, or with `REFLECTOR_SKIP_EBPF=1`, the control plane still
//! builds and the binary says at run time that its kernel program is missing (see
//! `reflector-ebpf-build`).

use reflector_ebpf_build::EbpfPackage;

fn main() -> anyhow::Result<()> {
    reflector_ebpf_build::build(&EbpfPackage {
        name: "reflector-ebpf",
        dir: "reflector-ebpf",
        // The cfg that tells `src/ebpf_object.rs` the kernel object is in `$OUT_DIR`.
        built_cfg: "reflector_ebpf",
        without: "this binary cannot run the data plane",
    })
}
