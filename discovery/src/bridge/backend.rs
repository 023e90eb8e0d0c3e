//! Starting one session's backend: a stdio child process, or a legacy SSE stream.
//!
//! The child's environment is the configured variables plus a few the platform needs to run
//! a program ([`INHERITED`], taken from the bridge's own environment when set, as the official
//! SDKs' default environment does); nothing else of the bridge's environment reaches it. The
//! child runs in a process group of its own (so `npx`'s grandchildren go with it), its
//! stderr is the bridge's, and it is stopped (SIGTERM to the group, SIGKILL after
//! [`STOP_GRACE`]) when its session ends or the bridge exits.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use rmcp::service::serve_client_with_ct;
use tokio::process::Child;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::proxy::{Link, ProxyClient};
use super::routes::{Ordered, Routes};
use super::sse::SseTransport;
use super::{Backend, Shared};

/// The variables a child inherits from the bridge (when set) besides its configured ones.
pub const INHERITED: &[&str] = &["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"];

/// How long a stopped child gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// How long the backend gets to answer `initialize` (an `npx -y` may download first).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The child's whole environment: [`INHERITED`] from `parent`, then `configured` (which wins).
pub fn child_env(
    parent: impl Iterator<Item = (String, String)>,
    configured: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = parent
        .filter(|(k, _)| INHERITED.contains(&k.as_str()))
        .filter(|(k, _)| !configured.iter().any(|(c, _)| c == k))
        .collect();
    env.extend(configured.iter().cloned());
    env
}

/// Starts the session's backend and runs the MCP handshake with the caller's `initialize`.
pub async fn start(shared: &Arc<Shared>, client: ProxyClient, routes: Arc<Routes>) -> Result<Link> {
    let permit = shared.sessions.clone().try_acquire_owned().map_err(|_| {
        anyhow!(
            "the bridge is at its limit of {} sessions; close one (DELETE) first",
            shared.max_sessions
        )
    })?;
    let stop = shared.shutdown.child_token();
    let (ended_tx, ended) = watch::channel(None);
    let running = match &shared.backend {
        Backend::Stdio { command, args, env } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args)
                .env_clear()
                .envs(child_env(std::env::vars(), env))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .process_group(0)
                .kill_on_drop(true);
            let mut child = cmd
                .spawn()
                .with_context(|| format!("starting `{command}`"))?;
            let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
                return Err(anyhow!("the child's stdio was not piped"));
            };
            let watch_stop = stop.clone();
            tokio::spawn(async move {
                let _permit = permit;
                watch_child(child, watch_stop, ended_tx).await;
            });
            handshake(client, (stdout, stdin), &routes, &stop).await?
        }
        Backend::Sse { url, headers } => {
            let transport = SseTransport::connect(url, headers.clone(), ended_tx)
                .await
                .with_context(|| format!("connecting to {url}"))?;
            let session_stop = stop.clone();
            tokio::spawn(async move {
                let _permit = permit;
                session_stop.cancelled().await;
            });
            handshake(client, transport, &routes, &stop).await?
        }
    };
    Ok(Link::new(running, routes, ended, stop.drop_guard()))
}

async fn handshake<T, E, A>(
    client: ProxyClient,
    transport: T,
    routes: &Arc<Routes>,
    stop: &CancellationToken,
) -> Result<rmcp::service::RunningService<rmcp::RoleClient, ProxyClient>>
where
    T: rmcp::transport::IntoTransport<rmcp::RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let started = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        serve_client_with_ct(
            client,
            Ordered::new(transport.into_transport(), routes.clone()),
            stop.child_token(),
        ),
    )
    .await;
    match started {
        Ok(Ok(running)) => Ok(running),
        Ok(Err(e)) => {
            stop.cancel();
            Err(anyhow!("the MCP handshake failed: {e}"))
        }
        Err(_) => {
            stop.cancel();
            Err(anyhow!("no initialize result within {HANDSHAKE_TIMEOUT:?}"))
        }
    }
}

/// Waits for the child to exit (reporting why) or for its session to end (stopping it).
async fn watch_child(
    mut child: Child,
    stop: CancellationToken,
    ended: watch::Sender<Option<String>>,
) {
    let pid = child.id();
    tokio::select! {
        status = child.wait() => {
            let why = match status {
                Ok(s) => format!("its process exited ({s})"),
                Err(e) => format!("waiting for its process failed: {e}"),
            };
            // Whatever it left behind in its group goes too.
            if let Some(pid) = pid {
                signal_group(pid, "KILL");
            }
            let _ = ended.send(Some(why));
        }
        () = stop.cancelled() => {
            if let Some(pid) = pid {
                signal_group(pid, "TERM");
            }
            if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            if let Some(pid) = pid {
                signal_group(pid, "KILL");
            }
        }
    }
}

/// Sends SIGTERM or SIGKILL to the process group `pgid` (best effort, via `kill(1)`: no
/// unsafe code in this workspace).
pub fn signal_group(pgid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn only_the_configured_and_the_platform_variables_reach_the_child() {
        let parent = pairs(&[
            ("PATH", "/usr/bin"),
            ("HOME", "/home/me"),
            ("AWS_SECRET_ACCESS_KEY", "hush"),
            ("MESHMUX_TOKEN", "hush"),
            ("TERM", "xterm"),
        ]);
        let env = child_env(
            parent.into_iter(),
            &pairs(&[("API_KEY", "k"), ("HOME", "/srv")]),
        );
        assert_eq!(
            env,
            pairs(&[
                ("PATH", "/usr/bin"),
                ("TERM", "xterm"),
                ("API_KEY", "k"),
                ("HOME", "/srv")
            ])
        );
    }
}
