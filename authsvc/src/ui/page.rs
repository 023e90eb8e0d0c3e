//! HTML pages: one layout with inline CSS (no external assets) and the headers every page
//! carries (no framing, no caching). Pages are `maud` templates, which escape every
//! interpolated value unless it is explicitly `PreEscaped` (only the constant CSS is).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

const CSS: &str = "
:root{--ink:#17212b;--muted:#5b6b7b;--line:#dde3ea;--bg:#f4f6f9;--card:#fff;--accent:#2f5bea;--danger:#c0392b;--warn:#fff4d6;--warnline:#e2b93b;--ok:#e7f6ec;--okline:#3aa864}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--ink);background:var(--bg)}
header{background:var(--ink);color:#fff;padding:14px 28px;display:flex;align-items:center;justify-content:space-between}
header .brand{font-weight:650;letter-spacing:.3px}header .brand span{color:#8fb0ff}header form{margin:0}
header .who{font-size:13px;color:#c9d3de;display:flex;gap:12px;align-items:center}
main{max-width:880px;margin:32px auto;padding:0 20px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:22px 24px;margin-bottom:20px;box-shadow:0 1px 2px rgba(0,0,0,.04)}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:0 0 14px}p.lead{color:var(--muted);margin:0 0 8px}
label{display:block;font-weight:600;font-size:13px;margin:12px 0 4px}
input[type=text],input[type=number]{width:100%;padding:8px 10px;border:1px solid var(--line);border-radius:6px;font:inherit}
.roles{display:flex;flex-wrap:wrap;gap:8px}.roles label{font-weight:500;margin:0;border:1px solid var(--line);border-radius:999px;padding:3px 12px;display:flex;gap:6px;align-items:center}
button,.button{display:inline-block;background:var(--accent);color:#fff;border:0;border-radius:6px;padding:9px 16px;font:inherit;font-weight:600;cursor:pointer;text-decoration:none}
button.secondary{background:#e9edf3;color:var(--ink)}button.danger{background:var(--danger)}button.small{padding:5px 10px;font-size:13px}
table{width:100%;border-collapse:collapse;font-size:14px}th,td{text-align:left;padding:9px 8px;border-bottom:1px solid var(--line)}th{color:var(--muted);font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.4px}
.tag{display:inline-block;background:#eef2ff;color:#2a3f9d;border-radius:999px;padding:1px 9px;font-size:12px;margin:1px}
.state-revoked{color:var(--danger);font-weight:600}.state-expired{color:var(--muted)}
.banner{border:1px solid var(--warnline);background:var(--warn);border-radius:8px;padding:12px 16px;margin-bottom:20px}
.success{border:1px solid var(--okline);background:var(--ok);border-radius:8px;padding:14px 16px;margin-bottom:20px}
.error{border:1px solid var(--danger);background:#fdecea;border-radius:8px;padding:12px 16px;margin-bottom:20px}
code.token{display:block;word-break:break-all;background:#0f1720;color:#d7f5dd;padding:12px;border-radius:6px;font-size:12.5px;margin-top:8px;user-select:all}
.muted{color:var(--muted);font-size:13px}.row{display:flex;gap:14px}.row>div{flex:1}
.actions{display:flex;gap:10px;margin-top:18px}
";

/// A whole page. `who` (name, CSRF token) adds the signed-in header with a logout button.
pub fn layout(title: &str, who: Option<(&str, &str)>, body: Markup) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · meshmux" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    div.brand { "mesh" span { "mux" } " · access" }
                    @if let Some((name, csrf)) = who {
                        div.who {
                            "Signed in as " strong { (name) }
                            form method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button.secondary.small { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page.into_string(),
    )
        .into_response()
}

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Lets the page's forms end in a redirect to `redirect_uri`: browsers apply `form-action` to
/// every redirect that follows a form's POST (Chromium blocks the navigation otherwise), and
/// the consent form is answered with a redirect to the client. Adds that URI's origin (or,
/// for a private-use scheme such as `cursor://`, the scheme) to `form-action`.
pub fn allow_form_redirect_to(response: &mut Response, redirect_uri: &str) {
    let Ok(url) = url::Url::parse(redirect_uri) else {
        return;
    };
    let source = match url.origin() {
        origin @ url::Origin::Tuple(..) => origin.ascii_serialization(),
        url::Origin::Opaque(_) => format!("{}:", url.scheme()),
    };
    if let Ok(value) = header::HeaderValue::from_str(&CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {source}"),
    )) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// A page that only says something (errors, refusals).
pub fn message_page(title: &str, message: &str) -> Response {
    layout(
        title,
        None,
        html! {
            div.card { h1 { (title) } p.lead { (message) } }
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn interpolated_text_is_escaped() {
        use http_body_util::BodyExt;
        let evil = r#"<script>alert("x")</script>' onmouseover='"#;
        let page = layout(
            evil,
            Some((evil, evil)),
            html! { p { (evil) } input value=(evil); },
        );
        let body = page.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(!body.contains("<script>"), "{body}");
        assert!(!body.contains(r#"value="<"#), "{body}");
        assert!(
            body.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"),
            "{body}"
        );
    }
}
