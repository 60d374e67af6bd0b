//! Who is asking: the bearer key (`Authorization: Bearer mess_{exchange}_{token}`), the
//! member it names, and the registration token an exchange may require.

use std::collections::HashMap;
use std::sync::Arc;

use mess_core::{ApiKey, ExchangeId, Member};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::port::ExchangePort;

/// A header value as HTTP allows it to be read as text (visible ASCII, space, tab).
fn header_text(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|c| *c == b'\t' || (0x20..0x7f).contains(c))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

/// The bearer key among the request's `Authorization` header values: 401 unless there is
/// exactly one, of the form `Bearer <well-formed key>`.
pub fn bearer<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<ApiKey, ApiError> {
    let header = values.next().ok_or(ApiError::Unauthorized(
        "missing API key: send Authorization: Bearer <key>",
    ))?;
    // Two keys are ambiguous (a proxy may check one, we the other): refuse both.
    if values.next().is_some() {
        return Err(ApiError::Unauthorized(
            "send exactly one Authorization header",
        ));
    }
    let token = header_text(header)
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized(
            "send the API key as Authorization: Bearer <key>",
        ))?;
    ApiKey::parse(token).ok_or(ApiError::Unauthorized("invalid API key"))
}

/// The member whose key `key` is, on its own exchange `x`, asking about the exchange in
/// the path: 401 for an unknown key, 400 for a malformed exchange id, 403 for a key of
/// another exchange. Records the member as seen.
pub fn member_of<P: ExchangePort>(
    x: &P,
    key: &ApiKey,
    path_exchange: &str,
) -> Result<Arc<Member>, ApiError> {
    let member = x
        .read(|s| s.authenticate(key).cloned())
        .ok_or(ApiError::Unauthorized("invalid API key"))?;
    if ExchangeId::parse(path_exchange)? != *x.id() {
        return Err(ApiError::Forbidden(
            "this API key belongs to another exchange".into(),
        ));
    }
    x.touch(&member.executor_id, x.now());
    Ok(member)
}

/// Who may register.
#[derive(Debug, Clone, Default)]
pub struct RegistrationPolicy {
    /// `REGISTRATION_TOKEN`: when set, `/register` on any exchange requires it.
    pub token: Option<String>,
    /// `REGISTRATION_TOKENS` (`home=abc,office=def`): per-exchange tokens, which win over
    /// the global one for their exchange.
    pub per_exchange: HashMap<String, String>,
}

impl RegistrationPolicy {
    /// Parses `REGISTRATION_TOKENS` (`exchange=token,...`) beside `REGISTRATION_TOKEN`.
    pub fn new(token: Option<String>, per_exchange: Option<&str>) -> Self {
        let per_exchange = per_exchange
            .unwrap_or_default()
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .collect();
        Self {
            token: token.filter(|t| !t.is_empty()),
            per_exchange,
        }
    }

    /// Checks the token a registration carries (`X-Registration-Token: <token>`, else
    /// `Authorization: Bearer <token>`) for `exchange`: 401 when one is needed and it is
    /// missing or wrong. Compared by hash in constant time.
    pub fn check(
        &self,
        exchange: &str,
        registration_token: Option<&[u8]>,
        authorization: Option<&[u8]>,
    ) -> Result<(), ApiError> {
        let Some(expected) = self.per_exchange.get(exchange).or(self.token.as_ref()) else {
            return Ok(());
        };
        let given = registration_token
            .and_then(header_text)
            .or_else(|| {
                authorization
                    .and_then(header_text)
                    .and_then(|v| v.strip_prefix("Bearer "))
            })
            .ok_or(ApiError::Unauthorized(
                "this exchange requires a registration token",
            ))?;
        let (a, b) = (
            Sha256::digest(given.as_bytes()),
            Sha256::digest(expected.as_bytes()),
        );
        let same = a
            .iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0;
        if same {
            Ok(())
        } else {
            Err(ApiError::Unauthorized("invalid registration token"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_key_needs_exactly_one_well_formed_header() {
        let none: [&[u8]; 0] = [];
        assert!(matches!(
            bearer(none.into_iter()),
            Err(ApiError::Unauthorized(m)) if m.starts_with("missing")
        ));
        let key = b"Bearer mess_home_0123456789abcdef0123456789abcdef".as_slice();
        assert!(matches!(
            bearer([key, key].into_iter()),
            Err(ApiError::Unauthorized(m)) if m.contains("exactly one")
        ));
        assert!(matches!(
            bearer([b"Basic abc".as_slice()].into_iter()),
            Err(ApiError::Unauthorized(m)) if m.starts_with("send the API key")
        ));
        assert!(matches!(
            bearer([b"Bearer \xff".as_slice()].into_iter()),
            Err(ApiError::Unauthorized(m)) if m.starts_with("send the API key")
        ));
        assert!(matches!(
            bearer([b"Bearer nope".as_slice()].into_iter()),
            Err(ApiError::Unauthorized("invalid API key"))
        ));
    }

    #[test]
    fn a_per_exchange_token_wins_over_the_global_one() {
        let p = RegistrationPolicy::new(Some("global".into()), Some("home=h1, office = o1"));
        assert!(p.check("home", Some(b"h1"), None).is_ok());
        assert!(p.check("home", Some(b"global"), None).is_err());
        assert!(p.check("garage", Some(b"global"), None).is_ok());
        assert!(p.check("office", None, Some(b"Bearer o1")).is_ok());
        assert!(matches!(
            p.check("office", None, None),
            Err(ApiError::Unauthorized(m)) if m.contains("requires")
        ));
        assert!(
            RegistrationPolicy::default()
                .check("home", None, None)
                .is_ok()
        );
    }
}
