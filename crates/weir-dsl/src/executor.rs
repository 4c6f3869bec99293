//! [`TaskExecutor`]: runs one task's nodes on one record at a time.

use std::panic::{catch_unwind, AssertUnwindSafe};

use weir_core::{ProcessError, Record, Timestamp};

use crate::graph::{Item, Node, Op, Topology};

/// Runs the nodes of one task — one sub-topology for one partition number —
/// on the records of its source partitions.
///
/// Both the runtime and the `TopologyTestDriver` drive this type, so unit
/// tests and production share one processing path. It holds no Kafka state:
/// positions, transactions and dead-lettering belong to the caller.
pub struct TaskExecutor {
    topology: Topology,
    subtopology: usize,
    partition: i32,
    stream_time: Option<Timestamp>,
}

impl TaskExecutor {
    /// The executor for sub-topology `subtopology`, partition `partition`.
    pub fn new(topology: Topology, subtopology: usize, partition: i32) -> Self {
        Self {
            topology,
            subtopology,
            partition,
            stream_time: None,
        }
    }

    /// The sub-topology this task runs.
    pub fn subtopology(&self) -> usize {
        self.subtopology
    }

    /// The partition number this task owns.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The largest timestamp processed so far (Kafka Streams' stream time).
    pub fn stream_time(&self) -> Option<Timestamp> {
        self.stream_time
    }

    /// Processes `record` and appends its outputs to `out`.
    ///
    /// # Errors
    /// A [`ProcessError`] when the record cannot be processed (it did not
    /// decode, an output did not encode, an operator panicked, or no source
    /// reads its topic). `out` is then left exactly as it was: the caller
    /// dead-letters the record and moves on.
    pub fn process(&mut self, record: &Record, out: &mut Vec<Record>) -> Result<(), ProcessError> {
        let inner = &self.topology.inner;
        let Some(&source) = inner.sources.get(&record.topic) else {
            return Err(ProcessError::UnknownTopic {
                topic: record.topic.clone(),
            });
        };
        let node = &inner.nodes[source];
        let Op::Source { decode, .. } = &node.op else {
            unreachable!("sources map to source nodes");
        };
        let mark = out.len();
        let nodes = &inner.nodes;
        // User code includes codecs: a panic while decoding is dead-lettered too.
        let result = catch_unwind(AssertUnwindSafe(|| {
            CURRENT_NODE.with(|c| c.set(source));
            let (key, value) =
                decode(record.key.as_deref(), record.value.as_deref()).map_err(|source| {
                    ProcessError::Codec {
                        node: node.name.clone(),
                        source,
                    }
                })?;
            let item = Item {
                key,
                value,
                timestamp: record.timestamp,
                headers: record.headers.clone(),
            };
            forward(nodes, node, item, out)
        }));
        let result = match result {
            Ok(r) => r,
            Err(payload) => Err(panic_error(nodes, payload)),
        };
        if result.is_err() {
            out.truncate(mark);
        } else {
            self.stream_time = Some(
                self.stream_time
                    .map_or(record.timestamp, |t| t.max(record.timestamp)),
            );
        }
        result
    }
}

thread_local! {
    /// The node whose user code is running, so a panic can name it.
    static CURRENT_NODE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

fn panic_error(nodes: &[Node], payload: Box<dyn std::any::Any + Send>) -> ProcessError {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".to_string());
    let node = CURRENT_NODE.with(|c| c.get());
    ProcessError::Panic {
        node: nodes.get(node).map(|n| n.name.clone()).unwrap_or_default(),
        message,
    }
}

fn forward(
    nodes: &[Node],
    from: &Node,
    item: Item,
    out: &mut Vec<Record>,
) -> Result<(), ProcessError> {
    if let [only] = from.children.as_slice() {
        return push(nodes, *only, item, out);
    }
    // Sinks only read the item: they get it by reference, so fan-out to a
    // sink and a processor (e.g. an audit topic beside routing) copies nothing.
    let is_sink = |c: usize| matches!(nodes[c].op, Op::Sink { .. } | Op::DynamicSink { .. });
    let mut last_flow = None;
    for &c in &from.children {
        if is_sink(c) {
            CURRENT_NODE.with(|n| n.set(c));
            write(&nodes[c], &item, out)?;
        } else {
            last_flow = Some(c);
        }
    }
    let Some(last) = last_flow else {
        return Ok(());
    };
    for &c in &from.children {
        if c == last {
            break;
        }
        if !is_sink(c) {
            push(nodes, c, (from.clone_item)(&item), out)?;
        }
    }
    push(nodes, last, item, out)
}

fn push(nodes: &[Node], id: usize, item: Item, out: &mut Vec<Record>) -> Result<(), ProcessError> {
    let node = &nodes[id];
    CURRENT_NODE.with(|c| c.set(id));
    match &node.op {
        Op::Filter(p) => {
            if p(&item) {
                forward(nodes, node, item, out)
            } else {
                Ok(())
            }
        }
        Op::Map(f) => forward(nodes, node, f(item), out),
        Op::FlatMap(f) => f(item, &mut |it| {
            let r = forward(nodes, node, it, out);
            // The user's iterator runs again next: a panic there is this node's.
            CURRENT_NODE.with(|c| c.set(id));
            r
        }),
        Op::Peek(f) => {
            f(&item);
            forward(nodes, node, item, out)
        }
        Op::Branch {
            predicates,
            otherwise,
        } => match predicates.iter().position(|p| p(&item)) {
            Some(i) => push(nodes, node.children[i], item, out),
            None if *otherwise => push(nodes, node.children[predicates.len()], item, out),
            None => Ok(()),
        },
        Op::Pass | Op::Source { .. } => forward(nodes, node, item, out),
        Op::Sink { .. } | Op::DynamicSink { .. } => write(node, &item, out),
    }
}

/// Encodes `item` for a sink node and appends its output record(s).
fn write(node: &Node, item: &Item, out: &mut Vec<Record>) -> Result<(), ProcessError> {
    let codec_error = |source| ProcessError::Codec {
        node: node.name.clone(),
        source,
    };
    match &node.op {
        Op::Sink { topics, encode } => {
            let (key, value) = encode(item).map_err(codec_error)?;
            let (last, rest) = topics.split_last().expect("a sink has a topic");
            for t in rest {
                out.push(output(t, key.clone(), value.clone(), item));
            }
            out.push(output(last, key, value, item));
            Ok(())
        }
        Op::DynamicSink { choose, encode } => {
            let topic = choose(item);
            let (key, value) = encode(item).map_err(codec_error)?;
            out.push(output(&topic, key, value, item));
            Ok(())
        }
        _ => unreachable!("write() is only called on sinks"),
    }
}

fn output(topic: &str, key: Option<Vec<u8>>, value: Option<Vec<u8>>, item: &Item) -> Record {
    Record {
        topic: topic.to_string(),
        partition: -1,
        offset: -1,
        key,
        value,
        headers: item.headers.clone(),
        timestamp: item.timestamp,
    }
}
