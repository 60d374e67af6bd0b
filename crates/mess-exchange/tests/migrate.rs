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

/// Copies the directory `from` into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

#[tokio::test]
async fn imported_photos_are_kept_as_blobs_and_exported_back_whole() {
    // The fixtures, with a photo large enough to be kept as a blob.
    let src = tempfile::tempdir().unwrap();
    copy_dir(&fixtures(), src.path());
    let photo: Vec<u8> = [0xff, 0xd8, 0xff, 0xe0]
        .into_iter()
        .chain((0..20_000u32).map(|i| (i * 13 % 251) as u8))
        .collect();
    let parcel = src
        .path()
        .join("exchange/state=finished/2026-03-04-007-parcel");
    std::fs::write(parcel.join("att-001-image-porch.jpg"), &photo).unwrap();
    let sha = mess_core::blob::sha256_hex(&photo);

    let data = tempfile::tempdir().unwrap();
    let out = run(
        data.path(),
        &["import", src.path().to_str().unwrap(), "--exchange", "home"],
    );
    assert!(out.contains("1 attachments stored once as blobs"), "{out}");
    let blob = data.path().join(format!("blobs/exchange=home/{sha}"));
    assert_eq!(std::fs::read(&blob).unwrap(), photo);
    let imported = threads(data.path()).await;
    let (_, t) = imported
        .iter()
        .find(|(_, t)| t.intent == "Is the parcel on the porch?")
        .unwrap();
    let json = t.messages.as_json();
    assert_eq!(mess_core::blob::referenced(json), vec![sha.as_str()]);
    assert!(!json.contains("data:image/jpeg"), "the photo is not inline");

    // Export puts the bytes back (as a file: over --inline-max-bytes); importing that gives
    // the same threads.
    let exported = tempfile::tempdir().unwrap();
    run(
        data.path(),
        &[
            "export",
            "--exchange",
            "home",
            "--inline-max-bytes",
            "1000",
            exported.path().to_str().unwrap(),
        ],
    );
    let mut found = false;
    let mut dirs = vec![exported.path().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if std::fs::read(&p).unwrap() == photo {
                found = true;
            }
        }
    }
    assert!(found, "the export holds the photo's bytes as a file");
    let fresh = tempfile::tempdir().unwrap();
    run(
        fresh.path(),
        &[
            "import",
            exported.path().to_str().unwrap(),
            "--exchange",
            "home",
        ],
    );
    assert_eq!(threads(fresh.path()).await, imported);
    assert_eq!(
        std::fs::read(fresh.path().join(format!("blobs/exchange=home/{sha}"))).unwrap(),
        photo
    );
}
