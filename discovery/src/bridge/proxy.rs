//! The generic relay: [`ProxyServer`] is the rmcp server of one HTTP session and forwards
//! every client request and notification to the session's backend; [`ProxyClient`] is the
//! rmcp client of that backend and forwards every server request (sampling, elicitation,
//! roots) and notification (progress, logging, list_changed) back to the HTTP client. No
//! method is handled by hand: both sides move rmcp's `ClientRequest`/`ServerRequest` enums
//! as they are.
//!
//! rmcp gives each side its own request ids and progress tokens, so the relay keeps two
//! small maps per session: the backend's progress token -> the caller's (progress for a
//! request the caller gave no token for is dropped, as the spec wants), and the HTTP
//! requests in flight, so that a server request the backend sends while one runs rides that
//! request's SSE stream (stdio carries no association: with several in flight the server
//! request is refused, never sent to a caller it may not belong to; with none it goes on the
//! standalone stream).
//! Cancellation crosses as cancellation of the matching request on the other side.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientConfig, ClientNotification,
    ClientRequest, ClientResult, ErrorData, GetExtensions as _, GetMeta as _, InitializeResult,
    ProgressToken, RequestId, ServerNotification, ServerRequest, ServerResult,
};
use rmcp::service::{
    NotificationContext, OriginatingRequestId, Peer, PeerRequestOptions, RequestContext,
    RunningService,
};
use rmcp::{RoleClient, RoleServer, Service, ServiceError};
use tokio::sync::watch;
use tokio_util::sync::DropGuard;

use super::routes::{Routes, lock};
use super::{Shared, backend};

/// How long a failed request waits to learn why the backend went away.
const DEATH_GRACE: Duration = Duration::from_secs(2);

/// Removes a forwarded request's routes when it ends, however it ends.
struct Route<'a> {
    routes: &'a Routes,
    id: RequestId,
    token: ProgressToken,
}

impl Drop for Route<'_> {
    fn drop(&mut self) {
        lock(&self.routes.progress).remove(&self.token);
        lock(&self.routes.inflight).retain(|i| *i != self.id);
    }
}

/// A started backend of one session.
pub struct Link {
    running: RunningService<RoleClient, ProxyClient>,
    routes: Arc<Routes>,
    /// Why the backend went away, once it has.
    ended: watch::Receiver<Option<String>>,
    /// Stops the backend (kills the child, closes the stream) when the session ends.
    _stop: DropGuard,
}

impl Link {
    pub fn new(
        running: RunningService<RoleClient, ProxyClient>,
        routes: Arc<Routes>,
        ended: watch::Receiver<Option<String>>,
        stop: DropGuard,
    ) -> Self {
        Self {
            running,
            routes,
            ended,
            _stop: stop,
        }
    }

    fn peer(&self) -> &Peer<RoleClient> {
        self.running.peer()
    }

    /// Turns a failed forward into the caller's error: the backend's own JSON-RPC error as it
    /// is, anything else (the backend gone) as an error naming the server and why.
    async fn error(&self, name: &str, e: ServiceError) -> ErrorData {
        if let ServiceError::McpError(e) = e {
            return e;
        }
        let mut ended = self.ended.clone();
        let why = tokio::time::timeout(DEATH_GRACE, ended.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|w| w.clone());
        match why {
            Some(why) => gone(name, &why),
            None => ErrorData::internal_error(format!("MCP server `{name}`: {e}"), None),
        }
    }
}

pub fn gone(name: &str, why: &str) -> ErrorData {
    ErrorData::internal_error(
        format!("MCP server `{name}` is gone: {why}; the session is closed, start a new one"),
        None,
    )
}

/// The server side of one HTTP session.
pub struct ProxyServer {
    shared: Arc<Shared>,
    link: OnceLock<Arc<Link>>,
    /// The backend's capabilities, once initialized (what this session advertises).
    pub(super) capabilities: OnceLock<rmcp::model::ServerCapabilities>,
    /// This session's `Mcp-Session-Id`, learnt from the first request after `initialize`.
    session: Arc<Mutex<Option<rmcp::transport::common::server_side_http::SessionId>>>,
}

impl ProxyServer {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            link: OnceLock::new(),
            capabilities: OnceLock::new(),
            session: Arc::default(),
        }
    }

    fn note_session(&self, extensions: &rmcp::model::Extensions) {
        let Some(parts) = extensions.get::<http::request::Parts>() else {
            return;
        };
        let Some(id) = parts
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        lock(&self.session).get_or_insert_with(|| id.into());
    }

    pub(super) async fn start(
        &self,
        info: ClientConfig,
        ctx: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        if self.link.get().is_some() {
            return Err(ErrorData::invalid_request(
                "this session is already initialized",
                None,
            ));
        }
        let routes = Arc::new(Routes::default());
        let client = ProxyClient {
            info,
            http: ctx.peer.clone(),
            routes: routes.clone(),
        };
        let link = backend::start(&self.shared, client, routes)
            .await
            .map_err(|e| {
                ErrorData::internal_error(
                    format!("MCP server `{}` could not start: {e:#}", self.shared.name),
                    None,
                )
            })?;
        let peer = link.running.peer_info().ok_or_else(|| {
            ErrorData::internal_error("the backend sent no initialize result", None)
        })?;
        let mut result = InitializeResult::new(peer.capabilities.clone());
        result.protocol_version = peer.protocol_version.clone();
        if let Some(i) = &peer.server_info {
            result.server_info = i.clone();
        }
        result.instructions = peer.instructions.clone();
        result.meta = peer.meta.clone();
        let _ = self.capabilities.set(peer.capabilities.clone());
        let link = Arc::new(link);
        self.close_when_gone(link.ended.clone());
        let _ = self.link.set(link);
        Ok(result)
    }

    /// Once the backend is gone, ends the HTTP session (after the errors of the requests in
    /// flight went out), so the caller's next request gets 404 and it starts a fresh one.
    fn close_when_gone(&self, mut ended: watch::Receiver<Option<String>>) {
        let session = self.session.clone();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let Ok(why) = ended.wait_for(Option::is_some).await.map(|w| w.clone()) else {
                return;
            };
            eprintln!(
                "meshmux bridge: MCP server `{}` is gone: {}",
                shared.name,
                why.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            let id = lock(&session).clone();
            if let Some(id) = id {
                use rmcp::transport::streamable_http_server::SessionManager as _;
                let _ = shared.manager.close_session(&id).await;
            }
        });
    }

    /// Relays one request to the backend and its answer back.
    pub(super) async fn relay(
        &self,
        mut request: ClientRequest,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        self.note_session(&ctx.extensions);
        let link = self
            .link
            .get()
            .cloned()
            .ok_or_else(|| ErrorData::invalid_request("send initialize first", None))?;
        if let Some(why) = link.ended.borrow().clone() {
            return Err(gone(&self.shared.name, &why));
        }
        let caller_token = ctx.meta.get_progress_token();
        *request.get_meta_mut() = ctx.meta;
        let handle = match link
            .peer()
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
        {
            Ok(h) => h,
            Err(e) => return Err(link.error(&self.shared.name, e).await),
        };
        if let Some(t) = caller_token {
            lock(&link.routes.progress).insert(handle.progress_token.clone(), t);
        }
        lock(&link.routes.inflight).push(ctx.id.clone());
        let route = Route {
            routes: &link.routes,
            id: ctx.id.clone(),
            token: handle.progress_token.clone(),
        };
        let (peer, id) = (handle.peer.clone(), handle.id.clone());
        tokio::select! {
            result = handle.await_response() => match result {
                Ok(r) => {
                    // The progress the backend sent before answering goes out first.
                    link.routes.drained(&route.token, DEATH_GRACE).await;
                    Ok(r)
                }
                Err(e) => Err(link.error(&self.shared.name, e).await),
            },
            () = ctx.ct.cancelled() => {
                let _ = peer.send_notification(cancelled(id).into()).await;
                Err(ErrorData::internal_error("cancelled by the client", None))
            }
        }
    }
}

impl ProxyServer {
    /// Relays one notification to the backend. `initialized` is not relayed (rmcp's client
    /// sent its own) nor is cancellation (it crosses as the cancellation of the backend's
    /// own request id, see [`ProxyServer::relay`]).
    pub(super) async fn relay_notification(
        &self,
        mut notification: ClientNotification,
        ctx: NotificationContext<RoleServer>,
    ) {
        self.note_session(&ctx.extensions);
        if matches!(
            notification,
            ClientNotification::InitializedNotification(_)
                | ClientNotification::CancelledNotification(_)
        ) {
            return;
        }
        let Some(link) = self.link.get() else {
            return;
        };
        *notification.get_meta_mut() = ctx.meta;
        if let Err(e) = link.peer().send_notification(notification).await {
            tracing::warn!("forwarding a notification: {e}");
        }
    }
}

fn cancelled(id: RequestId) -> CancelledNotification {
    CancelledNotification::new(CancelledNotificationParam::new(
        Some(id),
        Some("cancelled by the caller of meshmux bridge".to_owned()),
    ))
}

/// The client side towards the backend of one session.
pub struct ProxyClient {
    /// What the HTTP client sent in `initialize`, sent on to the backend as it is.
    info: ClientConfig,
    http: Peer<RoleServer>,
    routes: Arc<Routes>,
}

impl Service<RoleClient> for ProxyClient {
    async fn handle_request(
        &self,
        mut request: ServerRequest,
        ctx: RequestContext<RoleClient>,
    ) -> Result<ClientResult, ErrorData> {
        *request.get_meta_mut() = ctx.meta;
        // Which caller's request this belongs to: stdio and SSE carry no association, so it is
        // only known when one request is in flight. With several (the gateway shares a
        // session between callers) it is refused rather than risk asking the wrong caller.
        let origin = match lock(&self.routes.inflight).as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            many => {
                return Err(ErrorData::internal_error(
                    format!(
                        "meshmux bridge cannot tell which of the {} requests in flight this \
                         server request belongs to; retry when the others have finished",
                        many.len()
                    ),
                    None,
                ));
            }
        };
        if let Some(origin) = origin {
            request
                .extensions_mut()
                .insert(OriginatingRequestId(origin));
        }
        let http = self.http.clone();
        // A task of its own: rmcp would otherwise mark the request as originating from the
        // backend's request id, which means nothing on the HTTP side.
        let sent = tokio::spawn(async move {
            http.send_request_with_option(request, PeerRequestOptions::no_options())
                .await
        })
        .await
        .map_err(|e| ErrorData::internal_error(format!("forwarding a request: {e}"), None))?;
        let handle = sent.map_err(|e| {
            ErrorData::internal_error(format!("the client is unreachable: {e}"), None)
        })?;
        let (peer, id) = (handle.peer.clone(), handle.id.clone());
        tokio::select! {
            result = handle.await_response() => result.map_err(|e| match e {
                ServiceError::McpError(e) => e,
                e => ErrorData::internal_error(format!("the client did not answer: {e}"), None),
            }),
            () = ctx.ct.cancelled() => {
                let _ = peer.send_notification(cancelled(id).into()).await;
                Err(ErrorData::internal_error("cancelled by the server", None))
            }
        }
    }

    async fn handle_notification(
        &self,
        mut notification: ServerNotification,
        ctx: NotificationContext<RoleClient>,
    ) -> Result<(), ErrorData> {
        match &mut notification {
            ServerNotification::CancelledNotification(_) => return Ok(()),
            ServerNotification::ProgressNotification(p) => {
                let token = p.params.progress_token.clone();
                let caller = lock(&self.routes.progress).get(&token).cloned();
                let Some(caller) = caller else {
                    self.routes.relayed(&token);
                    return Ok(());
                };
                p.params.progress_token = caller;
                *notification.get_meta_mut() = ctx.meta;
                let sent = self.http.send_notification(notification).await;
                self.routes.relayed(&token);
                return sent.map_err(|e| {
                    ErrorData::internal_error(format!("forwarding a notification: {e}"), None)
                });
            }
            _ => {}
        }
        *notification.get_meta_mut() = ctx.meta;
        self.http
            .send_notification(notification)
            .await
            .map_err(|e| ErrorData::internal_error(format!("forwarding a notification: {e}"), None))
    }

    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }
}
