//! `mess-exchange import` and `export` on the real binary and a filesystem store: nothing
//! else runs; the store is read back with mess-storage.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use mess_core::{EventKind, ExchangeId, Status, Storage, ThreadRef};
use mess_storage::FsStorage;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../mess-messe/tests/fixtures/files")
}

/// Runs the binary with `args` on the data directory `data`; its stdout.
fn run(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mess-exchange"))
        .args(args)
        .env("STORAGE_TYPE", "filesystem")
        .env("STORAGE_PATH", data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Every thread of `home` in the store at `data`, by ref, as replay folds them.
async fn threads(data: &Path) -> Vec<(String, mess_core::Thread)> {
    let storage = FsStorage::new(data).unwrap();
    let loaded = storage.load().await.unwrap();
    let mut refs: Vec<ThreadRef> = loaded
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ThreadCreated(_)))
        .filter_map(|e| e.thread_ref.clone())
        .collect();
    refs.sort();
    if refs.is_empty() {
        return Vec::new();
    }
    let replayed = storage.replay().await.unwrap();
    let home = &replayed.exchanges[&ExchangeId::parse("home").unwrap()];
    refs.into_iter()
        .map(|r| (r.to_string(), (**home.thread(&r).unwrap()).clone()))
        .collect()
}

#[tokio::test]
async fn import_then_export_then_import_into_a_fresh_store_gives_the_same_threads() {
    let data = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    let dir = fixtures.to_str().unwrap();
    let first = run(data.path(), &["import", dir, "--exchange", "home"]);
    assert!(first.contains("4 threads imported"), "{first}");
    assert!(
        first.contains("skipped  exchange/state=canceled/.gitkeep"),
        "{first}"
    );
    let imported = threads(data.path()).await;
    assert_eq!(imported.len(), 4);
    let parcel = imported
        .iter()
        .find(|(_, t)| t.intent == "Is the parcel on the porch?")
        .unwrap();
    assert_eq!(parcel.1.status, Status::Completed);
    assert!(
        parcel
            .1
            .messages
            .as_json()
            .contains("data:image/jpeg;base64,/9j/4")
    );

    // Idempotent: nothing more is written.
    let files_before = count_files(data.path());
    let second = run(data.path(), &["import", dir, "--exchange", "home"]);
    assert!(
        second.contains("0 threads imported (0 events), 4 already present"),
        "{second}"
    );
    assert_eq!(count_files(data.path()), files_before);
    assert_eq!(threads(data.path()).await, imported);

    let out = tempfile::tempdir().unwrap();
    let exported = run(
        data.path(),
        &["export", "--exchange", "home", out.path().to_str().unwrap()],
    );
    assert!(exported.contains("4 threads exported"), "{exported}");
    assert!(
        out.path()
            .join("exchange/state=received/2026-02-01-AB12/000-2026-02-01-AB12.messe-af.yaml")
            .is_file()
    );
    // Export refuses to mix its threads with others.
    let again = Command::new(env!("CARGO_BIN_EXE_mess-exchange"))
        .args(["export", "--exchange", "home", out.path().to_str().unwrap()])
        .env("STORAGE_PATH", data.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));

    let fresh = tempfile::tempdir().unwrap();
    let reimported = run(
        fresh.path(),
        &["import", out.path().to_str().unwrap(), "--exchange", "home"],
    );
    assert!(reimported.contains("4 threads imported"), "{reimported}");
    assert!(
        !reimported
            .lines()
            .any(|l| l.starts_with("skipped") || l.starts_with("note")),
        "{reimported}"
    );
    assert_eq!(threads(fresh.path()).await, imported);
}

#[tokio::test]
async fn a_dry_run_writes_nothing_and_a_bad_exchange_id_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let dir = fixtures();
    let out = run(
        data.path(),
        &[
            "import",
            dir.to_str().unwrap(),
            "--exchange",
            "home",
            "--dry-run",
        ],
    );
    assert!(
        out.contains("4 threads imported") && out.contains("dry run"),
        "{out}"
    );
    assert!(threads(data.path()).await.is_empty());
    let bad = Command::new(env!("CARGO_BIN_EXE_mess-exchange"))
        .args(["import", dir.to_str().unwrap(), "--exchange", "Home_1"])
        .env("STORAGE_PATH", data.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid exchange id"));
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                n += 1;
            }
        }
    }
    n
}
