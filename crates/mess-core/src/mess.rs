//! MESS blocks: a message's `mess` is a list of single-key objects, stored verbatim.

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::DomainError;
use crate::ids::ThreadRef;
use crate::status::{Status, printable};

/// The kinds of block protocol.md allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum BlockKind {
    Request,
    Reply,
    Answer,
    Cancel,
    Status,
    Response,
    Query,
    Ack,
    Suggestion,
    Followup,
    V,
}

impl BlockKind {
    /// Every kind.
    pub const ALL: [BlockKind; 11] = [
        BlockKind::Request,
        BlockKind::Reply,
        BlockKind::Answer,
        BlockKind::Cancel,
        BlockKind::Status,
        BlockKind::Response,
        BlockKind::Query,
        BlockKind::Ack,
        BlockKind::Suggestion,
        BlockKind::Followup,
        BlockKind::V,
    ];

    /// The key of the block's object.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::Request => "request",
            BlockKind::Reply => "reply",
            BlockKind::Answer => "answer",
            BlockKind::Cancel => "cancel",
            BlockKind::Status => "status",
            BlockKind::Response => "response",
            BlockKind::Query => "query",
            BlockKind::Ack => "ack",
            BlockKind::Suggestion => "suggestion",
            BlockKind::Followup => "followup",
            BlockKind::V => "v",
        }
    }

    /// Parses a block key.
    pub fn parse(s: &str) -> Option<Self> {
        BlockKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One block: its kind and its contents exactly as the client sent them.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    kind: BlockKind,
    body: Value,
}

impl Block {
    /// A block of `kind` with `body`.
    pub fn new(kind: BlockKind, body: Value) -> Self {
        Self { kind, body }
    }

    /// The status block recorded on a status change: `{"status": {"re": ref, "code": status}}`
    /// plus any extra fields (`message`, `estimate`, `questions`...).
    pub fn status(re: &ThreadRef, code: Status, extra: serde_json::Map<String, Value>) -> Self {
        let mut body = serde_json::Map::new();
        body.insert("re".into(), Value::String(re.to_string()));
        body.insert("code".into(), Value::String(code.as_str().into()));
        for (k, v) in extra {
            if k != "re" && k != "code" {
                body.insert(k, v);
            }
        }
        Self::new(BlockKind::Status, Value::Object(body))
    }

    /// Parses one block: an object with exactly one known key.
    pub fn parse(v: &Value) -> Result<Self, DomainError> {
        let obj = v
            .as_object()
            .ok_or_else(|| DomainError::invalid("each mess block must be an object"))?;
        let mut it = obj.iter();
        match (it.next(), it.next()) {
            (Some((k, body)), None) => {
                let kind = BlockKind::parse(k).ok_or_else(|| {
                    DomainError::invalid(format!("unknown mess block: {}", printable(k)))
                })?;
                Ok(Self::new(kind, body.clone()))
            }
            _ => Err(DomainError::invalid(
                "each mess block must have exactly one key",
            )),
        }
    }

    /// Parses a `mess` list.
    pub fn parse_list(v: &Value) -> Result<Vec<Self>, DomainError> {
        v.as_array()
            .ok_or_else(|| DomainError::invalid("mess must be a list of blocks"))?
            .iter()
            .map(Block::parse)
            .collect()
    }

    /// The block's kind.
    pub fn kind(&self) -> BlockKind {
        self.kind
    }

    /// The block's contents.
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// For a status block, its `code` parsed as a status.
    pub fn status_code(&self) -> Option<Status> {
        if self.kind != BlockKind::Status {
            return None;
        }
        Status::parse(self.body.get("code")?.as_str()?).ok()
    }
}

impl Serialize for Block {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.kind.as_str(), &self.body)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for Block {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Block::parse(&v).map_err(serde::de::Error::custom)
    }
}

/// Finds `data:` URIs in a list of blocks, walking every nested value. Returns each with
/// the key it was found under (`image`, `file`...) or `attachment`, in order.
pub fn data_uris(blocks: &[Block]) -> Vec<(String, &str)> {
    fn walk<'a>(key: &str, v: &'a Value, out: &mut Vec<(String, &'a str)>) {
        match v {
            Value::String(s) if s.starts_with("data:") => out.push((key.to_owned(), s)),
            Value::Array(items) => items.iter().for_each(|i| walk(key, i, out)),
            Value::Object(map) => map.iter().for_each(|(k, i)| walk(k, i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for b in blocks {
        walk("attachment", &b.body, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_keep_unknown_fields_verbatim() {
        let v = json!([{"response": {"content": ["ok"], "x-extra": {"deep": [1, 2]}}}]);
        let blocks = Block::parse_list(&v).unwrap();
        assert_eq!(serde_json::to_value(&blocks).unwrap(), v);
    }

    #[test]
    fn blocks_with_zero_or_two_keys_or_unknown_kinds_are_invalid() {
        for bad in [
            json!({}),
            json!({"reply": 1, "ack": 2}),
            json!({"shout": "x"}),
            json!("x"),
        ] {
            assert!(Block::parse(&bad).is_err(), "{bad}");
        }
        assert!(Block::parse_list(&json!({"reply": {}})).is_err());
    }
}
