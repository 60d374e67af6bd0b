//! Crash durability: a writer process is killed with SIGKILL mid-stream; every append it
//! acknowledged must be replayed, and start-up must not fail on what it left behind.
//!
//! The writer is this same test binary, re-executed with [`WRITER_DIR`] set so that
//! [`crash_writer`] acts instead of returning.

#![allow(clippy::unwrap_used)] // test helpers: a failed step is a failed test

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mess_core::{Status, Storage};
use mess_storage::FsStorage;

/// Set in the child: the data directory to write to.
const WRITER_DIR: &str = "MESS_CRASH_WRITER_DIR";

/// The child's role: 16 tasks append forever, printing each id once acknowledged.
#[test]
fn crash_writer() {
    let Some(dir) = std::env::var_os(WRITER_DIR) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    rt.unwrap().block_on(async move {
        let storage = Arc::new(FsStorage::new(dir).unwrap());
        let home = exchange("home");
        let tasks: Vec<_> = (0..16)
            .map(|task| {
                let (storage, home) = (Arc::clone(&storage), home.clone());
                tokio::spawn(async move {
                    let t = thread(&format!("CRSH{task:02}"));
                    for seq in 1.. {
                        let kind = status_changed(Status::Pending, Status::InProgress);
                        let e = event(&home, Some(&t), seq, T0 + seq as i64, kind);
                        storage.append(std::slice::from_ref(&e)).await.unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {}", e.event_id).unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn every_acknowledged_append_survives_sigkill() {
    if std::env::var_os(WRITER_DIR).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_writer", "--nocapture", "--test-threads=1"])
        .env(WRITER_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read on a thread so the pipe never fills; everything printed before the kill is
    // still in the pipe afterwards and is read to EOF.
    let reader = std::thread::spawn(move || {
        let mut acked = HashSet::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(id) = line.strip_prefix("ACK ") {
                acked.insert(id.to_owned());
            }
        }
        acked
    });
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1200) {
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the writer stopped by itself"
        );
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let acked = reader.join().unwrap();
    assert!(
        !acked.is_empty(),
        "the writer acknowledged nothing in 1.2 s"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let loaded = rt.block_on(async {
        let storage = FsStorage::new(dir.path()).unwrap();
        storage.check().await.unwrap();
        storage.load().await.unwrap()
    });
    let stored: HashSet<&str> = loaded.events.iter().map(|e| e.event_id.as_str()).collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events lost",
        lost.len(),
        acked.len()
    );
    assert!(
        loaded.skipped_lines <= 1,
        "{} torn lines",
        loaded.skipped_lines
    );
    println!(
        "{} acknowledged, {} stored, {} torn line(s) skipped",
        acked.len(),
        loaded.events.len(),
        loaded.skipped_lines
    );
}
