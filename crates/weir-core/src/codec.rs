//! Codecs turn typed keys and values into Kafka bytes and back.
//!
//! One trait, [`Codec`], so the DSL and the runtime never depend on a
//! particular serialization crate; bincode (unmaintained, RUSTSEC-2025-0141)
//! can be swapped behind it without touching a topology.

use std::marker::PhantomData;

use serde::{de::DeserializeOwned, Serialize};

use crate::CodecError;

/// Encodes values of type `T` to bytes and decodes them back.
///
/// Implementations must round-trip: `decode(&encode(v)?)? == v`.
pub trait Codec<T>: Send + Sync + 'static {
    /// A short name for error messages (`json`, `bincode`, …).
    fn name(&self) -> &'static str;

    /// Serializes `value`.
    ///
    /// # Errors
    /// [`CodecError::Encode`] when the value cannot be represented.
    fn encode(&self, value: &T) -> Result<Vec<u8>, CodecError>;

    /// Deserializes `bytes`.
    ///
    /// # Errors
    /// [`CodecError::Decode`] when `bytes` is not a valid encoding.
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError>;

    /// The value a Kafka null (missing key, tombstone) decodes to.
    ///
    /// # Errors
    /// By default [`CodecError::Null`]: most types have no null.
    fn decode_null(&self, part: &'static str) -> Result<T, CodecError> {
        Err(CodecError::Null {
            codec: self.name(),
            part,
        })
    }

    /// `value` as JSON, for the admin endpoint and tools; `None` when this
    /// codec has no JSON view of its values (the default).
    fn to_json(&self, _value: &T) -> Option<serde_json::Value> {
        None
    }

    /// A value from its JSON view (the inverse of [`Codec::to_json`]), as a
    /// key typed in a URL or on a command line; `None` when this codec has
    /// no JSON view (the default).
    fn parse_json(&self, _json: &serde_json::Value) -> Option<Result<T, CodecError>> {
        None
    }
}

/// UTF-8 text. A null decodes to the empty string.
#[derive(Clone, Copy, Debug, Default)]
pub struct Str;

impl Codec<String> for Str {
    fn name(&self) -> &'static str {
        "string"
    }

    fn encode(&self, value: &String) -> Result<Vec<u8>, CodecError> {
        Ok(value.as_bytes().to_vec())
    }

    fn decode(&self, bytes: &[u8]) -> Result<String, CodecError> {
        String::from_utf8(bytes.to_vec()).map_err(|e| CodecError::Decode {
            codec: "string",
            message: e.to_string(),
        })
    }

    fn decode_null(&self, _part: &'static str) -> Result<String, CodecError> {
        Ok(String::new())
    }

    fn to_json(&self, value: &String) -> Option<serde_json::Value> {
        Some(serde_json::Value::String(value.clone()))
    }

    fn parse_json(&self, json: &serde_json::Value) -> Option<Result<String, CodecError>> {
        Some(match json {
            serde_json::Value::String(s) => Ok(s.clone()),
            other => Err(CodecError::Decode {
                codec: "string",
                message: format!("expected a JSON string, got {other}"),
            }),
        })
    }
}

/// Raw bytes, passed through. A null decodes to no bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bytes;

impl Codec<Vec<u8>> for Bytes {
    fn name(&self) -> &'static str {
        "bytes"
    }

    fn encode(&self, value: &Vec<u8>) -> Result<Vec<u8>, CodecError> {
        Ok(value.clone())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(bytes.to_vec())
    }

    fn decode_null(&self, _part: &'static str) -> Result<Vec<u8>, CodecError> {
        Ok(Vec::new())
    }
}

/// JSON through serde_json. A null decodes as JSON `null` (so `Option<T>` and
/// `serde_json::Value` accept it).
pub struct Json<T>(PhantomData<fn() -> T>);

impl<T> Json<T> {
    /// A JSON codec for `T`.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Default for Json<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Json<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Json")
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Codec<T> for Json<T> {
    fn name(&self) -> &'static str {
        "json"
    }

    fn encode(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(value).map_err(|e| CodecError::Encode {
            codec: "json",
            message: e.to_string(),
        })
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        serde_json::from_slice(bytes).map_err(|e| CodecError::Decode {
            codec: "json",
            message: e.to_string(),
        })
    }

    fn decode_null(&self, part: &'static str) -> Result<T, CodecError> {
        serde_json::from_slice(b"null").map_err(|_| CodecError::Null {
            codec: "json",
            part,
        })
    }

    fn to_json(&self, value: &T) -> Option<serde_json::Value> {
        serde_json::to_value(value).ok()
    }

    fn parse_json(&self, json: &serde_json::Value) -> Option<Result<T, CodecError>> {
        Some(from_json_value("json", json))
    }
}

/// `T` from a JSON value through serde (the JSON view of serde codecs).
fn from_json_value<T: DeserializeOwned>(
    codec: &'static str,
    json: &serde_json::Value,
) -> Result<T, CodecError> {
    T::deserialize(json).map_err(|e| CodecError::Decode {
        codec,
        message: e.to_string(),
    })
}

/// Compact binary through bincode 2 (serde mode, standard configuration).
/// Trailing bytes after a value are an error, so a truncated or padded
/// record is never silently accepted. Decoding claims at most
/// [`BINCODE_LIMIT`] bytes, so a garbage length prefix is a decode error
/// rather than a huge allocation that aborts the process.
pub struct Bincode<T>(PhantomData<fn() -> T>);

/// The most memory one bincode value may claim while decoding (64 MiB).
pub const BINCODE_LIMIT: usize = 64 << 20;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<BINCODE_LIMIT>()
}

impl<T> Bincode<T> {
    /// A bincode codec for `T`.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Default for Bincode<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Bincode<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for Bincode<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bincode")
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Codec<T> for Bincode<T> {
    fn name(&self) -> &'static str {
        "bincode"
    }

    fn encode(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        bincode::serde::encode_to_vec(value, bincode_config()).map_err(|e| CodecError::Encode {
            codec: "bincode",
            message: e.to_string(),
        })
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let (value, read) =
            bincode::serde::decode_from_slice(bytes, bincode_config()).map_err(|e| {
                CodecError::Decode {
                    codec: "bincode",
                    message: e.to_string(),
                }
            })?;
        if read != bytes.len() {
            return Err(CodecError::Decode {
                codec: "bincode",
                message: format!("{} trailing bytes after the value", bytes.len() - read),
            });
        }
        Ok(value)
    }

    fn to_json(&self, value: &T) -> Option<serde_json::Value> {
        serde_json::to_value(value).ok()
    }

    fn parse_json(&self, json: &serde_json::Value) -> Option<Result<T, CodecError>> {
        Some(from_json_value("bincode", json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Event {
        id: String,
        amount: i64,
        tags: Vec<String>,
        note: Option<String>,
    }

    fn event() -> impl Strategy<Value = Event> {
        (
            ".*",
            any::<i64>(),
            proptest::collection::vec(".*", 0..4),
            proptest::option::of(".*"),
        )
            .prop_map(|(id, amount, tags, note)| Event {
                id,
                amount,
                tags,
                note,
            })
    }

    proptest! {
        #[test]
        fn the_json_view_of_serde_codecs_round_trips(e in event()) {
            for c in [&Json::<Event>::new() as &dyn Codec<Event>, &Bincode::<Event>::new()] {
                let view = c.to_json(&e).expect("a JSON view");
                prop_assert_eq!(view["amount"].as_i64(), Some(e.amount));
                prop_assert_eq!(c.parse_json(&view).expect("a JSON view").unwrap(), e.clone());
            }
        }

        #[test]
        fn the_json_view_of_strings_is_the_string(s in ".*") {
            let view = Str.to_json(&s).expect("a JSON view");
            prop_assert_eq!(view.as_str(), Some(s.as_str()));
            prop_assert_eq!(Str.parse_json(&view).expect("a JSON view").unwrap(), s);
        }

        #[test]
        fn json_round_trips(e in event()) {
            let c = Json::<Event>::new();
            prop_assert_eq!(c.decode(&c.encode(&e).unwrap()).unwrap(), e);
        }

        #[test]
        fn bincode_round_trips(e in event()) {
            let c = Bincode::<Event>::new();
            prop_assert_eq!(c.decode(&c.encode(&e).unwrap()).unwrap(), e);
        }

        #[test]
        fn string_round_trips(s in ".*") {
            prop_assert_eq!(Str.decode(&Str.encode(&s).unwrap()).unwrap(), s);
        }

        #[test]
        fn bytes_round_trip(b in proptest::collection::vec(any::<u8>(), 0..256)) {
            prop_assert_eq!(Bytes.decode(&Bytes.encode(&b).unwrap()).unwrap(), b);
        }

        #[test]
        fn bincode_rejects_or_decodes_garbage_without_aborting(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            // A huge length prefix must be an error, not an allocation failure.
            if let Ok(e) = Bincode::<Event>::new().decode(&b) {
                prop_assert!(e.tags.len() <= b.len());
            }
        }
    }

    #[test]
    fn malformed_input_is_a_decode_error() {
        let err = Json::<Event>::new().decode(b"{not json").unwrap_err();
        assert!(
            matches!(err, CodecError::Decode { codec: "json", .. }),
            "{err}"
        );
        let err = Str.decode(&[0xff, 0xfe]).unwrap_err();
        assert!(matches!(
            err,
            CodecError::Decode {
                codec: "string",
                ..
            }
        ));
        // A length prefix of u64::MAX must not try to allocate it.
        let huge = [253u8, 255, 255, 255, 255, 255, 255, 255, 255];
        assert!(Bincode::<Vec<u64>>::new().decode(&huge).is_err());
        let mut bytes = Bincode::<u32>::new().encode(&7).unwrap();
        bytes.push(0);
        assert!(Bincode::<u32>::new().decode(&bytes).is_err());
    }

    #[test]
    fn null_handling_is_per_codec() {
        assert_eq!(Str.decode_null("key").unwrap(), "");
        assert_eq!(
            Json::<Option<u8>>::new().decode_null("value").unwrap(),
            None
        );
        assert!(matches!(
            Json::<Event>::new().decode_null("value"),
            Err(CodecError::Null { part: "value", .. })
        ));
    }
}
