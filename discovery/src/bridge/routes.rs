//! What both sides of one session share to route messages between the caller's ids and
//! tokens and the backend's (rmcp gives each side its own), and to keep a request's progress
//! ahead of its answer.
//!
//! rmcp hands each notification to its own task, so a progress notification the backend sent
//! before its answer could reach the caller after it (and be dropped there). [`Ordered`] sees
//! the backend's messages in wire order and counts each progress notification as it arrives;
//! the relay waits for a request's count to drain before it answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rmcp::RoleClient;
use rmcp::model::{JsonRpcMessage, ProgressToken, RequestId, ServerNotification};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::Notify;

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
pub struct Routes {
    /// Backend progress token -> the caller's.
    pub progress: Mutex<HashMap<ProgressToken, ProgressToken>>,
    /// HTTP request ids being relayed.
    pub inflight: Mutex<Vec<RequestId>>,
    /// Progress notifications received from the backend, not yet relayed, per token.
    pending: Mutex<HashMap<ProgressToken, usize>>,
    drained: Notify,
}

impl Routes {
    fn arrived(&self, token: &ProgressToken) {
        *lock(&self.pending).entry(token.clone()).or_default() += 1;
    }

    /// A progress notification was relayed (or dropped).
    pub fn relayed(&self, token: &ProgressToken) {
        let mut pending = lock(&self.pending);
        if let Some(n) = pending.get_mut(token) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                pending.remove(token);
            }
        }
        drop(pending);
        self.drained.notify_waiters();
    }

    /// Waits (at most `timeout`) until every progress notification for `token` that arrived
    /// so far has been relayed.
    pub async fn drained(&self, token: &ProgressToken, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, async {
            loop {
                let notified = self.drained.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if !lock(&self.pending).contains_key(token) {
                    return;
                }
                notified.await;
            }
        })
        .await;
    }
}

/// The backend's transport, counting progress notifications in the order they arrive.
pub struct Ordered<T> {
    inner: T,
    routes: Arc<Routes>,
}

impl<T> Ordered<T> {
    pub fn new(inner: T, routes: Arc<Routes>) -> Self {
        Self { inner, routes }
    }
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Ordered<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let message = self.inner.receive().await;
        if let Some(JsonRpcMessage::Notification(n)) = &message
            && let ServerNotification::ProgressNotification(p) = &n.notification
        {
            self.routes.arrived(&p.params.progress_token);
        }
        message
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}
