//! Delivery settings, from the environment or set directly (tests).

use std::time::Duration;

/// Why the environment could not be read into a [`NotifyConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    /// The variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// How notifications are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// Sends tried per delivery before it is recorded as failed (`NOTIFY_MAX_ATTEMPTS`, 5).
    pub max_attempts: u32,
    /// Total time one send may take, connect to last body byte (`NOTIFY_TIMEOUT_SECS`, 10 s).
    pub timeout: Duration,
    /// Time to establish a connection (5 s, capped by `timeout`).
    pub connect_timeout: Duration,
    /// Deliveries waiting to be sent; beyond it new ones are dropped (`NOTIFY_QUEUE_SIZE`,
    /// 1024). Bounded so that a dead endpoint cannot grow memory without limit.
    pub queue_size: usize,
    /// Deliveries sent at once, so one slow endpoint does not stall the others (16).
    pub concurrency: usize,
    /// Whether loopback and private addresses may be sent to (`NOTIFY_ALLOW_PRIVATE`,
    /// false): home setups with a LAN ntfy or Home Assistant turn it on.
    pub allow_private: bool,
    /// The server's public base URL (`PUBLIC_URL`), for links in notifications.
    pub public_url: Option<String>,
    /// First retry delay; doubled each attempt, with jitter (500 ms).
    pub base_backoff: Duration,
    /// Longest wait between two attempts, `Retry-After` included (60 s).
    pub max_backoff: Duration,
    /// How long shutdown waits for queued and in-flight deliveries (10 s).
    pub shutdown_deadline: Duration,
    /// The key that signs offers' claim links (`secrets/action-links.key`); without it, or
    /// without `public_url`, notifications carry no claim button.
    pub action_key: Option<Vec<u8>>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            queue_size: 1024,
            concurrency: 16,
            allow_private: false,
            public_url: None,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            shutdown_deadline: Duration::from_secs(10),
            action_key: None,
        }
    }
}

impl NotifyConfig {
    /// Reads `NOTIFY_MAX_ATTEMPTS`, `NOTIFY_TIMEOUT_SECS`, `NOTIFY_QUEUE_SIZE`,
    /// `NOTIFY_ALLOW_PRIVATE` (`true`/`false`) and `PUBLIC_URL`; unset or empty means the
    /// default.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`NotifyConfig::from_env`], reading variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut c = Self::default();
        if let Some(v) = var("NOTIFY_MAX_ATTEMPTS") {
            c.max_attempts = match v.parse() {
                Ok(n @ 1..=100) => n,
                _ => {
                    return Err(bad(
                        "NOTIFY_MAX_ATTEMPTS",
                        "must be a whole number from 1 to 100",
                    ));
                }
            };
        }
        if let Some(v) = var("NOTIFY_TIMEOUT_SECS") {
            c.timeout = match v.parse() {
                Ok(n @ 1..=3600) => Duration::from_secs(n),
                _ => {
                    return Err(bad(
                        "NOTIFY_TIMEOUT_SECS",
                        "must be whole seconds from 1 to 3600",
                    ));
                }
            };
            c.connect_timeout = c.connect_timeout.min(c.timeout);
        }
        if let Some(v) = var("NOTIFY_QUEUE_SIZE") {
            c.queue_size = match v.parse() {
                Ok(n @ 1..=1_000_000) => n,
                _ => {
                    return Err(bad(
                        "NOTIFY_QUEUE_SIZE",
                        "must be a whole number from 1 to 1000000",
                    ));
                }
            };
        }
        if let Some(v) = var("NOTIFY_ALLOW_PRIVATE") {
            c.allow_private = match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err(bad("NOTIFY_ALLOW_PRIVATE", "must be true or false")),
            };
        }
        if let Some(v) = var("PUBLIC_URL") {
            c.public_url = Some(parse_public_url(&v)?);
        }
        Ok(c)
    }
}

/// Checks a `PUBLIC_URL`: an absolute `http` or `https` URL, returned without its
/// trailing `/`.
pub fn parse_public_url(value: &str) -> Result<String, ConfigError> {
    let value = value.trim();
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {
            Ok(value.trim_end_matches('/').to_owned())
        }
        _ => Err(bad("PUBLIC_URL", "must be an http or https URL")),
    }
}

fn bad(var: &'static str, reason: &'static str) -> ConfigError {
    ConfigError { var, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<NotifyConfig, ConfigError> {
        NotifyConfig::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn an_empty_environment_gives_the_defaults() {
        assert_eq!(from(&[]), Ok(NotifyConfig::default()));
    }

    #[test]
    fn each_variable_is_read() {
        let c = from(&[
            ("NOTIFY_MAX_ATTEMPTS", "3"),
            ("NOTIFY_TIMEOUT_SECS", "2"),
            ("NOTIFY_QUEUE_SIZE", "10"),
            ("NOTIFY_ALLOW_PRIVATE", "true"),
            ("PUBLIC_URL", "https://mess.example.com/"),
        ])
        .unwrap();
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.queue_size, 10);
        assert!(c.allow_private);
        assert_eq!(c.public_url.as_deref(), Some("https://mess.example.com"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_eq!(
            from(&[("NOTIFY_MAX_ATTEMPTS", "0")]).unwrap_err().var,
            "NOTIFY_MAX_ATTEMPTS"
        );
        assert_eq!(
            from(&[("NOTIFY_ALLOW_PRIVATE", "maybe")]).unwrap_err().var,
            "NOTIFY_ALLOW_PRIVATE"
        );
        assert_eq!(
            from(&[("PUBLIC_URL", "ftp://x")]).unwrap_err().var,
            "PUBLIC_URL"
        );
    }
}
