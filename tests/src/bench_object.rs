//! The benchmark's reference programs (`bench-ebpf`), embedded at build time when the eBPF
//! toolchain was present: programs that are not reflector, kept out of its kernel object.

/// Program names, as the reference object exports them.
pub mod programs {
    /// A minimal XDP program that only swaps MAC addresses and returns `XDP_TX`: the
    /// baseline the reflector's cost per packet is compared with.
    pub const BASELINE_MAC_SWAP: &str = "baseline_mac_swap";
    /// A second reference: swaps MAC addresses after one lookup of the frame's flow in
    /// `FLOWS` (IPv4 and TCP at fixed offsets, nothing checked beyond the frame's length):
    /// the least a reflector with a flow table does per packet.
    pub const BASELINE_FLOW_LOOKUP: &str = "baseline_flow_lookup";
    /// The reference reflector, for one map `L:P` (TCP or UDP, IPv4 or IPv6, no VLAN tag,
    /// no IP options): a frame to port `L` goes back to port `P` of its source, a frame
    /// from port `P` goes back from port `L`; MACs and addresses swapped, the transport
    /// checksum patched; no maps beyond its read-only ports, no counters, no policy. What reflection costs at the
    /// least: every mode of reflector is reported against it. The ports are set at load
    /// time ([`super::globals`]).
    pub const REFERENCE_REFLECTOR: &str = "reference_reflector";
    /// The default map of [`REFERENCE_REFLECTOR`], `L` and `P` alike: `10022:10022`.
    pub const REFERENCE_PORT: u16 = 10_022;
    /// An XDP program that passes every frame. A veth end only receives `XDP_TX` frames
    /// from its peer when it runs an XDP program itself; this is that program.
    pub const XDP_PASS: &str = "xdp_pass";
}

/// The read-only globals of the reference object, set at load time.
pub mod globals {
    /// `reference_reflector`'s listen port `L` (a `u16`).
    pub const REFERENCE_LISTEN_PORT: &str = "REFERENCE_LISTEN_PORT";
    /// `reference_reflector`'s target port `P` (a `u16`).
    pub const REFERENCE_TARGET_PORT: &str = "REFERENCE_TARGET_PORT";
}

/// The reference object (an eBPF ELF file). Panics when the build did not embed it: a
/// missing object must never look like a passing test.
#[must_use]
pub fn bench_object() -> &'static [u8] {
    #[cfg(bench_ebpf)]
    {
        // aya parses the ELF in place, so it needs the bytes aligned as the file was.
        aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/reflector-bench"))
    }
    #[cfg(not(bench_ebpf))]
    {
        panic!(
            "the benchmark's reference object is not embedded in this build: build \
             reflector-tests with the eBPF toolchain (nightly rustc, rust-src, bpf-linker) so \
             its build script compiles bench-ebpf (and without REFLECTOR_SKIP_EBPF=1)"
        )
    }
}
