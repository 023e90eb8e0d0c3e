//! Seed 002's `users.json` as `auth.users_file`, on real processes: the real authsvc with its
//! dev IdP admits only the people the file lists, their tokens carry the file's roles and their
//! own `user:<email>` role, and Envoy + the filter let a user restricted to `filesystem:*` see
//! and call only that server's tools (two `mcpServers`, each the rmcp demo backend). A user
//! taken off the file loses access at the next refresh.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tests::authsvc::Authsvc;
use tests::{Backend, Gateway, is_error, result_text};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-long-enough";
const CALLBACK: &str = "http://127.0.0.1:5555/cb";

/// Seed 002's example file, as its README gives it, pointed at this config's servers.
fn seed_users() -> Value {
    json!({
        "user@example.com": {"name": "User Name", "roles": ["admin"], "allowed_tools": ["*"]},
        "friend@example.com": {"name": "Friend", "roles": ["user"], "allowed_tools": ["filesystem:*"]}
    })
}

/// A browser without JavaScript: keeps cookies, never follows redirects.
struct Browser {
    http: reqwest::blocking::Client,
    cookies: BTreeMap<String, String>,
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn param(&self, name: &str) -> Option<String> {
        let loc = self.location.as_deref()?;
        let url = url::Url::parse(loc)
            .or_else(|_| url::Url::parse(&format!("http://x{loc}")))
            .ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
    fn hidden(&self, name: &str) -> String {
        let marker = format!(r#"name="{name}" value=""#);
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name}: {}", self.body))
            + marker.len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .no_proxy()
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn send(&mut self, req: reqwest::blocking::RequestBuilder) -> Answer {
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let req = if jar.is_empty() {
            req
        } else {
            req.header("cookie", jar.join("; "))
        };
        let resp = req.send().unwrap();
        for c in resp.headers().get_all("set-cookie") {
            let pair = c.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.insert(k.to_owned(), v.to_owned());
        }
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        Answer {
            status: resp.status().as_u16(),
            location,
            body: resp.text().unwrap(),
        }
    }

    fn get(&mut self, url: &str) -> Answer {
        let req = self.http.get(url);
        self.send(req)
    }

    fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Answer {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let req = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(req)
    }
}

fn challenge() -> String {
    use base64::Engine;
    let digest = ring::digest::digest(&ring::digest::SHA256, VERIFIER.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// How a sign-in ended: a token response (and the client it was issued to), or authsvc's
/// answer to the IdP's callback when it issued nothing.
enum SignIn {
    Tokens(Value, String),
    Refused(Answer),
}

/// The OAuth flow as a browser and a client do it: register, authorize, sign in at the dev
/// IdP as `user`, consent, exchange the code.
fn sign_in(base: &str, user: &str) -> SignIn {
    let mut b = Browser::new();
    let registered = b.send(
        b.http
            .post(format!("{base}/register"))
            .header("content-type", "application/json")
            .body(
                json!({"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"})
                    .to_string(),
            ),
    );
    assert_eq!(registered.status, 201, "{}", registered.body);
    let client_id = registered.json()["client_id"].as_str().unwrap().to_owned();
    let authorize = url::Url::parse_with_params(
        &format!("{base}/auth/login"),
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", CALLBACK),
            ("code_challenge", &challenge()),
            ("code_challenge_method", "S256"),
            ("state", "client-state"),
        ],
    )
    .unwrap();
    let a = b.get(authorize.as_str());
    assert_eq!(a.status, 303, "{}", a.body);
    let state = a.param("state").unwrap();
    let a = b.post_form(
        &format!("{base}/auth/dev/login"),
        &[("state", &state), ("user", user)],
    );
    assert_eq!(a.status, 303, "{}", a.body);
    let callback = a.location.unwrap();
    let a = if callback.starts_with('/') {
        b.get(&format!("{base}{callback}"))
    } else {
        b.get(&callback)
    };
    if a.status != 200 {
        return SignIn::Refused(a);
    }
    let (id, csrf) = (a.hidden("id"), a.hidden("csrf"));
    let a = b.post_form(
        &format!("{base}/auth/consent"),
        &[("id", &id), ("csrf", &csrf), ("decision", "approve")],
    );
    assert_eq!(a.status, 303, "{}", a.body);
    let code = a.param("code").unwrap();
    let a = b.post_form(
        &format!("{base}/auth/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("client_id", &client_id),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    SignIn::Tokens(a.json(), client_id)
}

fn tokens(signed_in: SignIn, who: &str) -> (Value, String) {
    match signed_in {
        SignIn::Tokens(t, client) => (t, client),
        SignIn::Refused(a) => panic!("{who} was refused ({}): {}", a.status, a.body),
    }
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn write_users(path: &Path, users: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(users).unwrap()).unwrap();
}

#[test]
fn a_seed_002_users_file_admits_only_its_users_and_limits_each_to_their_tools() -> anyhow::Result<()>
{
    let filesystem = Backend::demo("filesystem").record().start()?;
    let time = Backend::demo("time").record().start()?;
    let gw_port = tests::ports::free_port()?;
    let authsvc_port = Authsvc::reserve_port()?;
    let base = format!("http://127.0.0.1:{gw_port}");
    let dir = tests::logs::unique_path("users-file", "")?;
    std::fs::create_dir_all(&dir)?;
    let key = dir.join("signing.pem");
    std::fs::copy(tests::auth::signing_key_path(), &key)?;
    let users_file = dir.join("users.json");
    write_users(&users_file, &seed_users());
    let config = Gateway::builder()
        .server("filesystem", json!({"url": filesystem.url()}))
        .server("time", json!({"url": time.url()}))
        .port(gw_port)
        .auth_at(
            &base,
            &format!("http://127.0.0.1:{authsvc_port}"),
            json!({"admin": {"*": ["*"]}}),
        )
        .signing_key_file(&key)
        .idp(json!({"dev": {"users": {
            "user@example.com": [],
            "Friend@Example.com": [],
            "stranger@example.com": ["admin"]
        }}}))
        .auth_key("users_file", json!(users_file));
    let authsvc = Authsvc::start(&config.write(&dir)?, authsvc_port)?;
    let gw = config.start()?;

    // The friend (matched ignoring case) gets their own role; `user` is not configured.
    let (friend, friend_client) = tokens(sign_in(&base, "Friend@Example.com"), "friend");
    let token = friend["access_token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(c["roles"], json!(["user:friend@example.com"]), "{c:#}");
    assert_eq!(c["name"], "Friend", "{c:#}");

    // They see the filesystem server's tools only, and call them.
    let list = gw.list_tools_with(token)?.result()?;
    let listed = names(&list);
    assert!(
        listed.contains(&"filesystem__search_logs".to_owned()),
        "{listed:?}"
    );
    assert!(
        listed.iter().all(|n| n.starts_with("filesystem__")),
        "{listed:?}"
    );
    let ok = gw
        .call_with(token, "filesystem__search_logs", json!({"query": "x"}))?
        .result()?;
    assert!(!is_error(&ok), "{ok:#}");
    assert!(result_text(&ok).starts_with("[filesystem]"), "{ok:#}");
    assert_eq!(filesystem.records()?.len(), 1);
    // Another server's tool is not theirs: refused, never forwarded.
    let denied = gw
        .call_with(token, "time__search_logs", json!({"query": "x"}))?
        .rpc()?;
    assert!(
        denied
            .to_string()
            .contains("Unknown tool: time__search_logs"),
        "{denied}"
    );
    assert!(time.records()?.is_empty(), "a refused call reached `time`");

    // `*` with the file's `admin` role: everything.
    let (user, _) = tokens(sign_in(&base, "user@example.com"), "user");
    let token = user["access_token"].as_str().unwrap();
    assert_eq!(
        claims(token)["roles"],
        json!(["admin", "user:user@example.com"])
    );
    let listed = names(&gw.list_tools_with(token)?.result()?);
    assert!(
        listed.contains(&"time__search_logs".to_owned()),
        "{listed:?}"
    );
    let ok = gw
        .call_with(token, "time__search_logs", json!({"query": "x"}))?
        .result()?;
    assert!(result_text(&ok).starts_with("[time]"), "{ok:#}");

    // Not in the file: no token, whatever the IdP says about roles.
    let SignIn::Refused(refused) = sign_in(&base, "stranger@example.com") else {
        panic!("an unlisted user got a token");
    };
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("stranger@example.com is not on this gateway&#39;s list of users")
            || refused
                .body
                .contains("stranger@example.com is not on this gateway's list of users"),
        "{}",
        refused.body
    );
    assert!(refused.location.is_none(), "nothing is sent to the client");

    // Taken off the file: the next refresh is refused.
    write_users(
        &users_file,
        &json!({"user@example.com": seed_users()["user@example.com"]}),
    );
    let mut b = Browser::new();
    let a = b.post_form(
        &format!("{base}/auth/token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", friend["refresh_token"].as_str().unwrap()),
            ("client_id", &friend_client),
        ],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["error"], "invalid_grant", "{}", a.body);
    assert!(
        a.body
            .contains("Friend@Example.com is not on this gateway's list of users"),
        "{}",
        a.body
    );
    drop(authsvc);
    Ok(())
}
