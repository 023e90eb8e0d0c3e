//! The per tool × env metrics of `policy::metrics`, defined once per configuration with
//! labels (the ABI's metrics take label values per update), under the namespace `wasmcustom`
//! (`metrics_namespace` in the generated config), so Prometheus sees the same series from
//! either filter. Per call: one request count and in-flight gauge up at the start; the
//! outcome counter, in-flight down and two histogram samples at the end.

use policy::exchange::CallOutcome;
use policy::metrics;

use crate::abi::{Filter, MetricKind};

/// Metric ids of one configuration (`None`: Envoy refused the definition, logged).
pub struct Ids {
    requests: Option<usize>,
    in_flight: Option<usize>,
    duration: Option<usize>,
    size: Option<usize>,
    successes: Option<usize>,
    errors: Option<usize>,
    users: Option<usize>,
}

const ENV_TOOL: [&str; 2] = ["env", "tool"];

impl Ids {
    pub fn define(mut def: impl FnMut(MetricKind, &str, &[&str]) -> Option<usize>) -> Ids {
        Ids {
            requests: def(MetricKind::Counter, metrics::REQUESTS, &ENV_TOOL),
            in_flight: def(MetricKind::Gauge, metrics::IN_FLIGHT, &ENV_TOOL),
            duration: def(MetricKind::Histogram, metrics::DURATION, &ENV_TOOL),
            size: def(MetricKind::Histogram, metrics::RESPONSE_SIZE, &ENV_TOOL),
            successes: def(MetricKind::Counter, metrics::SUCCESSES, &ENV_TOOL),
            errors: def(
                MetricKind::Counter,
                metrics::ERRORS,
                &["env", "error_type", "tool"],
            ),
            users: def(MetricKind::Counter, metrics::USER_CALLS, &["principal"]),
        }
    }

    pub fn user_call(&self, f: Filter, principal: &str) {
        if let Some(id) = self.users {
            f.add_counter(id, &[principal], 1);
        }
    }
}

/// One `tools/call` being counted.
pub struct Tally {
    env: String,
    tool: String,
    started_ns: u64,
}

impl Tally {
    pub fn begin(ids: &Ids, f: Filter, env: &str, tool: &str, started_ns: u64) -> Tally {
        let labels = [env, tool];
        if let Some(id) = ids.requests {
            f.add_counter(id, &labels, 1);
        }
        if let Some(id) = ids.in_flight {
            f.add_gauge(id, &labels, 1);
        }
        Tally {
            env: env.to_owned(),
            tool: tool.to_owned(),
            started_ns,
        }
    }

    pub fn finish(self, ids: &Ids, f: Filter, now_ns: u64, outcome: CallOutcome, size: u64) {
        let labels = [self.env.as_str(), self.tool.as_str()];
        match outcome {
            CallOutcome::Success => {
                if let Some(id) = ids.successes {
                    f.add_counter(id, &labels, 1);
                }
            }
            CallOutcome::Error(e) => {
                if let Some(id) = ids.errors {
                    f.add_counter(id, &[&self.env, e.as_str(), &self.tool], 1);
                }
            }
        }
        if let Some(id) = ids.in_flight {
            f.add_gauge(id, &labels, -1);
        }
        if let Some(id) = ids.duration
            && self.started_ns != 0
            && now_ns >= self.started_ns
        {
            f.record(id, &labels, (now_ns - self.started_ns) / 1_000_000);
        }
        if let Some(id) = ids.size {
            f.record(id, &labels, size);
        }
    }
}
