//! A thread's events in, its MESSE-AF v2.1 folder out (messe-af.md §4.2): file names and
//! bytes, for the caller to write. Pure and deterministic: the same events give the same
//! bytes.

use base64::Engine;
use mess_core::wire::decode_data_uri;
use mess_core::{Actor, BlockKind, Event, EventKind, ExecutorId, Status, Thread};
use serde_json::{Map, Value, json};

use crate::import::source_ref;
use crate::media::{MEDIA_KEYS, extension_for_mime, kind_for_mime};
use crate::yaml;

/// How export lays threads out.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions {
    /// A `data:` URI longer than this (in characters) moves out to an `att-` file; the
    /// spec's 768 KiB by default, 0 for every one.
    pub inline_max_bytes: usize,
    /// Where a thread's YAML is split into overflow files (`001-…`), the spec's 1 MiB
    /// by default; a single message larger than that still goes whole into one file.
    pub yaml_file_bytes: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            inline_max_bytes: 768 * 1024,
            yaml_file_bytes: 1024 * 1024,
        }
    }
}

/// One thread, ready to write under `exchange/state={folder}/{dir}/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// Its state folder's name (`received`, `executing`, `finished`, `canceled`).
    pub folder: &'static str,
    /// Its folder: its MESSE-AF ref (a path-safe ref).
    pub dir: String,
    /// `(file name, bytes)`: the YAML files, then the attachments.
    pub files: Vec<(String, Vec<u8>)>,
}

/// The state folder a status goes in (messe-af.md §3.2).
pub fn folder(status: Status) -> &'static str {
    use mess_core::status::Group;
    match status.group() {
        Group::Open => "received",
        Group::Active => "executing",
        Group::Terminal if matches!(status, Status::Completed | Status::Partial) => "finished",
        Group::Terminal => "canceled",
    }
}

/// The folder of the thread whose events are `events` (its own, in `seq` order, from
/// its `thread_created` on).
pub fn export_thread(events: &[Event], options: &ExportOptions) -> Result<Exported, String> {
    let (first, rest) = events.split_first().ok_or("no events")?;
    let (EventKind::ThreadCreated(created), Some(thread)) =
        (&first.kind, Thread::from_created(first))
    else {
        return Err("its first event is not thread_created".to_owned());
    };
    let mut thread = thread;
    for e in rest {
        thread.apply(e);
    }
    let r = events
        .iter()
        .find_map(source_ref)
        .unwrap_or(thread.thread_ref.as_str())
        .to_owned();
    if !crate::names::is_path_safe_ref(&r) {
        return Err(format!("{r:?} is not a path-safe ref"));
    }
    let mut files = Files {
        options,
        attachments: Vec::new(),
    };

    let mut history = vec![json!({
        "action": "created",
        "at": first.ts.to_string(),
        "by": created.requestor_id.as_str(),
    })];
    let mut request = Value::Object(created.request.clone());
    files.extract(&mut request);
    let mut docs = vec![
        yaml::document(&json!({
            "from": first.actor_id.as_str(),
            "received": first.ts.to_string(),
            "channel": "api",
            "MESS": [{"v": "1.0.0"}, {"request": request}],
        })),
        yaml::document(&json!({
            "from": "exchange",
            "received": first.ts.to_string(),
            "MESS": [{"ack": {
                "re": created.request.get("id").and_then(Value::as_str).unwrap_or("last"),
                "ref": r,
            }}],
        })),
    ];

    let mut executor: Option<ExecutorId> = None;
    let mut waiting: Vec<Map<String, Value>> = Vec::new();
    let mut n = 0;
    for e in rest {
        match &e.kind {
            EventKind::StatusChanged(c) => {
                let mut h = Map::new();
                h.insert("action".into(), c.new_status.as_str().into());
                h.insert("at".into(), e.ts.to_string().into());
                h.insert("by".into(), e.actor_id.as_str().into());
                let rule = match (c.new_status, &e.actor_id) {
                    (Status::Claimed, Actor::Member(m)) => Some(m.clone()),
                    (Status::Pending, _) => None,
                    _ => executor.clone(),
                };
                if rule != c.executor_id {
                    h.insert(
                        "executor".into(),
                        c.executor_id
                            .as_ref()
                            .map_or(Value::Null, |x| x.as_str().into()),
                    );
                }
                executor = c.executor_id.clone();
                waiting.push(h);
            }
            EventKind::MessageAdded(m) | EventKind::OfferPassed(m) => {
                n += 1;
                let mut blocks: Vec<Value> = m
                    .mess
                    .iter()
                    .map(|b| serde_json::to_value(b).unwrap_or(Value::Null))
                    .collect();
                let kind = message_kind(&m.mess);
                for mut h in waiting.drain(..) {
                    h.insert("ref".into(), format!("{r}/{kind}-{n:03}").into());
                    history.push(Value::Object(h));
                }
                if matches!(e.kind, EventKind::OfferPassed(_))
                    && let Some(body) = blocks
                        .iter_mut()
                        .find_map(|b| b.get_mut("status")?.as_object_mut())
                    && !body.contains_key("pass")
                {
                    body.insert("pass".into(), Value::Bool(true));
                }
                for b in &mut blocks {
                    files.extract(b);
                }
                let mut doc = Map::new();
                doc.insert("from".into(), e.actor_id.as_str().into());
                doc.insert("received".into(), e.ts.to_string().into());
                if matches!(e.actor_id, Actor::Member(_)) {
                    doc.insert("channel".into(), "api".into());
                }
                doc.insert("re".into(), r.clone().into());
                doc.insert("MESS".into(), Value::Array(blocks));
                docs.push(yaml::document(&Value::Object(doc)));
            }
            _ => {}
        }
    }
    // Status changes no message follows name the thread itself: every entry has a ref,
    // which tells import that this history is complete.
    for mut h in waiting {
        h.insert("ref".into(), r.clone().into());
        history.push(Value::Object(h));
    }

    let mut env = Map::new();
    env.insert("ref".into(), r.clone().into());
    if let Some(Value::String(id)) = created.request.get("id") {
        env.insert("client_id".into(), id.clone().into());
    }
    env.insert("requestor".into(), thread.requestor_id.as_str().into());
    env.insert(
        "executor".into(),
        thread
            .executor_id
            .as_ref()
            .map_or(Value::Null, |x| x.as_str().into()),
    );
    env.insert("status".into(), thread.status.as_str().into());
    env.insert("created".into(), thread.created_at.to_string().into());
    env.insert("updated".into(), thread.updated_at.to_string().into());
    if let Some(d) = thread.deadline {
        env.insert("expires".into(), d.to_string().into());
    }
    env.insert("intent".into(), thread.intent.clone().into());
    env.insert("priority".into(), thread.priority.as_str().into());
    env.insert("history".into(), Value::Array(history));
    let envelope = yaml::document(&Value::Object(env));

    // 000 holds the envelope and the first messages; overflow files the rest, each cut
    // before the message that would take it past the limit.
    let mut yaml_files: Vec<Vec<&str>> = vec![vec![&envelope]];
    let mut size = envelope.len();
    for d in &docs {
        let cost = d.len() + 4;
        let current = yaml_files.last_mut().expect("one file at least");
        if size + cost > options.yaml_file_bytes && current.len() > 1 {
            yaml_files.push(vec![d]);
            size = d.len();
        } else {
            current.push(d);
            size += cost;
        }
    }
    let mut out: Vec<(String, Vec<u8>)> = yaml_files
        .into_iter()
        .enumerate()
        .map(|(i, docs)| {
            (
                format!("{i:03}-{r}.messe-af.yaml"),
                yaml::stream(docs).into_bytes(),
            )
        })
        .collect();
    out.extend(files.attachments);
    Ok(Exported {
        folder: folder(thread.status),
        dir: r,
        files: out,
    })
}

/// The `type` of a message ref, from the message's first block (as the MESS library
/// picks it).
fn message_kind(mess: &[mess_core::Block]) -> &'static str {
    match mess.first() {
        Some(b) if b.kind() == BlockKind::Status => match b.status_code() {
            Some(Status::Claimed) => "claim",
            _ => "status",
        },
        Some(b) => match b.kind() {
            BlockKind::Response => "response",
            BlockKind::Query => "question",
            BlockKind::Reply | BlockKind::Answer => "answer",
            BlockKind::Cancel => "cancel",
            _ => "followup",
        },
        None => "followup",
    }
}

struct Files<'a> {
    options: &'a ExportOptions,
    attachments: Vec<(String, Vec<u8>)>,
}

impl Files<'_> {
    /// Moves `{<key>: "data:…"}` items longer than the inline limit out to `att-` files,
    /// as `{<key>: {file, mime, size}}`: exactly what import turns back into the same
    /// string. A URI that would not come back byte for byte (not base64, or not in its
    /// canonical form) stays inline.
    fn extract(&mut self, v: &mut Value) {
        match v {
            Value::Object(map) => {
                if map.len() == 1
                    && let Some((k, inner)) = map.iter_mut().next()
                    && MEDIA_KEYS.contains(&k.as_str())
                    && let Value::String(s) = inner
                    && s.len() > self.options.inline_max_bytes
                    && let Some((mime, bytes)) = decode_data_uri(s)
                    && *s
                        == format!(
                            "data:{mime};base64,{}",
                            base64::engine::general_purpose::STANDARD.encode(&bytes)
                        )
                {
                    let name = format!(
                        "att-{:03}-{}-{k}.{}",
                        self.attachments.len() + 1,
                        kind_for_mime(&mime),
                        extension_for_mime(&mime)
                    );
                    *inner = json!({"file": name, "mime": mime, "size": bytes.len()});
                    self.attachments.push((name, bytes));
                    return;
                }
                for x in map.values_mut() {
                    self.extract(x);
                }
            }
            Value::Array(items) => {
                for x in items {
                    self.extract(x);
                }
            }
            _ => {}
        }
    }
}
