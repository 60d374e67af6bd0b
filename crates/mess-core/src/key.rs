//! API keys: `mess_{exchange}_{64 hex}`, shown once, stored only as a SHA-256 hash.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::clock::Entropy;
use crate::ids::ExchangeId;

/// A bearer key as the client holds it. Its `Debug` output is redacted so that it never
/// reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Draws a new key for `exchange` from `entropy` (32 bytes, so 256 bits).
    pub fn generate(exchange: &ExchangeId, entropy: &dyn Entropy) -> Self {
        let mut secret = [0u8; 32];
        entropy.fill(&mut secret);
        Self(format!("mess_{exchange}_{}", hex::encode(secret)))
    }

    /// Parses a presented key: `mess_`, a valid exchange id, `_`, then at least 32
    /// lower-case hex characters. Returns `None` for anything else (the caller answers 401).
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("mess_")?;
        let (exchange, token) = rest.split_once('_')?;
        ExchangeId::parse(exchange).ok()?;
        let token_ok = token.len() >= 32
            && token.len() <= 128
            && token
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        token_ok.then(|| Self(s.to_owned()))
    }

    /// The exchange this key was issued for (its prefix).
    pub fn exchange(&self) -> ExchangeId {
        let rest = &self.0["mess_".len()..];
        let end = rest.find('_').unwrap_or(rest.len());
        ExchangeId::parse(&rest[..end]).expect("checked when the key was built")
    }

    /// The key's SHA-256 hash: the only form that is ever stored.
    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The key itself, to hand to the member once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// The SHA-256 of an API key, stored as 64 hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Compares in constant time, so that timing does not reveal how much of a hash matched.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", &hex::encode(self.0)[..8])
    }
}

impl Serialize for KeyHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(KeyHash(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::OsEntropy;

    #[test]
    fn generated_keys_parse_and_name_their_exchange() {
        let home = ExchangeId::parse("home-2").unwrap();
        let key = ApiKey::generate(&home, &OsEntropy);
        assert!(key.expose().starts_with("mess_home-2_"));
        assert_eq!(key.expose().len(), "mess_home-2_".len() + 64);
        let parsed = ApiKey::parse(key.expose()).unwrap();
        assert_eq!(parsed.exchange(), home);
        assert!(parsed.hash().ct_eq(&key.hash()));
        assert_ne!(ApiKey::generate(&home, &OsEntropy), key);
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        for bad in [
            "",
            "mess_home",
            "mess_home_abc",
            "mess_Home_0123456789abcdef0123456789abcdef",
            "mess_home_0123456789ABCDEF0123456789ABCDEF",
            "Mess_home_0123456789abcdef0123456789abcdef",
            "mess__0123456789abcdef0123456789abcdef",
        ] {
            assert!(ApiKey::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = ApiKey::generate(&ExchangeId::parse("home").unwrap(), &OsEntropy);
        assert!(!format!("{key:?}").contains(&key.expose()[10..]));
    }
}
