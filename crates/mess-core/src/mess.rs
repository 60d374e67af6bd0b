//! MESS blocks: a message's `mess` is a list of single-key objects, stored verbatim.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

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

/// One block: its kind and its contents exactly as the client sent them. The contents are
/// kept as compact JSON text: a thread's messages cost little memory and serialize without
/// being rebuilt.
#[derive(Debug, Clone)]
pub struct Block {
    kind: BlockKind,
    body: Box<RawValue>,
}

impl PartialEq for Block {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.body.get() == other.body.get()
    }
}

impl Block {
    /// A block of `kind` with `body`.
    pub fn new(kind: BlockKind, body: Value) -> Self {
        Self::of(kind, &body)
    }

    /// A block of `kind` whose contents are `body` as JSON (with no copy of a borrowed
    /// value on the way).
    pub(crate) fn of(kind: BlockKind, body: &(impl serde::Serialize + ?Sized)) -> Self {
        let body = serde_json::value::to_raw_value(body).expect("a JSON value always serializes");
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
                Ok(Self::of(kind, body))
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

    /// The block's contents, parsed.
    pub fn body(&self) -> Value {
        serde_json::from_str(self.body.get()).unwrap_or(Value::Null)
    }

    /// The block's contents as compact JSON text.
    pub fn raw_body(&self) -> &str {
        self.body.get()
    }

    /// For a status block, its `code` parsed as a status.
    pub fn status_code(&self) -> Option<Status> {
        #[derive(Deserialize)]
        struct Code<'a> {
            #[serde(borrow)]
            code: Option<std::borrow::Cow<'a, str>>,
        }
        if self.kind != BlockKind::Status {
            return None;
        }
        let c: Code<'_> = serde_json::from_str(self.body.get()).ok()?;
        Status::parse(&c.code?).ok()
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
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Block;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a MESS block: an object with exactly one known key")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Block, A::Error> {
                let key: std::borrow::Cow<'de, str> = map
                    .next_key()?
                    .ok_or_else(|| serde::de::Error::custom("a MESS block needs one key"))?;
                let kind = BlockKind::parse(&key)
                    .ok_or_else(|| serde::de::Error::custom("unknown MESS block"))?;
                let body: Box<RawValue> = map.next_value()?;
                if map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::custom("a MESS block has exactly one key"));
                }
                Ok(Block { kind, body })
            }
        }
        d.deserialize_map(V)
    }
}

/// Finds attachments (`data:` URIs and references to stored blobs, see [`crate::blob`]) in
/// a list of blocks, walking every nested value. Returns each with the key it was found
/// under (`image`, `file`...) or `attachment`, in order.
pub fn data_uris(blocks: &[Block]) -> Vec<(String, String)> {
    fn walk(key: &str, v: Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::String(s) if crate::blob::is_attachment(&s) => out.push((key.to_owned(), s)),
            Value::Array(items) => items.into_iter().for_each(|i| walk(key, i, out)),
            Value::Object(map) => map.into_iter().for_each(|(k, i)| walk(&k, i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let maybe = |b: &&Block| {
        let raw = b.raw_body();
        raw.contains("data:") || raw.contains(crate::blob::PREFIX)
    };
    for b in blocks.iter().filter(maybe) {
        walk("attachment", b.body(), &mut out);
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
