//! The MCP endpoint, `/api/v1/exchanges/{id}/mcp`: the official Rust SDK (`rmcp`, through
//! `rmcp-actix-web`) speaks Streamable HTTP, MCP 2026-07-28 (stateless) and 2025-11-25
//! (sessions) on one path; the tools and the thread-to-task mapping are `mess-api`'s
//! (`mess_api::mcp`). The Bearer key is checked here, in actix, before the SDK sees the
//! request, exactly as on every other route (401, 403 for another exchange's key); the
//! member and exchange reach the tools through the request's extensions.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, ResponseError, web};
use base64::Engine;
use mess_api::mcp::{self, Content, TaskStatus as Status, TaskView, ToolOutput};
use mess_core::Thread;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock,
    CreateTaskResult, DetailedTask, ElicitRequest, ElicitRequestParams, ElicitationSchema,
    GetTaskParams, GetTaskResult, Implementation, InputRequest, JsonObject,
    ListResourceTemplatesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ResourceContents,
    ResourceTemplate, ServerCapabilities, ServerConfig, Task, TaskPayload, TaskStatus, Tool,
    UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use rmcp_actix_web::transport::{
    LocalSessionManager, StreamableHttpService, on_request_extensions,
};
use serde_json::{Value, json};

use crate::auth::Authed;
use crate::state::AppState;

/// What the tools of one request see: the member, its exchange, the app's state.
#[derive(Clone)]
struct Caller {
    authed: Authed,
    state: web::Data<AppState>,
}

/// The MCP service, built once and shared by every worker (legacy sessions live in it).
#[derive(Clone)]
pub struct McpEndpoint(StreamableHttpService<Handler, LocalSessionManager>);

impl std::fmt::Debug for McpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("McpEndpoint")
    }
}

impl Default for McpEndpoint {
    fn default() -> Self {
        let service = StreamableHttpService::builder()
            .service_factory(Arc::new(|| Ok(Handler)))
            .session_manager(Arc::new(LocalSessionManager::default()))
            // Any Host: the check guards keyless local servers against DNS rebinding, and
            // every request here carries a Bearer key that a rebinding page cannot have.
            .allowed_hosts(Vec::<String>::new())
            .on_request_fn(|req, ext| {
                if let Some(c) = req.extensions().get::<Caller>() {
                    ext.insert(c.clone());
                }
            })
            .build();
        Self(service)
    }
}

impl McpEndpoint {
    /// The scope to mount at `/api/v1/exchanges/{exchange_id}/mcp`.
    pub fn scope(
        self,
    ) -> actix_web::Scope<
        impl actix_web::dev::ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl MessageBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        web::scope("/api/v1/exchanges/{exchange_id}/mcp")
            .wrap(actix_web::middleware::from_fn(authenticate))
            .service(self.0.scope())
    }
}

/// Checks the Bearer key as every route does; puts the caller in the request.
async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let authed = Authed::extract(req.request()).await;
    let state = req.app_data::<web::Data<AppState>>().cloned();
    match (authed, state) {
        (Ok(authed), Some(state)) => {
            req.extensions_mut().insert(Caller { authed, state });
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        (Err(e), _) => {
            let res = e.error_response();
            Ok(req.into_response(res).map_into_right_body())
        }
        (Ok(_), None) => {
            let res = crate::error::HttpError(mess_api::ApiError::Internal).error_response();
            Ok(req.into_response(res).map_into_right_body())
        }
    }
}

fn caller(ctx: &RequestContext<RoleServer>) -> Result<Caller, McpError> {
    on_request_extensions(&ctx.extensions)
        .and_then(|ext| ext.get::<Caller>().cloned())
        .ok_or_else(|| McpError::internal_error("no authenticated caller", None))
}

/// The tools' handler: stateless; everything lives in the exchange.
#[derive(Clone, Copy)]
pub struct Handler;

fn object(v: Value) -> Arc<JsonObject> {
    Arc::new(match v {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    })
}

fn tools() -> Vec<Tool> {
    mcp::tools()
        .into_iter()
        .map(|t| Tool::new(t.name, t.description, object(t.input_schema)))
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn result(out: ToolOutput) -> CallToolResult {
    let content = out
        .content
        .into_iter()
        .map(|c| match c {
            Content::Text(t) => ContentBlock::text(t),
            Content::Image(bytes, mime) => ContentBlock::image(b64(&bytes), mime),
            Content::Audio(bytes, mime) => ContentBlock::audio(b64(&bytes), mime),
            Content::Blob(bytes, mime, uri) => {
                ContentBlock::resource(ResourceContents::BlobResourceContents {
                    uri,
                    mime_type: Some(mime),
                    blob: b64(&bytes),
                    meta: None,
                })
            }
            // Read by `mcp::resolve` before any output gets here.
            Content::Stored(..) => ContentBlock::text("(an attached image was not read)"),
        })
        .collect();
    let mut r = if out.is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    r.structured_content = out.structured;
    r
}

fn task(t: &Thread, view: &TaskView) -> Task {
    let status = match view.status {
        Status::Working => TaskStatus::Working,
        Status::InputRequired => TaskStatus::InputRequired,
        Status::Completed => TaskStatus::Completed,
        Status::Cancelled => TaskStatus::Cancelled,
    };
    let mut task = Task::new(
        t.thread_ref.as_str(),
        status,
        t.created_at.to_string(),
        t.updated_at.to_string(),
    )
    .with_status_message(view.message.clone())
    .with_poll_interval_ms(2000);
    // A task lives as long as its thread.
    task.ttl_ms = None;
    task
}

fn question(text: &str) -> InputRequest {
    let schema = ElicitationSchema::builder()
        .required_string("answer")
        .build()
        .expect("a schema of one required string is valid");
    InputRequest::Elicitation(ElicitRequest::new(
        ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: text.to_owned(),
            requested_schema: schema,
        },
    ))
}

fn find(c: &Caller, task_id: &str) -> Result<Arc<Thread>, McpError> {
    let r = mess_api::routes::thread_ref(task_id)
        .map_err(|_| McpError::invalid_params(format!("unknown task {task_id}"), None))?;
    c.authed
        .exchange
        .read(|x| x.thread(&r).cloned())
        .ok_or_else(|| McpError::invalid_params(format!("unknown task {task_id}"), None))
}

fn refused(e: mess_api::ApiError) -> McpError {
    McpError::invalid_params(e.to_string(), Some(json!({"code": e.code()})))
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new(
            "mess-exchange",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "A MESS exchange: hand tasks that need the physical world to people. mess_request \
             posts one; people answer from their phones, which can take minutes or hours. \
             Wait with mess_wait (up to 60 s a call, call again) or follow the task.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let c = caller(&context)?;
        let args = request.arguments.clone().unwrap_or_default();
        let out = mcp::call(
            &*c.authed.exchange,
            &c.authed.member,
            request.name.as_ref(),
            args,
            &c.state.capabilities,
        )
        .await
        .map_err(|e| McpError::invalid_params(format!("unknown tool: {}", e.0), None))?;
        let tasks = context
            .client_capabilities()
            .is_some_and(|caps| caps.supports_tasks());
        if let (Some(r), true) = (&out.created, tasks) {
            let t = find(&c, r.as_str())?;
            return Ok(CallToolResponse::Task(CreateTaskResult::new(task(
                &t,
                &mcp::task_view(&t),
            ))));
        }
        Ok(result(out).into())
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new("thread://{ref}", "thread")
                .with_title("A request's thread")
                .with_description("The request and every message, as the REST API's GET returns it (JSON).")
                .with_mime_type("application/json"),
            ResourceTemplate::new("content://{ref}/{name}", "attachment")
                .with_title("An attachment")
                .with_description("One photo, audio or file of a request's messages, by position (1, 2, ...) or name."),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let c = caller(&context)?;
        let uri = request.uri.as_str();
        let not_found = || McpError::resource_not_found(format!("no resource {uri}"), None);
        let contents = if let Some(r) = uri.strip_prefix("thread://") {
            let t = find(&c, r).map_err(|_| not_found())?;
            let mut body = Vec::new();
            t.write_json(&mut body);
            let body = mess_api::blobs::restore(&*c.authed.exchange, body)
                .await
                .map_err(|e| McpError::internal_error(e.to_string(), None))?;
            ResourceContents::TextResourceContents {
                uri: uri.to_owned(),
                mime_type: Some("application/json".into()),
                text: String::from_utf8_lossy(&body).into_owned(),
                meta: None,
            }
        } else if let Some((r, name)) = uri
            .strip_prefix("content://")
            .and_then(|rest| rest.split_once('/'))
        {
            let t = find(&c, r).map_err(|_| not_found())?;
            let a = mess_api::blobs::attachment(&*c.authed.exchange, &t, name)
                .await
                .map_err(|e| McpError::internal_error(e.to_string(), None))?
                .ok_or_else(not_found)?;
            ResourceContents::BlobResourceContents {
                uri: uri.to_owned(),
                mime_type: Some(a.mime),
                blob: b64(&a.bytes),
                meta: None,
            }
        } else {
            return Err(McpError::invalid_params(
                format!("{uri}: resources are thread://{{ref}} and content://{{ref}}/{{name}}"),
                None,
            ));
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        let c = caller(&context)?;
        let t = find(&c, &request.task_id)?;
        let view = mcp::task_view(&t);
        let payload = match view.status {
            Status::InputRequired => {
                let (key, text) = view.question.clone().unwrap_or_default();
                TaskPayload::InputRequired {
                    input_requests: BTreeMap::from([(key, question(&text))]),
                }
            }
            Status::Completed => {
                let mut out = view.result.clone().unwrap_or_default();
                mcp::resolve(&*c.authed.exchange, &mut out).await;
                let r = result(out);
                let value = serde_json::to_value(&r).unwrap_or(Value::Null);
                TaskPayload::Completed {
                    result: match value {
                        Value::Object(map) => map,
                        _ => JsonObject::new(),
                    },
                }
            }
            Status::Cancelled => TaskPayload::Cancelled,
            Status::Working => TaskPayload::Working,
        };
        Ok(GetTaskResult::new(DetailedTask::new(
            task(&t, &view),
            payload,
        )))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let c = caller(&context)?;
        let t = find(&c, &request.task_id)?;
        // Only the open question's key counts; a stale or unknown key is ignored.
        let Some((key, _)) = mcp::task_view(&t).question else {
            return Ok(());
        };
        let Some(response) = request.input_responses.get(&key) else {
            return Ok(());
        };
        if response.get("action").and_then(Value::as_str) != Some("accept") {
            return Ok(());
        }
        let text = match response.pointer("/content/answer") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => {
                return Err(McpError::invalid_params(
                    "the answer is missing: send content.answer",
                    None,
                ));
            }
        };
        mcp::reply(&*c.authed.exchange, &c.authed.member, &t.thread_ref, &text)
            .await
            .map_err(refused)?;
        Ok(())
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let c = caller(&context)?;
        let t = find(&c, &request.task_id)?;
        if t.status.is_terminal() {
            return Ok(());
        }
        mcp::cancel_thread(
            &*c.authed.exchange,
            &c.authed.member,
            &t.thread_ref,
            Some("cancelled by the agent's client"),
        )
        .await
        .map_err(refused)?;
        Ok(())
    }
}
