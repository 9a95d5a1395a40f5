//! Differential packet fuzzing: generated frames ([`crate::framegen`]) go through both
//! kernel programs (XDP and TC) with `BPF_PROG_TEST_RUN`, and each program's verdict, output
//! bytes, counters and flow table must equal the reference model's ([`crate::model`]);
//! every transmitted frame must also pass [`crate::invariants::check_transmitted`].
//!
//! Frames come in scenarios: a random host state (port maps, addresses, recorded flows)
//! set in both programs' maps, then [`Options::frames_per_scenario`] frames. Verdicts and
//! bytes are compared frame by frame; counters and flows at the end of each scenario (a
//! read per counter is a system call), and when they differ the scenario is run again
//! checking them after every frame, to name the frame. A failure prints the seed, the
//! scenario, the frame in hex, and the command that replays it.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    io::ErrorKind,
    net::IpAddr,
    time::{Duration, Instant},
};

use aya::{programs::ProgramError, sys::SyscallError};
use reflector_common::{
    AdmissionConfig, Counter, Direction, DropReason, Family, FlowKey, FlowValue, MapStatIndex,
    PORT_FLAG_LISTEN_STATELESS, PORT_FLAG_STATELESS, PORT_FLAG_TARGET, PassReason, PortEntry,
    Protocol, STATS_LEN, StatIndex,
    admission::{ADMISSION_ALLOW_LIST, ADMISSION_FLOW_TABLE_ALWAYS},
    maps::MAP_STATS_LEN,
};

use crate::enter::EnteredNetns;
use crate::hexdump::{byte_diff, hex};
use crate::names;
use crate::netns::Netns;
use crate::{
    framegen::{self, BROADCAST_POOL_V4, HOST_POOL_V4, HOST_POOL_V6, Rng, Scenario},
    invariants::check_transmitted,
    model::{AddressKind, Handled, Host, Outcome, Reflection},
    test_run::{Hook, Kernel},
};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Frames in all (each through both programs).
    pub count: u64,
    /// The seed of the whole run.
    pub seed: u64,
    /// The index of the first scenario (to replay one from a failure report).
    pub first_scenario: u64,
    /// Frames per scenario.
    pub frames_per_scenario: u64,
}

impl Options {
    /// Frames per scenario unless told otherwise.
    pub const FRAMES_PER_SCENARIO: u64 = 1000;
}

/// What a run saw.
#[derive(Debug, Default)]
pub struct Summary {
    /// Frames run (each through both programs).
    pub frames: u64,
    /// Scenarios run.
    pub scenarios: u64,
    /// Frames the model reflected, by direction and family.
    pub reflected: HashMap<(Direction, Family), u64>,
    /// Frames the model passed, by reason.
    pub passed: HashMap<PassReason, u64>,
    /// Frames the model dropped, by reason.
    pub dropped: HashMap<DropReason, u64>,
    /// Frames the TC program could not be run on (the kernel refuses an IP ethertype
    /// without a full fixed IP header for skb programs).
    pub tc_refused: u64,
    /// Transmitted frames checked against the invariants.
    pub invariants_checked: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Summary {
    /// Frames per second (each through both programs and the model).
    #[must_use]
    #[expect(
        clippy::cast_precision_loss,
        reason = "a rate to print; counts stay far below 2^52"
    )]
    pub fn frames_per_second(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The outcomes a run of this size must have seen, if the generator works: both
    /// directions and families reflected, every pass reason, and the drop reasons the model
    /// knows (rate limits depend on time and are off; a rewrite never fails in a test run).
    #[must_use]
    pub fn missing_outcomes(&self) -> Vec<String> {
        let mut missing = Vec::new();
        for direction in [Direction::Forward, Direction::Reverse] {
            for family in [Family::V4, Family::V6] {
                if !self.reflected.contains_key(&(direction, family)) {
                    missing.push(format!("reflected {direction:?} {family:?}"));
                }
            }
        }
        for reason in PassReason::ALL {
            if !self.passed.contains_key(&reason) {
                missing.push(format!("passed {}", reason.name()));
            }
        }
        for reason in [DropReason::SourceNotAllowed, DropReason::LoopDetected] {
            if !self.dropped.contains_key(&reason) {
                missing.push(format!("dropped {}", reason.name()));
            }
        }
        missing
    }

    /// The counts as a table.
    #[must_use]
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut reflected: Vec<_> = self.reflected.iter().collect();
        reflected.sort_by_key(|(key, _)| format!("{key:?}"));
        for ((direction, family), count) in reflected {
            let _ = writeln!(out, "  reflected {direction:?} {family:?}: {count}");
        }
        for reason in PassReason::ALL {
            let count = self.passed.get(&reason).copied().unwrap_or(0);
            let _ = writeln!(out, "  passed {}: {count}", reason.name());
        }
        for reason in DropReason::ALL {
            let count = self.dropped.get(&reason).copied().unwrap_or(0);
            let _ = writeln!(out, "  dropped {}: {count}", reason.name());
        }
        let _ = write!(
            out,
            "  transmitted frames checked against the invariants: {}\n  frames the TC \
             test run refuses (skb needs a full IP header): {}",
            self.invariants_checked, self.tc_refused
        );
        out
    }
}

/// One program under test, with what the model expects its counters to show.
struct Subject {
    hook: Hook,
    kernel: Kernel,
    /// `MAP_STATS` as the model expects it, cumulated over the run (it starts at zero).
    map_stats: HashMap<u32, Counter>,
    /// The `LOOP_MEMORY` slots the model says the program wrote since they were cleared.
    loop_slots: HashSet<u32>,
}

/// Counters expected to move in one scenario.
#[derive(Default)]
struct Expected {
    stats: HashMap<u32, Counter>,
    map_stats: HashMap<u32, Counter>,
    flows_created: u64,
}

impl Expected {
    fn count(&mut self, handled: &Handled, bytes: u64) {
        let add = |counters: &mut HashMap<u32, Counter>, index: u32| {
            let counter = counters.entry(index).or_default();
            counter.packets += 1;
            counter.bytes += bytes;
        };
        match &handled.outcome {
            Outcome::Pass(reason) => add(&mut self.stats, StatIndex::passed(*reason).get()),
            Outcome::Drop(reason) => add(&mut self.stats, StatIndex::dropped(*reason).get()),
            Outcome::Reflect(reflection) => {
                add(
                    &mut self.stats,
                    StatIndex::reflected(reflection.direction, reflection.family).get(),
                );
                add(
                    &mut self.map_stats,
                    MapStatIndex::new(reflection.map_slot, reflection.direction, reflection.family)
                        .get(),
                );
            }
        }
        self.flows_created += u64::from(handled.flow_created);
    }
}

/// Runs `options.count` frames; `Err` is the report of the first disagreement.
///
/// # Errors
/// The first frame on which a program and the model disagree, or which breaks an
/// invariant, with everything needed to replay it.
pub fn run(options: &Options) -> Result<Summary, String> {
    let started = Instant::now();
    // The programs look for this host's own sockets in the namespace of the thread that
    // runs them; the model's host has none. A namespace of its own has none either, where
    // the test process's might (a listener on a port the frames use).
    let ns = Netns::new(names::next_id(), "fz");
    let _entered = EnteredNetns::enter(&ns);
    let mut subjects: Vec<Subject> = Hook::BOTH
        .into_iter()
        .map(|hook| Subject {
            hook,
            kernel: Kernel::reflector(hook),
            map_stats: HashMap::new(),
            loop_slots: HashSet::new(),
        })
        .collect();
    let mut summary = Summary::default();
    let mut previous: Option<Host> = None;
    let mut remaining = options.count;
    let mut index = options.first_scenario;
    while remaining > 0 {
        let frames = remaining.min(options.frames_per_scenario);
        let scenario = Scenario::random(&mut Rng::for_scenario(options.seed, index));
        let context = ScenarioContext {
            options,
            index,
            frames,
        };
        match context.run(
            &mut subjects,
            previous.as_ref(),
            &scenario,
            false,
            &mut summary,
        ) {
            Ok(()) => {}
            Err(Failure::Frame(report)) => return Err(report),
            Err(Failure::Counters(report)) => {
                // Name the frame: run the scenario again, counters checked after each one.
                let mut scratch = Summary::default();
                let detail = match context.run(
                    &mut subjects,
                    Some(&scenario.host),
                    &scenario,
                    true,
                    &mut scratch,
                ) {
                    Ok(()) => String::new(),
                    Err(Failure::Frame(detail) | Failure::Counters(detail)) => {
                        format!("\n\nrun again, counters checked after every frame:\n{detail}")
                    }
                };
                return Err(format!("{report}{detail}"));
            }
        }
        previous = Some(scenario.host);
        remaining -= frames;
        index += 1;
        summary.scenarios += 1;
        summary.frames += frames;
    }
    for subject in &subjects {
        check_all_map_stats(subject).map_err(|problem| {
            format!(
                "seed {}: at the end of the run, {}: {problem}",
                options.seed,
                subject.hook.reflector_program()
            )
        })?;
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// The whole of `MAP_STATS` against what the model expects over the run (per scenario
/// only the slots it uses are read).
fn check_all_map_stats(subject: &Subject) -> Result<(), String> {
    let actual = subject.kernel.map_stats();
    let wrong: Vec<String> = (0..MAP_STATS_LEN)
        .filter_map(|index| {
            let expected = subject.map_stats.get(&index).copied().unwrap_or_default();
            let found = actual[index as usize];
            (found != expected)
                .then(|| format!("MAP_STATS[{index}] is {found:?}, expected {expected:?}"))
        })
        .collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// How a scenario failed.
enum Failure {
    /// A frame's verdict or bytes, or an invariant (the report names the frame).
    Frame(String),
    /// The counters or flows at the end of the scenario (the report names no frame).
    Counters(String),
}

/// One scenario of a run.
struct ScenarioContext<'a> {
    options: &'a Options,
    index: u64,
    frames: u64,
}

impl ScenarioContext<'_> {
    /// Sets the scenario's state in every program and runs its frames; `strict` checks
    /// the counters and flows after every frame.
    fn run(
        &self,
        subjects: &mut [Subject],
        previous: Option<&Host>,
        scenario: &Scenario,
        strict: bool,
        summary: &mut Summary,
    ) -> Result<(), Failure> {
        for subject in subjects.iter_mut() {
            configure(&mut subject.kernel, previous, &scenario.host);
            // Each scenario starts with an empty loop memory, as the model's host does.
            for index in subject.loop_slots.drain() {
                subject.kernel.set_loop_slot(index, 0);
            }
        }
        let mut rng = Rng::for_scenario(self.options.seed, self.index);
        // The same stream the scenario was drawn from, past the scenario.
        let _ = Scenario::random(&mut rng);
        let mut model = scenario.host.clone();
        let slots = slots_of(&model);
        let mut before: Vec<(Vec<Counter>, Vec<Counter>)> = subjects
            .iter()
            .map(|subject| read_counters(&subject.kernel, &slots))
            .collect();
        let mut expected: Vec<Expected> = subjects.iter().map(|_| Expected::default()).collect();
        for frame_index in 0..self.frames {
            let frame = framegen::frame(&mut rng, &model);
            let handled = model.handle(&frame);
            record(summary, &handled);
            if let Outcome::Reflect(Reflection {
                loop_slot: Some((index, _)),
                ..
            }) = &handled.outcome
            {
                for subject in subjects.iter_mut() {
                    subject.loop_slots.insert(*index);
                }
            }
            for (subject, expected) in subjects.iter_mut().zip(&mut expected) {
                let problem = match run_frame(subject, &frame, &handled, &scenario.host) {
                    Ok(FrameRun::Ran { invariants_checked }) => {
                        expected.count(&handled, frame.len() as u64);
                        if !strict {
                            summary.invariants_checked += u64::from(invariants_checked);
                        }
                        None
                    }
                    Ok(FrameRun::Refused) => {
                        if !strict {
                            summary.tc_refused += 1;
                        }
                        None
                    }
                    Err(problem) => Some(problem),
                };
                if let Some(problem) = problem {
                    return Err(Failure::Frame(self.report(
                        subject.hook,
                        frame_index,
                        &frame,
                        &handled,
                        scenario,
                        &problem,
                    )));
                }
            }
            if strict {
                for (i, subject) in subjects.iter_mut().enumerate() {
                    if let Err(problem) =
                        check_counters(subject, &slots, &before[i], &expected[i], &model, strict)
                    {
                        return Err(Failure::Frame(self.report(
                            subject.hook,
                            frame_index,
                            &frame,
                            &handled,
                            scenario,
                            &format!("after this frame: {problem}"),
                        )));
                    }
                    before[i] = read_counters(&subject.kernel, &slots);
                    expected[i] = Expected::default();
                }
            }
        }
        if !strict {
            for (i, subject) in subjects.iter_mut().enumerate() {
                check_counters(subject, &slots, &before[i], &expected[i], &model, strict).map_err(
                    |problem| {
                        Failure::Counters(format!(
                            "seed {} scenario {} ({} frames): at the end, {}: {problem}\n{}",
                            self.options.seed,
                            self.index,
                            self.frames,
                            subject.hook.reflector_program(),
                            describe(scenario)
                        ))
                    },
                )?;
            }
        }
        Ok(())
    }

    /// A failure report for `frame`, the `frame_index`th of the scenario, at `hook`.
    fn report(
        &self,
        hook: Hook,
        frame_index: u64,
        frame: &[u8],
        handled: &Handled,
        scenario: &Scenario,
        problem: &str,
    ) -> String {
        format!(
            "differential fuzzing: {} disagrees with the model\n  seed {} scenario {} frame {} \
             (replay: cargo xtask fuzz --seed {} --scenario {} --count {})\n  problem: \
             {problem}\n  the model says: {}\n  frame ({} bytes):\n{}\n{}",
            hook.reflector_program(),
            self.options.seed,
            self.index,
            frame_index,
            self.options.seed,
            self.index,
            frame_index + 1,
            describe_outcome(&handled.outcome),
            frame.len(),
            hex(frame),
            describe(scenario),
        )
    }
}

/// How one frame went at one program.
enum FrameRun {
    /// The program ran and agreed with the model.
    Ran {
        /// Whether a transmitted frame was checked against the invariants.
        invariants_checked: bool,
    },
    /// The kernel refused to run a TC program on the frame (see [`skb_test_run_refuses`]).
    Refused,
}

/// Runs `frame` through `subject` and compares the verdict and bytes with the model's.
fn run_frame(
    subject: &Subject,
    frame: &[u8],
    handled: &Handled,
    host: &Host,
) -> Result<FrameRun, String> {
    let hook = subject.hook;
    let run = match subject.kernel.try_run(frame) {
        Ok(run) => run,
        Err(ProgramError::SyscallError(SyscallError { io_error, .. }))
            if hook == Hook::Tc
                && skb_test_run_refuses(frame)
                && io_error.kind() == ErrorKind::InvalidInput =>
        {
            return Ok(FrameRun::Refused);
        }
        Err(error) => return Err(format!("BPF_PROG_TEST_RUN failed: {error:?}")),
    };
    let (verdict, output) = match &handled.outcome {
        Outcome::Reflect(reflection) => (hook.reflect_verdict(), &reflection.output[..]),
        Outcome::Pass(_) => (hook.pass_verdict(), frame),
        Outcome::Drop(_) => (hook.drop_verdict(), frame),
    };
    let mut problems = Vec::new();
    if run.verdict != verdict {
        problems.push(format!(
            "verdict {}, the model's is {}",
            hook.verdict_name(run.verdict),
            hook.verdict_name(verdict)
        ));
    }
    if run.output != output {
        problems.push(format!(
            "output differs from the model's: {}",
            byte_diff(output, &run.output)
        ));
    }
    let transmitted = run.verdict == hook.reflect_verdict();
    if transmitted {
        if let Err(problem) = check_transmitted(frame, &run.output, host) {
            problems.push(format!("transmitted frame breaks an invariant: {problem}"));
        }
    }
    if problems.is_empty() {
        Ok(FrameRun::Ran {
            invariants_checked: transmitted,
        })
    } else {
        Err(problems.join("\n    "))
    }
}

/// Whether the kernel's `BPF_PROG_TEST_RUN` refuses `frame` for skb (TC) programs: an
/// untagged IPv4 (IPv6) ethertype with fewer than 20 (40) bytes after the Ethernet header
/// (it reads the addresses for the test socket and checks they are there).
fn skb_test_run_refuses(frame: &[u8]) -> bool {
    match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 => frame.len() < 14 + 20,
        0x86dd => frame.len() < 14 + 40,
        _ => false,
    }
}

/// Counts what the model decided, for the summary.
fn record(summary: &mut Summary, handled: &Handled) {
    match &handled.outcome {
        Outcome::Reflect(reflection) => {
            *summary
                .reflected
                .entry((reflection.direction, reflection.family))
                .or_default() += 1;
        }
        Outcome::Pass(reason) => *summary.passed.entry(*reason).or_default() += 1,
        Outcome::Drop(reason) => *summary.dropped.entry(*reason).or_default() += 1,
    }
}

/// Sets `host`'s port maps, addresses, flows and allow-list in `kernel`, clearing what
/// `previous` set. The rate limits are off (see [`Host::allow`]).
fn configure(kernel: &mut Kernel, previous: Option<&Host>, host: &Host) {
    let enforced = host.allow.is_some();
    kernel.set_admission(
        AdmissionConfig::UNLIMITED
            .with_flag(ADMISSION_ALLOW_LIST, enforced)
            .with_flag(ADMISSION_FLOW_TABLE_ALWAYS, host.flow_table_forced),
    );
    for &(prefix, len) in previous
        .and_then(|previous| previous.allow.as_ref())
        .into_iter()
        .flatten()
    {
        kernel.disallow(prefix, u32::from(len));
    }
    for &(prefix, len) in host.allow.iter().flatten() {
        kernel.allow(prefix, u32::from(len));
    }
    if let Some(previous) = previous {
        for map in &previous.maps {
            kernel.set_port_entry(map.protocol, map.listen, PortEntry::default());
            kernel.set_port_entry(map.protocol, map.target, PortEntry::default());
        }
    }
    // As the control plane writes them: a target one listen port maps to, and not itself a
    // listen port, is marked stateless (the forced flow table is the admission flag's
    // business, not the table's).
    let mut listeners: HashMap<(Protocol, u16), usize> = HashMap::new();
    for map in &host.maps {
        *listeners.entry((map.protocol, map.target)).or_default() += 1;
    }
    let mut entries: HashMap<(Protocol, u16), PortEntry> = HashMap::new();
    for map in &host.maps {
        let unique = listeners[&(map.protocol, map.target)] == 1
            && !host
                .maps
                .iter()
                .any(|other| other.protocol == map.protocol && other.listen == map.target);
        let listen = entries.entry((map.protocol, map.listen)).or_default();
        listen.target_port = map.target;
        listen.map_slot = map.slot;
        if unique {
            listen.flags |= PORT_FLAG_LISTEN_STATELESS;
        }
        let target = entries.entry((map.protocol, map.target)).or_default();
        target.flags |= PORT_FLAG_TARGET;
        if unique {
            target.flags |= PORT_FLAG_STATELESS;
            target.stateless_listen = map.listen;
            target.map_slot = map.slot;
        }
    }
    for ((protocol, port), entry) in entries {
        kernel.set_port_entry(protocol, port, entry);
    }
    let pool = HOST_POOL_V4
        .iter()
        .chain(&BROADCAST_POOL_V4)
        .map(|addr| IpAddr::V4(*addr))
        .chain(HOST_POOL_V6.iter().map(|addr| IpAddr::V6(*addr)));
    for addr in pool {
        kernel.remove_address(addr);
    }
    for (addr, kind) in &host.addresses {
        let kind = match kind {
            AddressKind::Local => reflector_common::addr_kind::LOCAL,
            AddressKind::Broadcast => reflector_common::addr_kind::BROADCAST,
        };
        kernel.add_address(*addr, kind);
    }
    kernel.clear_flows();
    for (flow, value) in &host.flows {
        kernel.insert_flow(flow.key(), *value);
    }
}

/// The counter slots `host` can count in: its maps' and its flows'.
fn slots_of(host: &Host) -> Vec<u16> {
    let mut slots: Vec<u16> = host
        .maps
        .iter()
        .map(|map| map.slot)
        .chain(host.flows.values().map(|value| value.map_slot))
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots
}

/// The `MAP_STATS` indices of `slots`.
fn map_indices(slots: &[u16]) -> Vec<u32> {
    slots
        .iter()
        .flat_map(|slot| {
            [Direction::Forward, Direction::Reverse]
                .into_iter()
                .flat_map(move |direction| {
                    [Family::V4, Family::V6]
                        .into_iter()
                        .map(move |family| MapStatIndex::new(*slot, direction, family).get())
                })
        })
        .collect()
}

/// Every `STATS` counter, and the `MAP_STATS` counters of `slots`.
fn read_counters(kernel: &Kernel, slots: &[u16]) -> (Vec<Counter>, Vec<Counter>) {
    (kernel.stats(), kernel.map_stats_at(&map_indices(slots)))
}

/// Compares what the counters and the flow table of `subject` did since `before` with
/// `expected`, and its flow table with the model's.
fn check_counters(
    subject: &mut Subject,
    slots: &[u16],
    before: &(Vec<Counter>, Vec<Counter>),
    expected: &Expected,
    model: &Host,
    strict: bool,
) -> Result<(), String> {
    let (stats, map_stats) = read_counters(&subject.kernel, slots);
    let mut problems = Vec::new();
    for index in 0..STATS_LEN {
        let found = delta(&before.0[index as usize], &stats[index as usize]);
        if index == StatIndex::FLOWS_CREATED.get() {
            if found.packets != expected.flows_created {
                problems.push(format!(
                    "flows_created went up by {}, the model created {}",
                    found.packets, expected.flows_created
                ));
            }
            continue;
        }
        let wanted = expected.stats.get(&index).copied().unwrap_or_default();
        if found != wanted {
            problems.push(format!(
                "STATS[{}] went up by {} packets / {} bytes, the model's {} / {}",
                stat_name(index),
                found.packets,
                found.bytes,
                wanted.packets,
                wanted.bytes
            ));
        }
    }
    for (i, index) in map_indices(slots).into_iter().enumerate() {
        let found = delta(&before.1[i], &map_stats[i]);
        let wanted = expected.map_stats.get(&index).copied().unwrap_or_default();
        if found != wanted {
            problems.push(format!(
                "MAP_STATS[{index}] went up by {} packets / {} bytes, the model's {} / {}",
                found.packets, found.bytes, wanted.packets, wanted.bytes
            ));
        }
    }
    let flows = subject.kernel.flows();
    let model_flows: HashMap<FlowKey, FlowValue> = model
        .flows
        .iter()
        .map(|(flow, value)| (flow.key(), *value))
        .collect();
    if flows != model_flows {
        let missing: Vec<String> = model_flows
            .iter()
            .filter(|(key, value)| flows.get(key) != Some(value))
            .map(|(key, value)| format!("{key:?} -> {value:?}"))
            .collect();
        let extra: Vec<String> = flows
            .iter()
            .filter(|(key, value)| model_flows.get(key) != Some(value))
            .map(|(key, value)| format!("{key:?} -> {value:?}"))
            .collect();
        problems.push(format!(
            "the flow table differs from the model's: the program lacks [{}] and has [{}]",
            missing.join(", "),
            extra.join(", ")
        ));
    }
    let loop_memory: Vec<String> = model
        .loop_memory
        .iter()
        .filter_map(|(&index, slot)| {
            let wanted = slot.kernel_value();
            let found = subject.kernel.loop_slot(index);
            (found != wanted)
                .then(|| format!("slot {index} is {found:#x}, the model's {wanted:#x}"))
        })
        .collect();
    if !loop_memory.is_empty() {
        problems.push(format!(
            "the loop memory differs from the model's: {}",
            loop_memory.join(", ")
        ));
    }
    if problems.is_empty() {
        if !strict {
            for (index, counter) in &expected.map_stats {
                let total = subject.map_stats.entry(*index).or_default();
                total.packets += counter.packets;
                total.bytes += counter.bytes;
            }
        }
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn delta(before: &Counter, after: &Counter) -> Counter {
    Counter {
        packets: after.packets.wrapping_sub(before.packets),
        bytes: after.bytes.wrapping_sub(before.bytes),
    }
}

/// A readable name for a `STATS` index.
#[must_use]
pub fn stat_name(index: u32) -> String {
    if let Some(reason) = PassReason::ALL
        .into_iter()
        .find(|reason| StatIndex::passed(*reason).get() == index)
    {
        return format!("passed/{}", reason.name());
    }
    if let Some(reason) = DropReason::ALL
        .into_iter()
        .find(|reason| StatIndex::dropped(*reason).get() == index)
    {
        return format!("dropped/{}", reason.name());
    }
    for direction in [Direction::Forward, Direction::Reverse] {
        for family in [Family::V4, Family::V6] {
            if StatIndex::reflected(direction, family).get() == index {
                return format!("reflected/{direction:?}/{family:?}");
            }
        }
    }
    if index == StatIndex::FLOWS_CREATED.get() {
        return "flows_created".to_owned();
    }
    if index == StatIndex::FLOW_INSERT_FAILED.get() {
        return "flow_insert_failed".to_owned();
    }
    format!("#{index}")
}

fn describe_outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Pass(reason) => format!("pass ({})", reason.name()),
        Outcome::Drop(reason) => format!("drop ({})", reason.name()),
        Outcome::Reflect(reflection) => format!(
            "reflect {:?} {:?}, map slot {}, recording {:?}, leaving as:\n{}",
            reflection.direction,
            reflection.family,
            reflection.map_slot,
            reflection.flow,
            hex(&reflection.output)
        ),
    }
}

/// The scenario's state, for a report.
fn describe(scenario: &Scenario) -> String {
    let host = &scenario.host;
    let maps: Vec<String> = host
        .maps
        .iter()
        .map(|map| {
            format!(
                "{}:{}/{} (slot {})",
                map.listen,
                map.target,
                map.protocol.name(),
                map.slot
            )
        })
        .collect();
    let mut addresses: Vec<String> = host
        .addresses
        .iter()
        .map(|(addr, kind)| format!("{addr} ({kind:?})"))
        .collect();
    addresses.sort();
    let flows: Vec<String> = host
        .flows
        .iter()
        .map(|(flow, value)| format!("{flow:?} -> {value:?}"))
        .collect();
    let allow = host.allow.as_ref().map_or_else(
        || "every source".to_owned(),
        |allow| {
            let prefixes: Vec<String> = allow
                .iter()
                .map(|(prefix, len)| format!("{prefix}/{len}"))
                .collect();
            format!("only [{}]", prefixes.join(", "))
        },
    );
    format!(
        "  scenario: maps {}; addresses {}; flows recorded before the first frame: [{}]; \
         allowed sources: {allow}; flow table forced: {}",
        maps.join(", "),
        addresses.join(", "),
        flows.join(", "),
        host.flow_table_forced
    )
}
