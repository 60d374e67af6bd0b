//! Attachment names and MIME types, both ways.

/// The content item keys that hold a binary (a URL, a `data:` URI or a file reference).
pub const MEDIA_KEYS: [&str; 4] = ["image", "audio", "video", "file"];

/// Whether `name` is an attachment file name a thread folder may hold and a reference may
/// name: `^att-[A-Za-z0-9._-]+$` without `..` (no `/`, `\`, NUL, drive letter or escape).
pub fn is_attachment_name(name: &str) -> bool {
    name.len() > 4
        && name.len() <= 255
        && name.starts_with("att-")
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        && !name.contains("..")
}

/// Whether `mime` can go into a `data:` URI as it is (no comma, no space, no control).
pub fn is_mime(mime: &str) -> bool {
    let mut parts = mime.splitn(2, '/');
    let (Some(t), Some(rest)) = (parts.next(), parts.next()) else {
        return false;
    };
    !t.is_empty()
        && !rest.is_empty()
        && mime.len() <= 255
        && mime.bytes().all(|c| c.is_ascii_graphic() && c != b',')
}

const TYPES: [(&str, &str); 20] = [
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("heic", "image/heic"),
    ("svg", "image/svg+xml"),
    ("mp3", "audio/mpeg"),
    ("m4a", "audio/mp4"),
    ("wav", "audio/wav"),
    ("ogg", "audio/ogg"),
    ("mp4", "video/mp4"),
    ("mov", "video/quicktime"),
    ("webm", "video/webm"),
    ("pdf", "application/pdf"),
    ("txt", "text/plain"),
    ("json", "application/json"),
    ("csv", "text/csv"),
    ("zip", "application/zip"),
    ("bin", "application/octet-stream"),
];

/// The MIME type a file name's extension suggests (`application/octet-stream` if none).
pub fn mime_for_name(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    TYPES
        .iter()
        .find(|(e, _)| Some(*e) == ext.as_deref())
        .map_or("application/octet-stream", |(_, m)| m)
}

/// The extension for a MIME type (`bin` if unknown); parameters are ignored.
pub fn extension_for_mime(mime: &str) -> &'static str {
    let base = mime.split(';').next().unwrap_or("").trim();
    TYPES
        .iter()
        .find(|(_, m)| m.eq_ignore_ascii_case(base))
        .map_or("bin", |(e, _)| e)
}

/// The `type` part of an attachment name: `image`, `audio`, `video`, else `file`.
pub fn kind_for_mime(mime: &str) -> &'static str {
    ["image", "audio", "video"]
        .into_iter()
        .find(|k| mime.starts_with(&format!("{k}/")))
        .unwrap_or("file")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_att_names_in_the_folder_itself_are_names() {
        for ok in ["att-001-image-porch.jpg", "att-1", "att-a_b.c-d"] {
            assert!(is_attachment_name(ok), "{ok}");
        }
        for bad in [
            "att-",
            "../att-1.jpg",
            "att-../../etc/passwd",
            "att-..",
            "att-a/b",
            "att-a\\b",
            "att-a\0",
            "C:att-1",
            "att-%2e%2e",
            "photo.jpg",
            "/att-1",
        ] {
            assert!(!is_attachment_name(bad), "{bad}");
        }
    }

    #[test]
    fn mime_types_and_extensions() {
        assert_eq!(mime_for_name("att-001-image-porch.JPG"), "image/jpeg");
        assert_eq!(mime_for_name("att-x"), "application/octet-stream");
        assert_eq!(extension_for_mime("image/png"), "png");
        assert_eq!(extension_for_mime("image/x-unknown"), "bin");
        assert_eq!(kind_for_mime("audio/ogg"), "audio");
        assert_eq!(kind_for_mime("application/pdf"), "file");
        assert!(is_mime("image/jpeg;name=x"));
        assert!(!is_mime("image/jpeg,evil") && !is_mime("jpeg") && !is_mime("a b/c"));
    }
}
