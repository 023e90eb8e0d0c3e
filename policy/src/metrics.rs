//! The stats the filter exports, named so that Envoy's `stats_tags` regexes turn them into
//! Prometheus series with labels. One module owns both sides of that contract: the stat names
//! the filter defines and the regexes the generated bootstrap carries.
//!
//! A stat name is the metric name, then `key=value` parts separated by dots, the free-form
//! part last: `meshmux_tool_requests_total.env=Prod.tool=query_metrics.debug`. Env names
//! never contain `=` (see [`crate::manifest::valid_env_name`]), so the env is the run of
//! non-`=` characters after `env=`; the tool name (or principal) is everything after `tool=`
//! (`principal=`) to the end, dots, `@` and `=` included. Envoy stores the stat as
//! `wasmcustom.<name>`; each regex's first group (`.key=value`) is cut out of the name and its
//! second group is the label value, which leaves exactly the metric name, and Prometheus
//! output drops the `wasmcustom` namespace.

use serde::{Deserialize, Serialize};

/// Tool calls that named a known tool and env (forwarded or denied).
pub const REQUESTS: &str = "meshmux_tool_requests_total";
/// Tool calls whose answer was a result without `isError: true`.
pub const SUCCESSES: &str = "meshmux_tool_request_success_total";
/// Tool calls that failed, by [`ErrorType`].
pub const ERRORS: &str = "meshmux_tool_request_errors_total";
/// Milliseconds from the request's headers to the end of its response.
pub const DURATION: &str = "meshmux_tool_request_duration_ms";
/// Bytes of response body the client received.
pub const RESPONSE_SIZE: &str = "meshmux_tool_response_size_bytes";
/// Tool calls between their request and the end of their response.
pub const IN_FLIGHT: &str = "meshmux_tool_requests_in_flight";
/// Tool calls per caller (only with `metrics.user_level_metrics`).
pub const USER_CALLS: &str = "meshmux_user_tool_calls_total";

/// Tools of one env whose definition is not the pinned one (`gateway.pinning`), a gauge set
/// from every new manifest: changed and new tools, served or blocked.
pub const PIN_DRIFT: &str = "meshmux_pinning_drifted_tools";

/// The label of callers without a token (no `auth` block).
pub const ANONYMOUS: &str = "anonymous";

/// Why a tool call counts as an error (the `error_type` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// The caller's roles do not allow the tool in that env; nothing was forwarded.
    Denied,
    /// No usable answer from the backend: not reachable, failing health checks, a non-2xx
    /// status, a session that could not be opened, or a stream that ended before the answer.
    Upstream,
    /// The backend answered with a JSON-RPC `error`.
    Jsonrpc,
    /// The backend answered with a tool result marked `isError: true`.
    Tool,
}

impl ErrorType {
    pub const ALL: [ErrorType; 4] = [
        ErrorType::Denied,
        ErrorType::Upstream,
        ErrorType::Jsonrpc,
        ErrorType::Tool,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Denied => "denied",
            ErrorType::Upstream => "upstream",
            ErrorType::Jsonrpc => "jsonrpc",
            ErrorType::Tool => "tool",
        }
    }

    /// A small index, for per-type arrays.
    pub fn index(self) -> usize {
        match self {
            ErrorType::Denied => 0,
            ErrorType::Upstream => 1,
            ErrorType::Jsonrpc => 2,
            ErrorType::Tool => 3,
        }
    }
}

/// The stat name of a per tool × env metric.
pub fn series(metric: &str, env: &str, tool: &str) -> String {
    format!("{metric}.env={env}.tool={tool}")
}

/// The stat name of the error counter of one tool × env × error type.
pub fn errors(env: &str, tool: &str, error_type: ErrorType) -> String {
    format!(
        "{ERRORS}.env={env}.error_type={}.tool={tool}",
        error_type.as_str()
    )
}

/// The stat name of one env's drifted-tools gauge.
pub fn pin_drift(env: &str) -> String {
    format!("{PIN_DRIFT}.env={env}")
}

/// The stat name of one caller's call counter.
pub fn user_calls(principal: &str) -> String {
    format!("{USER_CALLS}.principal={principal}")
}

/// `(tag name, regex)` for the bootstrap's `stats_config.stats_tags` (RE2 syntax). Envoy
/// refuses a tag name given twice, so each label has one regex that fits every metric.
pub fn stats_tags() -> [(&'static str, &'static str); 4] {
    [
        (
            "env",
            r"^wasmcustom\.meshmux_\w+(\.env=([^=]+))(?:\.(?:error_type|tool)=|$)",
        ),
        (
            "error_type",
            r"^wasmcustom\.meshmux_\w+\.env=[^=]+(\.error_type=(\w+))\.tool=",
        ),
        (
            "tool",
            r"^wasmcustom\.meshmux_\w+\.env=[^=]+(?:\.error_type=\w+)?(\.tool=(.+))$",
        ),
        (
            "principal",
            r"^wasmcustom\.meshmux_user_tool_calls_total(\.principal=(.+))$",
        ),
    ]
}

/// Histogram buckets of the latency histogram, in milliseconds.
pub const DURATION_BUCKETS_MS: [f64; 15] = [
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0,
];

/// Histogram buckets of the response-size histogram, in bytes.
pub const SIZE_BUCKETS_BYTES: [f64; 10] = [
    128.0, 512.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];

/// The metrics settings the filter and the generated listener follow (the config file's
/// `metrics` block; absent means the defaults, as in seed 000).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `false`: the filter counts nothing and the listener has no metrics route.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where the listener serves the Prometheus text.
    #[serde(default = "default_path")]
    pub path: String,
    /// Count calls per principal too (one series per caller: mind the cardinality).
    #[serde(default)]
    pub user_level_metrics: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            enabled: true,
            path: default_path(),
            user_level_metrics: false,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_path() -> String {
    "/metrics".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_put_the_free_form_part_last() {
        assert_eq!(
            series(REQUESTS, "Prod", "query_metrics.debug"),
            "meshmux_tool_requests_total.env=Prod.tool=query_metrics.debug"
        );
        assert_eq!(
            errors("eu.prod", "a=b", ErrorType::Tool),
            "meshmux_tool_request_errors_total.env=eu.prod.error_type=tool.tool=a=b"
        );
        assert_eq!(
            user_calls("bot:ci@example.com"),
            "meshmux_user_tool_calls_total.principal=bot:ci@example.com"
        );
    }

    /// What Envoy's tag extractors do with a stat name: every regex runs on the full name; the
    /// first group is cut out, the second is the tag value.
    fn extract(stat: &str) -> (String, Vec<(&'static str, String)>) {
        let full = format!("wasmcustom.{stat}");
        let mut cut = vec![false; full.len()];
        let mut tags = vec![];
        for (name, re) in stats_tags() {
            let re = regex::Regex::new(re).unwrap();
            if let Some(c) = re.captures(&full) {
                let remove = c.get(1).unwrap();
                cut[remove.range()].iter_mut().for_each(|b| *b = true);
                tags.push((name, c.get(2).unwrap().as_str().to_owned()));
            }
        }
        let kept: String = full
            .char_indices()
            .filter(|(i, _)| !cut[*i])
            .map(|(_, c)| c)
            .collect();
        (kept, tags)
    }

    #[test]
    fn stats_tags_give_the_metric_name_and_unambiguous_labels() {
        let check = |stat: String, metric: &str, expected: &[(&str, &str)]| {
            let (name, tags) = extract(&stat);
            assert_eq!(name, format!("wasmcustom.{metric}"), "{stat}");
            let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(tags, expected, "{stat}");
        };
        for metric in [REQUESTS, SUCCESSES, DURATION, RESPONSE_SIZE, IN_FLIGHT] {
            check(
                series(metric, "Prod", "search_logs"),
                metric,
                &[("env", "Prod"), ("tool", "search_logs")],
            );
        }
        // Dots in env and tool, and a tool whose name looks like our own markers.
        check(
            series(REQUESTS, "eu.tool.prod", "query_metrics.debug"),
            REQUESTS,
            &[("env", "eu.tool.prod"), ("tool", "query_metrics.debug")],
        );
        check(
            series(REQUESTS, "a-b_c", "x.env=y.tool=z"),
            REQUESTS,
            &[("env", "a-b_c"), ("tool", "x.env=y.tool=z")],
        );
        for e in ErrorType::ALL {
            check(
                errors("eu.prod", "query_metrics.debug", e),
                ERRORS,
                &[
                    ("env", "eu.prod"),
                    ("error_type", e.as_str()),
                    ("tool", "query_metrics.debug"),
                ],
            );
        }
        // A per-env series: the env runs to the end, dots included.
        for env in ["Prod", "eu.tool.prod"] {
            check(pin_drift(env), PIN_DRIFT, &[("env", env)]);
        }
        check(
            user_calls("bot:ci.runner@example.com"),
            USER_CALLS,
            &[("principal", "bot:ci.runner@example.com")],
        );
        check(
            user_calls(ANONYMOUS),
            USER_CALLS,
            &[("principal", "anonymous")],
        );
    }

    #[test]
    fn error_types_have_distinct_labels_and_indexes() {
        let labels: Vec<_> = ErrorType::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(labels, ["denied", "upstream", "jsonrpc", "tool"]);
        for (i, e) in ErrorType::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
    }

    #[test]
    fn settings_default_like_seed_000() {
        let s: MetricsSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, MetricsSettings::default());
        assert!(s.enabled && !s.user_level_metrics);
        assert_eq!(s.path, "/metrics");
    }
}
