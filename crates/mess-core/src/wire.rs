//! What every front end (the actix server, the Cloudflare Worker) reads off the wire the
//! same way: JSON request bodies within their rules, and inline `data:` attachments.

use base64::Engine;
use serde_json::Value;

use crate::error::DomainError;

/// The deepest nesting a request body may have.
pub const MAX_DEPTH: usize = 32;

fn depth_ok(v: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match v {
        Value::Array(a) => a.iter().all(|i| depth_ok(i, depth + 1)),
        Value::Object(o) => o.values().all(|i| depth_ok(i, depth + 1)),
        _ => true,
    }
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Whether a body with this `Content-Type` is read as JSON: when it says so
/// (`application/json`, `application/*+json`), or says nothing.
pub fn is_json_content_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Parses a request body: a JSON object, nested at most [`MAX_DEPTH`] deep, with no NUL in
/// any string or key.
pub fn parse_body(bytes: &[u8]) -> Result<Value, DomainError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            DomainError::invalid(format!("malformed JSON: {e}"))
        } else {
            DomainError::invalid("malformed JSON")
        }
    })?;
    if !v.is_object() {
        return Err(DomainError::invalid("the body must be a JSON object"));
    }
    if !depth_ok(&v, 0) {
        return Err(DomainError::invalid(format!(
            "JSON nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if has_nul(&v) {
        return Err(DomainError::invalid(
            "strings must not contain NUL characters",
        ));
    }
    Ok(v)
}

/// Decodes `data:[<mediatype>][;base64],<data>` (RFC 2397) into its MIME type and bytes;
/// `None` when it is not one, or its MIME type could not be a header value.
pub fn decode_data_uri(uri: &str) -> Option<(String, Vec<u8>)> {
    let rest = uri.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let (mime, base64) = match meta.strip_suffix(";base64") {
        Some(m) => (m, true),
        None => (meta, false),
    };
    let mime = if mime.is_empty() {
        "text/plain;charset=US-ASCII"
    } else {
        mime
    };
    if !mime.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return None;
    }
    let bytes = if base64 {
        let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(compact.as_bytes()))
            .ok()?
    } else {
        percent_decode(data)
    };
    Some((mime.to_owned(), bytes))
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_nul_and_non_objects_are_refused() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(40), "]".repeat(40));
        assert!(parse_body(deep.as_bytes()).is_err());
        assert!(parse_body(br#"{"intent":"a\u0000b"}"#).is_err());
        assert!(parse_body(b"[1]").is_err());
        assert!(parse_body(b"{").is_err());
        assert!(parse_body(br#"{"intent":"ok"}"#).is_ok());
    }

    #[test]
    fn content_types() {
        assert!(is_json_content_type(None));
        assert!(is_json_content_type(Some(
            "application/json; charset=utf-8"
        )));
        assert!(is_json_content_type(Some("application/merge-patch+json")));
        assert!(!is_json_content_type(Some("text/plain")));
    }

    #[test]
    fn decodes_base64_and_percent_forms() {
        assert_eq!(
            decode_data_uri("data:image/png;base64,aGVsbG8="),
            Some(("image/png".into(), b"hello".to_vec()))
        );
        assert_eq!(
            decode_data_uri("data:,a%20b%2"),
            Some(("text/plain;charset=US-ASCII".into(), b"a b%2".to_vec()))
        );
        assert_eq!(decode_data_uri("data:image/png;base64,!!!"), None);
        assert_eq!(decode_data_uri("http://x"), None);
        assert_eq!(decode_data_uri("data:a\nb;base64,aGVsbG8="), None);
    }

    #[test]
    fn a_nul_in_any_key_or_string_at_any_depth_is_refused() {
        for body in [
            r#"{"executor_id":"a","x\u0000y":1}"#,
            r#"{"a":{"b":[{"\u0000":true}]}}"#,
            r#"{"a":["ok","n\u0000"]}"#,
        ] {
            assert_eq!(
                parse_body(body.as_bytes()),
                Err(DomainError::invalid(
                    "strings must not contain NUL characters"
                )),
                "{body}"
            );
        }
        assert!(parse_body(br#"{"x y":"\u0001"}"#).is_ok());
    }
}
