//! Abuse limits: an optional registration token, and per-client-IP rate limits on
//! registration and on failed authentication.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
pub use mess_api::RegistrationPolicy;

use crate::error::ApiError;

/// A token bucket per client IP: `per_minute` tokens a minute, bursts up to `per_minute`.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// How many clients a limiter remembers before it forgets the idle ones.
const MAX_TRACKED: usize = 100_000;

impl RateLimiter {
    /// `per_minute` = 0 disables the limit.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, tokens: f64, since: Instant, now: Instant) -> f64 {
        let rate = f64::from(self.per_minute) / 60.0;
        (tokens + now.duration_since(since).as_secs_f64() * rate).min(f64::from(self.per_minute))
    }

    /// Takes one token for `ip`, or answers 429 with how long to wait.
    pub fn take(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        self.apply(ip, true)
    }

    /// Checks that `ip` has a token left without taking one.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        self.apply(ip, false)
    }

    fn apply(&self, ip: Option<IpAddr>, take: bool) -> Result<(), ApiError> {
        let (Some(ip), true) = (ip, self.per_minute > 0) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        // A check (every authenticated request) of a client that has never failed finds a
        // full bucket: nothing to track.
        if !take && !buckets.contains_key(&ip) {
            return Ok(());
        }
        if buckets.len() >= MAX_TRACKED {
            let full = f64::from(self.per_minute);
            buckets.retain(|_, (t, at)| self.refill(*t, *at, now) < full);
        }
        let (tokens, at) = buckets
            .entry(ip)
            .or_insert((f64::from(self.per_minute), now));
        let available = self.refill(*tokens, *at, now);
        if available < 1.0 {
            let rate = f64::from(self.per_minute) / 60.0;
            let wait = Duration::from_secs_f64((1.0 - available) / rate)
                .as_secs()
                .max(1);
            return Err(ApiError::TooManyRequests(wait));
        }
        *tokens = if take { available - 1.0 } else { available };
        *at = now;
        Ok(())
    }
}

/// Every abuse limit of the server.
#[derive(Debug)]
pub struct Guard {
    /// Who may register.
    pub registration: RegistrationPolicy,
    /// Registrations per client IP per minute (`RATE_LIMIT_REGISTER_PER_MIN`).
    pub registrations: RateLimiter,
    /// Failed authentications per client IP per minute (`RATE_LIMIT_AUTH_FAILURES_PER_MIN`).
    pub auth_failures: RateLimiter,
}

impl Default for Guard {
    /// Open registration, no limits (what tests use).
    fn default() -> Self {
        Self {
            registration: RegistrationPolicy::default(),
            registrations: RateLimiter::new(0),
            auth_failures: RateLimiter::new(0),
        }
    }
}

impl Guard {
    /// Admits a registration on `exchange`: rate limit first, then the token.
    pub fn admit_registration(&self, req: &HttpRequest, exchange: &str) -> Result<(), ApiError> {
        self.registrations.take(client_ip(req))?;
        let header = |name| req.headers().get(name).map(|v| v.as_bytes());
        self.registration.check(
            exchange,
            header("x-registration-token"),
            header("authorization"),
        )
    }
}

/// The client's IP (the TCP peer; a reverse proxy's own address when behind one).
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    req.peer_addr().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_then_refuses_with_a_wait() {
        let l = RateLimiter::new(3);
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..3 {
            l.take(ip).unwrap();
        }
        assert!(matches!(l.take(ip), Err(ApiError::TooManyRequests(s)) if s >= 1));
        assert!(l.check(ip).is_err());
        l.take(Some(IpAddr::from([10, 0, 0, 2]))).unwrap();
        RateLimiter::new(0).take(ip).unwrap();
    }
}
