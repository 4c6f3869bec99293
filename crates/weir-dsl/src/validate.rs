//! `validate(event_type)`: checks each record's value against the latest
//! registered definition of an event type; a record that does not conform
//! is dead-lettered with kind `validation`, its field path and message in
//! `weir.error.message`, and a `SCHEMA_VALIDATION_ERROR` body in
//! `weir.error.details`.
//!
//! The payload checked is the value as it is written to a topic: encoded
//! with the stream's value codec and read as JSON (a `serde_json::Value`
//! stream is checked as is). The definitions come from whoever runs the
//! topology — the runtime connects a registry on the definitions topic, the
//! test driver takes a catalog — through [`Topology::use_event_schemas`].

use std::sync::{Arc, RwLock};

use weir_core::{EventSchemas, OpError, ProcessError};

use crate::builder::Stream;
use crate::graph::{get, BuildError, Emit, Item, Op, Topology};

/// Where a topology's `validate` nodes find definitions: empty until the
/// runtime or the driver fills it.
#[derive(Clone, Default)]
pub(crate) struct SchemaSlot(Arc<RwLock<Option<Arc<dyn EventSchemas>>>>);

impl SchemaSlot {
    fn current(&self) -> Option<Arc<dyn EventSchemas>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Topology {
    /// The event types `validate` nodes check, in name order (empty when
    /// the topology validates nothing).
    pub fn validated_event_types(&self) -> Vec<String> {
        self.inner.validated_types.iter().cloned().collect()
    }

    /// Gives the `validate` nodes their definitions (the runtime does this
    /// at start; tests of topologies pass a `weir_schema::Catalog`). Until
    /// then, every validated record is dead-lettered (kind `validation`,
    /// "no event definitions are available").
    pub fn use_event_schemas(&self, schemas: Arc<dyn EventSchemas>) {
        *self
            .inner
            .schemas
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(schemas);
    }
}

impl<K, V> Stream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Passes on the records whose value conforms to the latest definition
    /// of `event_type`, and dead-letters the others (see the module docs).
    ///
    /// # Examples
    /// ```
    /// use weir_core::{Json, Str};
    /// use weir_dsl::TopologyBuilder;
    ///
    /// let b = TopologyBuilder::new();
    /// b.stream("refunds", Str, Json::<serde_json::Value>::new())
    ///     .validate("refund.requested")
    ///     .to("refunds-valid");
    /// let t = b.build().unwrap();
    /// assert_eq!(t.validated_event_types(), vec!["refund.requested"]);
    /// ```
    pub fn validate(&self, event_type: impl Into<String>) -> Stream<K, V> {
        let event_type: String = event_type.into();
        let slot = {
            let mut g = self.graph.borrow_mut();
            let node = format!("validate-{}", g.nodes.len());
            if !weir_core::valid_event_type(&event_type) {
                g.errors.push(BuildError::InvalidEventType {
                    node: node.clone(),
                    event_type: event_type.clone(),
                });
            }
            if self.value_codec.is_none() {
                g.errors.push(BuildError::ValidateWithoutCodec { node });
            }
            g.validated_types.insert(event_type.clone());
            g.schemas.clone()
        };
        let codec = self.value_codec.clone();
        let op = Op::FlatMap(Arc::new(move |it: Item, emit: &mut Emit<'_>| {
            let value = get::<V>(it.value.as_ref());
            let payload = match (value as &dyn std::any::Any).downcast_ref::<serde_json::Value>() {
                Some(v) => std::borrow::Cow::Borrowed(v),
                None => {
                    let codec = codec.as_ref().expect("checked at build");
                    let bytes = codec.encode(value).map_err(|source| ProcessError::Codec {
                        node: String::new(),
                        source,
                    })?;
                    match serde_json::from_slice(&bytes) {
                        Ok(v) => std::borrow::Cow::Owned(v),
                        Err(e) => {
                            return Err(OpError::validation(format!(
                            "the payload is not JSON ({e}), so it cannot be an {event_type} event"
                        ))
                            .into())
                        }
                    }
                }
            };
            let Some(schemas) = slot.current() else {
                return Err(OpError::validation(format!(
                    "no event definitions are available to check {event_type}"
                ))
                .into());
            };
            schemas
                .check(&event_type, &payload)
                .map_err(|v| ProcessError::from(v.into_op_error()))?;
            emit(it)
        }));
        self.child(
            "validate",
            op,
            self.key_codec.clone(),
            self.value_codec.clone(),
        )
    }
}
