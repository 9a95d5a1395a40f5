//! The results: every entry with its raw numbers (JSON), and a markdown table per workload
//! with each figure and its ratio to the direct path under the same NIC setting.

use std::fmt::Write as _;

use serde::Serialize;

use crate::contender::{Contender, Nic};
use crate::kernel;
use crate::measurement::{Combine, Figure, Measurement};
use crate::summary::median;
use crate::workload::Workload;

/// One contender on one workload.
#[derive(Debug, Serialize)]
pub(crate) struct Entry {
    /// Which round of measurements (from 1).
    pub round: u32,
    /// Who.
    pub contender: Contender,
    /// X's NIC setting.
    pub nic: Nic,
    /// What.
    pub workload: Workload,
    /// Whether it was measured.
    pub status: Status,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The reflector's log line about the mode it attached with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode_line: Option<String>,
    /// The reflector's exit summary (`splice: tcp ... accepted, ...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon_summary: Option<String>,
    /// The figures and raw numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measurement: Option<Measurement>,
}

/// How a measurement went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Status {
    /// Measured.
    Ok,
    /// Tried, and something went wrong.
    Failed,
    /// Not tried: the contender is not available (`reason` says why).
    Skipped,
}

impl Entry {
    /// A measurement.
    pub(crate) fn ok(
        contender: Contender,
        nic: Nic,
        workload: Workload,
        measurement: Measurement,
        mode_line: Option<String>,
    ) -> Self {
        Self {
            round: 1,
            contender,
            nic,
            workload,
            status: Status::Ok,
            reason: None,
            mode_line,
            daemon_summary: None,
            measurement: Some(measurement),
        }
    }

    /// A measurement that failed.
    pub(crate) fn failed(
        contender: Contender,
        nic: Nic,
        workload: Workload,
        reason: String,
    ) -> Self {
        Self {
            round: 1,
            contender,
            nic,
            workload,
            status: Status::Failed,
            reason: Some(reason),
            mode_line: None,
            daemon_summary: None,
            measurement: None,
        }
    }

    /// A measurement not taken.
    pub(crate) fn skipped(
        contender: Contender,
        nic: Nic,
        workload: Workload,
        reason: String,
    ) -> Self {
        Self {
            status: Status::Skipped,
            ..Self::failed(contender, nic, workload, reason)
        }
    }

    /// One line for the progress log.
    pub(crate) fn summary(&self) -> String {
        match (&self.measurement, &self.reason) {
            (Some(measurement), _) => measurement
                .figures
                .iter()
                .map(|figure| format!("{} {}", format_value(figure), figure.label))
                .collect::<Vec<_>>()
                .join(", "),
            (None, Some(reason)) => format!("{:?}: {reason}", self.status),
            (None, None) => format!("{:?}", self.status),
        }
    }

    fn figures(&self) -> &[Figure] {
        self.measurement
            .as_ref()
            .map_or(&[], |measurement| &measurement.figures)
    }

    /// What to say about it next to its figures: why it failed or was skipped, the mode
    /// `auto` chose, what went wrong during the measurement.
    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let reason = first_line(self.reason.as_deref().unwrap_or(""));
        match self.status {
            Status::Ok => {}
            Status::Failed => notes.push(format!("FAILED: {reason}")),
            Status::Skipped => notes.push(format!("skipped: {reason}")),
        }
        if self.contender == Contender::Auto
            && let Some(mode) = self.chosen_mode()
        {
            notes.push(format!("chose {mode}"));
        }
        if let Some(measurement) = &self.measurement {
            notes.extend(measurement.notes.iter().cloned());
        }
        notes
    }

    /// The mode the reflector says it chose (`tc` from `... reflecting with tc`).
    fn chosen_mode(&self) -> Option<&str> {
        let line = self.mode_line.as_deref()?;
        let (_, rest) = line.split_once("reflecting with ")?;
        rest.split(|c: char| c.is_whitespace() || c == ',').next()
    }
}

/// The machine.
#[derive(Debug, Serialize)]
pub(crate) struct Host {
    /// CPUs available.
    pub cpus: usize,
    /// `uname -r`.
    pub kernel: String,
    /// `/proc/loadavg` when the run started: other work on the machine skews every figure.
    pub loadavg: String,
}

impl Host {
    /// This machine.
    pub(crate) fn this() -> Self {
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            kernel: nix::sys::utsname::uname().map_or_else(
                |_| "?".to_owned(),
                |uts| uts.release().to_string_lossy().into_owned(),
            ),
            loadavg: std::fs::read_to_string("/proc/loadavg")
                .map(|text| {
                    text.split_whitespace()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
        }
    }
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub(crate) struct Results {
    /// The command that produced it.
    pub command: String,
    /// The reflector binary measured.
    pub reflector: String,
    /// When it started (seconds since the Unix epoch).
    pub started_unix: u64,
    /// How long it took.
    pub total_seconds: f64,
    /// Seconds per measurement.
    pub duration_seconds: f64,
    /// Seconds of warm-up before each connection-rate and latency measurement.
    pub warmup_seconds: f64,
    /// Concurrent clients of the connection-rate workload.
    pub workers: usize,
    /// Rounds: every measurement was taken this many times; the tables show medians.
    pub rounds: u32,
    /// The CPUs the request/response workload ran on, if pinned.
    pub rr_cpus: Option<String>,
    /// The machine.
    pub host: Host,
    /// The kernel workload, when it was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelOutcome>,
    /// The measurements, in the order taken.
    pub entries: Vec<Entry>,
}

/// How the kernel workload went.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum KernelOutcome {
    /// Measured.
    Measured(kernel::Report),
    /// Something went wrong; why.
    Failed(String),
}

impl KernelOutcome {
    /// One line for the progress log.
    pub(crate) fn summary(&self) -> String {
        match self {
            Self::Measured(report) => report
                .rows
                .iter()
                .map(|row| {
                    format!(
                        "{} {} {}: {:.1} ns",
                        row.program, row.path, row.family, row.ns_per_packet
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            Self::Failed(reason) => format!("Failed: {reason}"),
        }
    }

    /// Its table.
    fn markdown(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "## kernel: the program alone, ns/packet through BPF_PROG_TEST_RUN
"
        );
        let report = match self {
            Self::Measured(report) => report,
            Self::Failed(reason) => {
                let _ = writeln!(md, "FAILED: {}\n", first_line(reason));
                return;
            }
        };
        let sizes = report
            .frame_bytes
            .iter()
            .map(|(family, bytes)| format!("{family} {bytes} bytes"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            md,
            "TCP frames ({sizes}). `repeat`: {} calls per round of {} repetitions each, on \
             a host set up so that each repetition takes the path named (every repetition \
             checked in the counters); the median over calls of the kernel's mean per \
             repetition. `single`: single calls, each a new flow, less the baseline's \
             single-call overhead (mean). Ratios (×) are to `baseline_mac_swap` (swap MACs, \
             `XDP_TX`) and to `reference_reflector` (one map; no maps beyond its read-only \
             ports, no counters or policy) on the same family. `stateless` rows are maps whose target port no \
             other listen port shares (no flow entry; a socket lookup on the reverse \
             path); the others keep the flow table.\n",
            report.calls, report.repeat
        );
        let _ = writeln!(
            md,
            "| program | path | family | ns/packet | × minimal | × reference | method |"
        );
        let _ = writeln!(md, "| --- | --- | --- | ---: | ---: | ---: | --- |");
        for row in &report.rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} | {:.2}× | {:.2}× | {} |",
                row.program,
                row.path,
                row.family,
                row.ns_per_packet,
                row.ratio_to_baseline,
                row.ratio_to_reference,
                row.method
            );
        }
        md.push('\n');
    }
}

impl Results {
    /// The report: a header, then a table per workload, then `checked_targets` (the
    /// targets checked against these results, from `targets::markdown`).
    pub(crate) fn markdown(&self, checked_targets: &str) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# reflector bench\n");
        let _ = writeln!(md, "Command: `{}`  ", self.command);
        let _ = writeln!(
            md,
            "Host: {} CPUs, Linux {}, load average {} at the start; namespaces X (client and \
             service) and R over a veth pair, IPv4.  ",
            self.host.cpus, self.host.kernel, self.host.loadavg
        );
        let _ = writeln!(
            md,
            "{} s per measurement (after {} s of warm-up for connect, rr and udp), each on \
             namespaces built afresh{}; total run {:.0} s.  ",
            self.duration_seconds,
            self.warmup_seconds,
            if self.rounds > 1 {
                format!("; {} rounds, interleaved, figures are medians", self.rounds)
            } else {
                String::new()
            },
            self.total_seconds
        );
        let _ = writeln!(
            md,
            "Ratios (×) compare with the direct path (no reflection: the same service in R) \
             under the same NIC setting of X: `veth` as created, or `nic-like` (TX checksum \
             offload off and an XDP program on X's end, which XDP modes need on a veth). \
             When the reference reflector ran, each reflector mode's ratio to it follows \
             (`× ref`), whatever the mode's NIC setting.\n"
        );
        for workload in Workload::ALL {
            if self.entries.iter().any(|entry| entry.workload == workload) {
                self.table(&mut md, workload);
            }
        }
        if let Some(kernel) = &self.kernel {
            kernel.markdown(&mut md);
        }
        md.push_str(checked_targets);
        let _ = writeln!(md, "Contenders:\n");
        for contender in Contender::ALL {
            if self
                .entries
                .iter()
                .any(|entry| entry.contender == contender)
            {
                let _ = writeln!(md, "- `{contender}`: {}", contender.description());
            }
        }
        md
    }

    /// The figure `key` of `contender` under `nic` on `workload`: the median over rounds.
    pub(crate) fn figure(
        &self,
        contender: Contender,
        nic: Nic,
        workload: Workload,
        key: &str,
    ) -> Option<f64> {
        let rows = Row::group(self.entries.iter().filter(|entry| {
            entry.workload == workload && entry.contender == contender && entry.nic == nic
        }));
        rows.first()?.figure(key).map(|figure| figure.value)
    }

    fn table(&self, md: &mut String, workload: Workload) {
        let rows = Row::group(
            self.entries
                .iter()
                .filter(|entry| entry.workload == workload),
        );
        let labels: Vec<(&str, &str)> = rows
            .iter()
            .flat_map(|row| row.entries.iter())
            .find(|entry| entry.status == Status::Ok)
            .map(|entry| {
                entry
                    .figures()
                    .iter()
                    .map(|figure| (figure.key, figure.label))
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "## {}\n",
            title(workload, self.workers, self.rr_cpus.as_deref())
        );
        let _ = write!(md, "| contender | NIC |");
        for (_, label) in &labels {
            let _ = write!(md, " {label} |");
        }
        let _ = writeln!(md, " notes |");
        let _ = write!(md, "| --- | --- |");
        for _ in &labels {
            let _ = write!(md, " ---: |");
        }
        let _ = writeln!(md, " --- |");
        // The reference reflector runs under one NIC setting; every reflector's row is
        // read against it too, whatever its own setting.
        let reference = rows
            .iter()
            .find(|other| other.contender == Contender::Reference);
        for row in &rows {
            let direct = rows
                .iter()
                .find(|other| other.contender == Contender::Direct && other.nic == row.nic)
                .filter(|direct| direct.contender != row.contender);
            let reference = reference.filter(|_| row.contender.reflector_mode().is_some());
            let _ = write!(md, "| {} | {} |", row.contender, row.nic.name());
            for (key, _) in &labels {
                let cell = row.figure(key).map_or_else(String::new, |figure| {
                    if figure.combine != Combine::Median {
                        return format_value(&figure);
                    }
                    let ratio = |other: Option<&Row<'_>>| {
                        other
                            .and_then(|other| other.figure(key))
                            .filter(|other| other.value > 0.0)
                            .map(|other| figure.value / other.value)
                    };
                    match (ratio(direct), ratio(reference)) {
                        (Some(to_direct), Some(to_reference)) => format!(
                            "{} ({to_direct:.2}×, {to_reference:.2}× ref)",
                            format_value(&figure)
                        ),
                        (Some(to_direct), None) => {
                            format!("{} ({to_direct:.2}×)", format_value(&figure))
                        }
                        (None, Some(to_reference)) => {
                            format!("{} ({to_reference:.2}× ref)", format_value(&figure))
                        }
                        (None, None) => format_value(&figure),
                    }
                });
                let _ = write!(md, " {cell} |");
            }
            let _ = writeln!(md, " {} |", row.notes().replace('|', "\\|"));
        }
        md.push('\n');
    }
}

/// A table row: one contender under one NIC setting on one workload, over every round.
struct Row<'a> {
    contender: Contender,
    nic: Nic,
    /// One per round, in order.
    entries: Vec<&'a Entry>,
}

impl<'a> Row<'a> {
    /// The rows of `entries` (one workload's), in the order they first appear.
    fn group(entries: impl Iterator<Item = &'a Entry>) -> Vec<Self> {
        let mut rows: Vec<Self> = Vec::new();
        for entry in entries {
            match rows
                .iter_mut()
                .find(|row| row.contender == entry.contender && row.nic == entry.nic)
            {
                Some(row) => row.entries.push(entry),
                None => rows.push(Self {
                    contender: entry.contender,
                    nic: entry.nic,
                    entries: vec![entry],
                }),
            }
        }
        rows
    }

    /// The figure `key`, combined over the rounds that measured it (the median, or the sum
    /// of a count).
    fn figure(&self, key: &str) -> Option<Figure> {
        let found: Vec<&Figure> = self
            .entries
            .iter()
            .flat_map(|entry| entry.figures())
            .filter(|figure| figure.key == key)
            .collect();
        let first = found.first()?;
        let values: Vec<f64> = found.iter().map(|figure| figure.value).collect();
        let value = match first.combine {
            Combine::Median => median(&values),
            Combine::Sum => values.iter().sum(),
        };
        Some(Figure {
            value,
            ..(*first).clone()
        })
    }

    /// The notes cell: why it failed or was skipped, the mode `auto` chose, what went
    /// wrong during the measurement; with rounds, how many failed.
    fn notes(&self) -> String {
        let mut notes: Vec<String> = Vec::new();
        let mut push = |note: String| {
            if !notes.contains(&note) {
                notes.push(note);
            }
        };
        let failed = self
            .entries
            .iter()
            .filter(|entry| entry.status != Status::Ok)
            .count();
        if failed > 0 && failed < self.entries.len() {
            push(format!("{failed} of {} rounds failed", self.entries.len()));
        }
        for entry in &self.entries {
            for note in entry.notes() {
                push(note);
            }
        }
        notes.join("; ")
    }
}

/// A table's heading.
fn title(workload: Workload, workers: usize, rr_cpus: Option<&str>) -> String {
    match workload {
        Workload::Connect => format!(
            "connect: new TCP connections/s, health-check pattern ({workers} concurrent \
             workers, each: connect, read a 16-byte banner to end of file, close); `checks` \
             in the window and `failed` (hung past 3 s, refused or reset) are sums over \
             rounds, `≥ 1 s` counts checks that completed after a retried handshake"
        ),
        Workload::Bulk => {
            "bulk: throughput of one TCP stream, client to service (iperf3)".to_owned()
        }
        Workload::BulkReverse => {
            "bulk-reverse: throughput of one TCP stream, service to client (iperf3 --reverse)"
                .to_owned()
        }
        Workload::Udp => format!(
            "udp: UDP datagrams/s ({workers} concurrent workers, each: send 64 bytes, wait up \
             to 200 ms for the echo)"
        ),
        Workload::Kernel => "kernel: the program alone".to_owned(),
        Workload::Rr => format!(
            "rr: request/response on one long TCP connection (64-byte echo, one at a time{})",
            rr_cpus.map_or_else(String::new, |cpus| format!(
                "; client, service and contender on CPU {cpus}"
            ))
        ),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// A figure with its decimals and thousands separators.
fn format_value(figure: &Figure) -> String {
    let text = format!("{:.*}", figure.decimals, figure.value);
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(frac) => format!("{sign}{grouped}.{frac}"),
        None => format!("{sign}{grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(value: f64, decimals: usize) -> Figure {
        Figure {
            key: "k",
            label: "l",
            value,
            decimals,
            combine: Combine::Median,
        }
    }

    #[test]
    fn values_get_thousands_separators() {
        assert_eq!(format_value(&figure(24_012.4, 0)), "24,012");
        assert_eq!(format_value(&figure(1_234_567.891, 2)), "1,234,567.89");
        assert_eq!(format_value(&figure(999.0, 1)), "999.0");
        assert_eq!(format_value(&figure(-1_000.0, 0)), "-1,000");
    }

    #[test]
    fn counts_are_summed_over_rounds_and_rates_take_the_median() {
        let round = |rate: f64, failed: f64| {
            let measurement = Measurement {
                figures: vec![
                    figure(rate, 0),
                    Figure {
                        key: "failed",
                        combine: Combine::Sum,
                        ..figure(failed, 0)
                    },
                ],
                notes: Vec::new(),
                raw: serde_json::Value::Null,
            };
            Entry::ok(
                Contender::Tc,
                Nic::Veth,
                Workload::Connect,
                measurement,
                None,
            )
        };
        let entries = [round(10.0, 1.0), round(30.0, 0.0), round(20.0, 2.0)];
        let rows = Row::group(entries.iter());
        assert_eq!(rows.len(), 1);
        let value = |key| rows[0].figure(key).map(|figure| figure.value);
        assert_eq!(value("k"), Some(20.0), "the median rate");
        assert_eq!(
            value("failed"),
            Some(3.0),
            "every failed check of every round"
        );
    }

    #[test]
    fn auto_mode_is_read_from_the_log_line() {
        let mut entry = Entry::failed(Contender::Auto, Nic::Veth, Workload::Connect, String::new());
        entry.mode_line = Some("rfl1-0r: reflecting with tc (skipped: xdp: ...)".to_owned());
        assert_eq!(entry.chosen_mode(), Some("tc"));
    }
}
