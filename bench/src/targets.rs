//! The targets issues 5 and 17 set, checked against a run's figures: each a ratio of a
//! contender's figure to a reference's (the direct path under the same NIC setting, the
//! reference reflector, or the seed's Python tool).

use std::fmt::Write as _;

use crate::contender::Contender;
use crate::report::{KernelOutcome, Results};
use crate::workload::Workload;

/// The kernel modes.
const KERNEL: &[Contender] = &[
    Contender::Tc,
    Contender::Xdp,
    Contender::XdpSkb,
    Contender::Auto,
];

/// The kernel modes that run on the reference reflector's NIC setting (`nic-like`): the
/// only ones its ratios judge. TC and `auto` (TC on a veth) run on the plain veth with TSO,
/// where the reference cannot run; their `× ref` cells are shown, not judged.
const SAME_NIC_AS_REFERENCE: &[Contender] = &[Contender::Xdp, Contender::XdpSkb];

/// Which way a ratio must go.
#[derive(Clone, Copy, Debug)]
enum Bound {
    /// At least this (more is better: rates, throughput).
    AtLeast(f64),
    /// At most this (less is better: latency).
    AtMost(f64),
}

/// One target: `contenders`' figure `key` on `workload`, over `reference`'s, within `bound`.
struct Target {
    contenders: &'static [Contender],
    workload: Workload,
    key: &'static str,
    what: &'static str,
    reference: Contender,
    bound: Bound,
}

/// The least every kernel mode keeps of the reference reflector's connections/s and
/// throughput (issue 17).
const OF_REFERENCE: f64 = 0.97;

/// The targets, in the issues' order.
const TARGETS: &[Target] = &[
    Target {
        contenders: KERNEL,
        workload: Workload::Connect,
        key: "conn_per_s",
        what: "connections/s",
        reference: Contender::Direct,
        bound: Bound::AtLeast(0.95),
    },
    Target {
        contenders: KERNEL,
        workload: Workload::Bulk,
        key: "gbit_per_s",
        what: "throughput",
        reference: Contender::Direct,
        bound: Bound::AtLeast(0.9),
    },
    Target {
        contenders: KERNEL,
        workload: Workload::BulkReverse,
        key: "gbit_per_s",
        what: "throughput (reverse)",
        reference: Contender::Direct,
        bound: Bound::AtLeast(0.9),
    },
    Target {
        contenders: KERNEL,
        workload: Workload::Rr,
        key: "p50_us",
        what: "request/response p50",
        reference: Contender::Direct,
        bound: Bound::AtMost(1.1),
    },
    Target {
        contenders: SAME_NIC_AS_REFERENCE,
        workload: Workload::Connect,
        key: "conn_per_s",
        what: "connections/s",
        reference: Contender::Reference,
        bound: Bound::AtLeast(OF_REFERENCE),
    },
    Target {
        contenders: SAME_NIC_AS_REFERENCE,
        workload: Workload::Bulk,
        key: "gbit_per_s",
        what: "throughput",
        reference: Contender::Reference,
        bound: Bound::AtLeast(OF_REFERENCE),
    },
    Target {
        contenders: SAME_NIC_AS_REFERENCE,
        workload: Workload::BulkReverse,
        key: "gbit_per_s",
        what: "throughput (reverse)",
        reference: Contender::Reference,
        bound: Bound::AtLeast(OF_REFERENCE),
    },
    Target {
        contenders: &[Contender::Splice],
        workload: Workload::Connect,
        key: "conn_per_s",
        what: "connections/s",
        reference: Contender::Python,
        bound: Bound::AtLeast(1.5),
    },
    Target {
        contenders: &[Contender::Splice],
        workload: Workload::Bulk,
        key: "gbit_per_s",
        what: "throughput",
        reference: Contender::Python,
        bound: Bound::AtLeast(5.0),
    },
    Target {
        contenders: &[Contender::Splice],
        workload: Workload::BulkReverse,
        key: "gbit_per_s",
        what: "throughput (reverse)",
        reference: Contender::Python,
        bound: Bound::AtLeast(5.0),
    },
    Target {
        contenders: &[Contender::Splice],
        workload: Workload::Rr,
        key: "p50_us",
        what: "request/response p50",
        reference: Contender::Direct,
        bound: Bound::AtMost(1.3),
    },
];

/// The targets section: a row per target and contender that has both figures.
pub(crate) fn markdown(results: &Results) -> String {
    let mut rows = String::new();
    for target in TARGETS {
        for &contender in target.contenders {
            let nic = contender.nic();
            // The direct path under the contender's NIC setting; another contender under
            // its own.
            let reference_nic = if target.reference == Contender::Direct {
                nic
            } else {
                target.reference.nic()
            };
            let (Some(value), Some(reference)) = (
                results.figure(contender, nic, target.workload, target.key),
                results.figure(target.reference, reference_nic, target.workload, target.key),
            ) else {
                continue;
            };
            if reference <= 0.0 {
                continue;
            }
            let ratio = value / reference;
            let (sign, bound, met) = match target.bound {
                Bound::AtLeast(bound) => ("≥", bound, ratio >= bound),
                Bound::AtMost(bound) => ("≤", bound, ratio <= bound),
            };
            let verdict = if met {
                "met".to_owned()
            } else {
                missed_by((ratio / bound - 1.0).abs())
            };
            // Across NIC settings (a mode on the plain veth against the reference reflector,
            // which needs X's NIC physical-like), the row names both.
            let (on, against) = if nic == reference_nic {
                (String::new(), String::new())
            } else {
                (
                    format!(" ({})", nic.name()),
                    format!(" ({})", reference_nic.name()),
                )
            };
            let _ = writeln!(
                rows,
                "| `{contender}`{on} {} {sign} {bound}× `{}`{against} ({}) | {ratio:.2}× | \
                 {verdict} |",
                target.what, target.reference, target.workload
            );
        }
    }
    kernel_rows(results, &mut rows);
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "## Targets (issues 5 and 17)\n\n| target | measured | verdict |\n| --- | ---: | --- |\n{rows}\n"
    )
}

/// The kernel program's target: each reflected path at most this many times the reference
/// reflector's ns/packet (one map, nothing else; issue 17).
const KERNEL_PROGRAM_BOUND: f64 = 1.5;

/// A row per reflector program, family and reflected path of the kernel workload.
fn kernel_rows(results: &Results, rows: &mut String) {
    let Some(KernelOutcome::Measured(report)) = &results.kernel else {
        return;
    };
    for row in report
        .rows
        .iter()
        .filter(|row| row.program.starts_with("reflector_") && !row.path.starts_with("pass"))
    {
        let ratio = row.ratio_to_reference;
        let verdict = if ratio <= KERNEL_PROGRAM_BOUND {
            "met".to_owned()
        } else {
            missed_by(ratio / KERNEL_PROGRAM_BOUND - 1.0)
        };
        let _ = writeln!(
            rows,
            "| `{}` {} {} ns/packet ≤ {KERNEL_PROGRAM_BOUND}× `reference_reflector` (kernel) \
             | {ratio:.2}× | {verdict} |",
            row.program, row.path, row.family
        );
    }
}

/// "missed by N%" for a shortfall `fraction` of the bound: one decimal under 1%, where a
/// rounded "0%" would read as met.
fn missed_by(fraction: f64) -> String {
    let percent = fraction * 100.0;
    if percent < 1.0 {
        format!("missed by {percent:.1}%")
    } else {
        format!("missed by {percent:.0}%")
    }
}
