//! authsvc's Prometheus metrics on the `prometheus` crate: counters by kind and one latency
//! histogram by route, in the text format 0.0.4 that `/metrics` has always served.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

const BUCKETS: [f64; 9] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

struct Families {
    registry: Registry,
    logins: IntCounterVec,
    minted: IntCounterVec,
    refreshed: IntCounter,
    revoked: IntCounter,
    errors: IntCounterVec,
    latency: HistogramVec,
}

impl Families {
    fn new() -> prometheus::Result<Families> {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            prometheus::Result::Ok(c)
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            prometheus::Result::Ok(c)
        };
        let logins = counter_vec(
            "authsvc_logins_total",
            "Completed upstream logins.",
            &["idp", "purpose"],
        )?;
        let minted = counter_vec(
            "authsvc_tokens_minted_total",
            "Access tokens issued (user: OAuth code exchange; bot: UI or CLI).",
            &["kind"],
        )?;
        let refreshed = counter("authsvc_tokens_refreshed_total", "Refresh-token grants.")?;
        let revoked = counter("authsvc_tokens_revoked_total", "Bot tokens revoked.")?;
        let errors = counter_vec("authsvc_errors_total", "Error answers by kind.", &["kind"])?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "authsvc_request_duration_seconds",
                "Request latency by route.",
            )
            .buckets(BUCKETS.to_vec()),
            &["route"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Families {
            registry,
            logins,
            minted,
            refreshed,
            revoked,
            errors,
            latency,
        })
    }
}

/// The process-wide metrics (errors are counted where responses are built). Label values
/// come from our own code (route templates, kinds), never from request bytes.
pub struct Metrics(Option<Families>);

pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    /// Fails only on an invalid metric name, which the unit test below rules out; then the
    /// metrics are empty rather than the process down.
    fn new() -> Metrics {
        match Families::new() {
            Ok(f) => Metrics(Some(f)),
            Err(e) => {
                tracing::error!("metrics disabled: {e}");
                Metrics(None)
            }
        }
    }
    pub fn login(&self, idp: &str, purpose: &str) {
        if let Some(f) = &self.0 {
            f.logins.with_label_values(&[idp, purpose]).inc();
        }
    }
    pub fn minted(&self, kind: &str) {
        if let Some(f) = &self.0 {
            f.minted.with_label_values(&[kind]).inc();
        }
    }
    pub fn refreshed(&self) {
        if let Some(f) = &self.0 {
            f.refreshed.inc();
        }
    }
    pub fn revoked(&self) {
        if let Some(f) = &self.0 {
            f.revoked.inc();
        }
    }
    pub fn error(&self, kind: &str) {
        if let Some(f) = &self.0 {
            f.errors.with_label_values(&[kind]).inc();
        }
    }
    pub fn observe(&self, route: &str, elapsed: Duration) {
        if let Some(f) = &self.0 {
            f.latency
                .with_label_values(&[route])
                .observe(elapsed.as_secs_f64());
        }
    }

    /// The text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let Some(f) = &self.0 else {
            return String::new();
        };
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&f.registry.gather(), &mut out) {
            tracing::error!("encoding metrics: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_family_registers_and_renders_with_its_labels() {
        let m = Metrics::new();
        assert!(m.0.is_some(), "a metric name or label is invalid");
        m.login("dev", "ui");
        m.minted("bot");
        m.refreshed();
        m.error("store");
        m.observe("/ui/tokens", Duration::from_millis(20));
        let text = m.render();
        for line in [
            "# TYPE authsvc_logins_total counter",
            r#"authsvc_logins_total{idp="dev",purpose="ui"} 1"#,
            r#"authsvc_tokens_minted_total{kind="bot"} 1"#,
            "authsvc_tokens_refreshed_total 1",
            "authsvc_tokens_revoked_total 0",
            r#"authsvc_errors_total{kind="store"} 1"#,
            "# TYPE authsvc_request_duration_seconds histogram",
            r#"authsvc_request_duration_seconds_bucket{route="/ui/tokens",le="0.01"} 0"#,
            r#"authsvc_request_duration_seconds_bucket{route="/ui/tokens",le="0.025"} 1"#,
            r#"authsvc_request_duration_seconds_bucket{route="/ui/tokens",le="+Inf"} 1"#,
            r#"authsvc_request_duration_seconds_count{route="/ui/tokens"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
