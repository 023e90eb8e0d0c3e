//! Tool pinning: the definitions an operator reviewed (`meshmux pin` writes them, hashed, into
//! a pin file), compared with what each env's backend lists now. A backend that changes a
//! tool at runtime (a "rug pull": new instructions in a description, a widened schema) is
//! then reported (`gateway.pinning: warn`) or kept at its pinned definition with its calls
//! refused (`block`) until the operator re-pins. Pure: the file is read and written by
//! `discovery`; the filter only sees the outcome in the manifest ([`PinReport`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Bumped when the pin file's fields change meaning.
pub const PIN_FORMAT: u32 = 1;

/// `gateway.pinning`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinMode {
    /// No pin file is read; tools are served as discovered (the default).
    #[default]
    Off,
    /// Drifted and new tools are served as discovered, and reported (log, metric, `check`).
    Warn,
    /// A changed tool keeps its pinned definition and its calls are refused; a new tool is
    /// not served; both until re-pinned.
    Block,
}

impl PinMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PinMode::Off => "off",
            PinMode::Warn => "warn",
            PinMode::Block => "block",
        }
    }
}

/// The pin file: per env, per tool, the definition as the backend listed it (canonical:
/// object keys sorted at every depth) and its SHA-256. Envs and tools are sorted too, so the
/// file reviews and diffs well.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinFile {
    pub format: u32,
    /// When it was written (RFC 3339, UTC), for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pinned_at: String,
    pub envs: BTreeMap<String, BTreeMap<String, PinnedTool>>,
}

/// One pinned tool definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedTool {
    /// `sha256:` of the canonical definition, serialized compactly.
    pub sha256: String,
    /// The whole definition the backend listed (name, title, description, inputSchema,
    /// outputSchema, annotations, `_meta`…): what the model would see, canonicalized.
    pub definition: Value,
}

/// What the pin file says about one env's tool now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Pinned with another definition.
    Changed,
    /// Not in the pin file for this env.
    New,
}

/// A tool whose listed definition is not the pinned one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drift {
    /// The backend (`Manifest::envs` name) and the tool's name there, as pinned.
    pub env: String,
    pub tool: String,
    pub change: Change,
    /// What callers name the tool and the env when that differs (a server's prefix or
    /// rename; a server's env label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl Drift {
    /// The tool's name in `tools/list`.
    pub fn served_name(&self) -> &str {
        self.served.as_deref().unwrap_or(&self.tool)
    }

    /// The env as callers name it.
    pub fn env_label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.env)
    }
}

/// What the manifest carries for the filter: the mode, and every drifted tool (under
/// `block` these are the calls it refuses; under both, what its gauge counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinReport {
    pub mode: PinMode,
    /// Sorted by env, then tool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Drift>,
}

impl PinReport {
    /// The drift that blocks calls to `tool` (as served) in `env` (as callers name it; `None`
    /// for a call that names none: any of the tool's envs), if any.
    pub fn blocked(&self, env: Option<&str>, tool: &str) -> Option<&Drift> {
        if self.mode != PinMode::Block {
            return None;
        }
        self.drift
            .iter()
            .find(|d| d.served_name() == tool && env.is_none_or(|e| d.env_label() == e))
    }

    /// How many of `env`'s tools drifted.
    pub fn drifted_in(&self, env: &str) -> usize {
        self.drift.iter().filter(|d| d.env == env).count()
    }

    /// The line each filter logs per drifted tool when it takes a new manifest.
    pub fn warnings(&self) -> Vec<String> {
        self.drift
            .iter()
            .map(|d| {
                format!(
                    "tool pinning ({}): tool `{}` in env `{}` is {} since it was pinned{}",
                    self.mode.as_str(),
                    d.tool,
                    d.env,
                    match d.change {
                        Change::Changed => "changed",
                        Change::New => "new",
                    },
                    if self.mode == PinMode::Block {
                        "; its calls are refused until re-pinned"
                    } else {
                        ""
                    }
                )
            })
            .collect()
    }
}

/// `value` with the keys of every object sorted (arrays keep their order).
pub fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                if let Some(v) = map.get(k) {
                    out.insert(k.clone(), canonical(v));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// `sha256:<hex>` of a definition's canonical compact JSON.
pub fn digest(definition: &Value) -> String {
    let bytes = serde_json::to_vec(&canonical(definition)).unwrap_or_default();
    let hash = Sha256::digest(&bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A tool's name, if it has one.
pub fn tool_name(tool: &Value) -> Option<&str> {
    tool.get("name").and_then(Value::as_str)
}

/// Pins every named tool of every env (`envs`: env → its tools as listed).
pub fn pin<'a>(envs: impl IntoIterator<Item = (&'a str, &'a [Value])>, pinned_at: &str) -> PinFile {
    let mut out = PinFile {
        format: PIN_FORMAT,
        pinned_at: pinned_at.to_owned(),
        envs: BTreeMap::new(),
    };
    for (env, tools) in envs {
        let entry = out.envs.entry(env.to_owned()).or_default();
        for tool in tools {
            if let Some(name) = tool_name(tool) {
                entry.insert(
                    name.to_owned(),
                    PinnedTool {
                        sha256: digest(tool),
                        definition: canonical(tool),
                    },
                );
            }
        }
    }
    out
}

impl PinFile {
    /// Refuses a file whose format is unknown or whose hashes do not match its definitions
    /// (edited by hand, or truncated): pins that cannot be trusted must not decide anything.
    pub fn verify(&self) -> Result<(), String> {
        if self.format != PIN_FORMAT {
            return Err(format!(
                "pin file format {} is not supported (this meshmux writes format {PIN_FORMAT})",
                self.format
            ));
        }
        for (env, tools) in &self.envs {
            for (name, pinned) in tools {
                if tool_name(&pinned.definition) != Some(name.as_str()) {
                    return Err(format!(
                        "envs.{env}.{name}: the definition's `name` is not {name:?}"
                    ));
                }
                if digest(&pinned.definition) != pinned.sha256 {
                    return Err(format!(
                        "envs.{env}.{name}: sha256 does not match the definition (edited by hand?); re-run `meshmux pin`"
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn get(&self, env: &str, tool: &str) -> Option<&PinnedTool> {
        self.envs.get(env).and_then(|tools| tools.get(tool))
    }
}

/// One env's tools after pinning: what to serve, and what drifted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub tools: Vec<Value>,
    pub drift: Vec<Drift>,
}

/// Compares `env`'s listed `tools` with the pins. `warn` serves them as listed; `block`
/// serves a changed tool's pinned definition instead and leaves a new tool out. Tools
/// without a name are passed on for the merge to report. `off` changes nothing.
pub fn apply(mode: PinMode, pins: &PinFile, env: &str, tools: &[Value]) -> Applied {
    let mut out = Applied::default();
    for tool in tools {
        let Some(name) = tool_name(tool).filter(|_| mode != PinMode::Off) else {
            out.tools.push(tool.clone());
            continue;
        };
        let change = match pins.get(env, name) {
            Some(p) if p.sha256 == digest(tool) => None,
            Some(_) => Some(Change::Changed),
            None => Some(Change::New),
        };
        let Some(change) = change else {
            out.tools.push(tool.clone());
            continue;
        };
        out.drift.push(Drift {
            env: env.to_owned(),
            tool: name.to_owned(),
            change,
            served: None,
            label: None,
        });
        match (mode, change, pins.get(env, name)) {
            (PinMode::Block, Change::Changed, Some(p)) => out.tools.push(p.definition.clone()),
            (PinMode::Block, _, _) => {}
            _ => out.tools.push(tool.clone()),
        }
    }
    out
}

#[cfg(test)]
#[path = "pin_tests.rs"]
mod tests;
