//! Workloads `bulk` and `bulk-reverse`: throughput of one TCP stream, measured by iperf3
//! (its control connection and its data connection both go through the contender), from
//! client to service, or with `--reverse` from service to client.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use reflector_tests::command::{describe, format_output, output_within};
use serde_json::{Value, json};

use crate::bed::{Bed, SERVICE_PORT, START_TIMEOUT};
use crate::measurement::{self, Combine, Figure, Measurement, Params};

/// How long iperf3's client may wait for its control connection, in milliseconds.
const CONNECT_TIMEOUT_MS: &str = "3000";

/// Runs `iperf3 --server` as the service and one client run; Gbit/s.
pub(crate) fn measure(bed: &Bed, params: &Params, reverse: bool) -> Result<Measurement> {
    let port = SERVICE_PORT.to_string();
    let mut server = bed
        .service_ns()
        .spawn(&["iperf3", "--server", "--port", &port]);
    bed.service_ns()
        .wait_listening(false, SERVICE_PORT, START_TIMEOUT);
    let target = bed.target();
    let seconds = Duration::from_secs_f64(params.duration.round())
        .as_secs()
        .max(1);
    let mut cmd = bed.client_ns().command(&[
        "iperf3",
        "--client",
        &target.ip().to_string(),
        "--port",
        &target.port().to_string(),
        "--time",
        &seconds.to_string(),
        "--connect-timeout",
        CONNECT_TIMEOUT_MS,
        "--json",
    ]);
    if reverse {
        cmd.arg("--reverse");
    }
    let output = output_within(&mut cmd, Duration::from_secs(seconds + 20));
    let report: Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "`{}` ({}) printed no JSON{}",
            describe(&cmd),
            output.status,
            format_output(&output.stdout, &output.stderr)
        )
    })?;
    let error = report.get("error").and_then(Value::as_str);
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(&cmd),
            output.status,
            error.unwrap_or("(no error in its JSON)")
        );
    }
    measurement::check_service(&mut server)?;
    let mut notes = Vec::new();
    // The receiver's count, which iperf3 reports; when the run ended without the final
    // exchange on the control connection (it was reset, say), the receiver's total is
    // missing or zero and the client's own sender count is what there is.
    let bits =
        if let Some(bits) = bits_per_second(&report, "sum_received").filter(|&bits| bits > 0.0) {
            bits
        } else {
            let bits = bits_per_second(&report, "sum_sent")
                .context("iperf3's JSON has neither end.sum_received nor end.sum_sent")?;
            notes.push(format!(
                "sender's count: iperf3 reported no receiver total ({})",
                error.unwrap_or("no error given")
            ));
            bits
        };
    let retransmits = report
        .pointer("/end/sum_sent/retransmits")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok(Measurement {
        figures: vec![Figure {
            key: "gbit_per_s",
            label: "Gbit/s",
            value: bits / 1e9,
            decimals: 2,
            combine: Combine::Median,
        }],
        notes,
        raw: json!({
            "bits_per_second": bits,
            "retransmits": retransmits,
            "seconds": seconds,
            "error": error,
            "cpu_utilization_percent": report.pointer("/end/cpu_utilization_percent"),
        }),
    })
}

/// `end.<sum>.bits_per_second` of an iperf3 JSON report.
fn bits_per_second(report: &Value, sum: &str) -> Option<f64> {
    report
        .pointer(&format!("/end/{sum}/bits_per_second"))
        .and_then(Value::as_f64)
}
