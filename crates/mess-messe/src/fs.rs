//! The directory side: finding threads under a directory, reading their files, and
//! writing exported folders. Blocking `std::fs`, nothing else.
//!
//! Nothing here follows a symbolic link or builds a path from file contents: paths come
//! from directory listings (a thread's files must be regular files directly inside its own
//! folder) and from validated refs and our own attachment names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::media::is_attachment_name;
use crate::names::is_path_safe_ref;
use crate::read::{Attachments, Limits, Note, Source};
use crate::write::Exported;

/// The deepest folder a scan looks into, below the directory given.
const MAX_DEPTH: usize = 16;

/// A thread found by [`scan`], not read yet.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its path relative to the scanned directory.
    pub path: String,
    /// The ref its file or folder name gives.
    pub name_ref: String,
    unit: Unit,
}

#[derive(Debug, Clone)]
enum Unit {
    /// `{ref}.messe-af.yaml`.
    V1(PathBuf),
    /// `{ref}/`: its YAML files in order and its attachment files with their sizes.
    V2 {
        dir: PathBuf,
        yaml: Vec<String>,
        attachments: BTreeMap<String, u64>,
    },
}

/// What a scan found: threads, and every file or folder it left out, with why.
#[derive(Debug, Default)]
pub struct Scan {
    /// The threads, in path order.
    pub found: Vec<Found>,
    /// Everything else.
    pub skipped: Vec<Note>,
}

/// Finds every MESSE-AF thread under `root`, in any of the layouts in use
/// (`exchange/state=…/`, `state=…/`, `exchange=…/state=…/`, bare folders, `threads/`).
pub fn scan(root: &Path) -> std::io::Result<Scan> {
    let mut scan = Scan::default();
    let mut dirs = vec![(root.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, rel, depth)) = dirs.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        // Folders last in path order: push them in reverse so they pop in order.
        let mut subdirs = Vec::new();
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = join(&rel, &name);
            let skip = |scan: &mut Scan, why: &str| {
                scan.skipped.push(Note {
                    path: path.clone(),
                    message: why.to_owned(),
                })
            };
            let ft = entry.file_type()?;
            if ft.is_symlink() {
                skip(&mut scan, "a symbolic link: not followed");
            } else if ft.is_dir() {
                if name.starts_with('.') {
                    skip(&mut scan, "a hidden folder: not read");
                } else if matches!(name.as_str(), "executors" | "capabilities") {
                    skip(&mut scan, "exchange configuration, not threads: not read");
                } else if let Some(found) = thread_folder(&entry.path(), &name, &path, &mut scan)? {
                    scan.found.push(found);
                } else if depth >= MAX_DEPTH {
                    skip(&mut scan, "nested too deep: not read");
                } else {
                    subdirs.push((entry.path(), path, depth + 1));
                }
            } else if !ft.is_file() {
                skip(&mut scan, "not a regular file: not read");
            } else if let Some(r) = name.strip_suffix(".messe-af.yaml") {
                scan.found.push(Found {
                    path,
                    name_ref: r.to_owned(),
                    unit: Unit::V1(entry.path()),
                });
            } else if name.ends_with(".messe-af.zip") {
                skip(
                    &mut scan,
                    "a zip archive: not read (unzip it into the directory and import again)",
                );
            } else if name.starts_with('.') {
                skip(&mut scan, "a hidden file: ignored");
            } else if name == "config.yaml" {
                skip(&mut scan, "exchange configuration, not a thread: ignored");
            } else {
                skip(&mut scan, "not a MESSE-AF file: ignored");
            }
        }
        dirs.extend(subdirs.into_iter().rev());
    }
    Ok(scan)
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else {
        format!("{rel}/{name}")
    }
}

/// `NNN` when `file` is `NNN-{r}.messe-af.yaml`.
fn part_number(file: &str, r: &str) -> Option<u32> {
    let rest = file.strip_suffix(".messe-af.yaml")?;
    let (n, name) = rest.split_at_checked(4)?;
    let n = n.strip_suffix('-')?;
    (name == r && n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
}

/// The thread in folder `dir` (named `name`), when it holds `NNN-{name}.messe-af.yaml`
/// files; what else it holds is reported.
fn thread_folder(
    dir: &Path,
    name: &str,
    path: &str,
    scan: &mut Scan,
) -> std::io::Result<Option<Found>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    let names: Vec<String> = entries
        .iter()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if !names.iter().any(|f| part_number(f, name).is_some()) {
        return Ok(None);
    }
    let mut yaml = Vec::new();
    let mut attachments = BTreeMap::new();
    for (entry, file) in entries.iter().zip(names) {
        let ft = entry.file_type()?;
        let skip = |scan: &mut Scan, why: &str| {
            scan.skipped.push(Note {
                path: format!("{path}/{file}"),
                message: why.to_owned(),
            })
        };
        if ft.is_symlink() {
            skip(scan, "a symbolic link: not followed");
        } else if ft.is_dir() {
            skip(scan, "a folder inside a thread folder: not read");
        } else if !ft.is_file() {
            skip(scan, "not a regular file: not read");
        } else if part_number(&file, name).is_some() {
            yaml.push(file);
        } else if is_attachment_name(&file) {
            attachments.insert(file, entry.metadata()?.len());
        } else {
            skip(
                scan,
                "neither NNN-{ref}.messe-af.yaml nor att-*: ignored (as the MESS tools do)",
            );
        }
    }
    Ok(Some(Found {
        path: path.to_owned(),
        name_ref: name.to_owned(),
        unit: Unit::V2 {
            dir: dir.to_path_buf(),
            yaml,
            attachments,
        },
    }))
}

/// A thread folder's attachment files, read on demand; which were read is remembered.
#[derive(Debug)]
pub struct FolderFiles {
    dir: Option<PathBuf>,
    sizes: BTreeMap<String, u64>,
    read: BTreeSet<String>,
}

impl FolderFiles {
    /// Attachment files found in the folder that no message named.
    pub fn unused(&self) -> impl Iterator<Item = &str> {
        self.sizes
            .keys()
            .filter(|n| !self.read.contains(*n))
            .map(String::as_str)
    }
}

impl Attachments for FolderFiles {
    fn read(&mut self, name: &str, limit: u64) -> Result<Vec<u8>, String> {
        let Some(dir) = &self.dir else {
            return Err("a v1 file has no folder for attachment files".to_owned());
        };
        if !self.sizes.contains_key(name) || !is_attachment_name(name) {
            return Err("no such file in the thread's folder".to_owned());
        }
        self.read.insert(name.to_owned());
        let path = dir.join(name);
        // Checked again now: it must still be a regular file, not a link put in its place.
        let meta = std::fs::symlink_metadata(&path).map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("not a regular file".to_owned());
        }
        if meta.len() > limit {
            return Err(format!(
                "{} bytes, over the {limit}-byte attachment limit",
                meta.len()
            ));
        }
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        if bytes.len() as u64 > limit {
            return Err(format!("over the {limit}-byte attachment limit"));
        }
        Ok(bytes)
    }
}

/// Reads a found thread's YAML (each file bounded by `limits.yaml_file_bytes`, UTF-8
/// only). `Err` is why the thread is refused.
pub fn load(found: &Found, limits: &Limits) -> Result<(Source, FolderFiles), String> {
    let read = |path: &Path, label: &str| -> Result<(String, String), String> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{label}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{label}: not a regular file"));
        }
        if meta.len() > limits.yaml_file_bytes {
            return Err(format!(
                "{label}: {} bytes, over the {}-byte YAML file limit",
                meta.len(),
                limits.yaml_file_bytes
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| format!("{label}: {e}"))?;
        let text = String::from_utf8(bytes).map_err(|_| format!("{label}: not UTF-8"))?;
        Ok((label.to_owned(), text))
    };
    match &found.unit {
        Unit::V1(file) => {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let source = Source {
                path: found.path.clone(),
                name_ref: found.name_ref.clone(),
                yaml: vec![read(file, &name)?],
            };
            let files = FolderFiles {
                dir: None,
                sizes: BTreeMap::new(),
                read: BTreeSet::new(),
            };
            Ok((source, files))
        }
        Unit::V2 {
            dir,
            yaml,
            attachments,
        } => {
            if !is_path_safe_ref(&found.name_ref) {
                return Err(format!("{:?} is not a MESSE-AF ref", found.name_ref));
            }
            let numbers: Vec<u32> = yaml
                .iter()
                .filter_map(|f| part_number(f, &found.name_ref))
                .collect();
            if numbers.first() != Some(&0) {
                return Err(format!("no 000-{}.messe-af.yaml", found.name_ref));
            }
            let mut texts = Vec::new();
            for (i, (file, n)) in yaml.iter().zip(&numbers).enumerate() {
                if *n as usize != i {
                    return Err(format!(
                        "overflow files are not numbered 000, 001, …: {file} after a gap"
                    ));
                }
                texts.push(read(&dir.join(file), file)?);
            }
            let source = Source {
                path: found.path.clone(),
                name_ref: found.name_ref.clone(),
                yaml: texts,
            };
            let files = FolderFiles {
                dir: Some(dir.clone()),
                sizes: attachments.clone(),
                read: BTreeSet::new(),
            };
            Ok((source, files))
        }
    }
}

/// Whether `out` has no `exchange/` folder, or an empty one: export never mixes its
/// threads with others (a stale copy in another state folder would be read first).
pub fn check_export_target(out: &Path) -> Result<(), String> {
    let target = out.join("exchange");
    match std::fs::symlink_metadata(&target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", target.display())),
        Ok(meta) if !meta.is_dir() => Err(format!("{} is not a folder", target.display())),
        Ok(_) => match std::fs::read_dir(&target)
            .map_err(|e| e.to_string())?
            .next()
        {
            None => Ok(()),
            Some(_) => Err(format!(
                "{} is not empty: export into a new directory",
                target.display()
            )),
        },
    }
}

/// Writes one exported thread under `out/exchange/state={folder}/{ref}/`, creating each
/// file new (never through an existing file or link).
pub fn write(out: &Path, thread: &Exported) -> std::io::Result<()> {
    use std::io::Write;
    let dir = out
        .join("exchange")
        .join(format!("state={}", thread.folder))
        .join(&thread.dir);
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in &thread.files {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(name))?;
        f.write_all(bytes)?;
    }
    Ok(())
}
