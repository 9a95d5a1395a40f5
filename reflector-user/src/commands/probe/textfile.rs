//! `--prometheus FILE`: the result as metrics for `node_exporter`'s textfile collector,
//! written to a temporary file beside FILE and renamed over it, so the collector never
//! reads half a file.
//!
//! Every metric name is a constant below and each metric has one function that fills it.
//! Every series carries `service` (`--name`) and `port` (P), so several probes can write
//! files side by side.

use std::{
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text},
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};

use super::{
    args::Plan,
    verdict::{Leg, ReflectorResult, Status, min_median_max},
};
use crate::telemetry::metrics::openmetrics_to_text;

/// `reflector_probe_success{service,port}`: 1 when the verdict is OK.
pub(crate) const SUCCESS: &str = "reflector_probe_success";
/// `reflector_probe_status{service,port}`: the exit code, 0 OK, 1 WARNING, 2 CRITICAL.
pub(crate) const STATUS: &str = "reflector_probe_status";
/// `reflector_probe_duration_seconds{service,port}`: how long the probe took.
pub(crate) const DURATION: &str = "reflector_probe_duration_seconds";
/// `reflector_probe_last_run_timestamp_seconds{service,port}`: when it finished (for
/// staleness alerts).
pub(crate) const TIMESTAMP: &str = "reflector_probe_last_run_timestamp_seconds";
/// `reflector_probe_reflector_up{service,port,reflector}`: 1 when the self-test through
/// the reflector passed (absent without `--self-test`).
pub(crate) const REFLECTOR_UP: &str = "reflector_probe_reflector_up";
/// `reflector_probe_service_up{service,port,reflector}`: 1 when every probe of the service
/// through the reflector passed.
pub(crate) const SERVICE_UP: &str = "reflector_probe_service_up";
/// `reflector_probe_failed_leg{service,port,reflector,leg}`: 1 for the leg that failed
/// through the reflector (none, reflector, service), 0 for the others.
pub(crate) const FAILED_LEG: &str = "reflector_probe_failed_leg";
/// `reflector_probe_round_trip_seconds{service,port,reflector,stat}`: min, median and max
/// of the passed probes' round trips.
pub(crate) const ROUND_TRIP: &str = "reflector_probe_round_trip_seconds";
/// `reflector_probe_self_test_round_trip_seconds{service,port,reflector}`: the passed
/// self-test's round trip.
pub(crate) const SELF_TEST_ROUND_TRIP: &str = "reflector_probe_self_test_round_trip_seconds";

/// `--prometheus FILE` could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}", path.display())]
pub(crate) struct WriteError {
    /// The file (or its temporary sibling).
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
    port: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReflectorLabels {
    service: String,
    port: String,
    reflector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LegLabels {
    service: String,
    port: String,
    reflector: String,
    leg: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatLabels {
    service: String,
    port: String,
    reflector: String,
    stat: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

fn gauges<
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, f64)>,
) {
    let family = Family::<L, FloatGauge>::default();
    for (labels, value) in values {
        family.get_or_create(&labels).set(value);
    }
    registry.register(name, help, family);
}

/// The metrics of one probe run, in the Prometheus text format.
#[must_use]
pub(crate) fn render(
    plan: &Plan,
    status: Status,
    results: &[ReflectorResult],
    elapsed: Duration,
    finished: SystemTime,
) -> String {
    let service = ServiceLabels {
        service: plan.name.clone(),
        port: plan.service_port.to_string(),
    };
    let reflector = |result: &ReflectorResult| ReflectorLabels {
        service: service.service.clone(),
        port: service.port.clone(),
        reflector: result.via.clone(),
    };
    let mut registry = Registry::default();
    summary(&mut registry, &service, status, elapsed, finished);
    gauges(
        &mut registry,
        REFLECTOR_UP,
        "1 when the self-test through the reflector passed",
        results.iter().filter_map(|r| {
            r.self_test_passed()
                .map(|up| (reflector(r), f64::from(u8::from(up))))
        }),
    );
    gauges(
        &mut registry,
        SERVICE_UP,
        "1 when every probe of the service through the reflector passed",
        results
            .iter()
            .map(|r| (reflector(r), f64::from(u8::from(r.service_passed())))),
    );
    failed_leg(&mut registry, results, &reflector);
    round_trips(&mut registry, results, &reflector);
    openmetrics_to_text(&encode(&registry))
}

fn summary(
    registry: &mut Registry,
    service: &ServiceLabels,
    status: Status,
    elapsed: Duration,
    finished: SystemTime,
) {
    gauges(
        registry,
        SUCCESS,
        "1 when the service answered through enough working reflectors",
        [(service.clone(), f64::from(u8::from(status == Status::Ok)))],
    );
    gauges(
        registry,
        STATUS,
        "The probe's exit code: 0 OK, 1 WARNING (reflector leg), 2 CRITICAL (service), 3 UNKNOWN",
        [(service.clone(), f64::from(status.code()))],
    );
    gauges(
        registry,
        DURATION,
        "How long the probe took",
        [(service.clone(), elapsed.as_secs_f64())],
    );
    let since_epoch = finished
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    gauges(
        registry,
        TIMESTAMP,
        "When the probe finished, in seconds since the epoch",
        [(service.clone(), since_epoch.as_secs_f64())],
    );
}

fn failed_leg(
    registry: &mut Registry,
    results: &[ReflectorResult],
    reflector: &dyn Fn(&ReflectorResult) -> ReflectorLabels,
) {
    let values = results.iter().flat_map(|r| {
        let labels = reflector(r);
        let failed = r.leg();
        [Leg::None, Leg::Reflector, Leg::Service].map(|leg| {
            (
                LegLabels {
                    service: labels.service.clone(),
                    port: labels.port.clone(),
                    reflector: labels.reflector.clone(),
                    leg: leg.as_str().to_owned(),
                },
                f64::from(u8::from(leg == failed)),
            )
        })
    });
    gauges(
        registry,
        FAILED_LEG,
        "1 for the leg that failed through the reflector: none, reflector (or network), service",
        values.collect::<Vec<_>>(),
    );
}

fn round_trips(
    registry: &mut Registry,
    results: &[ReflectorResult],
    reflector: &dyn Fn(&ReflectorResult) -> ReflectorLabels,
) {
    let mut values = Vec::new();
    for r in results {
        let labels = reflector(r);
        if let Some((min, median, max)) = min_median_max(&r.round_trips()) {
            for (stat, value) in [("min", min), ("median", median), ("max", max)] {
                values.push((
                    StatLabels {
                        service: labels.service.clone(),
                        port: labels.port.clone(),
                        reflector: labels.reflector.clone(),
                        stat: stat.to_owned(),
                    },
                    value.as_secs_f64(),
                ));
            }
        }
    }
    gauges(
        registry,
        ROUND_TRIP,
        "Round trip of the passed probes of the service through the reflector: min, median, max",
        values,
    );
    gauges(
        registry,
        SELF_TEST_ROUND_TRIP,
        "Round trip of the passed self-test through the reflector",
        results.iter().filter_map(|r| {
            let test = r.self_test.as_ref().filter(|test| test.result.is_ok())?;
            Some((reflector(r), test.elapsed.as_secs_f64()))
        }),
    );
}

fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = text::encode(&mut out, registry);
    out
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory (which
/// the textfile collector ignores, as it does not end in `.prom`), flushed to disk, then
/// renamed over `path`.
///
/// # Errors
/// [`WriteError`] naming the file; the temporary file is removed.
pub(crate) fn write_atomically(path: &Path, contents: &str) -> Result<(), WriteError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let written = (|| {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    })();
    let result = written
        .map_err(|source| WriteError {
            path: temporary.clone(),
            source,
        })
        .and_then(|()| {
            fs::rename(&temporary, path).map_err(|source| WriteError {
                path: path.to_owned(),
                source,
            })
        });
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}
