//! The net description the search mutates: a sequence of cells, each a set of branches
//! (chains of conv or linear layers) that read the cell's input and are merged by
//! concatenation or addition, optionally with the input itself (a residual or dense
//! skip). A plain chain is a run of one-layer cells; an Inception module, a ResNet block
//! and a DenseNet layer are one cell each. Every genome builds: [`Genome::build`] repairs
//! what does not fit (a resolution that cannot be reached, channels an addition needs).
//!
//! [`Genome::from_net`] reads a real net into this form (the search's starting point):
//! cells are the regions between the net's cut nodes (nodes every path goes through).

use crate::graph::{conv_hw, pool, Net, NetBuilder, Op, OpClass, Padding, T};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Dense convolution (`1x1` is the pointwise kind).
    Conv {
        kh: usize,
        kw: usize,
    },
    /// One group per channel (the output keeps the input's channels).
    Depthwise {
        k: usize,
    },
    Grouped {
        kh: usize,
        kw: usize,
        groups: usize,
    },
    Linear,
}

/// What follows a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Post {
    None,
    Relu,
    Bn,
    BnRelu,
}

impl Post {
    pub const ALL: [Post; 4] = [Post::None, Post::Relu, Post::Bn, Post::BnRelu];
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub kind: Kind,
    pub cout: usize,
    /// Output resolution (conv layers); the builder clamps it to what the branch allows.
    pub res: usize,
    pub post: Post,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    Concat,
    Add,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// Read the output of layer `.1` of branch `.0` (an earlier branch of the same cell)
    /// instead of the cell input (Inception-v3's split 1x3 / 3x1 pairs).
    pub fork: Option<(usize, usize)>,
    /// A 3x3 stride-1 max pool before the first layer (Inception's pool branch).
    pub pool: bool,
    pub layers: Vec<Layer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub branches: Vec<Branch>,
    /// The cell input joins the merge (max-pooled when the cell downsamples).
    pub identity: bool,
    pub merge: Merge,
    /// Output resolution of spatial cells.
    pub res: usize,
    /// Layers after the branches' concatenation, before the merge with the skip
    /// (Inception-ResNet's 1x1 "up" convolution).
    pub join: Vec<Layer>,
    /// What follows the merge (ResNet's ReLU after the addition).
    pub post: Post,
    /// Window of the pool that downsamples the cell input for the merge (the target's own
    /// pool, read back); 0: the net's [`Genome::pool_kernel`]. Pools carry no MACs, but a
    /// 3x3 window costs over twice a 2x2's time.
    pub pool: usize,
}

/// How a spatial tensor becomes flat before the first linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    GlobalPool,
    Flatten,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Genome {
    pub input: Vec<usize>,
    pub cells: Vec<Cell>,
    pub head: Head,
}

/// Stride and total padding that take size `h` to `r` with kernel `k`:
/// `floor((h + pad - k) / s) + 1 = r`, padding below the kernel size.
fn conv_down(h: usize, r: usize, k: usize) -> Option<(usize, usize)> {
    if r == 0 || r > h + k {
        return None;
    }
    for s in 1..=h.max(1) {
        let lo = (s * (r - 1) + k) as i64 - h as i64;
        let hi = (s * r - 1 + k) as i64 - h as i64;
        if hi < 0 {
            continue;
        }
        let t = lo.max(0);
        if t <= hi && t < (k as i64).max(1) {
            return Some((s, t as usize));
        }
        if lo > 2 * k as i64 {
            break;
        }
    }
    None
}

/// A `k x k` max pool taking `h` to `r` (`r < h`) with symmetric padding up to `k / 2`
/// (ResNet's 3x3 stride 2 padding 1), else [`pool_to`] (and always to 1x1: a global pool).
fn pool_window(g: &mut NetBuilder, x: T, h: usize, r: usize, k: usize) -> T {
    if r >= h || r <= 1 || k < 2 {
        return pool_to(g, x, h, r);
    }
    let s0 = (h / r).max(1);
    for s in s0..=s0 + 1 {
        for p in 0..=k / 2 {
            if h + 2 * p >= k && (h + 2 * p - k) / s + 1 == r {
                return g.max_pool(x, pool(k).stride(s).pad(p));
            }
        }
    }
    pool_to(g, x, h, r)
}

/// A max pool taking `h` to `r` (`r <= h`) without padding.
fn pool_to(g: &mut NetBuilder, x: T, h: usize, r: usize) -> T {
    if r >= h {
        return x;
    }
    let s = (h / r.max(1)).max(1);
    let k = h - s * (r - 1);
    g.max_pool(x, pool(k).stride(s))
}

fn spatial(g: &NetBuilder, x: T) -> Option<usize> {
    g.shape(x).hw().map(|hw| hw[0])
}

impl Genome {
    /// The conv and linear layers, for mutation (cell, branch, layer).
    /// Branch `usize::MAX` is the cell's join.
    pub fn layer_ids(&self) -> Vec<(usize, usize, usize)> {
        let mut ids = Vec::new();
        for (c, cell) in self.cells.iter().enumerate() {
            for l in 0..cell.join.len() {
                ids.push((c, usize::MAX, l));
            }
            for (b, branch) in cell.branches.iter().enumerate() {
                for l in 0..branch.layers.len() {
                    ids.push((c, b, l));
                }
            }
        }
        ids
    }

    pub fn layer_mut(&mut self, id: (usize, usize, usize)) -> &mut Layer {
        let cell = &mut self.cells[id.0];
        if id.1 == usize::MAX {
            &mut cell.join[id.2]
        } else {
            &mut cell.branches[id.1].layers[id.2]
        }
    }

    /// Drop branches without layers, forks that point nowhere, cells without content.
    pub fn tidy(&mut self) {
        for cell in &mut self.cells {
            let mut keep = Vec::new();
            for (i, b) in cell.branches.iter().enumerate() {
                if !b.layers.is_empty() {
                    keep.push(i);
                }
            }
            let old = std::mem::take(&mut cell.branches);
            for (new_index, &i) in keep.iter().enumerate() {
                let mut b = old[i].clone();
                b.fork = b.fork.and_then(|(fb, fl)| {
                    let nb = keep.iter().position(|&k| k == fb)?;
                    (nb < new_index && fl < old[fb].layers.len()).then_some((nb, fl))
                });
                cell.branches.push(b);
            }
        }
        self.cells.retain(|c| !c.branches.is_empty() || !c.join.is_empty() || c.identity);
    }

    /// Build the net (repairing what does not fit).
    pub fn build(&self, name: &str) -> Result<Net, crate::graph::GraphError> {
        let mut g = NetBuilder::new(name, &self.input);
        let x = g.input();
        // A run of dense cells keeps every feature alive and concatenates them all for
        // each cell, as DenseNet does: (features so far, the last cell's post).
        let mut flow: (Vec<T>, Post) = (vec![x], Post::None);
        let pool_kernel = self.pool_kernel();
        for (ci, cell) in self.cells.iter().enumerate() {
            flow = g.scope(format!("cell{ci}"), |g| {
                let x = *flow.0.last().unwrap();
                let dense = cell.identity
                    && cell.merge == Merge::Concat
                    && cell.branches.len() == 1
                    && cell.branches[0].fork.is_none()
                    && cell.join.is_empty()
                    && g.shape(x).rank() == 3
                    && spatial(g, x) == Some(cell.res);
                if dense {
                    let input = materialize(g, &flow);
                    let outs = chain(g, input, &cell.branches[0].layers, cell.res, None, self.head);
                    let mut features = flow.0.clone();
                    features.push(*outs.last().unwrap());
                    (features, cell.post)
                } else {
                    let input = materialize(g, &flow);
                    (vec![build_cell(g, input, cell, self.head, pool_kernel)], Post::None)
                }
            });
        }
        let y = materialize(&mut g, &flow);
        g.finish(y)
    }
}

/// The tensor a run of dense cells hands on: all features concatenated, then the post.
fn materialize(g: &mut NetBuilder, flow: &(Vec<T>, Post)) -> T {
    let y = if flow.0.len() == 1 { flow.0[0] } else { g.cat(&flow.0) };
    apply_post(g, y, flow.1)
}

fn apply_post(g: &mut NetBuilder, y: T, post: Post) -> T {
    match post {
        Post::None => y,
        Post::Relu => g.relu(y),
        Post::Bn => g.bn(y),
        Post::BnRelu => {
            let y = g.bn(y);
            g.relu(y)
        }
    }
}

fn flatten_for_linear(g: &mut NetBuilder, x: T, head: Head) -> T {
    if g.shape(x).rank() <= 1 {
        return x;
    }
    let x = match head {
        Head::GlobalPool if spatial(g, x).unwrap_or(1) > 1 => g.global_avg_pool(x),
        _ => x,
    };
    g.flatten(x)
}

fn build_cell(g: &mut NetBuilder, x: T, cell: &Cell, head: Head, pool_kernel: usize) -> T {
    let flat = g.shape(x).rank() <= 1;
    let input_channels = g.channels(x);
    let h = spatial(g, x).unwrap_or(1);
    let res = if flat { 1 } else { cell.res.clamp(1, h) };
    // Channels an addition needs: the input's with a skip, else the first branch's.
    let add_channels = match cell.merge {
        Merge::Add if cell.identity => Some(input_channels),
        Merge::Add => cell.branches.first().and_then(|b| b.layers.last()).map(|l| l.cout),
        Merge::Concat => None,
    };
    let mut tails: Vec<T> = Vec::new();
    let mut outputs: Vec<Vec<T>> = Vec::new();
    let joined = !cell.join.is_empty();
    for (bi, branch) in cell.branches.iter().enumerate() {
        let mut start = match branch.fork {
            Some((fb, fl)) if fb < bi && fl < outputs[fb].len() => outputs[fb][fl],
            _ => x,
        };
        if branch.pool && spatial(g, start).unwrap_or(0) >= 3 {
            start = g.max_pool(start, pool(3).stride(1).pad(1));
        }
        let outs = chain(g, start, &branch.layers, res, if joined { None } else { add_channels }, head);
        if let Some(&t) = outs.last() {
            tails.push(t);
        }
        outputs.push(outs);
    }
    if joined {
        let same: Vec<T> = {
            let first = tails.first().map(|&t| g.shape(t).dims()[1..].to_vec());
            tails.iter().copied().filter(|&t| Some(g.shape(t).dims()[1..].to_vec()) == first).collect()
        };
        let start = match same.len() {
            0 => x,
            1 => same[0],
            _ => g.cat(&same),
        };
        let outs = chain(g, start, &cell.join, res, add_channels, head);
        tails = outs.last().copied().into_iter().collect();
    }
    if cell.identity || tails.is_empty() {
        let window = if cell.pool > 0 { cell.pool } else { pool_kernel };
        let skip = if flat { x } else { pool_window(g, x, h, res, window) };
        tails.insert(0, skip);
    }
    let y = merge(g, tails, cell.merge);
    match cell.post {
        Post::None => y,
        Post::Relu => g.relu(y),
        Post::Bn => g.bn(y),
        Post::BnRelu => {
            let y = g.bn(y);
            g.relu(y)
        }
    }
}

fn merge(g: &mut NetBuilder, mut tails: Vec<T>, how: Merge) -> T {
    if tails.len() == 1 {
        return tails[0];
    }
    // Spatial sizes must agree (a flat branch among spatial ones cannot merge).
    let first_shape = g.shape(tails[0]).dims()[1..].to_vec();
    tails.retain(|&t| g.shape(t).dims()[1..] == first_shape[..]);
    if tails.len() == 1 {
        return tails[0];
    }
    match how {
        Merge::Add => {
            let c = g.channels(tails[0]);
            tails.retain(|&t| g.channels(t) == c);
            if tails.len() == 1 {
                tails[0]
            } else {
                g.add_all(&tails)
            }
        }
        Merge::Concat => g.cat(&tails),
    }
}

/// A chain of layers from `start`; the last one ends at `res` (and at `last_channels`).
fn chain(
    g: &mut NetBuilder,
    start: T,
    layers: &[Layer],
    res: usize,
    last_channels: Option<usize>,
    head: Head,
) -> Vec<T> {
    let mut y = start;
    let mut outs = Vec::new();
    for (li, layer) in layers.iter().enumerate() {
        let last = li + 1 == layers.len();
        let cout = match (last, last_channels) {
            (true, Some(c)) => c,
            _ => layer.cout.max(1),
        };
        y = if layer.kind == Kind::Linear || g.shape(y).rank() <= 1 {
            let y = flatten_for_linear(g, y, head);
            g.linear(y, cout)
        } else {
            let cur = spatial(g, y).unwrap_or(1);
            // The chain ends at the cell's resolution; inner layers stay between.
            let floor = res.min(cur);
            let want = if last { floor } else { layer.res.min(cur).max(floor) };
            conv_layer(g, y, layer.kind, cout, cur, want)
        };
        y = match layer.post {
            Post::None => y,
            Post::Relu => g.relu(y),
            Post::Bn => g.bn(y),
            Post::BnRelu => {
                let y = g.bn(y);
                g.relu(y)
            }
        };
        outs.push(y);
    }
    outs
}

fn conv_layer(g: &mut NetBuilder, x: T, kind: Kind, cout: usize, h: usize, want: usize) -> T {
    let cin = g.channels(x);
    let (kh, kw, groups) = match kind {
        Kind::Conv { kh, kw } => (kh, kw, 1),
        Kind::Depthwise { k } => (k, k, cin),
        Kind::Grouped { kh, kw, groups } => (kh, kw, gcd(groups.max(1), cin)),
        Kind::Linear => (1, 1, 1),
    };
    let (kh, kw) = (kh.clamp(1, h.max(1)), kw.clamp(1, h.max(1)));
    let cout = match kind {
        Kind::Depthwise { .. } => cin,
        _ => (cout.div_ceil(groups) * groups).max(groups),
    };
    let mut x = x;
    let mut h = h;
    let plan = if want == h {
        Some((1, kh - 1, kw - 1))
    } else {
        match (conv_down(h, want, kh), conv_down(h, want, kw)) {
            (Some((sh, th)), Some((sw, tw))) if sh == sw => Some((sh, th, tw)),
            _ => None,
        }
    };
    let (s, th, tw) = match plan {
        Some(p) => p,
        None => {
            x = pool_to(g, x, h, want);
            h = want;
            let _ = h;
            (1, kh - 1, kw - 1)
        }
    };
    let padding = Padding { top: th / 2, bottom: th - th / 2, left: tw / 2, right: tw - tw / 2 };
    g.conv(x, conv_hw(cout, kh, kw).stride(s).padding(padding).groups(groups).no_bias())
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

fn is_weighted(op: &Op) -> bool {
    matches!(op.class(), OpClass::Conv | OpClass::Linear)
}

impl Genome {
    /// Read a net into cells: the regions between cut nodes, branches by following each
    /// layer back to its nearest conv or linear ancestor.
    pub fn from_net(net: &Net) -> Genome {
        let n = net.nodes.len();
        let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, node) in net.nodes.iter().enumerate() {
            for &p in &node.inputs {
                consumers[p].push(i);
            }
        }
        // Cut nodes: no edge jumps over them.
        let mut cuts = Vec::new();
        let mut reach = 0usize;
        for (i, users) in consumers.iter().enumerate() {
            if reach <= i {
                cuts.push(i);
            }
            reach = reach.max(users.iter().copied().max().unwrap_or(i));
        }
        let res_of = |i: usize| net.nodes[i].shape.hw().map(|hw| hw[0]).unwrap_or(1);
        let post_of = |i: usize| {
            let mut bn = false;
            let mut j = i;
            if consumers[j].len() == 1 && matches!(net.nodes[consumers[j][0]].op, Op::BatchNorm { .. }) {
                bn = true;
                j = consumers[j][0];
            }
            let act = consumers[j].len() == 1 && net.nodes[consumers[j][0]].op.class() == OpClass::Activation;
            match (bn, act) {
                (false, false) => Post::None,
                (false, true) => Post::Relu,
                (true, false) => Post::Bn,
                (true, true) => Post::BnRelu,
            }
        };
        let layer_of = |i: usize| {
            let node = &net.nodes[i];
            let kind = match &node.op {
                Op::Conv2d(c) => {
                    let cin = net.nodes[node.inputs[0]].shape.channels();
                    if c.groups == 1 {
                        Kind::Conv { kh: c.kernel[0], kw: c.kernel[1] }
                    } else if c.groups == cin && c.groups == c.out_channels && c.kernel[0] == c.kernel[1] {
                        Kind::Depthwise { k: c.kernel[0] }
                    } else {
                        Kind::Grouped { kh: c.kernel[0], kw: c.kernel[1], groups: c.groups }
                    }
                }
                _ => Kind::Linear,
            };
            Layer { kind, cout: node.shape.channels(), res: res_of(i), post: post_of(i) }
        };
        let head =
            if net.nodes.iter().any(|n| matches!(n.op, Op::GlobalAvgPool)) { Head::GlobalPool } else { Head::Flatten };
        let mut cells = Vec::new();
        for w in cuts.windows(2) {
            let (a, b) = (w[0], w[1]);
            let inside = |i: usize| i > a && i <= b;
            let weighted: Vec<usize> = (a + 1..=b).filter(|&i| is_weighted(&net.nodes[i].op)).collect();
            if weighted.is_empty() {
                let (ra, rb) = (res_of(a), res_of(b));
                let op = &net.nodes[b].op;
                if let (Some(prev), true) = (cells.last_mut(), rb == ra) {
                    let prev: &mut Cell = prev;
                    // An activation or norm after a merge (not after a layer: that is its post).
                    let after_layer = is_weighted(&net.nodes[a].op)
                        || (matches!(net.nodes[a].op, Op::BatchNorm { .. })
                            && is_weighted(&net.nodes[net.nodes[a].inputs[0]].op));
                    if !after_layer && prev.post == Post::None {
                        if op.class() == OpClass::Activation {
                            prev.post = Post::Relu;
                        } else if matches!(op, Op::BatchNorm { .. }) {
                            prev.post = Post::Bn;
                        }
                    } else if !after_layer && prev.post == Post::Bn && op.class() == OpClass::Activation {
                        prev.post = Post::BnRelu;
                    }
                }
                if net.nodes[b].shape.rank() == 3 && rb < ra {
                    cells.push(Cell {
                        branches: Vec::new(),
                        identity: true,
                        merge: Merge::Concat,
                        res: rb,
                        join: Vec::new(),
                        post: Post::None,
                        pool: match op {
                            Op::MaxPool2d(p) | Op::AvgPool2d(p) => p.kernel[0],
                            _ => 0,
                        },
                    });
                }
                continue;
            }
            // Nearest weighted ancestors inside the cell (None: the cell input).
            let ancestors = |i: usize| -> Vec<usize> {
                let mut found = Vec::new();
                let mut stack: Vec<usize> = net.nodes[i].inputs.clone();
                let mut seen = std::collections::BTreeSet::new();
                while let Some(p) = stack.pop() {
                    if !inside(p) || !seen.insert(p) {
                        continue;
                    }
                    if is_weighted(&net.nodes[p].op) {
                        found.push(p);
                    } else {
                        stack.extend(net.nodes[p].inputs.iter().copied());
                    }
                }
                found.sort();
                found
            };
            // The non-layer ops between a layer and its nearest layers (or the cell input).
            let between = |i: usize| -> Vec<usize> {
                let mut ops = Vec::new();
                let mut stack: Vec<usize> = net.nodes[i].inputs.clone();
                let mut seen = std::collections::BTreeSet::new();
                while let Some(p) = stack.pop() {
                    if !inside(p) || !seen.insert(p) || is_weighted(&net.nodes[p].op) {
                        continue;
                    }
                    ops.push(p);
                    stack.extend(net.nodes[p].inputs.iter().copied());
                }
                ops
            };
            let pooled =
                |i: usize| between(i).iter().any(|&p| matches!(net.nodes[p].op, Op::MaxPool2d(_) | Op::AvgPool2d(_)));
            let concats: Vec<usize> = (a + 1..=b).filter(|&i| matches!(net.nodes[i].op, Op::Concat { .. })).collect();
            if concats.len() >= 2 && concats.iter().all(|&c| net.nodes[c].inputs.contains(&a)) {
                // A dense block: each layer reads the concatenation of all before it,
                // the same as a run of cells that concatenate their input and their chain.
                for &i in &weighted {
                    let layer = layer_of(i);
                    let ops = between(i);
                    let reads_concat = ops.iter().any(|p| concats.contains(p));
                    // Pre-activation (BN, ReLU after the concatenation): the previous
                    // cell's post.
                    if reads_concat && ops.iter().any(|&p| matches!(net.nodes[p].op, Op::BatchNorm { .. })) {
                        if let Some(prev) = cells.last_mut() {
                            prev.post = Post::BnRelu;
                        }
                    }
                    match cells.last_mut() {
                        Some(cell) if !reads_concat && cell.identity && cell.branches.len() == 1 => {
                            let cell: &mut Cell = cell;
                            cell.branches[0].layers.push(layer);
                        }
                        _ => cells.push(Cell {
                            branches: vec![Branch { fork: None, pool: false, layers: vec![layer] }],
                            identity: true,
                            merge: Merge::Concat,
                            res: res_of(i),
                            join: Vec::new(),
                            post: Post::None,
                            pool: 0,
                        }),
                    }
                }
                continue;
            }
            let mut branches: Vec<Branch> = Vec::new();
            let mut join: Vec<Layer> = Vec::new();
            // Where each layer went: (branch, index); branch usize::MAX is the join.
            let mut place: std::collections::BTreeMap<usize, (usize, usize)> = Default::default();
            for &i in &weighted {
                let anc = ancestors(i);
                let layer = layer_of(i);
                let from_join = anc.iter().any(|p| place.get(p).is_some_and(|pl| pl.0 == usize::MAX));
                let distinct: std::collections::BTreeSet<usize> =
                    anc.iter().filter_map(|p| place.get(p).map(|pl| pl.0)).collect();
                if from_join || (distinct.len() >= 2 && anc.len() == distinct.len() && join.is_empty()) {
                    place.insert(i, (usize::MAX, join.len()));
                    join.push(layer);
                    continue;
                }
                match anc.last().and_then(|p| place.get(p).copied()) {
                    Some((bi, li)) if li + 1 == branches[bi].layers.len() => {
                        branches[bi].layers.push(layer);
                        place.insert(i, (bi, li + 1));
                    }
                    Some((bi, li)) => {
                        place.insert(i, (branches.len(), 0));
                        branches.push(Branch { fork: Some((bi, li)), pool: false, layers: vec![layer] });
                    }
                    None => {
                        place.insert(i, (branches.len(), 0));
                        branches.push(Branch { fork: None, pool: pooled(i), layers: vec![layer] });
                    }
                }
            }
            // A skip: a path from the cell input to the cell output through no layer.
            let identity = {
                let mut stack = vec![b];
                let mut seen = std::collections::BTreeSet::new();
                let mut hit = false;
                while let Some(p) = stack.pop() {
                    if !seen.insert(p) {
                        continue;
                    }
                    if p == a {
                        hit = true;
                        break;
                    }
                    if inside(p) && (p == b || !is_weighted(&net.nodes[p].op)) {
                        stack.extend(net.nodes[p].inputs.iter().copied());
                    }
                }
                hit && !is_weighted(&net.nodes[b].op)
            };
            let merge = if (a + 1..=b).any(|i| matches!(net.nodes[i].op, Op::Add)) && !weighted.contains(&b) {
                Merge::Add
            } else {
                Merge::Concat
            };
            cells.push(Cell { branches, identity, merge, res: res_of(b), join, post: Post::None, pool: 0 });
        }
        Genome { input: net.input_shape().dims().to_vec(), cells, head }
    }
}

impl Genome {
    /// Window of the pools that downsample a cell's skip where the cell has none of its
    /// own: the first pooling cell's (3 for ResNet's, GoogLeNet's, Inception's overlapping
    /// pools, 2 for VGG's), 2 when the net has none.
    pub fn pool_kernel(&self) -> usize {
        self.cells.iter().map(|c| c.pool).find(|&k| k > 0).unwrap_or(2)
    }
}

impl Cell {
    fn is_head(&self) -> bool {
        self.branches.iter().flat_map(|b| &b.layers).chain(&self.join).any(|l| l.kind == Kind::Linear)
    }
}

impl Genome {
    /// A starting point for a weighted mix: each model keeps about its weight's share of
    /// the cells of each stage (stages by order of resolution), evenly spaced; stages
    /// interleave model by model; the heaviest model gives the input and the head.
    pub fn mix(parts: &[(Genome, f64)]) -> Genome {
        let heaviest = parts.iter().enumerate().fold(0, |best, (i, p)| if p.1 > parts[best].1 { i } else { best });
        let total: f64 = parts.iter().map(|p| p.1).sum();
        // Per model: its body cells grouped into stages of equal resolution.
        let stages: Vec<Vec<Vec<&Cell>>> = parts
            .iter()
            .map(|(g, _)| {
                let mut out: Vec<Vec<&Cell>> = Vec::new();
                let mut last_res = None;
                for cell in g.cells.iter().filter(|c| !c.is_head()) {
                    if last_res != Some(cell.res) {
                        out.push(Vec::new());
                        last_res = Some(cell.res);
                    }
                    out.last_mut().unwrap().push(cell);
                }
                out
            })
            .collect();
        let deepest = stages.iter().map(Vec::len).max().unwrap_or(0);
        let mut cells = Vec::new();
        for k in 0..deepest {
            let mut stage: Vec<(usize, Cell)> = Vec::new();
            for (i, model_stages) in stages.iter().enumerate() {
                let w = parts[i].1 / total;
                if let Some(s) = model_stages.get(k) {
                    for (j, cell) in s.iter().enumerate() {
                        // Evenly spaced: keep cell j when the running share crosses an integer.
                        if ((j + 1) as f64 * w).floor() > (j as f64 * w).floor() || (j == 0 && w >= 0.5) {
                            stage.push((i, (*cell).clone()));
                        }
                    }
                }
            }
            // Higher resolutions first (no upsampling), then model by model.
            stage.sort_by_key(|(i, c)| (std::cmp::Reverse(c.res), *i));
            cells.extend(stage.into_iter().map(|(_, c)| c));
        }
        let base = &parts[heaviest].0;
        cells.extend(base.cells.iter().filter(|c| c.is_head()).cloned());
        Genome { input: base.input.clone(), cells, head: base.head }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_reaches_the_sizes_real_nets_use() {
        assert_eq!(conv_down(224, 112, 7), Some((2, 5))); // (224 + 5 - 7) / 2 + 1 = 112
        assert_eq!(conv_down(299, 149, 3), Some((2, 0)));
        assert_eq!(conv_down(149, 147, 3), Some((1, 0)));
        assert_eq!(conv_down(56, 28, 1), Some((2, 0)));
        assert_eq!(conv_down(149, 147, 1), None); // a 1x1 cannot shrink at stride 1
    }

    #[test]
    fn a_residual_net_reads_back_into_residual_cells() {
        let net = crate::zoo::build("resnet18", None).unwrap();
        let g = Genome::from_net(&net);
        let residual = g.cells.iter().filter(|c| c.merge == Merge::Add).count();
        assert_eq!(residual, 8); // 2 blocks x 4 stages
        let projections = g.cells.iter().filter(|c| c.merge == Merge::Add && !c.identity).count();
        assert_eq!(projections, 3); // stages 2-4 start with a 1x1 projection shortcut
        let rebuilt = g.build("r").unwrap();
        let (a, b) = (
            crate::analysis::analyze(&net, 1, crate::dtype::Dtype::F32),
            crate::analysis::analyze(&rebuilt, 1, crate::dtype::Dtype::F32),
        );
        assert_eq!(a.totals.macs, b.totals.macs);
        assert_eq!(a.totals.params, b.totals.params);
    }

    #[test]
    fn downsampling_pools_keep_the_targets_window() {
        // (model, the window of its strided max pools)
        for (model, k) in [("resnet50", 3), ("googlenet", 3), ("vgg16", 2)] {
            let net = crate::zoo::build(model, None).unwrap();
            let g = Genome::from_net(&net);
            assert_eq!(g.pool_kernel(), k, "{model}");
            let rebuilt = g.build("r").unwrap();
            let strided = |n: &Net| -> Vec<([usize; 2], [usize; 2])> {
                n.nodes
                    .iter()
                    .filter_map(|x| match &x.op {
                        Op::MaxPool2d(p) if p.stride[0] > 1 && x.shape.hw().is_some_and(|hw| hw[0] > 1) => {
                            Some((p.kernel, x.shape.hw().unwrap()))
                        }
                        _ => None,
                    })
                    .collect()
            };
            // The same pools, window and output size, in the same order (each pooling
            // cell keeps its own window: GoogLeNet's last one is 2x2).
            assert_eq!(strided(&rebuilt), strided(&net), "{model}");
        }
    }
}
