//! Issue 9, authsvc's findings, on the real `meshmux-authsvc` over HTTP: no open redirect
//! before consent, bounded and rate-limited registration that expires in Redis, the SSRF
//! guard's ranges and its one answer, login state bound to the browser, user tokens revoked by
//! subject (refused by Envoy + the filter, refresh refused), authenticated internal
//! endpoints, and `retire-key`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::authsvc::Authsvc;
use tests::fixtures::{Idp, RealAuth};
use tests::redis::Redis;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-long-enough";
/// base64url(SHA-256(VERIFIER)).
fn challenge() -> String {
    use base64::Engine;
    let digest = ring::digest::digest(&ring::digest::SHA256, VERIFIER.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// A browser without JavaScript: keeps cookies by name, never follows redirects.
struct Browser {
    http: reqwest::blocking::Client,
    cookies: BTreeMap<String, String>,
}

struct Answer {
    status: u16,
    location: Option<String>,
    content_type: String,
    retry_after: Option<String>,
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
        let req = if self.cookies.is_empty() {
            req
        } else {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req.header("cookie", jar.join("; "))
        };
        let resp = req.send().unwrap();
        for c in resp.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        Answer {
            status: resp.status().as_u16(),
            location: header("location"),
            content_type: header("content-type").unwrap_or_default(),
            retry_after: header("retry-after"),
            body: resp.text().unwrap(),
        }
    }

    fn get(&mut self, url: &str) -> Answer {
        let req = self.http.get(url);
        self.send(req)
    }

    fn post_json(&mut self, url: &str, body: &Value) -> Answer {
        let req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string());
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

/// A `Location` as a URL (authsvc's are absolute or start at `/`).
fn absolute(base: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location.to_owned()
    }
}

fn authorize_url(base: &str, client_id: &str, redirect_uri: &str) -> String {
    url::Url::parse_with_params(
        &format!("{base}/auth/login"),
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("code_challenge", &challenge()),
            ("code_challenge_method", "S256"),
            ("state", "client-state"),
        ],
    )
    .unwrap()
    .to_string()
}

fn register(b: &mut Browser, base: &str, redirect_uri: &str) -> String {
    let a = b.post_json(
        &format!("{base}/register"),
        &json!({"redirect_uris": [redirect_uri], "token_endpoint_auth_method": "none"}),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    a.json()["client_id"].as_str().unwrap().to_owned()
}

/// The OAuth flow with the dev IdP, as a browser does it: authorize, sign in as `user`,
/// consent, then the client's code exchange. The token response.
fn sign_in(b: &mut Browser, base: &str, user: &str) -> (Value, String) {
    const CB: &str = "http://127.0.0.1:5555/cb";
    let client_id = register(b, base, CB);
    let a = b.get(&authorize_url(base, &client_id, CB));
    assert_eq!(a.status, 303, "{}", a.body);
    let state = a.param("state").unwrap();
    let a = b.post_form(
        &format!("{base}/auth/dev/login"),
        &[("state", &state), ("user", user)],
    );
    assert_eq!(a.status, 303, "{}", a.body);
    let a = b.get(&absolute(base, &a.location.unwrap()));
    assert_eq!(a.status, 200, "consent page: {}", a.body);
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
            ("redirect_uri", CB),
            ("client_id", &client_id),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    (a.json(), client_id)
}

fn refresh(b: &mut Browser, base: &str, refresh_token: &str, client_id: &str) -> Answer {
    b.post_form(
        &format!("{base}/auth/token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ],
    )
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

/// authsvc on its own (base_url = its own loopback URL), dev IdP, Redis store.
fn authsvc_with_redis(redis: &Redis, extra: Value) -> anyhow::Result<(Authsvc, String)> {
    let port = Authsvc::reserve_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let dir = tests::logs::unique_path("authsvc-hardening", "")?;
    std::fs::create_dir_all(&dir)?;
    let key = dir.join("signing.pem");
    std::fs::copy(tests::auth::signing_key_path(), &key)?;
    let mut auth = json!({
        "dev": {"users": {"dana": ["ops"]}},
        "base_url": base,
        "authsvc_url": base,
        "signing_key_file": key,
        "roles": {"ops": {"allowed_envs": {"*": ["*"]}}},
        "redis": redis.auth_block(),
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        auth[k] = v.clone();
    }
    let config = json!({
        "environments": {"Prod": {"description": "p", "url": "http://127.0.0.1:1/mcp"}},
        "auth": auth,
    });
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config)?)?;
    Ok((Authsvc::start(&path, port)?, base))
}

#[test]
fn errors_before_consent_are_pages_and_registration_is_bounded_limited_and_expires()
-> anyhow::Result<()> {
    let redis = Redis::start()?;
    // The default limit (`auth.registrations_per_hour`: 30), so that this test runs on an
    // authsvc from before issue 9 too, and fails there on what it checks.
    let (authsvc, base) = authsvc_with_redis(&redis, json!({}))?;
    let mut b = Browser::new();

    // 1. Registration is bounded: the 1.9 MB client_name of the report is refused.
    let a = b.post_json(
        &format!("{base}/register"),
        &json!({"redirect_uris": ["https://evil.example/cb"], "client_name": "A".repeat(1_900_000)}),
    );
    let head: String = a.body.chars().take(300).collect();
    assert_eq!(a.status, 413, "{head}");
    let a = b.post_json(
        &format!("{base}/register"),
        &json!({"redirect_uris": ["https://evil.example/cb"], "client_name": "A".repeat(201)}),
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["error"], "invalid_client_metadata");

    // 2. No open redirector: an error for a client nobody approved is a page, not a redirect.
    let evil = register(&mut b, &base, "https://evil.example/cb");
    let bad = authorize_url(&base, &evil, "https://evil.example/cb")
        .replace("response_type=code", "response_type=token");
    let a = b.get(&bad);
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.location, None);
    assert!(
        a.content_type.starts_with("text/html"),
        "{}",
        a.content_type
    );
    assert!(a.body.contains("unsupported_response_type"), "{}", a.body);

    // 3. Registrations expire in Redis (renewed by use; see the unit tests).
    let ttl: i64 = redis
        .command(&["PTTL", &format!("meshmux:authsvc:client:{evil}")])?
        .trim_start_matches(':')
        .parse()?;
    let thirty_days = 30 * 86_400_000;
    assert!(
        ttl > thirty_days - 60_000 && ttl <= thirty_days,
        "PTTL {ttl}"
    );

    // 4. Rate limit per source address: 30 per hour from here (the three above count,
    // refused ones too), then 429; another forwarded source is counted apart.
    let mut statuses = Vec::new();
    for _ in 0..28 {
        let a = b.post_json(
            &format!("{base}/register"),
            &json!({"redirect_uris": ["https://app.example/cb"]}),
        );
        statuses.push(a.status);
        if a.status == 429 {
            assert!(a.retry_after.is_some());
            assert!(a.body.contains("at most 30 per hour"), "{}", a.body);
        }
    }
    let mut expected = vec![201; 27];
    expected.push(429);
    assert_eq!(statuses, expected);
    let req = b
        .http
        .post(format!("{base}/register"))
        .header("content-type", "application/json")
        .header("x-forwarded-for", "198.51.100.23")
        .body(json!({"redirect_uris": ["https://app.example/cb"]}).to_string());
    let a = b.send(req);
    assert_eq!(a.status, 201, "{}", a.body);

    // 5. The SSRF guard: the new ranges, all with one answer.
    let mut answers = Vec::new();
    for client_id in [
        "https://[64:ff9b::a00:1]/client.json",
        "https://[2002:a00:1::1]/client.json",
        "https://[::10.0.0.1]/client.json",
        "https://192.0.0.8/client.json",
        "https://[fec0::1]/client.json",
        "https://10.0.0.1/client.json",
        "http://example.com/client.json",
    ] {
        let a = b.get(&authorize_url(&base, client_id, "https://app.example/cb"));
        assert_eq!(a.status, 400, "{client_id}: {}", a.body);
        assert_eq!(a.location, None);
        answers.push(a.body);
    }
    answers.dedup();
    assert_eq!(answers.len(), 1, "one text for every refusal: {answers:#?}");
    assert!(answers[0].contains("cannot be used"), "{}", answers[0]);
    drop(authsvc);
    Ok(())
}

#[test]
fn login_state_is_bound_to_the_browser_and_a_revoked_subject_loses_refresh() -> anyhow::Result<()> {
    let redis = Redis::start()?;
    let (authsvc, base) = authsvc_with_redis(&redis, json!({}))?;

    // Login CSRF: the attacker's callback URL, opened in the victim's browser, is refused.
    let mut attacker = Browser::new();
    let client_id = register(&mut attacker, &base, "http://127.0.0.1:5555/cb");
    let a = attacker.get(&authorize_url(
        &base,
        &client_id,
        "http://127.0.0.1:5555/cb",
    ));
    assert!(
        attacker.cookies.contains_key("meshmux_login"),
        "{:?}",
        attacker.cookies
    );
    let state = a.param("state").unwrap();
    let a = attacker.post_form(
        &format!("{base}/auth/dev/login"),
        &[("state", &state), ("user", "dana")],
    );
    let callback = absolute(&base, &a.location.unwrap());
    let mut victim = Browser::new();
    let a = victim.get(&callback);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.body.contains("did not come back to the browser"),
        "{}",
        a.body
    );

    // A user token and its refresh token; revoking the subject from the command line (into
    // Redis) lists the token for the filter and ends the refresh family.
    let mut b = Browser::new();
    let (tokens, client_id) = sign_in(&mut b, &base, "dana");
    let access = tokens["access_token"].as_str().unwrap();
    let jti = claims(access)["jti"].as_str().unwrap().to_owned();
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    let a = refresh(&mut b, &base, &rt, &client_id);
    assert_eq!(a.status, 200, "{}", a.body);
    let rt = a.json()["refresh_token"].as_str().unwrap().to_owned();
    let second_jti = claims(a.json()["access_token"].as_str().unwrap())["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ok, out, log) = Authsvc::cli(
        authsvc.config(),
        "revoke-dana",
        &["revoke", "--subject", "dev:dana"],
    )?;
    assert!(ok, "{out}{log}");
    let revoked = b.get(&format!("{base}/internal/revocations")).json();
    for j in [&jti, &second_jti] {
        assert!(
            revoked["revoked"].as_array().unwrap().contains(&json!(j)),
            "{revoked}"
        );
    }
    let a = refresh(&mut b, &base, &rt, &client_id);
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["error"], "invalid_grant");
    drop(authsvc);
    Ok(())
}

/// Through Envoy and the filter: a user's token works; `meshmux-authsvc revoke --jti`
/// (signed call to `/internal/revoke`, no Redis) makes the gateway refuse it within the
/// filter's refresh bound. Unsigned calls to the internal endpoints are refused.
#[test]
fn a_revoked_user_token_is_refused_by_the_gateway_and_internal_calls_need_the_key()
-> anyhow::Result<()> {
    let stack = RealAuth::start(Idp::Dev(json!({"erin": ["staging-reader"]})))?;
    let gw = &stack.gw;
    let base = stack.base_url.clone();
    let mut b = Browser::new();
    let (tokens, _) = sign_in(&mut b, &base, "erin");
    let token = tokens["access_token"].as_str().unwrap();
    let search = json!({"env": "Staging", "query": "timeout"});
    let ok = gw.call_with(token, "search_logs", search.clone())?;
    assert_eq!(ok.status, 200, "{}", ok.text());

    for (path, body) in [
        ("/internal/minted", json!({"token": token})),
        ("/internal/revoke", json!({"subject": "erin"})),
    ] {
        let a = b.post_json(&format!("{}{path}", stack.authsvc.url()), &body);
        assert_eq!(a.status, 401, "{path}: {}", a.body);
    }

    let jti = claims(token)["jti"].as_str().unwrap().to_owned();
    let (ok, out, log) = Authsvc::cli(
        stack.authsvc.config(),
        "revoke-erin",
        &["revoke", "--jti", &jti],
    )?;
    assert!(ok, "{out}{log}");
    let started = Instant::now();
    loop {
        let resp = gw.call_with(token, "search_logs", search.clone())?;
        if resp.status == 401 {
            break;
        }
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still accepted 30 s after revocation"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // A new sign-in's token still works (only that jti was revoked).
    let (tokens, _) = sign_in(&mut b, &base, "erin");
    let fresh = tokens["access_token"].as_str().unwrap();
    assert_eq!(gw.call_with(fresh, "search_logs", search)?.status, 200);
    Ok(())
}

fn jwks_kids(base: &str) -> Vec<String> {
    let jwks = Browser::new()
        .get(&format!("{base}/.well-known/jwks.json"))
        .json();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn retire_key_stops_publishing_the_previous_key() -> anyhow::Result<()> {
    let redis = Redis::start()?;
    let (authsvc, base) = authsvc_with_redis(&redis, json!({}))?;
    let config = authsvc.config().to_path_buf();
    let port: u16 = base.rsplit(':').next().unwrap().parse()?;
    let before = jwks_kids(&base);
    assert_eq!(before.len(), 1);
    let (ok, _, log) = Authsvc::cli(&config, "retire-none", &["retire-key"])?;
    assert!(!ok, "nothing to retire must fail");
    assert!(log.contains("no previous key"), "{log}");
    let (ok, _, log) = Authsvc::cli(&config, "rotate", &["rotate-key"])?;
    assert!(ok, "{log}");
    authsvc.stop();
    let authsvc = Authsvc::start(&config, port)?;
    let rotated = jwks_kids(&base);
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    assert_eq!(rotated[1], before[0]);
    let (ok, _, log) = Authsvc::cli(&config, "retire", &["retire-key"])?;
    assert!(ok, "{log}");
    assert!(log.contains(&before[0]), "{log}");
    authsvc.stop();
    let _authsvc = Authsvc::start(&config, port)?;
    assert_eq!(jwks_kids(&base), vec![rotated[0].clone()]);
    assert!(!Path::new(&format!("{}.previous", signing_key(&config))).exists());
    Ok(())
}

fn signing_key(config: &Path) -> String {
    let c: Value = serde_json::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    c["auth"]["signing_key_file"].as_str().unwrap().to_owned()
}

#[test]
fn redis_needs_its_password_and_a_wrong_one_keeps_authsvc_unready() -> anyhow::Result<()> {
    let redis = Redis::start()?;
    let probe = tests::http::client()?;
    let ready = |base: &str| -> anyhow::Result<(u16, Value)> {
        let resp = probe.get(format!("{base}/readyz")).send()?;
        Ok((resp.status().as_u16(), resp.json()?))
    };

    // The server refuses anyone without the password.
    let anonymous = redis.command_unauthenticated(&["SET", "meshmux:probe", "x"])?;
    assert!(anonymous.starts_with("-NOAUTH"), "{anonymous}");

    // authsvc with the wrong password: up, but not ready, saying why.
    let mut wrong = redis.auth_block();
    wrong["password"] = json!("not-the-password");
    let (authsvc, base) = authsvc_with_redis(&redis, json!({ "redis": wrong }))?;
    let (status, body) = ready(&base)?;
    assert_eq!(status, 503, "{body:#}");
    assert!(
        body["checks"]["store"]
            .as_str()
            .is_some_and(|s| s.starts_with("unavailable")),
        "{body:#}"
    );
    let log = std::fs::read_to_string(authsvc.log())?;
    assert!(!log.contains("not-the-password"), "the password was logged");
    authsvc.stop();

    // With it (`auth_block` carries it, URL-unsafe characters and all): ready, and storing.
    let (authsvc, base) = authsvc_with_redis(&redis, json!({}))?;
    let (status, body) = ready(&base)?;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["store"], "redis", "{body:#}");
    let mut b = Browser::new();
    register(&mut b, &base, "http://127.0.0.1:1/callback");
    let keys = redis.command(&["DBSIZE"])?;
    assert_ne!(keys, ":0", "nothing was stored");
    drop(authsvc);
    Ok(())
}
