//! One thread's MESSE-AF text in, the facts it records out ([`Parsed`]): who created it
//! with which request and when, then its status changes and messages in file order.
//! Pure: the files come in as text and attachments through [`Attachments`].
//!
//! The rules are messe-af.md §4.1 and §5: a thread that cannot be read is refused with a
//! reason (never half-read), and everything dropped or changed on the way is a [`Note`].

use std::collections::BTreeMap;

use base64::Engine;
use mess_core::{Actor, Block, BlockKind, ExecutorId, Priority, Status, Timestamp};
use serde_json::{Map, Value};

use crate::media::{MEDIA_KEYS, is_attachment_name, is_mime, mime_for_name};
use crate::names::{self, is_path_safe_ref};
use crate::yaml;

/// Bounds on what one import reads.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest attachment (file or inline `data:` URI), in bytes. A larger file is
    /// not read (its reference stays as it is, reported); a larger inline one refuses the
    /// thread (it cannot be left out without changing the message).
    pub attachment_bytes: u64,
    /// The largest YAML file read, in bytes.
    pub yaml_file_bytes: u64,
    /// The most bytes of attachments one thread may bring in.
    pub thread_bytes: u64,
    /// How far past "now" a timestamp may be (clock skew) before the thread is refused:
    /// a future time would make members look seen in the future.
    pub future_skew_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            attachment_bytes: 20 * 1024 * 1024,
            yaml_file_bytes: 64 * 1024 * 1024,
            thread_bytes: 100 * 1024 * 1024,
            future_skew_ms: 10 * 60 * 1000,
        }
    }
}

/// A thread as found: its ref from the path, and its YAML files in reading order.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where it was found, for reports (relative to the imported directory).
    pub path: String,
    /// The ref its file or folder name gives.
    pub name_ref: String,
    /// `(file name, text)`: the v1 file, or the `NNN-{ref}.messe-af.yaml` files in order.
    pub yaml: Vec<(String, String)>,
}

/// Where a thread's attachment files come from.
pub trait Attachments {
    /// The bytes of the attachment `name` (already checked with
    /// [`is_attachment_name`]), refused when missing or larger than `limit`.
    fn read(&mut self, name: &str, limit: u64) -> Result<Vec<u8>, String>;
}

/// No attachment files: a v1 file (its binaries are inline).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFiles;

impl Attachments for NoFiles {
    fn read(&mut self, _: &str, _: u64) -> Result<Vec<u8>, String> {
        Err("a v1 file has no folder for attachment files".to_owned())
    }
}

/// Something dropped, changed or mapped while reading a thread that was still imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The thread's path (and the file and document, where it is about one).
    pub path: String,
    /// What happened.
    pub message: String,
}

/// One fact after the thread's creation, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A status change.
    Status {
        /// When.
        ts: Timestamp,
        /// Who made it.
        actor: Actor,
        /// The status after it.
        status: Status,
        /// The assignee after it.
        executor: Option<ExecutorId>,
    },
    /// A message.
    Message {
        /// When it was received.
        ts: Timestamp,
        /// Its sender.
        actor: Actor,
        /// Its blocks.
        mess: Vec<Block>,
        /// A member passing on a pending request it was offered (`pass: true`): an
        /// `offer_passed` event, no status change.
        pass: bool,
    },
}

/// A thread read from MESSE-AF.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// Its ref in the files.
    pub source_ref: String,
    /// Who created it.
    pub requestor: ExecutorId,
    /// When.
    pub created: Timestamp,
    /// The envelope's `updated`, when it has one (to pick between two copies).
    pub updated: Option<Timestamp>,
    /// What it asks.
    pub intent: String,
    /// How urgent it is.
    pub priority: Priority,
    /// The request block, as written.
    pub request: Map<String, Value>,
    /// Everything after the creation.
    pub steps: Vec<Step>,
}

impl Parsed {
    /// How many messages it has, the request included.
    pub fn messages(&self) -> usize {
        1 + self
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Message { .. }))
            .count()
    }
}

/// A message document, read.
struct Doc {
    label: String,
    actor: Actor,
    ts: Option<Timestamp>,
    blocks: Vec<Value>,
    re: Option<String>,
}

impl Doc {
    fn has(&self, kind: &str) -> bool {
        self.blocks
            .iter()
            .any(|b| b.as_object().is_some_and(|o| o.contains_key(kind)))
    }
}

/// A history entry that names a status.
struct Entry {
    status: Status,
    at: Option<Timestamp>,
    by: Option<String>,
    /// The `NNN` of its message ref, when it has a ref.
    message: Option<usize>,
    has_ref: bool,
    /// `executor` (our extension): the assignee after the change, when the usual rule
    /// (claim: the actor; back to pending: none; else unchanged) would not give it.
    executor: Option<Option<String>>,
}

/// Reads one thread. `Err` is the reason it is refused (nothing of it is imported).
pub fn parse(
    source: &Source,
    files: &mut dyn Attachments,
    limits: &Limits,
    now: Timestamp,
    notes: &mut Vec<Note>,
) -> Result<Parsed, String> {
    let mut ctx = Ctx {
        path: source.path.clone(),
        notes,
        mapped: BTreeMap::new(),
    };
    let mut docs = Vec::new();
    for (name, text) in &source.yaml {
        let parsed = yaml::documents(text).map_err(|e| format!("{name} is not valid YAML: {e}"))?;
        docs.extend(
            parsed
                .into_iter()
                .enumerate()
                .map(|(i, d)| (format!("{name} document {}", i + 1), d)),
        );
    }
    if docs.is_empty() {
        return Err("no YAML document in it".to_owned());
    }
    let mut docs = docs.into_iter().peekable();
    let envelope = match docs.peek() {
        Some((_, Value::Object(m))) if !m.contains_key("MESS") && !m.contains_key("mess") => {
            docs.next().and_then(|(_, v)| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
        }
        _ => {
            ctx.note("no envelope: the thread is rebuilt from its path and messages");
            None
        }
    };
    let env = envelope.unwrap_or_default();
    let source_ref = match env.get("ref") {
        None => source.name_ref.clone(),
        Some(Value::String(r)) => r.clone(),
        Some(other) => return Err(format!("the envelope's ref is not a string: {other}")),
    };
    if source_ref != source.name_ref {
        return Err(format!(
            "the envelope's ref {source_ref:?} is not its file or folder name's {:?}",
            source.name_ref
        ));
    }
    if !is_path_safe_ref(&source_ref) {
        return Err(format!("{source_ref:?} is not a MESSE-AF ref"));
    }

    let mut messages: Vec<Doc> = docs.filter_map(|(l, d)| ctx.message(l, d)).collect();
    let request_doc = messages
        .first()
        .is_some_and(|m| m.has("request"))
        .then(|| messages.remove(0));

    // The request, and what else its document held (a message of its own).
    let (mut request, extra) = match &request_doc {
        Some(doc) => {
            let mut request = None;
            let mut extra = Vec::new();
            for b in &doc.blocks {
                match b.as_object().and_then(|o| o.get("request")) {
                    Some(body) if request.is_none() => match body {
                        Value::Object(m) => request = Some(m.clone()),
                        _ => return Err(format!("{}: the request block is not a map", doc.label)),
                    },
                    _ if b.as_object().is_some_and(|o| o.contains_key("v")) => {}
                    _ => extra.push(b.clone()),
                }
            }
            (request.unwrap_or_default(), extra)
        }
        None => {
            let mut request = Map::new();
            match env.get("intent") {
                Some(Value::String(i)) => {
                    request.insert("intent".into(), Value::String(i.clone()));
                }
                _ => return Err("no request message and no intent in the envelope".to_owned()),
            }
            if let Some(p) = env.get("priority") {
                request.insert("priority".into(), p.clone());
            }
            ctx.note("no request message: the request is rebuilt from the envelope");
            (request, Vec::new())
        }
    };

    let requestor_raw = match (env.get("requestor"), &request_doc) {
        (Some(Value::String(r)), _) => r.clone(),
        (_, Some(doc)) => doc.actor.as_str().to_owned(),
        _ => return Err("no requestor: neither the envelope nor a request names one".to_owned()),
    };
    let requestor = ctx.executor(&requestor_raw);
    let created = match env.get("created").map(|v| (v, names::timestamp(v))) {
        Some((_, Some(t))) => t,
        other => {
            if let Some((v, None)) = other {
                ctx.note(format!("the envelope's created {v} is not a time"));
            }
            request_doc
                .as_ref()
                .and_then(|d| d.ts)
                .ok_or("no creation time: neither the envelope nor the request has one")?
        }
    };
    let updated = env.get("updated").and_then(names::timestamp);
    let intent = match (request.get("intent"), env.get("intent")) {
        (Some(Value::String(i)), _) | (_, Some(Value::String(i))) => i.clone(),
        _ => return Err("no intent".to_owned()),
    };
    check_intent(&intent)?;
    let priority = match env.get("priority").or_else(|| request.get("priority")) {
        None => Priority::Normal,
        Some(v) => match v.as_str().map(Priority::parse) {
            Some(Ok(p)) => p,
            _ => {
                ctx.note(format!("priority {v} is not one of ours: normal"));
                Priority::Normal
            }
        },
    };

    // Attachments: resolved in the request and in every message.
    let mut resolver = Resolver {
        files,
        limits,
        used: 0,
    };
    for v in request.values_mut() {
        resolver.value(&mut ctx, "the request", v)?;
    }
    let mut extra = extra;
    for b in &mut extra {
        resolver.value(&mut ctx, "the request", b)?;
    }
    for m in &mut messages {
        for b in &mut m.blocks {
            resolver.value(&mut ctx, &m.label, b)?;
        }
        // A message-level `re` other than the thread's own (v2.1): kept in the first
        // block that has none, where protocol v1 puts it.
        if let Some(re) = m.re.as_deref().filter(|r| *r != source_ref)
            && let Some(body) = m
                .blocks
                .iter_mut()
                .filter_map(|b| b.as_object_mut()?.values_mut().next()?.as_object_mut())
                .find(|body| !body.contains_key("re"))
        {
            body.insert("re".into(), Value::String(re.to_owned()));
        }
    }

    // Times: a message with none takes its predecessor's; none may be in the future.
    let mut last = created;
    let request_ts = request_doc.as_ref().and_then(|d| d.ts).unwrap_or(created);
    for m in &mut messages {
        match m.ts {
            Some(t) => last = t,
            None => {
                ctx.note(format!("{}: no received time: the previous one", m.label));
                m.ts = Some(last);
            }
        }
    }
    let horizon = now.unix_millis().saturating_add(limits.future_skew_ms);
    if let Some(t) = std::iter::once(created)
        .chain(messages.iter().filter_map(|m| m.ts))
        .find(|t| t.unix_millis() > horizon)
    {
        return Err(format!("a timestamp in the future: {t}"));
    }

    let mut b = Builder {
        status: Status::Pending,
        executor: None,
        steps: Vec::new(),
    };
    if !extra.is_empty()
        && let Some(doc) = &request_doc
    {
        let mess = blocks(&mut ctx, &doc.label, extra);
        if !mess.is_empty() {
            b.steps.push(Step::Message {
                ts: request_ts,
                actor: doc.actor.clone(),
                mess,
                pass: false,
            });
        }
    }

    let history = history(&mut ctx, &env);
    let env_status = match env.get("status") {
        None => None,
        Some(v) => match v.as_str().and_then(status_of) {
            Some(s) => Some(s),
            None => {
                ctx.note(format!(
                    "the envelope's status {v} is not a status: ignored"
                ));
                None
            }
        },
    };
    // History is the truth when every status entry names its message and it ends where
    // the envelope does (our own exports); otherwise the status blocks are (every MESS
    // writer), then the envelope has the last word.
    let by_history = env_status.is_some_and(|s| {
        history.iter().all(|h| h.has_ref)
            && history.last().map_or(Status::Pending, |h| h.status) == s
    });
    let count = messages.len();
    let mut before: Vec<Vec<&Entry>> = (0..count).map(|_| Vec::new()).collect();
    let mut trailing = Vec::new();
    if by_history {
        for h in &history {
            match h.message {
                Some(n) if (1..=count).contains(&n) => before[n - 1].push(h),
                Some(n) => {
                    ctx.note(format!(
                        "a history entry names message {n}, which is not there: applied last"
                    ));
                    trailing.push(h);
                }
                None => trailing.push(h),
            }
        }
    }
    for (i, m) in messages.into_iter().enumerate() {
        let ts = m.ts.unwrap_or(created);
        let mut mess_values = m.blocks;
        let pass = take_pass(&mut mess_values);
        if by_history {
            for h in &before[i] {
                b.entry(&mut ctx, h, ts);
            }
        } else if !pass {
            for code in mess_values.iter().filter_map(status_code) {
                match code {
                    Ok(s) if s != b.status => {
                        let executor = b.rule(s, &m.actor);
                        b.status(&mut ctx, ts, m.actor.clone(), s, executor);
                    }
                    Ok(_) => {}
                    Err(c) => ctx.note(format!("{}: status {c} is not a status", m.label)),
                }
            }
        }
        let mess = blocks(&mut ctx, &m.label, mess_values);
        if mess.is_empty() {
            ctx.note(format!("{}: no block left: message dropped", m.label));
            continue;
        }
        b.steps.push(Step::Message {
            ts,
            actor: m.actor,
            mess,
            pass,
        });
    }
    let last_ts = b.last_ts().unwrap_or(created);
    for h in trailing {
        b.entry(&mut ctx, h, last_ts);
    }

    // The envelope's status and assignee, when the messages end elsewhere (the MCP
    // server's cancel writes a `cancel` block and no status block).
    if let Some(want) = env_status {
        let want_executor = match env.get("executor") {
            None => b.executor.clone(),
            Some(Value::Null) => None,
            Some(Value::String(e)) => Some(ctx.executor(e)),
            Some(other) => {
                ctx.note(format!("the envelope's executor {other} is not an id"));
                b.executor.clone()
            }
        };
        if want != b.status || want_executor != b.executor {
            let entry = history.iter().rev().find(|h| h.status == want);
            let ts = entry
                .and_then(|h| h.at)
                .or(updated)
                .unwrap_or(last_ts)
                .max(last_ts);
            let actor = entry
                .and_then(|h| h.by.as_deref())
                .map_or(Actor::Exchange, |by| ctx.actor(by));
            ctx.note(format!(
                "the envelope says {} ({}); the messages end at {} ({}): a last status change \
                 records the envelope's",
                want.as_str(),
                want_executor.as_ref().map_or("no executor", |e| e.as_str()),
                b.status.as_str(),
                b.executor.as_ref().map_or("no executor", |e| e.as_str()),
            ));
            b.status(&mut ctx, ts, actor, want, want_executor);
        }
    }
    for (raw, id) in std::mem::take(&mut ctx.mapped) {
        ctx.note(format!(
            "actor {raw:?} is not a valid member id: recorded as {id}"
        ));
    }

    Ok(Parsed {
        source_ref,
        requestor,
        created,
        updated,
        intent,
        priority,
        request,
        steps: b.steps,
    })
}

struct Ctx<'a> {
    path: String,
    notes: &'a mut Vec<Note>,
    /// Foreign actor names mapped to member ids, reported once each.
    mapped: BTreeMap<String, String>,
}

impl Ctx<'_> {
    fn note(&mut self, message: impl Into<String>) {
        self.notes.push(Note {
            path: self.path.clone(),
            message: message.into(),
        });
    }

    fn executor(&mut self, raw: &str) -> ExecutorId {
        let (id, mapped) = names::executor_id(raw);
        if mapped {
            self.mapped.insert(raw.to_owned(), id.to_string());
        }
        id
    }

    fn actor(&mut self, raw: &str) -> Actor {
        let (a, mapped) = names::actor(raw);
        if mapped {
            self.mapped.insert(raw.to_owned(), a.to_string());
        }
        a
    }

    /// A message document, or `None` when it is dropped (an ack from the exchange, or
    /// nothing usable: noted).
    fn message(&mut self, label: String, doc: Value) -> Option<Doc> {
        let Value::Object(mut m) = doc else {
            self.note(format!("{label}: not a map: skipped"));
            return None;
        };
        let Some(Value::Array(items)) = m.remove("MESS").or_else(|| m.remove("mess")) else {
            self.note(format!("{label}: no MESS list: skipped"));
            return None;
        };
        let actor = match m.get("from") {
            Some(Value::String(f)) => self.actor(f),
            _ => {
                self.note(format!("{label}: no from: recorded as from `unknown`"));
                Actor::Member(ExecutorId::parse("unknown").expect("valid"))
            }
        };
        let ts = m
            .get("received")
            .or_else(|| m.get("ts"))
            .and_then(names::timestamp);
        let mut blocks = Vec::new();
        for item in items {
            match item {
                Value::Object(b) if b.len() == 1 => {
                    let known = b.keys().next().and_then(|k| BlockKind::parse(k)).is_some();
                    if known {
                        blocks.push(Value::Object(b));
                    } else {
                        let k = b.keys().next().cloned().unwrap_or_default();
                        self.note(format!("{label}: unknown block {k:?}: dropped"));
                    }
                }
                other => self.note(format!(
                    "{label}: a block that is not a one-key map: dropped ({})",
                    short(&other)
                )),
            }
        }
        let ack_only = blocks
            .iter()
            .all(|b| b.as_object().is_some_and(|o| o.contains_key("ack")));
        if actor == Actor::Exchange && ack_only && !blocks.is_empty() {
            return None;
        }
        if blocks.is_empty() {
            self.note(format!("{label}: no block left: message dropped"));
            return None;
        }
        let re = m.get("re").and_then(Value::as_str).map(str::to_owned);
        Some(Doc {
            label,
            actor,
            ts,
            blocks,
            re,
        })
    }
}

/// At most 80 characters of a value, for a note.
fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// Our intent bounds (protocol.md): not blank, at most 8 KiB, no control characters but
/// tab and newline.
fn check_intent(intent: &str) -> Result<(), String> {
    if intent.trim().is_empty() {
        return Err("the intent is blank".to_owned());
    }
    if intent.len() > 8 * 1024 {
        return Err(format!("the intent is {} bytes, over 8 KiB", intent.len()));
    }
    if intent
        .chars()
        .any(|c| c.is_control() && c != '\t' && c != '\n')
    {
        return Err("the intent holds control characters".to_owned());
    }
    Ok(())
}

/// A status name as MESSE-AF writes it: ours and the protocol's aliases;
/// `revision_requested` is the move back to `in_progress`.
fn status_of(s: &str) -> Option<Status> {
    match s {
        "revision_requested" => Some(Status::InProgress),
        s => Status::parse(s).ok(),
    }
}

/// The status code of a status block: `None` for other blocks, `Err` with the code as
/// written when it is not a status.
fn status_code(block: &Value) -> Option<Result<Status, String>> {
    let body = block.as_object()?.get("status")?;
    let code = body.get("code");
    Some(match code.and_then(Value::as_str).and_then(status_of) {
        Some(s) => Ok(s),
        None => Err(code.map_or("(none)".to_owned(), Value::to_string)),
    })
}

/// Whether the message's first status block says `pass: true`; the key is removed (the
/// event type, `offer_passed`, carries it; export writes it back).
fn take_pass(blocks: &mut [Value]) -> bool {
    let Some(body) = blocks
        .iter_mut()
        .find_map(|b| b.as_object_mut()?.get_mut("status")?.as_object_mut())
    else {
        return false;
    };
    if body.get("pass") == Some(&Value::Bool(true)) {
        body.shift_remove("pass");
        true
    } else {
        false
    }
}

fn blocks(ctx: &mut Ctx<'_>, label: &str, values: Vec<Value>) -> Vec<Block> {
    values
        .into_iter()
        .filter_map(|v| match Block::parse(&v) {
            Ok(b) => Some(b),
            Err(e) => {
                ctx.note(format!("{label}: {e}: dropped"));
                None
            }
        })
        .collect()
}

/// The status entries of the envelope's `history`.
fn history(ctx: &mut Ctx<'_>, env: &Map<String, Value>) -> Vec<Entry> {
    let Some(list) = env.get("history") else {
        return Vec::new();
    };
    let Some(list) = list.as_array() else {
        ctx.note("the envelope's history is not a list: ignored");
        return Vec::new();
    };
    list.iter()
        .filter_map(Value::as_object)
        .filter_map(|h| {
            let status = h.get("action")?.as_str().and_then(status_of)?;
            let r = h.get("ref").and_then(Value::as_str);
            Some(Entry {
                status,
                at: h.get("at").and_then(names::timestamp),
                by: h.get("by").and_then(Value::as_str).map(str::to_owned),
                message: r.and_then(message_number),
                has_ref: r.is_some(),
                executor: h.get("executor").map(|e| e.as_str().map(str::to_owned)),
            })
        })
        .collect()
}

/// `NNN` of a message ref `{thread-ref}/{type}-{NNN}[-{token}]`.
fn message_number(r: &str) -> Option<usize> {
    let (_, last) = r.rsplit_once('/')?;
    last.split('-').nth(1)?.parse().ok()
}

struct Builder {
    status: Status,
    executor: Option<ExecutorId>,
    steps: Vec<Step>,
}

impl Builder {
    /// The assignee after a move to `to` by `actor`: the claimer on a claim, none back in
    /// pending, else unchanged.
    fn rule(&self, to: Status, actor: &Actor) -> Option<ExecutorId> {
        match (to, actor) {
            (Status::Claimed, Actor::Member(m)) => Some(m.clone()),
            (Status::Pending, _) => None,
            _ => self.executor.clone(),
        }
    }

    fn status(
        &mut self,
        ctx: &mut Ctx<'_>,
        ts: Timestamp,
        actor: Actor,
        to: Status,
        executor: Option<ExecutorId>,
    ) {
        let from = self.status;
        let revision =
            matches!(from, Status::Completed | Status::Partial) && to == Status::InProgress;
        if from.is_terminal()
            && from != to
            && !revision
            && !(from == Status::Partial && to == Status::Completed)
        {
            ctx.note(format!(
                "a move the transition table refuses, kept as recorded: {} -> {}",
                from.as_str(),
                to.as_str()
            ));
        }
        self.status = to;
        self.executor = executor.clone();
        self.steps.push(Step::Status {
            ts,
            actor,
            status: to,
            executor,
        });
    }

    fn entry(&mut self, ctx: &mut Ctx<'_>, h: &Entry, fallback: Timestamp) {
        let actor = h.by.as_deref().map_or(Actor::Exchange, |by| ctx.actor(by));
        let executor = match &h.executor {
            Some(Some(e)) => Some(ctx.executor(e)),
            Some(None) => None,
            None => self.rule(h.status, &actor),
        };
        self.status(ctx, h.at.unwrap_or(fallback), actor, h.status, executor);
    }

    fn last_ts(&self) -> Option<Timestamp> {
        self.steps.last().map(|s| match s {
            Step::Status { ts, .. } | Step::Message { ts, .. } => *ts,
        })
    }
}

/// Inlines attachment files as `data:` URIs and checks inline ones (D3).
struct Resolver<'a> {
    files: &'a mut dyn Attachments,
    limits: &'a Limits,
    used: u64,
}

impl Resolver<'_> {
    fn value(&mut self, ctx: &mut Ctx<'_>, label: &str, v: &mut Value) -> Result<(), String> {
        match v {
            Value::Object(map) => {
                if map.len() == 1
                    && let Some((k, inner)) = map.iter_mut().next()
                    && MEDIA_KEYS.contains(&k.as_str())
                    && let Value::Object(obj) = inner
                    && let Some(name) = obj
                        .get("file")
                        .or_else(|| obj.get("path"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                {
                    if let Some(new) = self.inline(ctx, label, obj, &name)? {
                        *inner = new;
                    }
                    return Ok(());
                }
                for val in map.values_mut() {
                    self.value(ctx, label, val)?;
                }
            }
            Value::Array(items) => {
                for x in items {
                    self.value(ctx, label, x)?;
                }
            }
            Value::String(s) if s.starts_with("data:") => {
                let approx = (s.len() as u64).saturating_mul(3) / 4;
                if approx > self.limits.attachment_bytes {
                    return Err(format!(
                        "{label}: an inline data: URI of about {approx} bytes, over the \
                         {}-byte attachment limit",
                        self.limits.attachment_bytes
                    ));
                }
                self.add(label, approx)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn add(&mut self, label: &str, bytes: u64) -> Result<(), String> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.limits.thread_bytes {
            return Err(format!(
                "{label}: the thread's attachments pass {} bytes",
                self.limits.thread_bytes
            ));
        }
        Ok(())
    }

    /// The item's new value (`"data:…"`, or `{uri: "data:…", …}` when it carries more than
    /// a name, type and size), or `None` when the reference stays as it is (noted).
    fn inline(
        &mut self,
        ctx: &mut Ctx<'_>,
        label: &str,
        obj: &Map<String, Value>,
        name: &str,
    ) -> Result<Option<Value>, String> {
        if !is_attachment_name(name) {
            if !name.contains("://") {
                ctx.note(format!(
                    "{label}: attachment {name:?} not read: only att-* files of the thread's \
                     own folder are"
                ));
            }
            return Ok(None);
        }
        let bytes = match self.files.read(name, self.limits.attachment_bytes) {
            Ok(b) => b,
            Err(why) => {
                ctx.note(format!("{label}: attachment {name} not imported: {why}"));
                return Ok(None);
            }
        };
        self.add(label, bytes.len() as u64)?;
        let mime = obj
            .get("mime")
            .or_else(|| obj.get("type"))
            .and_then(Value::as_str)
            .filter(|m| is_mime(m))
            .unwrap_or_else(|| mime_for_name(name));
        let uri = format!(
            "data:{mime};base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        );
        let others: Map<String, Value> = obj
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "file" | "path" | "size"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if others.keys().all(|k| k == "mime") {
            return Ok(Some(Value::String(uri)));
        }
        let mut m = Map::new();
        m.insert("uri".into(), Value::String(uri));
        m.extend(others);
        Ok(Some(Value::Object(m)))
    }
}
