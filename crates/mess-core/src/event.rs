//! Events: the append-only facts the exchange stores, one JSON object per line.
//!
//! Every line has `event_id, ts, exchange_id, thread_ref, event_type, actor_id, payload`
//! and a per-thread `seq` (0 for events not about a thread). These names are what
//! DuckDB views depend on: fields may be added, never renamed.

use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::clock::Timestamp;
use crate::ids::{ExchangeId, ThreadRef};
use crate::mess::Block;
use crate::status::{Priority, Status};

/// The actor id recorded for what the exchange does by itself (expiry). It is not a valid
/// executor id, so it can never be confused with a member.
pub const EXCHANGE_ACTOR: &str = "@exchange";

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// A UUID v4.
    pub event_id: String,
    /// When it happened.
    pub ts: Timestamp,
    /// The exchange it belongs to.
    pub exchange_id: ExchangeId,
    /// The thread it is about, if any.
    pub thread_ref: Option<ThreadRef>,
    /// Who caused it: a member id, or [`EXCHANGE_ACTOR`].
    pub actor_id: String,
    /// Position in its thread's history (1, 2, ...); 0 when not about a thread.
    pub seq: u64,
    /// What happened.
    pub kind: EventKind,
}

/// A member as events describe it: never its key, never its channels' URLs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberSnapshot {
    /// The member.
    pub executor_id: String,
    /// Its display name.
    pub display_name: String,
    /// Its capabilities.
    pub capabilities: Vec<String>,
    /// The types of its notification channels (`ntfy`, `slack`...).
    #[serde(default)]
    pub channels: Vec<String>,
}

/// Payload of `thread_created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadCreated {
    /// The member who created it.
    pub requestor_id: String,
    /// Its intent.
    pub intent: String,
    /// Its priority.
    pub priority: Priority,
    /// The request block, every field as the client sent it.
    pub request: Map<String, Value>,
}

/// Payload of `status_changed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChanged {
    /// The status before.
    pub old_status: Status,
    /// The status after.
    pub new_status: Status,
    /// The assignee after the change (null when released or never claimed).
    pub executor_id: Option<String>,
}

/// Payload of `message_added`; the sender is the event's `actor_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageAdded {
    /// The message's blocks.
    pub mess: Vec<Block>,
}

/// Payload of `notification_delivered` and `notification_failed`. Never a URL or secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationOutcome {
    /// The member notified.
    pub executor_id: String,
    /// The channel type (`ntfy`, `slack`, `google_chat`, `webhook`, `hook`).
    pub channel: String,
    /// The event type that caused it.
    pub trigger: String,
    /// How many sends were tried.
    pub attempts: u32,
    /// The last HTTP status, if a response came.
    #[serde(default)]
    pub http_status: Option<u16>,
    /// Why it failed (no URL or secret in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What happened, by event type.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// `executor_registered`.
    ExecutorRegistered(MemberSnapshot),
    /// `executor_updated`.
    ExecutorUpdated(MemberSnapshot),
    /// `thread_created`.
    ThreadCreated(ThreadCreated),
    /// `status_changed`.
    StatusChanged(StatusChanged),
    /// `message_added`.
    MessageAdded(MessageAdded),
    /// `notification_delivered`.
    NotificationDelivered(NotificationOutcome),
    /// `notification_failed`.
    NotificationFailed(NotificationOutcome),
    /// A type this version does not know (written by a newer one): kept, not applied.
    Other {
        /// Its `event_type`.
        event_type: String,
        /// Its `payload`.
        payload: Value,
    },
}

impl EventKind {
    /// The `event_type` column.
    pub fn event_type(&self) -> &str {
        match self {
            EventKind::ExecutorRegistered(_) => "executor_registered",
            EventKind::ExecutorUpdated(_) => "executor_updated",
            EventKind::ThreadCreated(_) => "thread_created",
            EventKind::StatusChanged(_) => "status_changed",
            EventKind::MessageAdded(_) => "message_added",
            EventKind::NotificationDelivered(_) => "notification_delivered",
            EventKind::NotificationFailed(_) => "notification_failed",
            EventKind::Other { event_type, .. } => event_type,
        }
    }

    fn from_parts(event_type: String, payload: Value) -> Result<Self, serde_json::Error> {
        use serde_json::from_value as p;
        Ok(match event_type.as_str() {
            "executor_registered" => EventKind::ExecutorRegistered(p(payload)?),
            "executor_updated" => EventKind::ExecutorUpdated(p(payload)?),
            "thread_created" => EventKind::ThreadCreated(p(payload)?),
            "status_changed" => EventKind::StatusChanged(p(payload)?),
            "message_added" => EventKind::MessageAdded(p(payload)?),
            "notification_delivered" => EventKind::NotificationDelivered(p(payload)?),
            "notification_failed" => EventKind::NotificationFailed(p(payload)?),
            _ => EventKind::Other {
                event_type,
                payload,
            },
        })
    }
}

struct Payload<'a>(&'a EventKind);

impl Serialize for Payload<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            EventKind::ExecutorRegistered(p) | EventKind::ExecutorUpdated(p) => p.serialize(s),
            EventKind::ThreadCreated(p) => p.serialize(s),
            EventKind::StatusChanged(p) => p.serialize(s),
            EventKind::MessageAdded(p) => p.serialize(s),
            EventKind::NotificationDelivered(p) | EventKind::NotificationFailed(p) => {
                p.serialize(s)
            }
            EventKind::Other { payload, .. } => payload.serialize(s),
        }
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Event", 8)?;
        st.serialize_field("event_id", &self.event_id)?;
        st.serialize_field("ts", &self.ts)?;
        st.serialize_field("exchange_id", &self.exchange_id)?;
        st.serialize_field("thread_ref", &self.thread_ref)?;
        st.serialize_field("event_type", self.kind.event_type())?;
        st.serialize_field("actor_id", &self.actor_id)?;
        st.serialize_field("payload", &Payload(&self.kind))?;
        st.serialize_field("seq", &self.seq)?;
        st.end()
    }
}

#[derive(Deserialize)]
struct Line {
    event_id: String,
    ts: Timestamp,
    exchange_id: ExchangeId,
    thread_ref: Option<ThreadRef>,
    event_type: String,
    actor_id: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    seq: u64,
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let l = Line::deserialize(d)?;
        let kind =
            EventKind::from_parts(l.event_type, l.payload).map_err(serde::de::Error::custom)?;
        Ok(Event {
            event_id: l.event_id,
            ts: l.ts,
            exchange_id: l.exchange_id,
            thread_ref: l.thread_ref,
            actor_id: l.actor_id,
            seq: l.seq,
            kind,
        })
    }
}

impl Event {
    /// Parses one stored line.
    pub fn from_line(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }

    /// The stored line, without its newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("events always serialize")
    }
}
