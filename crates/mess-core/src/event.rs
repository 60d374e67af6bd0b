//! Events: the append-only facts the exchange stores, one JSON object per line.
//!
//! Every line has `event_id, ts, exchange_id, thread_ref, event_type, actor_id, payload`,
//! a per-thread `seq` (0 for events not about a thread) and a per-exchange `pos` (the
//! change feed's position; absent on lines older than it). These names are what
//! DuckDB views depend on: fields may be added, never renamed.

use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::clock::Timestamp;
use crate::ids::{Actor, ExchangeId, ExecutorId, ThreadRef};
use crate::mess::Block;
use crate::status::{Priority, Status};

/// The actor id recorded for what the exchange does by itself (expiry, notification
/// outcomes): `exchange`, the MESS convention. No member may register it
/// ([`DomainError::ReservedId`](crate::DomainError::ReservedId)).
pub const EXCHANGE_ACTOR: &str = "exchange";

/// How earlier versions recorded [`EXCHANGE_ACTOR`]. Stored lines are never rewritten:
/// reading one gives the current spelling.
pub const LEGACY_EXCHANGE_ACTOR: &str = "@exchange";

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
    /// Who caused it: a member, or the exchange itself (stored as [`EXCHANGE_ACTOR`]).
    pub actor_id: Actor,
    /// Position in its thread's history (1, 2, ...); 0 when not about a thread.
    pub seq: u64,
    /// Position in its exchange's history (1, 2, ...), assigned by the writer: the change
    /// feed's event id. 0 on lines written before positions existed (not stored then).
    pub pos: u64,
    /// What happened.
    pub kind: EventKind,
}

/// A member as events describe it: never its key, never its channels' URLs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberSnapshot {
    /// The member.
    pub executor_id: ExecutorId,
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
    pub requestor_id: ExecutorId,
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
    pub executor_id: Option<ExecutorId>,
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
    pub executor_id: ExecutorId,
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

/// Payload of `offer_reminded` and `thread_unclaimed`: since when the thread has waited
/// for someone to take it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferTimer {
    /// When it was last offered (created, or back to `pending`).
    pub offered_at: Timestamp,
}

/// Payload of `needed_by_passed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlinePassed {
    /// The deadline that passed (`needed_by` or `constraints.timing.expires`).
    pub needed_by: Timestamp,
}

/// What happened, by event type.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// `executor_registered`.
    ExecutorRegistered(MemberSnapshot),
    /// `executor_updated`.
    ExecutorUpdated(MemberSnapshot),
    /// `executor_key_rotated`: the member replaced its key; the old one stopped working.
    ExecutorKeyRotated(MemberSnapshot),
    /// `executor_removed`: the member left the exchange.
    ExecutorRemoved(MemberSnapshot),
    /// `thread_created`.
    ThreadCreated(ThreadCreated),
    /// `status_changed`.
    StatusChanged(StatusChanged),
    /// `message_added`.
    MessageAdded(MessageAdded),
    /// `offer_passed`: a member passed on a pending request it was offered (its message;
    /// the thread stays pending).
    OfferPassed(MessageAdded),
    /// `offer_reminded`: nobody took a pending thread within half its time; it is offered
    /// once more.
    OfferReminded(OfferTimer),
    /// `thread_unclaimed`: still nobody after as long again; its requestor is told.
    ThreadUnclaimed(OfferTimer),
    /// `needed_by_passed`: the deadline of work in progress passed; both sides are told
    /// once (active work never expires: its assignee decides).
    NeededByPassed(DeadlinePassed),
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
            EventKind::ExecutorKeyRotated(_) => "executor_key_rotated",
            EventKind::ExecutorRemoved(_) => "executor_removed",
            EventKind::ThreadCreated(_) => "thread_created",
            EventKind::StatusChanged(_) => "status_changed",
            EventKind::MessageAdded(_) => "message_added",
            EventKind::OfferPassed(_) => "offer_passed",
            EventKind::OfferReminded(_) => "offer_reminded",
            EventKind::ThreadUnclaimed(_) => "thread_unclaimed",
            EventKind::NeededByPassed(_) => "needed_by_passed",
            EventKind::NotificationDelivered(_) => "notification_delivered",
            EventKind::NotificationFailed(_) => "notification_failed",
            EventKind::Other { event_type, .. } => event_type,
        }
    }
}

struct Payload<'a>(&'a EventKind);

impl Serialize for Payload<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            EventKind::ExecutorRegistered(p)
            | EventKind::ExecutorUpdated(p)
            | EventKind::ExecutorKeyRotated(p)
            | EventKind::ExecutorRemoved(p) => p.serialize(s),
            EventKind::ThreadCreated(p) => p.serialize(s),
            EventKind::StatusChanged(p) => p.serialize(s),
            EventKind::MessageAdded(p) | EventKind::OfferPassed(p) => p.serialize(s),
            EventKind::OfferReminded(p) | EventKind::ThreadUnclaimed(p) => p.serialize(s),
            EventKind::NeededByPassed(p) => p.serialize(s),
            EventKind::NotificationDelivered(p) | EventKind::NotificationFailed(p) => {
                p.serialize(s)
            }
            EventKind::Other { payload, .. } => payload.serialize(s),
        }
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Event", 9)?;
        st.serialize_field("event_id", &self.event_id)?;
        st.serialize_field("ts", &self.ts)?;
        st.serialize_field("exchange_id", &self.exchange_id)?;
        st.serialize_field("thread_ref", &self.thread_ref)?;
        st.serialize_field("event_type", self.kind.event_type())?;
        st.serialize_field("actor_id", &self.actor_id)?;
        st.serialize_field("payload", &Payload(&self.kind))?;
        st.serialize_field("seq", &self.seq)?;
        if self.pos > 0 {
            st.serialize_field("pos", &self.pos)?;
        } else {
            st.skip_field("pos")?;
        }
        st.end()
    }
}

/// The fields of a stored line.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    EventId,
    Ts,
    ExchangeId,
    ThreadRef,
    EventType,
    ActorId,
    Payload,
    Seq,
    Pos,
    #[serde(other)]
    Other,
}

/// Deserializes a payload straight into the type its `event_type` names.
struct PayloadSeed<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for PayloadSeed<'_> {
    type Value = EventKind;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<EventKind, D::Error> {
        Ok(match self.0 {
            "executor_registered" => EventKind::ExecutorRegistered(Deserialize::deserialize(d)?),
            "executor_updated" => EventKind::ExecutorUpdated(Deserialize::deserialize(d)?),
            "executor_key_rotated" => EventKind::ExecutorKeyRotated(Deserialize::deserialize(d)?),
            "executor_removed" => EventKind::ExecutorRemoved(Deserialize::deserialize(d)?),
            "thread_created" => EventKind::ThreadCreated(Deserialize::deserialize(d)?),
            "status_changed" => EventKind::StatusChanged(Deserialize::deserialize(d)?),
            "message_added" => EventKind::MessageAdded(Deserialize::deserialize(d)?),
            "offer_passed" => EventKind::OfferPassed(Deserialize::deserialize(d)?),
            "offer_reminded" => EventKind::OfferReminded(Deserialize::deserialize(d)?),
            "thread_unclaimed" => EventKind::ThreadUnclaimed(Deserialize::deserialize(d)?),
            "needed_by_passed" => EventKind::NeededByPassed(Deserialize::deserialize(d)?),
            "notification_delivered" => {
                EventKind::NotificationDelivered(Deserialize::deserialize(d)?)
            }
            "notification_failed" => EventKind::NotificationFailed(Deserialize::deserialize(d)?),
            other => EventKind::Other {
                event_type: other.to_owned(),
                payload: Deserialize::deserialize(d)?,
            },
        })
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        use serde::de::Error;
        let (mut event_id, mut ts, mut exchange_id, mut thread_ref) = (None, None, None, None);
        let (mut event_type, mut actor_id, mut seq) = (None::<String>, None, None);
        let mut pos = None;
        let (mut kind, mut early_payload) = (None, None::<Value>);
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::EventId => event_id = Some(map.next_value::<String>()?),
                Field::Ts => ts = Some(map.next_value::<Timestamp>()?),
                Field::ExchangeId => exchange_id = Some(map.next_value::<ExchangeId>()?),
                Field::ThreadRef => thread_ref = Some(map.next_value::<Option<ThreadRef>>()?),
                Field::EventType => event_type = Some(map.next_value()?),
                // `@exchange` (an older spelling) reads as the exchange too.
                Field::ActorId => actor_id = Some(map.next_value::<Actor>()?),
                Field::Seq => seq = Some(map.next_value::<u64>()?),
                Field::Pos => pos = Some(map.next_value::<u64>()?),
                // We write `event_type` before `payload`: then the payload is parsed once,
                // straight into its type. Other writers' order still works, through a Value.
                Field::Payload => match &event_type {
                    Some(t) => kind = Some(map.next_value_seed(PayloadSeed(t))?),
                    None => early_payload = Some(map.next_value()?),
                },
                Field::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let event_type = event_type.ok_or_else(|| A::Error::missing_field("event_type"))?;
        let kind = match (kind, early_payload) {
            (Some(k), _) => k,
            // Re-read from text: block bodies are raw JSON, which only a text parser yields.
            (None, payload) => {
                let text = payload.unwrap_or(Value::Null).to_string();
                let mut de = serde_json::Deserializer::from_str(&text);
                PayloadSeed(&event_type)
                    .deserialize(&mut de)
                    .map_err(A::Error::custom)?
            }
        };
        Ok(Event {
            event_id: event_id.ok_or_else(|| A::Error::missing_field("event_id"))?,
            ts: ts.ok_or_else(|| A::Error::missing_field("ts"))?,
            exchange_id: exchange_id.ok_or_else(|| A::Error::missing_field("exchange_id"))?,
            thread_ref: thread_ref.flatten(),
            actor_id: actor_id.ok_or_else(|| A::Error::missing_field("actor_id"))?,
            seq: seq.unwrap_or(0),
            pos: pos.unwrap_or(0),
            kind,
        })
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor)
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

    /// Appends the stored line and its newline to `buf` (no line of its own to copy).
    pub fn write_line(&self, buf: &mut Vec<u8>) {
        serde_json::to_writer(&mut *buf, self).expect("events always serialize");
        buf.push(b'\n');
    }
}
