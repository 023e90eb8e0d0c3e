//! Headless Chromium (Debian's, through npm `playwright-core`) driven by node scripts in
//! `tests/node`: the TypeScript SDK's OAuth client with the browser as the user's
//! (`oauth-client.mjs`), and authsvc's token UI (`token-ui.mjs`). Screenshots of every page go
//! to the test's log directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::process::Proc;
use crate::{logs, prereq};

/// Runs `tests/node/<script>` with `spec` (at most `timeout`) and returns the JSON it printed.
fn run_node(script: &str, spec: &Value, timeout: Duration) -> Result<Value> {
    let name = script.trim_end_matches(".mjs");
    let stdout = logs::unique_path(&format!("{name}.stdout"), ".json")?;
    let mut cmd = Command::new(prereq::node()?);
    cmd.current_dir(prereq::node_dir())
        .arg(prereq::node_dir().join(script))
        .arg(spec.to_string())
        .env("MESHMUX_TEST_CHROMIUM", prereq::chromium()?);
    let mut proc = Proc::spawn_capturing(name, &mut cmd, &stdout)?;
    let status = proc.wait_exit(timeout)?;
    if !status.success() {
        bail!(
            "{script} failed ({status}); log {}:\n{}",
            proc.log().display(),
            logs::tail(proc.log(), 40)
        );
    }
    let text = std::fs::read_to_string(&stdout)
        .with_context(|| format!("reading {}", stdout.display()))?;
    serde_json::from_str(text.trim())
        .with_context(|| format!("{script} printed no JSON ({}): {text}", stdout.display()))
}

/// `target/e2e-logs/<test>/screenshots-<what>/`.
fn screenshots(what: &str) -> Result<PathBuf> {
    let dir = logs::test_dir()?.join(format!("screenshots-{what}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The MCP authorization flow by the official TypeScript SDK client, signing in as `user`,
/// then `tools/list` and `calls` with the token it got. Returns
/// `{tools, results, tokens: {claims, …}, client_id, iss, visited}`.
pub fn oauth_client(mcp_url: &str, user: &str, calls: &[Value]) -> Result<Value> {
    let spec = json!({
        "url": mcp_url,
        "user": user,
        "calls": calls,
        "screenshots": screenshots(&format!("oauth-{user}"))?,
    });
    run_node("oauth-client.mjs", &spec, Duration::from_secs(120))
}

/// One person in authsvc's token UI, with a browser profile kept between steps.
pub struct TokenUi {
    base_url: String,
    user: String,
    state_file: PathBuf,
}

impl TokenUi {
    pub fn new(base_url: &str, user: &str) -> Result<Self> {
        Ok(TokenUi {
            base_url: base_url.to_owned(),
            user: user.to_owned(),
            state_file: logs::unique_path(&format!("browser-state-{user}"), ".json")?,
        })
    }

    /// Signs in at `/ui/login`, tries a token with `lacking_role` and one for `too_many_days`,
    /// then mints `name` with `roles` for a day. Returns `{refusals, token, listed}`.
    pub fn mint(
        &self,
        name: &str,
        roles: &[&str],
        lacking_role: &str,
        too_many_days: u32,
    ) -> Result<Value> {
        self.run(
            "mint",
            json!({"name": name, "roles": roles, "lacking_role": lacking_role,
                   "too_many_days": too_many_days}),
        )
    }

    /// Revokes the token named `name` on `/ui/tokens`. Returns `{notice, state}`.
    pub fn revoke(&self, name: &str) -> Result<Value> {
        self.run("revoke", json!({"name": name}))
    }

    fn run(&self, action: &str, mint: Value) -> Result<Value> {
        let spec = json!({
            "base_url": self.base_url,
            "user": self.user,
            "state_file": self.state_file,
            "screenshots": screenshots(&format!("ui-{}-{action}", self.user))?,
            "action": action,
            "mint": mint,
        });
        run_node("token-ui.mjs", &spec, Duration::from_secs(90))
    }

    pub fn state_file(&self) -> &Path {
        &self.state_file
    }
}
