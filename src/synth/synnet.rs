//! A synNet-style sampler: AI Matrix's synthetic CNN (`shared/reference/synnet.md`) drawn
//! from explicit distributions instead of written out once.
//!
//! A net is `groups` groups at halving resolutions (224, 112, 56, ...). Group `g`
//! (1-based) has `L` layers, each with a kernel size `k` and an output width `c`:
//!
//! - `L ~ round(Normal(layers_mean, layers_sd))`, clipped to `[layers_min, layers_max]`;
//! - `k ~ Categorical(kernels)`, then sorted non-increasing within the group;
//! - `c ~ round(exp(Normal(channels_mu + channels_slope * (g - 1), channels_sigma)))`,
//!   clipped to `[channels_min, channels_max]`;
//! - a block kind from `mix` and, with probability `se`, a squeeze-excite after it.
//!
//! A plain layer is synNet's conv (kxk, stride 1, TensorFlow `SAME`, no bias), batch norm,
//! ReLU. Each group ends with a 2x2/2 `VALID` max pool; then flatten and a `classes`-way
//! fully connected layer. The other block kinds keep the kernel size and output width:
//! `bottleneck` (ResNet: 1x1 c/4, kxk c/4, 1x1 c, shortcut projected where the width
//! changes), `inception` (four branches concatenated to c: 1x1; 1x1-kxk; 1x1-kxk-kxk;
//! 3x3 max pool-1x1), `dense` (DenseNet: three bn-relu units of 1x1 4g then kxk g with
//! growth g = c/4, all concatenated, then a 1x1 transition to c), `separable` (depthwise
//! kxk, pointwise 1x1 c) and `inverted` (MobileNetV2: 1x1 expand x6, depthwise kxk, 1x1
//! project to c, ReLU6, residual where the width stays). Squeeze-excite reduces by 16
//! (SENet).
//!
//! ## The default distributions, fitted to the real synNet (62 convs, 6 groups)
//!
//! - Layers per group: synNet has 3, 11, 12, 15, 11, 10; their mean 10.33 and sample
//!   standard deviation 3.98 are `layers_mean` and `layers_sd` (moment fit; one count
//!   per group leaves too little data for per-group means).
//! - Kernel sizes: counts 1x1: 3, 2x2: 3, 3x3: 34, 4x4: 3, 5x5: 19 of 62, so the
//!   maximum-likelihood probabilities are 3/62, 3/62, 34/62, 3/62, 19/62 (one
//!   distribution for all groups; synNet uses 1, 2 and 4 only in its last two groups).
//! - Widths: an ordinary least-squares fit of ln(c) on the group index over the 62 convs
//!   gives ln(c) = 3.4931 + 0.3283 (g - 1) with residual standard deviation 1.3078 (the
//!   slope's t statistic is 2.9: synNet widens with depth, from a median of 42 channels in
//!   group 1 to 291 in group 5). synNet's widths span 2 to 862: clipped to [2, 1024].
//!
//! With these defaults the expected shape matches synNet's; its cost varies widely from
//! seed to seed (widths are heavy-tailed), which is what `max_gmacs` and `max_params`
//! bound.
//!
//! ## Budgets
//!
//! With `max_gmacs` (conv and linear MACs per image, 1e9) or `max_params`, a draw over
//! budget is drawn again, up to `resample` draws from the same random stream; if none
//! fits, the draw nearest to the budget (among those that fit with every width at
//! `channels_min`) has every width scaled by the largest factor that fits (bisection;
//! widths still clipped to `channels_min`). Budgets therefore bias the distributions
//! towards smaller nets. A budget that no draw meets even at `channels_min` is an error. The model file's `generator` records the resolved parameters,
//! the draw that was kept and the scale factor.

use super::{Spec, SpecError};
use crate::graph::{conv, pool, GraphError, Net, NetBuilder, Op, T};
use crate::zoo::blocks::{conv_bn, conv_bn_act, conv_bn_relu, squeeze_excite};
use rand::distr::weighted::WeightedIndex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::json;

pub const KEYS: &[&str] = &[
    "seed",
    "groups",
    "input",
    "classes",
    "layers_mean",
    "layers_sd",
    "layers_min",
    "layers_max",
    "kernels",
    "channels_mu",
    "channels_slope",
    "channels_sigma",
    "channels_min",
    "channels_max",
    "mix",
    "se",
    "max_gmacs",
    "max_params",
    "resample",
];

/// The kinds of layer a group can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    Plain,
    Bottleneck,
    Inception,
    Dense,
    Separable,
    Inverted,
}

impl Block {
    pub const ALL: [Block; 6] =
        [Block::Plain, Block::Bottleneck, Block::Inception, Block::Dense, Block::Separable, Block::Inverted];

    pub fn name(self) -> &'static str {
        match self {
            Block::Plain => "plain",
            Block::Bottleneck => "bottleneck",
            Block::Inception => "inception",
            Block::Dense => "dense",
            Block::Separable => "separable",
            Block::Inverted => "inverted",
        }
    }

    pub fn parse(name: &str) -> Result<Block, String> {
        Block::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| format!("unknown block `{name}`; blocks: {}", Block::ALL.map(Block::name).join(", ")))
    }
}

/// Every parameter of the sampler, resolved (defaults: the fit above).
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub seed: u64,
    pub groups: usize,
    pub input: usize,
    pub classes: usize,
    pub layers_mean: f64,
    pub layers_sd: f64,
    pub layers_min: usize,
    pub layers_max: usize,
    /// (kernel size, weight); weights are normalised when sampling.
    pub kernels: Vec<(usize, f64)>,
    pub channels_mu: f64,
    pub channels_slope: f64,
    pub channels_sigma: f64,
    pub channels_min: usize,
    pub channels_max: usize,
    pub mix: Vec<(Block, f64)>,
    pub se: f64,
    pub max_gmacs: Option<f64>,
    pub max_params: Option<u64>,
    pub resample: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            seed: 0,
            groups: 6,
            input: 224,
            classes: 1000,
            layers_mean: 10.33,
            layers_sd: 3.98,
            layers_min: 1,
            layers_max: 32,
            kernels: vec![(1, 3.0 / 62.0), (2, 3.0 / 62.0), (3, 34.0 / 62.0), (4, 3.0 / 62.0), (5, 19.0 / 62.0)],
            channels_mu: 3.4931,
            channels_slope: 0.3283,
            channels_sigma: 1.3078,
            channels_min: 2,
            channels_max: 1024,
            mix: vec![(Block::Plain, 1.0)],
            se: 0.0,
            max_gmacs: None,
            max_params: None,
            resample: 8,
        }
    }
}

fn list<X: Copy>(items: &[(X, f64)], name: impl Fn(X) -> String) -> String {
    items.iter().map(|&(x, w)| format!("{}:{w}", name(x))).collect::<Vec<_>>().join(",")
}

impl Params {
    pub fn from_spec(spec: &Spec) -> Result<Params, SpecError> {
        spec.only(KEYS)?;
        let d = Params::default();
        let input = spec.int("input", d.input, 2..=4096)?;
        // Each group halves the size with a VALID 2x2 pool; the last must leave >= 1 pixel.
        let max_groups = (usize::BITS - 1 - input.leading_zeros()) as usize;
        let groups = spec.int("groups", d.groups, 1..=64)?;
        if groups > max_groups {
            return Err(spec.error(format!(
                "groups={groups} at input={input}: {groups} 2x2 pools leave no pixel; give groups from 1 to {max_groups} (or a larger input)"
            )));
        }
        let kernels = spec
            .weights("kernels", |k| match k.parse::<usize>() {
                Ok(k) if (1..=15).contains(&k) => Ok(k),
                _ => Err(format!("kernel `{k}`: give sizes from 1 to 15, e.g. kernels=3:0.6,5:0.4")),
            })?
            .unwrap_or(d.kernels);
        let mut mix = spec.weights("mix", Block::parse)?.unwrap_or(d.mix);
        // One order whatever order they were given in, so equal specs sample equally.
        mix.sort_by_key(|(b, _)| Block::ALL.iter().position(|x| x == b));
        let mut kernels = kernels;
        kernels.sort_by_key(|(k, _)| *k);
        if let Some(w) = mix.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(spec.error(format!("mix: `{}` is given twice", w[0].0.name())));
        }
        if let Some(w) = kernels.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(spec.error(format!("kernels: `{}` is given twice", w[0].0)));
        }
        let layers_min = spec.int("layers_min", d.layers_min, 1..=256)?;
        let layers_max = spec.int("layers_max", d.layers_max, 1..=256)?;
        if layers_max < layers_min {
            return Err(spec.error(format!("layers_max={layers_max} is below layers_min={layers_min}")));
        }
        let channels_min = spec.int("channels_min", d.channels_min, 1..=8192)?;
        let channels_max = spec.int("channels_max", d.channels_max, 1..=8192)?;
        if channels_max < channels_min {
            return Err(spec.error(format!("channels_max={channels_max} is below channels_min={channels_min}")));
        }
        let max_params = match spec.opt_float("max_params", 1.0..=1e12)? {
            Some(p) if p.fract() != 0.0 => {
                return Err(spec.error(format!("max_params={p}: give a whole number of parameters")))
            }
            p => p.map(|p| p as u64),
        };
        Ok(Params {
            seed: spec.u64("seed", d.seed)?,
            groups,
            input,
            classes: spec.int("classes", d.classes, 1..=100_000)?,
            layers_mean: spec.float("layers_mean", d.layers_mean, 0.0..=256.0)?,
            layers_sd: spec.float("layers_sd", d.layers_sd, 0.0..=256.0)?,
            layers_min,
            layers_max,
            kernels,
            channels_mu: spec.float("channels_mu", d.channels_mu, -10.0..=10.0)?,
            channels_slope: spec.float("channels_slope", d.channels_slope, -5.0..=5.0)?,
            channels_sigma: spec.float("channels_sigma", d.channels_sigma, 0.0..=10.0)?,
            channels_min,
            channels_max,
            mix,
            se: spec.float("se", d.se, 0.0..=1.0)?,
            max_gmacs: spec.opt_float("max_gmacs", 1e-9..=1e6)?,
            max_params,
            resample: spec.int("resample", d.resample, 1..=1000)?,
        })
    }

    /// The spec that reproduces these parameters exactly (every key written out).
    pub fn to_spec(&self) -> String {
        let mut s = format!(
            "synnet:seed={},groups={},input={},classes={},layers_mean={},layers_sd={},layers_min={},layers_max={},kernels={},channels_mu={},channels_slope={},channels_sigma={},channels_min={},channels_max={},mix={},se={}",
            self.seed,
            self.groups,
            self.input,
            self.classes,
            self.layers_mean,
            self.layers_sd,
            self.layers_min,
            self.layers_max,
            list(&self.kernels, |k| k.to_string()),
            self.channels_mu,
            self.channels_slope,
            self.channels_sigma,
            self.channels_min,
            self.channels_max,
            list(&self.mix, |b| b.name().to_string()),
            self.se,
        );
        if let Some(g) = self.max_gmacs {
            s.push_str(&format!(",max_gmacs={g}"));
        }
        if let Some(p) = self.max_params {
            s.push_str(&format!(",max_params={p}"));
        }
        s.push_str(&format!(",resample={}", self.resample));
        s
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "seed": self.seed,
            "groups": self.groups,
            "input": self.input,
            "classes": self.classes,
            "layers": {"distribution": "round(normal) clipped", "mean": self.layers_mean, "sd": self.layers_sd,
                       "min": self.layers_min, "max": self.layers_max},
            "kernels": {"distribution": "categorical, sorted non-increasing per group",
                        "weights": self.kernels.iter().map(|(k, w)| (k.to_string(), json!(w))).collect::<serde_json::Map<_, _>>()},
            "channels": {"distribution": "round(lognormal) clipped", "mu": self.channels_mu,
                         "slope_per_group": self.channels_slope, "sigma": self.channels_sigma,
                         "min": self.channels_min, "max": self.channels_max},
            "mix": self.mix.iter().map(|(b, w)| (b.name().to_string(), json!(w))).collect::<serde_json::Map<_, _>>(),
            "se": self.se,
            "max_gmacs": self.max_gmacs,
            "max_params": self.max_params,
            "resample": self.resample,
        })
    }

    /// The log-normal mean of the widths in group `g` (1-based).
    pub fn channels_mu_of_group(&self, g: usize) -> f64 {
        self.channels_mu + self.channels_slope * (g as f64 - 1.0)
    }
}

/// One sampled layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layer {
    pub block: Block,
    pub kernel: usize,
    pub channels: usize,
    pub se: bool,
}

/// A sampled net before it is built: layers per group.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub groups: Vec<Vec<Layer>>,
}

fn weighted<X: Copy>(items: &[(X, f64)]) -> (Vec<X>, WeightedIndex<f64>) {
    let weights: Vec<f64> = items.iter().map(|(_, w)| *w).collect();
    // from_spec guarantees non-negative finite weights with a positive one.
    let index = WeightedIndex::new(&weights).expect("validated weights");
    (items.iter().map(|(x, _)| *x).collect(), index)
}

/// Draw one plan from `rng`.
pub fn sample_plan(p: &Params, rng: &mut ChaCha8Rng) -> Plan {
    let (kernels, kernel_index) = weighted(&p.kernels);
    let (blocks, block_index) = weighted(&p.mix);
    let layers = Normal::new(p.layers_mean, p.layers_sd).expect("validated layer distribution");
    let groups = (1..=p.groups)
        .map(|g| {
            let n = (layers.sample(rng).round().max(0.0) as usize).clamp(p.layers_min, p.layers_max);
            let mut ks: Vec<usize> = (0..n).map(|_| kernels[kernel_index.sample(rng)]).collect();
            ks.sort_unstable_by(|a, b| b.cmp(a));
            let widths = Normal::new(p.channels_mu_of_group(g), p.channels_sigma).expect("validated widths");
            ks.into_iter()
                .map(|kernel| {
                    let channels = (widths.sample(rng).exp().round() as usize).clamp(p.channels_min, p.channels_max);
                    let block = blocks[block_index.sample(rng)];
                    let se = p.se > 0.0 && rng.random_bool(p.se);
                    Layer { block, kernel, channels, se }
                })
                .collect()
        })
        .collect();
    Plan { groups }
}

impl Plan {
    /// Every width times `factor`, rounded and clipped to `[min, max]`.
    pub fn scaled(&self, factor: f64, min: usize, max: usize) -> Plan {
        let groups = self
            .groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|l| Layer { channels: ((l.channels as f64 * factor).round() as usize).clamp(min, max), ..*l })
                    .collect()
            })
            .collect();
        Plan { groups }
    }
}

/// Trainable parameters and MACs per image of one layer from `cin` channels at `area`
/// pixels, by formula (the budget loop calls this thousands of times; a unit test holds
/// it equal to the analysis of the built net).
fn layer_cost(l: &Layer, cin: u64, area: u64) -> (u64, u64) {
    let (k, c) = ((l.kernel * l.kernel) as u64, l.channels as u64);
    // (weights, batch-norm channels) of each conv; MACs = weights x area at stride 1.
    let mut weights = 0;
    let mut bn = 0;
    let mut conv = |w: u64, channels: u64| {
        weights += w;
        bn += channels;
    };
    match l.block {
        Block::Plain => conv(cin * k * c, c),
        Block::Bottleneck => {
            let w = (c / 4).max(1);
            conv(cin * w, w);
            conv(w * k * w, w);
            conv(w * c, c);
            if cin != c {
                conv(cin * c, c);
            }
        }
        Block::Inception => {
            let n = c.min(4);
            for i in 0..n {
                let w = c / n + u64::from(i < c % n);
                conv(cin * w, w);
                for _ in 0..[0, 1, 2, 0][i as usize] {
                    conv(w * k * w, w);
                }
            }
        }
        Block::Dense => {
            let growth = (c / 4).max(1);
            for i in 0..3 {
                conv((cin + i * growth) * 4 * growth, 4 * growth);
                conv(4 * growth * k * growth, growth);
            }
            conv((cin + 3 * growth) * c, c);
        }
        Block::Separable => {
            conv(cin * k, cin);
            conv(cin * c, c);
        }
        Block::Inverted => {
            let hidden = 6 * cin;
            conv(cin * hidden, hidden);
            conv(hidden * k, hidden);
            conv(hidden * c, c);
        }
    }
    let (mut params, mut macs) = (weights + 2 * bn, weights * area);
    if l.se {
        let r = (c / 16).max(1);
        params += 2 * c * r + r + c;
        macs += 2 * c * r;
    }
    (params, macs)
}

impl Plan {
    /// Trainable parameters and MACs per image of the net [`build_plan`] makes.
    pub fn cost(&self, p: &Params) -> (u64, u64) {
        let (mut params, mut macs, mut cin, mut side) = (0u64, 0u64, 3u64, p.input as u64);
        for layers in &self.groups {
            for l in layers {
                let (lp, lm) = layer_cost(l, cin, side * side);
                params += lp;
                macs += lm;
                cin = l.channels as u64;
            }
            side /= 2;
        }
        let fc = cin * side * side * p.classes as u64;
        (params + fc + p.classes as u64, macs + fc)
    }
}

fn bottleneck(g: &mut NetBuilder, x: T, k: usize, c: usize) -> T {
    let width = (c / 4).max(1);
    let y = conv_bn_relu(g, x, conv(width, 1));
    let y = conv_bn_relu(g, y, conv(width, k).same());
    let y = conv_bn(g, y, conv(c, 1));
    let shortcut = if g.channels(x) == c { x } else { g.scope("downsample", |g| conv_bn(g, x, conv(c, 1))) };
    let y = g.add(y, shortcut);
    g.relu(y)
}

fn inception(g: &mut NetBuilder, x: T, k: usize, c: usize) -> T {
    let n = c.min(4);
    // Split c into n branch widths, the remainder to the first branches.
    let widths: Vec<usize> = (0..n).map(|i| c / n + usize::from(i < c % n)).collect();
    let branches: Vec<T> = widths
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            g.scope(format!("branch{}", i + 1), |g| match i {
                0 => conv_bn_relu(g, x, conv(w, 1)),
                1 => {
                    let y = conv_bn_relu(g, x, conv(w, 1));
                    conv_bn_relu(g, y, conv(w, k).same())
                }
                2 => {
                    let y = conv_bn_relu(g, x, conv(w, 1));
                    let y = conv_bn_relu(g, y, conv(w, k).same());
                    conv_bn_relu(g, y, conv(w, k).same())
                }
                _ => {
                    let y = g.max_pool(x, pool(3).stride(1).same());
                    conv_bn_relu(g, y, conv(w, 1))
                }
            })
        })
        .collect();
    g.cat(&branches)
}

fn dense(g: &mut NetBuilder, x: T, k: usize, c: usize) -> T {
    let growth = (c / 4).max(1);
    let mut features = vec![x];
    for i in 1..=3 {
        let y = g.scope(format!("unit{i}"), |g| {
            let input = g.cat(&features);
            let y = conv_bn_relu(g, input, conv(4 * growth, 1));
            conv_bn_relu(g, y, conv(growth, k).same())
        });
        features.push(y);
    }
    let y = g.cat(&features);
    g.scope("transition", |g| conv_bn_relu(g, y, conv(c, 1)))
}

fn separable(g: &mut NetBuilder, x: T, k: usize, c: usize) -> T {
    let cin = g.channels(x);
    let y = conv_bn_relu(g, x, conv(cin, k).same().depthwise());
    conv_bn_relu(g, y, conv(c, 1))
}

fn inverted(g: &mut NetBuilder, x: T, k: usize, c: usize) -> T {
    let cin = g.channels(x);
    let hidden = 6 * cin;
    let y = conv_bn_act(g, x, conv(hidden, 1), 1e-5, &Op::Relu6);
    let y = conv_bn_act(g, y, conv(hidden, k).same().depthwise(), 1e-5, &Op::Relu6);
    let y = conv_bn(g, y, conv(c, 1));
    if cin == c {
        g.add(x, y)
    } else {
        y
    }
}

/// Builds one block's body: (graph, input, kernel, channels) -> output.
type BlockBody = fn(&mut NetBuilder, T, usize, usize) -> T;

/// Build the net a plan describes.
pub fn build_plan(name: &str, p: &Params, plan: &Plan) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new(name, &[3, p.input, p.input]);
    let mut x = g.input();
    for (i, layers) in plan.groups.iter().enumerate() {
        x = g.scope(format!("group{}", i + 1), |g| {
            let x = layers.iter().enumerate().fold(x, |x, (j, l)| {
                let (k, c) = (l.kernel, l.channels);
                let body: Option<BlockBody> = match l.block {
                    Block::Plain => None,
                    Block::Bottleneck => Some(bottleneck),
                    Block::Inception => Some(inception),
                    Block::Dense => Some(dense),
                    Block::Separable => Some(separable),
                    Block::Inverted => Some(inverted),
                };
                let y = match body {
                    None => conv_bn_relu(g, x, conv(c, k).same()),
                    Some(body) => g.scope(format!("{}{}", l.block.name(), j + 1), |g| body(g, x, k, c)),
                };
                if l.se {
                    g.scope(format!("se{}", j + 1), |g| squeeze_excite(g, y, (c / 16).max(1), &Op::Relu, &Op::Sigmoid))
                } else {
                    y
                }
            });
            g.max_pool(x, pool(2).stride(2))
        });
    }
    let x = g.flatten(x);
    let x = g.named("fc").linear(x, p.classes);
    g.finish(x)
}

/// How far over budget (<= 1: inside).
fn excess(p: &Params, (params, macs): (u64, u64)) -> f64 {
    let by_macs = p.max_gmacs.map_or(0.0, |g| macs as f64 / (g * 1e9));
    let by_params = p.max_params.map_or(0.0, |m| params as f64 / m as f64);
    by_macs.max(by_params)
}

/// Sample, check the budget, build. The net carries its `generator` record.
pub fn generate(p: &Params) -> Result<Net, String> {
    let (plan, draws, scale) = sample_within_budget(p)?;
    let name = format!("synnet_s{}_g{}_i{}", p.seed, p.groups, p.input);
    let mut net = build_plan(&name, p, &plan).map_err(|e| format!("sampled net is invalid: {e}"))?;
    let (params, macs) = plan.cost(p);
    net.generator = Some(json!({
        "generator": "synnet",
        "spec": p.to_spec(),
        "seed": p.seed,
        "parameters": p.to_json(),
        "draws": draws,
        "channel_scale": scale,
        "params": params,
        "macs": macs,
        "synprof_version": env!("CARGO_PKG_VERSION"),
    }));
    Ok(net)
}

/// The kept plan, how many draws it took and the width scale applied (1: none).
pub fn sample_within_budget(p: &Params) -> Result<(Plan, usize, f64), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut missed: Vec<(f64, Plan)> = Vec::new();
    for draw in 1..=p.resample {
        let plan = sample_plan(p, &mut rng);
        let over = excess(p, plan.cost(p));
        if over <= 1.0 {
            return Ok((plan, draw, 1.0));
        }
        missed.push((over, plan));
    }
    // Scale the draw nearest to the budget among those that fit at all (the floor:
    // every width at channels_min; a deep draw at a high resolution may not).
    missed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let at = |plan: &Plan, s: f64| {
        let scaled = plan.scaled(s, p.channels_min, p.channels_max);
        let over = excess(p, scaled.cost(p));
        (scaled, over)
    };
    let Some((plan, floor)) =
        missed.iter().map(|(_, plan)| (plan, at(plan, 0.0))).find(|(_, (_, over))| *over <= 1.0).map(|(p, f)| (p, f.0))
    else {
        let floors = missed.iter().map(|(_, plan)| plan.scaled(0.0, p.channels_min, p.channels_max).cost(p));
        let (params, macs) = floors.min_by_key(|&(params, macs)| (macs, params)).unwrap_or_default();
        return Err(format!(
            "the budget (max_gmacs={}, max_params={}) cannot be met: in {} draws, with every width at channels_min={} the smallest net still has {:.4} GMACs and {params} params; raise the budget or lower input, groups, classes or layers_max",
            p.max_gmacs.map_or("none".into(), |g| g.to_string()),
            p.max_params.map_or("none".into(), |m| m.to_string()),
            p.resample,
            p.channels_min,
            macs as f64 / 1e9,
        ));
    };
    // The largest scale inside the budget, by bisection (costs grow with the scale).
    let (mut lo, mut hi, mut best) = (0.0_f64, 1.0_f64, floor);
    for _ in 0..30 {
        let mid = 0.5 * (lo + hi);
        let (scaled, over_at) = at(plan, mid);
        if over_at <= 1.0 {
            (lo, best) = (mid, scaled);
        } else {
            hi = mid;
        }
    }
    Ok((best, p.resample, lo))
}

pub fn build(spec: &Spec) -> Result<Net, SpecError> {
    let p = Params::from_spec(spec)?;
    generate(&p).map_err(|e| spec.error(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyzed(net: &Net) -> (u64, u64) {
        let t = crate::analysis::analyze(net, 1, crate::Dtype::F32).totals;
        (t.params, t.macs)
    }

    #[test]
    fn the_cost_formula_is_the_analysis_of_the_built_net() {
        let p = Params {
            mix: Block::ALL.map(|b| (b, 1.0)).to_vec(),
            se: 0.3,
            kernels: vec![(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 1.0), (7, 1.0)],
            ..Params::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..40 {
            let plan = sample_plan(&p, &mut rng).scaled(0.25, 2, 1024);
            assert_eq!(plan.cost(&p), analyzed(&build_plan("t", &p, &plan).unwrap()));
        }
    }

    #[test]
    fn kernels_are_non_increasing_and_widths_clipped() {
        let p = Params { channels_sigma: 4.0, ..Params::default() };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..50 {
            let plan = sample_plan(&p, &mut rng);
            assert_eq!(plan.groups.len(), 6);
            for g in &plan.groups {
                assert!((1..=32).contains(&g.len()));
                assert!(g.windows(2).all(|w| w[0].kernel >= w[1].kernel), "{g:?}");
                assert!(g.iter().all(|l| (2..=1024).contains(&l.channels)));
            }
        }
    }

    #[test]
    fn the_canonical_spec_reads_back_to_the_same_parameters() {
        let spec =
            Spec::parse("synnet:seed=9,mix=plain:0.5,inception:0.5,se=0.3,max_gmacs=2.5,kernels=3:1,5:2").unwrap();
        let p = Params::from_spec(&spec).unwrap();
        assert_eq!(p.mix, vec![(Block::Plain, 0.5), (Block::Inception, 0.5)]);
        assert_eq!(p.kernels, vec![(3, 1.0), (5, 2.0)]);
        let again = Params::from_spec(&Spec::parse(&p.to_spec()).unwrap()).unwrap();
        assert_eq!(again, p);
        assert_eq!(Params::from_spec(&Spec::parse(&Params::default().to_spec()).unwrap()).unwrap(), Params::default());
    }

    #[test]
    fn every_block_kind_builds_at_every_width_and_keeps_it() {
        for block in Block::ALL {
            for c in [2, 3, 5, 64] {
                for k in [1, 2, 5] {
                    let plan = Plan { groups: vec![vec![Layer { block, kernel: k, channels: c, se: true }]; 2] };
                    let p = Params { groups: 2, input: 16, ..Params::default() };
                    let net = build_plan("t", &p, &plan).unwrap_or_else(|e| panic!("{block:?} c={c} k={k}: {e}"));
                    let last_pool = net.nodes.iter().rev().find(|n| matches!(n.op, Op::MaxPool2d(_))).unwrap();
                    assert_eq!(last_pool.shape.0, vec![c, 4, 4], "{block:?} c={c} k={k}");
                    assert_eq!(plan.cost(&p), analyzed(&net), "{block:?} c={c} k={k}");
                }
            }
        }
    }
}
