//! Cost per packet of `reflector_xdp` (forward and reverse) and of `baseline_mac_swap`,
//! measured by the kernel through `BPF_PROG_TEST_RUN`. A measurement, not a test: it prints
//! numbers and asserts nothing about time. Run it (as root) with
//!
//! ```text
//! cargo test --test kernel_bench -- --ignored --nocapture
//! ```
//!
//! Two methods, because `BPF_PROG_TEST_RUN` with `repeat = N` runs the program N times on
//! ONE buffer without restoring it:
//!
//! - `repeat`: one call with `repeat = 1_000_000`; the kernel's mean per repetition. Exact
//!   for `baseline_mac_swap` (swapping swapped addresses is the same work). For the
//!   reflector only the first repetition reflects: the reflected frame (to the client, from
//!   this host) is then passed by every later one, so this is the cost of that pass path.
//!   The STATS of the run are printed to show which path ran.
//! - `single`: `SAMPLES` calls with `repeat = 1` on the original frame; the median and mean
//!   of the kernel's duration. Every sample runs the path named, but includes the kernel's
//!   timer overhead of one run (about `single - repeat` of the baseline, printed; the
//!   `med - ovh` rows subtract it).

#[path = "kernel/fixture.rs"]
#[allow(
    dead_code,
    reason = "shared with the kernel tests, which use all of it"
)]
mod fixture;
#[path = "kernel/harness.rs"]
#[allow(
    dead_code,
    reason = "shared with the kernel tests, which use all of it"
)]
mod harness;
#[path = "kernel/packets.rs"]
#[allow(
    dead_code,
    reason = "shared with the kernel tests, which use all of it"
)]
mod packets;

use std::time::Duration;

use reflector_common::{Counter, Direction, Family, PassReason, Protocol, StatIndex};

use crate::harness::{Hook, Kernel};

/// Repetitions of the `repeat` method.
const REPEAT: u32 = 1_000_000;
/// Calls of the `single` method.
const SAMPLES: usize = 100_000;

#[test]
#[ignore = "a measurement, not a test: run with --ignored --nocapture"]
fn kernel_ns_per_packet() {
    let forward = fixture::forward(Protocol::Udp, Family::V4).bytes();
    let reverse = fixture::reverse(Protocol::Udp, Family::V4).bytes();

    println!(
        "BPF_PROG_TEST_RUN cost per packet: IPv4 UDP frames of {} bytes, {REPEAT} repetitions \
         (repeat) or {SAMPLES} single runs (single)",
        forward.len()
    );
    println!(
        "{:<44} {:>12} {:>12}",
        "program / path", "method", "ns/packet"
    );

    let baseline = Kernel::baseline();
    let (_, repeat_ns) = baseline.run_repeated(&forward, REPEAT);
    print_row("baseline_mac_swap", "repeat", ns(repeat_ns));
    let (median, mean) = single(&baseline, &forward, Hook::Xdp, None);
    print_row("baseline_mac_swap", "single med", median);
    print_row("baseline_mac_swap", "single mean", mean);
    // What one run costs the `single` method beyond the program: the baseline's two methods
    // run the same work.
    let overhead = median - ns(repeat_ns);
    println!("    (single-run overhead, baseline single med - repeat: {overhead:.1} ns)");

    for hook in Hook::BOTH {
        let program = hook.reflector_program();

        let kernel = configured(hook);
        let before = kernel.stats();
        let (run, repeat_ns) = kernel.run_repeated(&forward, REPEAT);
        let after = kernel.stats();
        print_row(
            &format!("{program} forward, then its output"),
            "repeat",
            ns(repeat_ns),
        );
        println!(
            "    (last verdict {}; STATS of that run: {})",
            hook.verdict_name(run.verdict),
            stats_delta(&before, &after)
        );

        let kernel = configured(hook);
        let (median, mean) = single(&kernel, &forward, hook, None);
        print_row(&format!("{program} forward"), "single med", median);
        print_row(&format!("{program} forward"), "single mean", mean);
        print_row(
            &format!("{program} forward"),
            "med - ovh",
            median - overhead,
        );

        let kernel = configured(hook);
        let (median, mean) = single(&kernel, &reverse, hook, Some(&forward));
        print_row(&format!("{program} reverse"), "single med", median);
        print_row(&format!("{program} reverse"), "single mean", mean);
        print_row(
            &format!("{program} reverse"),
            "med - ovh",
            median - overhead,
        );
    }
}

/// A reflector program at `hook` with the fixture host.
fn configured(hook: Hook) -> Kernel {
    let mut kernel = Kernel::reflector(hook);
    fixture::configure(&mut kernel);
    kernel
}

/// Median and mean kernel duration of `SAMPLES` single runs of `frame`, after `prelude`
/// once. Every run must give the reflect verdict, or the numbers would be of another path.
fn single(kernel: &Kernel, frame: &[u8], hook: Hook, prelude: Option<&[u8]>) -> (f64, f64) {
    if let Some(prelude) = prelude {
        let run = kernel.run(prelude);
        assert_eq!(
            run.verdict,
            hook.reflect_verdict(),
            "the prelude frame must be reflected"
        );
    }
    let mut samples: Vec<u64> = (0..SAMPLES)
        .map(|_| {
            let (run, duration) = kernel.run_repeated(frame, 1);
            assert_eq!(
                run.verdict,
                hook.reflect_verdict(),
                "measuring the reflect path, but the frame was not reflected"
            );
            u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
        })
        .collect();
    samples.sort_unstable();
    let total: u64 = samples.iter().sum();
    #[expect(
        clippy::cast_precision_loss,
        reason = "nanosecond sums and counts far below 2^52"
    )]
    let (median, mean) = (samples[SAMPLES / 2] as f64, total as f64 / SAMPLES as f64);
    (median, mean)
}

#[expect(
    clippy::cast_precision_loss,
    reason = "a per-packet duration is far below 2^52 ns"
)]
fn ns(duration: Duration) -> f64 {
    duration.as_nanos() as f64
}

fn print_row(what: &str, method: &str, ns: f64) {
    println!("{what:<44} {method:>12} {ns:>12.1}");
}

/// The STATS counters that changed between `before` and `after`.
fn stats_delta(before: &[Counter], after: &[Counter]) -> String {
    let mut names: Vec<(u32, String)> = PassReason::ALL
        .into_iter()
        .map(|reason| {
            (
                StatIndex::passed(reason).get(),
                format!("passed/{}", reason.name()),
            )
        })
        .collect();
    for direction in [Direction::Forward, Direction::Reverse] {
        for family in [Family::V4, Family::V6] {
            names.push((
                StatIndex::reflected(direction, family).get(),
                format!("reflected/{direction:?}/{family:?}"),
            ));
        }
    }
    names.push((StatIndex::FLOWS_CREATED.get(), "flows_created".to_owned()));
    names.push((
        StatIndex::FLOW_INSERT_FAILED.get(),
        "flow_insert_failed".to_owned(),
    ));
    names
        .into_iter()
        .filter_map(|(index, name)| {
            let index = index as usize;
            let packets = after[index].packets - before[index].packets;
            (packets != 0).then(|| format!("{name} +{packets}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
