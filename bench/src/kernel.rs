//! Workload 5, the kernel program alone: nanoseconds per packet of `reflector_xdp` and
//! `reflector_tc` on each path, next to `baseline_mac_swap` (swap MACs, `XDP_TX`: the least
//! any XDP reflector does), measured by the kernel through `BPF_PROG_TEST_RUN`.
//!
//! `BPF_PROG_TEST_RUN` with `repeat = N` runs the program N times on one buffer without
//! restoring it, and times the whole loop: exact for the baseline (swapping swapped MACs is
//! the same work), but a reflected frame fed back to the reflector is normally passed, not
//! reflected. So the host is set up so that each path's output is again an input of the
//! same path, and every repetition does the work it is named for:
//!
//! - **forward**: the map `L:L`, and both flows of the pair known (`S:s -> A:L` and its
//!   reflection `A:s -> S:L`): each repetition is a packet of a known flow to a listen
//!   port, as every TCP segment after the SYN is.
//! - **reverse**: `L` is also a target port, and both flows are known (`S:P -> A:s` and its
//!   reflection `A:L -> S:s`): each repetition is a reply of a known flow.
//! - **pass**: a frame to an unmapped port, which every other packet of the host is.
//!
//! A second reference, `baseline_flow_lookup` (IPv4), adds one lookup of a known flow to
//! the MAC swap: the least a reflector with a flow table does per packet. The third,
//! `reference_reflector`, is a whole reflector for one map and nothing else: MACs and
//! addresses swapped, the port rewritten, the checksum patched, no maps, counters or
//! policy. It runs here with its default map, `10022:10022` (so its output is again a
//! frame to `L`), on the forward path; every row is also given as a ratio to it.
//!
//! Without flow state (a map whose target port no other listen port shares, the default),
//! every packet gets the checks of a flow's first packet, the reverse path a socket lookup
//! too; and a reflected frame fed back is from this host's own address, which the checks
//! pass. So those rows are timed as the first packet is, with single calls (see
//! [`Single`]): `forward, stateless`, `reverse, stateless` (segments without SYN), and
//! with admission on, SYN segments, charged against both buckets.
//!
//! Each reflection takes one from the TTL, so a call runs [`REPEAT`] repetitions of a frame
//! with TTL 255, and the counters are checked afterwards: every repetition of every call
//! must have been counted on the path measured. The first packet of a flow (address checks
//! and an LRU insert) cannot be repeated on one buffer; it is timed with single runs and
//! the kernel's per-call overhead taken out (see [`first_packet`]).
//!
//! The repeated paths feed each reflection back to the program, which is what a loop of
//! reflectors does: the loop guard is off on them (it would drop the fifth repetition).
//! Admission (the allow-list and the new-flow rate limits) applies to first packets only,
//! so the first packet is timed twice, side by side: with admission off (every source
//! allowed, no limits) and on (the allow-list enforced, the client inside it among
//! [`ALLOW_PREFIXES`] prefixes, both buckets charged at rates that never refuse).
//!
//! Calls of all rows are interleaved, so a slow spell of the machine hits every row alike;
//! a row's figure is the median over calls of the kernel's mean per repetition.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use reflector_common::{
    AdmissionConfig, Counter, Direction, Family, FlowKey, FlowValue, PassReason, Protocol,
    StatIndex,
    admission::{ADMISSION_ALLOW_LIST, ADMISSION_LOOP_GUARD_OFF},
};
use reflector_tests::bench_object::programs::REFERENCE_PORT;
use reflector_tests::kernel_fixture::{UNMAPPED_PORT, client, host};
use reflector_tests::packets::{Frame, verify_checksums};
use reflector_tests::test_run::{Hook, Kernel, address_key};
use reflector_tests::{EnteredNetns, Netns};
use serde::Serialize;

use crate::summary::{mean, median};

/// Repetitions per call: reflecting takes one from the TTL, which starts at 255 and must
/// stay above 1.
const REPEAT: u32 = 250;
/// Calls per row and round.
const CALLS: usize = 2_000;
/// Single runs per first-packet row and round.
const SINGLE_RUNS: usize = 4_000;
/// The TTL of every frame.
const TTL: u8 = 255;
/// The listen port `L`, mapped to itself (the forward path) and a target port (the
/// reverse path); the reference reflector's port.
const LISTEN: u16 = REFERENCE_PORT;
/// The target port `P` of the reverse path.
const TARGET: u16 = 22;
/// A listen port whose target is [`TARGET`], so that it is a target port.
const OTHER_LISTEN: u16 = 10_023;
/// The client port `s` of the forward path's flows.
const FORWARD_PORT: u16 = 40_000;
/// The client port `s` of the reverse path's flows (another than the forward path's, or
/// the two pairs of flows would share a key).
const REVERSE_PORT: u16 = 40_001;
/// The first client port of the first-packet runs, each from a port of its own.
const FIRST_PACKET_PORTS: u16 = 20_000;
/// The counter slot of the maps.
const SLOT: u16 = 1;
/// Prefixes in each allow-list trie when admission is on, the client's among them.
const ALLOW_PREFIXES: u16 = 256;

/// One program on one path, over one family.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    /// The program.
    pub program: &'static str,
    /// The path (`forward`, `reverse`, `pass (port not mapped)`, `forward, first packet`,
    /// `mac swap`).
    pub path: &'static str,
    /// IP version.
    pub family: &'static str,
    /// ns per packet: the median over calls of the kernel's mean per repetition
    /// (`repeat`), or the mean single call less the baseline's single-call overhead
    /// (`single`).
    pub ns_per_packet: f64,
    /// The figure over the baseline's (same family).
    pub ratio_to_baseline: f64,
    /// The figure over `reference_reflector`'s (same family).
    pub ratio_to_reference: f64,
    /// How it was timed: `repeat` or `single`.
    pub method: &'static str,
    /// Every call's ns per repetition, in order (all rounds).
    pub samples: Vec<f64>,
}

/// The kernel workload's results.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// Repetitions per call.
    pub repeat: u32,
    /// Calls per row and round.
    pub calls: usize,
    /// Rounds.
    pub rounds: u32,
    /// Frame length (bytes) per family: TCP segments with a 20-byte payload.
    pub frame_bytes: Vec<(&'static str, usize)>,
    /// The rows, per family: the baseline, then each hook's paths.
    pub rows: Vec<Row>,
}

/// Which loaded program a row runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Program {
    /// `baseline_mac_swap`.
    Baseline,
    /// `baseline_flow_lookup`.
    FlowLookup,
    /// `reference_reflector`.
    Reference,
    /// A reflector program.
    Reflector(Hook),
}

/// What a row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// `baseline_mac_swap` on a forward frame.
    MacSwap,
    /// `baseline_flow_lookup` on a forward frame whose flow it knows.
    FlowLookup,
    /// `reference_reflector` on a forward frame to its port.
    Reference,
    /// A packet of a known flow to a listen port.
    Forward,
    /// A reply of a known flow.
    Reverse,
    /// A packet to an unmapped port.
    Pass,
}

impl Path {
    const fn name(self) -> &'static str {
        match self {
            Self::MacSwap => "mac swap",
            Self::FlowLookup => "flow lookup + mac swap",
            Self::Reference => "forward (one map)",
            Self::Forward => "forward",
            Self::Reverse => "reverse",
            Self::Pass => "pass (port not mapped)",
        }
    }

    /// The counter every repetition of this path adds to, if any.
    const fn counter(self, family: Family) -> Option<StatIndex> {
        match self {
            Self::MacSwap | Self::FlowLookup | Self::Reference => None,
            Self::Forward => Some(StatIndex::reflected(Direction::Forward, family)),
            Self::Reverse => Some(StatIndex::reflected(Direction::Reverse, family)),
            Self::Pass => Some(StatIndex::passed(PassReason::PortNotMapped)),
        }
    }
}

/// The programs measured. Field order is drop order: the programs (and their XDP links)
/// before the namespace of the interfaces they are attached to.
struct Programs {
    baseline: Kernel,
    flow_lookup: Kernel,
    reference: Kernel,
    xdp: Kernel,
    tc: Kernel,
    ns: Netns,
}

impl Programs {
    /// Loads and sets up the programs; attaches the XDP ones to interfaces that are down,
    /// in a namespace of their own, see [`Kernel::attach_xdp`].
    fn load() -> Self {
        let ns = Netns::new(reflector_tests::names::next_id(), "kb");
        let mut baseline = Kernel::baseline();
        let mut flow_lookup = Kernel::baseline_flow_lookup();
        let mut reference = Kernel::reference_reflector();
        let mut xdp = Kernel::reflector(Hook::Xdp);
        let mut tc = Kernel::reflector(Hook::Tc);
        // Veth pairs left down: interfaces no packet reaches (this kernel has no dummy
        // driver).
        for (a, b) in [("idle0", "idle1"), ("idle2", "idle3"), ("idle4", "idle5")] {
            ns.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        }
        for (kernel, iface) in [
            (&mut baseline, "idle0"),
            (&mut flow_lookup, "idle1"),
            (&mut xdp, "idle2"),
            (&mut reference, "idle4"),
        ] {
            kernel.attach_xdp(&ns, iface);
        }
        // The flow of the forward frame, keyed as the program reads it.
        let (client, host) = (client(Family::V4), host(Family::V4));
        flow_lookup.insert_flow(
            FlowKey::new(
                address_key(client),
                address_key(host),
                FORWARD_PORT,
                LISTEN,
                Protocol::Tcp as u8,
            ),
            FlowValue::new(LISTEN, SLOT),
        );
        for kernel in [&mut xdp, &mut tc] {
            set_up_paths(kernel);
        }
        Self {
            baseline,
            flow_lookup,
            reference,
            xdp,
            tc,
            ns,
        }
    }

    const fn get(&self, program: Program) -> &Kernel {
        match program {
            Program::Baseline => &self.baseline,
            Program::FlowLookup => &self.flow_lookup,
            Program::Reference => &self.reference,
            Program::Reflector(Hook::Xdp) => &self.xdp,
            Program::Reflector(Hook::Tc) => &self.tc,
        }
    }
}

/// The host of the repeated paths, on a reflector program: `L:L` and both flows of a
/// forward pair; `L` and `P` target ports and both flows of a reverse pair; over both
/// families. See the module's documentation.
fn set_up_paths(kernel: &mut Kernel) {
    kernel.set_admission(AdmissionConfig::UNLIMITED.with_flag(ADMISSION_LOOP_GUARD_OFF, true));
    kernel.map_port(Protocol::Tcp, LISTEN, LISTEN, SLOT);
    kernel.map_port(Protocol::Tcp, OTHER_LISTEN, TARGET, SLOT);
    for family in [Family::V4, Family::V6] {
        let (client, host) = (client(family), host(family));
        let forward = FlowValue::new(LISTEN, SLOT);
        kernel.insert_flow(flow_key(client, host, LISTEN, FORWARD_PORT), forward);
        kernel.insert_flow(flow_key(host, client, LISTEN, FORWARD_PORT), forward);
        kernel.insert_flow(
            flow_key(client, host, TARGET, REVERSE_PORT),
            FlowValue::new(LISTEN, SLOT),
        );
        kernel.insert_flow(
            flow_key(host, client, LISTEN, REVERSE_PORT),
            FlowValue::new(TARGET, SLOT),
        );
    }
}

/// A repeated row: its program, path and frame, and its samples so far.
struct Repeated {
    program: Program,
    path: Path,
    family: Family,
    frame: Vec<u8>,
    samples: Vec<f64>,
}

impl Repeated {
    fn new(program: Program, path: Path, family: Family) -> Self {
        let (client, host) = (client(family), host(family));
        let frame = match path {
            Path::MacSwap | Path::FlowLookup | Path::Reference | Path::Forward => {
                tcp(client, FORWARD_PORT, host, LISTEN)
            }
            Path::Reverse => tcp(client, TARGET, host, REVERSE_PORT),
            Path::Pass => tcp(client, FORWARD_PORT, host, UNMAPPED_PORT),
        };
        Self {
            program,
            path,
            family,
            frame,
            samples: Vec::new(),
        }
    }

    fn what(&self) -> String {
        format!(
            "{} {} {}",
            program_name(self.program),
            self.path.name(),
            family_name(self.family)
        )
    }

    /// One call of [`REPEAT`] repetitions; checks the verdict and the frame's checksums.
    fn call(&mut self, programs: &Programs) -> Result<()> {
        let kernel = programs.get(self.program);
        let (run, mean) = kernel.run_repeated(&self.frame, REPEAT);
        let hook = kernel.hook();
        let expected = match self.path {
            Path::Pass => hook.pass_verdict(),
            Path::MacSwap | Path::FlowLookup | Path::Reference | Path::Forward | Path::Reverse => {
                hook.reflect_verdict()
            }
        };
        ensure!(
            run.verdict == expected,
            "{}: verdict {}, expected {}",
            self.what(),
            hook.verdict_name(run.verdict),
            hook.verdict_name(expected)
        );
        if let Err(e) = verify_checksums(&run.output) {
            bail!(
                "{}: the frame left after {REPEAT} repetitions has a bad checksum: {e}",
                self.what()
            );
        }
        self.samples.push(nanos(mean));
        Ok(())
    }
}

/// Checks that every repetition of every call was counted on its path: each counter of
/// each reflector program went up by exactly the repetitions of the rows that count
/// there, and no other counter moved.
fn check_counted(programs: &Programs, rows: &[Repeated]) -> Result<()> {
    for hook in Hook::BOTH {
        let stats = programs.get(Program::Reflector(hook)).stats();
        let mut expected = vec![0_u64; stats.len()];
        for row in rows
            .iter()
            .filter(|row| row.program == Program::Reflector(hook))
        {
            if let Some(index) = row.path.counter(row.family) {
                expected[index.get() as usize] += row.samples.len() as u64 * u64::from(REPEAT);
            }
        }
        let counted: Vec<u64> = stats
            .iter()
            .map(|counter: &Counter| counter.packets)
            .collect();
        ensure!(
            counted == expected,
            "{}: the STATS counters are {counted:?}, expected {expected:?}: some \
             repetitions took another path than the one measured",
            hook.reflector_program()
        );
    }
    Ok(())
}

/// Measures every row, `rounds` times.
///
/// # Errors
/// When a repetition takes another path than the one named, or a frame leaves with a bad
/// checksum. (A program that does not load panics in the test harness.)
pub(crate) fn measure(rounds: u32) -> Result<Report> {
    let programs = Programs::load();
    // The reverse path without flow state looks for this host's own sockets in the
    // namespace of the calling thread: the benchmark's own, which has none.
    let _entered = EnteredNetns::enter(&programs.ns);
    let mut repeated = Vec::new();
    let mut firsts = Vec::new();
    for family in [Family::V4, Family::V6] {
        repeated.push(Repeated::new(Program::Baseline, Path::MacSwap, family));
        repeated.push(Repeated::new(Program::Reference, Path::Reference, family));
        // IPv4 only: it reads IPv4 at fixed offsets.
        if family == Family::V4 {
            repeated.push(Repeated::new(Program::FlowLookup, Path::FlowLookup, family));
        }
        for hook in Hook::BOTH {
            for path in [Path::Forward, Path::Reverse, Path::Pass] {
                repeated.push(Repeated::new(Program::Reflector(hook), path, family));
            }
            for kind in SingleKind::ALL {
                firsts.push(Single::new(hook, family, kind));
            }
        }
    }
    // The single-call overhead, per family: single calls of the baseline, interleaved
    // with the first packets.
    let mut baseline_singles = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for _ in 0..CALLS {
            for row in &mut repeated {
                row.call(&programs)?;
            }
        }
        for first in &mut firsts {
            let baseline = repeated
                .iter()
                .find(|row| row.program == Program::Baseline && row.family == first.family)
                .expect("a baseline per family");
            let singles = &mut baseline_singles[family_index(first.family)];
            first.run(&programs.baseline, &baseline.frame, singles)?;
        }
    }
    check_counted(&programs, &repeated)?;
    let mut rows = Vec::new();
    for family in [Family::V4, Family::V6] {
        let median_of = |program| {
            median(
                &repeated
                    .iter()
                    .find(|row| row.program == program && row.family == family)
                    .expect("a baseline and a reference per family")
                    .samples,
            )
        };
        let baseline = median_of(Program::Baseline);
        let reference = median_of(Program::Reference);
        for row in repeated.iter().filter(|row| row.family == family) {
            let ns = median(&row.samples);
            rows.push(Row {
                program: program_name(row.program),
                path: row.path.name(),
                family: family_name(family),
                ns_per_packet: ns,
                ratio_to_baseline: ns / baseline,
                ratio_to_reference: ns / reference,
                method: "repeat",
                samples: row.samples.clone(),
            });
        }
        let singles = &baseline_singles[family_index(family)];
        for first in firsts.iter().filter(|first| first.family == family) {
            let ns = first.estimate(baseline, singles);
            rows.push(Row {
                program: first.kernel.hook().reflector_program(),
                path: first.path(),
                family: family_name(family),
                ns_per_packet: ns,
                ratio_to_baseline: ns / baseline,
                ratio_to_reference: ns / reference,
                method: "single",
                samples: first.samples.clone(),
            });
        }
    }
    Ok(Report {
        repeat: REPEAT,
        calls: CALLS,
        rounds,
        frame_bytes: [Family::V4, Family::V6]
            .into_iter()
            .map(|family| {
                (
                    family_name(family),
                    tcp(client(family), FORWARD_PORT, host(family), LISTEN).len(),
                )
            })
            .collect(),
        rows,
    })
}

/// What a [`Single`] row times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SingleKind {
    /// The first packet of a flow (flow table), admission off or on.
    FirstPacket { admission: bool },
    /// A forward packet without flow state: admission off, or on with a SYN.
    StatelessForward { admission: bool },
    /// A reply without flow state (a socket lookup finds nothing): admission off, or on
    /// with a SYN-ACK.
    StatelessReverse { admission: bool },
}

impl SingleKind {
    const ALL: [Self; 6] = [
        Self::FirstPacket { admission: false },
        Self::FirstPacket { admission: true },
        Self::StatelessForward { admission: false },
        Self::StatelessForward { admission: true },
        Self::StatelessReverse { admission: false },
        Self::StatelessReverse { admission: true },
    ];

    const fn admission(self) -> bool {
        match self {
            Self::FirstPacket { admission }
            | Self::StatelessForward { admission }
            | Self::StatelessReverse { admission } => admission,
        }
    }

    const fn path(self) -> &'static str {
        match self {
            Self::FirstPacket { admission: false } => "forward, first packet",
            Self::FirstPacket { admission: true } => "forward, first packet, allow-list + limits",
            Self::StatelessForward { admission: false } => "forward, stateless",
            Self::StatelessForward { admission: true } => {
                "forward, stateless, SYN, allow-list + limits"
            }
            Self::StatelessReverse { admission: false } => "reverse, stateless",
            Self::StatelessReverse { admission: true } => {
                "reverse, stateless, SYN-ACK, allow-list + limits"
            }
        }
    }
}

/// A path whose every packet does work that cannot be repeated on one buffer: the first
/// packet of a flow (the address checks and the insert into the LRU flow table, once per
/// flow), and every packet without flow state (its reflection fed back would be from this
/// host's own address). Timed with single calls (first packets each from a new client
/// port); what a single call costs beyond the program is the baseline's single-call time
/// over its repeated one, taken out (see [`Self::estimate`]).
struct Single {
    kernel: Kernel,
    family: Family,
    kind: SingleKind,
    next_port: u16,
    samples: Vec<f64>,
}

impl Single {
    fn new(hook: Hook, family: Family, kind: SingleKind) -> Self {
        let mut kernel = Kernel::reflector(hook);
        reflector_tests::kernel_fixture::configure(&mut kernel);
        match kind {
            SingleKind::FirstPacket { .. } => kernel.map_port(Protocol::Tcp, LISTEN, TARGET, SLOT),
            SingleKind::StatelessForward { .. } | SingleKind::StatelessReverse { .. } => {
                kernel.map_port_stateless(Protocol::Tcp, LISTEN, TARGET, SLOT);
            }
        }
        if kind.admission() {
            // Rates no run can exhaust: every packet charged is charged to both buckets and
            // admitted, so each run is the whole admission path.
            kernel.set_admission(
                AdmissionConfig::DEFAULT
                    .with_source_limit(u32::MAX, u32::MAX)
                    .with_global_limit(u32::MAX, u32::MAX)
                    .with_flag(ADMISSION_ALLOW_LIST, true),
            );
            for i in 0..ALLOW_PREFIXES {
                let [hi, lo] = i.to_be_bytes();
                kernel.allow(IpAddr::from([10, hi, lo, 0]), 24);
                kernel.allow(IpAddr::from([0x2001, 0xdb8, 0xf000, i, 0, 0, 0, 0]), 64);
            }
            let client_prefix = match family {
                Family::V4 => 24,
                Family::V6 => 64,
            };
            kernel.allow(client(family), client_prefix);
        } else {
            kernel.set_admission(AdmissionConfig::UNLIMITED);
        }
        Self {
            kernel,
            family,
            kind,
            next_port: FIRST_PACKET_PORTS,
            samples: Vec::new(),
        }
    }

    /// The frame of the next run.
    fn frame(&mut self) -> Vec<u8> {
        let (client, host) = (client(self.family), host(self.family));
        let segment = match self.kind {
            SingleKind::FirstPacket { .. } => {
                let port = self.next_port;
                self.next_port = self.next_port.checked_add(1).unwrap_or(FIRST_PACKET_PORTS);
                Frame::tcp(client, port, host, LISTEN)
            }
            SingleKind::StatelessForward { .. } => Frame::tcp(client, FORWARD_PORT, host, LISTEN),
            SingleKind::StatelessReverse { .. } => Frame::tcp(client, TARGET, host, REVERSE_PORT),
        };
        let segment = segment.with_ttl(TTL);
        match self.kind {
            SingleKind::StatelessForward { admission: true }
            | SingleKind::StatelessReverse { admission: true } => segment.with_syn(),
            _ => segment,
        }
        .bytes()
    }

    /// [`SINGLE_RUNS`] runs, each followed by a single run of `baseline` on
    /// `baseline_frame`, whose times go to `baseline_singles`.
    fn run(
        &mut self,
        baseline: &Kernel,
        baseline_frame: &[u8],
        baseline_singles: &mut Vec<f64>,
    ) -> Result<()> {
        let hook = self.kernel.hook();
        for _ in 0..SINGLE_RUNS {
            let frame = self.frame();
            let (run, duration) = self.kernel.run_repeated(&frame, 1);
            ensure!(
                run.verdict == hook.reflect_verdict(),
                "{} {} {}: verdict {}",
                hook.reflector_program(),
                self.kind.path(),
                family_name(self.family),
                hook.verdict_name(run.verdict)
            );
            self.samples.push(nanos(duration));
            let (_, duration) = baseline.run_repeated(baseline_frame, 1);
            baseline_singles.push(nanos(duration));
        }
        let stats = self.kernel.stats();
        let created = stats[StatIndex::FLOWS_CREATED.get() as usize].packets;
        let (direction, flows) = match self.kind {
            SingleKind::FirstPacket { .. } => (Direction::Forward, self.samples.len() as u64),
            SingleKind::StatelessForward { .. } => (Direction::Forward, 0),
            SingleKind::StatelessReverse { .. } => (Direction::Reverse, 0),
        };
        let reflected = stats[StatIndex::reflected(direction, self.family).get() as usize].packets;
        ensure!(
            created == flows && reflected == self.samples.len() as u64,
            "{} {} {}: {created} flows created and {reflected} reflected {direction:?} in {} \
             runs: some runs took another path",
            hook.reflector_program(),
            self.kind.path(),
            family_name(self.family),
            self.samples.len()
        );
        Ok(())
    }

    /// The row's path.
    const fn path(&self) -> &'static str {
        self.kind.path()
    }

    /// The cost per packet: its mean single-call time, less what a single call of the
    /// baseline costs beyond the baseline's repeated time. Means, not medians: the kernel
    /// reports single calls in clock ticks too coarse for a median to resolve.
    fn estimate(&self, baseline_repeated: f64, baseline_singles: &[f64]) -> f64 {
        mean(&self.samples) - (mean(baseline_singles) - baseline_repeated)
    }
}

const fn program_name(program: Program) -> &'static str {
    match program {
        Program::Baseline => "baseline_mac_swap",
        Program::FlowLookup => "baseline_flow_lookup",
        Program::Reference => "reference_reflector",
        Program::Reflector(hook) => hook.reflector_program(),
    }
}

const fn family_index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// A TCP segment with TTL [`TTL`].
fn tcp(src: IpAddr, source_port: u16, dst: IpAddr, destination_port: u16) -> Vec<u8> {
    Frame::tcp(src, source_port, dst, destination_port)
        .with_ttl(TTL)
        .bytes()
}

/// The flow key a forward packet from `remote:remote_port` to `local` records for target
/// port `target`.
fn flow_key(remote: IpAddr, local: IpAddr, target: u16, remote_port: u16) -> FlowKey {
    FlowKey::new(
        address_key(remote),
        address_key(local),
        target,
        remote_port,
        Protocol::Tcp as u8,
    )
}

const fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "a per-packet duration is far below 2^52 ns"
)]
fn nanos(duration: Duration) -> f64 {
    duration.as_nanos() as f64
}
