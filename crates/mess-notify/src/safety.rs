//! Where a notification may go (SSRF defence).
//!
//! Two checks, at two moments:
//! - **At registration** ([`check_url`]): the URL is http(s), well-formed, and its host is
//!   neither a literal link-local / cloud-metadata address (in any spelling the `url` crate
//!   normalises: decimal, octal, hex, IPv4-mapped IPv6) nor a known metadata host name.
//!   Names are not resolved: a name that does not resolve yet is accepted.
//! - **At send time, every time** ([`Policy::check_url`] for IP literals, [`GuardedResolver`]
//!   for names): the addresses actually connected to are checked, so a name that later
//!   points at `169.254.169.254` or, unless private addresses are allowed, at `127.0.0.1`
//!   is refused. Redirects are not followed at all (see `deliver`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
#[cfg(feature = "send")]
use std::{net::SocketAddr, sync::Arc};

#[cfg(feature = "send")]
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Host names that reach a cloud provider's instance metadata service.
const METADATA_HOSTS: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.internal",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
    "metadata.platformequinix.com",
];

/// Parses `raw` and checks what can be checked without resolving names: http or https, a
/// host, no literal link-local or metadata address, no metadata host name. The error is a
/// short reason, safe to show (it never echoes the URL).
pub fn check_url(raw: &str) -> Result<Url, &'static str> {
    let url = Url::parse(raw).map_err(|_| "not a valid URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("only http and https URLs are allowed");
    }
    match url.host() {
        None => Err("the URL has no host"),
        Some(Host::Domain(d)) if is_metadata_host(d) => {
            Err("cloud metadata host names are not allowed")
        }
        Some(Host::Domain(_)) => Ok(url),
        Some(Host::Ipv4(ip)) if always_refused(IpAddr::V4(ip)) => {
            Err("link-local and cloud metadata addresses are not allowed")
        }
        Some(Host::Ipv6(ip)) if always_refused(IpAddr::V6(ip)) => {
            Err("link-local and cloud metadata addresses are not allowed")
        }
        Some(_) => Ok(url),
    }
}

/// True for a known cloud-metadata host name (case-insensitive, trailing dot ignored).
pub fn is_metadata_host(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    METADATA_HOSTS.contains(&h.as_str())
}

/// True for addresses no notification may ever reach: link-local (where cloud metadata
/// services live) and the known metadata addresses, including IPv4 embedded in IPv6.
pub fn always_refused(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (o[0] == 169 && o[1] == 254)
                // Alibaba Cloud's metadata service.
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return always_refused(IpAddr::V4(v4));
            }
            (v6.segments()[0] & 0xffc0) == 0xfe80
                // AWS's IPv6 metadata endpoint.
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

/// True for loopback, private, shared (CGNAT), unspecified, broadcast and multicast
/// addresses: refused at send time unless private destinations are allowed.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || v4.is_broadcast()
                || v4.is_multicast()
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_private(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || v6.is_multicast()
        }
    }
}

/// The IPv4 address an IPv6 address carries, for the forms that reach it: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4
/// (`2002:AABB:CCDD::/48`).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        Some(v4)
    } else if (s[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified())
        || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    {
        Some(tail)
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ))
    } else {
        None
    }
}

/// Why a send was refused before any byte left: its destination is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("destination address not allowed")]
pub struct Refused;

/// The send-time rules: which resolved addresses may be connected to.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Whether loopback and private ranges are allowed (`NOTIFY_ALLOW_PRIVATE`).
    pub allow_private: bool,
}

impl Policy {
    /// Whether `ip` may be connected to.
    pub fn allows(self, ip: IpAddr) -> bool {
        !always_refused(ip) && (self.allow_private || !is_private(ip))
    }

    /// Checks a URL about to be sent to: the registration checks again (a hook's URL is
    /// templated), then its host if it is an IP literal (the resolver is not asked about
    /// literals). Names are checked by [`GuardedResolver`] when connecting.
    pub fn check_url(self, raw: &str) -> Result<Url, Refused> {
        let url = check_url(raw).map_err(|_| Refused)?;
        let literal = match url.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        match literal {
            Some(ip) if !self.allows(ip) => Err(Refused),
            _ => Ok(url),
        }
    }
}

/// A DNS resolver for reqwest that refuses a name when any of its addresses is not
/// allowed by the [`Policy`], so the check covers exactly the addresses connected to.
#[cfg(feature = "send")]
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Policy,
}

#[cfg(feature = "send")]
impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Policy) -> Arc<Self> {
        Arc::new(Self { policy })
    }
}

#[cfg(feature = "send")]
impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if is_metadata_host(&host) {
                return Err(Box::new(Refused) as _);
            }
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.iter().any(|a| !policy.allows(a.ip())) {
                return Err(Box::new(Refused) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_the_metadata_address_is_refused_at_registration() {
        for raw in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/",
            "http://0251.0376.0251.0376/",
            "http://0xa9.0xfe.0xa9.0xfe/",
            "http://0xa9fea9fe/",
            "http://169.254.43518/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[fe80::1]/",
            "http://[FE80::abcd%25eth0]/",
            "http://[fd00:ec2::254]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./",
            "http://metadata/",
            "http://instance-data/",
            "http://100.100.100.200/",
        ] {
            assert!(check_url(raw).is_err(), "{raw} was accepted");
        }
    }

    #[test]
    fn ordinary_urls_and_unresolvable_names_are_accepted_at_registration() {
        for raw in [
            "https://ntfy.sh",
            "https://hooks.slack.com/services/T0/B0/x",
            "https://no-such-host.invalid/notify",
            "http://192.168.1.10:8123/api/webhook/abc",
            "http://127.0.0.1:9000/",
        ] {
            assert!(check_url(raw).is_ok(), "{raw} was refused");
        }
        for raw in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "not a url",
            "https://",
        ] {
            assert!(check_url(raw).is_err(), "{raw} was accepted");
        }
    }

    #[test]
    fn private_ranges_are_refused_at_send_time_unless_allowed() {
        let strict = Policy {
            allow_private: false,
        };
        let home = Policy {
            allow_private: true,
        };
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!strict.allows(ip), "{ip} allowed");
            assert!(home.allows(ip), "{ip} refused with allow_private");
        }
        for ip in [
            "169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.1.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!home.allows(ip), "{ip} allowed");
        }
        for ip in [
            "93.184.216.34",
            "172.32.0.1",
            "2606:4700::1111",
            "100.128.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(strict.allows(ip), "{ip} refused");
        }
        assert_eq!(strict.check_url("http://127.0.0.1:8080/x"), Err(Refused));
        assert_eq!(strict.check_url("http://[::1]/x"), Err(Refused));
        assert!(strict.check_url("https://example.com/x").is_ok());
        assert!(home.check_url("http://127.0.0.1:8080/x").is_ok());
    }

    #[cfg(feature = "send")]
    #[tokio::test]
    async fn the_resolver_refuses_names_pointing_at_refused_addresses() {
        let strict = GuardedResolver::new(Policy {
            allow_private: false,
        });
        let err = strict
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .unwrap();
        assert!(err.downcast_ref::<Refused>().is_some());
        let err = strict
            .resolve("metadata.google.internal".parse().unwrap())
            .await
            .err();
        assert!(err.unwrap().downcast_ref::<Refused>().is_some());
        let home = GuardedResolver::new(Policy {
            allow_private: true,
        });
        let addrs: Vec<_> = home
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty());
    }
}
