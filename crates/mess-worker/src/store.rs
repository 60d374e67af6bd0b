//! The R2 layout, the same as the filesystem's and S3's (`mess-storage`'s `layout.rs`), so
//! DuckDB reads a bucket sync like a data directory:
//!
//! - `events/exchange={id}/{YYYY}/{MM}/{DD}/{uuid}.jsonl`: one object per write (a command
//!   and its events, or a batch of notification outcomes), one `Event::to_line` per line,
//!   split by the UTC day of the events' `ts`;
//! - `executors/exchange={id}/{executor}.json`: one member record each (the key only as its
//!   hash), pretty JSON as `mess-storage` writes it;
//! - `answers/exchange={id}/{scope}.json`: an `Idempotency-Key`'s answer, for a day;
//! - `blobs/exchange={id}/{sha256}`: an attachment's bytes (`mess_core::blob`).
//!
//! Only the exchange's Durable Object writes under its prefixes, one write at a time, so a
//! create-only check (`head`, then `put`) inside it cannot race.

use futures::future::join_all;
use mess_core::clock::new_uuid;
use mess_core::layout::{
    ANSWERS, answer_path, blob_path, day_dir, encode_by_segment, events_prefix, is_event_object,
    is_member_object, member_path, members_prefix, parse_lines,
};
use mess_core::{Event, ExchangeId, Member};
use worker::{Bucket, HttpMetadata};

/// How many objects a rebuild reads at once.
const READ_CONCURRENCY: usize = 16;

/// Why R2 failed: the message goes to the log, the client gets a 503.
#[derive(Debug)]
pub struct StoreError(pub String);

fn err(op: &str, key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("{op} {key}: {e}"))
}

/// Appends `events` (all of one exchange): one new object per UTC day they fall on.
pub async fn append(bucket: &Bucket, events: &[Event]) -> Result<(), StoreError> {
    for ((exchange, day), body) in encode_by_segment(events) {
        let key = format!(
            "{}/{}.jsonl",
            day_dir(&exchange, day),
            new_uuid(&crate::port::JsEntropy)
        );
        bucket
            .put(&key, body)
            .http_metadata(HttpMetadata {
                content_type: Some("application/x-ndjson".into()),
                ..Default::default()
            })
            .execute()
            .await
            .map_err(|e| err("put", &key, e))?;
    }
    Ok(())
}

/// Whether a member record exists.
pub async fn member_exists(bucket: &Bucket, member: &Member) -> Result<bool, StoreError> {
    let key = member_path(&member.exchange_id, &member.executor_id);
    bucket
        .head(&key)
        .await
        .map(|o| o.is_some())
        .map_err(|e| err("head", &key, e))
}

/// Writes (creates or replaces) a member record.
pub async fn put_member(bucket: &Bucket, member: &Member) -> Result<(), StoreError> {
    let key = member_path(&member.exchange_id, &member.executor_id);
    let body = serde_json::to_vec_pretty(member).map_err(|e| err("encode", &key, e))?;
    bucket
        .put(&key, body)
        .http_metadata(HttpMetadata {
            content_type: Some("application/json".into()),
            ..Default::default()
        })
        .execute()
        .await
        .map(drop)
        .map_err(|e| err("put", &key, e))
}

/// Deletes a member record (a missing one is not an error).
pub async fn delete_member(bucket: &Bucket, member: &Member) -> Result<(), StoreError> {
    let key = member_path(&member.exchange_id, &member.executor_id);
    bucket
        .delete(&key)
        .await
        .map_err(|e| err("delete", &key, e))
}

/// Stores an `Idempotency-Key`'s answer.
pub async fn put_answer(
    bucket: &Bucket,
    exchange: &ExchangeId,
    answer: &mess_api::idempotency::Answer,
) -> Result<(), StoreError> {
    let key = answer_path(exchange, &answer.scope);
    let body = serde_json::to_vec(answer).map_err(|e| err("encode", &key, e))?;
    bucket
        .put(&key, body)
        .execute()
        .await
        .map(drop)
        .map_err(|e| err("put", &key, e))
}

/// Every stored answer of `exchange`.
pub async fn load_answers(
    bucket: &Bucket,
    exchange: &ExchangeId,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let keys = list(bucket, &format!("{ANSWERS}/exchange={exchange}/")).await?;
    Ok(read_all(bucket, &keys)
        .await?
        .into_iter()
        .map(|(_, b)| b)
        .collect())
}

/// Deletes an answer older than a day.
pub async fn delete_answer(
    bucket: &Bucket,
    exchange: &ExchangeId,
    scope: &str,
) -> Result<(), StoreError> {
    let key = answer_path(exchange, scope);
    bucket
        .delete(&key)
        .await
        .map_err(|e| err("delete", &key, e))
}

/// Stores an attachment's bytes under their hash (one already there holds the same bytes).
pub async fn put_blob(
    bucket: &Bucket,
    exchange: &ExchangeId,
    sha256: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let key = blob_path(exchange, sha256);
    if bucket
        .head(&key)
        .await
        .map_err(|e| err("head", &key, e))?
        .is_some()
    {
        return Ok(());
    }
    bucket
        .put(&key, bytes.to_vec())
        .execute()
        .await
        .map(drop)
        .map_err(|e| err("put", &key, e))
}

/// An attachment's bytes, if stored.
pub async fn get_blob(
    bucket: &Bucket,
    exchange: &ExchangeId,
    sha256: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let key = blob_path(exchange, sha256);
    Ok(read_all(bucket, &[key]).await?.pop().map(|(_, b)| b))
}

/// Every key under `prefix`, in key order.
async fn list(bucket: &Bucket, prefix: &str) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = bucket.list().prefix(prefix);
        if let Some(c) = cursor.take() {
            q = q.cursor(c);
        }
        let page = q.execute().await.map_err(|e| err("list", prefix, e))?;
        keys.extend(page.objects().iter().map(|o| o.key()));
        match page.cursor() {
            Some(c) if page.truncated() => cursor = Some(c),
            _ => break,
        }
    }
    keys.sort();
    Ok(keys)
}

/// Reads objects, [`READ_CONCURRENCY`] at a time; a key gone meanwhile is skipped.
async fn read_all(bucket: &Bucket, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(READ_CONCURRENCY) {
        let reads = chunk.iter().map(|key| async move {
            let obj = bucket
                .get(key)
                .execute()
                .await
                .map_err(|e| err("get", key, e))?;
            let Some(obj) = obj else {
                return Ok(None);
            };
            let Some(body) = obj.body() else {
                return Ok(None);
            };
            let bytes = body.bytes().await.map_err(|e| err("read", key, e))?;
            Ok::<_, StoreError>(Some((key.clone(), bytes)))
        });
        for r in join_all(reads).await {
            if let Some(pair) = r? {
                out.push(pair);
            }
        }
    }
    Ok(out)
}

/// What a rebuild reads back.
pub struct Loaded {
    /// Every member record of the exchange.
    pub members: Vec<Member>,
    /// Every event of the exchange, in the order read (the rebuild's `Replay` puts each
    /// thread's in `seq` order).
    pub events: Vec<Event>,
    /// Lines that did not parse (foreign, or of a type this version does not know).
    pub skipped: usize,
}

/// Reads everything of `exchange` back: its member records and its event objects.
pub async fn load(bucket: &Bucket, exchange: &ExchangeId) -> Result<Loaded, StoreError> {
    let member_keys: Vec<String> = list(bucket, &members_prefix(exchange))
        .await?
        .into_iter()
        .filter(|k| is_member_object(k))
        .collect();
    let mut members = Vec::with_capacity(member_keys.len());
    for (key, bytes) in read_all(bucket, &member_keys).await? {
        let m: Member = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError(format!("corrupt member record {key}: {e}")))?;
        members.push(m);
    }
    let event_keys: Vec<String> = list(bucket, &events_prefix(exchange))
        .await?
        .into_iter()
        .filter(|k| is_event_object(k))
        .collect();
    let mut events = Vec::new();
    let mut skipped = 0;
    for (_, bytes) in read_all(bucket, &event_keys).await? {
        let mut read = Vec::new();
        skipped += parse_lines(&bytes, &mut read).count;
        let before = read.len();
        read.retain(|e| e.exchange_id == *exchange);
        skipped += before - read.len();
        events.extend(read);
    }
    Ok(Loaded {
        members,
        events,
        skipped,
    })
}
