//! Renders a [`Snapshot`] as Prometheus metrics with the official `prometheus-client` crate.
//!
//! Every metric name is a constant below, and every metric one row of [`METRICS`]. Names follow Prometheus conventions: the `reflector_` prefix, base units (bytes), and
//! `_total` on counters (the crate appends it, so the constants of counters leave it out).
//! A fresh registry is filled from each snapshot, so a scrape shows one consistent moment.

use prometheus_client::{
    encoding::text,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use super::snapshot::{
    ConnectFailureCount, InterfaceMode, KernelSnapshot, MapCount, ReflectedCount, RefusedCount,
    Snapshot,
};

/// `reflector_build_info{version}`: always 1.
pub(crate) const BUILD_INFO: &str = "reflector_build_info";
/// `reflector_interface_mode{interface,mode}`: 1 for the mode each interface is reflected
/// with.
pub(crate) const INTERFACE_MODE: &str = "reflector_interface_mode";
/// `reflector_ready`: 1 once every interface has its mode active.
pub(crate) const READY: &str = "reflector_ready";
/// `reflector_reflected_packets_total{direction,family}`: packets the kernel reflected.
pub(crate) const REFLECTED_PACKETS: &str = "reflector_reflected_packets";
/// `reflector_reflected_bytes_total{direction,family}`: bytes the kernel reflected.
pub(crate) const REFLECTED_BYTES: &str = "reflector_reflected_bytes";
/// `reflector_map_reflected_packets_total{listen,target,protocol,direction,family}`:
/// packets the kernel reflected per port map.
pub(crate) const MAP_REFLECTED_PACKETS: &str = "reflector_map_reflected_packets";
/// `reflector_map_reflected_bytes_total{listen,target,protocol,direction,family}`: bytes
/// the kernel reflected per port map.
pub(crate) const MAP_REFLECTED_BYTES: &str = "reflector_map_reflected_bytes";
/// `reflector_map_reply_path{listen,target,protocol,reply_path}`: 1 for how each port map's
/// replies are found on the kernel path (`stateless` or `flow-table`).
pub(crate) const MAP_REPLY_PATH: &str = "reflector_map_reply_path";
/// `reflector_passed_packets_total{reason}`: packets the kernel passed to the stack.
pub(crate) const PASSED_PACKETS: &str = "reflector_passed_packets";
/// `reflector_passed_bytes_total{reason}`: bytes the kernel passed to the stack.
pub(crate) const PASSED_BYTES: &str = "reflector_passed_bytes";
/// `reflector_dropped_packets_total{reason}`: packets the kernel dropped (neither
/// reflected nor passed).
pub(crate) const DROPPED_PACKETS: &str = "reflector_dropped_packets";
/// `reflector_dropped_bytes_total{reason}`: bytes the kernel dropped.
pub(crate) const DROPPED_BYTES: &str = "reflector_dropped_bytes";
/// `reflector_kernel_flows_created_total`: flow-table entries the kernel created.
pub(crate) const KERNEL_FLOWS_CREATED: &str = "reflector_kernel_flows_created";
/// `reflector_kernel_flows_active`: entries in the kernel flow table now.
pub(crate) const KERNEL_FLOWS_ACTIVE: &str = "reflector_kernel_flows_active";
/// `reflector_kernel_flows_evicted_total`: flows the full kernel flow table forgot.
pub(crate) const KERNEL_FLOWS_EVICTED: &str = "reflector_kernel_flows_evicted";
/// `reflector_kernel_flow_insert_failures_total`: flows the kernel could not record.
pub(crate) const KERNEL_FLOW_INSERT_FAILURES: &str = "reflector_kernel_flow_insert_failures";
/// `reflector_splice_connections_total{protocol}`: TCP connections accepted, UDP flows
/// started by the userspace path.
pub(crate) const SPLICE_CONNECTIONS: &str = "reflector_splice_connections";
/// `reflector_splice_connections_active{protocol}`: TCP connections and UDP flows open now.
pub(crate) const SPLICE_CONNECTIONS_ACTIVE: &str = "reflector_splice_connections_active";
/// `reflector_splice_over_limit_total{protocol}`: TCP clients reset at `--max-conns`, UDP
/// datagrams dropped at `--max-udp-flows`.
pub(crate) const SPLICE_OVER_LIMIT: &str = "reflector_splice_over_limit";
/// `reflector_splice_connect_back_failures_total{reason}`: connects back to a client that
/// failed.
pub(crate) const SPLICE_CONNECT_BACK_FAILURES: &str = "reflector_splice_connect_back_failures";
/// `reflector_splice_bytes_total{direction}`: bytes the userspace path moved, `forward` to
/// services, `reverse` back to clients.
pub(crate) const SPLICE_BYTES: &str = "reflector_splice_bytes";
/// `reflector_splice_refused_total{protocol,reason}`: new flows the userspace path refused
/// (allow-list, new-flow limits): TCP clients reset at accept, UDP datagrams dropped.
pub(crate) const SPLICE_REFUSED: &str = "reflector_splice_refused";
/// `reflector_splice_udp_datagrams_total`: UDP datagrams the userspace path moved.
pub(crate) const SPLICE_UDP_DATAGRAMS: &str = "reflector_splice_udp_datagrams";

/// Content type of [`render_openmetrics`].
pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of [`render_text`].
pub(crate) const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a metric counts up or goes up and down.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// One sample: its label values (in the order of [`Metric::labels`]) and its value.
type Sample = (Vec<String>, u64);

/// One metric: what it is called and means, and how its samples are read from a snapshot
/// (`None` leaves it out, as the kernel metrics when no kernel program is loaded).
struct Metric {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    samples: fn(&Snapshot) -> Option<Vec<Sample>>,
}

/// Every metric, in the order a scrape shows them.
const METRICS: &[Metric] = &[
    Metric {
        name: BUILD_INFO,
        help: "The reflector's version; always 1",
        kind: Kind::Gauge,
        labels: &["version"],
        samples: |s| Some(vec![(vec![s.version.clone()], 1)]),
    },
    Metric {
        name: INTERFACE_MODE,
        help: "1 for the mode (xdp, xdp-skb, tc, splice) each interface is reflected with",
        kind: Kind::Gauge,
        labels: &["interface", "mode"],
        samples: |s| {
            let each =
                |entry: &InterfaceMode| (vec![entry.interface.clone(), entry.mode.clone()], 1);
            Some(s.interfaces.iter().map(each).collect())
        },
    },
    Metric {
        name: READY,
        help: "1 once every interface has its mode active",
        kind: Kind::Gauge,
        labels: &[],
        samples: |s| Some(vec![(vec![], u64::from(s.ready))]),
    },
    Metric {
        name: REFLECTED_PACKETS,
        help: "Packets the kernel program reflected, by direction (forward: client to service) and IP family",
        kind: Kind::Counter,
        labels: &["direction", "family"],
        samples: |s| {
            kernel(s, |k| {
                k.reflected
                    .iter()
                    .map(|e| (direction_family(e), e.packets))
                    .collect()
            })
        },
    },
    Metric {
        name: REFLECTED_BYTES,
        help: "Bytes (whole frames) the kernel program reflected, by direction and IP family",
        kind: Kind::Counter,
        labels: &["direction", "family"],
        samples: |s| {
            kernel(s, |k| {
                k.reflected
                    .iter()
                    .map(|e| (direction_family(e), e.bytes))
                    .collect()
            })
        },
    },
    Metric {
        name: MAP_REFLECTED_PACKETS,
        help: "Packets the kernel program reflected, by port map (listen port, target port, protocol), direction and IP family",
        kind: Kind::Counter,
        labels: MAP_LABELS,
        samples: |s| {
            kernel(s, |k| {
                k.maps.iter().map(|e| (map_labels(e), e.packets)).collect()
            })
        },
    },
    Metric {
        name: MAP_REFLECTED_BYTES,
        help: "Bytes (whole frames) the kernel program reflected, by port map, direction and IP family",
        kind: Kind::Counter,
        labels: MAP_LABELS,
        samples: |s| {
            kernel(s, |k| {
                k.maps.iter().map(|e| (map_labels(e), e.bytes)).collect()
            })
        },
    },
    Metric {
        name: MAP_REPLY_PATH,
        help: "1 for how each port map's replies are found on the kernel path: stateless (forward and reverse may cross different reflectors) or flow-table",
        kind: Kind::Gauge,
        labels: &["listen", "target", "protocol", "reply_path"],
        samples: |s| {
            kernel(s, |k| {
                k.reply_paths
                    .iter()
                    .map(|e| {
                        let labels = vec![
                            e.listen.to_string(),
                            e.target.to_string(),
                            e.protocol.clone(),
                            e.reply_path.clone(),
                        ];
                        (labels, 1)
                    })
                    .collect()
            })
        },
    },
    Metric {
        name: PASSED_PACKETS,
        help: "Packets the kernel program passed to the network stack untouched, by reason",
        kind: Kind::Counter,
        labels: &["reason"],
        samples: |s| {
            kernel(s, |k| {
                k.passed
                    .iter()
                    .map(|e| (vec![e.reason.clone()], e.packets))
                    .collect()
            })
        },
    },
    Metric {
        name: PASSED_BYTES,
        help: "Bytes (whole frames) the kernel program passed to the network stack, by reason",
        kind: Kind::Counter,
        labels: &["reason"],
        samples: |s| {
            kernel(s, |k| {
                k.passed
                    .iter()
                    .map(|e| (vec![e.reason.clone()], e.bytes))
                    .collect()
            })
        },
    },
    Metric {
        name: DROPPED_PACKETS,
        help: "Packets the kernel program dropped (neither reflected nor passed), by reason",
        kind: Kind::Counter,
        labels: &["reason"],
        samples: |s| {
            kernel(s, |k| {
                k.dropped
                    .iter()
                    .map(|e| (vec![e.reason.clone()], e.packets))
                    .collect()
            })
        },
    },
    Metric {
        name: DROPPED_BYTES,
        help: "Bytes (whole frames) the kernel program dropped, by reason",
        kind: Kind::Counter,
        labels: &["reason"],
        samples: |s| {
            kernel(s, |k| {
                k.dropped
                    .iter()
                    .map(|e| (vec![e.reason.clone()], e.bytes))
                    .collect()
            })
        },
    },
    Metric {
        name: KERNEL_FLOWS_CREATED,
        help: "Flow-table entries the kernel program created",
        kind: Kind::Counter,
        labels: &[],
        samples: |s| kernel(s, |k| vec![(vec![], k.flows_created)]),
    },
    Metric {
        name: KERNEL_FLOWS_ACTIVE,
        help: "Entries in the kernel flow table now (flows not yet forgotten)",
        kind: Kind::Gauge,
        labels: &[],
        samples: |s| kernel(s, |k| vec![(vec![], k.flows_active)]),
    },
    Metric {
        name: KERNEL_FLOWS_EVICTED,
        help: "Flows the full kernel flow table forgot to make room for new ones, least recently \
               used first (created less active)",
        kind: Kind::Counter,
        labels: &[],
        samples: |s| kernel(s, |k| vec![(vec![], k.flows_evicted)]),
    },
    Metric {
        name: KERNEL_FLOW_INSERT_FAILURES,
        help: "Forward packets reflected although their flow could not be recorded",
        kind: Kind::Counter,
        labels: &[],
        samples: |s| kernel(s, |k| vec![(vec![], k.flow_insert_failures)]),
    },
    Metric {
        name: SPLICE_CONNECTIONS,
        help: "TCP connections accepted and UDP flows started by the userspace path",
        kind: Kind::Counter,
        labels: &["protocol"],
        samples: |s| Some(by_protocol(s.splice.tcp_accepted, s.splice.udp_flows)),
    },
    Metric {
        name: SPLICE_CONNECTIONS_ACTIVE,
        help: "TCP connections and UDP flows the userspace path is reflecting now",
        kind: Kind::Gauge,
        labels: &["protocol"],
        samples: |s| Some(by_protocol(s.splice.tcp_active, s.splice.udp_active)),
    },
    Metric {
        name: SPLICE_OVER_LIMIT,
        help: "TCP clients reset at --max-conns and UDP datagrams dropped at --max-udp-flows",
        kind: Kind::Counter,
        labels: &["protocol"],
        samples: |s| {
            Some(by_protocol(
                s.splice.tcp_over_limit,
                s.splice.udp_over_limit,
            ))
        },
    },
    Metric {
        name: SPLICE_CONNECT_BACK_FAILURES,
        help: "Connects back to a client's target port that failed, by reason",
        kind: Kind::Counter,
        labels: &["reason"],
        samples: |s| {
            let each = |e: &ConnectFailureCount| (vec![e.reason.clone()], e.count);
            Some(s.splice.connect_failures.iter().map(each).collect())
        },
    },
    Metric {
        name: SPLICE_BYTES,
        help: "Bytes the userspace path moved: forward to services, reverse back to clients",
        kind: Kind::Counter,
        labels: &["direction"],
        samples: |s| {
            Some(vec![
                (vec!["forward".to_owned()], s.splice.bytes_to_services),
                (vec!["reverse".to_owned()], s.splice.bytes_to_clients),
            ])
        },
    },
    Metric {
        name: SPLICE_REFUSED,
        help: "New flows the userspace path refused (allow-list, new-flow limits), by protocol and reason",
        kind: Kind::Counter,
        labels: &["protocol", "reason"],
        samples: |s| {
            let each = |e: &RefusedCount| (vec![e.protocol.clone(), e.reason.clone()], e.count);
            Some(s.splice.refused.iter().map(each).collect())
        },
    },
    Metric {
        name: SPLICE_UDP_DATAGRAMS,
        help: "UDP datagrams the userspace path moved, both ways",
        kind: Kind::Counter,
        labels: &[],
        samples: |s| Some(vec![(vec![], s.splice.udp_datagrams)]),
    },
];

/// The labels of the per-map metrics.
const MAP_LABELS: &[&str] = &["listen", "target", "protocol", "direction", "family"];

/// The samples of a kernel metric, or `None` when no kernel program is loaded.
fn kernel(snapshot: &Snapshot, samples: fn(&KernelSnapshot) -> Vec<Sample>) -> Option<Vec<Sample>> {
    snapshot.kernel.as_ref().map(samples)
}

fn map_labels(entry: &MapCount) -> Vec<String> {
    vec![
        entry.listen.to_string(),
        entry.target.to_string(),
        entry.protocol.clone(),
        entry.direction.clone(),
        entry.family.clone(),
    ]
}

fn direction_family(entry: &ReflectedCount) -> Vec<String> {
    vec![entry.direction.clone(), entry.family.clone()]
}

fn by_protocol(tcp: u64, udp: u64) -> Vec<Sample> {
    vec![(vec!["tcp".to_owned()], tcp), (vec!["udp".to_owned()], udp)]
}

/// The label set of one sample: `labels` named, in order.
type LabelSet = Vec<(&'static str, String)>;

/// Registers `metric` with `samples`: a family when it has labels, a lone counter or gauge
/// when it has none.
fn register(registry: &mut Registry, metric: &Metric, samples: Vec<Sample>) {
    let gauge_value = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    if metric.labels.is_empty() {
        let value = samples.first().map_or(0, |(_, value)| *value);
        match metric.kind {
            Kind::Counter => {
                let counter = Counter::<u64>::default();
                counter.inc_by(value);
                registry.register(metric.name, metric.help, counter);
            }
            Kind::Gauge => {
                let gauge = Gauge::<i64>::default();
                gauge.set(gauge_value(value));
                registry.register(metric.name, metric.help, gauge);
            }
        }
        return;
    }
    let label_set =
        |values: Vec<String>| -> LabelSet { metric.labels.iter().copied().zip(values).collect() };
    match metric.kind {
        Kind::Counter => {
            let family = Family::<LabelSet, Counter>::default();
            for (values, value) in samples {
                family.get_or_create(&label_set(values)).inc_by(value);
            }
            registry.register(metric.name, metric.help, family);
        }
        Kind::Gauge => {
            let family = Family::<LabelSet, Gauge>::default();
            for (values, value) in samples {
                family
                    .get_or_create(&label_set(values))
                    .set(gauge_value(value));
            }
            registry.register(metric.name, metric.help, family);
        }
    }
}

/// A registry holding every metric of `snapshot`.
fn registry(snapshot: &Snapshot) -> Registry {
    let mut registry = Registry::default();
    for metric in METRICS {
        if let Some(samples) = (metric.samples)(snapshot) {
            register(&mut registry, metric, samples);
        }
    }
    registry
}

/// `snapshot` in the `OpenMetrics` text format (what Prometheus asks for). The samples of
/// each metric are sorted by their labels, so the output is the same for the same counters.
///
/// # Panics
/// Never: writing to a `String` does not fail.
#[must_use]
pub(crate) fn render_openmetrics(snapshot: &Snapshot) -> String {
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
pub(crate) fn render_text(snapshot: &Snapshot) -> String {
    openmetrics_to_text(&render_openmetrics(snapshot))
}

/// `OpenMetrics` text as `prometheus-client` renders it, in the classic Prometheus text
/// format 0.0.4 (see [`render_text`]; also what `node_exporter`'s textfile collector reads).
#[must_use]
pub(crate) fn openmetrics_to_text(openmetrics: &str) -> String {
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
        ConnectFailureCount, InterfaceMode, MapCount, MapReplyPath, ReasonCount, ReflectedCount,
        SpliceSnapshot,
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
                passed: vec![ReasonCount {
                    reason: "no_flow".to_owned(),
                    packets: 3,
                    bytes: 300,
                }],
                dropped: vec![ReasonCount {
                    reason: "rate_limited".to_owned(),
                    packets: 4,
                    bytes: 240,
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
                reply_paths: vec![MapReplyPath {
                    listen: 10053,
                    target: 53,
                    protocol: "udp".to_owned(),
                    reply_path: "stateless".to_owned(),
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
            "reflector_map_reply_path{listen=\"10053\",target=\"53\",protocol=\"udp\",reply_path=\"stateless\"} 1",
            "reflector_passed_packets_total{reason=\"no_flow\"} 3",
            "reflector_passed_bytes_total{reason=\"no_flow\"} 300",
            "reflector_dropped_packets_total{reason=\"rate_limited\"} 4",
            "reflector_dropped_bytes_total{reason=\"rate_limited\"} 240",
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
