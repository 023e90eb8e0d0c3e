//! A small Prometheus text exporter: counters and one latency histogram.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

const BUCKETS: [f64; 9] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

/// The process-wide metrics (errors are counted where responses are built).
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

const HELP: [(&str, &str); 5] = [
    ("authsvc_logins_total", "Completed upstream logins."),
    (
        "authsvc_tokens_minted_total",
        "Access tokens issued (user: OAuth code exchange; bot: UI or CLI).",
    ),
    ("authsvc_tokens_refreshed_total", "Refresh-token grants."),
    ("authsvc_tokens_revoked_total", "Bot tokens revoked."),
    ("authsvc_errors_total", "Error answers by kind."),
];

impl Metrics {
    fn add(&self, name: &'static str, labels: String) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name, labels)).or_default() += 1;
        }
    }
    pub fn login(&self, idp: &str, purpose: &str) {
        self.add(
            "authsvc_logins_total",
            format!("idp=\"{idp}\",purpose=\"{purpose}\""),
        );
    }
    pub fn minted(&self, kind: &str) {
        self.add("authsvc_tokens_minted_total", format!("kind=\"{kind}\""));
    }
    pub fn refreshed(&self) {
        self.add("authsvc_tokens_refreshed_total", String::new());
    }
    pub fn revoked(&self) {
        self.add("authsvc_tokens_revoked_total", String::new());
    }
    pub fn error(&self, kind: &str) {
        self.add("authsvc_errors_total", format!("kind=\"{kind}\""));
    }
    pub fn observe(&self, route: &str, elapsed: Duration) {
        let Ok(mut l) = self.latency.lock() else {
            return;
        };
        let h = l.entry(route.to_owned()).or_default();
        let secs = elapsed.as_secs_f64();
        for (count, bound) in h.counts.iter_mut().zip(BUCKETS) {
            if secs <= bound {
                *count += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(c) = self.counters.lock() {
            for (name, help) in HELP {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for ((n, labels), v) in c.iter().filter(|((n, _), _)| *n == name) {
                    let _ = writeln!(out, "{n}{{{labels}}} {v}");
                }
            }
        }
        let name = "authsvc_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Request latency by route.\n# TYPE {name} histogram"
        );
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                for (count, bound) in h.counts.iter().zip(BUCKETS) {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "{name}_sum{{route=\"{route}\"}} {}", h.sum);
                let _ = writeln!(out, "{name}_count{{route=\"{route}\"}} {}", h.count);
            }
        }
        out
    }
}
