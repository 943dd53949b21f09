//! Counters and the Prometheus text exposition. Counters are atomics updated by connection and
//! check tasks without locks; a scrape copies them, with the health and writer state, into a
//! snapshot that `prometheus-client` encodes (so the text format is the crate's, not ours).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Upper bounds (seconds) of the check-latency histogram buckets.
pub const CHECK_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Counters of one backend.
#[derive(Default, Debug)]
pub struct BackendMetrics {
    pub active: AtomicI64,
    pub total: AtomicU64,
    pub bytes_to_server: AtomicU64,
    pub bytes_to_client: AtomicU64,
    /// Connections the proxy closed because the writer moved or the node went down.
    pub closed_by_proxy: AtomicU64,
    pub checks: AtomicU64,
    pub check_failures: AtomicU64,
    pub check_buckets: [AtomicU64; CHECK_BUCKETS.len()],
    pub check_sum_micros: AtomicU64,
    pub last_check_micros: AtomicU64,
}

impl BackendMetrics {
    pub fn record_check(&self, secs: f64, failed: bool) {
        self.checks.fetch_add(1, Relaxed);
        if failed {
            self.check_failures.fetch_add(1, Relaxed);
        }
        for (i, b) in CHECK_BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.check_buckets[i].fetch_add(1, Relaxed);
            }
        }
        let us = (secs * 1e6) as u64;
        self.check_sum_micros.fetch_add(us, Relaxed);
        self.last_check_micros.store(us, Relaxed);
    }
}

/// Proxy-wide counters.
#[derive(Default, Debug)]
pub struct Metrics {
    pub accepted: AtomicU64,
    pub rejected_limit: AtomicU64,
    pub rejected_no_writer: AtomicU64,
    pub writer_changes: AtomicU64,
    pub backends: Vec<BackendMetrics>,
}

impl Metrics {
    pub fn new(n: usize) -> Metrics {
        Metrics {
            backends: (0..n).map(|_| BackendMetrics::default()).collect(),
            ..Default::default()
        }
    }
}

/// Per-backend facts that are not counters.
pub struct BackendFacts<'a> {
    pub name: &'a str,
    pub healthy: bool,
    pub writer: bool,
    pub drained: bool,
}

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Renders the Prometheus text format (version 0.0.4) through `prometheus-client`'s encoder.
pub fn render(m: &Metrics, facts: &[BackendFacts<'_>]) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot::take(m, facts)));
    let mut s = String::new();
    // Writing into a String cannot fail; an encoder error would leave the text cut short.
    if let Err(e) = prometheus_text::encode(&mut s, &registry) {
        tracing::warn!(error = %e, "rendering the metrics failed");
    }
    s
}

/// The values of one scrape, copied out of the atomics so the collector owns them.
#[derive(Debug)]
struct Snapshot {
    accepted: u64,
    rejected_limit: u64,
    rejected_no_writer: u64,
    writer_changes: u64,
    backends: Vec<BackendSnapshot>,
}

#[derive(Debug)]
struct BackendSnapshot {
    name: String,
    healthy: bool,
    writer: bool,
    drained: bool,
    active: i64,
    total: u64,
    closed_by_proxy: u64,
    bytes_to_server: u64,
    bytes_to_client: u64,
    checks: u64,
    check_failures: u64,
    /// Cumulative counts, one per [`CHECK_BUCKETS`] bound.
    check_buckets: [u64; CHECK_BUCKETS.len()],
    check_sum_secs: f64,
}

impl Snapshot {
    fn take(m: &Metrics, facts: &[BackendFacts<'_>]) -> Snapshot {
        Snapshot {
            accepted: m.accepted.load(Relaxed),
            rejected_limit: m.rejected_limit.load(Relaxed),
            rejected_no_writer: m.rejected_no_writer.load(Relaxed),
            writer_changes: m.writer_changes.load(Relaxed),
            backends: m
                .backends
                .iter()
                .zip(facts)
                .map(|(b, f)| BackendSnapshot {
                    name: f.name.to_owned(),
                    healthy: f.healthy,
                    writer: f.writer,
                    drained: f.drained,
                    active: b.active.load(Relaxed),
                    total: b.total.load(Relaxed),
                    closed_by_proxy: b.closed_by_proxy.load(Relaxed),
                    bytes_to_server: b.bytes_to_server.load(Relaxed),
                    bytes_to_client: b.bytes_to_client.load(Relaxed),
                    checks: b.checks.load(Relaxed),
                    check_failures: b.check_failures.load(Relaxed),
                    check_buckets: std::array::from_fn(|i| b.check_buckets[i].load(Relaxed)),
                    check_sum_secs: b.check_sum_micros.load(Relaxed) as f64 / 1e6,
                })
                .collect(),
        }
    }
}

fn counter(enc: &mut MetricEncoder<'_>, v: u64) -> fmt::Result {
    enc.encode_counter::<NoLabelSet, _, u64>(&v, None)
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        // prometheus-client appends `_total` to counter names, so counters are declared without it.
        let mut e = enc.encode_descriptor(
            "keel_proxy_connections_accepted",
            "Client connections accepted.",
            None,
            MetricType::Counter,
        )?;
        counter(&mut e, self.accepted)?;

        let mut e = enc.encode_descriptor(
            "keel_proxy_connections_rejected",
            "Client connections refused with an error packet.",
            None,
            MetricType::Counter,
        )?;
        counter(
            &mut e.encode_family(&[("reason", "limit")])?,
            self.rejected_limit,
        )?;
        counter(
            &mut e.encode_family(&[("reason", "no_writer")])?,
            self.rejected_no_writer,
        )?;

        let mut e = enc.encode_descriptor(
            "keel_proxy_writer_changes",
            "Times this proxy saw the writer move to another node.",
            None,
            MetricType::Counter,
        )?;
        counter(&mut e, self.writer_changes)?;

        let mut per_backend = |name: &str,
                               help: &str,
                               kind: MetricType,
                               value: &dyn Fn(&BackendSnapshot) -> i64|
         -> fmt::Result {
            let mut e = enc.encode_descriptor(name, help, None, kind)?;
            for b in &self.backends {
                let labels = [("backend", b.name.as_str())];
                let mut f = e.encode_family(&labels)?;
                let v = value(b);
                if matches!(kind, MetricType::Counter) {
                    counter(&mut f, u64::try_from(v).unwrap_or(0))?;
                } else {
                    f.encode_gauge(&v)?;
                }
            }
            Ok(())
        };
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        per_backend(
            "keel_proxy_backend_connections_active",
            "Open client connections per backend.",
            MetricType::Gauge,
            &|b| b.active,
        )?;
        per_backend(
            "keel_proxy_backend_connections",
            "Client connections forwarded per backend.",
            MetricType::Counter,
            &|b| clamp(b.total),
        )?;
        per_backend(
            "keel_proxy_backend_connections_closed",
            "Connections closed by the proxy (writer moved, node down).",
            MetricType::Counter,
            &|b| clamp(b.closed_by_proxy),
        )?;
        let mut e = enc.encode_descriptor(
            "keel_proxy_backend_bytes",
            "Bytes forwarded per backend and direction.",
            None,
            MetricType::Counter,
        )?;
        for b in &self.backends {
            for (direction, v) in [
                ("to_server", b.bytes_to_server),
                ("to_client", b.bytes_to_client),
            ] {
                let labels = [("backend", b.name.as_str()), ("direction", direction)];
                counter(&mut e.encode_family(&labels)?, v)?;
            }
        }
        let mut per_backend =
            |name: &str, help: &str, value: &dyn Fn(&BackendSnapshot) -> bool| -> fmt::Result {
                let mut e = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
                for b in &self.backends {
                    let labels = [("backend", b.name.as_str())];
                    e.encode_family(&labels)?
                        .encode_gauge(&i64::from(value(b)))?;
                }
                Ok(())
            };
        per_backend(
            "keel_proxy_backend_healthy",
            "1 when the backend passes its Galera health check (with rise/fall).",
            &|b| b.healthy,
        )?;
        per_backend(
            "keel_proxy_backend_writer",
            "1 for the node this proxy sends connections to.",
            &|b| b.writer,
        )?;
        per_backend(
            "keel_proxy_backend_drained",
            "1 when the node is drained.",
            &|b| b.drained,
        )?;
        let mut e = enc.encode_descriptor(
            "keel_proxy_check_failures",
            "Failed health checks per backend.",
            None,
            MetricType::Counter,
        )?;
        for b in &self.backends {
            counter(
                &mut e.encode_family(&[("backend", b.name.as_str())])?,
                b.check_failures,
            )?;
        }
        let mut e = enc.encode_descriptor(
            "keel_proxy_check_duration_seconds",
            "Health check latency per backend.",
            None,
            MetricType::Histogram,
        )?;
        for b in &self.backends {
            // The encoder takes per-bucket counts and sums them itself; ours are cumulative.
            let mut below = 0;
            let mut buckets: Vec<(f64, u64)> = CHECK_BUCKETS
                .iter()
                .zip(b.check_buckets)
                .map(|(le, cum)| {
                    let n = cum.saturating_sub(below);
                    below = cum;
                    (*le, n)
                })
                .collect();
            buckets.push((f64::INFINITY, b.checks.saturating_sub(below)));
            e.encode_family(&[("backend", b.name.as_str())])?
                .encode_histogram::<NoLabelSet>(b.check_sum_secs, b.checks, &buckets, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_and_histogram() {
        let m = Metrics::new(2);
        m.backends[0].record_check(0.003, false);
        m.backends[0].record_check(2.0, true);
        m.backends[1].total.fetch_add(5, Relaxed);
        let facts = [
            BackendFacts {
                name: "n1",
                healthy: true,
                writer: true,
                drained: false,
            },
            BackendFacts {
                name: "n2",
                healthy: false,
                writer: false,
                drained: true,
            },
        ];
        let t = render(&m, &facts);
        assert!(t.contains("keel_proxy_backend_healthy{backend=\"n1\"} 1"));
        assert!(t.contains("keel_proxy_backend_healthy{backend=\"n2\"} 0"));
        assert!(t.contains("keel_proxy_backend_connections_total{backend=\"n2\"} 5"));
        assert!(
            t.contains("keel_proxy_check_duration_seconds_bucket{backend=\"n1\",le=\"0.005\"} 1")
        );
        assert!(
            t.contains("keel_proxy_check_duration_seconds_bucket{backend=\"n1\",le=\"+Inf\"} 2")
        );
        assert!(t.contains("keel_proxy_check_failures_total{backend=\"n1\"} 1"));
        // Every sample line belongs to a declared family.
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let fam = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(t.contains(&format!("# TYPE {fam} ")), "{l}");
        }
    }

    /// The whole exposition of one backend, byte for byte: names, HELP texts, label order and
    /// number formats are what dashboards and alerts match.
    #[test]
    fn exposition_is_stable() {
        let m = Metrics::new(1);
        m.accepted.fetch_add(3, Relaxed);
        m.rejected_no_writer.fetch_add(1, Relaxed);
        m.backends[0].active.fetch_add(2, Relaxed);
        m.backends[0].bytes_to_client.fetch_add(7, Relaxed);
        m.backends[0].record_check(0.003, false);
        m.backends[0].record_check(2.0, true);
        let facts = [BackendFacts {
            name: "n1",
            healthy: true,
            writer: true,
            drained: false,
        }];
        let expected = concat!(
            "# HELP keel_proxy_connections_accepted_total Client connections accepted.\n",
            "# TYPE keel_proxy_connections_accepted_total counter\n",
            "keel_proxy_connections_accepted_total 3\n",
            "# HELP keel_proxy_connections_rejected_total Client connections refused with an error packet.\n",
            "# TYPE keel_proxy_connections_rejected_total counter\n",
            "keel_proxy_connections_rejected_total{reason=\"limit\"} 0\n",
            "keel_proxy_connections_rejected_total{reason=\"no_writer\"} 1\n",
            "# HELP keel_proxy_writer_changes_total Times this proxy saw the writer move to another node.\n",
            "# TYPE keel_proxy_writer_changes_total counter\n",
            "keel_proxy_writer_changes_total 0\n",
            "# HELP keel_proxy_backend_connections_active Open client connections per backend.\n",
            "# TYPE keel_proxy_backend_connections_active gauge\n",
            "keel_proxy_backend_connections_active{backend=\"n1\"} 2\n",
            "# HELP keel_proxy_backend_connections_total Client connections forwarded per backend.\n",
            "# TYPE keel_proxy_backend_connections_total counter\n",
            "keel_proxy_backend_connections_total{backend=\"n1\"} 0\n",
            "# HELP keel_proxy_backend_connections_closed_total Connections closed by the proxy (writer moved, node down).\n",
            "# TYPE keel_proxy_backend_connections_closed_total counter\n",
            "keel_proxy_backend_connections_closed_total{backend=\"n1\"} 0\n",
            "# HELP keel_proxy_backend_bytes_total Bytes forwarded per backend and direction.\n",
            "# TYPE keel_proxy_backend_bytes_total counter\n",
            "keel_proxy_backend_bytes_total{backend=\"n1\",direction=\"to_server\"} 0\n",
            "keel_proxy_backend_bytes_total{backend=\"n1\",direction=\"to_client\"} 7\n",
            "# HELP keel_proxy_backend_healthy 1 when the backend passes its Galera health check (with rise/fall).\n",
            "# TYPE keel_proxy_backend_healthy gauge\n",
            "keel_proxy_backend_healthy{backend=\"n1\"} 1\n",
            "# HELP keel_proxy_backend_writer 1 for the node this proxy sends connections to.\n",
            "# TYPE keel_proxy_backend_writer gauge\n",
            "keel_proxy_backend_writer{backend=\"n1\"} 1\n",
            "# HELP keel_proxy_backend_drained 1 when the node is drained.\n",
            "# TYPE keel_proxy_backend_drained gauge\n",
            "keel_proxy_backend_drained{backend=\"n1\"} 0\n",
            "# HELP keel_proxy_check_failures_total Failed health checks per backend.\n",
            "# TYPE keel_proxy_check_failures_total counter\n",
            "keel_proxy_check_failures_total{backend=\"n1\"} 1\n",
            "# HELP keel_proxy_check_duration_seconds Health check latency per backend.\n",
            "# TYPE keel_proxy_check_duration_seconds histogram\n",
            "keel_proxy_check_duration_seconds_bucket{backend=\"n1\",le=\"0.001\"} 0\n",
            "keel_proxy_check_duration_seconds_bucket{backend=\"n1\",le=\"0.0025\"} 0\n",
            "keel_proxy_check_duration_seconds_bucket{backend=\"n1\",le=\"0.005\"} 1\n",
            "keel_proxy_check_duration_seconds_bucket{backend=\"n1\",le=\"0.01\"} 1\n",
            "keel_proxy_check_duration_seconds_bucket{backend=\"n1\",le=\"0.025\"} 1\n",
            "keel_proxy_check_duration_seconds_bucket{backend=\"n1\",le=\"0.05\"} 1\n",
            "keel_proxy_check_duration_seconds_bucket{backend=\"n1\",le=\"0.1\"} 1\n",
            "keel_proxy_check_duration_seconds_bucket{backend=\"n1\",le=\"0.25\"} 1\n",
            "keel_proxy_check_duration_seconds_bucket{backend=\"n1\",le=\"0.5\"} 1\n",
            "keel_proxy_check_duration_seconds_bucket{backend=\"n1\",le=\"1\"} 1\n",
            "keel_proxy_check_duration_seconds_bucket{backend=\"n1\",le=\"+Inf\"} 2\n",
            "keel_proxy_check_duration_seconds_sum{backend=\"n1\"} 2.003\n",
            "keel_proxy_check_duration_seconds_count{backend=\"n1\"} 2\n",
        );
        assert_eq!(render(&m, &facts), expected);
    }
}
