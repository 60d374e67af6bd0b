//! Attachments at the edge of the routes (protocol.md, "Attachments"): a client's
//! `data:` URIs are taken out of its body and stored as blobs before its command is
//! committed ([`take`], [`put`]); what a client reads gets them back ([`restore`]) or as
//! links ([`as_links`]); the attachment route serves one, with ranges ([`attachment`]).
//! The blob rules themselves are `mess_core::blob`'s.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use mess_core::blob::{self, Blob};
use mess_core::mess::data_uris;
use mess_core::wire::decode_data_uri;
use mess_core::{ExchangeId, Thread};
use serde_json::Value;

use crate::error::ApiError;
use crate::port::ExchangePort;

/// Takes the large `data:` URIs out of a client's body (its top-level fields `keep` stay
/// as sent), leaving references; 400 for a string that poses as one.
pub fn take(body: &mut Value, keep: &[&str]) -> Result<Vec<Blob>, ApiError> {
    Ok(blob::extract(body, keep)?)
}

/// How many of one body's blobs are written at once.
const PUT_CONCURRENCY: usize = 4;

/// Stores blobs taken by [`take`], durably, before the command that refers to them (a few
/// at a time: on S3 each is a round trip).
pub async fn put<P: ExchangePort>(x: &P, blobs: &[Blob]) -> Result<(), ApiError> {
    for chunk in blobs.chunks(PUT_CONCURRENCY) {
        let mut puts = Vec::with_capacity(chunk.len());
        for b in chunk {
            puts.push(x.put_blob(b));
        }
        for put in futures::future::join_all(puts).await {
            put?;
        }
    }
    Ok(())
}

/// `json` (a thread as a route answers it) with every reference replaced by its `data:`
/// URI, as the seed's shapes have them. A blob that cannot be read leaves its reference
/// (and a warning in the host's log); the rest is answered.
pub async fn restore<P: ExchangePort>(x: &P, json: Vec<u8>) -> Result<Vec<u8>, ApiError> {
    let Ok(text) = std::str::from_utf8(&json) else {
        return Ok(json);
    };
    let wanted = blob::referenced(text);
    if wanted.is_empty() {
        return Ok(json);
    }
    let mut found: Vec<(&str, Arc<str>)> = Vec::with_capacity(wanted.len());
    for sha in wanted {
        if let Some(encoded) = x.blob_base64(sha).await? {
            found.push((sha, encoded));
        }
    }
    let restored = blob::restore_json_base64(text, |sha| {
        found
            .iter()
            .find(|(s, _)| *s == sha)
            .map(|(_, b)| Arc::clone(b))
    });
    Ok(restored.into_owned().into_bytes())
}

/// The attachment route's base for `exchange`'s thread `r`: `.../attachments/` (each
/// attachment's number follows).
pub fn link_base(exchange: &ExchangeId, r: &str) -> String {
    format!("/api/v1/exchanges/{exchange}/requests/{r}/attachments/")
}

/// `json` (`{..., "thread": {..., "messages": [...]}}` or a thread itself) with every
/// attachment of its messages replaced by the link that serves it.
pub fn as_links(json: &[u8], base: &str) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(json) else {
        return json.to_vec();
    };
    let thread = if v.get("thread").is_some() {
        &mut v["thread"]
    } else {
        &mut v
    };
    if let Some(messages) = thread.get_mut("messages") {
        crate::feed::links(messages, base, &mut 1);
    }
    serde_json::to_vec(&v).unwrap_or_else(|_| json.to_vec())
}

/// One attachment, ready to serve.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// Its MIME type.
    pub mime: String,
    /// Its bytes.
    pub bytes: Arc<[u8]>,
    /// Its strong `ETag`: the SHA-256 of the bytes, quoted.
    pub etag: String,
}

/// The attachment `name` of `t`: by position (`1`, `2`... in document order over the
/// thread's messages) or by the key it stands under (`image`, `file`...). `None` when there
/// is no such attachment (or its blob is missing).
pub async fn attachment<P: ExchangePort>(
    x: &P,
    t: &Thread,
    name: &str,
) -> Result<Option<Attachment>, ApiError> {
    let Some(found) = t
        .messages
        .iter()
        .flat_map(|m| data_uris(&m.mess))
        .enumerate()
        .find(|(n, (label, _))| name == (n + 1).to_string() || name == label)
        .map(|(_, (_, s))| s)
    else {
        return Ok(None);
    };
    if let Some(r) = blob::parse(&found) {
        let Some(bytes) = x.blob(r.sha256).await? else {
            return Ok(None);
        };
        return Ok(Some(Attachment {
            mime: r.mime().to_owned(),
            etag: format!("\"{}\"", r.sha256),
            bytes,
        }));
    }
    Ok(decode_data_uri(&found).map(|(mime, bytes)| Attachment {
        mime,
        etag: format!("\"{}\"", blob::sha256_hex(&bytes)),
        bytes: bytes.into(),
    }))
}

/// A single byte range of a `Range` header, resolved against a length: `Ok(None)` for no
/// (or an ignorable) header, `Err` when it cannot be satisfied (416). Several ranges are
/// answered whole (RFC 9110 lets a server ignore `Range`).
pub fn range(header: Option<&[u8]>, len: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(spec) = header
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| h.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    let (start, end) = match (first.trim().is_empty(), last.trim().is_empty()) {
        // `bytes=-N`: the last N bytes.
        (true, false) => match num(last) {
            Some(0) => return Err(ApiError::RangeNotSatisfiable(len)),
            Some(n) => (len.saturating_sub(n), len.saturating_sub(1)),
            None => return Ok(None),
        },
        (false, true) => match num(first) {
            Some(s) => (s, len.saturating_sub(1)),
            None => return Ok(None),
        },
        (false, false) => match (num(first), num(last)) {
            (Some(s), Some(e)) if s <= e => (s, e.min(len.saturating_sub(1))),
            _ => return Ok(None),
        },
        (true, true) => return Ok(None),
    };
    if len == 0 || start >= len {
        return Err(ApiError::RangeNotSatisfiable(len));
    }
    Ok(Some((start, end)))
}

/// Blobs read lately (their bytes, or their base64 with `Cache<str>`), kept up to a number
/// of bytes (the least recently used dropped first), so that reads of the same photos do
/// not go to storage, or encode them, each time.
#[derive(Debug)]
pub struct Cache<T: AsRef<[u8]> + ?Sized = [u8]> {
    max_bytes: usize,
    inner: Mutex<CacheInner<T>>,
}

#[derive(Debug)]
struct CacheInner<T: ?Sized> {
    /// Most recently used last.
    entries: VecDeque<(ExchangeId, String, Arc<T>)>,
    bytes: usize,
}

impl<T: ?Sized> Default for CacheInner<T> {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<T: AsRef<[u8]> + ?Sized> Cache<T> {
    /// A cache of at most `max_bytes` (a blob larger than that is never kept).
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            inner: Mutex::default(),
        }
    }

    /// The blob, if kept (it becomes the most recently used).
    pub fn get(&self, exchange: &ExchangeId, sha256: &str) -> Option<Arc<T>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let i = inner
            .entries
            .iter()
            .position(|(x, s, _)| s == sha256 && x == exchange)?;
        let entry = inner.entries.remove(i)?;
        let bytes = Arc::clone(&entry.2);
        inner.entries.push_back(entry);
        Some(bytes)
    }

    /// Keeps a blob, dropping the least recently used ones past the limit.
    pub fn put(&self, exchange: &ExchangeId, sha256: &str, bytes: Arc<T>) {
        let len = (*bytes).as_ref().len();
        if len > self.max_bytes {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner
            .entries
            .iter()
            .any(|(x, s, _)| s == sha256 && x == exchange)
        {
            return;
        }
        inner.bytes += len;
        inner
            .entries
            .push_back((exchange.clone(), sha256.to_owned(), bytes));
        while inner.bytes > self.max_bytes {
            let Some((_, _, old)) = inner.entries.pop_front() else {
                break;
            };
            inner.bytes -= (*old).as_ref().len();
        }
    }

    /// How many bytes are kept.
    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(range(None, 10).unwrap(), None);
        assert_eq!(range(Some(b"bytes=0-3"), 10).unwrap(), Some((0, 3)));
        assert_eq!(range(Some(b"bytes=4-"), 10).unwrap(), Some((4, 9)));
        assert_eq!(range(Some(b"bytes=-3"), 10).unwrap(), Some((7, 9)));
        assert_eq!(range(Some(b"bytes=5-100"), 10).unwrap(), Some((5, 9)));
        assert_eq!(range(Some(b"bytes=-100"), 10).unwrap(), Some((0, 9)));
        // Ignored: another unit, several ranges, nonsense.
        for h in [
            &b"items=0-1"[..],
            b"bytes=0-1,3-4",
            b"bytes=x-y",
            b"bytes=5-2",
        ] {
            assert_eq!(range(Some(h), 10).unwrap(), None, "{h:?}");
        }
        for h in [&b"bytes=10-"[..], b"bytes=10-20", b"bytes=-0"] {
            assert!(
                matches!(range(Some(h), 10), Err(ApiError::RangeNotSatisfiable(10))),
                "{h:?}"
            );
        }
    }

    #[test]
    fn the_cache_keeps_the_most_recently_used_within_its_bytes() {
        let x = ExchangeId::parse("home").unwrap();
        let cache: Cache = Cache::new(10);
        let b = |n: u8| -> Arc<[u8]> { vec![n; 4].into() };
        cache.put(&x, "a", b(1));
        cache.put(&x, "b", b(2));
        assert!(cache.get(&x, "a").is_some(), "a is now the most recent");
        cache.put(&x, "c", b(3));
        assert!(cache.get(&x, "b").is_none(), "b was the least recent");
        assert_eq!(cache.get(&x, "a").as_deref(), Some(&[1u8; 4][..]));
        assert_eq!(cache.bytes(), 8);
        cache.put(&x, "big", vec![0; 11].into());
        assert!(cache.get(&x, "big").is_none(), "too big to keep");
        let other = ExchangeId::parse("other").unwrap();
        assert!(cache.get(&other, "a").is_none(), "per exchange");
        let text: Cache<str> = Cache::new(4);
        text.put(&x, "t", "abcd".into());
        assert_eq!(text.get(&x, "t").as_deref(), Some("abcd"));
        text.put(&x, "u", "e".into());
        assert!(text.get(&x, "t").is_none(), "counted in bytes");
    }
}
