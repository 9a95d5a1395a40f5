//! The verifier's work on each program the daemon loads, on the running kernel: both
//! programs load as the daemon loads them, and each one's processed-instruction count (which
//! kernels report from 5.16, `bpf_prog_info.verified_insns`) leaves at least half of the
//! verifier's budget free, so that growth shows here long before some kernel refuses the
//! program.
//!
//! The count comes from the verifier's own log (`processed N insns`, through
//! `reflector_tests::verifier_log`, on every kernel); where the kernel also reports it for
//! aya's load (`bpf_prog_info.verified_insns`, from 5.16) the two must agree, which shows
//! that the logged load verifies what the daemon's load verifies.
//!
//! Each program's line (the counts, and how long aya's load and the object's parsing took)
//! is printed as `vmtest: prog ...`: `cargo xtask vmtest` collects them per kernel (run with
//! `--nocapture` to see them).
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::time::{Duration, Instant};

use aya::{
    Ebpf, EbpfLoader,
    programs::{ProgramError, SchedClassifier, Xdp},
    util::KernelVersion,
};
use reflector_common::maps::programs;
use reflector_tests::{
    topology::kernel_object,
    verifier_log::{self, ProgramType},
};

/// The most instructions the verifier processes per program before it gives up
/// (`BPF_COMPLEXITY_LIMIT_INSNS`, since 5.2).
const VERIFIER_LIMIT: u32 = 1_000_000;

/// What one program cost the verifier.
struct Verified {
    name: &'static str,
    kind: ProgramType,
    /// `bpf_prog_info.verified_insns` of aya's load; `None` on kernels before 5.16.
    reported: Option<u32>,
    /// The program's size after the verifier's rewrites (`xlated`), in bytes.
    translated: Option<u32>,
    /// How long aya's `BPF_PROG_LOAD` took.
    elapsed: Duration,
}

/// Loads both programs as the daemon does (`AYA_LOG_LEVEL` 0: no debug events); returns
/// the loaded object, what each program cost and how long parsing the object and creating
/// its maps took.
fn load_both() -> (Ebpf, Duration, Vec<Verified>) {
    let started = Instant::now();
    let mut ebpf = EbpfLoader::new()
        .override_global("AYA_LOG_LEVEL", &0_u8, false)
        .load(kernel_object())
        .unwrap_or_else(|e| panic!("loading reflector's kernel object: {e:?}"));
    let object = started.elapsed();
    let mut verified = Vec::new();
    for (name, kind) in [
        (programs::XDP, ProgramType::Xdp),
        (programs::TC, ProgramType::SchedCls),
    ] {
        let program = ebpf
            .program_mut(name)
            .unwrap_or_else(|| panic!("the kernel object has no program {name}"));
        let started = Instant::now();
        let loaded: Result<(), ProgramError> = if name == programs::XDP {
            let xdp: &mut Xdp = program.try_into().expect("reflector_xdp is an XDP program");
            xdp.load()
        } else {
            let tc: &mut SchedClassifier =
                program.try_into().expect("reflector_tc is a TC classifier");
            tc.load()
        };
        let elapsed = started.elapsed();
        loaded.unwrap_or_else(|e| panic!("the verifier rejected {name}: {e:?}"));
        let info = program
            .info()
            .unwrap_or_else(|e| panic!("cannot read {name}'s bpf_prog_info: {e:?}"));
        verified.push(Verified {
            name,
            kind,
            reported: info.verified_instruction_count(),
            translated: info.size_translated(),
            elapsed,
        });
    }
    (ebpf, object, verified)
}

#[test]
fn verifier_accepts_both_programs_with_room_to_spare() {
    let reports_count =
        KernelVersion::current().is_ok_and(|version| version >= KernelVersion::new(5, 16, 0));
    // Timed alone: aya reads the kernel's BTF by default, for CO-RE relocations.
    let started = Instant::now();
    let kernel_btf = aya::Btf::from_sys_fs().map(|_| started.elapsed());
    let (ebpf, object, verified) = load_both();
    let mut problems = Vec::new();
    for program in &verified {
        let stats = verifier_log::verify(&ebpf, kernel_object(), program.name, program.kind)
            .unwrap_or_else(|e| panic!("the logged load of {}: {e}", program.name));
        // `processed N insns (limit ...) max_states_per_insn ...`, and from 5.13
        // `verification time N usec`.
        let summary: Vec<&str> = stats
            .log
            .lines()
            .filter(|line| line.starts_with("processed ") || line.starts_with("verification time"))
            .collect();
        println!(
            "vmtest: prog {}: {} instructions processed ({}); {} bytes translated; aya's load \
             took {} ms, parsing the object and creating its maps {} ms (reading the kernel's \
             BTF alone: {})",
            program.name,
            stats.processed,
            summary.join("; "),
            program
                .translated
                .map_or_else(|| "?".to_owned(), |bytes| bytes.to_string()),
            program.elapsed.as_millis(),
            object.as_millis(),
            kernel_btf.as_ref().map_or_else(
                |e| format!("failed ({e})"),
                |time| format!("{} ms", time.as_millis())
            )
        );
        if stats.processed > VERIFIER_LIMIT / 2 {
            problems.push(format!(
                "{} took {} of the verifier's {VERIFIER_LIMIT} instructions: less than half \
                 its budget is left (simplify the program, or split it with tail calls)",
                program.name, stats.processed
            ));
        }
        match program.reported {
            Some(reported) if reported != stats.processed => problems.push(format!(
                "{}: aya's load processed {reported} instructions, the logged load {}: they \
                 no longer verify the same code (see reflector_tests::verifier_log)",
                program.name, stats.processed
            )),
            None if reports_count => problems.push(format!(
                "{}: a kernel from 5.16 reports the processed-instruction count, this one \
                 did not",
                program.name
            )),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
