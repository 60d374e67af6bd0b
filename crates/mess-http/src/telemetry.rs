//! What `/metrics` says, in one place: every metric's name, type and `# HELP` line, the
//! build info, and the process metrics read from `/proc` at each scrape.
//!
//! `deploy/monitoring/` (the Grafana dashboard and the Prometheus alerts) uses these names;
//! a test checks that each name it uses is exported.

/// A metric's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// Every metric the server exports: name, type, help.
pub const METRICS: &[(&str, Kind, &str)] = &[
    (
        "http_requests_total",
        Kind::Counter,
        "HTTP requests, by route pattern, method and status.",
    ),
    (
        "http_request_duration_seconds",
        Kind::Histogram,
        "Time from request to response head, by route pattern (a feed or a held wait counts its whole wait).",
    ),
    (
        "mess_threads",
        Kind::Gauge,
        "Request threads held in memory, by status, across every exchange.",
    ),
    (
        "mess_exchanges",
        Kind::Gauge,
        "Exchanges this server holds.",
    ),
    (
        "mess_waiters",
        Kind::Gauge,
        "Requests held open by ?wait=N until their thread changes.",
    ),
    (
        "mess_feed_streams",
        Kind::Gauge,
        "Open change-feed streams (GET .../events).",
    ),
    (
        "mess_notifications_total",
        Kind::Counter,
        "Notification deliveries finished, by channel and outcome (delivered or failed, after retries).",
    ),
    (
        "mess_notifications_dropped_total",
        Kind::Counter,
        "Notifications dropped because the delivery queue was full (NOTIFY_QUEUE_SIZE).",
    ),
    (
        "mess_notify_queue_depth",
        Kind::Gauge,
        "Notifications queued and not yet taken by a sender.",
    ),
    (
        "mess_storage_append_seconds",
        Kind::Histogram,
        "Time of one durable append of a batch of events (write and sync, or the object PUT).",
    ),
    (
        "mess_storage_append_events",
        Kind::Histogram,
        "Events per durable append (the group commit's batch size).",
    ),
    (
        "mess_storage_append_failures_total",
        Kind::Counter,
        "Appends that failed (their batch was refused with 503).",
    ),
    (
        "mess_storage_fsync_seconds",
        Kind::Histogram,
        "Time of one fdatasync of an event segment (filesystem storage).",
    ),
    (
        "mess_storage_ok",
        Kind::Gauge,
        "1 while the last storage write succeeded, 0 after a failed one (what /readyz reports).",
    ),
    (
        "mess_timer_sweep_seconds",
        Kind::Histogram,
        "Time to find the due timers of one exchange (deadlines, claim limits, offer reminders), once a second.",
    ),
    (
        "mess_replay_seconds",
        Kind::Gauge,
        "Time the start-up replay of the event log took.",
    ),
    (
        "mess_replay_events",
        Kind::Gauge,
        "Events read by the start-up replay.",
    ),
    (
        "mess_build_info",
        Kind::Gauge,
        "Always 1; the labels say which build runs.",
    ),
    (
        "process_resident_memory_bytes",
        Kind::Gauge,
        "Resident memory (RSS) of the server process.",
    ),
    (
        "process_virtual_memory_bytes",
        Kind::Gauge,
        "Virtual memory of the server process.",
    ),
    // A gauge by type: the exporter's counters hold integers, and whole seconds would hide
    // a quiet process's CPU. It only grows; `rate()` works on it as on a counter.
    (
        "process_cpu_seconds_total",
        Kind::Gauge,
        "CPU time (user and system) the server process has used, in seconds.",
    ),
    (
        "process_open_fds",
        Kind::Gauge,
        "Open file descriptors (sockets included).",
    ),
    (
        "process_max_fds",
        Kind::Gauge,
        "The process's limit on open file descriptors.",
    ),
    ("process_threads", Kind::Gauge, "OS threads of the process."),
    (
        "process_start_time_seconds",
        Kind::Gauge,
        "When the process started, in seconds since the Unix epoch.",
    ),
];

/// The histograms whose buckets are counts, not seconds: their buckets.
pub const COUNT_BUCKETS: (&str, &[f64]) = (
    "mess_storage_append_events",
    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
);

/// Describes every metric (their `# HELP` lines), sets the build info, and makes the
/// unlabeled ones exist from the start, so alerts and dashboards see 0 rather than no
/// series. Call once, after installing the recorder.
pub fn describe() {
    for &(name, kind, help) in METRICS {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
    metrics::gauge!(
        "mess_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "rustc" => option_env!("CARGO_PKG_RUST_VERSION").unwrap_or("")
    )
    .set(1.0);
    for name in [
        "mess_notifications_dropped_total",
        "mess_storage_append_failures_total",
    ] {
        metrics::counter!(name).absolute(0);
    }
    for name in ["mess_waiters", "mess_notify_queue_depth"] {
        metrics::gauge!(name).increment(0.0);
    }
    metrics::gauge!("mess_storage_ok").set(1.0);
    // Called once, at start: the server's start, near enough (the process started a
    // moment before, to parse its settings).
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    metrics::gauge!("process_start_time_seconds").set(started);
}

/// Sets the process metrics from `/proc/self` (Linux; elsewhere they are absent).
pub fn record_process() {
    let Some(p) = read_process() else { return };
    metrics::gauge!("process_resident_memory_bytes").set(p.rss_bytes as f64);
    metrics::gauge!("process_virtual_memory_bytes").set(p.virtual_bytes as f64);
    metrics::gauge!("process_threads").set(p.threads as f64);
    metrics::gauge!("process_open_fds").set(p.open_fds as f64);
    if let Some(max) = p.max_fds {
        metrics::gauge!("process_max_fds").set(max as f64);
    }
    metrics::gauge!("process_cpu_seconds_total").set(p.cpu_seconds);
}

/// What `/proc/self` says of this process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    /// Resident set size.
    pub rss_bytes: u64,
    /// Virtual memory size.
    pub virtual_bytes: u64,
    /// User plus system CPU time.
    pub cpu_seconds: f64,
    /// OS threads.
    pub threads: u64,
    /// Open descriptors.
    pub open_fds: u64,
    /// The soft limit on descriptors (`None`: unlimited or unknown).
    pub max_fds: Option<u64>,
}

/// Linux reports CPU times in USER_HZ, which the kernel fixes at 100 for user space on
/// every architecture Rust targets.
const USER_HZ: f64 = 100.0;

fn read_process() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    parse_process(&stat, &status, &limits, open_fds)
}

/// The stats from the texts of `/proc/self/stat`, `status` and `limits`.
pub fn parse_process(
    stat: &str,
    status: &str,
    limits: &str,
    open_fds: u64,
) -> Option<ProcessStats> {
    // The command name (field 2) is in parentheses and may hold spaces: fields after it
    // are counted from its closing parenthesis. Field 14 is utime, 15 stime, 20 threads.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let cpu_seconds = (field(14)? + field(15)?) as f64 / USER_HZ;
    let threads = field(20)?;
    let kb = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
    };
    let max_fds = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l["Max open files".len()..].split_whitespace().next())
        .and_then(|soft| soft.parse().ok());
    Some(ProcessStats {
        rss_bytes: kb("VmRSS:")? * 1024,
        virtual_bytes: kb("VmSize:")? * 1024,
        cpu_seconds,
        threads,
        open_fds,
        max_fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stats_are_read_from_proc_texts_even_with_a_spaced_command_name() {
        let stat = "4242 (mess exchange) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    250 130 0 0 20 0 7 0 12345 123456789 2000";
        let status = "Name:\tmess-exchange\nVmSize:\t  200000 kB\nVmRSS:\t   51200 kB\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        let p = parse_process(stat, status, limits, 12).unwrap();
        assert_eq!(p.rss_bytes, 51200 * 1024);
        assert_eq!(p.virtual_bytes, 200000 * 1024);
        assert!((p.cpu_seconds - 3.8).abs() < 1e-9, "{}", p.cpu_seconds);
        assert_eq!(p.threads, 7);
        assert_eq!((p.open_fds, p.max_fds), (12, Some(1024)));
        assert!(parse_process("garbage", status, limits, 1).is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_can_be_read() {
        let p = read_process().unwrap();
        assert!(
            p.rss_bytes > 0 && p.threads >= 1 && p.open_fds >= 1,
            "{p:?}"
        );
    }

    #[test]
    fn every_metric_is_named_once_with_help() {
        let mut names: Vec<_> = METRICS.iter().map(|m| m.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len());
        assert!(METRICS.iter().all(|m| m.2.ends_with('.')));
        assert!(names.contains(&COUNT_BUCKETS.0));
    }
}
