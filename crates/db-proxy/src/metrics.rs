//! Counters and the Prometheus text exposition. Counters are atomics updated by connection and
//! check tasks without locks; rendering reads them with the health and writer state.

use std::fmt::Write;
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

/// Renders the Prometheus text format (version 0.0.4).
pub fn render(m: &Metrics, facts: &[BackendFacts<'_>]) -> String {
    let mut s = String::new();
    let family = |s: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut s,
        "keel_proxy_connections_accepted_total",
        "counter",
        "Client connections accepted.",
    );
    let _ = writeln!(
        s,
        "keel_proxy_connections_accepted_total {}",
        m.accepted.load(Relaxed)
    );
    family(
        &mut s,
        "keel_proxy_connections_rejected_total",
        "counter",
        "Client connections refused with an error packet.",
    );
    let _ = writeln!(
        s,
        "keel_proxy_connections_rejected_total{{reason=\"limit\"}} {}",
        m.rejected_limit.load(Relaxed)
    );
    let _ = writeln!(
        s,
        "keel_proxy_connections_rejected_total{{reason=\"no_writer\"}} {}",
        m.rejected_no_writer.load(Relaxed)
    );
    family(
        &mut s,
        "keel_proxy_writer_changes_total",
        "counter",
        "Times this proxy saw the writer move to another node.",
    );
    let _ = writeln!(
        s,
        "keel_proxy_writer_changes_total {}",
        m.writer_changes.load(Relaxed)
    );

    let per =
        |s: &mut String, name: &str, f: &dyn Fn(&BackendMetrics, &BackendFacts<'_>) -> String| {
            for (b, fct) in m.backends.iter().zip(facts) {
                let _ = writeln!(s, "{name}{{backend=\"{}\"}} {}", fct.name, f(b, fct));
            }
        };
    family(
        &mut s,
        "keel_proxy_backend_connections_active",
        "gauge",
        "Open client connections per backend.",
    );
    per(&mut s, "keel_proxy_backend_connections_active", &|b, _| {
        b.active.load(Relaxed).to_string()
    });
    family(
        &mut s,
        "keel_proxy_backend_connections_total",
        "counter",
        "Client connections forwarded per backend.",
    );
    per(&mut s, "keel_proxy_backend_connections_total", &|b, _| {
        b.total.load(Relaxed).to_string()
    });
    family(
        &mut s,
        "keel_proxy_backend_connections_closed_total",
        "counter",
        "Connections closed by the proxy (writer moved, node down).",
    );
    per(
        &mut s,
        "keel_proxy_backend_connections_closed_total",
        &|b, _| b.closed_by_proxy.load(Relaxed).to_string(),
    );
    family(
        &mut s,
        "keel_proxy_backend_bytes_total",
        "counter",
        "Bytes forwarded per backend and direction.",
    );
    for (b, f) in m.backends.iter().zip(facts) {
        let _ = writeln!(
            s,
            "keel_proxy_backend_bytes_total{{backend=\"{}\",direction=\"to_server\"}} {}",
            f.name,
            b.bytes_to_server.load(Relaxed)
        );
        let _ = writeln!(
            s,
            "keel_proxy_backend_bytes_total{{backend=\"{}\",direction=\"to_client\"}} {}",
            f.name,
            b.bytes_to_client.load(Relaxed)
        );
    }
    family(
        &mut s,
        "keel_proxy_backend_healthy",
        "gauge",
        "1 when the backend passes its Galera health check (with rise/fall).",
    );
    per(&mut s, "keel_proxy_backend_healthy", &|_, f| {
        (f.healthy as u8).to_string()
    });
    family(
        &mut s,
        "keel_proxy_backend_writer",
        "gauge",
        "1 for the node this proxy sends connections to.",
    );
    per(&mut s, "keel_proxy_backend_writer", &|_, f| {
        (f.writer as u8).to_string()
    });
    family(
        &mut s,
        "keel_proxy_backend_drained",
        "gauge",
        "1 when the node is drained.",
    );
    per(&mut s, "keel_proxy_backend_drained", &|_, f| {
        (f.drained as u8).to_string()
    });
    family(
        &mut s,
        "keel_proxy_check_failures_total",
        "counter",
        "Failed health checks per backend.",
    );
    per(&mut s, "keel_proxy_check_failures_total", &|b, _| {
        b.check_failures.load(Relaxed).to_string()
    });
    family(
        &mut s,
        "keel_proxy_check_duration_seconds",
        "histogram",
        "Health check latency per backend.",
    );
    for (b, f) in m.backends.iter().zip(facts) {
        for (i, le) in CHECK_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "keel_proxy_check_duration_seconds_bucket{{backend=\"{}\",le=\"{le}\"}} {}",
                f.name,
                b.check_buckets[i].load(Relaxed)
            );
        }
        let n = b.checks.load(Relaxed);
        let _ = writeln!(
            s,
            "keel_proxy_check_duration_seconds_bucket{{backend=\"{}\",le=\"+Inf\"}} {n}",
            f.name
        );
        let _ = writeln!(
            s,
            "keel_proxy_check_duration_seconds_sum{{backend=\"{}\"}} {}",
            f.name,
            b.check_sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            s,
            "keel_proxy_check_duration_seconds_count{{backend=\"{}\"}} {n}",
            f.name
        );
    }
    s
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
}
