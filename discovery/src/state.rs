//! Survivable discovery: each env's last good tool list, kept in `discovery-state.json` beside
//! the manifest, so an env whose backend errors keeps serving the tools it had (marked
//! `stale` in the manifest) instead of vanishing — across restarts of discovery too. An env
//! that never answered has no last good list and stays `unreachable`.
//!
//! Tool lists are what every caller's `tools/list` shows anyway: not secret, so the file is
//! 0644. It is a cache: an unreadable one is ignored with a warning, never fatal.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
pub use policy::civil::rfc3339;
use policy::config::Config;
use policy::manifest::Stale;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::{Discovered, EnvResult, Offered};
use crate::fsutil::{Written, write_if_changed};

pub const STATE_FILE: &str = "discovery-state.json";
/// Bumped when a field changes meaning; a state of another format is ignored.
pub const STATE_FORMAT: u32 = 1;

/// What discovery remembers between cycles and runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format: u32,
    #[serde(default)]
    pub envs: BTreeMap<String, EnvState>,
}

impl Default for State {
    fn default() -> Self {
        State {
            format: STATE_FORMAT,
            envs: BTreeMap::new(),
        }
    }
}

/// One env's memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvState {
    /// The URL the list came from: after the config points the env elsewhere, the old list
    /// is not that backend's and is forgotten.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_good: Option<LastGood>,
    /// When discovery first failed in the current outage (RFC 3339); absent while it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_since: Option<String>,
}

/// The latest tool list an env's backend returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastGood {
    /// When this exact list was first seen (not refreshed while it stays the same, so an
    /// unchanged cycle leaves the file alone).
    pub listed_at: String,
    pub protocol_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_info: Option<Value>,
    pub tools: Vec<Value>,
    /// `Discovered::requires`; absent in states written before it existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requires: BTreeMap<String, Vec<String>>,
    /// `Discovered::offered`; absent when the backend offers only tools.
    #[serde(default, skip_serializing_if = "Offered::is_empty")]
    pub offered: Offered,
}

impl LastGood {
    fn discovered(&self) -> Discovered {
        Discovered {
            protocol_version: self.protocol_version.clone(),
            server_info: self.server_info.clone(),
            tools: self.tools.clone(),
            requires: self.requires.clone(),
            offered: self.offered.clone(),
        }
    }

    fn same_as(&self, d: &Discovered) -> bool {
        self.protocol_version == d.protocol_version
            && self.server_info == d.server_info
            && self.tools == d.tools
            && self.requires == d.requires
            && self.offered == d.offered
    }
}

impl State {
    /// Reads `dir/discovery-state.json`. A missing file is an empty state; an unreadable or
    /// foreign one is too, with the warning to print.
    pub fn load(dir: &Path) -> (State, Option<String>) {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (State::default(), None),
            Err(e) => {
                return (
                    State::default(),
                    Some(format!("ignoring {}: {e}", path.display())),
                );
            }
        };
        match serde_json::from_str::<State>(&text) {
            Ok(s) if s.format == STATE_FORMAT => (s, None),
            Ok(s) => (
                State::default(),
                Some(format!(
                    "ignoring {}: format {} (this meshmux writes {STATE_FORMAT})",
                    path.display(),
                    s.format
                )),
            ),
            Err(e) => (
                State::default(),
                Some(format!(
                    "ignoring {} (not a discovery state: {e}); down envs will have no last good tools",
                    path.display()
                )),
            ),
        }
    }

    /// Writes the state into `dir`, atomically and only when it changed.
    pub fn save(&self, dir: &Path) -> Result<Written> {
        let mut text = serde_json::to_string_pretty(self).context("serializing the state")?;
        text.push('\n');
        write_if_changed(&dir.join(STATE_FILE), text.as_bytes(), 0o644)
    }

    /// Takes in one discovery's raw results (at time `now`, RFC 3339) and returns the results
    /// to merge: an env that failed but has a last good list gets that list back, and is named
    /// in the returned stale map. Envs no longer in `config` are forgotten.
    pub fn apply(
        &mut self,
        config: &Config,
        raw: Vec<EnvResult>,
        now: &str,
    ) -> (Vec<EnvResult>, BTreeMap<String, Stale>) {
        let urls: BTreeMap<&str, &str> = config
            .environments
            .0
            .iter()
            .map(|(name, env)| (name.as_str(), env.url.as_str()))
            .collect();
        self.envs.retain(|name, _| urls.contains_key(name.as_str()));
        let mut stale = BTreeMap::new();
        let mut results = Vec::with_capacity(raw.len());
        for result in raw {
            let Some(url) = urls.get(result.name.as_str()) else {
                results.push(result);
                continue;
            };
            let entry = self
                .envs
                .entry(result.name.clone())
                .or_insert_with(|| EnvState {
                    url: (*url).to_owned(),
                    last_good: None,
                    down_since: None,
                });
            if entry.url != *url {
                *entry = EnvState {
                    url: (*url).to_owned(),
                    last_good: None,
                    down_since: None,
                };
            }
            match result.outcome {
                Ok(d) => {
                    entry.down_since = None;
                    if !entry.last_good.as_ref().is_some_and(|g| g.same_as(&d)) {
                        entry.last_good = Some(LastGood {
                            listed_at: now.to_owned(),
                            protocol_version: d.protocol_version.clone(),
                            server_info: d.server_info.clone(),
                            tools: d.tools.clone(),
                            requires: d.requires.clone(),
                            offered: d.offered.clone(),
                        });
                    }
                    results.push(EnvResult {
                        name: result.name,
                        outcome: Ok(d),
                    });
                }
                Err(reason) => {
                    let since = entry.down_since.get_or_insert_with(|| now.to_owned());
                    match &entry.last_good {
                        Some(good) => {
                            stale.insert(
                                result.name.clone(),
                                Stale {
                                    reason,
                                    since: since.clone(),
                                    listed_at: good.listed_at.clone(),
                                },
                            );
                            results.push(EnvResult {
                                name: result.name,
                                outcome: Ok(good.discovered()),
                            });
                        }
                        None => results.push(EnvResult {
                            name: result.name,
                            outcome: Err(reason),
                        }),
                    }
                }
            }
        }
        (results, stale)
    }
}

/// The current time as RFC 3339 UTC, to the second.
pub fn now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
