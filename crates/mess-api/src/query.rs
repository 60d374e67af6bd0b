//! Query strings, parsed into what the routes need: a bad value is a 400 that says which.

use mess_core::{Cursor, Status};
use serde::Deserialize;

use crate::error::ApiError;

/// The default page size of a listing.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest page size of a listing.
pub const MAX_LIMIT: usize = 500;

fn parse<'a, T: Deserialize<'a>>(query: &'a str) -> Result<T, ApiError> {
    serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::bad(format!("invalid query string: {e}")))
}

#[derive(Deserialize)]
struct RawList {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET .../requests?status=&limit=&cursor=`.
#[derive(Debug)]
pub struct ListQuery {
    /// Only threads with this status (aliases resolved).
    pub status: Option<Status>,
    /// Page size.
    pub limit: usize,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
}

impl ListQuery {
    /// Parses the raw query string (without `?`). Unknown fields are ignored; a repeated
    /// one, an empty `status=` or `limit=`, or a limit outside 1..=500 is a 400.
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let raw: RawList = parse(query)?;
        let status = raw.status.as_deref().map(Status::parse).transpose()?;
        let limit = match raw.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::bad(format!("limit must be an integer from 1 to {MAX_LIMIT}"))
                })?,
        };
        let cursor = raw
            .cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(Cursor::decode)
            .transpose()?;
        Ok(Self {
            status,
            limit,
            cursor,
        })
    }
}

/// `GET .../capabilities?tag=`.
#[derive(Debug, Deserialize)]
pub struct CapabilityQuery {
    /// Only capabilities with this tag.
    pub tag: Option<String>,
}

impl CapabilityQuery {
    /// Parses the raw query string (without `?`).
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        parse(query)
    }
}

/// `GET .../requests/{ref}?attachments=links`: attachments as links to the attachment
/// route instead of `data:` URIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentsQuery {
    /// Whether links were asked for.
    pub links: bool,
}

#[derive(Deserialize)]
struct RawAttachments {
    attachments: Option<String>,
}

impl AttachmentsQuery {
    /// Parses the raw query string: `attachments` is `links` or `inline` (the default);
    /// any other value is a 400.
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let raw: RawAttachments = parse(query)?;
        match raw.attachments.as_deref() {
            None | Some("inline") => Ok(Self { links: false }),
            Some("links") => Ok(Self { links: true }),
            Some(_) => Err(ApiError::bad(
                "attachments must be links (or inline, the default: data: URIs)",
            )),
        }
    }
}

/// The longest wait a `GET .../requests/{ref}?wait=N` may ask for, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;

#[derive(Deserialize)]
struct RawWait {
    wait: Option<String>,
    since: Option<String>,
}

/// `GET .../requests/{ref}?wait=N&since=V`: hold the answer until the thread's version is
/// above `since` (the current one when absent), at most `wait` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitQuery {
    /// How long to hold the answer at most.
    pub wait: std::time::Duration,
    /// The version the client has seen, if it says.
    pub since: Option<u64>,
}

impl WaitQuery {
    /// Parses the raw query string: `None` without `wait`; 400 for a `wait` that is not a
    /// whole number of seconds from 0 to 60, or a `since` that is not a version.
    pub fn parse(query: &str) -> Result<Option<Self>, ApiError> {
        let raw: RawWait = parse(query)?;
        let Some(wait) = raw.wait else {
            if raw.since.is_some() {
                return Err(ApiError::bad("since needs wait (wait=N&since=V)"));
            }
            return Ok(None);
        };
        let wait = wait
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= MAX_WAIT_SECS)
            .ok_or_else(|| {
                ApiError::bad(format!(
                    "wait must be a whole number of seconds from 0 to {MAX_WAIT_SECS}"
                ))
            })?;
        let since = raw
            .since
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| ApiError::bad("since must be a thread version (0 or more)"))
            })
            .transpose()?;
        Ok(Some(Self {
            wait: std::time::Duration::from_secs(wait),
            since,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_defaults_to_fifty_and_accepts_aliases() {
        let q = ListQuery::parse("").expect("empty is fine");
        assert_eq!((q.status, q.limit), (None, DEFAULT_LIMIT));
        let q = ListQuery::parse("status=in-progress&limit=500&other=1").expect("valid");
        assert_eq!((q.status, q.limit), (Some(Status::InProgress), 500));
    }

    #[test]
    fn bad_listing_parameters_are_refused_by_name() {
        for (query, says) in [
            ("limit=0", "limit must be"),
            ("limit=501", "limit must be"),
            ("limit=", "limit must be"),
            ("status=", "status"),
            ("status=Pending", "status"),
            ("status=pending&status=claimed", "duplicate field `status`"),
            ("cursor=zz", "invalid cursor"),
        ] {
            match ListQuery::parse(query) {
                Err(ApiError::BadRequest(m)) => assert!(m.contains(says), "{query}: {m}"),
                other => panic!("{query}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_wait_is_zero_to_sixty_whole_seconds_since_a_version() {
        assert_eq!(WaitQuery::parse("").expect("no wait"), None);
        let w = WaitQuery::parse("wait=60&since=4")
            .expect("valid")
            .expect("a wait");
        assert_eq!((w.wait.as_secs(), w.since), (60, Some(4)));
        let w = WaitQuery::parse("wait=0").expect("valid").expect("a wait");
        assert_eq!((w.wait.as_secs(), w.since), (0, None));
        for bad in [
            "wait=61",
            "wait=-1",
            "wait=1.5",
            "wait=",
            "wait=5&since=x",
            "since=3",
        ] {
            assert!(
                matches!(WaitQuery::parse(bad), Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
    }
}
