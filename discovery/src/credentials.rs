//! Backend credentials, resolved (the IO around `policy::credentials`): each backend's
//! credential becomes one header added to that backend's `headers` before anything uses
//! them (discovery's own MCP client, the Envoy routes and health checks, the filter's side
//! calls), so a renewed value is written like any changed header and reaches a running Envoy
//! through the live-reload path.
//!
//! Fetched values (`command`, `oauth_client_credentials`) live in one cache per process: a
//! `discover --watch` or `up --watch` reuses them across cycles until they come due, and
//! fetches again at once for a backend that refused the cached one (401/403).
//! Secrets are never logged and never part of an error message.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use policy::config::Config;
use policy::credentials::{
    Credentials, DEFAULT_COMMAND_TIMEOUT_SECONDS, Lease, LeaseCache, Renewal, check_header_value,
    jwt_exp, renew_at,
};
use tokio::sync::Mutex;

static CACHE: LazyLock<Mutex<LeaseCache>> = LazyLock::new(|| Mutex::new(LeaseCache::default()));

/// How long a token endpoint may take to answer.
const TOKEN_ENDPOINT_TIMEOUT: Duration = Duration::from_secs(15);

/// Unix seconds now.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A credential that could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub why: String,
    /// The last value fetched is sent meanwhile (a failed renewal, not a first fetch).
    pub kept_last: bool,
}

/// Adds every backend's credential header to its `headers`. Returns the backends whose
/// credential could not be fetched; those keep the last value fetched for them (if any) so a
/// failed renewal does not take the header away from Envoy.
pub async fn apply(config: &mut Config) -> BTreeMap<String, Failure> {
    let mut cache = CACHE.lock().await;
    let names: Vec<String> = config
        .environments
        .0
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    cache.retain(&|name| names.iter().any(|n| n == name));
    let mut failed = BTreeMap::new();
    for (name, env) in &mut config.environments.0 {
        let Some(credentials) = env.credentials.clone() else {
            continue;
        };
        let header = match credentials.renewal() {
            Renewal::Static => credentials.static_header(),
            Renewal::Fetched => match cache.fresh(name, &credentials, now()) {
                Some(lease) => Some(lease.header.clone()),
                None => match fetch(name, &credentials).await {
                    Ok(lease) => {
                        let header = lease.header.clone();
                        cache.put(name, &credentials, lease);
                        Some(header)
                    }
                    Err(why) => {
                        tracing::warn!(backend = %name, "credentials: {why}");
                        let last = cache.last(name, &credentials).map(|l| l.header.clone());
                        let kept_last = last.is_some();
                        failed.insert(name.clone(), Failure { why, kept_last });
                        last
                    }
                },
            },
        };
        if let Some((key, value)) = header {
            env.headers.insert(key, value);
        }
    }
    failed
}

/// The backend `name` refused its credential: fetch a new one now (a `command` or
/// `oauth_client_credentials` credential only). `Ok(true)` when the header changed, and
/// `config` then carries the new value.
pub async fn renew_refused(config: &mut Config, name: &str) -> Result<bool, String> {
    let Some((_, env)) = config.environments.0.iter_mut().find(|(n, _)| n == name) else {
        return Ok(false);
    };
    let Some(credentials) = env.credentials.clone() else {
        return Ok(false);
    };
    if credentials.renewal() == Renewal::Static {
        return Ok(false);
    }
    let mut cache = CACHE.lock().await;
    cache.expire(name);
    let lease = fetch(name, &credentials).await?;
    let (key, value) = lease.header.clone();
    cache.put(name, &credentials, lease);
    let changed = env.headers.get(&key) != Some(&value);
    env.headers.insert(key, value);
    Ok(changed)
}

/// Fetches a new value for a `command` or `oauth_client_credentials` credential.
async fn fetch(backend: &str, credentials: &Credentials) -> Result<Lease, String> {
    match credentials {
        Credentials::Command {
            command,
            ttl_seconds,
            timeout_seconds,
        } => {
            let timeout = timeout_seconds.unwrap_or(DEFAULT_COMMAND_TIMEOUT_SECONDS);
            let token = run_helper(backend, command, Duration::from_secs(timeout)).await?;
            Ok(bearer_lease(
                &token,
                renew_at(now(), *ttl_seconds, jwt_exp(&token)),
            ))
        }
        Credentials::OauthClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes,
        } => {
            let fetched_at = now();
            let (token, expires_in) =
                client_credentials(token_url, client_id, client_secret, scopes).await?;
            let expires_at =
                jwt_exp(&token).or_else(|| expires_in.map(|s| fetched_at.saturating_add(s)));
            Ok(bearer_lease(&token, renew_at(fetched_at, None, expires_at)))
        }
        Credentials::None | Credentials::Bearer { .. } | Credentials::Header { .. } => {
            Err("not a fetched credential".into())
        }
    }
}

fn bearer_lease(token: &str, renew_at: u64) -> Lease {
    Lease {
        header: ("Authorization".to_owned(), format!("Bearer {token}")),
        renew_at,
    }
}

/// Runs a credential helper (no shell, stdin closed) within `timeout`; its trimmed standard
/// output is the token. Its standard error goes to the log, line by line.
async fn run_helper(backend: &str, argv: &[String], timeout: Duration) -> Result<String, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("the credential helper command is empty".into());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // A helper that overruns the timeout is killed, not left behind.
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting the credential helper {program:?}: {e}"))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| {
            format!(
                "the credential helper {program:?} did not finish within {} s (killed)",
                timeout.as_secs()
            )
        })?
        .map_err(|e| format!("running the credential helper {program:?}: {e}"))?;
    // Its stderr is the only clue when it fails: at `warn` then, at `info` otherwise.
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        if output.status.success() {
            tracing::info!(backend, helper = %program, "credential helper stderr: {line}");
        } else {
            tracing::warn!(backend, helper = %program, "credential helper stderr: {line}");
        }
    }
    if !output.status.success() {
        return Err(format!(
            "the credential helper {program:?} failed ({}); its stderr is in the log",
            output.status
        ));
    }
    let stdout = String::from_utf8(output.stdout)
        .map_err(|_| format!("the credential helper {program:?} printed non-UTF-8 output"))?;
    let token = stdout.trim();
    if token.is_empty() {
        return Err(format!(
            "the credential helper {program:?} printed no token on its standard output"
        ));
    }
    check_header_value(token)
        .map_err(|why| format!("the credential helper {program:?} printed a token that {why}"))?;
    Ok(token.to_owned())
}

/// An OAuth client-credentials grant (client_secret_basic) through the `oauth2` crate: the
/// access token and its `expires_in`, if given.
async fn client_credentials(
    token_url: &str,
    client_id: &str,
    client_secret: &str,
    scopes: &[String],
) -> Result<(String, Option<u64>), String> {
    use oauth2::TokenResponse as _;
    let url = oauth2::TokenUrl::new(token_url.to_owned())
        .map_err(|e| format!("token_url {token_url:?}: {e}"))?;
    let client = oauth2::basic::BasicClient::new(oauth2::ClientId::new(client_id.to_owned()))
        .set_client_secret(oauth2::ClientSecret::new(client_secret.to_owned()))
        .set_token_uri(url);
    let http = reqwest::Client::builder()
        // A token endpoint that redirects is misconfigured; following could leak the secret.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TOKEN_ENDPOINT_TIMEOUT)
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let response = client
        .exchange_client_credentials()
        .add_scopes(scopes.iter().cloned().map(oauth2::Scope::new))
        .request_async(&Http(&http))
        .await
        .map_err(|e| token_error(token_url, e))?;
    let token = response.access_token().secret().clone();
    check_header_value(&token)
        .map_err(|why| format!("the token endpoint {token_url} sent an access token that {why}"))?;
    Ok((token, response.expires_in().map(|d| d.as_secs())))
}

/// Why a token request failed: the endpoint's `error` and description, or the transport's
/// error; never the request (it holds the secret).
fn token_error<E: std::error::Error + 'static>(
    url: &str,
    e: oauth2::RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> String {
    match e {
        oauth2::RequestTokenError::ServerResponse(r) => format!(
            "the token endpoint {url} refused the client credentials: {}{}",
            r.error().as_ref(),
            r.error_description()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ),
        oauth2::RequestTokenError::Request(e) => {
            let mut message = format!("requesting a token from {url}: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            message
        }
        oauth2::RequestTokenError::Parse(e, _) => {
            format!("the token endpoint {url} answered something else than a token: {e}")
        }
        oauth2::RequestTokenError::Other(e) => format!("the token endpoint {url}: {e}"),
    }
}

/// `oauth2`'s HTTP calls through reqwest 0.13 (`oauth2` 5.0's own adapter is for 0.12).
struct Http<'a>(&'a reqwest::Client);

type SendFuture<'c> = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<oauth2::HttpResponse, oauth2::HttpClientError<reqwest::Error>>,
            > + Send
            + 'c,
    >,
>;

impl<'c> oauth2::AsyncHttpClient<'c> for Http<'_> {
    type Error = oauth2::HttpClientError<reqwest::Error>;
    type Future = SendFuture<'c>;
    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(send(self.0, request))
    }
}

async fn send(
    http: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, oauth2::HttpClientError<reqwest::Error>> {
    let request = reqwest::Request::try_from(request).map_err(Box::new)?;
    let response = http.execute(request).await.map_err(Box::new)?;
    let mut builder = oauth2::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    builder
        .body(response.bytes().await.map_err(Box::new)?.to_vec())
        .map_err(oauth2::HttpClientError::Http)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn a_helper_token_is_its_trimmed_stdout() {
        let token = run_helper(
            "Prod",
            &argv("echo '  tok-1  '; echo noise >&2"),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(token, Ok("tok-1".to_owned()));
    }

    #[tokio::test]
    async fn helper_failures_are_clear_errors_without_the_output() {
        let cases = [
            ("echo s3cret; exit 3", "failed (exit status: 3)"),
            ("true", "printed no token"),
            ("printf 'a\\001b'", "control or non-ASCII"),
            ("sleep 5", "did not finish within 1 s (killed)"),
        ];
        for (script, needle) in cases {
            let e = run_helper("Prod", &argv(script), Duration::from_secs(1))
                .await
                .unwrap_err();
            assert!(e.contains(needle), "{script}: {e}");
            assert!(!e.contains("s3cret"), "{script}: {e}");
        }
        let e = run_helper(
            "Prod",
            &["/nonexistent/helper".to_owned()],
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(
            e.contains("starting the credential helper \"/nonexistent/helper\""),
            "{e}"
        );
    }
}
