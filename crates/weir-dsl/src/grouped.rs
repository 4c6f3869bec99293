//! Aggregation: [`Stream::group_by_key`] / [`Stream::group_by`] give a
//! [`Grouped`] stream; [`Grouped::count`], [`Grouped::reduce`] and
//! [`Grouped::aggregate`] keep one value per key in a named key-value store
//! and give a [`Table`]; [`Table::to_stream`] is its stream of updates.
//!
//! When the key changed before the aggregation (`group_by`, or
//! `group_by_key` after a `map`, `flat_map`, `try_map` or `try_flat_map`),
//! records are first written to a **repartition topic** `<store>-repartition`
//! (the runtime prefixes it with the application id) keyed by the new key —
//! so every record of one key reaches the same task — and read back by the
//! aggregating sub-topology. Otherwise `group_by_key` keeps the input's
//! partitioning.
//!
//! Every update is forwarded downstream as it happens (one output per input
//! record, in order); Kafka Streams' record cache would coalesce updates of
//! one key within a commit interval. The store's changelog is coalesced
//! either way: one record per changed key per commit.

use std::marker::PhantomData;
use std::sync::Arc;

use weir_core::{Codec, Json};

use crate::builder::add_source;
use crate::graph::BuildError;
use crate::process::Store;
use crate::table::Unbuildable;
use crate::Stream;

/// A stream grouped by key, ready to aggregate; see the module docs.
pub struct Grouped<K, V> {
    pub(crate) stream: Stream<K, V>,
    repartition: bool,
    partitions: Option<i32>,
}

impl<K, V> Clone for Grouped<K, V> {
    fn clone(&self) -> Self {
        Self {
            stream: self.stream.clone(),
            repartition: self.repartition,
            partitions: self.partitions,
        }
    }
}

/// The result of an aggregation: the latest value per key, kept in a named
/// store, and the stream of its updates.
pub struct Table<K, V> {
    pub(crate) updates: Stream<K, V>,
    pub(crate) store: Store<K, V>,
}

impl<K, V> Table<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// The stream of updates: each key with its new value, per input record.
    pub fn to_stream(&self) -> Stream<K, V> {
        self.updates.clone()
    }

    /// The store holding the table (its name is the changelog's too).
    pub fn store(&self) -> &Store<K, V> {
        &self.store
    }
}

impl<K, V> Stream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Groups by the current key. Records of one key are in one partition
    /// as read; after a key change (`map`, `flat_map`, `try_map`,
    /// `try_flat_map`) they are repartitioned first, as by
    /// [`Stream::group_by`], through `<store>-repartition`. Needs a key
    /// codec for the store, and then a value codec for the topic too.
    ///
    /// # Examples
    /// ```
    /// use weir_core::{Json, Str};
    /// use weir_dsl::TopologyBuilder;
    ///
    /// let b = TopologyBuilder::new();
    /// let orders = b.stream("orders", Str, Json::<serde_json::Value>::new());
    /// orders.group_by_key().count("orders-per-id");
    /// orders
    ///     .map(|_, v| (v["customer"].as_str().unwrap_or("").to_string(), v))
    ///     .group_by_key()
    ///     .count("orders-per-customer");
    /// let t = b.build().unwrap();
    /// assert_eq!(t.repartition_topics(), vec![("orders-per-customer-repartition".to_string(), None)]);
    /// ```
    pub fn group_by_key(&self) -> Grouped<K, V> {
        Grouped {
            stream: self.clone(),
            repartition: self.key_changed(),
            partitions: None,
        }
    }

    /// Groups by a new key computed from each record; the records are
    /// repartitioned by it (see the module docs) before the aggregation.
    /// `key_codec` encodes the new key in the repartition topic and the
    /// store (a `Str` key is its UTF-8 bytes, placed with murmur2 like
    /// every producer's).
    ///
    /// # Examples
    /// ```
    /// use weir_core::{Json, Str};
    /// use weir_dsl::TopologyBuilder;
    ///
    /// let b = TopologyBuilder::new();
    /// b.stream("orders", Str, Json::<serde_json::Value>::new())
    ///     .group_by(|_, v| v["customer"].as_str().unwrap_or("").to_string(), Str)
    ///     .count("orders-per-customer")
    ///     .to_stream()
    ///     .to("counts");
    /// let t = b.build().unwrap();
    /// assert_eq!(t.stores(), vec!["orders-per-customer"]);
    /// assert_eq!(t.repartition_topics()[0].0, "orders-per-customer-repartition");
    /// ```
    pub fn group_by<K2>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        key_codec: impl Codec<K2>,
    ) -> Grouped<K2, V>
    where
        K2: Clone + Send + 'static,
    {
        let stream = self
            .map(move |k, v| (f(&k, &v), v))
            .with_key_codec(key_codec);
        Grouped {
            stream,
            repartition: true,
            partitions: None,
        }
    }
}

impl<K, V> Stream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Writes the stream to a repartition topic `<name>-repartition` (the
    /// runtime prefixes the application id and creates it with the largest
    /// partition count of the inputs upstream) and reads it back: records
    /// are then partitioned by their current key, as a join with a table
    /// keyed the same way needs after a key change (a build error names
    /// the join otherwise; the grouping, `to_table`, windowed joins and
    /// waits repartition on their own, through topics named after their
    /// stores). Needs the key and value codecs.
    ///
    /// # Examples
    /// ```
    /// use weir_core::{Json, Str};
    /// use weir_dsl::TopologyBuilder;
    ///
    /// let b = TopologyBuilder::new();
    /// b.stream("orders", Str, Json::<serde_json::Value>::new())
    ///     .map(|_, v| (v["customer"].as_str().unwrap_or("").to_string(), v))
    ///     .with_key_codec(Str)
    ///     .repartition("by-customer")
    ///     .to("orders-by-customer");
    /// let t = b.build().unwrap();
    /// assert_eq!(t.repartition_topics(), vec![("by-customer-repartition".to_string(), None)]);
    /// assert_eq!(t.subtopology_count(), 2);
    /// ```
    pub fn repartition(&self, name: impl Into<String>) -> Stream<K, V> {
        self.repartition_through(&name.into(), None)
    }

    /// This stream partitioned by its current key: as it is, or after a key
    /// change through `<name>-repartition`. Without both codecs it stays as
    /// it is (the operator's own codec check names the missing one).
    pub(crate) fn partitioned_by_key(&self, name: &str) -> Stream<K, V> {
        if self.key_changed() && self.key_codec.is_some() && self.value_codec.is_some() {
            self.repartition_through(name, None)
        } else {
            self.clone()
        }
    }

    /// Through `<name>-repartition` with `partitions` (default: as the
    /// runtime chooses); a missing codec is a build error naming `name`.
    fn repartition_through(&self, name: &str, partitions: Option<i32>) -> Stream<K, V> {
        let Some((kc, vc)) = self.codecs_for(name) else {
            return self.clone();
        };
        let topic = format!("{name}-repartition");
        self.graph
            .borrow_mut()
            .repartition_topics
            .insert(topic.clone(), partitions);
        self.to(topic.clone());
        add_source(&self.graph, topic, kc, vc)
    }
}

impl<K, V> Stream<K, V> {
    /// The stream's key and value codecs, or `None` after recording a
    /// [`BuildError::MissingCodec`] that names `node`.
    #[allow(clippy::type_complexity)]
    pub(crate) fn codecs_for(
        &self,
        node: &str,
    ) -> Option<(Arc<dyn weir_core::Codec<K>>, Arc<dyn weir_core::Codec<V>>)> {
        if let (Some(kc), Some(vc)) = (self.key_codec.clone(), self.value_codec.clone()) {
            return Some((kc, vc));
        }
        let part = if self.key_codec.is_none() {
            "key"
        } else {
            "value"
        };
        self.graph
            .borrow_mut()
            .errors
            .push(BuildError::MissingCodec {
                node: node.to_string(),
                part,
            });
        None
    }
}

impl<K, V> Grouped<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Sets the repartition topic's partition count (default: the largest
    /// partition count of the inputs upstream). Ignored when there is no
    /// repartition (`group_by_key` without a key change).
    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// The number of records per key, in store `store`.
    pub fn count(&self, store: impl Into<String>) -> Table<K, u64> {
        self.aggregate(store, || 0u64, |_, _, n| n + 1, Json::<u64>::new())
    }

    /// Combines the values of each key with `f(aggregate, value)`; the first
    /// value of a key is its aggregate. Needs a value codec for the store.
    pub fn reduce(
        &self,
        store: impl Into<String>,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> Table<K, V> {
        let store = store.into();
        let Some(codec) = self.stream.value_codec.clone() else {
            self.missing_codec(&store, "value");
            return self.aggregate_with(store, None, |_, v: V, a: Option<V>| Some(v).or(a));
        };
        let f = Arc::new(f);
        self.aggregate_with(store, Some(codec), move |_, v, a: Option<V>| match a {
            Some(a) => Some(f(a, v)),
            None => Some(v),
        })
    }

    /// Folds the values of each key into an aggregate: `init()` for a new
    /// key, then `f(key, value, aggregate)` per record; `codec` stores it.
    pub fn aggregate<A>(
        &self,
        store: impl Into<String>,
        init: impl Fn() -> A + Send + Sync + 'static,
        f: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        codec: impl Codec<A>,
    ) -> Table<K, A>
    where
        A: Clone + Send + 'static,
    {
        let codec: Arc<dyn Codec<A>> = Arc::new(codec);
        self.aggregate_with(store.into(), Some(codec), move |k, v, a: Option<A>| {
            Some(f(k, v, a.unwrap_or_else(&init)))
        })
    }

    fn missing_codec(&self, store: &str, part: &'static str) {
        self.stream
            .graph
            .borrow_mut()
            .errors
            .push(BuildError::MissingCodec {
                node: store.to_string(),
                part,
            });
    }

    /// The stream the aggregation reads: repartitioned by key if needed.
    pub(crate) fn partitioned(&self, store: &str) -> Stream<K, V> {
        if !self.repartition {
            return self.stream.clone();
        }
        self.stream.repartition_through(store, self.partitions)
    }

    /// The aggregation node: `step(key, value, old)` gives the new aggregate
    /// (`None`: unchanged, nothing forwarded).
    fn aggregate_with<A>(
        &self,
        store: String,
        codec: Option<Arc<dyn Codec<A>>>,
        step: impl Fn(&K, V, Option<A>) -> Option<A> + Send + Sync + 'static,
    ) -> Table<K, A>
    where
        A: Clone + Send + 'static,
    {
        let input = self.partitioned(&store);
        let Some(kc) = input.key_codec.clone() else {
            self.missing_codec(&store, "key");
            return self.placeholder(input, store);
        };
        let Some(ac) = codec else {
            return self.placeholder(input, store);
        };
        input
            .graph
            .borrow_mut()
            .declare_viewed_store(&store, crate::StoreView::key_value(&kc, &ac));
        let handle: Store<K, A> = Store {
            name: store.as_str().into(),
            key_codec: kc.clone(),
            value_codec: ac.clone(),
        };
        let s = handle.clone();
        let step = Arc::new(step);
        let updates = input.process(store.clone(), &[&handle], move |ctx, key: K, value: V| {
            let mut st = ctx.store(&s)?;
            let old = st.get(&key)?;
            if let Some(new) = step(&key, value, old) {
                st.put(&key, &new)?;
                ctx.forward(key, new);
            }
            Ok(())
        });
        let updates = Stream {
            key_codec: Some(kc),
            value_codec: Some(ac),
            ..updates
        };
        Table {
            updates,
            store: handle,
        }
    }

    /// A table for a topology that will not build (a codec is missing).
    fn placeholder<A>(&self, input: Stream<K, V>, store: String) -> Table<K, A>
    where
        A: Clone + Send + 'static,
    {
        let updates: Stream<K, A> = input.process(store.clone(), &[], |_, _: K, _: V| Ok(()));
        Table {
            updates,
            store: Store {
                name: store.as_str().into(),
                key_codec: Arc::new(Unbuildable(PhantomData)),
                value_codec: Arc::new(Unbuildable(PhantomData)),
            },
        }
    }
}
