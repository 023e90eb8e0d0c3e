//! The official SDK clients calling every `server-everything` tool through the gateway: the
//! Python SDK (`tests/python/sdk_client.py`, PyPI `mcp`) and the TypeScript SDK
//! (`tests/node/sdk-everything.mjs`: v1 `@modelcontextprotocol/sdk`, v2
//! `@modelcontextprotocol/client`), each with elicitation, sampling and roots callbacks. Both
//! print the same JSON summary; [`Summary::problems`] judges it.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::process::Proc;
use crate::{logs, prereq};

/// The protocol version of the 2026-07-28 era.
pub const MODERN: &str = "2026-07-28";

/// Every tool `server-everything` registers for any client.
pub const BASE_TOOLS: &[&str] = &[
    "echo",
    "get-annotated-message",
    "get-env",
    "get-resource-links",
    "get-resource-reference",
    "get-structured-content",
    "get-sum",
    "get-tiny-image",
    "gzip-file-as-resource",
    "toggle-simulated-logging",
    "toggle-subscriber-updates",
    "trigger-long-running-operation",
];

/// The tools `server-everything` registers only for a client that declared elicitation or
/// sampling: in the catalog since discovery declares what the gateway can bridge (not roots:
/// server-everything asks for them outside any call, where no gateway can route them).
pub const ASKING_TOOLS: &[&str] = &["trigger-elicitation-request", "trigger-sampling-request"];

/// Which client, in which era.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    /// PyPI `mcp` with `Client(url, mode=…)`: "legacy", "auto" or "2026-07-28".
    Python(&'static str),
    /// `@modelcontextprotocol/sdk` 1.x (initialize era).
    TsV1,
    /// `@modelcontextprotocol/client` 2.x with `versionNegotiation` "legacy", "auto" or a pin.
    TsV2(&'static str),
}

impl Sdk {
    /// The mode the client connects in.
    pub fn mode(self) -> &'static str {
        match self {
            Sdk::Python(m) | Sdk::TsV2(m) => m,
            Sdk::TsV1 => "legacy",
        }
    }

    fn name(self) -> String {
        match self {
            Sdk::Python(m) => format!("python-{m}"),
            Sdk::TsV1 => "ts-v1".into(),
            Sdk::TsV2(m) => format!("ts-v2-{m}"),
        }
    }
}

/// One run of an SDK client against `url`, calling every tool on `env` (and `get-env` on
/// `other_env`), each call bounded by `call_timeout`.
pub fn run(
    sdk: Sdk,
    url: &str,
    env: &str,
    other_env: &str,
    call_timeout: Duration,
) -> Result<Summary> {
    run_as(sdk, url, Target::Env { env, other_env }, call_timeout)
}

/// Which tools a client calls: server-everything's behind the `env` argument, or a
/// server's, named `<prefix>__<tool>`, with or without `env`.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Env {
        env: &'a str,
        other_env: &'a str,
    },
    Server {
        prefix: &'a str,
        /// The server's envs take `env`: this one.
        env: Option<&'a str>,
        /// What server-everything's `get-env` reports (`MESHMUX_TEST_ENV`).
        reports: &'a str,
    },
}

/// [`run`] against any [`Target`].
pub fn run_as(sdk: Sdk, url: &str, target: Target<'_>, call_timeout: Duration) -> Result<Summary> {
    let (env, other_env, prefix, env_arg) = match target {
        Target::Env { env, other_env } => (env, other_env, String::new(), true),
        Target::Server {
            prefix,
            env,
            reports,
        } => (
            env.unwrap_or(reports),
            "",
            format!("{prefix}__"),
            env.is_some(),
        ),
    };
    let spec = json!({
        "prefix": prefix,
        "env_arg": env_arg,
        "url": url,
        "mode": sdk.mode(),
        "sdk": if matches!(sdk, Sdk::TsV1) { "v1" } else { "v2" },
        "env": env,
        "other_env": other_env,
        "timeout": call_timeout.as_secs_f64(),
    });
    let name = sdk.name();
    let mut cmd = match sdk {
        Sdk::Python(_) => {
            let mut cmd = Command::new(prereq::python()?);
            cmd.arg(prereq::root().join("tests/python/sdk_client.py"));
            cmd
        }
        Sdk::TsV1 | Sdk::TsV2(_) => {
            let mut cmd = Command::new(prereq::node()?);
            cmd.current_dir(prereq::node_dir())
                .arg(prereq::node_dir().join("sdk-everything.mjs"));
            cmd
        }
    };
    cmd.arg(spec.to_string());
    let stdout = logs::unique_path(&format!("{name}.stdout"), ".json")?;
    let mut proc = Proc::spawn_capturing(&name, &mut cmd, &stdout)?;
    // Every tool may take the whole call timeout (plus the script's own margin), never more.
    let bound = (call_timeout + Duration::from_secs(6)) * 24 + Duration::from_secs(30);
    let status = proc.wait_exit(bound)?;
    if !status.success() {
        bail!(
            "the {name} client failed ({status}); log {}:\n{}",
            proc.log().display(),
            logs::tail(proc.log(), 40)
        );
    }
    let text = std::fs::read_to_string(&stdout)
        .with_context(|| format!("reading {}", stdout.display()))?;
    let value: Value = serde_json::from_str(text.trim()).with_context(|| {
        format!(
            "the {name} client printed no JSON ({}): {text}; log tail:\n{}",
            stdout.display(),
            logs::tail(proc.log(), 20)
        )
    })?;
    Ok(Summary {
        sdk,
        value,
        prefix,
        other_env: !other_env.is_empty(),
    })
}

/// What a client printed.
#[derive(Debug, Clone)]
pub struct Summary {
    pub sdk: Sdk,
    pub value: Value,
    /// The served names' prefix (`<server>__`), empty for a seed-000 catalog.
    pub prefix: String,
    /// The run called `get-env` on another env too.
    pub other_env: bool,
}

impl Summary {
    pub fn protocol_version(&self) -> Option<&str> {
        field(&self.value, "protocolVersion").as_str()
    }

    pub fn tools(&self) -> Vec<&str> {
        field(&self.value, "tools")
            .as_array()
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    pub fn calls(&self) -> &[Value] {
        field(&self.value, "calls")
            .as_array()
            .map_or(&[], Vec::as_slice)
    }

    /// The verdict of the call to `tool` ("pass", "refused", "fail", "timeout", …).
    pub fn verdict(&self, tool: &str) -> Option<&str> {
        self.calls()
            .iter()
            .find(|c| field(c, "tool") == tool)
            .and_then(|c| field(c, "verdict").as_str())
    }

    /// One line per call, for failure messages and `--nocapture` runs.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:?}: protocol {:?}, error {}, callbacks {}, progress {}\n",
            self.sdk,
            self.protocol_version(),
            field(&self.value, "error"),
            field(&self.value, "callbacks"),
            field(&self.value, "progress")
        );
        for c in self.calls() {
            let _ = writeln!(
                out,
                "  {:<34} {:<8} {:>7}s  {}",
                field(c, "tool").as_str().unwrap_or("?"),
                field(c, "verdict").as_str().unwrap_or("?"),
                field(c, "seconds"),
                short(field(c, "detail").as_str().unwrap_or(""))
            );
        }
        out
    }

    /// Everything wrong with this run, judged by what the issue asks: the era the client
    /// asked for, every tool listed (the asking ones too) and called with the right answer,
    /// progress restored, the other env reached; a tool that asks the client something may be
    /// refused at once with a clear tool error only in the 2026-07-28 era; nothing may time out.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !field(&self.value, "error").is_null() {
            problems.push(format!(
                "the client failed: {}",
                field(&self.value, "error")
            ));
        }
        let version = self.protocol_version().unwrap_or_default();
        let modern = match self.sdk.mode() {
            "legacy" => {
                if version.is_empty() || version == MODERN {
                    problems.push(format!(
                        "legacy mode negotiated {version:?}, not an initialize-era version"
                    ));
                }
                false
            }
            // meshmux advertises 2026-07-28 in server/discover, so auto must pick it.
            _ => {
                if version != MODERN {
                    problems.push(format!(
                        "mode {} negotiated {version:?}, expected {MODERN}",
                        self.sdk.mode()
                    ));
                }
                true
            }
        };
        let tools = self.tools();
        for t in BASE_TOOLS.iter().chain(ASKING_TOOLS) {
            let served = format!("{}{t}", self.prefix);
            if !tools.contains(&served.as_str()) {
                problems.push(format!("{served} is not listed"));
            }
        }
        for c in self.calls() {
            let tool = field(c, "tool").as_str().unwrap_or("?");
            let verdict = field(c, "verdict").as_str().unwrap_or("?");
            let detail = short(field(c, "detail").as_str().unwrap_or(""));
            let asks = ASKING_TOOLS.contains(&tool)
                || matches!(
                    tool,
                    "trigger-url-elicitation"
                        | "trigger-sampling-request-async"
                        | "trigger-elicitation-request-async"
                );
            let fine = match verdict {
                "pass" => true,
                // The spec's MRTR mapping is not required: a clear, prompt tool error is.
                "refused" => asks && modern,
                "skipped" | "unknown" => true,
                _ => false,
            };
            if !fine {
                problems.push(format!(
                    "{tool}: {verdict} after {}s: {detail}",
                    field(c, "seconds")
                ));
            }
        }
        if self.verdict("trigger-long-running-operation") == Some("pass")
            && *field(&self.value, "progress") != json!(2)
        {
            problems.push(format!(
                "trigger-long-running-operation (2 steps) delivered {} progress notifications",
                field(&self.value, "progress")
            ));
        }
        if self.other_env
            && self.verdict("get-env@other").is_none()
            && field(&self.value, "error").is_null()
        {
            problems.push("get-env on the other env was not called".into());
        }
        problems
    }
}

/// `value[key]`, or null.
fn field<'a>(value: &'a Value, key: &str) -> &'a Value {
    value.get(key).unwrap_or(&Value::Null)
}

/// The first line of a detail, at most 200 characters.
fn short(detail: &str) -> String {
    let line = detail.lines().next().unwrap_or_default();
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", line.get(..cut).unwrap_or(line)),
        None => line.to_owned(),
    }
}

/// `clients` TypeScript SDK v1 clients at once (`tests/node/sdk-concurrent.mjs`), each calling
/// `trigger-elicitation-request` and `trigger-sampling-request` on `env` at the same moment and
/// answering with its own identity. Returns what the script printed:
/// `{"results": [{"client", "tool", "verdict", "detail", "seconds"}], "callbacks", "error"}`.
pub fn run_concurrent(
    url: &str,
    env: &str,
    clients: usize,
    call_timeout: Duration,
) -> Result<Value> {
    let spec = json!({
        "url": url,
        "env": env,
        "clients": clients,
        "timeout": call_timeout.as_secs_f64(),
    });
    let stdout = logs::unique_path("ts-concurrent.stdout", ".json")?;
    let mut cmd = Command::new(prereq::node()?);
    cmd.current_dir(prereq::node_dir())
        .arg(prereq::node_dir().join("sdk-concurrent.mjs"))
        .arg(spec.to_string());
    let mut proc = Proc::spawn_capturing("ts-concurrent", &mut cmd, &stdout)?;
    let status = proc.wait_exit(call_timeout * 2 + Duration::from_secs(40))?;
    if !status.success() {
        bail!(
            "the concurrent TypeScript clients failed ({status}); log {}:\n{}",
            proc.log().display(),
            logs::tail(proc.log(), 40)
        );
    }
    let text = std::fs::read_to_string(&stdout)
        .with_context(|| format!("reading {}", stdout.display()))?;
    serde_json::from_str(text.trim()).with_context(|| {
        format!(
            "the concurrent TypeScript clients printed no JSON ({}): {text}",
            stdout.display()
        )
    })
}
