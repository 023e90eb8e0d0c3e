//! `policy::rpc::parse`, the strict JSON-RPC request parse: what it accepts is exactly what
//! a backend's ordinary JSON parser reads, and it refuses with a 400 otherwise.

use policy::rpc::{self, Message, code};
use serde_json::Value;

pub fn check(data: &[u8]) {
    let strict = rpc::parse(data);
    let plain = serde_json::from_slice::<Value>(data);
    match &strict {
        Ok(message) => {
            let object = match message {
                Message::Request { object, .. }
                | Message::Notification { object, .. }
                | Message::Response { object } => object,
            };
            // No duplicate keys were accepted: a plain parse (last key wins) reads the same.
            match &plain {
                Ok(Value::Object(plain)) => assert_eq!(plain, object, "strict and plain disagree"),
                other => panic!("accepted, but a plain parse gives {other:?}"),
            }
            assert_eq!(object.get("jsonrpc"), Some(&Value::from("2.0")));
            match message {
                Message::Request { id, method, .. } => {
                    assert!(id.is_string() || id.is_i64() || id.is_u64(), "id {id}");
                    assert_eq!(object.get("method"), Some(&Value::from(method.as_str())));
                }
                Message::Notification { .. } => assert!(!object.contains_key("id")),
                Message::Response { .. } => {
                    assert!(object.contains_key("result") || object.contains_key("error"))
                }
            }
            // What the filter forwards (re-serialized) parses to the same message.
            let again = serde_json::to_vec(object).map(|b| rpc::parse(&b));
            assert!(
                matches!(&again, Ok(Ok(m)) if m == message),
                "round trip gives {again:?}"
            );
        }
        Err(r) => {
            assert_eq!(r.status, 400);
            assert!(
                r.code == code::PARSE_ERROR || r.code == code::INVALID_REQUEST,
                "code {}",
                r.code
            );
            assert!(
                r.id.is_null() || r.id.is_string() || r.id.is_i64() || r.id.is_u64(),
                "id {}",
                r.id
            );
            if r.code == code::PARSE_ERROR {
                assert!(plain.is_err(), "a parse error for JSON that parses");
            }
        }
    }
}
