//! Attachments kept once, outside the event log and the threads' memory (protocol.md,
//! "Attachments").
//!
//! A `data:` URI of at least [`MIN_LEN`] characters that a client sends in a request or a
//! message is stored as a content-addressed blob (`blobs/exchange={id}/{sha256}`, see
//! [`crate::layout::blob_path`]) and replaced, in what the exchange records, by a
//! reference: the string `mess-blob:sha256:<hex>:<media>`, `<media>` being what stood
//! between `data:` and `,` (`image/jpeg;base64`). Reads put the `data:` URI back
//! ([`restore_json`]): the very string the client sent, since only canonical base64 (which
//! encodes back to itself) is taken out.
//!
//! Clients may not send strings (or object keys) that start with [`PREFIX`]: every
//! reference in a thread is one the exchange made from bytes the sender had, so no member
//! can name a blob of a thread it cannot read.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::DomainError;

/// What every reference starts with.
pub const PREFIX: &str = "mess-blob:sha256:";

/// The shortest `data:` URI kept as a blob (shorter ones stay inline: a stored object
/// costs more than it saves).
pub const MIN_LEN: usize = 4096;

/// The bytes of one attachment a client sent, to be stored before its reference is
/// committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The SHA-256 of the bytes, lowercase hex: the blob's name.
    pub sha256: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A reference, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference<'a> {
    /// The blob's SHA-256, lowercase hex.
    pub sha256: &'a str,
    /// What stood between `data:` and `,` (`image/jpeg;base64`).
    pub media: &'a str,
}

impl Reference<'_> {
    /// The attachment's MIME type (`image/jpeg`), as the attachment route serves it.
    pub fn mime(&self) -> &str {
        let mime = self.media.strip_suffix(";base64").unwrap_or(self.media);
        if mime.is_empty() {
            "text/plain;charset=US-ASCII"
        } else {
            mime
        }
    }

    /// The `data:` URI this reference stands for, given the blob's bytes.
    pub fn data_uri(&self, bytes: &[u8]) -> String {
        let mut out = String::with_capacity(6 + self.media.len() + bytes.len().div_ceil(3) * 4);
        out.push_str("data:");
        out.push_str(self.media);
        out.push(',');
        STANDARD.encode_string(bytes, &mut out);
        out
    }
}

/// The reference `s` is, if it is one.
pub fn parse(s: &str) -> Option<Reference<'_>> {
    let rest = s.strip_prefix(PREFIX)?;
    let (sha256, media) = rest.split_at_checked(64)?;
    let media = media.strip_prefix(':')?;
    let hex_ok = sha256
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex_ok && media_ok(media)).then_some(Reference { sha256, media })
}

/// Whether a string is an attachment: a `data:` URI or a reference (the attachment route
/// numbers these, in document order).
pub fn is_attachment(s: &str) -> bool {
    s.starts_with("data:") || s.starts_with(PREFIX)
}

/// The characters a kept media part may hold: a MIME type and its parameters, nothing
/// JSON would escape, no `:` or `,`.
fn media_ok(media: &str) -> bool {
    media.ends_with(";base64")
        && media.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                        | b'/'
                        | b';'
                        | b'='
                        | b'-'
                )
        })
}

/// Takes the blobs out of a client's JSON body: each `data:` URI of at least [`MIN_LEN`]
/// characters in canonical base64 is replaced by its reference, and its bytes returned
/// (each distinct blob once). The top-level fields named in `keep` are left alone (a
/// request's `intent` is shown in lists, which never restore references). A string or key
/// that starts with [`PREFIX`] is refused.
pub fn extract(v: &mut Value, keep: &[&str]) -> Result<Vec<Blob>, DomainError> {
    let mut out = Vec::new();
    match v {
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                reserved(k)?;
                if !keep.contains(&k.as_str()) {
                    walk(item, &mut out)?;
                }
            }
        }
        other => walk(other, &mut out)?,
    }
    Ok(out)
}

fn reserved(s: &str) -> Result<(), DomainError> {
    if s.starts_with(PREFIX) {
        return Err(DomainError::Invalid(format!(
            "strings starting with \"{PREFIX}\" are reserved for stored attachments"
        )));
    }
    Ok(())
}

fn walk(v: &mut Value, out: &mut Vec<Blob>) -> Result<(), DomainError> {
    match v {
        Value::String(s) => {
            reserved(s)?;
            if s.len() >= MIN_LEN
                && let Some((reference, blob)) = take(s)
            {
                if !out.iter().any(|b| b.sha256 == blob.sha256) {
                    out.push(blob);
                }
                *s = reference;
            }
        }
        Value::Array(items) => {
            for i in items {
                walk(i, out)?;
            }
        }
        Value::Object(map) => {
            for (k, i) in map.iter_mut() {
                reserved(k)?;
                walk(i, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The reference and blob of one `data:` URI, when it can be restored byte for byte.
fn take(uri: &str) -> Option<(String, Blob)> {
    let (media, data) = uri.strip_prefix("data:")?.split_once(',')?;
    if !media_ok(media) {
        return None;
    }
    // The strict engine refuses white space, missing padding and stray bits: what it
    // decodes encodes back to exactly `data`.
    let bytes = STANDARD.decode(data).ok()?;
    let sha256 = sha256_hex(&bytes);
    let reference = format!("{PREFIX}{sha256}:{media}");
    Some((reference, Blob { sha256, bytes }))
}

/// The SHA-256 of `bytes`, lowercase hex (a blob's name, an attachment's `ETag`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The blobs a stored JSON text refers to (lowercase hex, each once), in order.
pub fn referenced(json: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for (_, _, r) in references(json) {
        if !out.contains(&r.sha256) {
            out.push(r.sha256);
        }
    }
    out
}

/// Each reference in a compact JSON text as a whole string value: where its opening quote
/// is, where its closing quote ends, and what it says. A quote counts only where a value
/// starts (the text's start, or after `[`, `,` or `:`): inside a string a quote is escaped.
fn references(json: &str) -> impl Iterator<Item = (usize, usize, Reference<'_>)> {
    let needle = "\"mess-blob:sha256:";
    let bytes = json.as_bytes();
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(i) = json[from..].find(needle).map(|i| i + from) {
            from = i + needle.len();
            if i > 0 && !matches!(bytes[i - 1], b'[' | b',' | b':') {
                continue;
            }
            let Some(len) = json[i + 1..].find('"') else {
                continue;
            };
            let end = i + 1 + len + 1;
            if let Some(r) = parse(&json[i + 1..end - 1]) {
                from = end;
                return Some((i, end, r));
            }
        }
        None
    })
}

/// A compact JSON text with each reference replaced by the `data:` URI it stands for;
/// `bytes` gives a blob's bytes by SHA-256 (a blob it cannot give leaves the reference as
/// it is). Text without references is returned as it is, without a copy.
pub fn restore_json<'a, B: AsRef<[u8]>>(
    json: &'a str,
    bytes: impl Fn(&str) -> Option<B>,
) -> std::borrow::Cow<'a, str> {
    restore_with(json, bytes, |b, out| {
        STANDARD.encode_string(b.as_ref(), out);
    })
}

/// [`restore_json`] from blobs already in base64 (`base64` gives a blob's, by SHA-256):
/// a host that caches the encoded form does not encode a photo on every read.
pub fn restore_json_base64<'a, S: AsRef<str>>(
    json: &'a str,
    base64: impl Fn(&str) -> Option<S>,
) -> std::borrow::Cow<'a, str> {
    restore_with(json, base64, |s, out| out.push_str(s.as_ref()))
}

/// A blob's bytes in the base64 of its `data:` URI (standard alphabet, padded).
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn restore_with<'a, P>(
    json: &'a str,
    payload: impl Fn(&str) -> Option<P>,
    emit: impl Fn(&P, &mut String),
) -> std::borrow::Cow<'a, str> {
    let mut out = String::new();
    let mut last = 0;
    for (start, end, r) in references(json) {
        let Some(p) = payload(r.sha256) else {
            continue;
        };
        if out.is_empty() {
            out.reserve(json.len() * 2);
        }
        out.push_str(&json[last..start]);
        out.push_str("\"data:");
        out.push_str(r.media);
        out.push(',');
        emit(&p, &mut out);
        out.push('"');
        last = end;
    }
    if last == 0 {
        return std::borrow::Cow::Borrowed(json);
    }
    out.push_str(&json[last..]);
    std::borrow::Cow::Owned(out)
}

/// Replaces each reference under `v` by the `data:` URI it stands for (see
/// [`restore_json`]), in a parsed value (an event's payload, for an export).
pub fn restore_value<B: AsRef<[u8]>>(v: &mut Value, bytes: &impl Fn(&str) -> Option<B>) {
    match v {
        Value::String(s) => {
            if let Some(r) = parse(s)
                && let Some(b) = bytes(r.sha256)
            {
                *s = r.data_uri(b.as_ref());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| restore_value(i, bytes)),
        Value::Object(map) => map.values_mut().for_each(|i| restore_value(i, bytes)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn photo(n: usize) -> (Vec<u8>, String) {
        let bytes: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        let uri = format!("data:image/jpeg;base64,{}", STANDARD.encode(&bytes));
        (bytes, uri)
    }

    #[test]
    fn large_data_uris_become_references_and_come_back_byte_for_byte() {
        let (bytes, uri) = photo(10_000);
        let (_, small) = photo(100);
        let mut body = json!({
            "intent": uri.clone(),
            "mess": [{"response": {"content": [uri.clone(), small.clone(), {"image": uri.clone()}]}}],
        });
        let original = body.clone();
        let blobs = extract(&mut body, &["intent"]).unwrap();
        assert_eq!(blobs.len(), 1, "the same bytes are one blob");
        assert_eq!(blobs[0].bytes, bytes);
        assert_eq!(body["intent"], json!(uri), "kept fields stay inline");
        let content = &body["mess"][0]["response"]["content"];
        let reference = content[0].as_str().unwrap();
        assert!(reference.starts_with(PREFIX), "{reference}");
        assert_eq!(content[1], json!(small), "small ones stay inline");
        assert_eq!(content[2]["image"], json!(reference));
        let stored = serde_json::to_string(&body).unwrap();
        let mess = serde_json::to_string(&body["mess"]).unwrap();
        assert!(mess.len() < 1000, "{}", mess.len());
        assert_eq!(referenced(&stored), vec![blobs[0].sha256.as_str()]);

        let store: HashMap<String, Vec<u8>> = blobs
            .iter()
            .map(|b| (b.sha256.clone(), b.bytes.clone()))
            .collect();
        let restored = restore_json(&stored, |h| store.get(h));
        assert_eq!(serde_json::from_str::<Value>(&restored).unwrap(), original);
        let mut value = body.clone();
        restore_value(&mut value, &|h: &str| store.get(h));
        assert_eq!(value, original);
    }

    #[test]
    fn only_uris_that_restore_exactly_are_taken() {
        let (_, uri) = photo(10_000);
        let padded_wrong = format!("{}\n", uri);
        let not_base64 = format!("data:text/plain,{}", "a".repeat(5000));
        let odd_media = uri.replacen("image/jpeg", "image/jpeg;name=\"x\"", 1);
        for s in [padded_wrong, not_base64, odd_media] {
            let mut v = json!([s.clone()]);
            assert!(extract(&mut v, &[]).unwrap().is_empty(), "{}", &s[..40]);
            assert_eq!(v, json!([s]));
        }
    }

    #[test]
    fn clients_cannot_send_references() {
        let (_, uri) = photo(10_000);
        let mut body = json!({"mess": [{"response": {"content": [uri]}}]});
        extract(&mut body, &[]).unwrap();
        let forged = body.clone();
        for mut bad in [
            forged,
            json!({"context": [format!("{PREFIX}x")]}),
            json!({"x": {format!("{PREFIX}{}:image/png;base64", "0".repeat(64)): 1}}),
        ] {
            let err = extract(&mut bad, &[]).unwrap_err();
            assert!(err.to_string().contains("reserved"), "{err}");
        }
    }

    #[test]
    fn quoted_look_alikes_inside_strings_are_not_references() {
        let r = format!("{PREFIX}{}:image/png;base64", "a".repeat(64));
        let text = serde_json::to_string(&json!({
            "a": format!("say \"{r}\""),
            "b": [r.clone()],
            "c": r.clone(),
        }))
        .unwrap();
        let found: Vec<(usize, usize)> = references(&text).map(|(s, e, _)| (s, e)).collect();
        assert_eq!(found.len(), 2, "{text}");
        let restored = restore_json(&text, |_| Some(b"hi".to_vec()));
        let v: Value = serde_json::from_str(&restored).unwrap();
        assert_eq!(v["b"][0], json!("data:image/png;base64,aGk="));
        assert_eq!(v["c"], json!("data:image/png;base64,aGk="));
        assert_eq!(v["a"], json!(format!("say \"{r}\"")));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Leaves a client might send: text with quotes, backslashes and look-alikes of a
        /// reference inside it, numbers, small and large data: URIs (large ones in
        /// canonical base64 or not).
        fn leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                "[a-z \"\\\\é🚪:,\\[\\]{}]{0,12}".prop_map(Value::from),
                "[a-z]{0,4}".prop_map(|s| Value::from(format!("x\"{PREFIX}{s}"))),
                any::<i64>().prop_map(Value::from),
                (proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|b| Value::from(format!(
                    "data:image/png;base64,{}",
                    STANDARD.encode(b)
                ))),
                (3100usize..3300, any::<u8>(), any::<bool>()).prop_map(|(n, seed, canonical)| {
                    let bytes: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(seed | 1)).collect();
                    let mut uri = format!("data:image/jpeg;base64,{}", STANDARD.encode(bytes));
                    if !canonical {
                        uri.push('\n');
                    }
                    Value::from(uri)
                }),
            ]
        }

        fn tree() -> impl Strategy<Value = Value> {
            leaf().prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    proptest::collection::btree_map("[a-z\"]{1,6}", inner, 0..4)
                        .prop_map(|m| { Value::Object(m.into_iter().collect()) }),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Whatever a client sends comes back exactly: taken out as blobs, written as
            /// stored JSON, restored from that text (the API's path) and from the parsed
            /// value (the export's).
            #[test]
            fn extract_then_restore_gives_back_what_was_sent(v in tree()) {
                let mut stored = v.clone();
                let blobs = extract(&mut stored, &[]).unwrap();
                let bytes = |sha: &str| blobs.iter().find(|b| b.sha256 == sha).map(|b| b.bytes.clone());
                let text = serde_json::to_string(&stored).unwrap();
                let back: Value = serde_json::from_str(&restore_json(&text, bytes)).unwrap();
                prop_assert_eq!(&back, &v);
                let encoded = |sha: &str| bytes(sha).map(|b| encode(&b));
                let back: Value =
                    serde_json::from_str(&restore_json_base64(&text, encoded)).unwrap();
                prop_assert_eq!(&back, &v);
                let mut value = stored.clone();
                restore_value(&mut value, &bytes);
                prop_assert_eq!(&value, &v);
                for b in &blobs {
                    prop_assert_eq!(sha256_hex(&b.bytes), b.sha256.clone());
                }
            }
        }
    }

    #[test]
    fn references_parse_strictly() {
        let good = format!("{PREFIX}{}:image/png;base64", "0f".repeat(32));
        let r = parse(&good).unwrap();
        assert_eq!(r.mime(), "image/png");
        for bad in [
            format!("{PREFIX}{}:image/png;base64", "0F".repeat(32)),
            format!("{PREFIX}{}:image/png", "0f".repeat(32)),
            format!("{PREFIX}{}image/png;base64", "0f".repeat(32)),
            format!("{PREFIX}{}:image/png;base64", "0f".repeat(31)),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
    }
}
