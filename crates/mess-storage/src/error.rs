//! Backend errors converted by meaning into [`StorageError`]. Messages name the object
//! (a path relative to the root or bucket) and the cause, never a secret and never an
//! absolute server path.

use std::error::Error as StdError;

use mess_core::StorageError;

/// Converts an `object_store` error met while doing `op` on `location` (relative).
pub(crate) fn from_object_store(op: &str, location: &str, e: object_store::Error) -> StorageError {
    use object_store::Error as E;
    let why = match &e {
        E::AlreadyExists { .. } => return StorageError::AlreadyExists,
        E::NotFound { .. } => "not found".to_owned(),
        E::PermissionDenied { .. } => "permission denied".to_owned(),
        E::Unauthenticated { .. } => "credentials were refused".to_owned(),
        E::Precondition { .. } => "precondition failed".to_owned(),
        E::NotSupported { .. } | E::NotImplemented { .. } => "not supported by the backend".into(),
        // A local store's messages carry absolute paths: only its I/O cause is kept.
        E::Generic { store, source } if *store == "LocalFileSystem" => {
            io_cause(source.as_ref()).unwrap_or_else(|| "I/O error".to_owned())
        }
        E::Generic { source, .. } => io_cause(source.as_ref())
            .unwrap_or_else(|| one_line(&innermost(source.as_ref()).to_string())),
        other => io_cause(other).unwrap_or_else(|| "backend error".to_owned()),
    };
    StorageError::Unavailable(format!("{op} {location}: {why}"))
}

/// Converts an I/O error met while doing `op` on `location` (relative to the root).
pub(crate) fn from_io(op: &str, location: &str, e: &std::io::Error) -> StorageError {
    if e.kind() == std::io::ErrorKind::AlreadyExists {
        return StorageError::AlreadyExists;
    }
    StorageError::Unavailable(format!("{op} {location}: {e}"))
}

/// The first `std::io::Error` in `e`'s source chain, as text (io errors carry no path).
pub(crate) fn io_cause(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            // An io::Error may wrap another error (hyper does this): prefer its kind then.
            return Some(match io.get_ref() {
                Some(_) => io.kind().to_string(),
                None => io.to_string(),
            });
        }
        cur = err.source();
    }
    None
}

/// The last error of `e`'s source chain.
pub(crate) fn innermost<'a>(e: &'a (dyn StdError + 'static)) -> &'a (dyn StdError + 'static) {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur
}

/// `s` on one line, at most 300 characters.
pub(crate) fn one_line(s: &str) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn already_exists_keeps_its_meaning_and_local_paths_never_leak() {
        let e = object_store::Error::AlreadyExists {
            path: "x".into(),
            source: "taken".into(),
        };
        assert_eq!(
            from_object_store("create", "x", e),
            StorageError::AlreadyExists
        );
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::other(format!("/secret/abs/path: {io}"))),
        };
        let StorageError::Unavailable(msg) = from_object_store("put", "executors/a.json", e) else {
            panic!("expected Unavailable");
        };
        assert!(!msg.contains("/secret"), "{msg}");
        assert!(msg.starts_with("put executors/a.json: "), "{msg}");
    }
}
