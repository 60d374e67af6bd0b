//! A new request as a client posts it: validated, with every field kept.

use serde_json::{Map, Value};

use crate::clock::Timestamp;
use crate::error::DomainError;
use crate::status::Priority;

/// The most bytes an `intent` may have.
pub const MAX_INTENT_BYTES: usize = 8 * 1024;
/// The most characters a capability (and an item of `requires`) may have.
pub const MAX_CAPABILITY_CHARS: usize = 128;
/// The most items in a list of capabilities or `requires`.
pub const MAX_CAPABILITIES: usize = 256;

/// A validated request body. `fields` holds every field the client sent, with
/// `response_hints` renamed to `response_hint`; it becomes the thread's request block.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRequest {
    /// What the requestor wants done.
    pub intent: String,
    /// How urgent it is (default `normal`).
    pub priority: Priority,
    /// When it expires if nobody claims it (`needed_by` or `constraints.timing.expires`).
    pub deadline: Option<Timestamp>,
    /// Whether completion waits for the requestor's confirmation.
    pub confirm_before: bool,
    /// The capabilities a member needs to be notified of it.
    pub requires: Vec<String>,
    /// The request block, exactly as sent (after the alias rename).
    pub fields: Map<String, Value>,
}

/// True when `s` has control characters other than tab, newline and carriage return.
pub fn has_forbidden_controls(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

fn string_list(v: &Value, field: &str) -> Result<(), DomainError> {
    match v {
        Value::Array(_) => Ok(()),
        _ => Err(DomainError::invalid(format!("{field} must be a list"))),
    }
}

/// Validates a list of capability strings (for `requires` and member capabilities).
pub fn parse_capabilities(v: &Value, field: &str) -> Result<Vec<String>, DomainError> {
    let items = v
        .as_array()
        .ok_or_else(|| DomainError::invalid(format!("{field} must be a list of strings")))?;
    if items.len() > MAX_CAPABILITIES {
        return Err(DomainError::invalid(format!(
            "{field} has more than {MAX_CAPABILITIES} items"
        )));
    }
    items
        .iter()
        .map(|i| match i.as_str() {
            Some(s)
                if !s.trim().is_empty()
                    && s.chars().count() <= MAX_CAPABILITY_CHARS
                    && !s.chars().any(char::is_control) =>
            {
                Ok(s.to_owned())
            }
            _ => Err(DomainError::invalid(format!(
                "{field} items must be non-empty strings of at most {MAX_CAPABILITY_CHARS} characters"
            ))),
        })
        .collect()
}

/// What a request block decides about its thread, read from its fields (borrowed).
#[derive(Debug)]
pub(crate) struct Terms<'a> {
    pub(crate) intent: &'a str,
    pub(crate) priority: Priority,
    pub(crate) deadline: Option<Timestamp>,
    pub(crate) confirm_before: bool,
    pub(crate) requires: Vec<String>,
    /// `claim_timeout`, in milliseconds.
    pub(crate) claim_timeout_ms: Option<i64>,
}

/// The shortest and longest `claim_timeout`: 1 second to 7 days.
pub const CLAIM_TIMEOUT_BOUNDS_MS: (i64, i64) = (1_000, 7 * 86_400_000);

/// A claim time limit or estimate: an ISO 8601 duration from 1 second to 7 days.
pub fn parse_claim_duration(v: &Value, field: &str) -> Result<i64, DomainError> {
    let (min, max) = CLAIM_TIMEOUT_BOUNDS_MS;
    v.as_str()
        .and_then(crate::clock::parse_iso_duration)
        .filter(|ms| (min..=max).contains(ms))
        .ok_or_else(|| {
            DomainError::invalid(format!(
                "{field} must be an ISO 8601 duration from PT1S to P7D (such as PT15M)"
            ))
        })
}

impl<'a> Terms<'a> {
    /// Validates a request block (with `response_hints` already renamed).
    pub(crate) fn read(fields: &'a Map<String, Value>) -> Result<Self, DomainError> {
        // One pass over the fields, not a hashed lookup for each of the eight.
        let [
            mut intent,
            mut priority,
            mut context,
            mut hint,
            mut requires,
        ] = [None; 5];
        let [
            mut confirm_before,
            mut needed_by,
            mut constraints,
            mut claim_timeout,
        ] = [None; 4];
        for (k, v) in fields {
            let slot = match k.as_str() {
                "intent" => &mut intent,
                "priority" => &mut priority,
                "context" => &mut context,
                "response_hint" => &mut hint,
                "requires" => &mut requires,
                "confirm_before" => &mut confirm_before,
                "needed_by" => &mut needed_by,
                "constraints" => &mut constraints,
                "claim_timeout" => &mut claim_timeout,
                _ => continue,
            };
            *slot = Some(v);
        }
        let intent = match intent {
            None | Some(Value::Null) => return Err(DomainError::invalid("intent is required")),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(DomainError::invalid("intent must be a string")),
        };
        if intent.trim().is_empty() {
            return Err(DomainError::invalid("intent must not be blank"));
        }
        if intent.len() > MAX_INTENT_BYTES {
            return Err(DomainError::invalid(format!(
                "intent is longer than {MAX_INTENT_BYTES} bytes"
            )));
        }
        if has_forbidden_controls(intent) {
            return Err(DomainError::invalid("intent contains control characters"));
        }
        let priority = match priority {
            None | Some(Value::Null) => Priority::Normal,
            Some(Value::String(s)) => Priority::parse(s)?,
            Some(_) => return Err(DomainError::invalid("priority must be a string")),
        };
        for (v, list) in [(context, "context"), (hint, "response_hint")] {
            if let Some(v) = v.filter(|v| !v.is_null()) {
                string_list(v, list)?;
            }
        }
        let requires = match requires {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => parse_capabilities(v, "requires")?,
        };
        let confirm_before = match confirm_before {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(DomainError::invalid("confirm_before must be a boolean")),
        };
        let timestamp = |v: Option<&Value>, name: &str| -> Result<Option<Timestamp>, DomainError> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Timestamp::parse(s).map(Some).map_err(|_| {
                    DomainError::invalid(format!("{name} must be an RFC 3339 date-time"))
                }),
                Some(_) => Err(DomainError::invalid(format!("{name} must be a string"))),
            }
        };
        let needed_by = timestamp(needed_by, "needed_by")?;
        let expires = match constraints {
            None | Some(Value::Null) => None,
            Some(Value::Object(c)) => match c.get("timing") {
                None | Some(Value::Null) => None,
                Some(Value::Object(t)) => {
                    timestamp(t.get("expires"), "constraints.timing.expires")?
                }
                Some(_) => {
                    return Err(DomainError::invalid("constraints.timing must be an object"));
                }
            },
            Some(_) => return Err(DomainError::invalid("constraints must be an object")),
        };
        let deadline = match (needed_by, expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let claim_timeout_ms = match claim_timeout {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_claim_duration(v, "claim_timeout")?),
        };
        Ok(Self {
            intent,
            priority,
            deadline,
            confirm_before,
            requires,
            claim_timeout_ms,
        })
    }
}

impl NewRequest {
    /// Parses a request body (a JSON object), keeping its fields without copying them.
    pub fn parse(body: Value) -> Result<Self, DomainError> {
        let Value::Object(mut fields) = body else {
            return Err(DomainError::invalid("request body must be a JSON object"));
        };
        if let Some(hints) = fields.remove("response_hints") {
            fields.entry("response_hint").or_insert(hints);
        }
        let Terms {
            intent,
            priority,
            deadline,
            confirm_before,
            requires,
            ..
        } = Terms::read(&fields)?;
        Ok(Self {
            intent: intent.to_owned(),
            priority,
            deadline,
            confirm_before,
            requires,
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_field_is_kept_and_response_hints_is_an_alias() {
        let body = json!({
            "intent": "Check the door", "response_hints": ["image"], "precision": "exact",
            "compensation": {"amount": 1}, "id": "client-1", "requires": ["photo:capture"]
        });
        let r = NewRequest::parse(body).unwrap();
        assert_eq!(r.fields.get("response_hint"), Some(&json!(["image"])));
        assert!(!r.fields.contains_key("response_hints"));
        assert_eq!(r.fields.get("compensation"), Some(&json!({"amount": 1})));
        assert_eq!(r.requires, vec!["photo:capture"]);
        assert_eq!(r.priority, Priority::Normal);
    }

    #[test]
    fn bad_requests_are_invalid_never_panics() {
        for bad in [
            json!({}),
            json!({"intent": "   "}),
            json!({"intent": 3}),
            json!({"intent": "x\u{7}"}),
            json!({"intent": "x", "priority": "high"}),
            json!({"intent": "x", "context": "not a list"}),
            json!({"intent": "x", "response_hint": 1}),
            json!({"intent": "x", "needed_by": "tomorrow"}),
            json!({"intent": "x", "confirm_before": "yes"}),
            json!({"intent": "x", "constraints": {"timing": "tomorrow"}}),
            json!({"intent": "x", "constraints": {"timing": {"expires": 1}}}),
            json!({"intent": "x".repeat(MAX_INTENT_BYTES + 1)}),
            json!([1]),
        ] {
            assert!(
                matches!(NewRequest::parse(bad.clone()), Err(DomainError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_earlier_of_needed_by_and_expires_is_the_deadline() {
        let r = NewRequest::parse(json!({
            "intent": "x", "needed_by": "2026-02-02T00:00:00Z",
            "constraints": {"timing": {"expires": "2026-02-01T12:00:00Z"}}
        }))
        .unwrap();
        assert_eq!(
            r.deadline,
            Some(Timestamp::parse("2026-02-01T12:00:00Z").unwrap())
        );
    }
}
