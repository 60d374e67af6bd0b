//! Durable appends per second on `FsStorage` (group commit) beside plain fdatasync loops on
//! the same disk, then the time and memory to replay 1M events.
//!
//! ```text
//! cargo run --release -p mess-storage --example append_bench -- <dir> [seconds-per-case]
//! ```
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use mess_core::{Event, EventKind, Status, Storage};
use mess_storage::FsStorage;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// `writers` tasks, each appending one event per call, for `secs`.
async fn group_commit(dir: &Path, writers: usize, secs: f64) -> f64 {
    let storage = Arc::new(FsStorage::new(dir).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (storage, stop, done) = (storage.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                let x = exchange("home");
                let t = thread(&format!("BNCH{w:04}"));
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let kind = status_changed(Status::InProgress, Status::InProgress);
                    let e = event(&x, Some(&t), seq, T0 + seq as i64, kind);
                    storage.append(&[e]).await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// A plain loop: `per_sync` lines per write + fdatasync, for `secs`. Lines per second.
fn plain_loop(dir: &Path, per_sync: usize, secs: f64) -> f64 {
    std::fs::create_dir_all(dir).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("plain-{per_sync}.jsonl")))
        .unwrap();
    let x = exchange("home");
    let t = thread("PLAIN");
    let line = event(
        &x,
        Some(&t),
        1,
        T0,
        status_changed(Status::InProgress, Status::InProgress),
    )
    .to_line()
        + "\n";
    let batch = line.repeat(per_sync);
    let started = Instant::now();
    let mut lines = 0;
    while started.elapsed().as_secs_f64() < secs {
        f.write_all(batch.as_bytes()).unwrap();
        f.sync_data().unwrap();
        lines += per_sync;
    }
    lines as f64 / started.elapsed().as_secs_f64()
}

/// 100k threads × 10 events over 4 exchanges and 5 days, written in batches.
async fn write_million(dir: &Path) -> (usize, u64) {
    let storage = FsStorage::new(dir).unwrap();
    let exchanges: Vec<_> = ["home", "office", "lab", "garage"].map(exchange).into();
    let mut batch: Vec<Event> = Vec::with_capacity(10_000);
    let mut total = 0;
    for n in 0..100_000u64 {
        let x = &exchanges[n as usize % exchanges.len()];
        let t = thread(&format!("M{n:07}"));
        let t0 = T0 + (n % 5) as i64 * 86_400_000 + n as i64;
        let steps = [
            (Status::Pending, Status::Claimed),
            (Status::Claimed, Status::InProgress),
            (Status::InProgress, Status::Waiting),
            (Status::Waiting, Status::InProgress),
            (Status::InProgress, Status::Completed),
        ];
        batch.push(event(x, Some(&t), 1, t0, thread_created()));
        for (i, (a, b)) in steps.into_iter().enumerate() {
            batch.push(event(
                x,
                Some(&t),
                2 + i as u64,
                t0 + 1 + i as i64,
                status_changed(a, b),
            ));
        }
        batch.push(event(x, Some(&t), 7, t0 + 7, message_added()));
        batch.push(event(x, Some(&t), 8, t0 + 8, message_added()));
        batch.push(event(
            x,
            Some(&t),
            9,
            t0 + 9,
            EventKind::NotificationDelivered(outcome(None)),
        ));
        batch.push(event(
            x,
            Some(&t),
            10,
            t0 + 10,
            status_changed(Status::Completed, Status::Completed),
        ));
        if batch.len() >= 10_000 {
            storage.append(&batch).await.unwrap();
            total += batch.len();
            batch.clear();
        }
    }
    storage.append(&batch).await.unwrap();
    total += batch.len();
    (total, dir_size(&dir.join("events")))
}

fn dir_size(dir: &Path) -> u64 {
    let mut size = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        size += if p.is_dir() {
            dir_size(&p)
        } else {
            e.metadata().map_or(0, |m| m.len())
        };
    }
    size
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let base = PathBuf::from(
        args.next()
            .expect("usage: append_bench <dir> [seconds-per-case]"),
    );
    let secs: f64 = args.next().map_or(3.0, |s| s.parse().unwrap());
    let run = base.join(format!("append-bench-{}", uuid::Uuid::new_v4().simple()));

    println!("durable appends on {} ({secs} s per case)", base.display());
    println!("| case                                   | events/s |");
    println!("|----------------------------------------|---------:|");
    let plain1 = plain_loop(&run.join("plain"), 1, secs);
    println!("| plain loop, 1 line per fdatasync       | {plain1:>8.0} |");
    let plain64 = plain_loop(&run.join("plain"), 64, secs);
    println!("| plain loop, 64 lines per fdatasync     | {plain64:>8.0} |");
    for writers in [1, 16, 64] {
        let rate = group_commit(&run.join(format!("w{writers}")), writers, secs).await;
        let label = format!("FsStorage, {writers} writer(s), 1 event/call");
        println!("| {label:<38} | {rate:>8.0} |");
    }

    let replay = run.join("replay");
    let started = Instant::now();
    let (n, bytes) = write_million(&replay).await;
    let write_s = started.elapsed().as_secs_f64();
    let rss_before = rss_mib();
    let started = Instant::now();
    let loaded = FsStorage::new(&replay).unwrap().load().await.unwrap();
    let load_s = started.elapsed().as_secs_f64();
    let rss_after = rss_mib();
    assert_eq!(loaded.events.len(), n);
    println!();
    println!("| replay                                 |          |");
    println!("|----------------------------------------|---------:|");
    println!("| events written (10k per call)          | {n:>8} |");
    println!(
        "| bytes on disk (MiB)                    | {:>8.1} |",
        bytes as f64 / 1048576.0
    );
    println!(
        "| bytes per event                        | {:>8.0} |",
        bytes as f64 / n as f64
    );
    println!("| write time (s)                         | {write_s:>8.2} |");
    println!("| load() time (s)                        | {load_s:>8.2} |");
    println!("| RSS before load (MiB)                  | {rss_before:>8.0} |");
    println!("| RSS with 1M events loaded (MiB)        | {rss_after:>8.0} |");
    drop(loaded);
    std::fs::remove_dir_all(&run).unwrap();
}
