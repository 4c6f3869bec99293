//! Tables and stream-table joins.
//!
//! [`TopologyBuilder::table`] reads a (compacted) topic as a table: each
//! record upserts its key in a named store, a tombstone deletes it. The
//! topic itself is the store's changelog — the runtime writes no second
//! copy, and after a crash or a move it restores the store from that topic
//! only up to the task's committed offset of it, then processing continues
//! from there (a restore to the topic's end would let a join see values
//! from the future). [`Stream::to_table`] keeps the latest value per key of
//! a stream in a store with its own changelog.
//!
//! [`Stream::join`] and [`Stream::left_join`] look each stream record's key
//! up in a table. The table's updates and the stream are inputs of the same
//! tasks (a join needs them co-partitioned: the runtime refuses to start
//! when their partition counts differ, naming both topics), released in
//! timestamp order, so a stream record meets the table value current at its
//! timestamp.

use std::marker::PhantomData;
use std::sync::Arc;

use weir_core::{Codec, CodecError};

use crate::builder::add_source;
use crate::join::{JoinWith, ValueJoiner};
use crate::process::Store;
use crate::{BuildError, StoreView, Stream, Table, TopologyBuilder};

/// A table topic's value codec: a tombstone decodes to `None`.
struct Nullable<V>(Arc<dyn Codec<V>>);

impl<V: 'static> Codec<Option<V>> for Nullable<V> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn encode(&self, value: &Option<V>) -> Result<Vec<u8>, CodecError> {
        match value {
            Some(v) => self.0.encode(v),
            None => Err(CodecError::Null {
                codec: self.0.name(),
                part: "value",
            }),
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<Option<V>, CodecError> {
        self.0.decode(bytes).map(Some)
    }

    fn decode_null(&self, _part: &'static str) -> Result<Option<V>, CodecError> {
        Ok(None)
    }
}

impl TopologyBuilder {
    /// A table read from `topic` (normally compacted) into store `store`:
    /// each record sets its key's value, a tombstone deletes the key. The
    /// topic is the store's changelog (see the module docs). The table's
    /// [`Table::to_stream`] carries every update; deletions are not
    /// forwarded. A record whose key or value does not decode is
    /// dead-lettered with kind `decode`.
    ///
    /// # Examples
    /// ```
    /// use weir_core::{Json, Str};
    /// use weir_dsl::TopologyBuilder;
    ///
    /// let b = TopologyBuilder::new();
    /// let tiers = b.table("customers", "customer-tiers", Str, Str);
    /// b.stream("events", Str, Json::<serde_json::Value>::new())
    ///     .left_join(&tiers, |mut e, tier| {
    ///         e["tier"] = tier.unwrap_or_else(|| "none".into()).into();
    ///         e
    ///     })
    ///     .to("enriched");
    /// let t = b.build().unwrap();
    /// assert_eq!(t.table_source("customer-tiers"), Some("customers"));
    /// assert_eq!(t.subtopology_count(), 1);
    /// ```
    pub fn table<K, V>(
        &self,
        topic: impl Into<String>,
        store: impl Into<String>,
        key_codec: impl Codec<K>,
        value_codec: impl Codec<V>,
    ) -> Table<K, V>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        let (topic, store) = (topic.into(), store.into());
        let kc: Arc<dyn Codec<K>> = Arc::new(key_codec);
        let vc: Arc<dyn Codec<V>> = Arc::new(value_codec);
        {
            let mut g = self.graph.borrow_mut();
            g.declare_viewed_store(&store, StoreView::key_value(&kc, &vc));
            g.table_sources.insert(store.clone(), topic.clone());
        }
        let source: Stream<K, Option<V>> = add_source(
            &self.graph,
            topic,
            kc.clone(),
            Arc::new(Nullable(vc.clone())),
        );
        let handle: Store<K, V> = Store {
            name: store.as_str().into(),
            key_codec: kc.clone(),
            value_codec: vc.clone(),
        };
        let s = handle.clone();
        let updates = source.process(store, &[&handle], move |ctx, key: K, value: Option<V>| {
            let mut st = ctx.store(&s)?;
            match value {
                Some(v) => {
                    st.put(&key, &v)?;
                    ctx.forward(key, v);
                }
                None => st.delete(&key)?,
            }
            Ok(())
        });
        table_of(updates, "table", handle)
    }
}

fn set_kind<K, V>(s: &Stream<K, V>, kind: &'static str) {
    s.graph.borrow_mut().nodes[s.node].kind = kind;
}

/// The table whose updates node is `updates` (shown as `kind`), encoded
/// with its store's codecs.
fn table_of<K, V>(updates: Stream<K, V>, kind: &'static str, store: Store<K, V>) -> Table<K, V> {
    set_kind(&updates, kind);
    Table {
        updates: Stream {
            key_codec: Some(store.key_codec.clone()),
            value_codec: Some(store.value_codec.clone()),
            ..updates
        },
        store,
    }
}

impl<K, V> Stream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// The latest value per key of this stream, kept in store `store` (with
    /// its own changelog); its [`Table::to_stream`] forwards every record.
    /// After a key change the records go through `<store>-repartition`
    /// first (see [`Stream::group_by_key`]). Needs the stream's key and
    /// value codecs.
    pub fn to_table(&self, store: impl Into<String>) -> Table<K, V> {
        let store = store.into();
        let this = self.partitioned_by_key(&store);
        let Some((kc, vc)) = this.codecs_for(&store) else {
            return Table {
                updates: this,
                store: Store {
                    name: store.as_str().into(),
                    key_codec: Arc::new(Unbuildable(PhantomData)),
                    value_codec: Arc::new(Unbuildable(PhantomData)),
                },
            };
        };
        this.graph
            .borrow_mut()
            .declare_viewed_store(&store, StoreView::key_value(&kc, &vc));
        let handle: Store<K, V> = Store {
            name: store.as_str().into(),
            key_codec: kc.clone(),
            value_codec: vc.clone(),
        };
        let s = handle.clone();
        let updates = this.process(store, &[&handle], move |ctx, key: K, value: V| {
            ctx.store(&s)?.put(&key, &value)?;
            ctx.forward(key, value);
            Ok(())
        });
        table_of(updates, "to_table", handle)
    }

    fn join_node<VT, VR>(
        &self,
        kind: &'static str,
        table: &Table<K, VT>,
        joiner: ValueJoiner<V, VT, VR>,
    ) -> Stream<K, VR>
    where
        VT: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let name = format!("{kind}-{}", self.graph.borrow().nodes.len());
        if self.key_changed() {
            self.graph
                .borrow_mut()
                .errors
                .push(BuildError::JoinAfterKeyChange {
                    node: name.clone(),
                    table: table.store.name().to_string(),
                });
        }
        let s = table.store.clone();
        let out = self.process(name, &[&table.store], move |ctx, key: K, value: V| {
            let current = ctx.store(&s)?.get(&key)?;
            if let Some(r) = joiner(value, current) {
                ctx.forward(key, r);
            }
            Ok(())
        });
        set_kind(&out, kind);
        out
    }
}

/// The codec of a store in a topology that fails to build (never used).
pub(crate) struct Unbuildable<T>(pub(crate) PhantomData<fn() -> T>);

impl<T: 'static> Codec<T> for Unbuildable<T> {
    fn name(&self) -> &'static str {
        "none"
    }
    fn encode(&self, _: &T) -> Result<Vec<u8>, CodecError> {
        unreachable!("a topology with a codec error is never built")
    }
    fn decode(&self, _: &[u8]) -> Result<T, CodecError> {
        unreachable!("a topology with a codec error is never built")
    }
}

impl<K, VT> crate::join::sealed::Sealed for &Table<K, VT> {}

impl<K, V, VT> JoinWith<K, V> for &Table<K, VT>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
    VT: Clone + Send + 'static,
{
    type Other = VT;

    fn join_to<VR>(
        self,
        stream: &Stream<K, V>,
        unmatched: bool,
        joiner: ValueJoiner<V, VT, VR>,
    ) -> Stream<K, VR>
    where
        VR: Clone + Send + 'static,
    {
        let kind = if unmatched { "left_join" } else { "join" };
        stream.join_node(kind, self, joiner)
    }
}
