//! An event as the sample holds it: one JSON line, the values of its type's
//! sensitive fields replaced by their keyed hash ([`super::keyed`]).

use serde_json::Value;

use super::keyed::Key;

/// Why an event cannot go into the sample.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MaskError {
    #[error("the event is not a JSON object")]
    NotAnObject,
    /// A sensitive field to hash and no key: the event stays out.
    #[error("field `{0}` is sensitive and there is no key to hash it with")]
    NoKey(String),
}

/// `payload` as one line (no newline at the end) with the string values of
/// `sensitive` hashed under `key`. A payload with nothing to hash and no
/// line break is kept byte for byte.
pub fn mask(payload: &[u8], sensitive: &[String], key: Option<&Key>) -> Result<Vec<u8>, MaskError> {
    let one_line = !payload.iter().any(|b| *b == b'\n' || *b == b'\r');
    if sensitive.is_empty() && one_line {
        return Ok(payload.to_vec());
    }
    let mut event: Value = serde_json::from_slice(payload).map_err(|_| MaskError::NotAnObject)?;
    let Some(fields) = event.as_object_mut() else {
        return Err(MaskError::NotAnObject);
    };
    for name in sensitive {
        if let Some(Value::String(v)) = fields.get_mut(name) {
            let key = key.ok_or_else(|| MaskError::NoKey(name.clone()))?;
            *v = key.hash_value(v);
        }
    }
    serde_json::to_vec(&event).map_err(|_| MaskError::NotAnObject)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"event_id":"fc1","type":"refuel","plate_seen":"鄂A12345","vehicle_plate":"鄂A12345","liters":40.25,"station_id":"ST-1"}"#;

    #[test]
    fn sensitive_values_are_hashed_and_the_rest_kept() {
        let key = Key::new(b"0123456789abcdef");
        let sensitive = ["plate_seen".to_owned(), "vehicle_plate".to_owned()];
        let out = mask(EVENT.as_bytes(), &sensitive, Some(&key)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("12345"), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        // Equal values, equal hashes: `plate_seen != vehicle_plate` holds as before.
        assert_eq!(v["plate_seen"], v["vehicle_plate"]);
        assert_eq!(v["plate_seen"], key.hash_value("鄂A12345").as_str());
        assert_eq!(v["liters"], 40.25);
        assert_eq!(v["station_id"], "ST-1");
    }

    #[test]
    fn without_sensitive_fields_the_line_is_kept_and_line_breaks_removed() {
        let out = mask(EVENT.as_bytes(), &[], None).unwrap();
        assert_eq!(out, EVENT.as_bytes());
        let pretty = "{\n  \"event_id\": \"e1\",\n  \"type\": \"trip\"\n}";
        let out = mask(pretty.as_bytes(), &[], None).unwrap();
        assert_eq!(out, br#"{"event_id":"e1","type":"trip"}"#);
    }

    #[test]
    fn a_sensitive_value_without_a_key_is_refused() {
        let e = mask(EVENT.as_bytes(), &["plate_seen".to_owned()], None).unwrap_err();
        assert_eq!(e, MaskError::NoKey("plate_seen".to_owned()));
        // Absent or null: nothing to hash, no key needed.
        let e = mask(br#"{"type":"refuel"}"#, &["plate_seen".to_owned()], None);
        assert!(e.is_ok());
    }
}
