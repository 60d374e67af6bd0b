//! A response as a host sends it: status, content type, extra headers, body bytes.

use serde::Serialize;

/// A response, framework-free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: String,
    /// Headers beyond the content type.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// The content type of every JSON answer.
pub const JSON: &str = "application/json";

impl Reply {
    /// A JSON body already written.
    pub fn json_bytes(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type: JSON.into(),
            headers: Vec::new(),
            body,
        }
    }

    /// `value` as JSON.
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        // The API's values (maps with string keys, strings, numbers) always serialize.
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Self::json_bytes(status, body)
    }
}
