//! # mess-exchange
//!
//! The MESS exchange server. `mess-exchange` (or `mess-exchange serve`) runs it, configured
//! by environment variables (see the README); `mess-exchange openapi` prints the OpenAPI
//! document that `openapi.yaml` holds.
//!
//! # Layout
//! - `main.rs`: the command line, settings, and the wiring of storage, notifications and
//!   HTTP. This is the only crate that names concrete adapters.
#![deny(unsafe_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use clap::{Parser, Subcommand, ValueEnum};
use mess_core::{ExchangeId, OsEntropy, SystemClock};
use mess_http::limits::{Guard, RateLimiter, RegistrationPolicy};
use mess_http::middleware::CorsOrigins;
use mess_http::{AppState, HttpConfig, Hub};
use serde_json::Value;

/// mimalloc: cheaper small allocations under load, and the memory start-up's replay frees
/// is returned to the OS.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns to the OS the memory start-up's replay allocated and freed (about half of its
/// peak). mimalloc would otherwise keep those pages until the threads that freed them
/// (replay's readers, gone by now) or later allocations trigger a purge, and the server's
/// RSS would show the replay's peak instead of its state.
#[allow(unsafe_code)]
fn release_freed_memory() {
    // SAFETY: `mi_collect` has no preconditions: it only walks mimalloc's own heaps and
    // may be called at any time from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// A self-hosted exchange for the MESS protocol.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the server (the default).
    Serve,
    /// Print the OpenAPI document (YAML, or JSON with --json).
    Openapi {
        /// Print JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Server settings; storage (`STORAGE_*`, `S3_*`) and notification (`NOTIFY_*`,
/// `PUBLIC_URL`) settings are read by their own crates.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// Address to bind.
    #[arg(long, env = "BIND_ADDRESS", default_value = "0.0.0.0")]
    bind_address: String,
    /// The exchange a single-exchange client uses (reported by /health).
    #[arg(long, env = "DEFAULT_EXCHANGE", default_value = "home")]
    default_exchange: String,
    /// The largest request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Allowed browser origins, comma-separated; `*` for any.
    #[arg(long, env = "CORS_ORIGINS", default_value = "*")]
    cors_origins: String,
    /// Log filter (`info`, `debug`, `mess_http=debug,info`...).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// A YAML capability catalog served at .../capabilities.
    #[arg(long, env = "CAPABILITIES_FILE")]
    capabilities_file: Option<PathBuf>,
    /// When set, `/register` requires this token (`X-Registration-Token` header).
    #[arg(long, env = "REGISTRATION_TOKEN", hide_env_values = true)]
    registration_token: Option<String>,
    /// Per-exchange registration tokens: `home=abc,office=def`.
    #[arg(long, env = "REGISTRATION_TOKENS", hide_env_values = true)]
    registration_tokens: Option<String>,
    /// Registrations per client IP per minute (0: no limit).
    #[arg(long, env = "RATE_LIMIT_REGISTER_PER_MIN", default_value_t = 300)]
    rate_limit_register_per_min: u32,
    /// Failed authentications per client IP per minute before 429 (0: no limit).
    #[arg(long, env = "RATE_LIMIT_AUTH_FAILURES_PER_MIN", default_value_t = 1000)]
    rate_limit_auth_failures_per_min: u32,
    /// Seconds to wait for in-flight requests and notifications at shutdown.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    shutdown_timeout_secs: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Openapi { json }) => {
            let doc = if json {
                mess_http::openapi::json()
            } else {
                mess_http::openapi::yaml()
            };
            print!("{doc}");
            ExitCode::SUCCESS
        }
        Some(Cmd::Serve) | None => {
            init_tracing(&cli.serve);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => return fail(format!("cannot start the runtime: {e}")),
            };
            match runtime.block_on(serve(cli.serve)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => fail(message),
            }
        }
    }
}

/// Start-up failures are one clear line on stderr, never a backtrace.
fn fail(message: String) -> ExitCode {
    tracing::error!("{message}");
    eprintln!("mess-exchange: {message}");
    ExitCode::FAILURE
}

fn init_tracing(args: &ServeArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn load_capabilities(path: Option<&PathBuf>) -> Result<Vec<Value>, String> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read CAPABILITIES_FILE {}: {e}", path.display()))?;
    let doc: Value = serde_yaml_ng::from_str(&text).map_err(|e| {
        format!(
            "CAPABILITIES_FILE {} is not valid YAML: {e}",
            path.display()
        )
    })?;
    mess_api::catalog::from_document(doc, "CAPABILITIES_FILE")
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let default_exchange = ExchangeId::parse(&args.default_exchange).map_err(|_| {
        format!(
            "DEFAULT_EXCHANGE {:?} is not a valid exchange id",
            args.default_exchange
        )
    })?;
    let capabilities = load_capabilities(args.capabilities_file.as_ref())?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ])
        .map_err(|e| format!("metrics: {e}"))?
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))?;

    let storage_config = mess_storage::StorageConfig::from_env().map_err(|e| e.to_string())?;
    let storage = mess_storage::open(&storage_config)
        .await
        .map_err(|e| e.to_string())?;
    let notify_config = mess_notify::NotifyConfig::from_env().map_err(|e| e.to_string())?;
    let (notifier, notifier_handle) =
        mess_notify::HttpNotifier::start(notify_config).map_err(|e| e.to_string())?;

    let started = std::time::Instant::now();
    let hub = Hub::load(
        storage,
        notifier,
        Arc::new(SystemClock),
        Arc::new(OsEntropy),
    )
    .await
    .map_err(|e| format!("cannot read the event log: {e}"))?;
    release_freed_memory();
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "state rebuilt"
    );

    let listener = TcpListener::bind((args.bind_address.as_str(), args.port)).map_err(|e| {
        format!(
            "cannot listen on {}:{} (BIND_ADDRESS, PORT): {e}",
            args.bind_address, args.port
        )
    })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;

    let expiry = {
        let hub = Arc::clone(&hub);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                hub.expire_due().await;
            }
        })
    };

    let state = web::Data::new(AppState {
        hub: Arc::clone(&hub),
        capabilities: Arc::new(capabilities),
        default_exchange,
        guard: Guard {
            registration: RegistrationPolicy::new(
                args.registration_token.clone(),
                args.registration_tokens.as_deref(),
            ),
            registrations: RateLimiter::new(args.rate_limit_register_per_min),
            auth_failures: RateLimiter::new(args.rate_limit_auth_failures_per_min),
        },
        metrics: Some(metrics),
    });
    let shutdown_timeout = Duration::from_secs(args.shutdown_timeout_secs);
    let config = HttpConfig {
        body_limit: args.max_body_bytes,
        cors: CorsOrigins::parse(&args.cors_origins),
        shutdown_timeout,
    };
    let server = mess_http::serve(listener, state, config).map_err(|e| e.to_string())?;
    tracing::info!(%addr, storage = hub.storage_kind().as_str(), "mess-exchange listening on http://{addr}");
    // Held requests (`?wait=N`, up to a minute) would hold up actix's graceful stop: on
    // the stop signal (which actix hears too), answer them all at once.
    let release = {
        let hub = Arc::clone(&hub);
        tokio::spawn(async move {
            stop_signal().await;
            hub.release_waiters();
        })
    };
    server.await.map_err(|e| format!("server error: {e}"))?;

    tracing::info!("shutting down: finishing queued writes and notifications");
    release.abort();
    expiry.abort();
    hub.shutdown().await;
    notifier_handle.shutdown(shutdown_timeout).await;
    Ok(())
}

/// SIGTERM or SIGINT (Ctrl-C): what makes actix stop gracefully.
async fn stop_signal() {
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}
