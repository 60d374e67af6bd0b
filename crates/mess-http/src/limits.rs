//! Abuse limits: an optional registration token, and per-client-IP rate limits on
//! registration and on failed authentication.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{HttpMessage, HttpRequest};
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

    /// One try at a credential from `ip` (a key, a signed link): 429 while its failures
    /// are over the limit; otherwise `attempt`'s result, a failure (`is_failure`) counted.
    pub fn attempt<T, E>(
        &self,
        ip: Option<IpAddr>,
        attempt: impl FnOnce() -> Result<T, E>,
        is_failure: impl FnOnce(&E) -> bool,
    ) -> Result<Result<T, E>, ApiError> {
        self.check(ip)?;
        let result = attempt();
        if let Err(e) = &result
            && is_failure(e)
        {
            // The next attempt past the limit gets 429.
            let _ = self.take(ip);
        }
        Ok(result)
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

/// The client's IP: the address a trusted proxy forwarded (found once by the request
/// middleware), else the TCP peer.
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    match req.extensions().get::<ClientIp>() {
        Some(ClientIp(ip)) => *ip,
        None => req.peer_addr().map(|a| a.ip()),
    }
}

/// The client address of a request, as [`TrustedProxies::client`] found it (a request
/// extension set by the request middleware).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

/// The reverse proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`): without
/// them, the client address is the TCP peer and the header is ignored, since any client
/// can send it.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Comma-separated CIDRs or addresses (`10.0.0.0/8, 192.168.1.2, fd00::/8`); empty
    /// for none.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let net = match item.parse::<ipnet::IpNet>() {
                Ok(net) => net,
                Err(_) => item
                    .parse::<IpAddr>()
                    .map(ipnet::IpNet::from)
                    .map_err(|_| {
                        format!("{item:?} is not an address or a CIDR such as 10.0.0.0/8")
                    })?,
            };
            nets.push(net.trunc());
        }
        Ok(Self(nets))
    }

    /// Whether any proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`: `peer` itself unless it is a trusted proxy; then the
    /// `X-Forwarded-For` hops read from the right (the nearest first), skipping trusted
    /// proxies, up to the first address that is not one. A hop that is not an address
    /// stops the walk at the proxy that sent it (a client cannot spoof past the proxies).
    pub fn client<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl DoubleEndedIterator<Item = &'a [u8]>,
    ) -> Option<IpAddr> {
        let mut client = peer?;
        if self.0.is_empty() || !self.trusts(client) {
            return Some(client);
        }
        for value in forwarded_for.rev() {
            let Ok(value) = std::str::from_utf8(value) else {
                return Some(client);
            };
            for hop in value.rsplit(',') {
                let Some(ip) = parse_hop(hop.trim()) else {
                    return Some(client);
                };
                client = ip;
                if !self.trusts(ip) {
                    return Some(client);
                }
            }
        }
        Some(client)
    }
}

/// One `X-Forwarded-For` hop: an address, maybe with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
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

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.2,fd00::/8").unwrap();
        let xff = |v: &'static [&'static str]| v.iter().map(|s| s.as_bytes());
        // Not from a proxy: the peer, whatever the header says.
        assert_eq!(
            proxies.client(ip("203.0.113.9"), xff(&["1.1.1.1"])),
            ip("203.0.113.9")
        );
        // From a proxy: the nearest address that is not a proxy.
        assert_eq!(
            proxies.client(ip("10.1.2.3"), xff(&["6.6.6.6, 198.51.100.7, 10.9.9.9"])),
            ip("198.51.100.7")
        );
        // Several headers are one list; ports and brackets are read.
        assert_eq!(
            proxies.client(ip("192.168.1.2"), xff(&["6.6.6.6", "[2001:db8::1]:443"])),
            ip("2001:db8::1")
        );
        // Only proxies: the farthest. No header: the proxy itself.
        assert_eq!(
            proxies.client(ip("10.0.0.1"), xff(&["10.0.0.2, fd00::1"])),
            ip("10.0.0.2")
        );
        assert_eq!(proxies.client(ip("10.0.0.1"), xff(&[])), ip("10.0.0.1"));
        // Garbage stops at the proxy that passed it on.
        assert_eq!(
            proxies.client(ip("10.0.0.1"), xff(&["7.7.7.7, nonsense"])),
            ip("10.0.0.1")
        );
        // An IPv4 peer seen as IPv6-mapped is still the proxy.
        assert_eq!(
            proxies.client(ip("::ffff:10.0.0.1"), xff(&["198.51.100.7"])),
            ip("198.51.100.7")
        );
        // No proxies: the header is never read.
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.1"), xff(&["1.1.1.1"])),
            ip("10.0.0.1")
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
        assert!(TrustedProxies::parse(" ").unwrap().is_empty());
    }
}
