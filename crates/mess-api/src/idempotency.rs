//! `Idempotency-Key` on `POST .../requests` and `PATCH .../requests/{ref}`: the same member
//! sending the same key to the same route again within a day gets the first answer again
//! (`Idempotent-Replayed: true`) and nothing new happens; with a different body, 422.
//!
//! The scope of a key is (exchange, member, method, route, key), hashed into one id. The
//! host stores each answer ([`Answer`]) durably before it is sent, and makes a retry that
//! arrives while the first is still running wait for it ([`ExchangePort::idempotency_begin`]).

use mess_core::{ExchangeId, ExecutorId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::port::ExchangePort;
use crate::reply::Reply;

/// How long an answer is kept and replayed.
pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// The header a replayed answer carries.
pub const REPLAYED: &str = "Idempotent-Replayed";

/// A key's whole scope, hashed: lowercase hex of SHA-256.
pub type ScopeId = String;

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The scope it answers (also its storage name).
    pub scope: ScopeId,
    /// SHA-256 (hex) of the request body as parsed JSON with sorted keys.
    pub body_digest: String,
    /// When it was made, in Unix milliseconds.
    pub at_ms: i64,
    /// The answer's status.
    pub status: u16,
    /// Its content type.
    pub content_type: String,
    /// Its body, as UTF-8 (every answer of these routes is JSON).
    pub body: String,
}

impl Answer {
    /// Whether it is still replayed at `now`.
    pub fn live(&self, now: Timestamp) -> bool {
        now.unix_millis() - self.at_ms < RETENTION_MS
    }

    fn reply(&self) -> Reply {
        Reply {
            status: self.status,
            content_type: self.content_type.clone(),
            headers: vec![(REPLAYED, "true".into())],
            body: self.body.clone().into_bytes(),
        }
    }
}

/// What a host answers [`ExchangePort::idempotency_begin`].
#[derive(Debug)]
pub enum Begin {
    /// No answer is stored under this scope: the caller runs the request, then must call
    /// [`ExchangePort::idempotency_end`] (with the answer, or `None` to give the scope up).
    Run,
    /// The stored answer.
    Replay(Answer),
}

/// Checks an `Idempotency-Key` header: 1 to 255 printable ASCII characters.
pub fn parse_key(raw: &[u8]) -> Result<&str, ApiError> {
    if raw.is_empty() || raw.len() > MAX_KEY_LEN || !raw.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(ApiError::bad(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} printable ASCII characters"
        )));
    }
    // Checked above: ASCII.
    std::str::from_utf8(raw).map_err(|_| ApiError::bad("Idempotency-Key must be ASCII"))
}

/// The scope id of a key: exchange, member, method, route and key, hashed.
pub fn scope(
    exchange: &ExchangeId,
    member: &ExecutorId,
    method: &str,
    route: &str,
    key: &str,
) -> ScopeId {
    let mut h = Sha256::new();
    for part in [exchange.as_str(), member.as_str(), method, route, key] {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    hex(&h.finalize())
}

/// The digest of a body as parsed JSON: objects' keys sorted, so that two encodings of the
/// same value compare equal.
pub fn body_digest(body: &Value) -> String {
    fn canonical(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), canonical(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
            other => other.clone(),
        }
    }
    let bytes = serde_json::to_vec(&canonical(body)).unwrap_or_default();
    hex(&Sha256::digest(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether an answer is kept for replay: successes and the client's own mistakes, but not
/// a refusal that may not hold next time (401, 403, 429) nor a server failure.
fn kept(status: u16) -> bool {
    (200..300).contains(&status)
        || ((400..500).contains(&status) && ![401, 403, 429].contains(&status))
}

/// Runs `route` under the `Idempotency-Key` header `key` (if any) of `member`: the first
/// time for real, later by replaying the stored answer.
pub async fn idempotent<P: ExchangePort>(
    x: &P,
    member: &ExecutorId,
    method: &str,
    route: &str,
    key: Option<&[u8]>,
    body: Value,
    run: impl AsyncFnOnce(Value) -> Result<Reply, ApiError>,
) -> Result<Reply, ApiError> {
    let Some(key) = key else {
        return run(body).await;
    };
    let key = parse_key(key)?;
    let scope = scope(x.id(), member, method, route, key);
    let digest = body_digest(&body);
    match x.idempotency_begin(&scope).await {
        Begin::Replay(answer) if answer.body_digest == digest => Ok(answer.reply()),
        Begin::Replay(_) => Err(ApiError::IdempotencyKeyReused),
        Begin::Run => {
            // Released if this future is dropped before the answer is stored.
            let mut reservation = Reservation {
                x,
                scope: &scope,
                held: true,
            };
            let result = run(body).await;
            let reply = match &result {
                Ok(reply) => reply.clone(),
                Err(e) => e.reply(),
            };
            if kept(reply.status) {
                let answer = Answer {
                    scope: scope.clone(),
                    body_digest: digest,
                    at_ms: x.now().unix_millis(),
                    status: reply.status,
                    content_type: reply.content_type.clone(),
                    body: String::from_utf8_lossy(&reply.body).into_owned(),
                };
                x.idempotency_store(answer).await;
                reservation.held = false;
            }
            result
        }
    }
}

/// A scope reserved by [`Begin::Run`]: released when dropped still held.
struct Reservation<'a, P: ExchangePort> {
    x: &'a P,
    scope: &'a ScopeId,
    held: bool,
}

impl<P: ExchangePort> Drop for Reservation<'_, P> {
    fn drop(&mut self) {
        if self.held {
            self.x.idempotency_release(self.scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_1_to_255_printable_ascii() {
        assert_eq!(parse_key(b"abc-123").unwrap(), "abc-123");
        assert!(parse_key(&[b'a'; 255]).is_ok());
        for bad in [
            &b""[..],
            &[b'a'; 256],
            b"tab\there",
            b"caf\xc3\xa9",
            b"nl\n",
        ] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_body_digest_ignores_key_order_but_not_values() {
        let a = body_digest(&json!({"intent": "x", "context": {"a": 1, "b": [1, 2]}}));
        let b = body_digest(&json!({"context": {"b": [1, 2], "a": 1}, "intent": "x"}));
        let c = body_digest(&json!({"context": {"b": [2, 1], "a": 1}, "intent": "x"}));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn scopes_differ_by_every_part() {
        let x = ExchangeId::parse("home").unwrap();
        let y = ExchangeId::parse("work").unwrap();
        let m = ExecutorId::parse("alice").unwrap();
        let n = ExecutorId::parse("bob").unwrap();
        let base = scope(&x, &m, "POST", "requests", "k");
        assert_eq!(base, scope(&x, &m, "POST", "requests", "k"));
        for other in [
            scope(&y, &m, "POST", "requests", "k"),
            scope(&x, &n, "POST", "requests", "k"),
            scope(&x, &m, "PATCH", "requests", "k"),
            scope(&x, &m, "POST", "requests/A", "k"),
            scope(&x, &m, "POST", "requests", "k2"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn successes_and_client_errors_are_kept_but_not_auth_limits_or_failures() {
        for s in [200, 201, 400, 404, 409, 413, 422] {
            assert!(kept(s), "{s}");
        }
        for s in [401, 403, 429, 500, 503] {
            assert!(!kept(s), "{s}");
        }
    }
}
