//! Differential packet fuzzing (see `reflector_tests::differential`): generated and mutated
//! frames through both kernel programs with `BPF_PROG_TEST_RUN`, every verdict, output
//! byte, counter and flow compared with the reference model of the README's rules, every
//! transmitted frame checked against the invariants.
//!
//! `REFLECTOR_FUZZ_COUNT` frames (default 100,000, what CI runs), from seed
//! `REFLECTOR_FUZZ_SEED` (default: a new one each run, printed), starting at scenario
//! `REFLECTOR_FUZZ_SCENARIO` (default 0). `cargo xtask fuzz --count N [--seed S]
//! [--scenario I]` sets them. Needs root.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::{
    env,
    time::{SystemTime, UNIX_EPOCH},
};

use reflector_tests::{
    differential::{self, Options},
    require_root,
};

/// Frames CI runs.
const DEFAULT_COUNT: u64 = 100_000;

fn env_number(name: &str) -> Option<u64> {
    let value = env::var(name).ok()?;
    Some(
        value
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|e| panic!("{name}={value:?} is not a number: {e}")),
    )
}

#[test]
fn kernel_programs_agree_with_the_model() {
    require_root();
    let seed = env_number("REFLECTOR_FUZZ_SEED").unwrap_or_else(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970");
        now.as_secs() ^ u64::from(now.subsec_nanos()) << 20
    });
    let options = Options {
        count: env_number("REFLECTOR_FUZZ_COUNT").unwrap_or(DEFAULT_COUNT),
        seed,
        first_scenario: env_number("REFLECTOR_FUZZ_SCENARIO").unwrap_or(0),
        frames_per_scenario: Options::FRAMES_PER_SCENARIO,
    };
    println!(
        "differential fuzzing: {} frames, seed {}, from scenario {}",
        options.count, options.seed, options.first_scenario
    );
    let summary = differential::run(&options).unwrap_or_else(|report| panic!("{report}"));
    println!(
        "differential fuzzing: {} frames in {} scenarios, seed {}: every verdict, byte, \
         counter and flow as the model says, at XDP and TC; {:.1} s, {:.0} frames/s\n{}",
        summary.frames,
        summary.scenarios,
        options.seed,
        summary.elapsed.as_secs_f64(),
        summary.frames_per_second(),
        summary.table()
    );
    if options.count >= 10_000 {
        let missing = summary.missing_outcomes();
        assert!(
            missing.is_empty(),
            "the generator never produced these outcomes in {} frames (seed {}): {}",
            options.count,
            options.seed,
            missing.join(", ")
        );
    }
}
