//! [`TopologyDescription`]: the graph as a value, printed as text or Mermaid.

use std::fmt;

use crate::graph::{Op, Topology};

/// One node of a described topology.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeDescription {
    /// The node's name (unique within the topology).
    pub name: String,
    /// `source`, `filter`, `map`, `map_values`, `flat_map`, `peek`, `branch`,
    /// `branch_arm`, `merge`, `sink` or `dynamic_sink`.
    pub kind: String,
    /// Topics read (sources) or written (sinks); empty otherwise.
    pub topics: Vec<String>,
    /// The names of the nodes this one forwards to.
    pub children: Vec<String>,
    /// The names of the nodes that forward to this one.
    pub parents: Vec<String>,
    /// The stores a `process` node uses; empty otherwise.
    pub stores: Vec<String>,
}

/// The nodes of one sub-topology.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SubtopologyDescription {
    /// The sub-topology's id (a task is one sub-topology × one partition).
    pub id: usize,
    /// Its stable name (task ids and state directories use it).
    pub name: String,
    /// The stores its tasks hold.
    pub stores: Vec<String>,
    /// Its nodes, in the order they were added.
    pub nodes: Vec<NodeDescription>,
}

/// The graph of a [`Topology`]: sub-topologies, nodes, topics.
///
/// `Display` prints it as indented text (in the manner of Kafka Streams'
/// `TopologyDescription`); [`TopologyDescription::to_mermaid`] renders a
/// Mermaid flowchart.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TopologyDescription {
    /// The sub-topologies, by id.
    pub subtopologies: Vec<SubtopologyDescription>,
    /// The declared parameters.
    pub params: Vec<crate::ParamDescription>,
}

impl Topology {
    /// Describes the graph: nodes, topics, sub-topologies.
    pub fn describe(&self) -> TopologyDescription {
        let nodes = &self.inner.nodes;
        let names = |ids: &[usize]| ids.iter().map(|&i| nodes[i].name.clone()).collect();
        let mut subtopologies: Vec<SubtopologyDescription> = (0..self.inner.subtopologies)
            .map(|id| SubtopologyDescription {
                id,
                name: self.subtopology_name(id).to_string(),
                stores: self.subtopology_stores(id).to_vec(),
                nodes: Vec::new(),
            })
            .collect();
        for n in nodes {
            let stores = match &n.op {
                Op::Process { stores, .. } => stores.clone(),
                _ => Vec::new(),
            };
            let (kind, topics) = match &n.op {
                Op::Source { topic, .. } => ("source".to_string(), vec![topic.clone()]),
                Op::Sink { topics, .. } => ("sink".to_string(), topics.clone()),
                _ => (n.kind.to_string(), Vec::new()),
            };
            subtopologies[n.subtopology].nodes.push(NodeDescription {
                name: n.name.clone(),
                kind,
                topics,
                children: names(&n.children),
                parents: names(&n.parents),
                stores,
            });
        }
        TopologyDescription {
            subtopologies,
            params: self.params(),
        }
    }
}

impl TopologyDescription {
    /// A Mermaid flowchart: topics as stadiums, nodes as boxes, one subgraph
    /// per sub-topology.
    pub fn to_mermaid(&self) -> String {
        let id = |name: &str| name.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        let mut out = String::from("flowchart LR\n");
        let mut topics = std::collections::BTreeSet::new();
        for st in &self.subtopologies {
            out.push_str(&format!(
                "  subgraph sub{}[\"Sub-topology {}: {}\"]\n",
                st.id, st.id, st.name
            ));
            for n in &st.nodes {
                out.push_str(&format!(
                    "    {}[\"{} ({})\"]\n",
                    id(&n.name),
                    n.name,
                    n.kind
                ));
            }
            out.push_str("  end\n");
        }
        for st in &self.subtopologies {
            for n in &st.nodes {
                for t in &n.topics {
                    topics.insert(t.clone());
                    let tid = format!("topic_{}", id(t));
                    if n.kind == "source" {
                        out.push_str(&format!("  {tid} --> {}\n", id(&n.name)));
                    } else {
                        out.push_str(&format!("  {} --> {tid}\n", id(&n.name)));
                    }
                }
                for c in &n.children {
                    out.push_str(&format!("  {} --> {}\n", id(&n.name), id(c)));
                }
            }
        }
        for t in topics {
            out.push_str(&format!("  topic_{}([\"{}\"])\n", id(&t), t));
        }
        out
    }
}

impl fmt::Display for TopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.params.is_empty() {
            writeln!(f, "Parameters:")?;
            for p in &self.params {
                writeln!(
                    f,
                    "  {} ({}, default {}): {}",
                    p.name, p.kind, p.default, p.help
                )?;
            }
        }
        writeln!(f, "Topologies:")?;
        for st in &self.subtopologies {
            writeln!(f, "  Sub-topology: {} ({})", st.id, st.name)?;
            if !st.stores.is_empty() {
                writeln!(f, "    Stores: [{}]", st.stores.join(", "))?;
            }
            for n in &st.nodes {
                match n.kind.as_str() {
                    "source" => writeln!(
                        f,
                        "    Source: {} (topics: [{}])",
                        n.name,
                        n.topics.join(", ")
                    )?,
                    "sink" => writeln!(
                        f,
                        "    Sink: {} (topics: [{}])",
                        n.name,
                        n.topics.join(", ")
                    )?,
                    kind if n.stores.is_empty() => {
                        writeln!(f, "    Processor: {} ({kind})", n.name)?
                    }
                    kind => writeln!(
                        f,
                        "    Processor: {} ({kind}, stores: [{}])",
                        n.name,
                        n.stores.join(", ")
                    )?,
                }
                if !n.children.is_empty() {
                    writeln!(f, "      --> {}", n.children.join(", "))?;
                }
                if !n.parents.is_empty() {
                    writeln!(f, "      <-- {}", n.parents.join(", "))?;
                }
            }
        }
        Ok(())
    }
}
