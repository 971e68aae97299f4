//! Simulated annealing over genomes. Each step mutates one thing (a layer's width,
//! kernel or post-ops; a layer added, removed or moved to a parallel branch; a skip; a
//! cell's resolution), builds the net, characterizes it and scores the distances. The
//! run is bounded by a number of evaluations, not by time, so a seed gives one net.

use super::distance::{distances, Distance, TOLERANCE};
use super::genome::{Branch, Genome, Kind, Post};
use crate::analysis::{analyze, characteristics::characterize, Characteristics};
use crate::dtype::Dtype;
use crate::graph::Net;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub struct Candidate {
    pub genome: Genome,
    pub net: Net,
    pub chars: Characteristics,
    pub distances: Vec<Distance>,
    pub score: f64,
}

pub struct Search<'a> {
    pub target: &'a Characteristics,
    pub budget: bool,
    pub batch: usize,
    pub dtype: Dtype,
    pub name: &'a str,
    /// Resolutions the target computes at (cell resolutions move among these).
    pub resolutions: Vec<usize>,
}

/// Sum of squared distances in units of the tolerance, plus a steep term above it, so
/// the search first pulls every characteristic inside, then tightens.
pub fn score(ds: &[Distance]) -> f64 {
    ds.iter()
        .filter(|d| d.counted)
        .map(|d| {
            let x = d.distance / TOLERANCE;
            x * x + 10.0 * (x - 0.8).max(0.0).powi(2)
        })
        .sum()
}

impl Search<'_> {
    pub fn evaluate(&self, genome: Genome) -> Option<Candidate> {
        let net = genome.build(self.name).ok()?;
        let chars = characterize(&net, &analyze(&net, self.batch, self.dtype));
        let distances = distances(self.target, &chars, self.budget);
        let score = score(&distances);
        Some(Candidate { genome, net, chars, distances, score })
    }

    /// Anneal from `start` for `evaluations` steps; stop early once every counted
    /// distance is within `stop_at`.
    pub fn anneal(&self, start: Candidate, seed: u64, evaluations: usize, stop_at: f64) -> (Candidate, usize) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut best = start;
        let mut current_genome = best.genome.clone();
        let mut current_score = best.score;
        let (t0, t1) = (2.0f64, 0.02f64);
        let mut used = 0;
        for step in 0..evaluations {
            if super::distance::worst(&best.distances) <= stop_at {
                break;
            }
            used = step + 1;
            let t = t0 * (t1 / t0).powf(step as f64 / evaluations.max(1) as f64);
            let mut g = current_genome.clone();
            if !mutate(&mut g, &mut rng, &self.resolutions) {
                continue;
            }
            let Some(c) = self.evaluate(g) else { continue };
            let delta = c.score - current_score;
            if delta <= 0.0 || rng.random::<f64>() < (-delta / t).exp() {
                current_genome = c.genome.clone();
                current_score = c.score;
                if c.score < best.score {
                    best = c;
                }
            }
        }
        (best, used)
    }
}

/// One random change; false when the chosen change does not apply.
pub fn mutate(g: &mut Genome, rng: &mut ChaCha8Rng, resolutions: &[usize]) -> bool {
    let ids = g.layer_ids();
    if ids.is_empty() {
        return false;
    }
    // The last layer is the classifier: its width stays.
    let last = *ids.iter().max_by_key(|id| (id.0, id.1 == usize::MAX, id.1, id.2)).unwrap();
    let id = ids[rng.random_range(0..ids.len())];
    match rng.random_range(0..100) {
        0..=39 => {
            if id == last {
                return false;
            }
            let layer = g.layer_mut(id);
            let factor = (rng.random::<f64>() * 2.0 - 1.0) * if rng.random() { 0.25 } else { 0.05 };
            let new = ((layer.cout as f64) * factor.exp()).round() as usize;
            let new = if new == layer.cout { layer.cout + if rng.random() { 1 } else { 0 } } else { new };
            layer.cout = new.clamp(1, 1 << 16);
        }
        40..=54 => {
            let layer = g.layer_mut(id);
            layer.post = Post::ALL[rng.random_range(0..4)];
        }
        55..=64 => {
            let layer = g.layer_mut(id);
            let step: i64 = if rng.random() { 2 } else { -2 };
            let bump = |k: usize| ((k as i64 + step).max(1)) as usize;
            layer.kind = match layer.kind {
                Kind::Conv { kh, kw } if kh == kw => Kind::Conv { kh: bump(kh), kw: bump(kw) },
                Kind::Conv { kh, kw } => Kind::Conv { kh: kw, kw: kh }.max_kernel(bump(kh.max(kw))),
                Kind::Depthwise { k } => Kind::Depthwise { k: bump(k) },
                other => other,
            };
        }
        65..=74 => {
            // Duplicate a layer in place (same resolution: no second downsampling).
            if id.1 == usize::MAX {
                return false;
            }
            let branch = &mut g.cells[id.0].branches[id.1];
            let mut copy = branch.layers[id.2].clone();
            if copy.kind == Kind::Linear && id == last {
                return false;
            }
            copy.res = branch.layers[id.2].res;
            branch.layers.insert(id.2 + 1, copy);
            shift_forks(&mut g.cells[id.0].branches, id.1, id.2, 1);
        }
        75..=84 => {
            if id == last || id.1 == usize::MAX {
                return false;
            }
            let cell = &mut g.cells[id.0];
            if cell.branches.iter().any(|b| b.fork.is_some_and(|f| f.0 == id.1 && f.1 == id.2)) {
                return false;
            }
            cell.branches[id.1].layers.remove(id.2);
            shift_forks(&mut cell.branches, id.1, id.2, -1);
            g.tidy();
        }
        85..=89 => {
            // Move a layer of a chain into a parallel branch of its own (or back).
            if id.1 == usize::MAX {
                return false;
            }
            let cell = &mut g.cells[id.0];
            if cell.branches.iter().any(|b| b.fork.is_some()) {
                return false;
            }
            let len = cell.branches[id.1].layers.len();
            if len >= 2 && id.2 == 0 {
                let layer = cell.branches[id.1].layers.remove(0);
                cell.branches.push(Branch { fork: None, pool: false, layers: vec![layer] });
            } else if cell.branches.len() >= 2 && len == 1 {
                let layer = cell.branches.remove(id.1).layers.remove(0);
                let target = rng.random_range(0..cell.branches.len());
                cell.branches[target].layers.insert(0, layer);
            } else {
                return false;
            }
        }
        90..=91 => {
            let cell = &mut g.cells[id.0];
            cell.identity = !cell.identity;
        }
        92..=93 => {
            let cell = &mut g.cells[id.0];
            cell.post = Post::ALL[rng.random_range(0..4)];
        }
        94 => {
            if id.1 == usize::MAX {
                return false;
            }
            let branch = &mut g.cells[id.0].branches[id.1];
            branch.pool = !branch.pool;
        }
        _ => {
            if resolutions.is_empty() {
                return false;
            }
            let cell = &mut g.cells[id.0];
            let r = resolutions[rng.random_range(0..resolutions.len())];
            if r == cell.res {
                return false;
            }
            cell.res = r;
        }
    }
    true
}

impl Kind {
    fn max_kernel(self, k: usize) -> Kind {
        match self {
            Kind::Conv { kh, kw } if kh >= kw => Kind::Conv { kh: k, kw },
            Kind::Conv { kh, .. } => Kind::Conv { kh, kw: k },
            other => other,
        }
    }
}

/// Keep forks pointing at the same layer after an insert (+1) or removal (-1) at `at`.
fn shift_forks(branches: &mut [Branch], branch: usize, at: usize, by: i64) {
    for b in branches.iter_mut() {
        if let Some((fb, fl)) = &mut b.fork {
            if *fb == branch && *fl > at {
                *fl = (*fl as i64 + by).max(0) as usize;
            }
        }
    }
}
