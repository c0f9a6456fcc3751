//! `llmos serve` and `llmos mcp`: parse the flags, hand them to
//! `llmos::serve`, report where it listens. No policy here: the bind and
//! token rules are `llmos::serve::check_policy`'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use llmos::serve::{ServeLimits, ServeOptions};
use llmos::{BootOptions, HostError};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port). Anything but loopback
    /// needs --token-file.
    #[arg(long, default_value = "127.0.0.1:7878", value_name = "ADDR")]
    pub bind: SocketAddr,
    /// A file holding the bearer token clients must send
    /// (`Authorization: Bearer TOKEN`) on /v1 and /mcp.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Runs in flight per client (queued or running); more get 429.
    #[arg(long, value_name = "N")]
    pub max_runs_per_client: Option<usize>,
    /// Event-stream subscribers at once; more get 503.
    #[arg(long, value_name = "N")]
    pub max_subscribers: Option<usize>,
    /// Largest request body, e.g. 4MiB.
    #[arg(long, value_name = "SIZE")]
    pub max_body: Option<String>,
    /// On shutdown, how long runs in flight may finish before they are
    /// cancelled, e.g. 10s.
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<String>,
}

pub fn serve(args: ServeArgs, config: Option<PathBuf>) -> Result<ExitCode, HostError> {
    let token = match &args.token_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| HostError::io(p, e))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let mut limits = ServeLimits::default();
    if let Some(n) = args.max_runs_per_client {
        limits.max_runs_per_client = n.max(1);
    }
    if let Some(n) = args.max_subscribers {
        limits.max_subscribers = n;
    }
    if let Some(s) = &args.max_body {
        limits.max_body_bytes = usize::try_from(llmos::limits::parse_size(s)?)
            .map_err(|_| HostError::InvalidLimit(format!("--max-body {s} is too large")))?;
    }
    if let Some(g) = &args.grace {
        limits.grace = llmos::limits::parse_duration(g)?;
    }
    let opts = ServeOptions {
        bind: args.bind,
        token,
        limits,
        // Every stage, checks included: the dashboard's boot screen shows them.
        boot: BootOptions {
            config,
            checks: true,
            ..Default::default()
        },
    };
    llmos::serve::check_policy(&opts)?;
    let rt = super::async_runtime()?;
    rt.block_on(async move {
        llmos::serve::serve(
            opts,
            |addr| {
                // The first line on stdout is the address (scripts read it).
                outln!("llmos: serving http://{addr}/ (dashboard), API at /v1, MCP at /mcp");
                errln!("llmos: Ctrl-C or SIGTERM stops it (runs in flight finish first)");
            },
            shutdown_signal(),
        )
        .await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the server runs until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

pub fn mcp(config: Option<PathBuf>) -> Result<ExitCode, HostError> {
    let rt = super::async_runtime()?;
    rt.block_on(llmos::serve::serve_stdio(BootOptions {
        config,
        ..Default::default()
    }))?;
    Ok(ExitCode::SUCCESS)
}
