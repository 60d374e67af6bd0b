//! Start-up replay as the server does it (`Hub::load`): load every event from a data
//! directory, fold them into one `Exchange` per exchange, and report the time of each step
//! and the memory held, under the binary's allocator (mimalloc).
//!
//! ```text
//! cargo run --release -p mess-storage --example replay_bench -- <dir> [--load] [--settle SECS] [--digest]
//! ```
//!
//! By default it calls `Storage::replay` (which folds while it reads); `--load` measures
//! `Storage::load` and then the fold as `Hub::load` did before `replay` existed.
//!
//! `load()` may cut a torn last line (it writes): run it on a copy of a data directory.
//! `--settle SECS` measures the memory again after SECS seconds (mimalloc returns freed
//! pages to the OS lazily; `MIMALLOC_PURGE_DELAY=0` makes it immediate). `--digest` prints a
//! hash of every thread's GET JSON and of the list order, to check that a change to the
//! fold or the thread's representation keeps the output byte-identical.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mess_core::{Event, Exchange, ExchangeId, Storage};
use mess_storage::FsStorage;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn report(when: &str) {
    let (rss, hwm) = memory();
    println!("{when}: VmRSS {rss:.0} MiB, VmHWM {hwm:.0} MiB");
}

/// A hash of every thread's GET JSON (in ref order) and of the full list's order.
fn digest(states: &HashMap<ExchangeId, Exchange>) -> u64 {
    let mut h = DefaultHasher::new();
    let mut ids: Vec<&ExchangeId> = states.keys().collect();
    ids.sort();
    for id in ids {
        let x = &states[id];
        h.write(id.as_str().as_bytes());
        let (page, _) = x.list(None, None, usize::MAX);
        for t in &page {
            h.write(serde_json::to_string(&**t).unwrap().as_bytes());
            h.write(serde_json::to_string(&t.summary()).unwrap().as_bytes());
        }
        h.write_usize(page.len());
        let mut counts: Vec<_> = x.status_counts().collect();
        counts.sort_by_key(|(s, _)| s.as_str());
        for (s, n) in counts {
            h.write(s.as_str().as_bytes());
            h.write_usize(n);
        }
    }
    h.finish()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let (mut settle, mut want_digest, mut use_load) = (None, false, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--settle" => settle = args.next().and_then(|s| s.parse::<u64>().ok()),
            "--digest" => want_digest = true,
            "--load" => use_load = true,
            _ => dir = Some(a),
        }
    }
    let dir = dir.expect("usage: replay_bench <dir> [--load] [--settle SECS] [--digest]");
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::new(&dir).unwrap());
    report("before");
    let states = if use_load {
        load_then_fold(&*storage).await
    } else {
        let started = Instant::now();
        let replayed = storage.replay().await.unwrap();
        let total_ms = started.elapsed().as_millis();
        let threads: usize = replayed
            .exchanges
            .values()
            .map(Exchange::thread_count)
            .sum();
        println!(
            "replay (load + fold): {total_ms} ms, {} events, {} skipped lines, {threads} threads in {} exchanges",
            replayed.events,
            replayed.skipped_lines,
            replayed.exchanges.len()
        );
        replayed.exchanges
    };
    report("after fold");
    let (mut json, mut messages, mut count) = (0, 0, 0);
    for x in states.values() {
        for t in x.list(None, None, usize::MAX).0 {
            json += t.messages.as_json().len();
            messages += t.messages.len();
            count += 1;
        }
    }
    println!(
        "{count} threads hold {messages} messages in {} MiB of JSON",
        json / (1 << 20)
    );

    if let Some(secs) = settle {
        std::thread::sleep(Duration::from_secs(secs));
        report(&format!("after {secs} s"));
    }
    if want_digest {
        println!("digest: {:016x}", digest(&states));
    }
    drop(states);
}

/// `Storage::load`, then the fold exactly as `Hub::load` did it.
async fn load_then_fold(storage: &dyn Storage) -> HashMap<ExchangeId, Exchange> {
    let started = Instant::now();
    let loaded = storage.load().await.unwrap();
    let load_ms = started.elapsed().as_millis();
    let (rss, hwm) = memory();
    println!(
        "load: {load_ms} ms, {} events, {} members, {} skipped lines; VmRSS {rss:.0} MiB, VmHWM {hwm:.0} MiB",
        loaded.events.len(),
        loaded.members.len(),
        loaded.skipped_lines
    );

    // Exactly what Hub::load does with it.
    let fold_started = Instant::now();
    let mut states: HashMap<ExchangeId, Exchange> = HashMap::new();
    for m in loaded.members {
        states
            .entry(m.exchange_id.clone())
            .or_insert_with(|| Exchange::new(m.exchange_id.clone()))
            .put_member(Arc::new(m));
    }
    let mut by_exchange: HashMap<&ExchangeId, Vec<&Event>> = HashMap::new();
    for e in &loaded.events {
        by_exchange.entry(&e.exchange_id).or_default().push(e);
    }
    for (id, list) in by_exchange {
        states
            .entry(id.clone())
            .or_insert_with(|| Exchange::new(id.clone()))
            .apply_all(list);
    }
    drop(loaded.events);
    let fold_ms = fold_started.elapsed().as_millis();
    let total_ms = started.elapsed().as_millis();
    let threads: usize = states.values().map(Exchange::thread_count).sum();
    println!(
        "fold: {fold_ms} ms ({threads} threads in {} exchanges); total {total_ms} ms",
        states.len()
    );
    states
}
