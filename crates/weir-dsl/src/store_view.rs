//! How a store's bytes look to a person: [`StoreView`], the untyped face
//! of a store's codecs that the admin endpoint and tools use to read a key
//! typed in a URL and to render keys and values as JSON.
//!
//! Every store declared with typed codecs registers one (key-value stores,
//! tables, aggregations, windowed and session aggregations); internal stores
//! (timers, parked retries, waits' bookkeeping) have none and are not
//! queryable by key. A codec with a JSON view ([`Codec::to_json`]: strings,
//! `Json`, `Bincode`) renders as that JSON; another renders as
//! `{"codec": name, "hex": ..}`.

use std::sync::Arc;

use weir_core::{Codec, CodecError};

/// The layout of a store's entries, which decides how it is queried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StoreKind {
    /// One value per key (key-value stores, tables, aggregations).
    KeyValue,
    /// One value per key and window start (windowed aggregations); entries
    /// are laid out by segment (see [`StoreView::segment_ms`] and
    /// `weir_state::window`).
    Window,
    /// Sessions per key (session aggregations).
    Session,
}

/// The untyped face of one store's codecs; see the module docs. Cheap to
/// clone.
#[derive(Clone)]
pub struct StoreView {
    kind: StoreKind,
    key: Arc<dyn JsonView>,
    value: Arc<dyn JsonView>,
    /// A window store's segment span (it may depend on parameters, so it
    /// is read when asked).
    segment_ms: Option<Arc<dyn Fn() -> i64 + Send + Sync>>,
}

impl std::fmt::Debug for StoreView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreView")
            .field("kind", &self.kind)
            .field("key_codec", &self.key.codec())
            .field("value_codec", &self.value.codec())
            .finish()
    }
}

impl StoreView {
    pub(crate) fn new<K: 'static, V: 'static>(
        kind: StoreKind,
        key: Arc<dyn Codec<K>>,
        value: Arc<dyn Codec<V>>,
    ) -> Self {
        Self {
            kind,
            key: Arc::new(Typed(key)),
            value: Arc::new(Typed(value)),
            segment_ms: None,
        }
    }

    /// A key-value store's view.
    pub(crate) fn key_value<K: 'static, V: 'static>(
        key: &Arc<dyn Codec<K>>,
        value: &Arc<dyn Codec<V>>,
    ) -> Self {
        Self::new(StoreKind::KeyValue, key.clone(), value.clone())
    }

    /// A window store's view, whose segment span `segment_ms` gives.
    pub(crate) fn windowed<K: 'static, V: 'static>(
        key: Arc<dyn Codec<K>>,
        value: Arc<dyn Codec<V>>,
        segment_ms: impl Fn() -> i64 + Send + Sync + 'static,
    ) -> Self {
        Self {
            segment_ms: Some(Arc::new(segment_ms)),
            ..Self::new(StoreKind::Window, key, value)
        }
    }

    /// A window store's segment span (`None` for other kinds).
    pub fn segment_ms(&self) -> Option<i64> {
        self.segment_ms.as_ref().map(|f| f())
    }

    /// The store's layout.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The key codec's name.
    pub fn key_codec(&self) -> &'static str {
        self.key.codec()
    }

    /// The value codec's name.
    pub fn value_codec(&self) -> &'static str {
        self.value.codec()
    }

    /// The serialized key for `text` as typed by a person: JSON for the key
    /// type (`42`, `{"id": 1}`), or — when that does not parse as one — the
    /// text itself as a JSON string (`c-17` for a string key).
    ///
    /// # Errors
    /// [`CodecError::Decode`] when the text is no key of this store, or the
    /// key codec has no JSON view.
    pub fn parse_key(&self, text: &str) -> Result<Vec<u8>, CodecError> {
        self.key.parse(text)
    }

    /// A serialized key as JSON.
    ///
    /// # Errors
    /// [`CodecError`] when the bytes do not decode with the key codec.
    pub fn render_key(&self, bytes: &[u8]) -> Result<serde_json::Value, CodecError> {
        self.key.render(bytes)
    }

    /// A serialized value as JSON.
    ///
    /// # Errors
    /// [`CodecError`] when the bytes do not decode with the value codec.
    pub fn render_value(&self, bytes: &[u8]) -> Result<serde_json::Value, CodecError> {
        self.value.render(bytes)
    }

    /// A window store's stored slot — the timestamp of the latest record
    /// it holds, then the serialized aggregate — as that timestamp and the
    /// aggregate as JSON.
    ///
    /// # Errors
    /// [`CodecError`] when the slot is too short or the aggregate does not
    /// decode with the value codec.
    pub fn render_window_slot(
        &self,
        stored: &[u8],
    ) -> Result<(i64, serde_json::Value), CodecError> {
        let (latest, aggregate) =
            crate::window::decode_slot(stored).ok_or_else(|| CodecError::Decode {
                codec: self.value.codec(),
                message: format!("a window slot of {} bytes", stored.len()),
            })?;
        Ok((latest, self.value.render(aggregate)?))
    }
}

trait JsonView: Send + Sync {
    fn codec(&self) -> &'static str;
    fn parse(&self, text: &str) -> Result<Vec<u8>, CodecError>;
    fn render(&self, bytes: &[u8]) -> Result<serde_json::Value, CodecError>;
}

struct Typed<T>(Arc<dyn Codec<T>>);

impl<T: 'static> JsonView for Typed<T> {
    fn codec(&self) -> &'static str {
        self.0.name()
    }

    fn parse(&self, text: &str) -> Result<Vec<u8>, CodecError> {
        let as_json = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|j| self.0.parse_json(&j))
            .and_then(Result::ok);
        let value = match as_json {
            Some(v) => v,
            None => self
                .0
                .parse_json(&serde_json::Value::String(text.to_string()))
                .unwrap_or_else(|| {
                    Err(CodecError::Decode {
                        codec: self.0.name(),
                        message: "this codec cannot read a key from text".into(),
                    })
                })?,
        };
        self.0.encode(&value)
    }

    fn render(&self, bytes: &[u8]) -> Result<serde_json::Value, CodecError> {
        let value = self.0.decode(bytes)?;
        Ok(self.0.to_json(&value).unwrap_or_else(
            || serde_json::json!({ "codec": self.0.name(), "hex": weir_core::to_hex(bytes) }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use weir_core::{Bytes, Json, Str};

    fn view<K: 'static, V: 'static>(k: impl Codec<K>, v: impl Codec<V>) -> StoreView {
        StoreView::new(StoreKind::KeyValue, Arc::new(k), Arc::new(v))
    }

    proptest! {
        #[test]
        fn a_string_key_parses_as_typed_and_renders_back(text in ".*") {
            let v = view(Str, Json::<u64>::new());
            let bytes = v.parse_key(&text).unwrap();
            // Text that is itself a JSON string ("\"a\"") is that string.
            let expected = match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(serde_json::Value::String(s)) => s,
                _ => text.clone(),
            };
            prop_assert_eq!(&bytes, expected.as_bytes());
            prop_assert_eq!(v.render_key(&bytes).unwrap(), serde_json::Value::String(expected));
        }

        #[test]
        fn a_number_key_parses_from_its_digits(n in any::<u64>()) {
            let v = view(Json::<u64>::new(), Str);
            let bytes = v.parse_key(&n.to_string()).unwrap();
            prop_assert_eq!(Json::<u64>::new().decode(&bytes).unwrap(), n);
            prop_assert_eq!(v.render_key(&bytes).unwrap(), serde_json::json!(n));
        }
    }

    #[test]
    fn a_key_that_is_not_of_the_type_is_a_codec_error() {
        let v = view(Json::<u64>::new(), Str);
        let e = v.parse_key("c-17").unwrap_err();
        assert!(e.to_string().contains("json"), "{e}");
    }

    #[test]
    fn values_render_as_json_or_as_hex_without_a_json_view() {
        let v = view(Str, Json::<serde_json::Value>::new());
        assert_eq!(
            v.render_value(br#"{"total":3}"#).unwrap(),
            serde_json::json!({"total": 3})
        );
        assert!(v.render_value(b"{not json").is_err());
        let raw = view(Str, Bytes);
        assert_eq!(
            raw.render_value(&[0, 255]).unwrap(),
            serde_json::json!({"codec": "bytes", "hex": "00ff"})
        );
        assert!(raw.parse_key("x").is_ok(), "the key codec is a string");
        let opaque = view(Bytes, Str);
        assert!(opaque.parse_key("x").is_err());
        assert_eq!(v.kind(), StoreKind::KeyValue);
        assert_eq!((v.key_codec(), v.value_codec()), ("string", "json"));
    }
}
