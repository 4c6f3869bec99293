//! [`Stream`], the typed handle on a stream of records, with its
//! stateless operators, and [`BranchBuilder`].

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use weir_core::Codec;

use super::{clone_fn, key, same_codec, value, GraphBuilder};
use crate::graph::{boxed, put, take, BuildError, Emit, EncodeFn, Item, Op, Predicate};
use crate::process::{
    Erased, ErasedProcessor, FnProcessor, Processor, ProcessorContext, StoreName,
};

/// A typed handle on a stream of records with keys `K` and values `V`.
///
/// Operators take `&self`, so one stream can feed several downstream
/// operators (each gets its own copy of every record). Handles carry the
/// codecs of their types when known; sinks need them.
pub struct Stream<K, V> {
    pub(crate) graph: Rc<RefCell<GraphBuilder>>,
    pub(crate) node: usize,
    pub(crate) key_codec: Option<Arc<dyn Codec<K>>>,
    pub(crate) value_codec: Option<Arc<dyn Codec<V>>>,
    pub(crate) _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Stream<K, V> {
    fn clone(&self) -> Self {
        Stream {
            graph: self.graph.clone(),
            node: self.node,
            key_codec: self.key_codec.clone(),
            value_codec: self.value_codec.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V> Stream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    pub(crate) fn child<K2, V2>(
        &self,
        kind: &'static str,
        op: Op,
        key_codec: Option<Arc<dyn Codec<K2>>>,
        value_codec: Option<Arc<dyn Codec<V2>>>,
    ) -> Stream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
    {
        let node = self
            .graph
            .borrow_mut()
            .add(kind, op, &[self.node], clone_fn::<K2, V2>());
        Stream {
            graph: self.graph.clone(),
            node,
            key_codec,
            value_codec,
            _types: PhantomData,
        }
    }

    /// Whether a `map`, `flat_map`, `try_map` or `try_flat_map` since the
    /// source (or the last repartition) may have changed the keys: then a
    /// key's records may be in several partitions, and a stateful operator
    /// keyed by it must repartition first. A `process` node is taken to
    /// keep keys (call [`Stream::repartition`] after one that changes
    /// them).
    pub(crate) fn key_changed(&self) -> bool {
        self.graph.borrow().key_changed(self.node)
    }

    /// Renames this stream's node (the name shows in `describe()` and in the
    /// `weir.node` header of dead letters).
    pub fn named(self, name: impl Into<String>) -> Self {
        self.graph.borrow_mut().nodes[self.node].name = name.into();
        self
    }

    /// The same stream, encoded with these codecs when written to a topic.
    pub fn with_codecs(
        &self,
        key_codec: impl Codec<K>,
        value_codec: impl Codec<V>,
    ) -> Stream<K, V> {
        self.with_key_codec(key_codec).with_value_codec(value_codec)
    }

    /// The same stream, with keys encoded by `codec`.
    pub fn with_key_codec(&self, codec: impl Codec<K>) -> Stream<K, V> {
        Stream {
            key_codec: Some(Arc::new(codec)),
            ..self.clone()
        }
    }

    /// The same stream, with values encoded by `codec`.
    pub fn with_value_codec(&self, codec: impl Codec<V>) -> Stream<K, V> {
        Stream {
            value_codec: Some(Arc::new(codec)),
            ..self.clone()
        }
    }

    /// Keeps the records for which `predicate` is true.
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        let p: Predicate = Arc::new(move |it: &Item| predicate(key::<K>(it), value::<V>(it)));
        self.child(
            "filter",
            Op::Filter(p),
            self.key_codec.clone(),
            self.value_codec.clone(),
        )
    }

    /// Replaces each record's key and value.
    pub fn map<K2, V2>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> Stream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
    {
        let op = Op::Map(Arc::new(move |mut it: Item| {
            let k = take::<K>(&mut it.key);
            let v = take::<V>(&mut it.value);
            let (k2, v2) = f(k, v);
            it.key = put(it.key, k2);
            it.value = put(it.value, v2);
            it
        }));
        let kc = same_codec::<K, K2>(&self.key_codec);
        let vc = same_codec::<V, V2>(&self.value_codec);
        self.child("map", op, kc, vc)
    }

    /// Replaces each record's value, keeping its key.
    pub fn map_values<V2>(&self, f: impl Fn(V) -> V2 + Send + Sync + 'static) -> Stream<K, V2>
    where
        V2: Clone + Send + 'static,
    {
        let op = Op::Map(Arc::new(move |mut it: Item| {
            let v = take::<V>(&mut it.value);
            it.value = put(it.value, f(v));
            it
        }));
        let vc = same_codec::<V, V2>(&self.value_codec);
        self.child("map_values", op, self.key_codec.clone(), vc)
    }

    /// Turns each record into zero or more records.
    pub fn flat_map<K2, V2, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> Stream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
        I: IntoIterator<Item = (K2, V2)>,
    {
        let op = Op::FlatMap(Arc::new(move |mut it: Item, emit: &mut Emit<'_>| {
            let k = take::<K>(&mut it.key);
            let v = take::<V>(&mut it.value);
            let (timestamp, headers) = (it.timestamp, it.headers.clone());
            // The first output reuses the input's allocations.
            let mut shell = Some(it);
            for (k2, v2) in f(k, v) {
                let item = match shell.take() {
                    Some(mut s) => {
                        s.key = put(s.key, k2);
                        s.value = put(s.value, v2);
                        s
                    }
                    None => Item {
                        key: boxed(k2),
                        value: boxed(v2),
                        timestamp,
                        headers: headers.clone(),
                    },
                };
                emit(item)?;
            }
            Ok(())
        }));
        let kc = same_codec::<K, K2>(&self.key_codec);
        let vc = same_codec::<V, V2>(&self.value_codec);
        self.child("flat_map", op, kc, vc)
    }

    /// Calls `f` on each record and passes it on unchanged (logging, metrics).
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> Self {
        let op = Op::Peek(Arc::new(move |it: &Item| f(key::<K>(it), value::<V>(it))));
        self.child("peek", op, self.key_codec.clone(), self.value_codec.clone())
    }

    /// A stateful node (the escape hatch): `f` gets a [`ProcessorContext`]
    /// with the stores named in `stores`, the record's timestamp and
    /// headers, the task's stream time, and `forward`. Returning an error
    /// dead-letters the record and drops its store writes and forwards.
    ///
    /// For per-task fields and `init`/`close` hooks, implement
    /// [`Processor`] and use [`Stream::process_with`].
    pub fn process<K2, V2, F>(
        &self,
        name: impl Into<String>,
        stores: &[&dyn StoreName],
        f: F,
    ) -> Stream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
        F: Fn(&mut ProcessorContext<'_, K2, V2>, K, V) -> Result<(), weir_core::ProcessError>
            + Send
            + Sync
            + 'static,
    {
        let f = Arc::new(f);
        self.process_with(name, stores, move || FnProcessor(f.clone()))
    }

    /// A stateful node whose per-task instance `factory` makes when the
    /// task is created (and again after an aborted transaction).
    pub fn process_with<K2, V2, P>(
        &self,
        name: impl Into<String>,
        stores: &[&dyn StoreName],
        factory: impl Fn() -> P + Send + Sync + 'static,
    ) -> Stream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
        P: Processor<K, V, K2, V2>,
    {
        let factory: crate::process::ProcessorFactory = Arc::new(move || {
            Box::new(Erased {
                processor: factory(),
                _types: PhantomData::<fn(K, V, K2, V2)>,
            }) as Box<dyn ErasedProcessor>
        });
        let op = Op::Process {
            factory,
            stores: stores.iter().map(|s| s.store_name().to_string()).collect(),
        };
        let kc = same_codec::<K, K2>(&self.key_codec);
        let vc = same_codec::<V, V2>(&self.value_codec);
        self.child::<K2, V2>("process", op, kc, vc).named(name)
    }

    /// Content-based routing: each record goes to the first arm whose
    /// predicate matches, or to `otherwise`, or nowhere.
    ///
    /// # Examples
    /// ```
    /// use weir_core::Str;
    /// use weir_dsl::TopologyBuilder;
    ///
    /// let b = TopologyBuilder::new();
    /// b.stream("in", Str, Str)
    ///     .branch()
    ///     .when(|_, v| v.starts_with('a'), |s| s.to("a"))
    ///     .otherwise(|s| s.to("rest"));
    /// assert_eq!(b.build().unwrap().sink_topics(), vec!["a", "rest"]);
    /// ```
    pub fn branch(&self) -> BranchBuilder<K, V> {
        let op = Op::Branch {
            predicates: Vec::new(),
            otherwise: false,
        };
        BranchBuilder {
            branch: self.child(
                "branch",
                op,
                self.key_codec.clone(),
                self.value_codec.clone(),
            ),
        }
    }

    /// One stream of the records of both streams.
    pub fn merge(&self, other: &Stream<K, V>) -> Self {
        let node = self.graph.borrow_mut().add(
            "merge",
            Op::Pass,
            &[self.node, other.node],
            clone_fn::<K, V>(),
        );
        Stream {
            graph: self.graph.clone(),
            node,
            key_codec: self.key_codec.clone().or_else(|| other.key_codec.clone()),
            value_codec: self
                .value_codec
                .clone()
                .or_else(|| other.value_codec.clone()),
            _types: PhantomData,
        }
    }

    fn encoder(&self, sink: usize) -> EncodeFn {
        let (kc, vc) = (self.key_codec.clone(), self.value_codec.clone());
        let mut g = self.graph.borrow_mut();
        let node = g.nodes[sink].name.clone();
        match (kc, vc) {
            (Some(kc), Some(vc)) => Arc::new(move |it: &Item| {
                Ok((
                    Some(kc.encode(key::<K>(it))?),
                    Some(vc.encode(value::<V>(it))?),
                ))
            }),
            (kc, _) => {
                let part = if kc.is_none() { "key" } else { "value" };
                g.errors.push(BuildError::MissingCodec { node, part });
                Arc::new(|_: &Item| unreachable!("a topology with a codec error is never built"))
            }
        }
    }

    fn sink(&self, kind: &'static str, op: Op) {
        let id = self
            .graph
            .borrow_mut()
            .add(kind, op, &[self.node], clone_fn::<K, V>());
        let encode = self.encoder(id);
        let mut g = self.graph.borrow_mut();
        let node = g.nodes[id].name.clone();
        match &mut g.nodes[id].op {
            Op::Sink { topics, encode: e } => {
                *e = encode;
                if topics.is_empty() || topics.iter().any(|t| t.is_empty()) {
                    g.errors.push(BuildError::EmptyTopic { node });
                }
            }
            Op::DynamicSink { encode: e, .. } => *e = encode,
            _ => unreachable!("sink() only adds sinks"),
        }
    }

    fn placeholder_encoder() -> EncodeFn {
        Arc::new(|_: &Item| unreachable!("replaced before build"))
    }

    /// Writes every record to `topic`.
    pub fn to(&self, topic: impl Into<String>) {
        self.to_many([topic.into()]);
    }

    /// Writes every record to each of `topics` (multicast).
    pub fn to_many<T: Into<String>>(&self, topics: impl IntoIterator<Item = T>) {
        let mut topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        // Multicast to a topic twice would write each record twice.
        let mut seen = std::collections::BTreeSet::new();
        topics.retain(|t| seen.insert(t.clone()));
        let op = Op::Sink {
            topics,
            encode: Self::placeholder_encoder(),
        };
        self.sink("sink", op);
    }

    /// Writes each record to the topic `choose` names for it.
    pub fn to_dynamic(&self, choose: impl Fn(&K, &V) -> String + Send + Sync + 'static) {
        let op = Op::DynamicSink {
            choose: Arc::new(move |it: &Item| choose(key::<K>(it), value::<V>(it))),
            encode: Self::placeholder_encoder(),
        };
        self.sink("dynamic_sink", op);
    }
}

/// Content-based routing, built arm by arm; see [`Stream::branch`].
pub struct BranchBuilder<K, V> {
    branch: Stream<K, V>,
}

impl<K, V> BranchBuilder<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    fn arm(&self) -> Stream<K, V> {
        self.branch.child(
            "branch_arm",
            Op::Pass,
            self.branch.key_codec.clone(),
            self.branch.value_codec.clone(),
        )
    }

    /// Records matching `predicate` (and no earlier arm) go to the stream
    /// given to `arm`.
    pub fn when(
        self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        arm: impl FnOnce(Stream<K, V>),
    ) -> Self {
        let p: Predicate = Arc::new(move |it: &Item| predicate(key::<K>(it), value::<V>(it)));
        if let Op::Branch { predicates, .. } =
            &mut self.branch.graph.borrow_mut().nodes[self.branch.node].op
        {
            predicates.push(p);
        }
        arm(self.arm());
        self
    }

    /// Records matching no arm go to the stream given to `arm`.
    pub fn otherwise(self, arm: impl FnOnce(Stream<K, V>)) {
        if let Op::Branch { otherwise, .. } =
            &mut self.branch.graph.borrow_mut().nodes[self.branch.node].op
        {
            *otherwise = true;
        }
        arm(self.arm());
    }

    /// Ends the routing: records matching no arm are dropped.
    pub fn end(self) {}
}
