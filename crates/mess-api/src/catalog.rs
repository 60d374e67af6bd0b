//! The capability catalog a deployment serves at `.../capabilities`: a list of maps (`id`,
//! `description`, `tags`...), or a map with such a list under `capabilities`. The binary
//! reads it from `CAPABILITIES_FILE` (YAML), the Worker from its `CAPABILITIES` variable
//! (JSON); both check its shape here.

use serde_json::Value;

/// The catalog in `doc`, or why `doc` is not one (`source` names where it came from).
pub fn from_document(doc: Value, source: &str) -> Result<Vec<Value>, String> {
    let list = match doc {
        Value::Array(items) => items,
        Value::Object(mut m) => match m.remove("capabilities") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(format!(
                    "{source} must be a list, or a map with a `capabilities` list"
                ));
            }
        },
        Value::Null => Vec::new(),
        _ => return Err(format!("{source} must be a list of capabilities")),
    };
    if list.iter().any(|c| !c.is_object()) {
        return Err(format!(
            "every entry of {source} must be a map (id, description, tags...)"
        ));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_catalog_is_a_list_of_maps_bare_or_under_capabilities() {
        let one = json!({"id": "photo:capture", "tags": ["camera"]});
        assert_eq!(from_document(json!([one]), "X"), Ok(vec![one.clone()]));
        assert_eq!(
            from_document(json!({"capabilities": [one]}), "X"),
            Ok(vec![one.clone()])
        );
        assert_eq!(from_document(Value::Null, "X"), Ok(vec![]));
        for bad in [json!("x"), json!({"other": []}), json!([1])] {
            let e = from_document(bad.clone(), "CAPABILITIES").expect_err("refused");
            assert!(e.contains("CAPABILITIES"), "{bad}: {e}");
        }
    }
}
