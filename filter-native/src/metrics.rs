//! The per tool × env metrics of `policy::metrics`, defined once per configuration with
//! labels (the ABI's metrics take label values per update), under the namespace `wasmcustom`
//! (`metrics_namespace` in the generated config): the wasm filter's names and labels, which
//! Prometheus output prefixes `envoy_wasmcustom_`. Per call: one request count and in-flight
//! gauge up at the start; the outcome counter, in-flight down and two histogram samples at
//! the end. Per configuration: the pinning drift gauge of each env.

use policy::exchange::CallOutcome;
use policy::metrics;

use crate::abi::{Config, Filter, MetricKind};

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

/// Logs what drifted from the pinned tools (`gateway.pinning`) and sets each env's drift
/// gauge (with metrics enabled), as the wasm filter does: every env is set, 0 included, so a
/// re-pin brings the gauge back down.
pub fn pin_drift(gateway: &policy::Gateway, config: Config) {
    let settings = gateway.config();
    let Some(pinning) = &settings.manifest.pinning else {
        return;
    };
    for line in pinning.warnings() {
        crate::abi::log_warn(&line);
    }
    if !settings.metrics.enabled {
        return;
    }
    let Some(id) = config.define(MetricKind::Gauge, metrics::PIN_DRIFT, &["env"]) else {
        return;
    };
    for env in &settings.manifest.envs {
        let count = pinning.drifted_in(&env.name);
        config.set_gauge(id, &[&env.name], u64::try_from(count).unwrap_or(u64::MAX));
    }
}
