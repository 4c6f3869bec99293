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
    assign_subtopologies, boxed, get, stores_by_subtopology, subtopology_names, BuildError,
    CloneFn, Item, Node, Op, Topology, TopologyInner,
};
use crate::process::Store;

pub use stream::{BranchBuilder, Stream};

mod stream;

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
    /// Nodes that may change a record's key (`map`, `flat_map`, …).
    rekeyed: std::collections::BTreeSet<usize>,
}

/// The operators that may change a record's key: downstream of one, a
/// key's records may sit in several partitions until a repartition.
const REKEYING: [&str; 4] = ["map", "flat_map", "try_map", "try_flat_map"];

impl GraphBuilder {
    /// Marks `node` as one that may change keys (for operators whose node
    /// kind does not say so, such as a retrying `try_map`).
    pub(crate) fn mark_rekeyed(&mut self, node: usize) {
        self.rekeyed.insert(node);
    }

    /// Whether a record's key may have changed between its source (a topic
    /// or a repartition topic) and `node`.
    pub(crate) fn key_changed(&self, node: usize) -> bool {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo = vec![node];
        while let Some(n) = todo.pop() {
            if !seen.insert(n) {
                continue;
            }
            if self.rekeyed.contains(&n) {
                return true;
            }
            todo.extend(&self.nodes[n].parents);
        }
        false
    }

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
        if REKEYING.contains(&kind) {
            self.rekeyed.insert(id);
        }
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
                timed: Default::default(),
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
