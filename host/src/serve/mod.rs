//! `llmos serve` and `llmos mcp`: the kernel behind an HTTP API, a live
//! event stream, MCP tools and the dashboard.
//!
//! - [`service`]: the kernel as a long-lived service (runs, fixes,
//!   sessions, snapshots, batches, events); both front ends call it.
//! - [`http`]: the `/v1` REST API (axum), server-sent events at
//!   `/v1/events`, the generated OpenAPI document at `/openapi.json`.
//! - [`mcp`]: the same tools over MCP (stdio, and streamable HTTP at `/mcp`).
//! - [`assets`]: the dashboard, embedded at build time.
//!
//! Policy: loopback by default; any other address needs a bearer token.
//! Bodies, runs in flight per client, running runs, event subscribers,
//! sessions and history are bounded ([`ServeLimits`]). On shutdown new
//! work is refused, runs in flight get a grace period, and every finished
//! result is already in `<data dir>/serve/results.jsonl`.

pub mod assets;
pub mod http;
pub mod mcp;
pub mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::boot::BootOptions;
use crate::error::HostError;
pub use service::{ServeLimits, Service};

/// How to serve.
#[derive(Clone)]
pub struct ServeOptions {
    /// Address to listen on (port 0: any free port).
    pub bind: SocketAddr,
    /// Bearer token for `/v1` and `/mcp` (required off loopback).
    pub token: Option<String>,
    /// Bounds.
    pub limits: ServeLimits,
    /// How to boot the kernel.
    pub boot: BootOptions,
}

/// Shortest token accepted: guessing must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;

/// Check the bind policy: a token is required off loopback, and must be long.
pub fn check_policy(opts: &ServeOptions) -> Result<(), HostError> {
    if let Some(t) = &opts.token
        && (t.len() < MIN_TOKEN_LEN || t.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(HostError::Usage(format!(
            "the token must be at least {MIN_TOKEN_LEN} characters, with no spaces"
        )));
    }
    if !opts.bind.ip().is_loopback() && opts.token.is_none() {
        return Err(HostError::Usage(format!(
            "{} is not a loopback address: give a bearer token with --token-file",
            opts.bind.ip()
        )));
    }
    Ok(())
}

/// Serve until `shutdown` resolves: listen first (`on_listening` gets the
/// address), then boot while the dashboard already shows the stages.
pub async fn serve(
    opts: ServeOptions,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HostError> {
    check_policy(&opts)?;
    let listener = tokio::net::TcpListener::bind(opts.bind)
        .await
        .map_err(|e| HostError::System {
            what: "cannot listen",
            source: e,
        })?;
    let addr = listener.local_addr().map_err(|e| HostError::System {
        what: "cannot read the listening address",
        source: e,
    })?;
    let service = Service::new(opts.limits.clone());
    on_listening(addr);

    let boot = {
        let service = service.clone();
        let boot_opts = opts.boot.clone();
        tokio::spawn(async move {
            if let Err(e) = service.boot(&boot_opts).await {
                tracing::error!("boot failed: {e}");
            }
        })
    };
    let progress = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = tick.tick() => service.publish_progress(),
                    () = service.stopping().cancelled() => return,
                }
            }
        })
    };

    let state = http::AppState {
        service: service.clone(),
        token: opts.token.as_deref().map(Arc::from),
    };
    let mcp = mcp_http(&service, &opts);
    let app = http::router(state.clone()).nest_service("/mcp", tower_layer_token(state, mcp));
    let drain = service.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing runs in flight");
        drain.shutdown().await;
    };
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(graceful)
    .await;
    boot.abort();
    progress.abort();
    result.map_err(|e| HostError::System {
        what: "the server failed",
        source: e,
    })
}

type McpService = rmcp::transport::streamable_http_server::StreamableHttpService<
    mcp::Tools,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
>;

fn mcp_http(service: &Arc<Service>, opts: &ServeOptions) -> McpService {
    use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
    let mut config = StreamableHttpServerConfig::default();
    config.cancellation_token = service.stopping().child_token();
    // Off loopback the bearer token guards /mcp; on loopback rmcp's own
    // Host check (against DNS rebinding) stays on.
    if !opts.bind.ip().is_loopback() {
        config = config.disable_allowed_hosts();
    }
    let service = service.clone();
    rmcp::transport::streamable_http_server::StreamableHttpService::new(
        move || Ok(mcp::Tools::new(service.clone(), "mcp-http")),
        Default::default(),
        config,
    )
}

/// `/mcp` behind the same bearer-token check as `/v1`.
fn tower_layer_token(state: http::AppState, mcp: McpService) -> axum::Router {
    axum::Router::new()
        .fallback_service(mcp)
        .layer(axum::middleware::from_fn_with_state(
            state,
            http::require_token,
        ))
}

/// `llmos mcp`: boot, then serve the tools on stdin/stdout until the
/// client closes them.
pub async fn serve_stdio(boot: BootOptions) -> Result<(), HostError> {
    use rmcp::ServiceExt;
    let service = Service::new(ServeLimits::default());
    service.boot(&boot).await?;
    let running = mcp::Tools::new(service.clone(), "stdio")
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| HostError::System {
            what: "MCP handshake failed",
            source: std::io::Error::other(e.to_string()),
        })?;
    let _ = running.waiting().await;
    service.shutdown().await;
    Ok(())
}
