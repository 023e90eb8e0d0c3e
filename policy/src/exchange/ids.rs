//! The ids the gateway puts on messages inside a shared backend session, and how they map back.
//!
//! - A forwarded call's id is `mmx-<vm>-<seq>` (from the host: unique per Envoy process and
//!   VM), so calls from callers who reuse ids never meet in a backend session.
//! - Its progress token, if the caller sent one, is `<that id>.p`.
//! - A request the backend sends the caller (elicitation, sampling, roots) keeps its own id
//!   inside the session, but the caller sees `mmx-s:<env>:<the id as JSON>`, so its answer,
//!   which comes back on another HTTP request, can be sent to the right env with the right id.

use serde_json::Value;

const SERVER_REQUEST: &str = "mmx-s:";

/// The forwarded call id for sequence `seq` of VM `vm`.
pub fn call(vm: u32, seq: u64) -> String {
    format!("mmx-{vm}-{seq}")
}

/// The progress token a call with forwarded id `call_id` carries into the backend session.
pub fn progress(call_id: &str) -> String {
    format!("{call_id}.p")
}

/// The id the caller sees for request `id` of `env`'s backend.
pub fn server_request(env: &str, id: &Value) -> String {
    format!(
        "{SERVER_REQUEST}{env}:{}",
        serde_json::to_string(id).unwrap_or_else(|_| "null".into())
    )
}

/// The env and the backend's own id behind a caller's answer id, if the gateway made it.
pub fn parse_server_request(id: &Value) -> Option<(String, Value)> {
    let rest = id.as_str()?.strip_prefix(SERVER_REQUEST)?;
    let (env, original) = rest.split_once(':')?;
    if !crate::manifest::valid_env_name(env) {
        return None;
    }
    let original: Value = serde_json::from_str(original).ok()?;
    matches!(original, Value::String(_) | Value::Number(_)).then(|| (env.to_owned(), original))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn server_request_ids_round_trip() {
        for id in [json!(0), json!(17), json!("abc"), json!("with:colon")] {
            let s = server_request("Prod-1.a", &id);
            assert_eq!(
                parse_server_request(&json!(s)),
                Some(("Prod-1.a".into(), id))
            );
        }
        for bad in [
            json!(1),
            json!("mmx-s:"),
            json!("mmx-s:Prod"),
            json!("mmx-s:Pr od:1"),
            json!("mmx-s:Prod:{}"),
            json!("mmx-s:Prod:nope"),
            json!("other"),
        ] {
            assert_eq!(parse_server_request(&bad), None, "{bad}");
        }
    }

    #[test]
    fn call_ids() {
        assert_eq!(call(3, 42), "mmx-3-42");
        assert_eq!(progress("mmx-3-42"), "mmx-3-42.p");
    }
}
