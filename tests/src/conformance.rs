//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`) run against a
//! server URL, and the backend it expects (`tests/node/conformance-server.mjs`, which serves
//! the suite's fixtures in both protocol eras).
//!
//! A run writes `OUTDIR/server-<scenario>-<timestamp>/checks.json` per scenario; [`run`]
//! reads them back into one [`Outcome`] per scenario.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use crate::process::Proc;
use crate::{READY_TIMEOUT, logs, ports, prereq};

/// The suite's package, pinned in `tests/node/package.json`.
pub const SUITE_ENTRY: &str = "@modelcontextprotocol/conformance/dist/index.js";

/// How long one scenario may take (the suite's `--timeout`, per scenario).
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a whole run of the suite may take before the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(420);

/// Which scenarios a run selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Suite {
    /// `--suite all`: every scenario, each at the spec version the suite infers for it.
    #[serde(rename = "all")]
    All,
    /// `--requirements 2026-07-28`: what that revision requires (plus the unscored ones),
    /// all on the stateless 2026-07-28 wire.
    #[serde(rename = "2026-07-28")]
    Req2026,
}

impl Suite {
    pub const EVERY: [Suite; 2] = [Suite::All, Suite::Req2026];

    fn args(self) -> [&'static str; 2] {
        match self {
            Suite::All => ["--suite", "all"],
            Suite::Req2026 => ["--requirements", "2026-07-28"],
        }
    }

    /// A short name for file names and tables.
    pub fn label(self) -> &'static str {
        match self {
            Suite::All => "all",
            Suite::Req2026 => "2026-07-28",
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A scenario's verdict, from its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No check failed and at least one succeeded.
    Pass,
    /// At least one check has status `FAILURE`.
    Fail,
    /// No check failed and none succeeded (beyond the suite's generic wire-schema check):
    /// the scenario did not apply (for example, no `Mcp-Session-Id` to test sessions with).
    Skipped,
    /// The run wrote no results for this scenario.
    Missing,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Skipped => "skipped",
            Verdict::Missing => "missing",
        })
    }
}

/// One check of `checks.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Check {
    pub id: String,
    pub status: String,
    #[serde(default, rename = "errorMessage")]
    pub error_message: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// One scenario's result in one run.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub verdict: Verdict,
    pub successes: usize,
    pub failures: usize,
    pub warnings: usize,
    /// `id: message` of each failed check.
    pub failed: Vec<String>,
    /// Where its `checks.json` is.
    pub checks: PathBuf,
}

impl Outcome {
    fn missing() -> Outcome {
        Outcome {
            verdict: Verdict::Missing,
            successes: 0,
            failures: 0,
            warnings: 0,
            failed: Vec::new(),
            checks: PathBuf::new(),
        }
    }

    /// The first failure's message, shortened for a table.
    pub fn first_failure(&self) -> String {
        self.failed
            .first()
            .map(|m| shorten(m, 160))
            .unwrap_or_default()
    }
}

/// Scenario name → outcome, for one run.
pub type Results = BTreeMap<String, Outcome>;

/// `tests/node/conformance-server.mjs` on a free loopback port; stopped on drop.
#[derive(Debug)]
pub struct ConformanceBackend {
    port: u16,
    proc: Proc,
}

impl ConformanceBackend {
    pub fn start() -> Result<ConformanceBackend> {
        let node = prereq::node()?;
        let script = prereq::node_dir().join("conformance-server.mjs");
        if !script.is_file() {
            bail!(
                "{} is missing (it is part of the repository)",
                script.display()
            );
        }
        let port = ports::free_port()?;
        let mut cmd = Command::new(node);
        cmd.current_dir(prereq::node_dir())
            .env_remove("NODE_OPTIONS")
            .arg(&script)
            .arg(port.to_string());
        let mut proc = Proc::spawn("conformance-backend", &mut cmd)?;
        proc.wait_until(
            &format!("the conformance backend to listen on 127.0.0.1:{port}"),
            READY_TIMEOUT,
            || Ok(ports::is_listening(port)),
        )?;
        Ok(ConformanceBackend { port, proc })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn log(&self) -> &Path {
        self.proc.log()
    }
}

/// What a run is called in the logs (`direct`, `meshmux`).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub name: &'a str,
    pub url: &'a str,
    /// With `Some(env)`, the suite runs with `conformance-inject.mjs` preloaded, which adds
    /// `arguments.env = env` (and `Mcp-Param-Env` on 2026-07-28) to every `tools/call`.
    pub inject_env: Option<&'a str>,
}

/// Runs the suite's server scenarios of `suite` against `target` (bounded by
/// [`RUN_TIMEOUT`]) and reads back every scenario's checks. Failing scenarios are results,
/// not errors; the suite not running at all is an error.
pub fn run(target: Target<'_>, suite: Suite) -> Result<Results> {
    let node = prereq::node()?;
    let entry = prereq::node_module_file(SUITE_ENTRY)?;
    let name = format!("conformance-{}-{}", target.name, suite.label());
    let out = logs::unique_path(&name, "")?;
    let mut cmd = Command::new(node);
    cmd.current_dir(prereq::node_dir())
        .env_remove("NODE_OPTIONS")
        .arg(&entry)
        .arg("server")
        .args(["--url", target.url])
        .args(suite.args())
        .args(["--timeout", &SCENARIO_TIMEOUT.as_millis().to_string()])
        .arg("-o")
        .arg(&out);
    if let Some(env) = target.inject_env {
        let inject = prereq::node_dir().join("conformance-inject.mjs");
        if !inject.is_file() {
            bail!(
                "{} is missing (it is part of the repository)",
                inject.display()
            );
        }
        cmd.env("NODE_OPTIONS", format!("--import {}", inject.display()))
            .env("MESHMUX_CONFORMANCE_ENV", env);
    }
    let started = Instant::now();
    let mut proc = Proc::spawn(&name, &mut cmd)?;
    // The suite exits 1 when a scenario fails; only its results say how it went.
    let status = proc.wait_exit(RUN_TIMEOUT)?;
    let results = read_results(&out)?;
    eprintln!(
        "conformance {} against {} ({}): {} scenarios in {:.1}s ({status})",
        suite,
        target.name,
        target.url,
        results.len(),
        started.elapsed().as_secs_f64()
    );
    if results.is_empty() {
        bail!(
            "the conformance suite ({suite}, {}) wrote no results in {} ({status}); log {}:\n{}",
            target.name,
            out.display(),
            proc.log().display(),
            logs::tail(proc.log(), 30)
        );
    }
    Ok(results)
}

/// Every `server-<scenario>-<timestamp>/checks.json` under `dir`.
pub fn read_results(dir: &Path) -> Result<Results> {
    let mut results = Results::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(results),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(scenario) = scenario_of(&file_name) else {
            continue;
        };
        let checks_path = entry.path().join("checks.json");
        let text = std::fs::read_to_string(&checks_path)
            .with_context(|| format!("reading {}", checks_path.display()))?;
        let checks: Vec<Check> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a list of checks", checks_path.display()))?;
        results.insert(scenario.to_owned(), judge(&checks, checks_path));
    }
    Ok(results)
}

/// `server-tools-list-2026-12-02T17-41-56-795Z` → `tools-list`.
pub fn scenario_of(dir_name: &str) -> Option<&str> {
    const STAMP: usize = "2026-12-02T17-41-56-795Z".len();
    let rest = dir_name.strip_prefix("server-")?;
    let cut = rest.len().checked_sub(STAMP + 1)?;
    let (scenario, stamp) = (rest.get(..cut)?, rest.get(cut..)?);
    let stamp = stamp.strip_prefix('-')?;
    let looks_like_stamp = stamp.ends_with('Z')
        && stamp.get(10..11) == Some("T")
        && stamp
            .chars()
            .all(|c| c.is_ascii_digit() || "-TZ".contains(c));
    (looks_like_stamp && !scenario.is_empty()).then_some(scenario)
}

/// Checks that every scenario emits whatever it tests; they alone do not make a pass.
const GENERIC_CHECKS: [&str; 2] = ["wire-schema-valid", "wire-schema-harness-error"];

/// The verdict on one scenario's checks.
pub fn judge(checks: &[Check], path: PathBuf) -> Outcome {
    let count = |s: &str| checks.iter().filter(|c| c.status == s).count();
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.status == "FAILURE")
        .map(|c| {
            let why = c
                .error_message
                .as_deref()
                .or(c.description.as_deref())
                .unwrap_or("(no message)");
            format!("{}: {why}", c.id)
        })
        .collect();
    let specific_successes = checks
        .iter()
        .filter(|c| c.status == "SUCCESS" && !GENERIC_CHECKS.contains(&c.id.as_str()))
        .count();
    let verdict = if !failed.is_empty() {
        Verdict::Fail
    } else if specific_successes > 0 {
        Verdict::Pass
    } else {
        Verdict::Skipped
    };
    Outcome {
        verdict,
        successes: count("SUCCESS"),
        failures: failed.len(),
        warnings: count("WARNING"),
        failed,
        checks: path,
    }
}

/// One scenario of one suite, directly and through the gateway.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub suite: Suite,
    pub scenario: String,
    pub direct: Outcome,
    pub gateway: Outcome,
}

/// Pairs the direct and the gateway results of each suite, scenario by scenario.
pub fn rows(direct: &BTreeMap<Suite, Results>, gateway: &BTreeMap<Suite, Results>) -> Vec<Row> {
    let mut rows = Vec::new();
    for suite in Suite::EVERY {
        let empty = Results::new();
        let d = direct.get(&suite).unwrap_or(&empty);
        let g = gateway.get(&suite).unwrap_or(&empty);
        let mut names: Vec<&String> = d.keys().chain(g.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            rows.push(Row {
                suite,
                scenario: name.clone(),
                direct: d.get(name).cloned().unwrap_or_else(Outcome::missing),
                gateway: g.get(name).cloned().unwrap_or_else(Outcome::missing),
            });
        }
    }
    rows
}

/// The results as a markdown report: a summary and one table row per scenario and suite.
pub fn markdown(rows: &[Row], notes: &BTreeMap<(Suite, String), String>, header: &str) -> String {
    let mut md = format!("# MCP conformance: direct vs through meshmux\n\n{header}\n\n");
    for suite in Suite::EVERY {
        let of_suite: Vec<&Row> = rows.iter().filter(|r| r.suite == suite).collect();
        let direct_pass = of_suite
            .iter()
            .filter(|r| r.direct.verdict == Verdict::Pass)
            .count();
        let both = of_suite
            .iter()
            .filter(|r| r.direct.verdict == Verdict::Pass && r.gateway.verdict == Verdict::Pass)
            .count();
        md.push_str(&format!(
            "- `{suite}`: {} scenarios; {direct_pass} pass directly; {both} of those pass \
             through meshmux\n",
            of_suite.len()
        ));
    }
    md.push_str(
        "\n| suite | scenario | direct | through meshmux | note |\n| --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        let note = notes
            .get(&(r.suite, r.scenario.clone()))
            .cloned()
            .unwrap_or_else(|| {
                if r.gateway.verdict == Verdict::Fail {
                    r.gateway.first_failure()
                } else if r.direct.verdict == Verdict::Fail {
                    format!("direct: {}", r.direct.first_failure())
                } else {
                    String::new()
                }
            });
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.suite,
            r.scenario,
            r.direct.verdict,
            r.gateway.verdict,
            note.replace('|', "\\|").replace('\n', " ")
        ));
    }
    md
}

fn shorten(s: &str, max: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_come_from_result_directories() {
        assert_eq!(
            scenario_of("server-tools-list-2026-12-02T17-41-56-795Z"),
            Some("tools-list")
        );
        assert_eq!(
            scenario_of("server-input-required-result-multi-round-2026-12-02T17-41-56-808Z"),
            Some("input-required-result-multi-round")
        );
        assert_eq!(scenario_of("tools-list-2026-12-02T17-41-56-795Z"), None);
        assert_eq!(scenario_of("server-x"), None);
    }

    fn check(id: &str, status: &str) -> Check {
        Check {
            id: id.to_owned(),
            status: status.to_owned(),
            error_message: Some(format!("{id} said so")),
            description: None,
        }
    }

    #[test]
    fn a_failure_fails_and_only_the_wire_schema_check_is_a_skip() {
        let fail = judge(
            &[check("a", "SUCCESS"), check("b", "FAILURE")],
            PathBuf::new(),
        );
        let pass = judge(
            &[check("a", "SUCCESS"), check("b", "WARNING")],
            PathBuf::new(),
        );
        let skipped = judge(
            &[check("wire-schema-valid", "SUCCESS"), check("b", "SKIPPED")],
            PathBuf::new(),
        );

        assert_eq!(fail.verdict, Verdict::Fail);
        assert_eq!(fail.failed, vec!["b: b said so".to_owned()]);
        assert_eq!(pass.verdict, Verdict::Pass);
        assert_eq!(skipped.verdict, Verdict::Skipped);
    }
}
