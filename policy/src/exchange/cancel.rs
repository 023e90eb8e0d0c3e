//! Cancellation of a forwarded call: the caller's `notifications/cancelled` arrives on another
//! HTTP request, so each call in flight is noted in one of a fixed number of shared-data slots
//! (`ids::inflight_slot`), keyed by its caller and id, and cleared when its stream ends.

use serde_json::Value;

use crate::Gateway;
use crate::gateway::{Forward, ForwardKind};
use crate::reply;

use super::{Call, Exchange, Flow, Host, ids};

impl Exchange {
    /// The caller as `ids::caller` names it; `None` when nothing tells it from other callers
    /// (no token and no client session id).
    pub(super) fn caller_key(&self, host: &dyn Host) -> Option<String> {
        let principal = host.principal();
        let session = self.request.client_session.as_deref();
        (principal != crate::metrics::ANONYMOUS || session.is_some())
            .then(|| ids::caller(&principal, session))
    }

    /// `notifications/cancelled` for one of this caller's calls: sent on to the backend
    /// session that runs it, with the id it has there.
    pub(super) fn cancel(&mut self, gw: &Gateway, host: &mut dyn Host, request_id: &Value) -> Flow {
        let Some(caller) = self.caller_key(host) else {
            return self.reply(reply::accepted());
        };
        let (slot, key) = ids::inflight_slot(&caller, request_id);
        let (bytes, _) = host.shared_get(&slot);
        let record = bytes.and_then(|b| serde_json::from_slice::<Inflight>(&b).ok());
        let Some(record) = record.filter(|r| r.key == key) else {
            return self.reply(reply::accepted());
        };
        let Some(entry) = gw.config().manifest.env(&record.env) else {
            return self.reply(reply::accepted());
        };
        let mut message = serde_json::Map::new();
        message.insert("jsonrpc".into(), "2.0".into());
        message.insert("method".into(), "notifications/cancelled".into());
        message.insert(
            "params".into(),
            serde_json::json!({"requestId": record.id, "reason": "cancelled by the client"}),
        );
        let fwd = Forward {
            kind: ForwardKind::Relay,
            env: record.env.clone(),
            cluster: entry.cluster.clone(),
            tool: String::new(),
            id: Value::Null,
            message,
            protocol_version: crate::gateway::forward_version(entry),
            modern: false,
            bind: None,
            client_capabilities: None,
            log_level: None,
            subject: crate::gateway::subject(entry),
            result: Default::default(),
        };
        self.forward(gw, host, fwd)
    }

    /// The stream ended (however it ended): the call is no longer in flight.
    pub fn handle_end(&mut self, host: &mut dyn Host) {
        let Some((slot, key)) = self.inflight.take() else {
            return;
        };
        let (bytes, cas) = host.shared_get(&slot);
        let record = bytes.and_then(|b| serde_json::from_slice::<Inflight>(&b).ok());
        if record.is_some_and(|r| r.key == key) {
            host.shared_set(&slot, b"", cas);
        }
    }

    /// Notes `call` (forwarded with an id of the gateway's) for the caller's cancellation.
    pub(super) fn note_inflight(&mut self, host: &mut dyn Host, caller: &str, call: &Call) {
        let Some(edits) = &call.edits else { return };
        let Some(forwarded) = &edits.forwarded_id else {
            return;
        };
        let (slot, key) = ids::inflight_slot(caller, &edits.original_id);
        let record = Inflight {
            key: key.clone(),
            env: call.fwd.env.clone(),
            id: forwarded.clone(),
        };
        host.shared_set(
            &slot,
            &serde_json::to_vec(&record).unwrap_or_default(),
            None,
        );
        self.inflight = Some((slot, key));
    }
}

/// A call in flight, as noted for cancellation.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Inflight {
    key: String,
    env: String,
    id: String,
}
