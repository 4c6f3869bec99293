//! How an item flows through the nodes of a task: forwarding to children
//! (sinks by reference), each operator, and encoding at sinks (moved out of
//! `executor.rs`; code unchanged).

use weir_core::{ProcessError, Record};

use super::{call_node, Env, CURRENT_NODE};
use crate::graph::{Item, Node, Op};
use crate::process::Trigger;

pub(super) fn forward(
    nodes: &[Node],
    from: &Node,
    item: Item,
    out: &mut Vec<Record>,
    env: &mut Env<'_>,
) -> Result<(), ProcessError> {
    env.meters.counts[from.id].records_out += 1;
    if let [only] = from.children.as_slice() {
        return push(nodes, *only, item, out, env);
    }
    // Sinks only read the item: they get it by reference, so fan-out to a
    // sink and a processor (e.g. an audit topic beside routing) copies nothing.
    let is_sink = |c: usize| matches!(nodes[c].op, Op::Sink { .. } | Op::DynamicSink { .. });
    let mut last_flow = None;
    for &c in &from.children {
        if is_sink(c) {
            CURRENT_NODE.with(|n| n.set(c));
            env.meters.counts[c].records_in += 1;
            write(&nodes[c], &item, out, env.meters)?;
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
            push(nodes, c, (from.clone_item)(&item), out, env)?;
        }
    }
    push(nodes, last, item, out, env)
}

fn push(
    nodes: &[Node],
    id: usize,
    item: Item,
    out: &mut Vec<Record>,
    env: &mut Env<'_>,
) -> Result<(), ProcessError> {
    let node = &nodes[id];
    CURRENT_NODE.with(|c| c.set(id));
    env.meters.counts[id].records_in += 1;
    match &node.op {
        Op::Filter(p) => {
            if p(&item) {
                forward(nodes, node, item, out, env)
            } else {
                Ok(())
            }
        }
        Op::Map(f) => forward(nodes, node, f(item), out, env),
        Op::FlatMap(f) => f(item, &mut |it| {
            let r = forward(nodes, node, it, out, env);
            // The user's iterator runs again next: a panic there is this node's.
            CURRENT_NODE.with(|c| c.set(id));
            r
        })
        // A fallible operator's own error names no node yet.
        .map_err(|e| crate::process::name_node(e, &node.name)),
        Op::Peek(f) => {
            f(&item);
            forward(nodes, node, item, out, env)
        }
        Op::Branch {
            predicates,
            otherwise,
        } => match predicates.iter().position(|p| p(&item)) {
            Some(i) => {
                env.meters.counts[id].records_out += 1;
                push(nodes, node.children[i], item, out, env)
            }
            None if *otherwise => {
                env.meters.counts[id].records_out += 1;
                push(nodes, node.children[predicates.len()], item, out, env)
            }
            None => Ok(()),
        },
        Op::Pass | Op::Source { .. } => forward(nodes, node, item, out, env),
        Op::Sink { .. } | Op::DynamicSink { .. } => write(node, &item, out, env.meters),
        Op::Process { .. } => {
            let mut forwarded = Vec::new();
            call_node(nodes, id, Trigger::Record(item), &mut forwarded, env)?;
            for it in forwarded {
                forward(nodes, node, it, out, env)?;
            }
            Ok(())
        }
    }
}

/// Encodes `item` for a sink node and appends its output record(s),
/// counting them.
fn write(
    node: &Node,
    item: &Item,
    out: &mut Vec<Record>,
    meters: &mut crate::metrics::Meters,
) -> Result<(), ProcessError> {
    let before = out.len();
    write_outputs(node, item, out)?;
    meters.counts[node.id].records_out += (out.len() - before) as u64;
    Ok(())
}

fn write_outputs(node: &Node, item: &Item, out: &mut Vec<Record>) -> Result<(), ProcessError> {
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
