//! The ids the gateway puts on messages inside a shared backend session, and how they map back.
//!
//! - A forwarded call's id is `mmx-<vm>-<seq>` (from the host: unique per Envoy process and
//!   VM), so calls from callers who reuse ids never meet in a backend session.
//! - Its progress token, if the caller sent one, is `<that id>.p`.
//! - A request the backend sends the caller (elicitation, sampling, roots) keeps its own id
//!   inside the session, but the caller sees `mmx-s:<env>:<caller>:<the id as JSON>`, so its
//!   answer, which comes back on another HTTP request, can be sent to the right env with the
//!   right id, and only by the caller it was sent to.
//! - A caller is its verified principal plus the client session id the gateway gave it at
//!   `initialize` ([`caller`]), hashed: without auth the session id alone tells callers apart.

use serde_json::Value;
use sha2::{Digest, Sha256};

const SERVER_REQUEST: &str = "mmx-s:";

/// The forwarded call id for sequence `seq` of VM `vm`.
pub fn call(vm: u32, seq: u64) -> String {
    format!("mmx-{vm}-{seq}")
}

/// Claims a number for this VM among the VMs of the Envoy process (a counter in shared data,
/// bumped with compare-and-swap), so call ids of different workers never meet in a backend
/// session they share. `None` only after 64 lost races in a row.
pub fn claim_vm(host: &mut dyn super::Host) -> Option<u32> {
    const KEY: &str = "meshmux.vm_index";
    for _ in 0..64 {
        let (bytes, cas) = host.shared_get(KEY);
        let last: u32 = bytes
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let next = last.wrapping_add(1).max(1);
        if host.shared_set(KEY, next.to_string().as_bytes(), cas) {
            return Some(next);
        }
    }
    None
}

/// The progress token a call with forwarded id `call_id` carries into the backend session.
pub fn progress(call_id: &str) -> String {
    format!("{call_id}.p")
}

/// The id the caller `bind` sees for request `id` of `env`'s backend.
pub fn server_request(env: &str, bind: &str, id: &Value) -> String {
    format!(
        "{SERVER_REQUEST}{env}:{bind}:{}",
        serde_json::to_string(id).unwrap_or_else(|_| "null".into())
    )
}

/// The env, the caller and the backend's own id behind an answer id, if the gateway made it.
pub fn parse_server_request(id: &Value) -> Option<(String, String, Value)> {
    let rest = id.as_str()?.strip_prefix(SERVER_REQUEST)?;
    let (env, rest) = rest.split_once(':')?;
    let (bind, original) = rest.split_once(':')?;
    if !crate::manifest::valid_env_name(env) || bind.is_empty() {
        return None;
    }
    let original: Value = serde_json::from_str(original).ok()?;
    matches!(original, Value::String(_) | Value::Number(_))
        .then(|| (env.to_owned(), bind.to_owned(), original))
}

/// A short, stable name for a caller: its principal and client session id, hashed.
pub fn caller(principal: &str, client_session: Option<&str>) -> String {
    let digest = Sha256::new()
        .chain_update(principal.as_bytes())
        .chain_update([0])
        .chain_update(client_session.unwrap_or_default().as_bytes())
        .finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The shared-data slot where a caller's in-flight call `id` is noted for cancellation: a
/// fixed number of slots, so the store never grows (a collision only loses a cancellation).
pub fn inflight_slot(caller: &str, id: &Value) -> (String, String) {
    let digest = Sha256::new()
        .chain_update(caller.as_bytes())
        .chain_update([0])
        .chain_update(serde_json::to_vec(id).unwrap_or_default())
        .finalize();
    let full: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    let byte = |i: usize| digest.get(i).copied().unwrap_or(0);
    let slot = u16::from_be_bytes([byte(0), byte(1)]) % INFLIGHT_SLOTS;
    (format!("meshmux.inflight.{slot}"), full)
}

/// The shared-data slot holding a legacy caller's `logging/setLevel` level, and the key its
/// record carries (a collision only loses a level: that caller then gets every message).
pub fn log_level_slot(caller: &str) -> (String, String) {
    let digest = Sha256::new()
        .chain_update(b"log-level")
        .chain_update([0])
        .chain_update(caller.as_bytes())
        .finalize();
    let byte = |i: usize| digest.get(i).copied().unwrap_or(0);
    let slot = u16::from_be_bytes([byte(0), byte(1)]) % INFLIGHT_SLOTS;
    (format!("meshmux.loglevel.{slot}"), caller.to_owned())
}

/// Slots for in-flight calls (each holds one small record).
pub const INFLIGHT_SLOTS: u16 = 1024;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn server_request_ids_round_trip() {
        for id in [json!(0), json!(17), json!("abc"), json!("with:colon")] {
            let s = server_request("Prod-1.a", "c0ffee", &id);
            assert_eq!(
                parse_server_request(&json!(s)),
                Some(("Prod-1.a".into(), "c0ffee".into(), id))
            );
        }
        for bad in [
            json!(1),
            json!("mmx-s:"),
            json!("mmx-s:Prod"),
            json!("mmx-s:Prod:b"),
            json!("mmx-s:Prod::1"),
            json!("mmx-s:Pr od:b:1"),
            json!("mmx-s:Prod:b:{}"),
            json!("mmx-s:Prod:b:nope"),
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
