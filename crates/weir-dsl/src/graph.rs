//! The type-erased node graph a [`crate::TopologyBuilder`] produces.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use weir_core::{CodecError, Headers, ProcessError, Timestamp};

/// A record inside a topology: typed key and value behind `Any`.
///
/// Each box holds an `Option<T>` (always `Some` between nodes), so an
/// operator can move the value out and put a new one of the same type back
/// into the same allocation: see [`take`] and [`put`].
pub(crate) struct Item {
    pub key: Box<dyn Any + Send>,
    pub value: Box<dyn Any + Send>,
    pub timestamp: Timestamp,
    pub headers: Headers,
}

const TYPED: &str = "weir-dsl: a node received a record of a type its handle did not declare";

/// A new slot holding `v`.
pub(crate) fn boxed<T: Send + 'static>(v: T) -> Box<dyn Any + Send> {
    Box::new(Some(v))
}

/// Borrows the value in a slot.
pub(crate) fn get<T: 'static>(slot: &(dyn Any + Send)) -> &T {
    slot.downcast_ref::<Option<T>>()
        .and_then(Option::as_ref)
        .expect(TYPED)
}

/// Moves the value out of a slot, leaving it empty (and allocated).
pub(crate) fn take<T: 'static>(slot: &mut Box<dyn Any + Send>) -> T {
    slot.downcast_mut::<Option<T>>()
        .and_then(Option::take)
        .expect(TYPED)
}

/// Puts `v` into `slot`, reusing its allocation when it held the same type.
pub(crate) fn put<T: Send + 'static>(mut slot: Box<dyn Any + Send>, v: T) -> Box<dyn Any + Send> {
    match slot.downcast_mut::<Option<T>>() {
        Some(s) => {
            *s = Some(v);
            slot
        }
        None => boxed(v),
    }
}

pub(crate) type Predicate = Arc<dyn Fn(&Item) -> bool + Send + Sync>;
pub(crate) type MapFn = Arc<dyn Fn(Item) -> Item + Send + Sync>;
/// Where an operator sends each of its outputs.
pub(crate) type Emit<'a> = dyn FnMut(Item) -> Result<(), ProcessError> + 'a;
pub(crate) type FlatMapFn =
    Arc<dyn Fn(Item, &mut Emit<'_>) -> Result<(), ProcessError> + Send + Sync>;
pub(crate) type PeekFn = Arc<dyn Fn(&Item) + Send + Sync>;
pub(crate) type CloneFn = Arc<dyn Fn(&Item) -> Item + Send + Sync>;
pub(crate) type DecodeFn = Arc<
    dyn Fn(
            Option<&[u8]>,
            Option<&[u8]>,
        ) -> Result<(Box<dyn Any + Send>, Box<dyn Any + Send>), CodecError>
        + Send
        + Sync,
>;
pub(crate) type EncodeFn =
    Arc<dyn Fn(&Item) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>), CodecError> + Send + Sync>;
pub(crate) type TopicFn = Arc<dyn Fn(&Item) -> String + Send + Sync>;

/// What a node does.
#[derive(Clone)]
pub(crate) enum Op {
    Source {
        topic: String,
        decode: DecodeFn,
    },
    Filter(Predicate),
    Map(MapFn),
    FlatMap(FlatMapFn),
    Peek(PeekFn),
    /// Forwards to the child of the first matching predicate; a record that
    /// matches none goes to the last child when `otherwise` is set, else nowhere.
    Branch {
        predicates: Vec<Predicate>,
        otherwise: bool,
    },
    /// Forwards unchanged (branch arms, merge).
    Pass,
    Sink {
        topics: Vec<String>,
        encode: EncodeFn,
    },
    DynamicSink {
        choose: TopicFn,
        encode: EncodeFn,
    },
    /// A per-task stateful node made by `factory`, using `stores`.
    Process {
        factory: crate::process::ProcessorFactory,
        stores: Vec<String>,
    },
}

#[derive(Clone)]
pub(crate) struct Node {
    /// Its index in the topology's nodes.
    pub id: usize,
    pub name: String,
    /// The operator that made it (`map_values`, `merge`, …), for describe().
    pub kind: &'static str,
    pub op: Op,
    pub children: Vec<usize>,
    pub parents: Vec<usize>,
    /// Copies an item of this node's output type, for fan-out to several children.
    pub clone_item: CloneFn,
    pub subtopology: usize,
}

/// Why a topology could not be built. Each variant names the node or topic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A sink has no codec for its key or value type.
    #[error("node {node} writes to a topic but has no {part} codec: call with_codecs/with_key_codec/with_value_codec before it")]
    MissingCodec {
        /// The sink node.
        node: String,
        /// `key` or `value`.
        part: &'static str,
    },
    /// `validate` on a stream whose value codec is unknown.
    #[error("node {node} validates payloads but its stream has no value codec: call with_value_codec before validate")]
    ValidateWithoutCodec {
        /// The validating node.
        node: String,
    },
    /// `validate` with an event type that is not a valid name.
    #[error("node {node} validates against event type {event_type:?}: use 1 to 200 letters, digits, '.', '_' or '-'")]
    InvalidEventType {
        /// The validating node.
        node: String,
        /// The name given.
        event_type: String,
    },
    /// Two sources read the same topic.
    #[error("topic {topic} is read by two sources; read it once and reuse the stream")]
    DuplicateSource {
        /// The topic.
        topic: String,
    },
    /// The topology reads nothing.
    #[error("the topology has no source: add one with TopologyBuilder::stream")]
    NoSource,
    /// Two nodes have the same name.
    #[error("two nodes are named {name}; node names must be unique")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// A topic name is empty.
    #[error("node {node} names an empty topic")]
    EmptyTopic {
        /// The node.
        node: String,
    },
    /// Two parameters have the same name.
    #[error("two parameters are named {name}; parameter names must be unique")]
    DuplicateParam {
        /// The name.
        name: String,
    },
    /// Two stores have the same name.
    #[error("two stores are named {store}; store names must be unique")]
    DuplicateStore {
        /// The name.
        store: String,
    },
    /// A stream-table join after a key change: the stream's records of one
    /// key may be in several partitions, the table's in one.
    #[error("node {node} joins table {table} after a key change (map, flat_map, try_map, try_flat_map): call repartition(name) on the stream before the join, or map_values if the key stays")]
    JoinAfterKeyChange {
        /// The join node.
        node: String,
        /// The table's store.
        table: String,
    },
    /// A store name cannot name a topic or directory.
    #[error("store name {store:?} must be non-empty and use only letters, digits, '.', '_' and '-' (it names a changelog topic)")]
    InvalidStoreName {
        /// The name.
        store: String,
    },
    /// Time windows that cannot hold records.
    #[error("windowed store {store}: {message}")]
    InvalidWindows {
        /// The windowed aggregation's store.
        store: String,
        /// What is wrong.
        message: String,
    },
    /// A timer store is named by more than one node, or a node names two.
    #[error("timer store {store}: {message}")]
    TimerStoreUse {
        /// The timer store.
        store: String,
        /// What is wrong.
        message: String,
    },
    /// A node uses a store the builder never declared.
    #[error("node {node} uses store {store}, which was not declared with key_value_store")]
    UndeclaredStore {
        /// The node.
        node: String,
        /// The store.
        store: String,
    },
}

/// A built topology: an immutable graph of sources, processors and sinks,
/// split into sub-topologies that connect only through topics.
///
/// Cheap to clone (an `Arc`), and shared by every task.
#[derive(Clone)]
pub struct Topology {
    pub(crate) inner: Arc<TopologyInner>,
}

pub(crate) struct TopologyInner {
    pub nodes: Vec<Node>,
    /// Source node index by topic.
    pub sources: BTreeMap<String, usize>,
    pub subtopologies: usize,
    /// Stable name per sub-topology (see [`Topology::subtopology_name`]).
    pub subtopology_names: Vec<String>,
    /// Store names per sub-topology, sorted.
    pub subtopology_stores: Vec<Vec<String>>,
    pub dead_letter_topic: Option<String>,
    /// Declared parameters, in declaration order.
    pub params: Vec<crate::params::ParamSpec>,
    /// Repartition topics and their partition counts when the topology set one.
    pub repartition_topics: BTreeMap<String, Option<i32>>,
    /// Stores of tables read from a topic (`table()`), with that topic:
    /// their changelog.
    pub table_sources: BTreeMap<String, String>,
    /// The node owning each timer store (by node index).
    pub timer_stores: BTreeMap<String, usize>,
    /// Dead-letter fix-ups by name.
    pub fixes: BTreeMap<String, DeadLetterFix>,
    /// The status ledger, if any.
    pub ledger: Option<crate::ledger::LedgerSpec>,
    /// Where `validate` nodes find event definitions, and the event types
    /// they check.
    pub schemas: crate::validate::SchemaSlot,
    pub validated_types: std::collections::BTreeSet<String>,
    /// The JSON face of each store declared with typed codecs.
    pub store_views: BTreeMap<String, crate::store_view::StoreView>,
    /// Per sub-topology, whether it acts on stream time (computed once:
    /// see [`Topology::uses_stream_time`]).
    pub timed: std::sync::OnceLock<Vec<bool>>,
}

/// A fix-up for dead letters (see [`crate::TopologyBuilder::dead_letter_fix`]).
pub type DeadLetterFix = Arc<dyn Fn(&weir_core::Record) -> Option<weir_core::Record> + Send + Sync>;

impl Topology {
    /// The dead-letter fix-up registered as `name`.
    pub fn dead_letter_fix(&self, name: &str) -> Option<DeadLetterFix> {
        self.inner.fixes.get(name).cloned()
    }

    /// The names of the registered dead-letter fix-ups.
    pub fn dead_letter_fixes(&self) -> Vec<String> {
        self.inner.fixes.keys().cloned().collect()
    }

    /// The declared parameters.
    pub fn params(&self) -> Vec<crate::ParamDescription> {
        self.inner
            .params
            .iter()
            .map(|p| crate::ParamDescription {
                name: p.name.clone(),
                kind: p.kind.to_string(),
                default: p.default.clone(),
                help: p.help.clone(),
            })
            .collect()
    }

    /// Sets parameter `name` from configuration text (once, before the
    /// topology processes anything). A name matches with `-` and `_`
    /// treated alike and case ignored (`WEIR_PARAMS__ORDER_TIMEOUT_MS`
    /// sets `order-timeout-ms`).
    ///
    /// # Errors
    /// A message naming the parameter when it is not declared (listing the
    /// declared ones), when the text does not parse as its type, or when it
    /// was already set.
    pub fn set_param(&self, name: &str, value: &str) -> Result<(), String> {
        let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
        let Some(p) = self
            .inner
            .params
            .iter()
            .find(|p| norm(&p.name) == norm(name))
        else {
            let declared: Vec<&str> = self.inner.params.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "the topology declares no parameter {name:?}; it declares: {}",
                if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                }
            ));
        };
        (p.set)(value)
    }
    /// Every topic a source reads, in name order.
    pub fn source_topics(&self) -> Vec<String> {
        self.inner.sources.keys().cloned().collect()
    }

    /// Every topic a fixed sink writes, in name order, without duplicates.
    /// Topics chosen per record (`to_dynamic`) are not known in advance.
    pub fn sink_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .inner
            .nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Sink { topics, .. } => Some(topics.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// The number of sub-topologies (groups of nodes connected other than through topics).
    pub fn subtopology_count(&self) -> usize {
        self.inner.subtopologies
    }

    /// The sub-topology that reads `topic`, if any source reads it.
    pub fn subtopology_of(&self, topic: &str) -> Option<usize> {
        self.inner
            .sources
            .get(topic)
            .map(|&i| self.inner.nodes[i].subtopology)
    }

    /// The stable name of sub-topology `id`: its first store's name (in name
    /// order) when it has stores, else `from-<first source topic>` (logical
    /// names, before renames). Adding an operator elsewhere never changes
    /// it, so task ids and state directories stay put.
    pub fn subtopology_name(&self, id: usize) -> &str {
        &self.inner.subtopology_names[id]
    }

    /// The stores of sub-topology `id`, in name order (a task's store ids
    /// are positions in this list).
    pub fn subtopology_stores(&self, id: usize) -> &[String] {
        &self.inner.subtopology_stores[id]
    }

    /// How store `name`'s keys and values look as JSON, for stores declared
    /// with typed codecs (`None` for internal stores and unknown names).
    pub fn store_view(&self, name: &str) -> Option<&crate::store_view::StoreView> {
        self.inner.store_views.get(name)
    }

    /// Every store of the topology, in name order.
    pub fn stores(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .inner
            .subtopology_stores
            .iter()
            .flatten()
            .cloned()
            .collect();
        all.sort();
        all
    }

    /// The source topics of sub-topology `id`.
    pub fn subtopology_sources(&self, id: usize) -> Vec<String> {
        self.inner
            .sources
            .iter()
            .filter(|(_, &i)| self.inner.nodes[i].subtopology == id)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// The repartition topics (written by one sub-topology, read by
    /// another, when a key changes before a stateful operator) and their
    /// partition counts when the topology set one (else: the largest
    /// partition count of the writing sub-topology's inputs). Before the
    /// runtime prefixes them with the application id, their names are
    /// `<store>-repartition`.
    pub fn repartition_topics(&self) -> Vec<(String, Option<i32>)> {
        self.inner
            .repartition_topics
            .iter()
            .map(|(t, n)| (t.clone(), *n))
            .collect()
    }

    /// The topic a store was read from when it is a table made by
    /// `TopologyBuilder::table`: that topic is the store's changelog (the
    /// runtime creates none and writes none for it, and restores it only up
    /// to the task's committed offset of that topic).
    pub fn table_source(&self, store: &str) -> Option<&str> {
        self.inner.table_sources.get(store).map(String::as_str)
    }

    /// Whether the tasks of sub-topology `id` act on stream time: windows,
    /// sessions, timers (waits, windowed joins, retries) or a processor
    /// that asks to hear of it (emit-final). Behind a repartition topic
    /// such tasks take their stream time from their writers' stream-time
    /// markers (the slowest writer's); the writers send markers only to
    /// the repartition topics such tasks read, and other tasks take the
    /// largest timestamp they read, as everywhere else.
    pub fn uses_stream_time(&self, id: usize) -> bool {
        let timed = self.inner.timed.get_or_init(|| {
            (0..self.inner.subtopologies)
                .map(|sub| self.acts_on_stream_time(sub))
                .collect()
        });
        timed.get(id).copied().unwrap_or(false)
    }

    fn acts_on_stream_time(&self, id: usize) -> bool {
        let stores = self.subtopology_stores(id);
        let timed_store = stores.iter().any(|s| {
            self.inner.timer_stores.contains_key(s)
                || self
                    .store_view(s)
                    .is_some_and(|v| v.kind() != crate::StoreKind::KeyValue)
        });
        timed_store
            || self.inner.nodes.iter().any(|n| match &n.op {
                Op::Process { factory, .. } if n.subtopology == id => factory().wants_stream_time(),
                _ => false,
            })
    }

    /// Whether the writers of repartition topic `topic` send it
    /// stream-time markers (its reader uses stream time: see
    /// [`Topology::uses_stream_time`]).
    pub fn carries_markers(&self, topic: &str) -> bool {
        self.inner.repartition_topics.contains_key(topic)
            && self
                .subtopology_of(topic)
                .is_some_and(|s| self.uses_stream_time(s))
    }

    /// Whether `topic` is read as a table (`TopologyBuilder::table`).
    pub fn is_table_topic(&self, topic: &str) -> bool {
        self.inner.table_sources.values().any(|t| t == topic)
    }

    /// The sub-topologies whose sinks write `topic`.
    pub fn writers_of(&self, topic: &str) -> Vec<usize> {
        let mut subs: Vec<usize> = self
            .inner
            .nodes
            .iter()
            .filter(
                |n| matches!(&n.op, Op::Sink { topics, .. } if topics.iter().any(|t| t == topic)),
            )
            .map(|n| n.subtopology)
            .collect();
        subs.sort_unstable();
        subs.dedup();
        subs
    }

    /// The dead-letter topic the topology asked for, if it named one
    /// (otherwise the runtime uses `<application_id>-dlq`).
    pub fn dead_letter_topic(&self) -> Option<&str> {
        self.inner.dead_letter_topic.as_deref()
    }

    /// A copy of this topology with topics renamed by `rename` (logical name →
    /// physical name); topics not in the map keep their names. Used for
    /// per-deployment topic names from configuration.
    pub fn with_topic_names(&self, rename: &BTreeMap<String, String>) -> Topology {
        let map = |t: &String| rename.get(t).cloned().unwrap_or_else(|| t.clone());
        let mut nodes = self.inner.nodes.clone();
        for node in &mut nodes {
            match &mut node.op {
                Op::Source { topic, .. } => *topic = map(topic),
                Op::Sink { topics, .. } => topics.iter_mut().for_each(|t| *t = map(t)),
                _ => {}
            }
        }
        let sources = self
            .inner
            .sources
            .iter()
            .map(|(t, &i)| (map(t), i))
            .collect();
        Topology {
            inner: Arc::new(TopologyInner {
                nodes,
                sources,
                subtopologies: self.inner.subtopologies,
                subtopology_names: self.inner.subtopology_names.clone(),
                subtopology_stores: self.inner.subtopology_stores.clone(),
                params: self.inner.params.clone(),
                dead_letter_topic: self.inner.dead_letter_topic.as_ref().map(map),
                repartition_topics: self
                    .inner
                    .repartition_topics
                    .iter()
                    .map(|(t, n)| (map(t), *n))
                    .collect(),
                table_sources: self
                    .inner
                    .table_sources
                    .iter()
                    .map(|(s, t)| (s.clone(), map(t)))
                    .collect(),
                timer_stores: self.inner.timer_stores.clone(),
                store_views: self.inner.store_views.clone(),
                fixes: self.inner.fixes.clone(),
                ledger: self.inner.ledger.clone().map(|mut l| {
                    l.topic = map(&l.topic);
                    l
                }),
                schemas: self.inner.schemas.clone(),
                validated_types: self.inner.validated_types.clone(),
                timed: self.inner.timed.clone(),
            }),
        }
    }
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

/// Groups nodes into sub-topologies: the connected components of the graph,
/// where nodes using one store count as connected.
pub(crate) fn assign_subtopologies(nodes: &mut [Node]) -> usize {
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let edges: Vec<(usize, usize)> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.children.iter().map(move |&c| (i, c)))
        .collect();
    // Nodes sharing a store are one sub-topology too (a stream-table join
    // and the table it reads): their inputs are read by the same tasks.
    let mut first_user: BTreeMap<&str, usize> = BTreeMap::new();
    let mut shared = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if let Op::Process { stores, .. } = &n.op {
            for s in stores {
                let first = *first_user.entry(s.as_str()).or_insert(i);
                shared.push((first, i));
            }
        }
    }
    for (i, c) in edges.into_iter().chain(shared) {
        let (a, b) = (find(&mut parent, i), find(&mut parent, c));
        if a != b {
            parent[a] = b;
        }
    }
    // Number components in order of their first node, so ids are stable.
    let mut ids = BTreeMap::new();
    for (i, node) in nodes.iter_mut().enumerate() {
        let root = find(&mut parent, i);
        let next = ids.len();
        node.subtopology = *ids.entry(root).or_insert(next);
    }
    ids.len()
}

/// Store names per sub-topology (sorted), checking that every store a node
/// uses was declared.
pub(crate) fn stores_by_subtopology(
    nodes: &[Node],
    subtopologies: usize,
    declared: &std::collections::BTreeSet<String>,
) -> Result<Vec<Vec<String>>, BuildError> {
    let mut by_sub = vec![std::collections::BTreeSet::new(); subtopologies];
    for node in nodes {
        let Op::Process { stores, .. } = &node.op else {
            continue;
        };
        for store in stores {
            if !declared.contains(store) {
                return Err(BuildError::UndeclaredStore {
                    node: node.name.clone(),
                    store: store.clone(),
                });
            }
            by_sub[node.subtopology].insert(store.clone());
        }
    }
    Ok(by_sub
        .into_iter()
        .map(|s| s.into_iter().collect())
        .collect())
}

/// Stable sub-topology names; see [`Topology::subtopology_name`].
pub(crate) fn subtopology_names(
    nodes: &[Node],
    stores: &[Vec<String>],
) -> Result<Vec<String>, BuildError> {
    let mut names = Vec::with_capacity(stores.len());
    for (id, st) in stores.iter().enumerate() {
        let name = match st.first() {
            Some(store) => store.clone(),
            None => {
                let first_topic = nodes
                    .iter()
                    .filter(|n| n.subtopology == id)
                    .filter_map(|n| match &n.op {
                        Op::Source { topic, .. } => Some(topic.clone()),
                        _ => None,
                    })
                    .min()
                    .unwrap_or_else(|| format!("{id}"));
                format!("from-{first_topic}")
            }
        };
        if names.contains(&name) {
            return Err(BuildError::DuplicateStore { store: name });
        }
        names.push(name);
    }
    Ok(names)
}

/// The node owning each timer store: exactly one per store, at most one
/// timer store per node.
pub(crate) fn timer_owners(
    nodes: &[Node],
    timer_stores: &std::collections::BTreeSet<String>,
) -> Result<BTreeMap<String, usize>, BuildError> {
    let mut owners = BTreeMap::new();
    for (id, node) in nodes.iter().enumerate() {
        let Op::Process { stores, .. } = &node.op else {
            continue;
        };
        let mine: Vec<&String> = stores
            .iter()
            .filter(|s| timer_stores.contains(*s))
            .collect();
        if let [first, second, ..] = mine.as_slice() {
            return Err(BuildError::TimerStoreUse {
                store: (*second).clone(),
                message: format!(
                    "node {} already names timer store {first}; a node has at most one",
                    node.name
                ),
            });
        }
        for store in mine {
            if let Some(other) = owners.insert(store.clone(), id) {
                return Err(BuildError::TimerStoreUse {
                    store: store.clone(),
                    message: format!(
                        "named by nodes {} and {}; a timer store belongs to one node",
                        nodes[other].name, node.name
                    ),
                });
            }
        }
    }
    Ok(owners)
}
