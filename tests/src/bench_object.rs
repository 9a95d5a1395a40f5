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
    /// The reference reflector: reflects frames to port 10022 (TCP or UDP, IPv4 or IPv6,
    /// no VLAN tag, no IP options) back to port 10022 of their source, swapping MACs and
    /// addresses and patching the transport checksum; no maps, no counters, no policy. What
    /// reflection costs at the least: every mode of reflector is reported against it.
    pub const REFERENCE_REFLECTOR: &str = "reference_reflector";
    /// The map [`REFERENCE_REFLECTOR`] hard-codes: `10022:10022`.
    pub const REFERENCE_PORT: u16 = 10_022;
    /// An XDP program that passes every frame. A veth end only receives `XDP_TX` frames
    /// from its peer when it runs an XDP program itself; this is that program.
    pub const XDP_PASS: &str = "xdp_pass";
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
