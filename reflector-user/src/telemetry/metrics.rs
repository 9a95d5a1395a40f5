//! Renders a [`Snapshot`] as Prometheus metrics with the official `prometheus-client` crate.
//!
//! Every metric name is a constant below, and each metric has one function that registers
//! it. Names follow Prometheus conventions: the `reflector_` prefix, base units (bytes), and
//! `_total` on counters (the crate appends it, so the constants of counters leave it out).
//! A fresh registry is filled from each snapshot, so a scrape shows one consistent moment.

use prometheus_client::{
    encoding::{EncodeLabelSet, text},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use super::snapshot::{KernelSnapshot, Snapshot, SpliceSnapshot};

/// `reflector_build_info{version}`: always 1.
pub const BUILD_INFO: &str = "reflector_build_info";
/// `reflector_interface_mode{interface,mode}`: 1 for the mode each interface is reflected
/// with.
pub const INTERFACE_MODE: &str = "reflector_interface_mode";
/// `reflector_ready`: 1 once every interface has its mode active.
pub const READY: &str = "reflector_ready";
/// `reflector_reflected_packets_total{direction,family}`: packets the kernel reflected.
pub const REFLECTED_PACKETS: &str = "reflector_reflected_packets";
/// `reflector_reflected_bytes_total{direction,family}`: bytes the kernel reflected.
pub const REFLECTED_BYTES: &str = "reflector_reflected_bytes";
/// `reflector_map_reflected_packets_total{listen,target,protocol,direction,family}`:
/// packets the kernel reflected per port map.
pub const MAP_REFLECTED_PACKETS: &str = "reflector_map_reflected_packets";
/// `reflector_map_reflected_bytes_total{listen,target,protocol,direction,family}`: bytes
/// the kernel reflected per port map.
pub const MAP_REFLECTED_BYTES: &str = "reflector_map_reflected_bytes";
/// `reflector_passed_packets_total{reason}`: packets the kernel passed to the stack.
pub const PASSED_PACKETS: &str = "reflector_passed_packets";
/// `reflector_passed_bytes_total{reason}`: bytes the kernel passed to the stack.
pub const PASSED_BYTES: &str = "reflector_passed_bytes";
/// `reflector_kernel_flows_created_total`: flow-table entries the kernel created.
pub const KERNEL_FLOWS_CREATED: &str = "reflector_kernel_flows_created";
/// `reflector_kernel_flows_active`: entries in the kernel flow table now.
pub const KERNEL_FLOWS_ACTIVE: &str = "reflector_kernel_flows_active";
/// `reflector_kernel_flows_evicted_total`: flows the full kernel flow table forgot.
pub const KERNEL_FLOWS_EVICTED: &str = "reflector_kernel_flows_evicted";
/// `reflector_kernel_flow_insert_failures_total`: flows the kernel could not record.
pub const KERNEL_FLOW_INSERT_FAILURES: &str = "reflector_kernel_flow_insert_failures";
/// `reflector_splice_connections_total{protocol}`: TCP connections accepted, UDP flows
/// started by the userspace path.
pub const SPLICE_CONNECTIONS: &str = "reflector_splice_connections";
/// `reflector_splice_connections_active{protocol}`: TCP connections and UDP flows open now.
pub const SPLICE_CONNECTIONS_ACTIVE: &str = "reflector_splice_connections_active";
/// `reflector_splice_over_limit_total{protocol}`: TCP clients reset at `--max-conns`, UDP
/// datagrams dropped at `--max-udp-flows`.
pub const SPLICE_OVER_LIMIT: &str = "reflector_splice_over_limit";
/// `reflector_splice_connect_back_failures_total{reason}`: connects back to a client that
/// failed.
pub const SPLICE_CONNECT_BACK_FAILURES: &str = "reflector_splice_connect_back_failures";
/// `reflector_splice_bytes_total{direction}`: bytes the userspace path moved, `forward` to
/// services, `reverse` back to clients.
pub const SPLICE_BYTES: &str = "reflector_splice_bytes";
/// `reflector_splice_udp_datagrams_total`: UDP datagrams the userspace path moved.
pub const SPLICE_UDP_DATAGRAMS: &str = "reflector_splice_udp_datagrams";

/// Content type of [`render_openmetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of [`render_text`].
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InterfaceLabels {
    interface: String,
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionFamilyLabels {
    direction: String,
    family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MapLabels {
    listen: String,
    target: String,
    protocol: String,
    direction: String,
    family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: String,
}

/// Registers a counter family, one counter per label set.
fn counter_family<
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, u64)>,
) {
    let family = Family::<L, Counter>::default();
    for (labels, value) in values {
        family.get_or_create(&labels).inc_by(value);
    }
    registry.register(name, help, family);
}

/// Registers a gauge family, one gauge per label set.
fn gauge_family<
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, u64)>,
) {
    let family = Family::<L, Gauge>::default();
    for (labels, value) in values {
        family
            .get_or_create(&labels)
            .set(i64::try_from(value).unwrap_or(i64::MAX));
    }
    registry.register(name, help, family);
}

/// Registers a counter without labels.
fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let counter = Counter::<u64>::default();
    counter.inc_by(value);
    registry.register(name, help, counter);
}

fn build_info(registry: &mut Registry, version: &str) {
    let labels = VersionLabels {
        version: version.to_owned(),
    };
    gauge_family(
        registry,
        BUILD_INFO,
        "The reflector's version; always 1",
        [(labels, 1)],
    );
}

fn interface_mode(registry: &mut Registry, snapshot: &Snapshot) {
    let values = snapshot.interfaces.iter().map(|entry| {
        let labels = InterfaceLabels {
            interface: entry.interface.clone(),
            mode: entry.mode.clone(),
        };
        (labels, 1)
    });
    gauge_family(
        registry,
        INTERFACE_MODE,
        "1 for the mode (xdp, xdp-skb, tc, splice) each interface is reflected with",
        values,
    );
}

fn ready(registry: &mut Registry, ready: bool) {
    let gauge = Gauge::<i64>::default();
    gauge.set(i64::from(ready));
    registry.register(READY, "1 once every interface has its mode active", gauge);
}

fn reflected_packets(registry: &mut Registry, kernel: &KernelSnapshot) {
    let values = kernel
        .reflected
        .iter()
        .map(|entry| (direction_family(entry), entry.packets));
    counter_family(
        registry,
        REFLECTED_PACKETS,
        "Packets the kernel program reflected, by direction (forward: client to service) and IP family",
        values,
    );
}

fn reflected_bytes(registry: &mut Registry, kernel: &KernelSnapshot) {
    let values = kernel
        .reflected
        .iter()
        .map(|entry| (direction_family(entry), entry.bytes));
    counter_family(
        registry,
        REFLECTED_BYTES,
        "Bytes (whole frames) the kernel program reflected, by direction and IP family",
        values,
    );
}

fn map_reflected_packets(registry: &mut Registry, kernel: &KernelSnapshot) {
    let values = kernel
        .maps
        .iter()
        .map(|entry| (map_labels(entry), entry.packets));
    counter_family(
        registry,
        MAP_REFLECTED_PACKETS,
        "Packets the kernel program reflected, by port map (listen port, target port, protocol), direction and IP family",
        values,
    );
}

fn map_reflected_bytes(registry: &mut Registry, kernel: &KernelSnapshot) {
    let values = kernel
        .maps
        .iter()
        .map(|entry| (map_labels(entry), entry.bytes));
    counter_family(
        registry,
        MAP_REFLECTED_BYTES,
        "Bytes (whole frames) the kernel program reflected, by port map, direction and IP family",
        values,
    );
}

fn map_labels(entry: &super::snapshot::MapCount) -> MapLabels {
    MapLabels {
        listen: entry.listen.to_string(),
        target: entry.target.to_string(),
        protocol: entry.protocol.clone(),
        direction: entry.direction.clone(),
        family: entry.family.clone(),
    }
}

fn direction_family(entry: &super::snapshot::ReflectedCount) -> DirectionFamilyLabels {
    DirectionFamilyLabels {
        direction: entry.direction.clone(),
        family: entry.family.clone(),
    }
}

fn passed_packets(registry: &mut Registry, kernel: &KernelSnapshot) {
    let values = kernel.passed.iter().map(|entry| {
        let labels = ReasonLabels {
            reason: entry.reason.clone(),
        };
        (labels, entry.packets)
    });
    counter_family(
        registry,
        PASSED_PACKETS,
        "Packets the kernel program passed to the network stack untouched, by reason",
        values,
    );
}

fn passed_bytes(registry: &mut Registry, kernel: &KernelSnapshot) {
    let values = kernel.passed.iter().map(|entry| {
        let labels = ReasonLabels {
            reason: entry.reason.clone(),
        };
        (labels, entry.bytes)
    });
    counter_family(
        registry,
        PASSED_BYTES,
        "Bytes (whole frames) the kernel program passed to the network stack, by reason",
        values,
    );
}

fn kernel_flows_created(registry: &mut Registry, kernel: &KernelSnapshot) {
    counter(
        registry,
        KERNEL_FLOWS_CREATED,
        "Flow-table entries the kernel program created",
        kernel.flows_created,
    );
}

fn kernel_flows_active(registry: &mut Registry, kernel: &KernelSnapshot) {
    let gauge = Gauge::<i64>::default();
    gauge.set(i64::try_from(kernel.flows_active).unwrap_or(i64::MAX));
    registry.register(
        KERNEL_FLOWS_ACTIVE,
        "Entries in the kernel flow table now (flows not yet forgotten)",
        gauge,
    );
}

fn kernel_flows_evicted(registry: &mut Registry, kernel: &KernelSnapshot) {
    counter(
        registry,
        KERNEL_FLOWS_EVICTED,
        "Flows the full kernel flow table forgot to make room for new ones, least recently \
         used first (created less active)",
        kernel.flows_evicted,
    );
}

fn kernel_flow_insert_failures(registry: &mut Registry, kernel: &KernelSnapshot) {
    counter(
        registry,
        KERNEL_FLOW_INSERT_FAILURES,
        "Forward packets reflected although their flow could not be recorded",
        kernel.flow_insert_failures,
    );
}

fn protocol(name: &str) -> ProtocolLabels {
    ProtocolLabels {
        protocol: name.to_owned(),
    }
}

fn splice_connections(registry: &mut Registry, splice: &SpliceSnapshot) {
    counter_family(
        registry,
        SPLICE_CONNECTIONS,
        "TCP connections accepted and UDP flows started by the userspace path",
        [
            (protocol("tcp"), splice.tcp_accepted),
            (protocol("udp"), splice.udp_flows),
        ],
    );
}

fn splice_connections_active(registry: &mut Registry, splice: &SpliceSnapshot) {
    gauge_family(
        registry,
        SPLICE_CONNECTIONS_ACTIVE,
        "TCP connections and UDP flows the userspace path is reflecting now",
        [
            (protocol("tcp"), splice.tcp_active),
            (protocol("udp"), splice.udp_active),
        ],
    );
}

fn splice_over_limit(registry: &mut Registry, splice: &SpliceSnapshot) {
    counter_family(
        registry,
        SPLICE_OVER_LIMIT,
        "TCP clients reset at --max-conns and UDP datagrams dropped at --max-udp-flows",
        [
            (protocol("tcp"), splice.tcp_over_limit),
            (protocol("udp"), splice.udp_over_limit),
        ],
    );
}

fn splice_connect_back_failures(registry: &mut Registry, splice: &SpliceSnapshot) {
    let values = splice.connect_failures.iter().map(|entry| {
        let labels = ReasonLabels {
            reason: entry.reason.clone(),
        };
        (labels, entry.count)
    });
    counter_family(
        registry,
        SPLICE_CONNECT_BACK_FAILURES,
        "Connects back to a client's target port that failed, by reason",
        values,
    );
}

fn splice_bytes(registry: &mut Registry, splice: &SpliceSnapshot) {
    let direction = |name: &str| DirectionLabels {
        direction: name.to_owned(),
    };
    counter_family(
        registry,
        SPLICE_BYTES,
        "Bytes the userspace path moved: forward to services, reverse back to clients",
        [
            (direction("forward"), splice.bytes_to_services),
            (direction("reverse"), splice.bytes_to_clients),
        ],
    );
}

fn splice_udp_datagrams(registry: &mut Registry, splice: &SpliceSnapshot) {
    counter(
        registry,
        SPLICE_UDP_DATAGRAMS,
        "UDP datagrams the userspace path moved, both ways",
        splice.udp_datagrams,
    );
}

/// A registry holding every metric of `snapshot`. The kernel metrics are left out when no
/// kernel program is loaded.
fn registry(snapshot: &Snapshot) -> Registry {
    let mut registry = Registry::default();
    build_info(&mut registry, &snapshot.version);
    interface_mode(&mut registry, snapshot);
    ready(&mut registry, snapshot.ready);
    if let Some(kernel) = &snapshot.kernel {
        reflected_packets(&mut registry, kernel);
        reflected_bytes(&mut registry, kernel);
        map_reflected_packets(&mut registry, kernel);
        map_reflected_bytes(&mut registry, kernel);
        passed_packets(&mut registry, kernel);
        passed_bytes(&mut registry, kernel);
        kernel_flows_created(&mut registry, kernel);
        kernel_flows_active(&mut registry, kernel);
        kernel_flows_evicted(&mut registry, kernel);
        kernel_flow_insert_failures(&mut registry, kernel);
    }
    let splice = &snapshot.splice;
    splice_connections(&mut registry, splice);
    splice_connections_active(&mut registry, splice);
    splice_over_limit(&mut registry, splice);
    splice_connect_back_failures(&mut registry, splice);
    splice_bytes(&mut registry, splice);
    splice_udp_datagrams(&mut registry, splice);
    registry
}

/// `snapshot` in the `OpenMetrics` text format (what Prometheus asks for). The samples of
/// each metric are sorted by their labels, so the output is the same for the same counters.
///
/// # Panics
/// Never: writing to a `String` does not fail.
#[must_use]
pub fn render_openmetrics(snapshot: &Snapshot) -> String {
    let mut encoded = String::new();
    text::encode(&mut encoded, &registry(snapshot)).expect("writing to a String cannot fail");
    let mut out = String::with_capacity(encoded.len());
    let mut samples: Vec<&str> = Vec::new();
    for line in encoded.lines() {
        if !line.starts_with('#') {
            samples.push(line);
            continue;
        }
        samples.sort_unstable();
        for sample in samples.drain(..).chain([line]) {
            out.push_str(sample);
            out.push('\n');
        }
    }
    samples.sort_unstable();
    for sample in samples {
        out.push_str(sample);
        out.push('\n');
    }
    out
}

/// `snapshot` in the classic Prometheus text format 0.0.4 (for clients that do not ask for
/// `OpenMetrics`, such as `curl` and `promtool check metrics`). It differs from `OpenMetrics`
/// in that a counter's `HELP` and `TYPE` lines carry the `_total` name of its samples, and
/// there is no `# EOF`.
#[must_use]
pub fn render_text(snapshot: &Snapshot) -> String {
    openmetrics_to_text(&render_openmetrics(snapshot))
}

/// `OpenMetrics` text as `prometheus-client` renders it, in the classic Prometheus text
/// format 0.0.4 (see [`render_text`]; also what `node_exporter`'s textfile collector reads).
#[must_use]
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "].into_iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(&name).then_some((prefix, name, tail))
        });
        match descriptor {
            Some((prefix, name, tail)) => {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::snapshot::{
        ConnectFailureCount, InterfaceMode, MapCount, PassedCount, ReflectedCount,
    };

    fn snapshot(kernel: bool) -> Snapshot {
        Snapshot {
            version: "1.2.3".to_owned(),
            interfaces: vec![InterfaceMode {
                interface: "eth0".to_owned(),
                mode: "tc".to_owned(),
            }],
            ready: true,
            kernel: kernel.then(|| KernelSnapshot {
                reflected: vec![ReflectedCount {
                    direction: "forward".to_owned(),
                    family: "ipv4".to_owned(),
                    packets: 7,
                    bytes: 700,
                }],
                passed: vec![PassedCount {
                    reason: "no_flow".to_owned(),
                    packets: 3,
                    bytes: 300,
                }],
                flows_created: 2,
                flow_insert_failures: 1,
                flows_active: 5,
                flows_evicted: 3,
                maps: vec![MapCount {
                    listen: 10053,
                    target: 53,
                    protocol: "udp".to_owned(),
                    direction: "reverse".to_owned(),
                    family: "ipv6".to_owned(),
                    packets: 4,
                    bytes: 400,
                }],
            }),
            splice: SpliceSnapshot {
                tcp_accepted: 5,
                tcp_active: 1,
                connect_failures: vec![ConnectFailureCount {
                    reason: "refused".to_owned(),
                    count: 4,
                }],
                bytes_to_services: 11,
                bytes_to_clients: 12,
                udp_flows: 6,
                udp_datagrams: 9,
                ..SpliceSnapshot::default()
            },
        }
    }

    fn assert_has(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "no line `{line}` in:\n{text}"
        );
    }

    #[test]
    fn renders_every_metric_with_its_labels() {
        let text = render_text(&snapshot(true));
        for line in [
            "reflector_build_info{version=\"1.2.3\"} 1",
            "reflector_interface_mode{interface=\"eth0\",mode=\"tc\"} 1",
            "reflector_ready 1",
            "reflector_reflected_packets_total{direction=\"forward\",family=\"ipv4\"} 7",
            "reflector_reflected_bytes_total{direction=\"forward\",family=\"ipv4\"} 700",
            "reflector_map_reflected_packets_total{listen=\"10053\",target=\"53\",protocol=\"udp\",direction=\"reverse\",family=\"ipv6\"} 4",
            "reflector_map_reflected_bytes_total{listen=\"10053\",target=\"53\",protocol=\"udp\",direction=\"reverse\",family=\"ipv6\"} 400",
            "reflector_passed_packets_total{reason=\"no_flow\"} 3",
            "reflector_passed_bytes_total{reason=\"no_flow\"} 300",
            "reflector_kernel_flows_created_total 2",
            "reflector_kernel_flows_active 5",
            "reflector_kernel_flows_evicted_total 3",
            "reflector_kernel_flow_insert_failures_total 1",
            "reflector_splice_connections_total{protocol=\"tcp\"} 5",
            "reflector_splice_connections_total{protocol=\"udp\"} 6",
            "reflector_splice_connections_active{protocol=\"tcp\"} 1",
            "reflector_splice_over_limit_total{protocol=\"udp\"} 0",
            "reflector_splice_connect_back_failures_total{reason=\"refused\"} 4",
            "reflector_splice_bytes_total{direction=\"forward\"} 11",
            "reflector_splice_bytes_total{direction=\"reverse\"} 12",
            "reflector_splice_udp_datagrams_total 9",
            "# TYPE reflector_reflected_packets_total counter",
            "# TYPE reflector_splice_connections_active gauge",
        ] {
            assert_has(&text, line);
        }
        assert!(
            text.contains("# HELP reflector_reflected_packets_total Packets"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        assert!(
            !text.contains(".."),
            "help texts end without a period: {text}"
        );
        let tcp = text.find("connections_total{protocol=\"tcp\"}").unwrap();
        let udp = text.find("connections_total{protocol=\"udp\"}").unwrap();
        assert!(tcp < udp, "samples are sorted by their labels:\n{text}");
    }

    #[test]
    fn openmetrics_ends_with_eof_and_names_counter_families() {
        let text = render_openmetrics(&snapshot(true));
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_has(&text, "# TYPE reflector_reflected_packets counter");
        assert_has(
            &text,
            "reflector_reflected_packets_total{direction=\"forward\",family=\"ipv4\"} 7",
        );
    }

    #[test]
    fn kernel_metrics_are_left_out_without_a_program() {
        let text = render_text(&snapshot(false));
        assert!(!text.contains("reflector_reflected_packets"), "{text}");
        assert_has(
            &text,
            "reflector_splice_connections_total{protocol=\"tcp\"} 5",
        );
    }
}
