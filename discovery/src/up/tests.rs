use super::banner::{AuthBanner, ready_banner};
use super::*;

#[test]
fn demo_config_is_a_valid_seed_000_config() {
    let urls = vec![
        ("Prod", "http://127.0.0.1:1/mcp".to_owned()),
        ("Staging", "http://127.0.0.1:2/mcp".to_owned()),
        ("Dev", "http://127.0.0.1:3/mcp".to_owned()),
    ];
    let text = demo_config(&urls, None).to_string();
    let config =
        policy::config::Config::parse(&text, policy::config::Format::Json, "demo", &|_| None)
            .unwrap();
    let names: Vec<&str> = config
        .environments
        .0
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names, ["Prod", "Staging", "Dev"]);
    let (_, prod) = &config.environments.0[0];
    assert_eq!(prod.headers["X-Demo-Env"], "Prod");
    assert_eq!(prod.headers["Authorization"], "Bearer demo-prod-token");
    assert!(config.auth.is_none());
}

#[test]
fn the_demo_with_auth_is_a_valid_config_authsvc_accepts() {
    let urls = vec![
        ("Prod", "http://127.0.0.1:1/mcp".to_owned()),
        ("Staging", "http://127.0.0.1:2/mcp".to_owned()),
        ("Dev", "http://127.0.0.1:3/mcp".to_owned()),
    ];
    let auth = DemoAuth {
        base_url: "http://127.0.0.1:10000".into(),
        authsvc_url: "http://127.0.0.1:10001".into(),
        signing_key_file: "/tmp/work/key.pem".into(),
    };
    let text = demo_config(&urls, Some(&auth)).to_string();
    let config =
        policy::config::Config::parse(&text, policy::config::Format::Json, "demo", &|_| None)
            .unwrap();
    let a = config.auth.unwrap();
    assert_eq!(a.base_url, "http://127.0.0.1:10000");
    assert_eq!(a.authsvc_url, "http://127.0.0.1:10001");
    assert_eq!(a.dev.unwrap().users["alice"], ["admin"]);
    assert_eq!(a.token_minting_roles, ["admin"]);
    assert_eq!(a.roles.len(), 2);
}

#[test]
fn the_banner_says_how_to_sign_in_mint_and_call() {
    let auth = AuthBanner {
        base_url: "http://127.0.0.1:10000".into(),
        authsvc_url: "http://127.0.0.1:10001".into(),
        authsvc_bin: "/bin/meshmux-authsvc".into(),
        config: "/w/demo-config.json".into(),
        dev_users: DEMO_USERS
            .iter()
            .map(|(u, r)| ((*u).to_owned(), r.iter().map(|r| (*r).to_owned()).collect()))
            .collect(),
        minting_roles: vec!["admin".into()],
    };
    let mcp = "http://127.0.0.1:10000/mcp";
    let text = ready_banner(mcp, "http://127.0.0.1:9901", Path::new("/w"), Some(&auth));
    assert!(
        text.contains("Token UI      http://127.0.0.1:10000/ui/login"),
        "{text}"
    );
    assert!(text.contains("alice (admin)"), "{text}");
    assert!(
        text.contains("/bin/meshmux-authsvc mint --config /w/demo-config.json"),
        "{text}"
    );
    assert!(
        text.contains("-H \"authorization: Bearer $TOKEN\""),
        "{text}"
    );
    assert!(text.contains("holding admin"), "{text}");
    assert!(text.contains("--roles admin --days 1"), "{text}");
    // A real IdP: no dev users to list.
    let real = AuthBanner {
        dev_users: Vec::new(),
        minting_roles: vec!["ops".into()],
        ..auth
    };
    let text = ready_banner(mcp, "http://127.0.0.1:9901", Path::new("/w"), Some(&real));
    assert!(text.contains("sign in at your identity provider"), "{text}");
    assert!(text.contains("--roles ops --days 1"), "{text}");
    let plain = ready_banner(mcp, "http://127.0.0.1:9901", Path::new("/w"), None);
    assert!(!plain.contains("TOKEN"), "{plain}");
    assert!(plain.contains("Try it:"), "{plain}");
}

fn auth_with(authsvc_url: Option<&str>) -> policy::config::AuthConfig {
    let url = authsvc_url
        .map(|u| format!(r#","authsvc_url": "{u}""#))
        .unwrap_or_default();
    let text = format!(
        r#"{{"environments": {{"Prod": {{"description": "p", "url": "http://127.0.0.1:1/mcp"}}}},
           "auth": {{"dev": {{"users": {{"ann": ["ops"]}}}}, "base_url": "http://127.0.0.1:10000",
                    "signing_key_file": "k.pem", "roles": {{"ops": {{"allowed_envs": {{"*": ["*"]}}}}}}{url}}}}}"#
    );
    policy::config::Config::parse(&text, policy::config::Format::Json, "t", &|_| None)
        .unwrap()
        .auth
        .unwrap()
}

#[test]
fn authsvc_is_started_for_a_config_with_auth_on_its_loopback_address() {
    assert_eq!(authsvc_plan(None, false), AuthsvcPlan::None);
    let default = auth_with(None);
    assert_eq!(
        authsvc_plan(Some(&default), false),
        AuthsvcPlan::Start {
            listen: "127.0.0.1:8090".parse().unwrap(),
            url: "http://127.0.0.1:8090".into()
        }
    );
    assert_eq!(authsvc_plan(Some(&default), true), AuthsvcPlan::None);
    let start = |u: &str, listen: &str, url: &str| {
        assert_eq!(
            authsvc_plan(Some(&auth_with(Some(u))), false),
            AuthsvcPlan::Start {
                listen: listen.parse().unwrap(),
                url: url.into()
            },
            "{u}"
        );
    };
    start(
        "http://localhost:9000/",
        "127.0.0.1:9000",
        "http://localhost:9000",
    );
    start("http://[::1]:9000", "[::1]:9000", "http://[::1]:9000");
    start("http://127.0.0.2", "127.0.0.2:80", "http://127.0.0.2");
    for elsewhere in [
        "http://authsvc.internal:8090",
        "http://10.0.0.5:8090",
        "https://127.0.0.1:8090",
        "http://127.0.0.1:8090/prefix",
    ] {
        assert_eq!(
            authsvc_plan(Some(&auth_with(Some(elsewhere))), false),
            AuthsvcPlan::External(elsewhere.into()),
            "{elsewhere}"
        );
    }
}
