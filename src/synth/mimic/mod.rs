//! Mimic: a synthetic net whose workload characteristics match a target model's, or a
//! weighted mix of models' (AI Matrix's method, arXiv 1812.00886: per-layer workloads of
//! real models, then a meta-heuristic search for a net that reproduces them).
//!
//! 1. [`target`]: the characteristics to match ([`crate::analysis::characteristics`]).
//! 2. [`genome`]: a net description the search mutates; the start reads the (heaviest)
//!    target's layers into cells and scales widths to the target's MACs.
//! 3. [`search`]: simulated annealing, bounded by evaluations (deterministic per seed).
//! 4. [`distance`]: per-characteristic distances and what "within 5%" means.
//!
//! As a generator spec: `mimic:like=resnet50,seed=1` or
//! `mimic:weights=resnet50:0.5;googlenet:0.5,budget_gmacs=2,seed=1`.

pub mod distance;
pub mod genome;
pub mod search;
pub mod target;

use super::{Spec, SpecError};
use crate::analysis::{analyze, characteristics::characterize, Characteristics};
use crate::dtype::Dtype;
use crate::graph::Net;
pub use distance::{Distance, TOLERANCE};
use genome::{Genome, Kind};

pub const KEYS: &[&str] = &["like", "weights", "seed", "budget_gmacs", "evaluations", "jitter"];

/// Evaluations the search may spend by default (measured in `benches/MIMIC.md`: the
/// whole run stays under 10 s on 2 shared cores for the zoo's largest models).
pub const DEFAULT_EVALUATIONS: usize = 8000;

#[derive(Debug, Clone, PartialEq)]
pub struct MimicOptions {
    pub seed: u64,
    /// Upper bound on candidate nets built and characterized.
    pub evaluations: usize,
    /// Match this many GMACs per image instead of the target's.
    pub budget_gmacs: Option<f64>,
    /// The search stops once every counted distance is at most this.
    pub stop_at: f64,
    /// Random changes made to the start before the search, per layer of the start (0:
    /// start from the target's own layers; 0.5: a net that differs from the target in
    /// about half its layers, pulled back to the characteristics by the search).
    pub jitter: f64,
    /// Batch and dtype of the characteristics (intensity depends on both).
    pub batch: usize,
    pub dtype: Dtype,
    pub name: String,
}

impl Default for MimicOptions {
    fn default() -> Self {
        MimicOptions {
            seed: 1,
            evaluations: DEFAULT_EVALUATIONS,
            budget_gmacs: None,
            stop_at: 0.02,
            jitter: 0.0,
            batch: 1,
            dtype: Dtype::F32,
            name: "mimic".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Mimicked {
    pub net: Net,
    pub target: Characteristics,
    pub achieved: Characteristics,
    pub distances: Vec<Distance>,
    /// Worst counted distance of the starting point and of the result.
    pub initial_worst: f64,
    pub worst: f64,
    pub evaluations: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MimicError {
    NoTargets,
    BadWeight {
        index: usize,
        weight: f64,
    },
    BadBudget(f64),
    /// The starting genome does not build (a target the genome cannot describe).
    Start(String),
}

impl std::fmt::Display for MimicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MimicError::NoTargets => write!(f, "mimic needs at least one target model"),
            MimicError::BadWeight { index, weight } => {
                write!(f, "target {index}: weight {weight} must be a positive finite number")
            }
            MimicError::BadBudget(b) => write!(f, "budget {b} GMACs must be a positive finite number"),
            MimicError::Start(e) => write!(f, "the starting net does not build: {e}"),
        }
    }
}

impl std::error::Error for MimicError {}

/// Search for a net whose characteristics match the weighted mix of `targets`.
pub fn mimic(targets: &[(Net, f64)], opts: &MimicOptions) -> Result<Mimicked, MimicError> {
    if targets.is_empty() {
        return Err(MimicError::NoTargets);
    }
    for (index, (_, weight)) in targets.iter().enumerate() {
        if !(weight.is_finite() && *weight > 0.0) {
            return Err(MimicError::BadWeight { index, weight: *weight });
        }
    }
    let mut target = target::mix(targets, opts.batch, opts.dtype);
    if let Some(b) = opts.budget_gmacs {
        if !(b.is_finite() && b > 0.0) {
            return Err(MimicError::BadBudget(b));
        }
        target.macs = (b * 1e9 * opts.batch as f64).round() as u64;
    }
    let mut start = if targets.len() == 1 {
        Genome::from_net(&targets[0].0)
    } else {
        Genome::mix(&targets.iter().map(|(n, w)| (Genome::from_net(n), *w)).collect::<Vec<_>>())
    };
    let search = search::Search {
        target: &target,
        budget: opts.budget_gmacs.is_some(),
        batch: opts.batch,
        dtype: opts.dtype,
        name: &opts.name,
        resolutions: target.mac_share_by_resolution.keys().filter_map(|k| k.parse().ok()).collect(),
    };
    let first = search
        .evaluate(start.clone())
        .ok_or_else(|| MimicError::Start(start.build(&opts.name).err().map(|e| e.to_string()).unwrap_or_default()))?;
    // Widths scale MACs about quadratically: meet the target's MACs before annealing.
    let ratio = target.macs as f64 / first.chars.macs.max(1) as f64;
    if (ratio - 1.0).abs() > 0.02 {
        scale_widths(&mut start, ratio.sqrt());
    }
    if opts.jitter > 0.0 {
        use rand::SeedableRng;
        // Its own stream, so the search's stream is the same with and without jitter.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed ^ 0x6a69_7474_6572);
        let changes = (opts.jitter * start.layer_ids().len() as f64).round() as usize;
        let mut done = 0;
        while done < changes {
            let mut g = start.clone();
            if search::mutate(&mut g, &mut rng, &search.resolutions) && g.build(&opts.name).is_ok() {
                start = g;
                done += 1;
            }
        }
    }
    let start = search.evaluate(start).unwrap_or(first);
    let initial_worst = distance::worst(&start.distances);
    let (mut best, mut evaluations) = search.anneal(start, opts.seed, opts.evaluations, opts.stop_at);
    if distance::worst(&best.distances) > TOLERANCE {
        // Still outside: reheat from the best so far for half the evaluations again (only
        // the hard cases, mixes and budgets, pay for it).
        let (again, more) = search.anneal(best, opts.seed ^ 0x7265_6865_6174, opts.evaluations / 2, opts.stop_at);
        (best, evaluations) = (again, evaluations + more);
    }
    let mut net = best.net;
    net.generator = Some(serde_json::json!({
        "generator": "mimic",
        "seed": opts.seed,
        "evaluations": evaluations,
        "targets": targets.iter().map(|(n, w)| serde_json::json!({"model": n.name, "weight": w})).collect::<Vec<_>>(),
        "budget_gmacs": opts.budget_gmacs,
        "distances": best.distances.iter().map(|d| (d.name.to_string(), serde_json::json!(round6(d.distance)))).collect::<serde_json::Map<_, _>>(),
    }));
    let worst = distance::worst(&best.distances);
    Ok(Mimicked { net, target, achieved: best.chars, distances: best.distances, initial_worst, worst, evaluations })
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn scale_widths(g: &mut Genome, factor: f64) {
    let ids = g.layer_ids();
    let last = ids.iter().copied().max_by_key(|id| (id.0, id.1 == usize::MAX, id.1, id.2));
    for id in ids {
        if Some(id) == last {
            continue;
        }
        let layer = g.layer_mut(id);
        if !matches!(layer.kind, Kind::Depthwise { .. }) {
            layer.cout = ((layer.cout as f64 * factor).round() as usize).max(1);
        }
    }
}

/// Characteristics of a net at the options' batch and dtype (for reports and tests).
pub fn characteristics(net: &Net, opts: &MimicOptions) -> Characteristics {
    characterize(net, &analyze(net, opts.batch, opts.dtype))
}

/// The spec's `key=value` pairs (values may hold `;` and `:`).
fn value<'a>(spec: &'a Spec, key: &str) -> Option<&'a str> {
    let (_, rest) = spec.text.split_once(':')?;
    rest.split(',').filter_map(|p| p.split_once('=')).find(|(k, _)| k.trim() == key).map(|(_, v)| v.trim())
}

/// Targets and options of a `mimic:` spec.
pub fn parse(spec: &Spec) -> Result<(Vec<(Net, f64)>, MimicOptions), SpecError> {
    spec.only(KEYS)?;
    let mut list: Vec<(String, f64)> = Vec::new();
    match (value(spec, "like"), value(spec, "weights")) {
        (Some(_), Some(_)) => return Err(spec.error("give `like` or `weights`, not both")),
        (None, None) => return Err(spec.error("name the target: like=resnet50 (or like=a;b, or weights=a:0.7;b:0.3)")),
        (Some(like), None) => list.extend(like.split(';').map(|m| (m.trim().to_string(), 1.0))),
        (None, Some(weights)) => {
            for part in weights.split(';') {
                let (m, w) = part
                    .split_once(':')
                    .ok_or_else(|| spec.error(format!("weights: `{part}`: expected model:weight")))?;
                let w: f64 =
                    w.trim().parse().ok().filter(|w: &f64| w.is_finite() && *w > 0.0).ok_or_else(|| {
                        spec.error(format!("weights: `{part}`: the weight must be a positive number"))
                    })?;
                list.push((m.trim().to_string(), w));
            }
        }
    }
    let mut targets = Vec::new();
    for (model, w) in &list {
        if model.is_empty() || crate::synth::is_spec(model) {
            return Err(spec.error(format!("`{model}`: a target is a zoo model name or a model file")));
        }
        // A zoo model, a synprof model file or an ONNX file (a user's own model).
        let net = crate::source::load(model, None).map_err(|e| spec.error(e.to_string()))?;
        targets.push((net, *w));
    }
    let seed = spec.int("seed", 1, 0..=u32::MAX as usize)? as u64;
    let evaluations = spec.int("evaluations", DEFAULT_EVALUATIONS, 0..=10_000_000)?;
    let budget_gmacs = match value(spec, "budget_gmacs") {
        None => None,
        Some(v) => Some(
            v.parse::<f64>()
                .ok()
                .filter(|b| b.is_finite() && *b > 0.0)
                .ok_or_else(|| spec.error(format!("budget_gmacs={v}: give a positive number of GMACs")))?,
        ),
    };
    let jitter = match value(spec, "jitter") {
        None => 0.0,
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|j| (0.0..=4.0).contains(j))
            .ok_or_else(|| spec.error(format!("jitter={v}: give a number from 0 to 4 (changes per layer)")))?,
    };
    let name = format!("mimic_{}", list.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>().join("_"));
    Ok((targets, MimicOptions { seed, evaluations, budget_gmacs, jitter, name, ..MimicOptions::default() }))
}

/// Build the net a `mimic:` spec describes.
pub fn build(spec: &Spec) -> Result<Net, SpecError> {
    let (targets, opts) = parse(spec)?;
    let m = mimic(&targets, &opts).map_err(|e| spec.error(e.to_string()))?;
    Ok(m.net)
}
