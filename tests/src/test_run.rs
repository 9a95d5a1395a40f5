//! Loads reflector's kernel object (or the benchmark's reference object) and runs one of its
//! programs through `BPF_PROG_TEST_RUN`, with typed access to the maps the kernel tests and
//! the benchmark fill and read.
//!
//! Every [`Kernel`] is its own `Ebpf` instance with its own (unpinned) maps, so tests never
//! see each other's state.

use std::{collections::HashMap as StdHashMap, net::IpAddr, time::Duration};

use crate::{
    bench_object::{self, bench_object},
    topology::kernel_object,
};
use aya::{
    Ebpf, EbpfLoader,
    maps::{
        Array, HashMap, MapData, MapError, PerCpuArray,
        lpm_trie::{Key as LpmKey, LpmTrie},
    },
    programs::{ProgramError, SchedClassifier, TestRun, TestRunOptions, Xdp, XdpMode},
    sys::SyscallError,
};
use reflector::ebpf_object::load_retrying;
use reflector_common::{
    AdmissionConfig, Counter, FlowKey, FlowValue, PORT_FLAG_LISTEN_STATELESS, PORT_FLAG_STATELESS,
    PORT_FLAG_TARGET, PortEntry, Protocol, STATS_LEN, maps, maps::MAP_STATS_LEN, port_index,
    v4_mapped,
};

/// `XDP_PASS`.
const XDP_PASS: u32 = 2;
/// `XDP_TX`.
const XDP_TX: u32 = 3;
/// `XDP_DROP`.
const XDP_DROP: u32 = 1;
/// `TC_ACT_SHOT`.
const TC_ACT_SHOT: u32 = 2;
/// `TC_ACT_OK`.
const TC_ACT_OK: u32 = 0;
/// `TC_ACT_REDIRECT`.
const TC_ACT_REDIRECT: u32 = 7;

/// Room for the program's output frame beyond the input's length (a program never grows a
/// reflected frame, but a too-small buffer would turn a bug into `ENOSPC`).
const OUTPUT_SLACK: usize = 256;

/// The hook a program runs at; decides the verdict numbers and how the program is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// An XDP program.
    Xdp,
    /// A `SchedClassifier` (TC clsact) program.
    Tc,
}

impl Hook {
    /// Both hooks: every table case runs at each.
    pub const BOTH: [Self; 2] = [Self::Xdp, Self::Tc];

    /// The reflector program of this hook.
    #[must_use]
    pub const fn reflector_program(self) -> &'static str {
        match self {
            Self::Xdp => maps::programs::XDP,
            Self::Tc => maps::programs::TC,
        }
    }

    /// The verdict of a reflected packet: `XDP_TX`, or `TC_ACT_REDIRECT` (a redirect to the
    /// ingress interface's egress).
    #[must_use]
    pub const fn reflect_verdict(self) -> u32 {
        match self {
            Self::Xdp => XDP_TX,
            Self::Tc => TC_ACT_REDIRECT,
        }
    }

    /// The verdict of a packet passed to the stack: `XDP_PASS`, or `TC_ACT_OK`.
    #[must_use]
    pub const fn pass_verdict(self) -> u32 {
        match self {
            Self::Xdp => XDP_PASS,
            Self::Tc => TC_ACT_OK,
        }
    }

    /// The verdict of a dropped packet: `XDP_DROP`, or `TC_ACT_SHOT`.
    #[must_use]
    pub const fn drop_verdict(self) -> u32 {
        match self {
            Self::Xdp => XDP_DROP,
            Self::Tc => TC_ACT_SHOT,
        }
    }

    /// A readable name for a verdict number of this hook.
    #[must_use]
    pub fn verdict_name(self, verdict: u32) -> String {
        let name = match (self, verdict) {
            (Self::Xdp, 0) => "XDP_ABORTED",
            (Self::Xdp, XDP_DROP) => "XDP_DROP",
            (Self::Xdp, XDP_PASS) => "XDP_PASS",
            (Self::Xdp, XDP_TX) => "XDP_TX",
            (Self::Xdp, 4) => "XDP_REDIRECT",
            (Self::Tc, TC_ACT_OK) => "TC_ACT_OK",
            (Self::Tc, TC_ACT_SHOT) => "TC_ACT_SHOT",
            (Self::Tc, TC_ACT_REDIRECT) => "TC_ACT_REDIRECT",
            (Self::Tc, u32::MAX) => "TC_ACT_UNSPEC",
            _ => "unknown",
        };
        format!("{verdict} ({name})")
    }
}

/// What one test run of a program returned.
#[derive(Debug)]
pub struct Run {
    /// The program's return value.
    pub verdict: u32,
    /// The frame as the program left it.
    pub output: Vec<u8>,
}

/// One loaded program of the kernel object or of the reference object, in its own `Ebpf`
/// instance.
#[derive(Debug)]
pub struct Kernel {
    ebpf: Ebpf,
    program: &'static str,
    hook: Hook,
}

impl Kernel {
    /// Loads the reflector program of `hook`, with empty maps.
    #[must_use]
    pub fn reflector(hook: Hook) -> Self {
        Self::load(kernel_object(), hook.reflector_program(), hook)
    }

    /// Loads `baseline_mac_swap` (XDP) from the reference object.
    #[must_use]
    pub fn baseline() -> Self {
        Self::load(
            bench_object(),
            bench_object::programs::BASELINE_MAC_SWAP,
            Hook::Xdp,
        )
    }

    /// Loads `reference_reflector` (XDP) from the reference object, with its default map
    /// ([`bench_object::programs::REFERENCE_PORT`] to itself).
    #[must_use]
    pub fn reference_reflector() -> Self {
        Self::load(
            bench_object(),
            bench_object::programs::REFERENCE_REFLECTOR,
            Hook::Xdp,
        )
    }

    /// Loads `reference_reflector` (XDP) from the reference object for the map
    /// `listen:target`, written into its read-only globals at load time.
    #[must_use]
    pub fn reference_reflector_for(listen: u16, target: u16) -> Self {
        use bench_object::globals::{REFERENCE_LISTEN_PORT, REFERENCE_TARGET_PORT};
        Self::load_with(
            bench_object(),
            bench_object::programs::REFERENCE_REFLECTOR,
            Hook::Xdp,
            &[
                (REFERENCE_LISTEN_PORT, listen),
                (REFERENCE_TARGET_PORT, target),
            ],
        )
    }

    /// Loads `baseline_flow_lookup` (XDP) from the reference object, with an empty flow
    /// table.
    #[must_use]
    pub fn baseline_flow_lookup() -> Self {
        Self::load(
            bench_object(),
            bench_object::programs::BASELINE_FLOW_LOOKUP,
            Hook::Xdp,
        )
    }

    fn load(object: &[u8], program: &'static str, hook: Hook) -> Self {
        Self::load_with(object, program, hook, &[])
    }

    /// Loads `program` with each of `globals` (name, value) written into the object's
    /// read-only data; a global the object lacks is an error, not a default kept.
    fn load_with(
        object: &[u8],
        program: &'static str,
        hook: Hook,
        globals: &[(&str, u16)],
    ) -> Self {
        let mut loader = EbpfLoader::new();
        // As the daemon loads it without debug logging: aya-log's level 0 keeps the
        // program from writing an event per new flow.
        loader.override_global("AYA_LOG_LEVEL", &0_u8, false);
        for (name, value) in globals {
            loader.override_global(name, value, true);
        }
        let mut ebpf = loader
            .load(object)
            .unwrap_or_else(|e| panic!("loading the object holding {program}: {e:?}"));
        let prog = ebpf
            .program_mut(program)
            .unwrap_or_else(|| panic!("the object has no program named {program}"));
        match hook {
            Hook::Xdp => {
                let xdp: &mut Xdp = prog
                    .try_into()
                    .unwrap_or_else(|e| panic!("{program} is not an XDP program: {e:?}"));
                load_retrying(|| xdp.load())
                    .unwrap_or_else(|e| panic!("the verifier rejected {program}: {e:?}"));
            }
            Hook::Tc => {
                let tc: &mut SchedClassifier = prog
                    .try_into()
                    .unwrap_or_else(|e| panic!("{program} is not a TC classifier: {e:?}"));
                load_retrying(|| tc.load())
                    .unwrap_or_else(|e| panic!("the verifier rejected {program}: {e:?}"));
            }
        }
        Self {
            ebpf,
            program,
            hook,
        }
    }

    /// The hook of the loaded program.
    #[must_use]
    pub const fn hook(&self) -> Hook {
        self.hook
    }

    /// The port table, to write.
    fn ports(&mut self) -> Array<&mut MapData, PortEntry> {
        Array::try_from(
            self.ebpf
                .map_mut(maps::PORTS)
                .unwrap_or_else(|| panic!("the kernel object has no map {}", maps::PORTS)),
        )
        .unwrap_or_else(|e| panic!("{} is not an array of PortEntry: {e:?}", maps::PORTS))
    }

    /// Maps listen port `listen` of `protocol` to target port `target`, counted in counter
    /// slot `slot`, as the control plane does: the listen entry gets the target and the
    /// slot, the target entry gets [`PORT_FLAG_TARGET`].
    pub fn map_port(&mut self, protocol: Protocol, listen: u16, target: u16, slot: u16) {
        let mut ports = self.ports();
        let listen_index = port_index(protocol, listen);
        let target_index = port_index(protocol, target);
        let mut entry = ports.get(&listen_index, 0).expect("reading PORTS");
        entry.target_port = target;
        entry.map_slot = slot;
        ports
            .set(listen_index, entry, 0)
            .expect("writing the listen entry of PORTS");
        let mut entry = ports.get(&target_index, 0).expect("reading PORTS");
        entry.flags |= PORT_FLAG_TARGET;
        ports
            .set(target_index, entry, 0)
            .expect("writing the target entry of PORTS");
    }

    /// Maps `listen` to `target` as [`Self::map_port`] does, as the control plane writes a
    /// map whose target port no other listen port shares: the listen entry gets
    /// [`PORT_FLAG_LISTEN_STATELESS`], the target entry [`PORT_FLAG_STATELESS`] and
    /// `listen` as the port its replies leave from.
    pub fn map_port_stateless(&mut self, protocol: Protocol, listen: u16, target: u16, slot: u16) {
        self.map_port(protocol, listen, target, slot);
        let mut ports = self.ports();
        let listen_index = port_index(protocol, listen);
        let target_index = port_index(protocol, target);
        let mut entry = ports.get(&listen_index, 0).expect("reading PORTS");
        entry.flags |= PORT_FLAG_LISTEN_STATELESS;
        ports
            .set(listen_index, entry, 0)
            .expect("writing the listen entry of PORTS");
        let mut entry = ports.get(&target_index, 0).expect("reading PORTS");
        entry.flags |= PORT_FLAG_STATELESS;
        entry.stateless_listen = listen;
        entry.map_slot = slot;
        ports
            .set(target_index, entry, 0)
            .expect("writing the target entry of PORTS");
    }

    /// Writes the port-table entry of (`protocol`, `port`) as it is: the differential
    /// fuzzer sets and clears whole entries between scenarios.
    pub fn set_port_entry(&mut self, protocol: Protocol, port: u16, entry: PortEntry) {
        let mut ports = self.ports();
        ports
            .set(port_index(protocol, port), entry, 0)
            .expect("writing PORTS");
    }

    /// Forgets `addr` as one of this host's addresses (nothing happens if it was not one).
    pub fn remove_address(&mut self, addr: IpAddr) {
        let mut addrs: HashMap<&mut MapData, [u8; 16], u32> = HashMap::try_from(
            self.ebpf
                .map_mut(maps::LOCAL_ADDRS)
                .unwrap_or_else(|| panic!("the kernel object has no map {}", maps::LOCAL_ADDRS)),
        )
        .unwrap_or_else(|e| panic!("{} is not a hash map: {e:?}", maps::LOCAL_ADDRS));
        match addrs.remove(&address_key(addr)) {
            Ok(()) => {}
            Err(MapError::SyscallError(SyscallError { io_error, .. }))
                if io_error.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing {addr} from LOCAL_ADDRS: {e:?}"),
        }
    }

    /// Empties `FLOWS`.
    pub fn clear_flows(&mut self) {
        let mut flows: HashMap<&mut MapData, FlowKey, FlowValue> = HashMap::try_from(
            self.ebpf
                .map_mut(maps::FLOWS)
                .unwrap_or_else(|| panic!("the kernel object has no map {}", maps::FLOWS)),
        )
        .unwrap_or_else(|e| panic!("{} is not a hash map of flows: {e:?}", maps::FLOWS));
        let keys: Vec<FlowKey> = flows
            .keys()
            .map(|key| key.expect("reading the keys of FLOWS"))
            .collect();
        for key in keys {
            flows.remove(&key).expect("removing an entry of FLOWS");
        }
    }

    /// Records `addr` as one of this host's addresses, of kind `kind`
    /// ([`reflector_common::addr_kind`]).
    pub fn add_address(&mut self, addr: IpAddr, kind: u32) {
        let mut addrs: HashMap<&mut MapData, [u8; 16], u32> = HashMap::try_from(
            self.ebpf
                .map_mut(maps::LOCAL_ADDRS)
                .unwrap_or_else(|| panic!("the kernel object has no map {}", maps::LOCAL_ADDRS)),
        )
        .unwrap_or_else(|e| panic!("{} is not a hash map: {e:?}", maps::LOCAL_ADDRS));
        addrs
            .insert(address_key(addr), kind, 0)
            .expect("writing LOCAL_ADDRS");
    }

    /// Attaches the (XDP) program to `iface` in `ns` in generic mode until this is
    /// dropped. An attached program stays in the kernel's XDP dispatcher, so a
    /// `BPF_PROG_TEST_RUN` with `repeat > 1` need not patch it in and out (about 15 ms
    /// per call here); the benchmark attaches to an interface that is down, so no
    /// traffic reaches it.
    pub fn attach_xdp(&mut self, ns: &crate::Netns, iface: &str) {
        self.attach_xdp_in_mode(ns, iface, XdpMode::Skb);
    }

    /// Attaches the (XDP) program to `iface` in `ns` in driver (native) mode until this
    /// is dropped, as `reflector --mode xdp` attaches: the benchmark runs the reference
    /// reflector so.
    pub fn attach_xdp_native(&mut self, ns: &crate::Netns, iface: &str) {
        self.attach_xdp_in_mode(ns, iface, XdpMode::Driver);
    }

    fn attach_xdp_in_mode(&mut self, ns: &crate::Netns, iface: &str, mode: XdpMode) {
        let _in_ns = crate::EnteredNetns::enter(ns);
        let program: &mut Xdp = self
            .ebpf
            .program_mut(self.program)
            .unwrap_or_else(|| panic!("the kernel object has no program named {}", self.program))
            .try_into()
            .unwrap_or_else(|e| panic!("{} is not an XDP program: {e:?}", self.program));
        program.attach(iface, mode).unwrap_or_else(|e| {
            panic!(
                "cannot attach {} to {iface} ({mode:?}): {e:?}",
                self.program
            )
        });
    }

    /// Records the flow `key -> value` in `FLOWS`, as a forward packet of that flow
    /// would.
    pub fn insert_flow(&mut self, key: FlowKey, value: FlowValue) {
        let mut flows: HashMap<&mut MapData, FlowKey, FlowValue> = HashMap::try_from(
            self.ebpf
                .map_mut(maps::FLOWS)
                .unwrap_or_else(|| panic!("the kernel object has no map {}", maps::FLOWS)),
        )
        .unwrap_or_else(|e| panic!("{} is not a hash map of flows: {e:?}", maps::FLOWS));
        flows.insert(key, value, 0).expect("writing FLOWS");
    }

    /// Writes the admission configuration (allow-list switch, rate limits, loop-guard
    /// switch), as the control plane does.
    pub fn set_admission(&mut self, config: AdmissionConfig) {
        let mut admission: Array<&mut MapData, AdmissionConfig> = Array::try_from(
            self.ebpf
                .map_mut(maps::ADMISSION)
                .unwrap_or_else(|| panic!("the kernel object has no map {}", maps::ADMISSION)),
        )
        .unwrap_or_else(|e| {
            panic!(
                "{} is not an array of AdmissionConfig: {e:?}",
                maps::ADMISSION
            )
        });
        admission.set(0, config, 0).expect("writing ADMISSION");
    }

    /// Adds `addr/prefix_len` to the allow-list of its family (whether the list is
    /// enforced is [`Self::set_admission`]'s).
    pub fn allow(&mut self, addr: IpAddr, prefix_len: u32) {
        match addr {
            IpAddr::V4(v4) => {
                let mut trie: LpmTrie<&mut MapData, [u8; 4], u32> =
                    LpmTrie::try_from(self.ebpf.map_mut(maps::ALLOW_V4).unwrap_or_else(|| {
                        panic!("the kernel object has no map {}", maps::ALLOW_V4)
                    }))
                    .unwrap_or_else(|e| panic!("{} is not an LPM trie: {e:?}", maps::ALLOW_V4));
                trie.insert(&LpmKey::new(prefix_len, v4.octets()), 1, 0)
                    .expect("writing ALLOW_V4");
            }
            IpAddr::V6(v6) => {
                let mut trie: LpmTrie<&mut MapData, [u8; 16], u32> =
                    LpmTrie::try_from(self.ebpf.map_mut(maps::ALLOW_V6).unwrap_or_else(|| {
                        panic!("the kernel object has no map {}", maps::ALLOW_V6)
                    }))
                    .unwrap_or_else(|e| panic!("{} is not an LPM trie: {e:?}", maps::ALLOW_V6));
                trie.insert(&LpmKey::new(prefix_len, v6.octets()), 1, 0)
                    .expect("writing ALLOW_V6");
            }
        }
    }

    /// Removes `addr/prefix_len` from the allow-list of its family (nothing happens if it
    /// was not there).
    pub fn disallow(&mut self, addr: IpAddr, prefix_len: u32) {
        let result = match addr {
            IpAddr::V4(v4) => {
                let mut trie: LpmTrie<&mut MapData, [u8; 4], u32> =
                    LpmTrie::try_from(self.ebpf.map_mut(maps::ALLOW_V4).unwrap_or_else(|| {
                        panic!("the kernel object has no map {}", maps::ALLOW_V4)
                    }))
                    .unwrap_or_else(|e| panic!("{} is not an LPM trie: {e:?}", maps::ALLOW_V4));
                trie.remove(&LpmKey::new(prefix_len, v4.octets()))
            }
            IpAddr::V6(v6) => {
                let mut trie: LpmTrie<&mut MapData, [u8; 16], u32> =
                    LpmTrie::try_from(self.ebpf.map_mut(maps::ALLOW_V6).unwrap_or_else(|| {
                        panic!("the kernel object has no map {}", maps::ALLOW_V6)
                    }))
                    .unwrap_or_else(|e| panic!("{} is not an LPM trie: {e:?}", maps::ALLOW_V6));
                trie.remove(&LpmKey::new(prefix_len, v6.octets()))
            }
        };
        match result {
            Ok(()) => {}
            Err(MapError::SyscallError(SyscallError { io_error, .. }))
                if io_error.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing {addr}/{prefix_len} from the allow-list: {e:?}"),
        }
    }

    /// Runs the program once on `frame`.
    #[must_use]
    pub fn run(&self, frame: &[u8]) -> Run {
        self.run_repeated(frame, 1).0
    }

    /// Runs the program once on `frame`; `Err` when `BPF_PROG_TEST_RUN` itself refuses the
    /// frame (the program never ran).
    ///
    /// # Errors
    /// The syscall's error.
    pub fn try_run(&self, frame: &[u8]) -> Result<Run, ProgramError> {
        self.try_run_repeated(frame, 1).map(|(run, _)| run)
    }

    /// Runs the program `repeat` times in the kernel on `frame`; returns the frame as the
    /// last repetition left it and the kernel's mean duration of one repetition. The kernel
    /// reuses one buffer for every repetition: from the second one on, the program sees the
    /// frame as the previous repetition left it.
    #[must_use]
    pub fn run_repeated(&self, frame: &[u8], repeat: u32) -> (Run, Duration) {
        self.try_run_repeated(frame, repeat).unwrap_or_else(|e| {
            panic!(
                "BPF_PROG_TEST_RUN of {} on a {}-byte frame failed: {e:?}",
                self.program,
                frame.len()
            )
        })
    }

    fn try_run_repeated(&self, frame: &[u8], repeat: u32) -> Result<(Run, Duration), ProgramError> {
        let mut output = vec![0; frame.len() + OUTPUT_SLACK];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut output),
            repeat,
            ..TestRunOptions::default()
        };
        let program = self
            .ebpf
            .program(self.program)
            .unwrap_or_else(|| panic!("the kernel object has no program named {}", self.program));
        let result = match self.hook {
            Hook::Xdp => {
                let xdp: &Xdp = program.try_into().expect("the program was loaded as XDP");
                xdp.test_run(opts)
            }
            Hook::Tc => {
                let tc: &SchedClassifier = program
                    .try_into()
                    .expect("the program was loaded as a TC classifier");
                tc.test_run(opts)
            }
        }?;
        output.truncate(result.data_size_out as usize);
        let run = Run {
            verdict: result.return_value,
            output,
        };
        Ok((run, result.duration))
    }

    /// Every counter of `STATS`, summed over CPUs, by index.
    #[must_use]
    pub fn stats(&self) -> Vec<Counter> {
        self.counters(maps::STATS, STATS_LEN)
    }

    /// Every counter of `MAP_STATS`, summed over CPUs, by index.
    #[must_use]
    pub fn map_stats(&self) -> Vec<Counter> {
        self.counters(maps::MAP_STATS, MAP_STATS_LEN)
    }

    /// The counters of `MAP_STATS` at `indices` (summed over CPUs), in that order.
    #[must_use]
    pub fn map_stats_at(&self, indices: &[u32]) -> Vec<Counter> {
        self.counters_at(maps::MAP_STATS, indices)
    }

    /// The first `len` counters of the per-CPU array `name`, summed over CPUs.
    fn counters(&self, name: &str, len: u32) -> Vec<Counter> {
        self.counters_at(name, &(0..len).collect::<Vec<_>>())
    }

    /// The counters of the per-CPU array `name` at `indices`, summed over CPUs.
    fn counters_at(&self, name: &str, indices: &[u32]) -> Vec<Counter> {
        let stats: PerCpuArray<&MapData, Counter> = PerCpuArray::try_from(
            self.ebpf
                .map(name)
                .unwrap_or_else(|| panic!("the kernel object has no map {name}")),
        )
        .unwrap_or_else(|e| panic!("{name} is not a per-CPU array of Counter: {e:?}"));
        indices
            .iter()
            .map(|&index| {
                let per_cpu = stats
                    .get(&index, 0)
                    .unwrap_or_else(|e| panic!("reading {name}[{index}]: {e:?}"));
                per_cpu.iter().fold(Counter::default(), |sum, cpu| Counter {
                    packets: sum.packets + cpu.packets,
                    bytes: sum.bytes + cpu.bytes,
                })
            })
            .collect()
    }

    /// Source prefixes with a rate-limit bucket in `SOURCE_BUCKETS`.
    #[must_use]
    pub fn source_buckets(&self) -> usize {
        let buckets: HashMap<&MapData, [u8; 16], u64> =
            HashMap::try_from(self.ebpf.map(maps::SOURCE_BUCKETS).unwrap_or_else(|| {
                panic!("the kernel object has no map {}", maps::SOURCE_BUCKETS)
            }))
            .unwrap_or_else(|e| panic!("{} is not a hash map: {e:?}", maps::SOURCE_BUCKETS));
        buckets.keys().flatten().count()
    }

    /// Every entry of `FLOWS`.
    #[must_use]
    pub fn flows(&self) -> StdHashMap<FlowKey, FlowValue> {
        let flows: HashMap<&MapData, FlowKey, FlowValue> = HashMap::try_from(
            self.ebpf
                .map(maps::FLOWS)
                .unwrap_or_else(|| panic!("the kernel object has no map {}", maps::FLOWS)),
        )
        .unwrap_or_else(|e| panic!("{} is not a hash map of flows: {e:?}", maps::FLOWS));
        flows
            .iter()
            .map(|entry| entry.expect("reading FLOWS"))
            .collect()
    }

    /// The loop-memory slot `index` (`LOOP_MEMORY`).
    #[must_use]
    pub fn loop_slot(&self, index: u32) -> u64 {
        let memory: Array<&MapData, u64> = Array::try_from(
            self.ebpf
                .map(maps::LOOP_MEMORY)
                .unwrap_or_else(|| panic!("the kernel object has no map {}", maps::LOOP_MEMORY)),
        )
        .unwrap_or_else(|e| panic!("{} is not an array of u64: {e:?}", maps::LOOP_MEMORY));
        memory.get(&index, 0).expect("reading LOOP_MEMORY")
    }

    /// Writes the loop-memory slot `index`: the differential fuzzer clears the slots a
    /// scenario used before the next.
    pub fn set_loop_slot(&mut self, index: u32, value: u64) {
        let mut memory: Array<&mut MapData, u64> = Array::try_from(
            self.ebpf
                .map_mut(maps::LOOP_MEMORY)
                .unwrap_or_else(|| panic!("the kernel object has no map {}", maps::LOOP_MEMORY)),
        )
        .unwrap_or_else(|e| panic!("{} is not an array of u64: {e:?}", maps::LOOP_MEMORY));
        memory.set(index, value, 0).expect("writing LOOP_MEMORY");
    }
}

/// The key of `addr` in `LOCAL_ADDRS` and in flow keys: IPv4 as IPv4-mapped IPv6.
#[must_use]
pub const fn address_key(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4_mapped(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}
