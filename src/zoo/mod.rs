//! The reference zoo: one file per family, each reading like its paper's table, and a
//! registry that finds models by the names users know (aliases included).
//!
//! Each model's published figure is reproduced exactly (params) and within 0.5% (MACs);
//! where a source counts differently the model's doc comment says how, and
//! `tests/zoo_published.rs` asserts the explained value. Two differences recur:
//! Keras' totals include batch-norm running statistics (non-trainable), and timm's
//! benchmark GMACs come from fvcore, which adds 2 per batch-norm element at inference.

pub mod blocks;
mod densenet;
mod efficientnet;
mod googlenet;
mod inception;
mod mlp;
mod mobilenet;
mod plain;
pub(crate) mod resnet;
mod shufflenet;
mod squeezenet;
mod synnet;
mod xception;

use crate::graph::{GraphError, Net, Shape};
use std::sync::OnceLock;

/// A published figure that our definition reproduces (params exactly, MACs within 0.5%).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Published {
    /// Where the figure comes from, e.g. `torchvision 0.29.2`.
    pub source: &'static str,
    /// Trainable parameters; `None` where not published.
    pub params: Option<u64>,
    /// Multiply-accumulates per image, in units of 1e9; `None` where not published.
    pub gmacs: Option<f64>,
}

impl Published {
    /// Our counts reproduce this figure: params exactly, MACs within 0.5% or within the
    /// rounding of a figure published to three decimals (torchvision prints 0.057 for
    /// MobileNetV3-Small's 0.0565 GMACs).
    pub fn matches(&self, params: u64, macs: u64) -> bool {
        let gmacs = macs as f64 / 1e9;
        self.params.is_none_or(|p| p == params)
            && self.gmacs.is_none_or(|g| (gmacs - g).abs() <= (0.005 * g).max(0.0005 + 1e-12))
    }
}

/// Where the published figures come from.
pub mod sources {
    pub const TORCHVISION: &str = "torchvision 0.29.2";
    /// Counted by us with real torchvision where it publishes no figure.
    pub const TORCHVISION_COMPUTED: &str = "torchvision 0.29.2 (computed: tests/reference/torch_counts.csv)";
    /// Counted by us with real timm.
    pub const TIMM_COMPUTED: &str = "timm 1.0.31 (computed: tests/reference/torch_counts.csv)";
    pub const DLBS: &str = "DLBS docs/models/models.md";
}

/// A published parameter count and GMACs figure.
fn published(source: &'static str, params: u64, gmacs: f64) -> Option<Published> {
    Some(Published { source, params: Some(params), gmacs: Some(gmacs) })
}

/// A published parameter count without a MAC figure.
fn published_params(source: &'static str, params: u64) -> Option<Published> {
    Some(Published { source, params: Some(params), gmacs: None })
}

pub type BuildFn = fn(&Shape) -> Result<Net, GraphError>;

#[derive(Debug, Clone)]
pub struct ZooModel {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub family: &'static str,
    /// Default per-sample input.
    pub input: &'static [usize],
    /// One line on what this definition is (and which seed document names it).
    pub summary: &'static str,
    pub published: Option<Published>,
    /// `None` for models listed but not buildable (with the reason in `summary`).
    pub build: Option<BuildFn>,
}

impl ZooModel {
    pub fn default_input(&self) -> Shape {
        Shape(self.input.to_vec())
    }

    /// Build at the default input or at `input`.
    pub fn build(&self, input: Option<&Shape>) -> Result<Net, ZooError> {
        let build = self
            .build
            .ok_or_else(|| ZooError::Unavailable { name: self.name.to_string(), why: self.summary.to_string() })?;
        let input = input.cloned().unwrap_or_else(|| self.default_input());
        if input.rank() != self.input.len() {
            return Err(ZooError::Build {
                name: self.name.to_string(),
                error: GraphError::new(
                    "input",
                    None,
                    format!(
                        "{} takes a {}-dimensional input such as {}, got {}",
                        self.name,
                        self.input.len(),
                        self.default_input(),
                        input
                    ),
                ),
            });
        }
        build(&input).map_err(|error| ZooError::Build { name: self.name.to_string(), error })
    }
}

/// The entries of one family at one default input.
pub(crate) struct Family {
    name: &'static str,
    input: &'static [usize],
}

impl Family {
    pub(crate) const fn new(name: &'static str, input: &'static [usize]) -> Family {
        Family { name, input }
    }

    pub(crate) fn model(
        &self,
        name: &'static str,
        aliases: &'static [&'static str],
        summary: &'static str,
        published: Option<Published>,
        build: BuildFn,
    ) -> ZooModel {
        ZooModel { name, aliases, family: self.name, input: self.input, summary, published, build: Some(build) }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ZooError {
    Unknown { name: String, suggestions: Vec<String> },
    Unavailable { name: String, why: String },
    Build { name: String, error: GraphError },
}

impl std::fmt::Display for ZooError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ZooError::Unknown { name, suggestions } => {
                write!(f, "`{name}` is neither a zoo model nor a model file")?;
                if !suggestions.is_empty() {
                    write!(f, "; did you mean {}?", suggestions.join(", "))?;
                }
                write!(f, " (`synprof zoo` lists the models)")
            }
            ZooError::Unavailable { name, why } => write!(f, "`{name}` is listed but not available: {why}"),
            ZooError::Build { name, error } => write!(f, "{name} cannot be built at this input: {error}"),
        }
    }
}

impl std::error::Error for ZooError {}

/// Every model, in the order `synprof zoo` lists them.
pub fn registry() -> &'static [ZooModel] {
    static REGISTRY: OnceLock<Vec<ZooModel>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut all = Vec::new();
        all.extend(synnet::models());
        all.extend(resnet::models());
        all.extend(plain::models());
        all.extend(mlp::models());
        all.extend(googlenet::models());
        all.extend(inception::models());
        all.extend(densenet::models());
        all.extend(mobilenet::models());
        all.extend(shufflenet::models());
        all.extend(squeezenet::models());
        all.extend(efficientnet::models());
        all.extend(xception::models());
        all
    })
}

fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace(['-', ' '], "_")
}

/// The models AI Matrix benchmarks (its five CNNs), then DLBS's (deep_speech2 left out:
/// recurrent, not in the IR): the mimic targets its tests and bench cover.
pub const AI_MATRIX_AND_DLBS: &[&str] = &[
    "googlenet",
    "resnet50",
    "resnet152",
    "densenet121",
    "synnet",
    "alexnet",
    "alexnet_owt",
    "overfeat",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "googlenet_bvlc",
    "inception_v3",
    "inception_v4",
    "inception_resnet_v2",
    "resnet18",
    "resnet34",
    "resnet101",
    "resnet200",
    "resnet269",
    "acoustic_model",
    "deep_mnist",
];

/// Find a model by name or alias (case-insensitive, `-` = `_`).
pub fn find(name: &str) -> Result<&'static ZooModel, ZooError> {
    let key = normalize(name);
    registry()
        .iter()
        .find(|m| normalize(m.name) == key || m.aliases.iter().any(|a| normalize(a) == key))
        .ok_or_else(|| ZooError::Unknown { name: name.to_string(), suggestions: suggest(&key) })
}

/// Build a zoo model at its default input or at `input`.
pub fn build(name: &str, input: Option<&Shape>) -> Result<Net, ZooError> {
    find(name)?.build(input)
}

fn suggest(key: &str) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = registry()
        .iter()
        .flat_map(|m| std::iter::once(m.name).chain(m.aliases.iter().copied()))
        .map(|n| (edit_distance(key, &normalize(n)), n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 4) || normalize(n).starts_with(key))
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, n)| n.to_string()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + (ca != cb) as usize).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
