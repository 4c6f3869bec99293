//! What makes two posts of one idempotency key the same event: its type,
//! `id` and `data`, compared in a canonical form. The envelope's
//! `timestamp`, `source` and `metadata` are left out: a client that retries
//! may stamp them again, and a retry is still the same event.

use serde_json::Value;

/// FNV-1a (64 bits) of `eventType`, `id` and `data` in a canonical form (object
/// keys sorted, no spaces): the same on every instance, for any spelling
/// of the same JSON.
pub(crate) fn fingerprint(event: &Value) -> u64 {
    let mut bytes = Vec::new();
    for field in ["eventType", "id", "data"] {
        canonical(&event[field], &mut bytes);
        bytes.push(b'\n');
    }
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(k.clone()).to_string().as_bytes());
                out.push(b':');
                canonical(&m[k.as_str()], out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(x, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::fingerprint;
    use serde_json::json;

    fn event(data: serde_json::Value, timestamp: &str) -> serde_json::Value {
        json!({"eventType": "user.created", "source": "s", "id": "e-1",
               "timestamp": timestamp, "data": data, "metadata": {}})
    }

    #[test]
    fn a_retry_stamped_again_is_the_same_event() {
        let a = event(
            json!({"a": 1, "b": [1, {"x": "y"}]}),
            "2023-05-20T13:45:30Z",
        );
        let b: serde_json::Value = serde_json::from_str(
            r#"{"metadata": {"correlationId": "c"}, "data": {"b": [1, {"x": "y"}], "a": 1},
                "id": "e-1", "source": "t", "timestamp": "2023-05-20T13:45:31Z",
                "eventType": "user.created"}"#,
        )
        .unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn other_data_or_type_is_another_event() {
        let a = event(json!({"a": 1}), "t");
        assert_ne!(fingerprint(&a), fingerprint(&event(json!({"a": 2}), "t")));
        assert_ne!(fingerprint(&a), fingerprint(&event(json!({"a": "1"}), "t")));
        assert_ne!(fingerprint(&a), fingerprint(&event(json!([{"a": 1}]), "t")));
        let mut other_type = a.clone();
        other_type["eventType"] = json!("user.deleted");
        assert_ne!(fingerprint(&a), fingerprint(&other_type));
        let mut other_id = a.clone();
        other_id["id"] = json!("e-2");
        assert_ne!(fingerprint(&a), fingerprint(&other_id));
    }
}
