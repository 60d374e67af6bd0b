//! # mess-exchange
//!
//! The MESS exchange server. `mess-exchange` (or `mess-exchange serve`) runs it, configured
//! by environment variables (see the README); `mess-exchange openapi` prints the OpenAPI
//! document that `openapi.yaml` holds; `mess-exchange import` and `export` move threads
//! in and out of MESSE-AF files (the MESS project's file-based exchanges).
//!
//! # Layout
//! - `main.rs`: the command line, settings, and the wiring of storage, notifications and
//!   HTTP. This is the only crate that names concrete adapters.
//! - `migrate.rs`: `import` and `export`, a thin layer over `mess-messe` and the store.
#![deny(unsafe_code)]

mod migrate;
mod ops;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use mess_core::{ExchangeId, OsEntropy, SystemClock};
use mess_http::limits::{Guard, RateLimiter, RegistrationPolicy, TrustedProxies};
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
#[command(
    version,
    about = "A self-hosted exchange for the MESS protocol.",
    after_help = "Every setting is an environment variable (or the flag of the same name). \
Booleans: true or false (also 1/0, yes/no, on/off). An empty value of a setting without a \
default counts as unset; a bad value stops the start with a message naming it."
)]
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
    /// Bring in the threads of a file-based MESS exchange (MESSE-AF: v1 files, v2/v2.1
    /// folders, attachments included), as history, into a stopped store.
    #[command(long_about = migrate::IMPORT_ABOUT)]
    Import(migrate::ImportArgs),
    /// Write an exchange's threads as MESSE-AF v2.1 folders, in the state folders the
    /// MESS tools read (exchange/state=…/{ref}/).
    #[command(long_about = migrate::EXPORT_ABOUT)]
    Export(migrate::ExportArgs),
    /// List an exchange's members, remove one (its claims released) or reset its key, on a
    /// stopped store.
    #[command(subcommand, long_about = ops::MEMBERS_ABOUT)]
    Members(ops::MembersCmd),
    /// Read a whole stopped store as replay and DuckDB do: counts, torn lines, stray files
    /// (exit 1 when anything is wrong).
    #[command(long_about = ops::VERIFY_ABOUT)]
    Verify(ops::VerifyArgs),
    /// Copy a stopped store to another (filesystem or S3), object by object, then check
    /// the copy replays the same.
    #[command(long_about = ops::COPY_ABOUT)]
    Copy(ops::CopyArgs),
    /// Copy a store, running or not, into a new directory, consistently.
    #[command(long_about = ops::BACKUP_ABOUT)]
    Backup(ops::BackupArgs),
    /// Merge each past day's event segments of an exchange into one, on a stopped store.
    #[command(long_about = ops::COMPACT_ABOUT)]
    Compact(ops::CompactArgs),
}

/// `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `STORAGE_TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StorageType {
    /// A data directory (`STORAGE_PATH`).
    Filesystem,
    /// An S3 bucket (`S3_*`).
    S3,
}

/// Every setting, each from its environment variable (or the flag of the same name).
/// Booleans are `true`/`false` (`1`/`0`, `yes`/`no`, `on`/`off` also work). A value that
/// cannot work stops the start with a message naming the variable; an empty value of a
/// setting without a default counts as unset.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// Address to bind.
    #[arg(long, env = "BIND_ADDRESS", default_value = "0.0.0.0")]
    bind_address: String,
    #[command(flatten)]
    storage: StorageArgs,
    /// The exchange a single-exchange client uses (reported by /health).
    #[arg(long, env = "DEFAULT_EXCHANGE", default_value = "home")]
    default_exchange: String,
    /// The largest request body, in bytes (413 past it).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Allowed browser origins, comma-separated; `*` for any.
    #[arg(long, env = "CORS_ORIGINS", default_value = "*")]
    cors_origins: String,
    /// Log filter: a level (error, warn, info, debug, trace, off), or directives such as
    /// `mess_http=debug,info`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info", value_parser = parse_log_level)]
    log_level: String,
    /// Log filter in tracing's syntax; when set, it wins over LOG_LEVEL.
    #[arg(long, env = "RUST_LOG", value_parser = parse_rust_log)]
    rust_log: Option<String>,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// One log line per request at info (method, path, status, ms, client, request id);
    /// probes and /metrics at debug.
    #[arg(long, env = "ACCESS_LOG", action = ArgAction::Set,
          default_value = "true", value_parser = BoolishValueParser::new())]
    access_log: bool,
    /// Reverse proxies whose X-Forwarded-For is believed for the client address (rate
    /// limits, logs): comma-separated addresses or CIDRs, e.g. `10.0.0.0/8,172.16.0.0/12`.
    /// Unset: the TCP peer is the client and the header is ignored.
    #[arg(long, env = "TRUSTED_PROXIES", value_parser = parse_trusted_proxies)]
    trusted_proxies: Option<TrustedProxies>,
    /// This server's public URL, for links in notifications.
    #[arg(long, env = "PUBLIC_URL", value_parser = parse_public_url)]
    public_url: Option<String>,
    /// A YAML capability catalog served at .../capabilities.
    #[arg(long, env = "CAPABILITIES_FILE")]
    capabilities_file: Option<PathBuf>,
    /// Allow notifications to loopback and private addresses (LAN ntfy, Home Assistant).
    #[arg(long, env = "NOTIFY_ALLOW_PRIVATE", action = ArgAction::Set,
          default_value = "false", value_parser = BoolishValueParser::new())]
    notify_allow_private: bool,
    /// Delivery attempts per notification (1 to 100).
    #[arg(long, env = "NOTIFY_MAX_ATTEMPTS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    notify_max_attempts: u32,
    /// Seconds one delivery attempt may take (1 to 3600).
    #[arg(long, env = "NOTIFY_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    notify_timeout_secs: u64,
    /// Notifications queued before new ones are dropped (1 to 1000000).
    #[arg(long, env = "NOTIFY_QUEUE_SIZE", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    notify_queue_size: u64,
    /// How long a claim may sit with no status change and no message from its assignee
    /// before the exchange takes it back and offers the request again: an ISO 8601
    /// duration (`PT30M`, `P1D`), 1 second to 7 days. A request's own `claim_timeout`
    /// wins; an `estimate` on the claim extends it. Off unless set.
    #[arg(long, env = "CLAIM_TIMEOUT", value_parser = optional_duration)]
    claim_timeout: Option<Unset<i64>>,
    /// How long a pending request without `needed_by` waits for a taker before it is
    /// offered once more; after as long again its requestor is told (`thread_unclaimed`).
    /// With `needed_by`, half the time to it. An ISO 8601 duration, 1 second to 7 days.
    #[arg(long, env = "OFFER_REMIND_AFTER", default_value = "PT1H", value_parser = claim_timeout)]
    offer_remind_after: i64,
    /// How long after `completed` or `partial` a requestor may send the work back
    /// (`revision_requested`). An ISO 8601 duration, 1 second to 7 days.
    #[arg(long, env = "REVIEW_WINDOW", default_value = "P1D", value_parser = claim_timeout)]
    review_window: i64,
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
    /// Run as one of several replicas on the S3 bucket, reached by the others at this URL
    /// (`http://10.0.0.5:3000`): each exchange is owned by one replica at a time, through
    /// a lease in the bucket, and any replica forwards to its owner. Needs STORAGE_TYPE=s3.
    #[arg(long, env = "ADVERTISE_URL", value_parser = parse_advertise_url)]
    advertise_url: Option<String>,
    /// How long a replica's lease on an exchange lasts unrenewed (renewed every third of
    /// it): a crashed replica's exchanges move within about one to two periods. An ISO
    /// 8601 duration, 1 second to 5 minutes. Only with ADVERTISE_URL.
    #[arg(long, env = "LEASE_PERIOD", default_value = "PT10S", value_parser = lease_period)]
    lease_period: Duration,
}

/// `ADVERTISE_URL`: an absolute http(s) URL without a path, query or fragment.
fn parse_advertise_url(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return Err("must be scheme://host[:port], with no path, user, query or fragment".into());
    }
    Ok(s.to_owned())
}

/// `LEASE_PERIOD`: an ISO 8601 duration from 1 second to 5 minutes.
pub(crate) fn lease_period(s: &str) -> Result<Duration, String> {
    let ms = claim_timeout(s)?;
    if ms > 5 * 60 * 1000 {
        return Err("must be at most 5 minutes (PT5M)".into());
    }
    Ok(Duration::from_millis(
        u64::try_from(ms).map_err(|e| e.to_string())?,
    ))
}

/// Where the store is: the settings the server, `import` and `export` share.
#[derive(Debug, clap::Args)]
struct StorageArgs {
    /// Where events and members are kept.
    #[arg(long, env = "STORAGE_TYPE", value_enum, default_value = "filesystem")]
    storage_type: StorageType,
    /// The data directory of filesystem storage (it is the database: back it up).
    #[arg(long, env = "STORAGE_PATH", default_value = "./data")]
    storage_path: PathBuf,
    /// S3-compatible endpoint URL (MinIO, R2...); unset for AWS S3 itself.
    #[arg(long, env = "S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// S3 bucket name (required with STORAGE_TYPE=s3).
    #[arg(long, env = "S3_BUCKET")]
    s3_bucket: Option<String>,
    /// S3 access key id; with S3_SECRET_KEY, or neither for the AWS credential chain.
    #[arg(long, env = "S3_ACCESS_KEY", hide_env_values = true)]
    s3_access_key: Option<String>,
    /// S3 secret access key.
    #[arg(long, env = "S3_SECRET_KEY", hide_env_values = true)]
    s3_secret_key: Option<String>,
    /// S3 region (`auto` for Cloudflare R2).
    #[arg(long, env = "S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    /// Allow a plain-http S3 endpoint [default: true when S3_ENDPOINT is http://].
    #[arg(long, env = "S3_ALLOW_HTTP", value_parser = BoolishValueParser::new())]
    s3_allow_http: Option<bool>,
    /// Benchmark aid, never for production: extra milliseconds each segment fsync takes,
    /// to simulate a slow disk.
    #[arg(long, env = mess_storage::SYNC_DELAY_ENV, default_value_t = 0)]
    mess_fs_sync_delay_ms: u64,
}

/// The level names a directive without `=` may be.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// `LOG_LEVEL`: a tracing filter in which every bare word is a level. (tracing would take
/// `verbose` as a target's name and log nothing else, silently.)
fn parse_log_level(value: &str) -> Result<String, String> {
    let value = value.trim();
    tracing_subscriber::EnvFilter::try_new(value).map_err(|e| e.to_string())?;
    let bare_word = value.split(',').map(str::trim).find(|d| {
        !d.is_empty()
            && !d.contains(['=', '[', '{'])
            && !LEVELS.iter().any(|l| d.eq_ignore_ascii_case(l))
    });
    match bare_word {
        Some(word) => Err(format!(
            "{word:?} is not a level (one of {}) nor a `target=level` directive",
            LEVELS.join(", ")
        )),
        None if value.is_empty() => Err("empty: give a level such as info".to_owned()),
        None => Ok(value.to_owned()),
    }
}

/// `RUST_LOG`: as `LOG_LEVEL`, or empty for unset.
fn parse_rust_log(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Ok(String::new());
    }
    parse_log_level(value)
}

/// `TRUSTED_PROXIES`.
fn parse_trusted_proxies(value: &str) -> Result<TrustedProxies, String> {
    TrustedProxies::parse(value)
}

/// `PUBLIC_URL`: an http(s) URL, or empty for unset.
fn parse_public_url(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Ok(String::new());
    }
    mess_notify::parse_public_url(value).map_err(|e| e.reason.to_owned())
}

/// `Some` unless unset or blank.
fn set(value: Option<&String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl ServeArgs {
    /// Storage settings, as mess-storage takes them.
    fn storage_config(&self) -> mess_storage::StorageConfig {
        self.storage.config()
    }
}

impl StorageArgs {
    /// The settings, as mess-storage takes them.
    fn config(&self) -> mess_storage::StorageConfig {
        let s3_endpoint = set(self.s3_endpoint.as_ref());
        mess_storage::StorageConfig {
            kind: match self.storage_type {
                StorageType::Filesystem => mess_storage::StorageKind::Filesystem,
                StorageType::S3 => mess_storage::StorageKind::S3,
            },
            path: self.storage_path.clone(),
            fs_sync_delay: Duration::from_millis(self.mess_fs_sync_delay_ms),
            s3_allow_http: self
                .s3_allow_http
                .unwrap_or_else(|| mess_storage::allow_http_default(s3_endpoint.as_deref())),
            s3_endpoint,
            s3_bucket: set(self.s3_bucket.as_ref()),
            s3_access_key: set(self.s3_access_key.as_ref()),
            s3_secret_key: set(self.s3_secret_key.as_ref()),
            s3_region: self.s3_region.trim().to_owned(),
        }
    }
}

impl ServeArgs {
    /// Notification settings, as mess-notify takes them.
    fn notify_config(&self) -> mess_notify::NotifyConfig {
        let defaults = mess_notify::NotifyConfig::default();
        let timeout = Duration::from_secs(self.notify_timeout_secs);
        mess_notify::NotifyConfig {
            max_attempts: self.notify_max_attempts,
            timeout,
            connect_timeout: defaults.connect_timeout.min(timeout),
            // At most 1000000 (the parser's range): fits any usize.
            queue_size: usize::try_from(self.notify_queue_size).unwrap_or(usize::MAX),
            allow_private: self.notify_allow_private,
            public_url: set(self.public_url.as_ref()),
            ..defaults
        }
    }
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
        Some(Cmd::Import(args)) => run(migrate::import(args)),
        Some(Cmd::Export(args)) => run(migrate::export(args)),
        Some(Cmd::Members(cmd)) => run(ops::members(cmd)),
        Some(Cmd::Verify(args)) => run(ops::verify(args)),
        Some(Cmd::Copy(args)) => run(ops::copy(args)),
        Some(Cmd::Backup(args)) => run(ops::backup(args)),
        Some(Cmd::Compact(args)) => run(ops::compact(args)),
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

/// Runs an offline command (no server, no tracing) to its end.
fn run(command: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}

/// Start-up failures are one clear line on stderr, never a backtrace.
fn fail(message: String) -> ExitCode {
    tracing::error!("{message}");
    eprintln!("mess-exchange: {message}");
    ExitCode::FAILURE
}

fn init_tracing(args: &ServeArgs) {
    // Checked by `parse_log_level`; RUST_LOG, when set, wins.
    let directives = set(args.rust_log.as_ref()).unwrap_or_else(|| args.log_level.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: escape codes in a file, journald or a log shipper get in
    // the way of every search.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
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
    // serde-saphyr: pure Rust, `forbid(unsafe_code)`, fuzzed and maintained (serde_yaml_ng
    // and serde_norway still wrap unsafe-libyaml). Its message without the source snippet,
    // on one line.
    let doc: Value = serde_saphyr::from_str(&text).map_err(|e| {
        let message = e.without_snippet().to_string();
        format!(
            "CAPABILITIES_FILE {} is not valid YAML: {}",
            path.display(),
            message.split_whitespace().collect::<Vec<_>>().join(" ")
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
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(
                mess_http::telemetry::COUNT_BUCKETS.0.into(),
            ),
            mess_http::telemetry::COUNT_BUCKETS.1,
        )
        .map_err(|e| format!("metrics: {e}"))?
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))?;
    mess_http::telemetry::describe();

    let storage_config = args.storage_config();
    let replicas = match &args.advertise_url {
        Some(url) => Some(
            mess_storage::open_replicas(&storage_config, url.clone(), args.lease_period)
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let storage = match &replicas {
        Some(r) => r.storage(),
        None => mess_storage::open(&storage_config)
            .await
            .map_err(|e| e.to_string())?,
    };
    // One process at a time on a data directory: a second server, or an operator command
    // (members, verify, compact, copy) while this one runs, is refused. Held until exit.
    let _store_lock = mess_storage::lock_store(&storage_config).map_err(|e| e.to_string())?;
    // The key that signs the claim buttons of notifications, made once and kept in the
    // store (every replica, every restart signs and checks with the same one).
    let action_key = {
        let mut fresh = vec![0u8; mess_core::action_link::KEY_BYTES];
        mess_core::Entropy::fill(&OsEntropy, &mut fresh);
        match storage
            .secret(mess_core::action_link::KEY_NAME, &fresh)
            .await
        {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::warn!(error = %e, "no key for notification action links: notifications carry no claim button");
                None
            }
        }
    };
    let (notifier, notifier_handle) = mess_notify::HttpNotifier::start(mess_notify::NotifyConfig {
        action_key: action_key.clone(),
        ..args.notify_config()
    })
    .map_err(|e| e.to_string())?;

    let listener = TcpListener::bind((args.bind_address.as_str(), args.port)).map_err(|e| {
        format!(
            "cannot listen on {}:{} (BIND_ADDRESS, PORT): {e}",
            args.bind_address, args.port
        )
    })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // While the log is replayed, /livez says alive and /readyz not ready (not refused).
    let starting = listener
        .try_clone()
        .and_then(mess_http::serve_starting)
        .map_err(|e| format!("cannot serve on {addr}: {e}"))?;
    let starting_handle = starting.handle();
    let starting = tokio::spawn(starting);

    let started = std::time::Instant::now();
    let hub = if replicas.is_some() {
        // A replica reads each exchange when it takes its lease, not at start-up.
        Hub::empty(
            storage,
            notifier,
            Arc::new(SystemClock),
            Arc::new(OsEntropy),
        )
    } else {
        Hub::load(
            storage,
            notifier,
            Arc::new(SystemClock),
            Arc::new(OsEntropy),
        )
        .await
        .map_err(|e| format!("cannot read the event log: {e}"))?
    };
    release_freed_memory();
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "state rebuilt"
    );
    starting_handle.stop(true).await;
    let _ = starting.await;

    if let Some(key) = action_key {
        hub.set_action_key(key);
    }
    hub.set_claim_timeout(args.claim_timeout.and_then(|d| d.0));
    hub.set_remind_after(args.offer_remind_after);
    hub.set_review_window(args.review_window);
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

    // Replicas: renew the leases held every third of a period (stop serving any lost),
    // and take over, every few periods, the exchanges no live lease covers.
    let (forwarding, background) = match &replicas {
        Some(r) => {
            let ownership: Arc<dyn mess_core::Ownership> = r.clone();
            let period = ownership.period();
            let forwarding = Arc::new(mess_http::replicas::Forwarding::new(Arc::clone(
                &ownership,
            ))?);
            let renewal = {
                let (forwarding, hub) = (Arc::clone(&forwarding), Arc::clone(&hub));
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(period / 3);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        forwarding.renew(&hub).await;
                    }
                })
            };
            let sweep = forwarding.spawn_sweeps(Arc::clone(&hub));
            tracing::info!(
                url = ownership.url(),
                period_ms = period.as_millis() as u64,
                "serving as a replica: exchanges are taken as their requests come"
            );
            (Some(forwarding), Some((renewal, sweep)))
        }
        None => (None, None),
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
        replicas: forwarding.clone(),
    });
    let shutdown_timeout = Duration::from_secs(args.shutdown_timeout_secs);
    let config = HttpConfig {
        body_limit: args.max_body_bytes,
        cors: CorsOrigins::parse(&args.cors_origins),
        shutdown_timeout,
        requests: mess_http::middleware::RequestContext {
            proxies: args.trusted_proxies.clone().unwrap_or_default(),
            access_log: args.access_log,
        },
        ..HttpConfig::default()
    };
    let server = mess_http::serve(listener, state, config).map_err(|e| e.to_string())?;
    tracing::info!(%addr, storage = hub.storage_kind().as_str(), "mess-exchange listening on http://{addr}");
    // Held requests (`?wait=N`, up to a minute) would hold up actix's graceful stop: on
    // the stop signal (which actix hears too), answer them all at once.
    // A replica hands its exchanges over at once, not after the last request.
    let release = {
        let (hub, forwarding) = (Arc::clone(&hub), forwarding.clone());
        tokio::spawn(async move {
            stop_signal().await;
            hub.release_waiters();
            if let Some(forwarding) = forwarding {
                forwarding.hand_over(&hub).await;
                tracing::info!("handed every exchange over to the other replicas");
            }
        })
    };
    server.await.map_err(|e| format!("server error: {e}"))?;

    tracing::info!("shutting down: finishing queued writes and notifications");
    if replicas.is_some() {
        // The hand-over (started on the signal) ends before the last writes below.
        let _ = tokio::time::timeout(shutdown_timeout, release).await;
    } else {
        release.abort();
    }
    expiry.abort();
    hub.shutdown().await;
    if let (Some(r), Some((renewal, sweep))) = (&replicas, background) {
        // Every queued write is done: give the leases back so the others take over now.
        renewal.abort();
        sweep.abort();
        mess_core::Ownership::release_all(&**r).await;
    }
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

/// A setting whose empty value counts as unset (`CLAIM_TIMEOUT=` in an `.env` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unset<T>(Option<T>);

/// `CLAIM_TIMEOUT`: as [`claim_timeout`], or empty for unset.
fn optional_duration(s: &str) -> Result<Unset<i64>, String> {
    if s.trim().is_empty() {
        return Ok(Unset(None));
    }
    claim_timeout(s).map(|ms| Unset(Some(ms)))
}

/// `CLAIM_TIMEOUT`, `OFFER_REMIND_AFTER`, `REVIEW_WINDOW`: an ISO 8601 duration from 1 second to 7 days,
/// in milliseconds.
pub(crate) fn claim_timeout(s: &str) -> Result<i64, String> {
    mess_core::request::parse_claim_duration(&serde_json::Value::String(s.into()), "CLAIM_TIMEOUT")
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// The settings from `args` (flags, so no test depends on the process environment).
    fn parse(args: &[&str]) -> Result<ServeArgs, String> {
        let argv = std::iter::once("mess-exchange").chain(args.iter().copied());
        Cli::try_parse_from(argv)
            .map(|cli| cli.serve)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_readme_variable_is_a_setting_with_an_env_name_and_help() {
        let readme = include_str!("../../../README.md");
        let cmd = Cli::command();
        let mut names = Vec::new();
        for arg in cmd.get_arguments() {
            let Some(env) = arg.get_env() else { continue };
            let name = env.to_string_lossy().into_owned();
            assert!(arg.get_help().is_some(), "{name} has no help line");
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "{name} is not in the README"
            );
            names.push(name);
        }
        for line in readme.lines().filter(|l| l.starts_with("| `")) {
            let name = &line[3..line[3..].find('`').map_or(3, |i| i + 3)];
            if name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                assert!(names.iter().any(|n| n == name), "{name} is not read");
            }
        }
    }

    #[test]
    fn storage_settings_resolve_aws_without_an_endpoint_and_http_only_for_http() {
        let aws = parse(&[
            "--storage-type",
            "s3",
            "--s3-bucket",
            "b",
            "--s3-endpoint",
            "",
        ])
        .unwrap()
        .storage_config();
        assert_eq!(aws.kind, mess_storage::StorageKind::S3);
        assert_eq!(aws.s3_endpoint, None);
        assert!(!aws.s3_allow_http);
        assert_eq!(aws.s3_region, "us-east-1");
        let minio = parse(&["--s3-endpoint", "http://minio:9000"])
            .unwrap()
            .storage_config();
        assert!(minio.s3_allow_http);
        let told = parse(&[
            "--s3-endpoint",
            "http://minio:9000",
            "--s3-allow-http",
            "false",
        ])
        .unwrap()
        .storage_config();
        assert!(!told.s3_allow_http);
        let delay = parse(&["--mess-fs-sync-delay-ms", "4"])
            .unwrap()
            .storage_config();
        assert_eq!(delay.fs_sync_delay, Duration::from_millis(4));
    }

    #[test]
    fn booleans_take_true_false_and_the_usual_spellings_and_nothing_else() {
        for (value, expected) in [
            ("true", true),
            ("1", true),
            ("yes", true),
            ("FALSE", false),
            ("0", false),
            ("no", false),
        ] {
            let c = parse(&["--notify-allow-private", value]).unwrap();
            assert_eq!(c.notify_allow_private, expected, "{value}");
        }
        assert!(!parse(&[]).unwrap().notify_allow_private);
        for bad in [
            ["--notify-allow-private", "maybe"],
            ["--s3-allow-http", "2"],
        ] {
            let e = parse(&bad).unwrap_err();
            assert!(e.contains("invalid value"), "{e}");
        }
    }

    #[test]
    fn notification_settings_are_checked_at_start() {
        let c = parse(&[
            "--notify-max-attempts",
            "3",
            "--notify-timeout-secs",
            "2",
            "--notify-queue-size",
            "10",
            "--public-url",
            "https://mess.example.com/",
        ])
        .unwrap()
        .notify_config();
        assert_eq!((c.max_attempts, c.queue_size), (3, 10));
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.public_url.as_deref(), Some("https://mess.example.com"));
        assert_eq!(
            parse(&["--public-url", ""])
                .unwrap()
                .notify_config()
                .public_url,
            None
        );
        for bad in [
            ["--notify-max-attempts", "0"],
            ["--notify-timeout-secs", "3601"],
            ["--notify-queue-size", "x"],
            ["--public-url", "ftp://x"],
            ["--port", "70000"],
            ["--storage-type", "ftp"],
            ["--log-format", "xml"],
        ] {
            let e = parse(&bad).unwrap_err();
            assert!(e.contains("invalid value"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_capability_catalog_is_read_from_yaml_and_bad_yaml_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("capabilities.yaml");
        std::fs::write(
            &file,
            "# the catalog\ncapabilities:\n  - id: photo:capture\n    tags: [camera]\n    \
             description: |\n      Take a photo.\n  - id: 'location:indoor'\n",
        )
        .unwrap();
        let caps = load_capabilities(Some(&file)).unwrap();
        assert_eq!(caps.len(), 2);
        assert_eq!(caps[0]["id"], "photo:capture");
        assert_eq!(caps[0]["tags"][0], "camera");
        assert_eq!(caps[0]["description"], "Take a photo.\n");
        std::fs::write(&file, "capabilities: [\n").unwrap();
        let e = load_capabilities(Some(&file)).unwrap_err();
        assert!(e.contains("is not valid YAML"), "{e}");
        assert!(!e.contains('\n'), "one line: {e:?}");
    }

    #[test]
    fn proxies_access_log_and_rust_log_are_settings() {
        let c = parse(&["--trusted-proxies", "10.0.0.0/8, 192.168.1.1"]).unwrap();
        assert!(!c.trusted_proxies.unwrap().is_empty());
        assert!(parse(&[]).unwrap().trusted_proxies.is_none());
        let e = parse(&["--trusted-proxies", "10.0.0.0/40"]).unwrap_err();
        assert!(
            e.contains("TRUSTED_PROXIES") || e.contains("trusted-proxies"),
            "{e}"
        );
        assert!(parse(&[]).unwrap().access_log);
        assert!(!parse(&["--access-log", "off"]).unwrap().access_log);
        assert_eq!(
            parse(&["--rust-log", "mess_http=debug,warn"])
                .unwrap()
                .rust_log
                .as_deref(),
            Some("mess_http=debug,warn")
        );
        assert!(parse(&["--rust-log", "loud"]).is_err());
        // An empty CLAIM_TIMEOUT (`CLAIM_TIMEOUT=` in an .env file) is unset, not an error.
        assert_eq!(
            parse(&["--claim-timeout", ""]).unwrap().claim_timeout,
            Some(Unset(None))
        );
        assert_eq!(
            parse(&["--claim-timeout", "PT30M"]).unwrap().claim_timeout,
            Some(Unset(Some(30 * 60 * 1000)))
        );
        assert!(parse(&["--claim-timeout", "30m"]).is_err());
    }

    #[test]
    fn an_invalid_log_level_is_refused_not_turned_into_info() {
        for good in [
            "info",
            "DEBUG",
            "warn,mess_exchange=info",
            "mess_http=debug,info",
            "off",
        ] {
            assert_eq!(parse(&["--log-level", good]).unwrap().log_level, good);
        }
        for bad in ["verbose", "infoo", "", "info,loud", "mess_http=loud"] {
            let e = parse(&["--log-level", bad]).unwrap_err();
            assert!(e.contains("LOG_LEVEL"), "{bad}: {e}");
        }
    }
}
