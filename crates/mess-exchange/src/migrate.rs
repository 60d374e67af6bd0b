//! `mess-exchange import` and `export`: MESSE-AF files in and out of a stopped store.
//! The format is `mess-messe`'s; this only opens the store, replays or loads it, appends
//! and prints the report.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mess_core::{Clock, Event, ExchangeId, OsEntropy, SystemClock};
use mess_messe::{ExportOptions, Fingerprint, Importer, Limits, Planned, Reader, Report};

use crate::StorageArgs;

/// `import --help`.
pub const IMPORT_ABOUT: &str = "\
Bring in the threads of a file-based MESS exchange (MESSE-AF), as a migration from a \
GitHub-based or local exchange. DIR is read whole: a git checkout's root, its exchange/ \
folder or one state=… folder; v1 files ({ref}.messe-af.yaml) and v2/v2.1 folders ({ref}/ \
with 000-{ref}.messe-af.yaml, overflow files and att-* attachments) are both read.

Each thread becomes history in the store (thread_created, status_changed, message_added, \
offer_passed), in its final state with its messages; attachments are stored inline as \
data: URIs. No notification is sent and no hook fires. Refs are kept when the exchange \
takes them; others get a ref on the same date, reported (export writes the original back).

Run it on a stopped store (the same STORAGE_* and S3_* settings as the server): the server \
reads the log only at start. It is idempotent: a thread the exchange already holds is left \
alone, so a second run adds nothing. Every file left out, and every change made to a \
thread on the way (an unknown block dropped, an actor id mapped...), is printed with why. \
Nothing outside DIR is read: symbolic links are never followed, and attachment names must \
be att-* files of the thread's own folder.";

/// `export --help`.
pub const EXPORT_ABOUT: &str = "\
Write an exchange's threads as MESSE-AF v2.1 folders: DIR/exchange/state={received, \
executing,finished,canceled}/{ref}/000-{ref}.messe-af.yaml (split at 1 MiB into 001-…), \
the layout git-backed MESS tools read. Binaries over --inline-max-bytes move out to att-* \
files; a member's pass on an offer is written as a status block with pass: true. DIR must \
not hold an exchange/ folder with anything in it. Reads the store (the same STORAGE_* and \
S3_* settings as the server); safe while the server runs, though a running server's latest \
writes may be missing.";

/// `mess-exchange import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The directory to read (a MESSE-AF exchange).
    pub dir: PathBuf,
    /// The exchange the threads go into (its id, e.g. home).
    #[arg(long)]
    pub exchange: String,
    /// Read and report everything, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The largest attachment read, in bytes; a larger file is left out and reported.
    #[arg(long, default_value_t = 20 * 1024 * 1024)]
    pub max_attachment_bytes: u64,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// `mess-exchange export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The exchange to export (its id, e.g. home).
    #[arg(long)]
    pub exchange: String,
    /// The directory to write into (created if missing).
    pub dir: PathBuf,
    /// A data: URI longer than this many characters moves out to an att-* file (the
    /// format's 768 KiB; 0 moves every one out).
    #[arg(long, default_value_t = 768 * 1024)]
    pub inline_max_bytes: usize,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// `--exchange`, parsed (also the operator commands').
pub(crate) fn exchange_id(s: &str) -> Result<ExchangeId, String> {
    ExchangeId::parse(s).map_err(|_| format!("--exchange {s:?} is not a valid exchange id"))
}

/// Events appended at once: one write and one sync for many threads, and no thread's
/// events split between two appends.
const BATCH_EVENTS: usize = 8192;

/// Reads DIR, appends the new threads' events, prints the report.
pub async fn import(args: ImportArgs) -> Result<(), String> {
    let exchange = exchange_id(&args.exchange)?;
    if !args.dir.is_dir() {
        return Err(format!("{} is not a directory", args.dir.display()));
    }
    let config = args.storage.config();
    let storage = mess_storage::open(&config)
        .await
        .map_err(|e| e.to_string())?;
    // Not behind a running server's back (it would never see these threads).
    let _lock = mess_storage::lock_store(&config).map_err(|e| e.to_string())?;
    let replayed = storage
        .replay()
        .await
        .map_err(|e| format!("cannot read the event log: {e}"))?;
    let state = replayed.exchanges.get(&exchange);
    let now = SystemClock.now();
    let mut report = Report::default();
    let limits = Limits {
        attachment_bytes: args.max_attachment_bytes,
        ..Limits::default()
    };
    let mut reader = Reader::new(&args.dir, limits, now, &mut report)
        .map_err(|e| format!("cannot read {}: {e}", args.dir.display()))?;
    let mut importer = Importer::new(
        exchange.clone(),
        state.map_or(0, |x| x.head()),
        |r: &mess_core::ThreadRef| state.and_then(|x| x.thread(r)).map(|t| Fingerprint::of(t)),
    );
    let mut batch: Vec<Event> = Vec::new();
    let mut written = 0;
    let mut kept_blobs = 0;
    while let Some(read) = reader.next(&mut report) {
        match importer.plan(&read.parsed, &OsEntropy) {
            Ok(Planned::New {
                thread_ref,
                renamed,
                mut events,
            }) => {
                // Photos as the server keeps them: stored once, the events refer to them
                // (written before the events that name them).
                let blobs = match take_blobs(&mut events) {
                    Ok(blobs) => blobs,
                    Err(why) => {
                        report.skip(read.path, why);
                        continue;
                    }
                };
                if !args.dry_run {
                    for b in &blobs {
                        storage
                            .put_blob(&exchange, &b.sha256, &b.bytes)
                            .await
                            .map_err(|e| format!("cannot store an attachment: {e}"))?;
                    }
                }
                kept_blobs += blobs.len();
                report.imported += 1;
                report.events += events.len();
                if renamed {
                    report.renamed.push((
                        read.path.clone(),
                        read.parsed.source_ref.clone(),
                        thread_ref.to_string(),
                    ));
                }
                if let Some(d) = mess_messe::import::passed_deadline(&events, now) {
                    report.notes.push(mess_messe::Note {
                        path: read.path,
                        message: format!(
                            "its deadline ({d}) has passed: the server expires it when it starts"
                        ),
                    });
                }
                batch.extend(events);
            }
            Ok(Planned::Present(r)) => {
                report.present += 1;
                report.skip(read.path, format!("already in the exchange as {r}"));
            }
            Err(why) => report.skip(read.path, why),
        }
        if batch.len() >= BATCH_EVENTS {
            written += append(&*storage, &mut batch, args.dry_run, written, &report).await?;
        }
    }
    append(&*storage, &mut batch, args.dry_run, written, &report).await?;
    println!("{report}");
    if kept_blobs > 0 {
        println!("{kept_blobs} attachments stored once as blobs (blobs/exchange={exchange}/)");
    }
    if args.dry_run {
        println!("dry run: nothing was written");
    }
    Ok(())
}

async fn append(
    storage: &dyn mess_core::Storage,
    batch: &mut Vec<Event>,
    dry_run: bool,
    written: usize,
    report: &Report,
) -> Result<usize, String> {
    if batch.is_empty() || dry_run {
        batch.clear();
        return Ok(0);
    }
    if let Err(e) = storage.append(batch).await {
        println!("{report}");
        return Err(format!(
            "storage refused a write after {written} events ({e}); run the import again: \
             threads already written are left alone"
        ));
    }
    let n = batch.len();
    batch.clear();
    Ok(n)
}

/// Loads the store and writes every thread of the exchange under DIR.
pub async fn export(args: ExportArgs) -> Result<(), String> {
    let exchange = exchange_id(&args.exchange)?;
    mess_messe::fs::check_export_target(&args.dir)?;
    let storage = mess_storage::open(&args.storage.config())
        .await
        .map_err(|e| e.to_string())?;
    let loaded = storage
        .load()
        .await
        .map_err(|e| format!("cannot read the event log: {e}"))?;
    let mut threads: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for e in loaded.events {
        if e.exchange_id != exchange {
            continue;
        }
        if let Some(r) = &e.thread_ref {
            threads.entry(r.to_string()).or_default().push(e);
        }
    }
    let options = ExportOptions {
        inline_max_bytes: args.inline_max_bytes,
        ..ExportOptions::default()
    };
    let (mut exported, mut files, mut skipped) = (0, 0, 0);
    for (r, mut events) in threads {
        events.sort_by_key(|e| e.seq);
        restore_blobs(&*storage, &exchange, &mut events).await?;
        match mess_messe::export_thread(&events, &options) {
            Ok(t) => {
                mess_messe::fs::write(&args.dir, &t)
                    .map_err(|e| format!("cannot write {r} under {}: {e}", args.dir.display()))?;
                exported += 1;
                files += t.files.len();
            }
            Err(why) => {
                skipped += 1;
                println!("skipped  {r}: {why}");
            }
        }
    }
    println!(
        "{exported} threads exported to {} ({files} files), {skipped} skipped",
        args.dir.join("exchange").display()
    );
    Ok(())
}

/// Puts each attachment kept as a blob back into `events` as the `data:` URI it was sent
/// as (read from the store), so that an export carries the bytes. A blob missing from the
/// store is an error: the export would lose it.
async fn restore_blobs(
    storage: &dyn mess_core::Storage,
    exchange: &mess_core::ExchangeId,
    events: &mut [Event],
) -> Result<(), String> {
    let mut read: std::collections::HashMap<String, Vec<u8>> = std::collections::HashMap::new();
    for e in events.iter_mut() {
        let line = serde_json::to_string(&*e).map_err(|err| err.to_string())?;
        let wanted = mess_core::blob::referenced(&line);
        if wanted.is_empty() {
            continue;
        }
        for sha in wanted {
            if read.contains_key(sha) {
                continue;
            }
            let bytes = storage
                .get_blob(exchange, sha)
                .await
                .map_err(|err| format!("cannot read attachment {sha}: {err}"))?
                .ok_or_else(|| format!("attachment {sha} is missing from the store"))?;
            read.insert(sha.to_owned(), bytes);
        }
        let restored = mess_core::blob::restore_json(&line, |sha| read.get(sha));
        *e = serde_json::from_str(&restored).map_err(|err| err.to_string())?;
    }
    Ok(())
}

/// Takes the large `data:` URIs out of imported events, as the API takes them out of a
/// client's body (`mess_core::blob`): the request block (its intent stays inline) and each
/// message's blocks. A thread whose text poses as a reference is refused.
fn take_blobs(events: &mut [Event]) -> Result<Vec<mess_core::blob::Blob>, String> {
    use mess_core::EventKind;
    let mut out: Vec<mess_core::blob::Blob> = Vec::new();
    for e in events.iter_mut() {
        let taken = match &mut e.kind {
            EventKind::ThreadCreated(c) => {
                let mut v = serde_json::Value::Object(std::mem::take(&mut c.request));
                let taken = mess_core::blob::extract(&mut v, &["intent"]);
                if let serde_json::Value::Object(map) = v {
                    c.request = map;
                }
                taken
            }
            EventKind::MessageAdded(m) | EventKind::OfferPassed(m) => {
                let mut v = serde_json::to_value(&m.mess).map_err(|e| e.to_string())?;
                let taken = mess_core::blob::extract(&mut v, &[]);
                m.mess = mess_core::Block::parse_list(&v).map_err(|e| e.to_string())?;
                taken
            }
            _ => continue,
        };
        for b in taken.map_err(|e| e.to_string())? {
            if !out.iter().any(|o| o.sha256 == b.sha256) {
                out.push(b);
            }
        }
    }
    Ok(out)
}
