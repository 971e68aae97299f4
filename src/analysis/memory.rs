//! Activation memory: the largest set of tensors alive at once during an inference
//! pass in topological order (a tensor lives from its producer to its last consumer;
//! views such as flatten share their input's buffer).

use super::cost::is_view;
use crate::graph::{Net, Op};

/// Peak live activation elements per sample, inputs and outputs of the running node included.
pub fn peak_activation_elements(net: &Net) -> u64 {
    let n = net.nodes.len();
    // The node whose buffer each node's output lives in.
    let mut owner: Vec<usize> = (0..n).collect();
    for (i, node) in net.nodes.iter().enumerate() {
        if is_view(&node.op) && !matches!(node.op, Op::Input { .. }) {
            owner[i] = owner[node.inputs[0]];
        }
    }
    let mut last_use: Vec<usize> = (0..n).collect();
    for (i, node) in net.nodes.iter().enumerate() {
        for &p in &node.inputs {
            let o = owner[p];
            last_use[o] = last_use[o].max(i);
        }
    }
    for &o in &net.outputs {
        last_use[owner[o]] = n;
    }
    let mut frees_at: Vec<Vec<usize>> = vec![Vec::new(); n + 1];
    for i in 0..n {
        if owner[i] == i {
            frees_at[last_use[i]].push(i);
        }
    }
    let (mut live, mut peak) = (0u64, 0u64);
    for (i, node) in net.nodes.iter().enumerate() {
        if owner[i] == i {
            live += node.shape.elements();
        }
        peak = peak.max(live);
        for &freed in &frees_at[i] {
            live -= net.nodes[freed].shape.elements();
        }
    }
    peak
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{conv, NetBuilder};

    #[test]
    fn a_residual_keeps_its_skip_alive() {
        let mut g = NetBuilder::new("t", &[4, 8, 8]); // 256 elements each
        let x = g.input();
        let a = g.conv(x, conv(4, 3).pad(1));
        let b = g.conv(a, conv(4, 3).pad(1));
        let y = g.add(x, b);
        let y = g.flatten(y);
        let net = g.finish(y).unwrap();
        // while b is computed: x (skip), a, b are alive
        assert_eq!(peak_activation_elements(&net), 3 * 256);
    }

    #[test]
    fn a_chain_needs_two_buffers() {
        let mut g = NetBuilder::new("t", &[4, 8, 8]);
        let x = g.input();
        let a = g.conv(x, conv(4, 3).pad(1));
        let b = g.relu(a);
        let c = g.relu(b);
        let net = g.finish(c).unwrap();
        assert_eq!(peak_activation_elements(&net), 2 * 256);
    }
}
