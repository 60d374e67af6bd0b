//! A thread folded from its events, in exactly the shape the API returns.

use std::sync::Arc;

use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::clock::Timestamp;
use crate::event::{Event, EventKind};
use crate::ids::ThreadRef;
use crate::mess::{Block, BlockKind};
use crate::status::{Priority, Status};

/// One message of a thread.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Who sent it.
    pub from: String,
    /// When.
    pub ts: Timestamp,
    /// Its blocks.
    pub mess: Vec<Block>,
}

/// Where a `confirm_before` request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Confirmation {
    /// The assignee has not asked yet.
    #[default]
    NotAsked,
    /// The assignee sent `needs_confirmation`; the requestor has not replied.
    Asked,
    /// The requestor replied: `completed` is allowed.
    Given,
}

/// A request thread. Serializes to the seed's GET shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    /// Its ref.
    pub thread_ref: ThreadRef,
    /// Its status.
    pub status: Status,
    /// What was asked.
    pub intent: String,
    /// Who asked.
    pub requestor_id: String,
    /// Who holds the claim.
    pub executor_id: Option<String>,
    /// How urgent it is.
    pub priority: Priority,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Its messages, oldest first (shared, so that a changed thread is a cheap copy).
    pub messages: Vec<Arc<Message>>,
    /// The `seq` of its last event.
    pub seq: u64,
    /// When it expires if unclaimed (`needed_by` or `constraints.timing.expires`).
    pub deadline: Option<Timestamp>,
    /// Whether `completed` waits for the requestor's confirmation.
    pub confirm_before: bool,
    /// Where that confirmation stands.
    pub confirmation: Confirmation,
    /// Capabilities a member needs to be notified of it.
    pub requires: Vec<String>,
}

impl Thread {
    /// Builds a thread from its `thread_created` event; `None` for any other event.
    pub fn from_created(e: &Event) -> Option<Self> {
        let (EventKind::ThreadCreated(c), Some(r)) = (&e.kind, &e.thread_ref) else {
            return None;
        };
        let req =
            crate::request::NewRequest::parse(&serde_json::Value::Object(c.request.clone())).ok();
        let block = Block::new(
            BlockKind::Request,
            serde_json::Value::Object(c.request.clone()),
        );
        Some(Self {
            thread_ref: r.clone(),
            status: Status::Pending,
            intent: c.intent.clone(),
            requestor_id: c.requestor_id.clone(),
            executor_id: None,
            priority: c.priority,
            created_at: e.ts,
            updated_at: e.ts,
            messages: vec![Arc::new(Message {
                from: e.actor_id.clone(),
                ts: e.ts,
                mess: vec![block],
            })],
            seq: e.seq,
            deadline: req.as_ref().and_then(|r| r.deadline),
            confirm_before: req.as_ref().is_some_and(|r| r.confirm_before),
            confirmation: Confirmation::NotAsked,
            requires: req.map(|r| r.requires).unwrap_or_default(),
        })
    }

    /// Applies one later event. Events are facts: this never refuses one.
    pub fn apply(&mut self, e: &Event) {
        self.seq = self.seq.max(e.seq);
        match &e.kind {
            EventKind::StatusChanged(c) => {
                self.status = c.new_status;
                self.executor_id.clone_from(&c.executor_id);
                self.updated_at = e.ts;
                if c.new_status == Status::NeedsConfirmation {
                    self.confirmation = Confirmation::Asked;
                }
            }
            EventKind::MessageAdded(m) => {
                if self.confirmation == Confirmation::Asked
                    && e.actor_id == self.requestor_id
                    && m.mess.iter().any(|b| b.kind() == BlockKind::Reply)
                {
                    self.confirmation = Confirmation::Given;
                }
                self.messages.push(Arc::new(Message {
                    from: e.actor_id.clone(),
                    ts: e.ts,
                    mess: m.mess.clone(),
                }));
                self.updated_at = e.ts;
            }
            _ => {}
        }
    }

    /// The list entry for this thread (the seed's list shape).
    pub fn summary(&self) -> Summary<'_> {
        Summary(self)
    }

    fn write_head<S: SerializeStruct>(&self, st: &mut S) -> Result<(), S::Error> {
        st.serialize_field("ref", &self.thread_ref)?;
        st.serialize_field("status", &self.status)?;
        st.serialize_field("intent", &self.intent)?;
        st.serialize_field("requestor_id", &self.requestor_id)?;
        st.serialize_field("executor_id", &self.executor_id)?;
        st.serialize_field("priority", &self.priority)?;
        st.serialize_field("created_at", &self.created_at)?;
        st.serialize_field("updated_at", &self.updated_at)
    }
}

impl Serialize for Thread {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Thread", 9)?;
        self.write_head(&mut st)?;
        st.serialize_field("messages", &self.messages)?;
        st.end()
    }
}

/// A thread as a list shows it: everything but the messages.
#[derive(Debug, Clone, Copy)]
pub struct Summary<'a>(&'a Thread);

impl Serialize for Summary<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ThreadSummary", 8)?;
        self.0.write_head(&mut st)?;
        st.end()
    }
}
