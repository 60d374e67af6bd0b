//! YAML in and out. Reading goes through serde-saphyr, a real multi-document parser
//! (duplicate keys, alias bombs, non-finite floats and over-deep nesting are errors).
//! Writing is by hand, in one narrow style every MESS reader agrees on: block
//! collections, every string double-quoted on one line (so no line of content can be
//! `---`, and `yes`, `001` or a date stay strings), keys plain only when no YAML 1.1
//! reader could take them for anything but a string.

use serde_json::Value;

/// The documents of one YAML text (a BOM, CRLF line ends, a leading `---` and `...`
/// end markers are fine; empty documents are skipped), each as JSON.
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let options = serde_saphyr::Options::default();
    serde_saphyr::from_multiple_with_options::<Value>(text, options).map_err(|e| {
        let message = e.without_snippet().to_string();
        message.split_whitespace().collect::<Vec<_>>().join(" ")
    })
}

/// Documents written as one YAML stream: separated by `---` on a line of its own, LF
/// line ends, no leading separator.
pub fn stream<'a>(docs: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, d) in docs.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(d);
    }
    out
}

/// One document: a JSON object (or any value) as block YAML, ending in a newline.
pub fn document(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => object(&mut out, m, 0, false),
        Value::Array(a) if !a.is_empty() => array(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other).unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

/// A value that fits on its line: scalars, `[]` and `{}`.
fn scalar(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(a) if a.is_empty() => "[]".to_owned(),
        Value::Object(m) if m.is_empty() => "{}".to_owned(),
        _ => return None,
    })
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// `first_inline`: the first key goes right after a `- ` already written.
fn object(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize, first_inline: bool) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !first_inline {
            pad(out, indent);
        }
        out.push_str(&key(k));
        out.push(':');
        match (scalar(v), v) {
            (Some(s), _) => {
                out.push(' ');
                out.push_str(&s);
                out.push('\n');
            }
            (None, Value::Object(inner)) => {
                out.push('\n');
                object(out, inner, indent + 2, false);
            }
            (None, Value::Array(items)) => {
                out.push('\n');
                array(out, items, indent + 2);
            }
            (None, _) => unreachable!("every other value is a scalar"),
        }
    }
}

fn array(out: &mut String, items: &[Value], indent: usize) {
    for v in items {
        pad(out, indent);
        out.push('-');
        match (scalar(v), v) {
            (Some(s), _) => {
                out.push(' ');
                out.push_str(&s);
                out.push('\n');
            }
            (None, Value::Object(inner)) => {
                out.push(' ');
                object(out, inner, indent + 2, true);
            }
            (None, Value::Array(inner)) => {
                out.push('\n');
                array(out, inner, indent + 2);
            }
            (None, _) => unreachable!("every other value is a scalar"),
        }
    }
}

/// Words a YAML 1.1 reader (js-yaml, Symfony) takes for a boolean or null as a key.
const RESERVED: [&str; 11] = [
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "",
];

fn key(k: &str) -> String {
    let plain = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !RESERVED.contains(&k.to_ascii_lowercase().as_str());
    if plain { k.to_owned() } else { quote(k) }
}

/// A double-quoted YAML string: every character that is not printable in YAML 1.1 and
/// 1.2 alike (controls, DEL, C1, the BOM, the Unicode line separators) as an escape.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn what_is_written_reads_back_as_the_same_json() {
        let v = json!({
            "from": "ops-agent",
            "received": "2026-03-04T09:00:00.000Z",
            "yes": "yes", "001": "001", "y": null, "a key": 1.5, "n": [],
            "MESS": [
                {"v": "1.0.0"},
                {"request": {"intent": "line\n---\n...\n# not a comment: x", "context": [
                    "plain", {"image": "data:image/png;base64,AAAA"}, [1, [2]], {}
                ], "weird": "\u{7f}\u{85}\u{2028}\u{feff}\"\\\t"}},
                {"status": {"code": "completed", "n": -3, "big": 18446744073709551615u64, "t": true}}
            ]
        });
        let text = document(&v);
        assert!(!text.lines().any(|l| l == "---" || l == "..."), "{text}");
        let back = documents(&text).unwrap();
        assert_eq!(back, vec![v]);
    }

    #[test]
    fn streams_split_on_lone_separators_like_the_mess_tools_do() {
        let a = document(&json!({"ref": "2026-01-20-001", "s": "---"}));
        let b = document(&json!({"from": "x", "MESS": [{"reply": {"text": "---"}}]}));
        let text = stream([a.as_str(), b.as_str()]);
        let by_regex: Vec<&str> = text.split("\n---\n").collect();
        assert_eq!(by_regex.len(), 2);
        let parsed = documents(&text).unwrap();
        for (piece, doc) in by_regex.iter().zip(&parsed) {
            assert_eq!(&documents(piece).unwrap()[0], doc);
        }
    }

    #[test]
    fn broken_or_hostile_yaml_is_an_error_not_a_guess() {
        for bad in [
            "a: [\n",
            "a: 1\na: 2\n",
            "x: .nan\n",
            "a: &a [x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
        ] {
            assert!(documents(bad).is_err(), "{bad}");
        }
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(documents(&deep).is_err());
        assert_eq!(
            documents("\u{feff}---\r\na: 1\r\n...\r\n---\r\n# only a comment\r\n").unwrap(),
            vec![json!({"a": 1})]
        );
    }
}
