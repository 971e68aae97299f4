//! The validated network: nodes in topological order with inferred shapes.

use super::infer::{check_attributes, infer_shape};
use super::op::Op;
use super::shape::Shape;
use std::collections::HashMap;
use std::fmt;

pub type NodeId = usize;

/// A problem with a network, located by the JSON path of the offending field
/// (`nodes[12].op.kernel`) and, where known, the node's name.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphError {
    pub path: String,
    pub node: Option<String>,
    pub message: String,
}

impl GraphError {
    pub fn new(path: impl Into<String>, node: Option<&str>, message: impl Into<String>) -> Self {
        GraphError { path: path.into(), node: node.map(str::to_string), message: message.into() }
    }
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(node) => write!(f, "{} (node `{}`): {}", self.path, node, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

impl std::error::Error for GraphError {}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<NodeId>,
    /// Per-sample output shape.
    pub shape: Shape,
}

/// A node before validation: inputs by name, in any order.
#[derive(Debug, Clone, PartialEq)]
pub struct RawNode {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Net {
    pub name: String,
    pub nodes: Vec<Node>,
    pub outputs: Vec<NodeId>,
    /// For generated nets: the generator, its parameters and seed (reproduces the file).
    pub generator: Option<serde_json::Value>,
}

impl Net {
    /// Validate raw nodes into a net: unique names, known inputs, no cycles, exactly one
    /// input, attributes in range, shapes that fit, and nothing dangling.
    /// Nodes are put in topological order (file order is kept where it already is one).
    /// `outputs` defaults to the last node.
    pub fn from_raw(
        name: &str,
        raw: Vec<RawNode>,
        outputs: Option<Vec<String>>,
        generator: Option<serde_json::Value>,
    ) -> Result<Net, GraphError> {
        let at = |i: usize| format!("nodes[{i}]");
        if raw.is_empty() {
            return Err(GraphError::new("nodes", None, "the net has no nodes; it needs at least an input"));
        }
        if raw.len() > super::infer::limits::MAX_NODES {
            return Err(GraphError::new(
                "nodes",
                None,
                format!("{} nodes, absurdly many (limit {})", raw.len(), super::infer::limits::MAX_NODES),
            ));
        }
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(raw.len());
        for (i, n) in raw.iter().enumerate() {
            if n.name.is_empty() {
                return Err(GraphError::new(format!("{}.name", at(i)), None, "empty node name"));
            }
            if let Some(first) = index.insert(n.name.as_str(), i) {
                return Err(GraphError::new(
                    format!("{}.name", at(i)),
                    Some(&n.name),
                    format!("duplicate node name; nodes[{first}] has it already"),
                ));
            }
            check_attributes(&n.op)
                .map_err(|e| GraphError::new(format!("{}.op.{}", at(i), e.field), Some(&n.name), e.message))?;
        }
        let input_nodes: Vec<usize> =
            raw.iter().enumerate().filter(|(_, n)| matches!(n.op, Op::Input { .. })).map(|(i, _)| i).collect();
        match input_nodes.as_slice() {
            [_] => {}
            [] => return Err(GraphError::new("nodes", None, "no node has type `input`; a net needs exactly one")),
            [_, second, ..] => {
                return Err(GraphError::new(
                    format!("{}.op.type", at(*second)),
                    Some(&raw[*second].name),
                    format!(
                        "a second `input` node (first: `{}`); synprof nets take exactly one input",
                        raw[input_nodes[0]].name
                    ),
                ))
            }
        }

        // Resolve input names.
        let mut preds: Vec<Vec<usize>> = Vec::with_capacity(raw.len());
        for (i, n) in raw.iter().enumerate() {
            let (min, max) = n.op.arity();
            if n.inputs.len() < min || n.inputs.len() > max {
                let expected = match (min, max) {
                    (a, b) if a == b => format!("exactly {a}"),
                    (a, usize::MAX) => format!("at least {a}"),
                    (a, b) => format!("{a} to {b}"),
                };
                return Err(GraphError::new(
                    format!("{}.inputs", at(i)),
                    Some(&n.name),
                    format!("`{}` takes {expected} inputs, got {}", n.op.type_name(), n.inputs.len()),
                ));
            }
            let mut ids = Vec::with_capacity(n.inputs.len());
            for (j, input) in n.inputs.iter().enumerate() {
                match index.get(input.as_str()) {
                    Some(&id) if id == i => {
                        return Err(GraphError::new(
                            format!("{}.inputs[{j}]", at(i)),
                            Some(&n.name),
                            "the node takes itself as input (a cycle)",
                        ))
                    }
                    Some(&id) => ids.push(id),
                    None => {
                        return Err(GraphError::new(
                            format!("{}.inputs[{j}]", at(i)),
                            Some(&n.name),
                            format!("input `{input}` is not the name of any node"),
                        ))
                    }
                }
            }
            preds.push(ids);
        }

        let order = topological_order(&preds).map_err(|cycle| {
            let names: Vec<&str> = cycle.iter().map(|&i| raw[i].name.as_str()).collect();
            GraphError::new(
                format!("{}.inputs", at(cycle[0])),
                Some(&raw[cycle[0]].name),
                format!("cycle through nodes {}", names.join(" -> ")),
            )
        })?;

        // Infer shapes in topological order.
        let mut new_id = vec![0usize; raw.len()];
        for (pos, &old) in order.iter().enumerate() {
            new_id[old] = pos;
        }
        let mut nodes: Vec<Node> = Vec::with_capacity(raw.len());
        for &old in &order {
            let n = &raw[old];
            let inputs: Vec<NodeId> = preds[old].iter().map(|&p| new_id[p]).collect();
            let shapes: Vec<&Shape> = inputs.iter().map(|&p| &nodes[p].shape).collect();
            let shape = infer_shape(&n.op, &shapes).map_err(|msg| GraphError::new(at(old), Some(&n.name), msg))?;
            nodes.push(Node { name: n.name.clone(), op: n.op.clone(), inputs, shape });
        }

        let outputs: Vec<NodeId> = match outputs {
            None => vec![nodes.len() - 1],
            Some(list) if list.is_empty() => {
                return Err(GraphError::new(
                    "outputs",
                    None,
                    "empty; name at least one node, or leave `outputs` out for the last node",
                ))
            }
            Some(list) => {
                let mut ids = Vec::with_capacity(list.len());
                for (j, name) in list.iter().enumerate() {
                    match index.get(name.as_str()) {
                        Some(&old) => ids.push(new_id[old]),
                        None => {
                            return Err(GraphError::new(
                                format!("outputs[{j}]"),
                                None,
                                format!("`{name}` is not the name of any node"),
                            ))
                        }
                    }
                }
                ids
            }
        };

        let mut used = vec![false; nodes.len()];
        for n in &nodes {
            for &p in &n.inputs {
                used[p] = true;
            }
        }
        for &o in &outputs {
            used[o] = true;
        }
        if let Some(dead) = used.iter().position(|u| !u) {
            let old = order[dead];
            return Err(GraphError::new(
                at(old),
                Some(&nodes[dead].name),
                "the node feeds nothing and is not an output; remove it or list it in `outputs`",
            ));
        }

        Ok(Net { name: name.to_string(), nodes, outputs, generator })
    }

    pub fn input_shape(&self) -> &Shape {
        // from_raw guarantees exactly one input node.
        self.nodes.iter().find(|n| matches!(n.op, Op::Input { .. })).map(|n| &n.shape).unwrap_or(&self.nodes[0].shape)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn output_shapes(&self) -> Vec<&Shape> {
        self.outputs.iter().map(|&o| &self.nodes[o].shape).collect()
    }

    /// Back to raw nodes (for writing files and for rebuilding at another input size).
    pub fn to_raw(&self) -> Vec<RawNode> {
        self.nodes
            .iter()
            .map(|n| RawNode {
                name: n.name.clone(),
                op: n.op.clone(),
                inputs: n.inputs.iter().map(|&i| self.nodes[i].name.clone()).collect(),
            })
            .collect()
    }
}

/// Kahn's algorithm, preferring the lowest original index, so a file already in
/// topological order keeps its order. On a cycle, returns the nodes of one cycle.
fn topological_order(preds: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = preds.len();
    let mut indegree: Vec<usize> = preds.iter().map(|p| p.len()).collect();
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, p) in preds.iter().enumerate() {
        for &q in p {
            succs[q].push(i);
        }
    }
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(std::cmp::Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(std::cmp::Reverse(i)) = ready.pop() {
        order.push(i);
        for &s in &succs[i] {
            indegree[s] -= 1;
            if indegree[s] == 0 {
                ready.push(std::cmp::Reverse(s));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk predecessors among the unresolved nodes until one repeats: that is a cycle.
    let start = (0..n).find(|&i| indegree[i] > 0).unwrap_or(0);
    let mut seen = vec![usize::MAX; n];
    let mut path = Vec::new();
    let mut cur = start;
    while seen[cur] == usize::MAX {
        seen[cur] = path.len();
        path.push(cur);
        cur = preds[cur].iter().copied().find(|&p| indegree[p] > 0).unwrap_or(cur);
    }
    let mut cycle = path[seen[cur]..].to_vec();
    cycle.reverse();
    Err(cycle)
}
