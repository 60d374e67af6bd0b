//! `data:` URIs (RFC 2397), as attachments travel inline.

use base64::Engine;

/// Decodes `data:[<mediatype>][;base64],<data>` into its MIME type and bytes.
pub fn decode(uri: &str) -> Option<(String, Vec<u8>)> {
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
    // A MIME type goes into a header: refuse anything that could not be one.
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
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64_and_percent_forms() {
        assert_eq!(
            decode("data:image/png;base64,aGVsbG8="),
            Some(("image/png".into(), b"hello".to_vec()))
        );
        assert_eq!(
            decode("data:,a%20b"),
            Some(("text/plain;charset=US-ASCII".into(), b"a b".to_vec()))
        );
        assert_eq!(decode("data:image/png;base64,!!!"), None);
        assert_eq!(decode("http://x"), None);
        assert_eq!(decode("data:a\nb;base64,aGVsbG8="), None);
    }
}
