//! What `meshmux up` prints once the stack is ready: the URLs, and with auth how a person
//! signs in, mints a token and calls a tool with it.

use std::path::{Path, PathBuf};

/// What the banner says about signing in, when `up` runs authsvc.
pub(super) struct AuthBanner {
    pub(super) base_url: String,
    pub(super) authsvc_url: String,
    pub(super) authsvc_bin: PathBuf,
    pub(super) config: PathBuf,
    /// The dev IdP's users and their roles (empty with a real IdP).
    pub(super) dev_users: Vec<(String, Vec<String>)>,
    pub(super) minting_roles: Vec<String>,
}

impl AuthBanner {
    pub(super) fn new(
        auth: &policy::config::AuthConfig,
        authsvc_url: &str,
        bin: &Path,
        config: &Path,
    ) -> AuthBanner {
        AuthBanner {
            base_url: auth.base_url.trim_end_matches('/').to_owned(),
            authsvc_url: authsvc_url.to_owned(),
            authsvc_bin: bin.to_path_buf(),
            config: config.to_path_buf(),
            dev_users: auth
                .dev
                .as_ref()
                .map(|d| d.users.clone().into_iter().collect())
                .unwrap_or_default(),
            minting_roles: auth.token_minting_roles.clone(),
        }
    }
}

pub(super) fn print_ready(mcp_url: &str, admin: &str, work: &Path, auth: Option<&AuthBanner>) {
    print!("{}", ready_banner(mcp_url, admin, work, auth));
}

pub(super) fn ready_banner(
    mcp_url: &str,
    admin: &str,
    work: &Path,
    auth: Option<&AuthBanner>,
) -> String {
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_logs","arguments":{"env":"Prod","query":"timeout"}}}"#;
    let headers =
        "-H 'content-type: application/json' -H 'accept: application/json, text/event-stream'";
    let mut out = format!("\nmeshmux is up.\n\n  MCP endpoint  {mcp_url}\n");
    if let Some(a) = auth {
        out.push_str(&format!(
            "  Token UI      {}/ui/login\n  authsvc       {} (log {})\n",
            a.base_url,
            a.authsvc_url,
            work.join("authsvc.log").display()
        ));
    }
    out.push_str(&format!(
        "  Envoy admin   {admin}\n  Envoy log     {}\n  Config        {}\n",
        work.join("envoy.log").display(),
        work.display()
    ));
    match auth {
        None => out.push_str(&format!(
            "\nTry it:\n  curl -s {mcp_url} {headers} \\\n    -d '{call}'\n"
        )),
        Some(a) => {
            let users: Vec<String> = a
                .dev_users
                .iter()
                .map(|(u, roles)| format!("{u} ({})", roles.join(", ")))
                .collect();
            let sign_in = if users.is_empty() {
                "at your identity provider".to_owned()
            } else {
                format!(
                    "with the dev sign-in (no password; users: {})",
                    users.join(", ")
                )
            };
            let minters = if a.minting_roles.is_empty() {
                "Nobody may mint tokens: auth.token_minting_roles is empty.".to_owned()
            } else {
                format!(
                    "Sign in as a user holding {}: only they may mint tokens.",
                    a.minting_roles.join(" or ")
                )
            };
            let role = a.minting_roles.first().map_or("ROLE", String::as_str);
            out.push_str(&format!(
                "\nEvery call to {mcp_url} needs a token. To get one:\n\
                 \n  1. Open {base}/ui/login and sign in {sign_in}.\
                 \n     {minters}\
                 \n  2. Under \"Mint a bot token\" enter a name, tick roles, press \"Mint token\", and copy\
                 \n     the token (it is shown once).\
                 \n     Or from a shell: {bin} mint --config {config} --name me --roles {role} --days 1\n\
                 \nCall a tool with it:\
                 \n  TOKEN=<the token>\
                 \n  curl -s {mcp_url} -H \"authorization: Bearer $TOKEN\" {headers} \\\
                 \n    -d '{call}'\n\
                 \nMCP clients that support OAuth (Claude, the MCP Inspector) sign in through the same page.\n",
                base = a.base_url,
                bin = a.authsvc_bin.display(),
                config = a.config.display(),
            ));
        }
    }
    out.push_str("\nPress Ctrl-C to stop.\n");
    out
}
