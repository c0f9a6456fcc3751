//! The HTTP API (`/v1`), the event stream, the OpenAPI document and the
//! dashboard's assets. Handlers parse, call [`Service`] and render: no
//! policy of their own. Every error is `{"error": {"code", "message"}}`
//! with a 4xx/5xx status; the OpenAPI document is generated from the
//! handlers' annotations (`utoipa`), so it cannot drift from the code.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service::{
    BatchBody, BootInfo, CellBody, FixBody, RunBody, Service, ServiceError, SessionBody,
    SnapshotBody,
};

/// The server's state: the service and the bearer token, if any.
#[derive(Clone)]
pub struct AppState {
    /// The kernel service.
    pub service: Arc<Service>,
    /// Required on `/v1` and `/mcp` when set.
    pub token: Option<Arc<str>>,
}

/// An API error.
pub struct ApiError(StatusCode, &'static str, String);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let status = match e {
            ServiceError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::Conflict(_) => StatusCode::CONFLICT,
            ServiceError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Host(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.1, "message": self.2}});
        (self.0, axum::Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose every rejection (not JSON, malformed, wrong shape, too
/// large) is an [`ApiError`] in the API's own error format.
pub struct Body<T>(pub T);

impl<T, S> FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rejection) => {
                let status = rejection.status();
                let code = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "not_json",
                    _ => "bad_request",
                };
                let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
                    StatusCode::BAD_REQUEST
                } else {
                    status
                };
                Err(ApiError(status, code, rejection.body_text()))
            }
        }
    }
}

fn client(addr: &SocketAddr) -> String {
    addr.ip().to_string()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "llmos",
        description = "A self-correcting kernel for running code that language models write: run, repair, sessions, batches, events.",
    ),
    components(schemas(crate::Outcome))
)]
struct ApiDoc;

/// The API's router (its OpenAPI document included), without state.
pub fn router(state: AppState) -> axum::Router {
    // A run's output URLs are capabilities (unguessable run ids), served
    // without the token: an <iframe> or <img> cannot send a header.
    let public = OpenApiRouter::new().routes(routes!(get_output));
    let guarded = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(get_boot))
        .routes(routes!(get_languages))
        .routes(routes!(get_api_reference))
        .routes(routes!(post_run, list_runs))
        .routes(routes!(get_run))
        .routes(routes!(post_fix, list_fixes))
        .routes(routes!(get_fix))
        .routes(routes!(get_fix_trace))
        .routes(routes!(post_session, list_sessions))
        .routes(routes!(get_session, delete_session))
        .routes(routes!(post_cell))
        .routes(routes!(post_snapshot, list_snapshots))
        .routes(routes!(post_batch, list_batches))
        .routes(routes!(get_batch, cancel_batch))
        .routes(routes!(get_batch_results))
        .routes(routes!(events))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    let (api_router, mut api) = guarded.merge(public).split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    let doc = Arc::new(api);
    axum::Router::new()
        .merge(api_router)
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .merge(super::assets::router())
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint".into(),
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(
            state.service.limits().max_body_bytes,
        ))
        .with_state(state)
}

/// Constant-time comparison of a presented token with the server's.
fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    let mut diff = presented.len() ^ expected.len();
    for (i, b) in expected.iter().enumerate() {
        diff |= usize::from(b ^ presented.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// `Authorization: Bearer TOKEN` on every guarded route when a token is set.
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !token_matches(presented.as_bytes(), token.as_bytes()) {
            let mut r = ApiError(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a bearer token is required (Authorization: Bearer TOKEN)".into(),
            )
            .into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

/// The kernel's boot: state and stages so far.
#[utoipa::path(get, path = "/v1/boot", tag = "kernel",
    responses((status = 200, description = "Boot state", body = BootInfo)))]
async fn get_boot(State(s): State<AppState>) -> axum::Json<BootInfo> {
    axum::Json(s.service.boot_info())
}

/// Every language and whether it loads.
#[utoipa::path(get, path = "/v1/languages", tag = "kernel",
    responses((status = 200, description = "Languages", body = Vec<Object>), (status = 503, description = "Booting")))]
async fn get_languages(State(s): State<AppState>) -> ApiResult<axum::Json<Value>> {
    let llmos = s.service.llmos()?.clone();
    let mut out = Vec::new();
    for m in llmos.languages().iter() {
        let status = llmos
            .language_status(&m.name)
            .await
            .map_err(ServiceError::from)?;
        out.push(serde_json::to_value(status).unwrap_or(Value::Null));
    }
    Ok(axum::Json(Value::Array(out)))
}

/// The kernel API reference of a language (from its stdlib's doc comments).
#[utoipa::path(get, path = "/v1/languages/{name}/api", tag = "kernel",
    params(("name" = String, Path, description = "Language name or alias")),
    responses((status = 200, description = "API entries", body = Vec<Object>), (status = 400, description = "Unknown language")))]
async fn get_api_reference(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let entries = s
        .service
        .llmos()?
        .api_reference(&name)
        .map_err(ServiceError::from)?;
    Ok(axum::Json(
        serde_json::to_value(entries).unwrap_or(Value::Null),
    ))
}

/// Run an artifact: with `wait` (the default) the answer is the outcome
/// (the `llmos run --json` object plus `id`); without, 202 and the id.
#[utoipa::path(post, path = "/v1/runs", tag = "runs", request_body = RunBody,
    responses(
        (status = 200, description = "The outcome", body = crate::Outcome),
        (status = 202, description = "Started: poll /v1/runs/{id}", body = Object),
        (status = 400, description = "Bad request"), (status = 413, description = "Body too large"),
        (status = 429, description = "Too many runs in flight for this client"),
        (status = 503, description = "Booting or shutting down")))]
async fn post_run(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Body(body): Body<RunBody>,
) -> ApiResult<Response> {
    let ticket = s.service.ticket(&client(&addr))?;
    if body.wait {
        let v = s.service.run(body, ticket).await?;
        Ok(axum::Json(v).into_response())
    } else {
        let id = s.service.start_run(body, ticket)?;
        Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({"id": id, "state": "running"})),
        )
            .into_response())
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct ListQuery {
    /// How many (default 100, at most 1000).
    limit: Option<usize>,
}

/// Recent runs, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(ListQuery),
    responses((status = 200, description = "Runs", body = Vec<Object>)))]
async fn list_runs(State(s): State<AppState>, Query(q): Query<ListQuery>) -> axum::Json<Value> {
    axum::Json(Value::Array(
        s.service.runs(q.limit.unwrap_or(100).min(1000)),
    ))
}

/// A run: its state, source and outcome.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run", body = Object), (status = 404, description = "Unknown id")))]
async fn get_run(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.service.run_json(&id, true)?))
}

/// One output of a run, as `svg`, `png`, `html` (served with its own
/// sandboxing CSP) or `scene` (the 3D scene's JSON). No token is needed:
/// the URL is a capability (run ids are 96 random bits).
#[utoipa::path(get, path = "/v1/runs/{id}/outputs/{index}/{format}", tag = "runs",
    params(("id" = String, Path, description = "Run id"), ("index" = u32, Path, description = "Output index"),
           ("format" = String, Path, description = "svg, png, html, scene or txt")),
    responses((status = 200, description = "The bytes"), (status = 404, description = "No such output")))]
async fn get_output(
    State(s): State<AppState>,
    Path((id, index, format)): Path<(String, u32, String)>,
) -> ApiResult<Response> {
    let (mime, data) = s.service.output(&id, index, &format)?;
    let mut headers = HeaderMap::new();
    let ct = if mime == "text/html" {
        "text/html; charset=utf-8".to_string()
    } else {
        mime.clone()
    };
    if let Ok(v) = HeaderValue::from_str(&ct) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if mime == "text/html" {
        // The artifact's document: scripts allowed inside an opaque origin,
        // no network, no forms, no plugins.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "sandbox allow-scripts; default-src 'none'; img-src data: blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'",
            ),
        );
    } else if mime == crate::outputs::MIME_SVG {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
            ),
        );
    }
    Ok((headers, data).into_response())
}

/// Run an artifact and repair it while it fails (the supervisor, with the
/// server's LLM): 202 and the id; steps arrive as `fix.step` events. With
/// `wait`, the answer is the finished fix.
#[utoipa::path(post, path = "/v1/fixes", tag = "fixes", request_body = FixBody,
    responses((status = 202, description = "Started", body = Object), (status = 200, description = "Finished (wait)", body = Object),
              (status = 400, description = "Bad request"), (status = 429, description = "Too many in flight")))]
async fn post_fix(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Body(body): Body<FixBody>,
) -> ApiResult<Response> {
    let ticket = s.service.ticket(&client(&addr))?;
    let wait = body.wait;
    let id = s.service.start_fix(body, ticket)?;
    if wait {
        s.service.wait_fix(&id).await;
        return Ok(axum::Json(s.service.fix_json(&id)?).into_response());
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"id": id, "state": "running"})),
    )
        .into_response())
}

/// Recent fixes.
#[utoipa::path(get, path = "/v1/fixes", tag = "fixes",
    responses((status = 200, description = "Fixes", body = Vec<Object>)))]
async fn list_fixes(State(s): State<AppState>) -> axum::Json<Value> {
    axum::Json(Value::Array(s.service.fixes()))
}

/// A fix: its steps so far, result, code and final outcome.
#[utoipa::path(get, path = "/v1/fixes/{id}", tag = "fixes",
    params(("id" = String, Path, description = "Fix id")),
    responses((status = 200, description = "The fix", body = Object), (status = 404, description = "Unknown id")))]
async fn get_fix(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.service.fix_json(&id)?))
}

/// A finished fix's whole trace: every attempt, prompt, answer and diff.
#[utoipa::path(get, path = "/v1/fixes/{id}/trace", tag = "fixes",
    params(("id" = String, Path, description = "Fix id")),
    responses((status = 200, description = "The trace", body = Object), (status = 404, description = "Unknown id or not finished")))]
async fn get_fix_trace(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.service.fix_trace(&id)?))
}

/// Start a session (an interpreter whose globals persist across cells).
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = SessionBody,
    responses((status = 201, description = "Created", body = Object), (status = 409, description = "Name taken")))]
async fn post_session(
    State(s): State<AppState>,
    Body(body): Body<SessionBody>,
) -> ApiResult<Response> {
    let v = s.service.new_session(body).await?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

/// Every session.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions",
    responses((status = 200, description = "Sessions", body = Vec<Object>)))]
async fn list_sessions(State(s): State<AppState>) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(Value::Array(s.service.sessions()?)))
}

/// A session as a notebook: its cells and their outcomes.
#[utoipa::path(get, path = "/v1/sessions/{name}", tag = "sessions",
    params(("name" = String, Path, description = "Session name")),
    responses((status = 200, description = "The session", body = Object), (status = 404, description = "Unknown")))]
async fn get_session(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.service.session_json(&name).await?))
}

/// Drop a session.
#[utoipa::path(delete, path = "/v1/sessions/{name}", tag = "sessions",
    params(("name" = String, Path, description = "Session name")),
    responses((status = 204, description = "Dropped"), (status = 404, description = "Unknown")))]
async fn delete_session(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    s.service.drop_session(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Run the session's next cell.
#[utoipa::path(post, path = "/v1/sessions/{name}/cells", tag = "sessions", request_body = CellBody,
    params(("name" = String, Path, description = "Session name")),
    responses((status = 200, description = "The cell's outcome", body = Object), (status = 404, description = "Unknown session")))]
async fn post_cell(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    Body(body): Body<CellBody>,
) -> ApiResult<axum::Json<Value>> {
    let ticket = s.service.ticket(&client(&addr))?;
    Ok(axum::Json(s.service.run_cell(&name, body, ticket).await?))
}

/// Freeze a session into a snapshot that runs (`from` in `POST /v1/runs`)
/// and sessions start from.
#[utoipa::path(post, path = "/v1/snapshots", tag = "sessions", request_body = SnapshotBody,
    responses((status = 201, description = "Created", body = Object), (status = 404, description = "Unknown session")))]
async fn post_snapshot(
    State(s): State<AppState>,
    Body(body): Body<SnapshotBody>,
) -> ApiResult<Response> {
    let v = s.service.create_snapshot(body).await?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

/// Every snapshot.
#[utoipa::path(get, path = "/v1/snapshots", tag = "sessions",
    responses((status = 200, description = "Snapshots", body = Vec<Object>)))]
async fn list_snapshots(State(s): State<AppState>) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(Value::Array(s.service.snapshots()?)))
}

/// Submit a batch of inline jobs: 202 and its id; progress arrives as
/// `batch.progress` events.
#[utoipa::path(post, path = "/v1/batches", tag = "batches", request_body = BatchBody,
    responses((status = 202, description = "Started", body = Object), (status = 400, description = "Bad jobs")))]
async fn post_batch(State(s): State<AppState>, Body(body): Body<BatchBody>) -> ApiResult<Response> {
    let id = s.service.submit_batch(body)?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"id": id, "state": "running"})),
    )
        .into_response())
}

/// Every batch.
#[utoipa::path(get, path = "/v1/batches", tag = "batches",
    responses((status = 200, description = "Batches", body = Vec<Object>)))]
async fn list_batches(State(s): State<AppState>) -> axum::Json<Value> {
    axum::Json(Value::Array(s.service.batches()))
}

/// A batch's progress and, when done, its summary.
#[utoipa::path(get, path = "/v1/batches/{id}", tag = "batches",
    params(("id" = String, Path, description = "Batch id")),
    responses((status = 200, description = "The batch", body = Object), (status = 404, description = "Unknown")))]
async fn get_batch(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.service.batch_json(&id)?))
}

/// Stop starting a batch's jobs (those in flight finish).
#[utoipa::path(delete, path = "/v1/batches/{id}", tag = "batches",
    params(("id" = String, Path, description = "Batch id")),
    responses((status = 202, description = "Cancelling"), (status = 404, description = "Unknown")))]
async fn cancel_batch(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.service.cancel_batch(&id)?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct ResultsQuery {
    /// Skip the first `from` results (to stream by polling).
    from: Option<usize>,
}

/// A batch's results so far, one JSON line each (`application/x-ndjson`):
/// the `llmos batch` result schema.
#[utoipa::path(get, path = "/v1/batches/{id}/results", tag = "batches",
    params(("id" = String, Path, description = "Batch id"), ResultsQuery),
    responses((status = 200, description = "JSON lines", content_type = "application/x-ndjson"), (status = 404, description = "Unknown")))]
async fn get_batch_results(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> ApiResult<Response> {
    let results = s.service.batch_results(&id, q.from.unwrap_or(0))?;
    let mut body = String::new();
    for r in results {
        body.push_str(&r.to_string());
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// The live event stream (server-sent events): `boot`, `run.started`,
/// `run.progress`, `run.finished`, `fix.started`, `fix.step`,
/// `fix.finished`, `batch.progress`, `batch.finished`, `session.cell`, and
/// `lagged` when a slow subscriber missed some.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    responses((status = 200, description = "An event stream", content_type = "text/event-stream"),
              (status = 503, description = "Too many subscribers")))]
async fn events(State(s): State<AppState>) -> ApiResult<Response> {
    let (mut rx, permit) = s.service.subscribe()?;
    let (tx, out) = tokio::sync::mpsc::channel::<Result<SseEvent, Infallible>>(256);
    let stop = s.service.stopping().clone();
    let boot = serde_json::to_value(s.service.boot_info()).unwrap_or(Value::Null);
    tokio::spawn(async move {
        let _permit = permit;
        let hello = SseEvent::default().event("hello").data(boot.to_string());
        if tx.send(Ok(hello)).await.is_err() {
            return;
        }
        loop {
            let ev = tokio::select! {
                r = rx.recv() => r,
                () = stop.cancelled() => return,
                () = tx.closed() => return,
            };
            let sse = match ev {
                Ok(e) => SseEvent::default().event(e.kind).data(e.data.to_string()),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => SseEvent::default()
                    .event("lagged")
                    .data(json!({"missed": n}).to_string()),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(Ok(sse)).await.is_err() {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(out);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
