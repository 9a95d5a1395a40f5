//! Builds the benchmark's reference programs (`reflector-bench-ebpf`) and leaves them at
//! `$OUT_DIR/reflector-bench`, where `src/bench_object.rs` embeds them. This crate embeds
//! them, not the benchmark, because both the tests and the benchmark load them through it.

use reflector_ebpf_build::EbpfPackage;

fn main() -> anyhow::Result<()> {
    reflector_ebpf_build::build(&EbpfPackage {
        name: "reflector-bench-ebpf",
        dir: "bench-ebpf",
        // The cfg that tells `src/bench_object.rs` the object is in `$OUT_DIR`.
        built_cfg: "bench_ebpf",
        without: "the kernel tests and the benchmark cannot load the baselines nor \
                  `xdp_pass`",
    })
}
