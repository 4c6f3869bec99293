//! Typed handles over the type-erased graph: [`TopologyBuilder`], [`Stream`]
//! and [`BranchBuilder`].

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use weir_core::{Codec, CodecError};

use crate::graph::{
    assign_subtopologies, boxed, get, put, stores_by_subtopology, subtopology_names, take,
    BuildError, CloneFn, Emit, EncodeFn, Item, Node, Op, Predicate, Topology, TopologyInner,
};
use crate::process::{
    Erased, ErasedProcessor, FnProcessor, Processor, ProcessorContext, Store, StoreName,
};

fn key<K: 'static>(item: &Item) -> &K {
    get::<K>(&*item.key)
}

fn value<V: 'static>(item: &Item) -> &V {
    get::<V>(&*item.value)
}

fn clone_fn<K: Clone + Send + 'static, V: Clone + Send + 'static>() -> CloneFn {
    Arc::new(|item: &Item| Item {
        key: boxed(key::<K>(item).clone()),
        value: boxed(value::<V>(item).clone()),
        timestamp: item.timestamp,
        headers: item.headers.clone(),
    })
}

/// Reuses a codec of `A` as a codec of `B` when they are the same type, so
/// `map_values` that keeps the type keeps the codec.
pub(crate) fn same_codec<A: 'static, B: 'static>(
    c: &Option<Arc<dyn Codec<A>>>,
) -> Option<Arc<dyn Codec<B>>> {
    let any: Box<dyn Any> = Box::new(c.clone()?);
    any.downcast::<Arc<dyn Codec<B>>>().ok().map(|b| *b)
}

#[derive(Default)]
pub(crate) struct GraphBuilder {
    pub(crate) nodes: Vec<Node>,
    sources: BTreeMap<String, usize>,
    pub(crate) errors: Vec<BuildError>,
    dead_letter_topic: Option<String>,
    stores: std::collections::BTreeSet<String>,
    params: Vec<crate::params::ParamSpec>,
    /// Repartition topics (logical names) and their partition counts when set.
    pub(crate) repartition_topics: BTreeMap<String, Option<i32>>,
    /// Stores of tables read from a topic, with the topic.
    pub(crate) table_sources: BTreeMap<String, String>,
    /// The declared timer stores.
    timer_stores: std::collections::BTreeSet<String>,
    fixes: BTreeMap<String, crate::graph::DeadLetterFix>,
    /// The status ledger, if a source stream has one.
    pub(crate) ledger: Option<crate::ledger::LedgerSpec>,
    /// Shared by the `validate` nodes (see [`crate::validate`]).
    pub(crate) schemas: crate::validate::SchemaSlot,
    pub(crate) validated_types: std::collections::BTreeSet<String>,
    /// The JSON face of each store declared with typed codecs.
    pub(crate) views: BTreeMap<String, crate::store_view::StoreView>,
}

impl GraphBuilder {
    /// Declares store `name`, recording a build error when the name is
    /// invalid or taken.
    pub(crate) fn declare_store(&mut self, name: &str) {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            self.errors.push(BuildError::InvalidStoreName {
                store: name.to_string(),
            });
        } else if !self.stores.insert(name.to_string()) {
            self.errors.push(BuildError::DuplicateStore {
                store: name.to_string(),
            });
        }
    }

    /// Declares store `name` with its JSON face (see [`crate::StoreView`]).
    pub(crate) fn declare_viewed_store(&mut self, name: &str, view: crate::store_view::StoreView) {
        self.declare_store(name);
        self.views.insert(name.to_string(), view);
    }

    /// Declares timer store `name` (see [`TopologyBuilder::timer_store`]).
    pub(crate) fn declare_timer_store(&mut self, name: &str) {
        self.declare_store(name);
        self.timer_stores.insert(name.to_string());
    }

    pub(crate) fn add(
        &mut self,
        kind: &'static str,
        op: Op,
        parents: &[usize],
        clone_item: CloneFn,
    ) -> usize {
        let id = self.nodes.len();
        for &p in parents {
            self.nodes[p].children.push(id);
        }
        self.nodes.push(Node {
            id,
            name: format!("{kind}-{id}"),
            kind,
            op,
            children: Vec::new(),
            parents: parents.to_vec(),
            clone_item,
            subtopology: 0,
        });
        id
    }
}

/// Adds a source node reading `topic` with these codecs.
pub(crate) fn add_source<K, V>(
    graph: &Rc<RefCell<GraphBuilder>>,
    topic: String,
    kc: Arc<dyn Codec<K>>,
    vc: Arc<dyn Codec<V>>,
) -> Stream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    let (dk, dv) = (kc.clone(), vc.clone());
    let decode = Arc::new(move |k: Option<&[u8]>, v: Option<&[u8]>| {
        let key = match k {
            Some(b) => dk.decode(b)?,
            None => dk.decode_null("key")?,
        };
        let value = match v {
            Some(b) => dv.decode(b)?,
            None => dv.decode_null("value")?,
        };
        Ok::<_, CodecError>((boxed(key), boxed(value)))
    });
    let mut g = graph.borrow_mut();
    let id = g.add(
        "source",
        Op::Source {
            topic: topic.clone(),
            decode,
        },
        &[],
        clone_fn::<K, V>(),
    );
    if topic.is_empty() {
        let node = g.nodes[id].name.clone();
        g.errors.push(BuildError::EmptyTopic { node });
    }
    if g.sources.insert(topic.clone(), id).is_some() {
        g.errors.push(BuildError::DuplicateSource { topic });
    }
    drop(g);
    Stream {
        graph: graph.clone(),
        node: id,
        key_codec: Some(kc),
        value_codec: Some(vc),
        _types: PhantomData,
    }
}

/// Builds a [`Topology`]: create sources with [`TopologyBuilder::stream`],
/// chain operators on the returned [`Stream`]s, then call [`TopologyBuilder::build`].
///
/// # Examples
/// ```
/// use weir_core::{Json, Str};
/// use weir_dsl::TopologyBuilder;
///
/// let b = TopologyBuilder::new();
/// let events = b.stream("events", Str, Json::<serde_json::Value>::new());
/// events.filter(|_, v| v["amount"].as_i64().unwrap_or(0) > 0).to("kept");
/// let topology = b.build().unwrap();
/// assert_eq!(topology.sink_topics(), vec!["kept".to_string()]);
/// ```
#[derive(Default)]
pub struct TopologyBuilder {
    pub(crate) graph: Rc<RefCell<GraphBuilder>>,
}

impl TopologyBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream of the records of `topic`, decoded with the given codecs.
    /// A record that does not decode is dead-lettered with kind `decode`.
    pub fn stream<K, V>(
        &self,
        topic: impl Into<String>,
        key_codec: impl Codec<K>,
        value_codec: impl Codec<V>,
    ) -> Stream<K, V>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        add_source(
            &self.graph,
            topic.into(),
            Arc::new(key_codec),
            Arc::new(value_codec),
        )
    }

    /// Declares a key-value store named `name` whose keys and values are
    /// stored with these codecs; give the handle to the `process` nodes
    /// that use it. The name is stable state: it names the store's column
    /// family and its changelog topic, so renaming it starts from empty.
    ///
    /// # Examples
    /// ```
    /// use weir_core::{Json, Str};
    /// use weir_dsl::TopologyBuilder;
    ///
    /// let b = TopologyBuilder::new();
    /// let counts = b.key_value_store("counts", Str, Json::<u64>::new());
    /// let c = counts.clone();
    /// b.stream("in", Str, Str)
    ///     .process("count", &[&counts], move |ctx, k: String, _v: String| {
    ///         let n = ctx.store(&c)?.get(&k)?.unwrap_or(0) + 1;
    ///         ctx.store(&c)?.put(&k, &n)?;
    ///         ctx.forward(k, n);
    ///         Ok(())
    ///     })
    ///     .with_value_codec(Json::<u64>::new())
    ///     .to("counts");
    /// assert_eq!(b.build().unwrap().stores(), vec!["counts"]);
    /// ```
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: impl Into<String>,
        key_codec: impl Codec<K>,
        value_codec: impl Codec<V>,
    ) -> Store<K, V> {
        let name = name.into();
        let (kc, vc): (Arc<dyn Codec<K>>, Arc<dyn Codec<V>>) =
            (Arc::new(key_codec), Arc::new(value_codec));
        self.graph
            .borrow_mut()
            .declare_viewed_store(&name, crate::store_view::StoreView::key_value(&kc, &vc));
        Store {
            name: name.into(),
            key_codec: kc,
            value_codec: vc,
        }
    }

    /// Declares a timer store: durable timers for the one `process` node
    /// that names it among its stores (see
    /// [`crate::ProcessorContext::schedule_at`] and
    /// [`crate::Processor::on_timer`]). Like a key-value store it is
    /// changelogged and restored, so timers survive crashes and move with
    /// their task on a rebalance.
    ///
    /// # Examples
    /// ```
    /// use weir_core::{ProcessError, Str};
    /// use weir_dsl::{Clock, Processor, ProcessorContext, Timer, TopologyBuilder};
    ///
    /// /// Forwards each key once, a minute of stream time after it was last seen.
    /// struct Quiet;
    /// impl Processor<String, String, String, String> for Quiet {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, k: String, v: String)
    ///         -> Result<(), ProcessError> {
    ///         let at = ctx.timestamp() + 60_000;
    ///         ctx.schedule_at(Clock::Stream, at, k.as_bytes(), v.as_bytes())
    ///     }
    ///     fn on_timer(&mut self, ctx: &mut ProcessorContext<'_, String, String>, t: Timer)
    ///         -> Result<(), ProcessError> {
    ///         let key = String::from_utf8_lossy(&t.key).into_owned();
    ///         ctx.forward(key, String::from_utf8_lossy(&t.payload).into_owned());
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let b = TopologyBuilder::new();
    /// let timers = b.timer_store("quiet-timers");
    /// b.stream("in", Str, Str).process_with("quiet", &[&timers], || Quiet).to("out");
    /// assert_eq!(b.build().unwrap().stores(), vec!["quiet-timers"]);
    /// ```
    pub fn timer_store(&self, name: impl Into<String>) -> crate::Timers {
        let name = name.into();
        self.graph.borrow_mut().declare_timer_store(&name);
        crate::Timers { name: name.into() }
    }

    /// Declares a typed parameter with a default and a help text; a
    /// deployment sets it in `[params]` or `WEIR_PARAMS__<NAME>`, and
    /// `describe` lists it. Capture the handle in the closures that need it.
    ///
    /// # Examples
    /// ```
    /// use weir_core::{Json, Str};
    /// use weir_dsl::TopologyBuilder;
    ///
    /// let b = TopologyBuilder::new();
    /// let min = b.param("min_amount", 0.0_f64, "events below this amount are dropped");
    /// b.stream("in", Str, Json::<f64>::new())
    ///     .filter(move |_, amount| *amount >= min.get())
    ///     .to("kept");
    /// let t = b.build().unwrap();
    /// t.set_param("min_amount", "10").unwrap();
    /// assert_eq!(t.params()[0].default, "0");
    /// ```
    pub fn param<T: crate::ParamValue>(
        &self,
        name: &str,
        default: T,
        help: &str,
    ) -> crate::Param<T> {
        let (param, spec) = crate::Param::declare(name, default, help);
        let mut g = self.graph.borrow_mut();
        if g.params.iter().any(|p| p.name == name) {
            g.errors.push(BuildError::DuplicateParam {
                name: name.to_string(),
            });
        }
        g.params.push(spec);
        param
    }

    /// Sends this topology's dead letters to `topic` instead of the runtime's
    /// default `<application_id>-dlq`.
    pub fn dead_letter_topic(&self, topic: impl Into<String>) -> &Self {
        self.graph.borrow_mut().dead_letter_topic = Some(topic.into());
        self
    }

    /// Registers fix-up `name` for dead-letter replay (`<topology binary>
    /// dlq replay --fix <name>`): given a dead letter (its key, value,
    /// headers and timestamp as read from the dead-letter topic), the
    /// record to replay instead, or `None` to leave it out.
    ///
    /// # Examples
    /// ```
    /// use weir_core::{Record, Str};
    /// use weir_dsl::TopologyBuilder;
    ///
    /// let b = TopologyBuilder::new();
    /// b.stream("in", Str, Str).to("out");
    /// b.dead_letter_fix("trim", |r: &Record| {
    ///     let value = r.value.as_ref()?.trim_ascii().to_vec();
    ///     Some(Record { value: Some(value), ..r.clone() })
    /// });
    /// assert_eq!(b.build().unwrap().dead_letter_fixes(), vec!["trim"]);
    /// ```
    pub fn dead_letter_fix(
        &self,
        name: impl Into<String>,
        f: impl Fn(&weir_core::Record) -> Option<weir_core::Record> + Send + Sync + 'static,
    ) -> &Self {
        self.graph
            .borrow_mut()
            .fixes
            .insert(name.into(), Arc::new(f));
        self
    }

    /// Checks the graph and freezes it.
    ///
    /// # Errors
    /// A [`BuildError`] naming the node or topic: a sink without codecs, a
    /// topic read twice, an empty topic name, or no source at all.
    pub fn build(self) -> Result<Topology, BuildError> {
        let mut g = self.graph.take();
        if let Some(e) = g.errors.drain(..).next() {
            return Err(e);
        }
        if g.sources.is_empty() {
            return Err(BuildError::NoSource);
        }
        let mut names = std::collections::BTreeSet::new();
        if let Some(n) = g.nodes.iter().find(|n| !names.insert(n.name.as_str())) {
            return Err(BuildError::DuplicateName {
                name: n.name.clone(),
            });
        }
        let subtopologies = assign_subtopologies(&mut g.nodes);
        let stores = stores_by_subtopology(&g.nodes, subtopologies, &g.stores)?;
        let names = subtopology_names(&g.nodes, &stores)?;
        let timer_stores = crate::graph::timer_owners(&g.nodes, &g.timer_stores)?;
        Ok(Topology {
            inner: Arc::new(TopologyInner {
                nodes: g.nodes,
                sources: g.sources,
                subtopologies,
                subtopology_names: names,
                subtopology_stores: stores,
                dead_letter_topic: g.dead_letter_topic,
                params: g.params,
                repartition_topics: g.repartition_topics,
                table_sources: g.table_sources,
                timer_stores,
                fixes: g.fixes,
                ledger: g.ledger,
                schemas: g.schemas,
                validated_types: g.validated_types,
                store_views: g.views,
            }),
        })
    }
}

impl Topology {
    /// A new [`TopologyBuilder`].
    pub fn builder() -> TopologyBuilder {
        TopologyBuilder::new()
    }
}

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
