//! CORS, the same on both hosts: which origins may call the API (`CORS_ORIGINS`), and the
//! methods and headers a preflight allows (protocol.md, "Browsers and links").

/// The methods a preflight allows.
pub const ALLOW_METHODS: &str = "GET, HEAD, POST, PATCH, DELETE, OPTIONS";
/// The request headers a preflight allows.
pub const ALLOW_HEADERS: &str = "Authorization, Content-Type, X-Registration-Token, Idempotency-Key, Last-Event-ID, If-None-Match, X-Request-Id";
/// The response headers a browser script may read.
pub const EXPOSE_HEADERS: &str = "ETag, Idempotent-Replayed, X-Request-Id, Retry-After";
/// How long a browser may cache a preflight's answer, in seconds.
pub const MAX_AGE: &str = "86400";

/// Which browser origins may call the API (`CORS_ORIGINS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: any origin (keys are bearer tokens, never cookies, so this is safe).
    Any,
    /// Only these origins.
    List(Vec<String>),
}

impl CorsOrigins {
    /// Parses a comma-separated list; `*` (or empty) means any.
    pub fn parse(s: &str) -> Self {
        let list: Vec<String> = s
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        if list.is_empty() || list.iter().any(|o| o == "*") {
            CorsOrigins::Any
        } else {
            CorsOrigins::List(list)
        }
    }

    /// The `Access-Control-Allow-Origin` for a request from `origin`, if it is allowed.
    pub fn allow<'a>(&self, origin: Option<&'a str>) -> Option<&'a str> {
        match (self, origin) {
            (CorsOrigins::Any, _) => Some("*"),
            (CorsOrigins::List(list), Some(o)) => list.iter().any(|a| a == o).then_some(o),
            (CorsOrigins::List(_), None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_origin_unless_a_list_is_given() {
        assert_eq!(CorsOrigins::parse(""), CorsOrigins::Any);
        assert_eq!(CorsOrigins::parse("https://a.example, *"), CorsOrigins::Any);
        let list = CorsOrigins::parse("https://a.example/, https://b.example");
        assert_eq!(
            list.allow(Some("https://a.example")),
            Some("https://a.example")
        );
        assert_eq!(list.allow(Some("https://c.example")), None);
        assert_eq!(list.allow(None), None);
        assert_eq!(CorsOrigins::Any.allow(None), Some("*"));
    }

    #[test]
    fn a_browser_may_send_and_read_the_headers_the_protocol_lists() {
        for h in [
            "Authorization",
            "Content-Type",
            "X-Registration-Token",
            "Idempotency-Key",
            "Last-Event-ID",
            "If-None-Match",
        ] {
            assert!(ALLOW_HEADERS.split(", ").any(|a| a == h), "{h}");
        }
        for h in ["ETag", "Idempotent-Replayed", "X-Request-Id", "Retry-After"] {
            assert!(EXPOSE_HEADERS.split(", ").any(|a| a == h), "{h}");
        }
    }
}
