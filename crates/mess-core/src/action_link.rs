//! One-tap actions from a notification: signed links that carry no API key.
//!
//! A notification's "Claim" button is a link to `/a/{token}` (outside the API prefix: it
//! carries no Bearer key, protocol.md "Browsers and links"). The token names the exchange,
//! the member it was sent to, the request and the request's version when it was offered,
//! and when it expires; it is signed with HMAC-SHA256 under a key the exchange keeps in its
//! storage. It is good for one claim: the claim changes the request, and a token whose
//! version is not the request's current one (or whose request is no longer `pending`) is
//! refused. A GET of the link never changes anything (link previews and scanners fetch
//! links): it shows what the link would do; the change is a POST.
//!
//! Token: `base64url(payload) "." base64url(first 16 bytes of HMAC-SHA256(key, payload))`,
//! payload `1|{exchange}|{member}|{ref}|{version}|{expires unix seconds}|claim`.

use crate::ids::{ExchangeId, ExecutorId, ThreadRef};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How long a claim link stays good when the request does not change: a week.
pub const LINK_LIFETIME_SECS: i64 = 7 * 24 * 3600;

/// The storage name of the signing key (`secrets/action-links.key`).
pub const KEY_NAME: &str = "action-links.key";

/// Bytes of a signing key.
pub const KEY_BYTES: usize = 32;

/// Bytes of the signature kept in a token (128 bits: forging one is out of reach).
const TAG_BYTES: usize = 16;

/// The longest token read (anything longer is refused before it is decoded).
pub const MAX_TOKEN_CHARS: usize = 600;

/// What a link lets its holder do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionLink {
    /// The exchange.
    pub exchange: ExchangeId,
    /// The member the link was sent to, who acts through it.
    pub member: ExecutorId,
    /// The request.
    pub thread_ref: ThreadRef,
    /// The request's version when it was offered: the link is good only while it is still
    /// that version.
    pub version: u64,
    /// When the link stops working, in Unix seconds.
    pub expires: i64,
}

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token, or not one this exchange signed (or for another exchange).
    #[error("this link is not valid")]
    Invalid,
    /// Past its expiry.
    #[error("this link has expired: open the request in the app")]
    Expired,
}

fn tag(key: &[u8], payload: &[u8]) -> [u8; TAG_BYTES] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(payload);
    let full = mac.finalize().into_bytes();
    let mut out = [0; TAG_BYTES];
    out.copy_from_slice(&full[..TAG_BYTES]);
    out
}

impl ActionLink {
    /// The claim link of `thread_ref` at `version` for `member`, good for
    /// [`LINK_LIFETIME_SECS`] from `now_secs`.
    pub fn claim(
        exchange: ExchangeId,
        member: ExecutorId,
        thread_ref: ThreadRef,
        version: u64,
        now_secs: i64,
    ) -> Self {
        Self {
            exchange,
            member,
            thread_ref,
            version,
            expires: now_secs.saturating_add(LINK_LIFETIME_SECS),
        }
    }

    fn payload(&self) -> String {
        format!(
            "1|{}|{}|{}|{}|{}|claim",
            self.exchange, self.member, self.thread_ref, self.version, self.expires
        )
    }

    /// The signed token.
    pub fn sign(&self, key: &[u8]) -> String {
        let payload = self.payload();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(tag(key, payload.as_bytes()))
        )
    }

    /// The exchange a token names, unchecked: for routing it to the replica that can check
    /// it ([`ActionLink::verify`]).
    pub fn exchange_of(token: &str) -> Option<ExchangeId> {
        if token.len() > MAX_TOKEN_CHARS {
            return None;
        }
        let payload = URL_SAFE_NO_PAD.decode(token.split_once('.')?.0).ok()?;
        let text = std::str::from_utf8(&payload).ok()?;
        ExchangeId::parse(text.split('|').nth(1)?).ok()
    }

    /// The link a token carries, if `key` signed it and it has not expired at `now_secs`.
    pub fn verify(key: &[u8], token: &str, now_secs: i64) -> Result<Self, LinkError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(LinkError::Invalid);
        }
        let (payload, sig) = token.split_once('.').ok_or(LinkError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| LinkError::Invalid)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| LinkError::Invalid)?;
        if sig.len() != TAG_BYTES {
            return Err(LinkError::Invalid);
        }
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(&payload);
        // A constant-time comparison of the kept prefix of the signature.
        mac.verify_truncated_left(&sig)
            .map_err(|_| LinkError::Invalid)?;
        let text = std::str::from_utf8(&payload).map_err(|_| LinkError::Invalid)?;
        let parts: Vec<&str> = text.split('|').collect();
        let ["1", exchange, member, thread_ref, version, expires, "claim"] = parts[..] else {
            return Err(LinkError::Invalid);
        };
        let link = Self {
            exchange: ExchangeId::parse(exchange).map_err(|_| LinkError::Invalid)?,
            member: ExecutorId::parse(member).map_err(|_| LinkError::Invalid)?,
            thread_ref: ThreadRef::parse(thread_ref).map_err(|_| LinkError::Invalid)?,
            version: version.parse().map_err(|_| LinkError::Invalid)?,
            expires: expires.parse().map_err(|_| LinkError::Invalid)?,
        };
        if now_secs >= link.expires {
            return Err(LinkError::Expired);
        }
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> ActionLink {
        ActionLink::claim(
            ExchangeId::parse("home").unwrap(),
            ExecutorId::parse("phone").unwrap(),
            ThreadRef::parse("2026-12-06-AB12").unwrap(),
            3,
            1_000,
        )
    }

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let key = [7u8; KEY_BYTES];
        let token = link().sign(&key);
        assert!(token.len() < MAX_TOKEN_CHARS);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "URL-safe: {token}"
        );
        assert_eq!(ActionLink::verify(&key, &token, 1_001), Ok(link()));
        assert_eq!(
            ActionLink::verify(&key, &token, 1_000 + LINK_LIFETIME_SECS),
            Err(LinkError::Expired)
        );
    }

    #[test]
    fn forged_tampered_and_foreign_links_are_refused() {
        let key = [7u8; KEY_BYTES];
        let token = link().sign(&key);
        // Another exchange's key (or a guess).
        assert_eq!(
            ActionLink::verify(&[8u8; KEY_BYTES], &token, 1_001),
            Err(LinkError::Invalid)
        );
        // The payload changed (another member, a later expiry) under the same signature.
        let (_, sig) = token.split_once('.').unwrap();
        let mut other = link();
        other.member = ExecutorId::parse("thief").unwrap();
        let forged = format!(
            "{}.{sig}",
            URL_SAFE_NO_PAD.encode(other.payload().as_bytes())
        );
        assert_eq!(
            ActionLink::verify(&key, &forged, 1_001),
            Err(LinkError::Invalid)
        );
        // A shortened signature, garbage, an empty token, a huge one.
        let short = &token[..token.len() - 4];
        for bad in [short, "x", "", "a.b", &"a".repeat(5000)] {
            assert_eq!(
                ActionLink::verify(&key, bad, 1_001),
                Err(LinkError::Invalid),
                "{bad}"
            );
        }
    }
}
