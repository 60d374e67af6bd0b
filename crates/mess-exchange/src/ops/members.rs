//! `mess-exchange members list | remove | reset-key`: an exchange's members, on a stopped
//! store. Every change is decided by mess-core (`Exchange::decide`, the exchange itself
//! acting) and stored the way the server stores it: the member record first, then the
//! events.

use std::sync::Arc;

use mess_core::{
    Actor, Command, Decision, Env, Exchange, ExecutorId, Member, OsEntropy, Outcome, Storage,
    SystemClock,
};
use serde_json::json;

use super::{HoldArgs, Holding, exchange_id, stopped};
use crate::StorageArgs;

/// `members --help`.
pub const MEMBERS_ABOUT: &str = "\
List an exchange's members, remove one, or give one a new API key.

On a data directory, run these with the server stopped (the same STORAGE_* settings as the \
server): they take the store's lock and refuse while a server runs. On S3, remove and \
reset-key hold the exchange's lease while they work, so replicas (ADVERTISE_URL) may keep \
running: they answer the exchange's requests 503 meanwhile (clients retry) and read the \
change when they take it back. A single S3 server without ADVERTISE_URL takes no lease and \
reads members only at start: stop it first. Changes are recorded in the log as the \
exchange's own (actor `exchange`).";

const LIST_ABOUT: &str = "\
Print an exchange's members: id, display name, capabilities, notification channel types, \
when each registered and was last seen (its latest event), and the threads it holds \
(claimed, in progress...). No key or channel address is ever printed. --json prints one \
JSON array. See mess-exchange members --help for when to run it.";

const REMOVE_ABOUT: &str = "\
Remove a member from an exchange, as if it had left: every thread it holds (claimed, in \
progress, waiting...) goes back to pending, recorded as the exchange's move with a status \
message saying why (reason member_removed), so others can take it; then its record is \
deleted (its key stops working) and executor_removed is recorded. Threads it asked for stay \
as they are. Use it for a lost phone, a retired agent or a member who cannot leave itself. \
See mess-exchange members --help for when to run it.";

const RESET_KEY_ABOUT: &str = "\
Give a member a new API key, as its own rotate-key would: the old key stops working at \
once. The new key is printed once, alone on stdout (so KEY=$(mess-exchange members \
reset-key ...) captures it); it is stored only as a hash and cannot be shown again. Use it \
when a member lost its key or the key leaked. See mess-exchange members --help for when \
to run it.";

/// `mess-exchange members`.
#[derive(Debug, clap::Subcommand)]
pub enum MembersCmd {
    /// Print an exchange's members (id, name, capabilities, created, last seen, claims).
    #[command(long_about = LIST_ABOUT)]
    List(ListArgs),
    /// Remove a member: its claims go back to pending, then its record is deleted.
    #[command(long_about = REMOVE_ABOUT)]
    Remove(MemberArgs),
    /// Give a member a new API key (printed once); the old one stops working.
    #[command(long_about = RESET_KEY_ABOUT)]
    ResetKey(MemberArgs),
}

/// `members list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The exchange (its id, e.g. home).
    #[arg(long)]
    pub exchange: String,
    /// Print one JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// `members remove` and `members reset-key`.
#[derive(Debug, clap::Args)]
pub struct MemberArgs {
    /// The exchange (its id, e.g. home).
    #[arg(long)]
    pub exchange: String,
    /// The member's executor id.
    pub member: String,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub hold: HoldArgs,
}

/// Runs a `members` command.
pub async fn members(cmd: MembersCmd) -> Result<(), String> {
    match cmd {
        MembersCmd::List(args) => list(args).await,
        MembersCmd::Remove(args) => changing(&args, remove).await,
        MembersCmd::ResetKey(args) => changing(&args, reset_key).await,
    }
}

/// The store and the exchange, replayed as the server's start does, held while the
/// command works ([`Holding`]).
struct Opened {
    storage: Arc<dyn Storage>,
    exchange: Exchange,
    holding: Holding,
}

/// Opens the store and reads the exchange: under its lease on S3 when `hold` is given (a
/// command that changes it), else under the data directory's lock (S3: none).
async fn open(
    storage: &StorageArgs,
    exchange: &str,
    hold: Option<&HoldArgs>,
) -> Result<Opened, String> {
    let id = exchange_id(exchange)?;
    let config = storage.config();
    let (holding, taken) = match hold {
        Some(args) => Holding::take(&config, &id, args).await?,
        None => (Holding::Lock(stopped(&config)?), None),
    };
    if let (Some(taken), Some(hold)) = (taken, holding.lease()) {
        return Ok(Opened {
            storage: hold.storage(),
            exchange: taken.exchange,
            holding,
        });
    }
    let storage = mess_storage::open(&config)
        .await
        .map_err(|e| e.to_string())?;
    let mut replayed = storage
        .replay()
        .await
        .map_err(|e| format!("cannot read the event log: {e}"))?;
    let Some(exchange) = replayed.exchanges.remove(&id) else {
        let mut known: Vec<String> = replayed.exchanges.keys().map(|x| x.to_string()).collect();
        known.sort();
        let known = if known.is_empty() {
            "it holds none".to_owned()
        } else {
            format!("it holds {}", known.join(", "))
        };
        return Err(format!("no exchange {id} in this store ({known})"));
    };
    Ok(Opened {
        storage,
        exchange,
        holding,
    })
}

/// Runs `change` on the exchange held, then lets go of it, whatever the outcome.
async fn changing(
    args: &MemberArgs,
    change: impl AsyncFnOnce(&mut Opened, &str) -> Result<(), String>,
) -> Result<(), String> {
    let mut opened = open(&args.storage, &args.exchange, Some(&args.hold)).await?;
    let done = change(&mut opened, &args.member).await;
    opened.holding.release().await;
    done
}

fn member<'a>(x: &'a Exchange, id: &str) -> Result<&'a Arc<Member>, String> {
    let executor =
        ExecutorId::parse(id).map_err(|_| format!("{id:?} is not a valid executor id"))?;
    x.member(&executor)
        .ok_or_else(|| format!("no member {executor} in exchange {}", x.id()))
}

fn env() -> Env<'static> {
    Env {
        clock: &SystemClock,
        entropy: &OsEntropy,
    }
}

/// Decides `cmd` as the exchange itself.
fn decide(x: &Exchange, cmd: Command) -> Result<Decision, String> {
    x.decide(&Actor::Exchange, cmd, env())
        .map_err(|e| format!("the exchange refused: {e}"))
}

async fn list(args: ListArgs) -> Result<(), String> {
    let opened = open(&args.storage, &args.exchange, None).await?;
    let x = &opened.exchange;
    let mut members: Vec<&Arc<Member>> = x.members().collect();
    members.sort_by(|a, b| a.executor_id.cmp(&b.executor_id));
    let rows: Vec<serde_json::Value> = members
        .iter()
        .map(|m| {
            let holds: Vec<String> = x
                .held_by(&m.executor_id)
                .iter()
                .map(ToString::to_string)
                .collect();
            json!({
                "executor_id": m.executor_id,
                "display_name": m.display_name,
                "capabilities": m.capabilities,
                "channels": m.notifications.iter().map(|c| c.kind()).collect::<Vec<_>>(),
                "created_at": m.created_at.to_string(),
                "updated_at": m.updated_at.to_string(),
                "last_seen": m.last_seen.to_string(),
                "holds": holds,
            })
        })
        .collect();
    if args.json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no members in exchange {}", x.id());
        return Ok(());
    }
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) if items.is_empty() => "-".to_owned(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    let columns = [
        ("EXECUTOR", "executor_id"),
        ("NAME", "display_name"),
        ("CAPABILITIES", "capabilities"),
        ("CHANNELS", "channels"),
        ("CREATED", "created_at"),
        ("LAST SEEN", "last_seen"),
        ("HOLDS", "holds"),
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|(_, k)| text(&r[*k])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<&str>| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    println!("{}", line(columns.iter().map(|(h, _)| *h).collect()));
    for row in &cells {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
    println!("{} members in exchange {}", rows.len(), x.id());
    Ok(())
}

async fn remove(opened: &mut Opened, member_id: &str) -> Result<(), String> {
    let target = Member::clone(member(&opened.exchange, member_id)?);
    let id = target.executor_id.clone();
    let x = &mut opened.exchange;
    // First the claims, each decided against the state the previous one left.
    let mut released = Vec::new();
    let mut events = Vec::new();
    for r in x.held_by(&id) {
        let from = x.thread(&r).map(|t| t.status);
        let d = decide(
            x,
            Command::ReleaseClaim {
                thread: r.clone(),
                executor: id.clone(),
            },
        )?;
        for e in &d.events {
            x.apply(e);
        }
        events.extend(d.events);
        released.push((r, from));
    }
    let removal = decide(
        x,
        Command::Remove {
            executor: id.clone(),
        },
    )?;
    let Outcome::Removed(member) = &removal.outcome else {
        return Err("the exchange did not remove the member".into());
    };
    // The claims are stored before the member goes: a crash in between leaves a member
    // without claims, and running the command again finishes the job.
    if !events.is_empty() {
        opened
            .storage
            .append(&events)
            .await
            .map_err(|e| format!("cannot store the released claims: {e}; nothing changed"))?;
    }
    for (r, from) in &released {
        let from = from.map_or("?", |s| s.as_str());
        println!("released {r} ({from} -> pending)");
    }
    opened.storage.delete_member(member).await.map_err(|e| {
        format!("cannot delete the member record: {e}; run the command again to finish")
    })?;
    opened.storage.append(&removal.events).await.map_err(|e| {
        format!("the member is removed, but its executor_removed event could not be stored: {e}")
    })?;
    println!(
        "removed {id} from exchange {} ({} claims released)",
        x.id(),
        released.len()
    );
    Ok(())
}

async fn reset_key(opened: &mut Opened, member_id: &str) -> Result<(), String> {
    let x = &opened.exchange;
    let id = member(x, member_id)?.executor_id.clone();
    let d = decide(
        x,
        Command::RotateKey {
            executor: id.clone(),
        },
    )?;
    let Outcome::KeyRotated { member, api_key } = d.outcome else {
        return Err("the exchange did not replace the key".into());
    };
    // The record first, as the server does: the key works once the record is stored.
    opened
        .storage
        .replace_member(&member)
        .await
        .map_err(|e| format!("cannot store the new key: {e}; the old key still works"))?;
    let logged = opened.storage.append(&d.events).await;
    println!("{}", api_key.expose());
    eprintln!(
        "New API key for {id} in exchange {} (above, on stdout). Save it now: it is shown \
         only this once and cannot be retrieved again. The old key no longer works.",
        x.id()
    );
    logged.map_err(|e| {
        format!("the new key is stored, but its executor_key_rotated event could not be: {e}")
    })
}
