//! `reflector stats [--json] [--all]`: the running daemon's counters.

use std::fmt::Write as _;

use anyhow::Context as _;
use clap::Args;

use super::ControlArgs;
use crate::{
    control::Request,
    telemetry::{
        Snapshot,
        snapshot::{KernelSnapshot, ReasonCount},
    },
};

/// `reflector stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print the counters as JSON (the control socket's `stats` reply), for scripts.
    #[arg(long)]
    pub json: bool,
    /// List every pass reason and connect-back failure, not only those that happened.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub control: ControlArgs,
}

/// Asks the daemon for its counters and prints them.
///
/// # Errors
/// When the daemon cannot be reached or its reply has no counters.
pub(crate) fn run(args: &StatsArgs) -> anyhow::Result<()> {
    let reply = args.control.ask(&Request::Stats)?;
    let stats = reply.stats.context("the daemon's reply has no counters")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print!("{}", render(&stats, args.all));
    }
    Ok(())
}

/// The snapshot as readable tables; `all` lists zero pass reasons and failures too.
#[must_use]
pub(crate) fn render(stats: &Snapshot, all: bool) -> String {
    let mut out = String::new();
    let readiness = if stats.ready { "ready" } else { "starting" };
    let _ = writeln!(out, "reflector {} ({readiness})\n", stats.version);

    let rows: Vec<Vec<String>> = stats
        .interfaces
        .iter()
        .map(|entry| vec![entry.interface.clone(), entry.mode.clone()])
        .collect();
    table(&mut out, &["INTERFACE", "MODE"], &rows);

    match &stats.kernel {
        None => out.push_str("\nkernel: no program loaded\n"),
        Some(kernel) => {
            out.push('\n');
            let rows: Vec<Vec<String>> = kernel
                .reflected
                .iter()
                .map(|count| {
                    vec![
                        count.direction.clone(),
                        count.family.clone(),
                        count.packets.to_string(),
                        count.bytes.to_string(),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["REFLECTED", "FAMILY", "PACKETS", "BYTES"],
                &rows,
            );
            out.push('\n');
            reason_table(&mut out, "PASSED", &kernel.passed, all);
            out.push('\n');
            reason_table(&mut out, "DROPPED", &kernel.dropped, all);
            out.push('\n');
            flows_table(&mut out, kernel);
            map_table(&mut out, kernel);
        }
    }

    let splice = &stats.splice;
    let mut rows = vec![
        vec!["tcp accepted".to_owned(), splice.tcp_accepted.to_string()],
        vec!["tcp active".to_owned(), splice.tcp_active.to_string()],
        vec![
            "tcp over limit".to_owned(),
            splice.tcp_over_limit.to_string(),
        ],
        vec![
            "bytes to services".to_owned(),
            splice.bytes_to_services.to_string(),
        ],
        vec![
            "bytes to clients".to_owned(),
            splice.bytes_to_clients.to_string(),
        ],
        vec!["udp flows".to_owned(), splice.udp_flows.to_string()],
        vec!["udp active".to_owned(), splice.udp_active.to_string()],
        vec![
            "udp over limit".to_owned(),
            splice.udp_over_limit.to_string(),
        ],
        vec!["udp datagrams".to_owned(), splice.udp_datagrams.to_string()],
    ];
    rows.extend(
        splice
            .connect_failures
            .iter()
            .filter(|failure| all || failure.count > 0)
            .map(|failure| {
                vec![
                    format!("connect failed: {}", failure.reason),
                    failure.count.to_string(),
                ]
            }),
    );
    rows.extend(
        splice
            .refused
            .iter()
            .filter(|refused| all || refused.count > 0)
            .map(|refused| {
                vec![
                    format!("{} refused: {}", refused.protocol, refused.reason),
                    refused.count.to_string(),
                ]
            }),
    );
    out.push('\n');
    table(&mut out, &["SPLICE", "COUNT"], &rows);
    out
}

/// Appends the counts of one verdict (`PASSED`, `DROPPED`) by reason: those that moved, or
/// every reason with `all`.
fn reason_table(out: &mut String, title: &str, counts: &[ReasonCount], all: bool) {
    let rows: Vec<Vec<String>> = counts
        .iter()
        .filter(|count| all || count.packets > 0)
        .map(|count| {
            vec![
                count.reason.clone(),
                count.packets.to_string(),
                count.bytes.to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        let _ = writeln!(out, "{title}: none (--all lists every reason)");
    } else {
        table(out, &[title, "PACKETS", "BYTES"], &rows);
    }
}

/// Appends the per-map table: packets and bytes reflected per port map, direction and
/// family.
/// The flow-table counts.
fn flows_table(out: &mut String, kernel: &KernelSnapshot) {
    let rows = [
        ("flows created", kernel.flows_created),
        ("flows active", kernel.flows_active),
        ("flows evicted", kernel.flows_evicted),
        ("flow insert failures", kernel.flow_insert_failures),
    ]
    .map(|(what, count)| vec![what.to_owned(), count.to_string()]);
    table(out, &["FLOWS", "COUNT"], &rows);
}

fn map_table(out: &mut String, kernel: &KernelSnapshot) {
    out.push('\n');
    let rows: Vec<Vec<String>> = kernel
        .maps
        .iter()
        .map(|count| {
            let path = kernel
                .reply_paths
                .iter()
                .find(|path| path.listen == count.listen && path.protocol == count.protocol)
                .map_or("", |path| path.reply_path.as_str());
            vec![
                format!("{}:{}/{}", count.listen, count.target, count.protocol),
                path.to_owned(),
                count.direction.clone(),
                count.family.clone(),
                count.packets.to_string(),
                count.bytes.to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("MAP: none\n");
    } else {
        table(
            out,
            &["MAP", "REPLIES", "DIRECTION", "FAMILY", "PACKETS", "BYTES"],
            &rows,
        );
    }
}

/// Appends `rows` under `headers`, columns padded; the first column left-aligned, numbers
/// (every other column) right-aligned.
fn table(out: &mut String, headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            let numeric = i > 0 && cell.bytes().all(|byte| byte.is_ascii_digit());
            let _ = match (i, numeric) {
                (0, _) => write!(text, "{cell:<width$}"),
                (_, true) => write!(text, "  {cell:>width$}"),
                (_, false) => write!(text, "  {cell:<width$}"),
            };
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{
        InterfaceMode,
        snapshot::{
            ConnectFailureCount, KernelSnapshot, MapCount, MapReplyPath, ReasonCount,
            ReflectedCount,
        },
    };

    fn snapshot() -> Snapshot {
        Snapshot {
            version: "0.1.0".to_owned(),
            interfaces: vec![InterfaceMode {
                interface: "eth0".to_owned(),
                mode: "tc".to_owned(),
            }],
            ready: true,
            kernel: Some(KernelSnapshot {
                reflected: vec![ReflectedCount {
                    direction: "forward".to_owned(),
                    family: "ipv4".to_owned(),
                    packets: 12,
                    bytes: 1234,
                }],
                passed: vec![
                    ReasonCount {
                        reason: "not_ip".to_owned(),
                        packets: 3,
                        bytes: 180,
                    },
                    ReasonCount {
                        reason: "not_mapped".to_owned(),
                        packets: 0,
                        bytes: 0,
                    },
                ],
                dropped: vec![ReasonCount {
                    reason: "source_not_allowed".to_owned(),
                    packets: 4,
                    bytes: 240,
                }],
                flows_created: 2,
                flow_insert_failures: 0,
                flows_active: 2,
                flows_evicted: 0,
                maps: vec![MapCount {
                    listen: 10080,
                    target: 80,
                    protocol: "tcp".to_owned(),
                    direction: "reverse".to_owned(),
                    family: "ipv6".to_owned(),
                    packets: 5,
                    bytes: 500,
                }],
                reply_paths: vec![MapReplyPath {
                    listen: 10080,
                    target: 80,
                    protocol: "tcp".to_owned(),
                    reply_path: "stateless".to_owned(),
                }],
            }),
            splice: crate::telemetry::snapshot::SpliceSnapshot {
                connect_failures: vec![ConnectFailureCount {
                    reason: "refused".to_owned(),
                    count: 0,
                }],
                ..Default::default()
            },
        }
    }

    #[test]
    fn renders_tables_with_non_zero_reasons() {
        let text = render(&snapshot(), false);
        assert!(text.starts_with("reflector 0.1.0 (ready)\n"), "{text}");
        assert!(text.contains("INTERFACE  MODE\neth0       tc\n"), "{text}");
        assert!(
            text.contains("REFLECTED  FAMILY  PACKETS  BYTES\nforward    ipv4         12   1234\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "MAP           REPLIES    DIRECTION  FAMILY  PACKETS  BYTES\n10080:80/tcp  stateless  reverse    ipv6          5    500\n"
            ),
            "{text}"
        );
        assert!(text.contains("not_ip"), "{text}");
        assert!(
            text.contains(
                "DROPPED             PACKETS  BYTES\nsource_not_allowed        4    240\n"
            ),
            "{text}"
        );
        assert!(!text.contains("not_mapped"), "{text}");
        assert!(!text.contains("connect failed: refused"), "{text}");
        let all = render(&snapshot(), true);
        assert!(all.contains("not_mapped"), "{all}");
        assert!(all.contains("connect failed: refused"), "{all}");
    }

    #[test]
    fn without_a_kernel_program() {
        let stats = Snapshot {
            kernel: None,
            ..snapshot()
        };
        let text = render(&stats, false);
        assert!(text.contains("kernel: no program loaded"), "{text}");
        assert!(text.contains("tcp accepted"), "{text}");
    }
}
