//! rmcp's Streamable HTTP server only serves a `ServerHandler`, whose dispatch splits
//! requests into one method each. This adapter puts every one back into its `ClientRequest`
//! and hands it to the one generic relay ([`ProxyServer::relay`]); a method rmcp does not
//! know arrives as a custom request and is relayed the same way, as are notifications.
#![expect(
    deprecated,
    reason = "subscribe/unsubscribe are legacy-era methods a bridge relays"
)]

use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, ClientNotification, ClientRequest,
    CompleteRequestParams, CompleteResult, CustomNotification, CustomRequest, CustomResult,
    ErrorData, GetPromptRequestParams, GetPromptResponse, GetTaskParams, GetTaskResult,
    InitializeRequestParams, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, Notification, PaginatedRequestParams,
    ProgressNotificationParam, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    Request, RequestNoParam, RequestOptionalParam, ServerConfig, ServerResult,
    SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams, UpdateTaskParams,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer};

use super::proxy::ProxyServer;

fn unexpected(result: &ServerResult) -> ErrorData {
    ErrorData::internal_error(
        format!("the backend answered with an unexpected result: {result:?}"),
        None,
    )
}

/// Relays `$request`; the answer must match `$pattern`, which gives `$out`.
macro_rules! relay {
    ($self:ident, $ctx:ident, $request:expr, $pattern:pat => $out:expr) => {
        match $self.relay($request, $ctx).await? {
            $pattern => Ok($out),
            other => Err(unexpected(&other)),
        }
    };
}

fn optional<M: Default, P: Default>(params: Option<P>) -> RequestOptionalParam<M, P> {
    match params {
        Some(p) => RequestOptionalParam::with_param(p),
        None => RequestOptionalParam::default(),
    }
}

impl ServerHandler for ProxyServer {
    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        self.start(request, context).await
    }

    async fn ping(&self, context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        let request = ClientRequest::PingRequest(RequestNoParam::default());
        relay!(self, context, request, ServerResult::EmptyResult(_) => ())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let request = ClientRequest::CompleteRequest(Request::new(request));
        relay!(self, context, request, ServerResult::CompleteResult(r) => r)
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let request = ClientRequest::SetLevelRequest(Request::new(request));
        relay!(self, context, request, ServerResult::EmptyResult(_) => ())
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let request = ClientRequest::GetPromptRequest(Request::new(request));
        relay!(self, context, request, ServerResult::GetPromptResult(r) => GetPromptResponse::Complete(r))
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let request = ClientRequest::ListPromptsRequest(optional(request));
        relay!(self, context, request, ServerResult::ListPromptsResult(r) => r)
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let request = ClientRequest::ListResourcesRequest(optional(request));
        relay!(self, context, request, ServerResult::ListResourcesResult(r) => r)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let request = ClientRequest::ListResourceTemplatesRequest(optional(request));
        relay!(self, context, request, ServerResult::ListResourceTemplatesResult(r) => r)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let request = ClientRequest::ReadResourceRequest(Request::new(request));
        relay!(self, context, request, ServerResult::ReadResourceResult(r) => ReadResourceResponse::Complete(r))
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let request = ClientRequest::SubscribeRequest(Request::new(request));
        relay!(self, context, request, ServerResult::EmptyResult(_) => ())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let request = ClientRequest::UnsubscribeRequest(Request::new(request));
        relay!(self, context, request, ServerResult::EmptyResult(_) => ())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let request = ClientRequest::CallToolRequest(Request::new(request));
        relay!(self, context, request, ServerResult::CallToolResult(r) => CallToolResponse::Complete(r))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let request = ClientRequest::ListToolsRequest(optional(request));
        relay!(self, context, request, ServerResult::ListToolsResult(r) => r)
    }

    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        let request = ClientRequest::CustomRequest(request);
        relay!(self, context, request, ServerResult::CustomResult(r) => r)
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let request = ClientRequest::GetTaskRequest(Request::new(request));
        relay!(self, context, request, ServerResult::GetTaskResult(r) => r)
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let request = ClientRequest::UpdateTaskRequest(Request::new(request));
        self.relay(request, context).await.map(|_| ())
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let request = ClientRequest::CancelTaskRequest(Request::new(request));
        self.relay(request, context).await.map(|_| ())
    }

    async fn on_progress(
        &self,
        notification: ProgressNotificationParam,
        context: NotificationContext<RoleServer>,
    ) {
        let n = ClientNotification::ProgressNotification(Notification::new(notification));
        self.relay_notification(n, context).await;
    }

    async fn on_roots_list_changed(&self, context: NotificationContext<RoleServer>) {
        let n = ClientNotification::RootsListChangedNotification(Default::default());
        self.relay_notification(n, context).await;
    }

    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        context: NotificationContext<RoleServer>,
    ) {
        let n = ClientNotification::CustomNotification(notification);
        self.relay_notification(n, context).await;
    }

    /// The backend's capabilities once this session is initialized.
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::default();
        if let Some(c) = self.capabilities.get() {
            info.capabilities = c.clone();
        }
        info
    }

    /// The initialize eras only: a session (and a stdio child) starts at `initialize`.
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        std::borrow::Cow::Owned(
            ProtocolVersion::KNOWN_VERSIONS
                .iter()
                .filter(|v| **v != ProtocolVersion::V_2026_07_28)
                .cloned()
                .collect(),
        )
    }
}
