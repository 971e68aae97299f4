//! A readable PyTorch `nn.Module` for a net, rendered from a template
//! (`templates/export/pytorch.py.j2` built in; `--template` to use another): one
//! `nn.Conv2d` / `nn.BatchNorm2d` / `nn.Linear` / `nn.Dropout` attribute per parametric
//! node, and a `forward` that reads like the net, one line per node. Padding that
//! `nn.Conv2d` cannot express (asymmetric, TensorFlow `SAME` with even kernels) becomes
//! an explicit `F.pad`. Parameter names map back to synprof's (`SYNPROF_NAMES`), so the
//! module loads synprof's seeded weights from safetensors.

use crate::graph::{Net, Op, Padding, Pool2d};
use serde::Serialize;

pub const TEMPLATE: &str = include_str!("../../templates/export/pytorch.py.j2");

#[derive(Debug)]
pub struct PytorchError(pub String);

impl std::fmt::Display for PytorchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PytorchError {}

#[derive(Serialize)]
struct Module {
    node: String,
    attr: String,
    ctor: String,
    params: Vec<&'static str>,
}

/// A Python identifier from a node name (`layer1.0.conv1` -> `layer1_0_conv1`), unique.
fn identifier(name: &str, taken: &mut std::collections::HashSet<String>) -> String {
    let mut id: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if id.is_empty() || id.starts_with(|c: char| c.is_ascii_digit()) {
        id.insert(0, 'm');
    }
    let base = id.clone();
    let mut k = 1;
    while !taken.insert(id.clone()) {
        k += 1;
        id = format!("{base}_{k}");
    }
    id
}

fn pair(v: [usize; 2]) -> String {
    format!("({}, {})", v[0], v[1])
}

/// F.pad's order: left, right, top, bottom.
fn pad_tuple(p: &Padding) -> String {
    format!("({}, {}, {}, {})", p.left, p.right, p.top, p.bottom)
}

fn symmetric(p: &Padding) -> bool {
    p.top == p.bottom && p.left == p.right
}

fn class_name(net_name: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in net_name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(if upper { c.to_ascii_uppercase() } else { c });
            upper = false;
        } else {
            upper = true;
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'M');
    }
    out
}

fn pool_line(x: &str, p: &Pool2d, max: bool) -> String {
    let (k, s, ceil) = (pair(p.kernel), pair(p.stride), if p.ceil_mode { "True" } else { "False" });
    let fits = symmetric(&p.padding) && p.padding.top <= p.kernel[0] / 2 && p.padding.left <= p.kernel[1] / 2;
    let pad = format!("({}, {})", p.padding.top, p.padding.left);
    match (max, fits) {
        (true, true) => format!("F.max_pool2d({x}, {k}, {s}, {pad}, ceil_mode={ceil})"),
        (true, false) => format!(
            "F.max_pool2d(F.pad({x}, {}, value=float(\"-inf\")), {k}, {s}, 0, ceil_mode={ceil})",
            pad_tuple(&p.padding)
        ),
        (false, true) => format!(
            "F.avg_pool2d({x}, {k}, {s}, {pad}, ceil_mode={ceil}, count_include_pad={})",
            if p.count_include_pad { "True" } else { "False" }
        ),
        (false, false) if p.count_include_pad => {
            format!("F.avg_pool2d(F.pad({x}, {}), {k}, {s}, 0, ceil_mode={ceil})", pad_tuple(&p.padding))
        }
        (false, false) => format!("avg_pool_valid_only({x}, {k}, {s}, {}, {ceil})", pad_tuple(&p.padding)),
    }
}

/// Render the module source; `template` replaces the built-in one.
pub fn to_pytorch(net: &Net, source: &str, template: Option<&str>) -> Result<String, PytorchError> {
    let mut taken = std::collections::HashSet::new();
    let mut modules = Vec::new();
    let mut forward = Vec::new();
    let var = |i: usize| format!("x{i}");
    for (i, node) in net.nodes.iter().enumerate() {
        let ins: Vec<String> = node.inputs.iter().map(|&p| var(p)).collect();
        let x = ins.first().cloned().unwrap_or_default();
        let channels_in = node.inputs.first().map(|&p| net.nodes[p].shape.0[0]).unwrap_or(0);
        let mut module = |ctor: String, params: Vec<&'static str>| {
            let attr = identifier(&node.name, &mut taken);
            modules.push(Module { node: node.name.clone(), attr: attr.clone(), ctor, params });
            format!("self.{attr}")
        };
        let expr = match &node.op {
            Op::Input { .. } => "x".to_string(),
            Op::Conv2d(c) => {
                let fits = symmetric(&c.padding);
                let padding = if fits { pair([c.padding.top, c.padding.left]) } else { "0".into() };
                let m = module(
                    format!(
                        "nn.Conv2d({channels_in}, {}, kernel_size={}, stride={}, padding={padding}, dilation={}, groups={}, bias={})",
                        c.out_channels,
                        pair(c.kernel),
                        pair(c.stride),
                        pair(c.dilation),
                        c.groups,
                        if c.bias { "True" } else { "False" }
                    ),
                    if c.bias { vec!["weight", "bias"] } else { vec!["weight"] },
                );
                if fits {
                    format!("{m}({x})")
                } else {
                    format!("{m}(F.pad({x}, {}))", pad_tuple(&c.padding))
                }
            }
            Op::BatchNorm { eps } => {
                let m = module(
                    format!("nn.BatchNorm2d({channels_in}, eps={eps})"),
                    vec!["weight", "bias", "running_mean", "running_var"],
                );
                format!("{m}({x})")
            }
            Op::Relu => format!("F.relu({x})"),
            Op::Relu6 => format!("F.relu6({x})"),
            Op::Sigmoid => format!("torch.sigmoid({x})"),
            Op::Tanh => format!("torch.tanh({x})"),
            Op::Silu => format!("F.silu({x})"),
            Op::HardSwish => format!("F.hardswish({x})"),
            Op::HardSigmoid => format!("F.hardsigmoid({x})"),
            Op::Gelu => format!("F.gelu({x})"),
            Op::MaxPool2d(p) => pool_line(&x, p, true),
            Op::AvgPool2d(p) => pool_line(&x, p, false),
            Op::GlobalAvgPool => format!("{x}.mean(dim=(2, 3), keepdim=True)"),
            Op::Lrn { size, alpha, beta, k } => format!("F.local_response_norm({x}, {size}, {alpha}, {beta}, {k})"),
            Op::Add => ins.join(" + "),
            Op::Mul => ins.join(" * "),
            Op::Scale { factor } => format!("{x} * {factor}"),
            Op::Concat { axis } => format!("torch.cat([{}], dim={axis})", ins.join(", ")),
            Op::ChannelShuffle { groups } => format!("channel_shuffle({x}, {groups})"),
            Op::ChannelSlice { start, end } => format!("{x}[:, {start}:{end}]"),
            Op::Flatten => format!("torch.flatten({x}, 1)"),
            Op::Linear { out_features, bias } => {
                let features_in: usize = node.inputs.first().map_or(0, |&p| net.nodes[p].shape.0.iter().product());
                let m = module(
                    format!("nn.Linear({features_in}, {out_features}, bias={})", if *bias { "True" } else { "False" }),
                    if *bias { vec!["weight", "bias"] } else { vec!["weight"] },
                );
                format!("{m}({x})")
            }
            Op::Dropout { p } => {
                let m = module(format!("nn.Dropout(p={p})"), vec![]);
                format!("{m}({x})")
            }
            Op::Softmax => format!("F.softmax({x}, dim=1)"),
        };
        forward.push(format!("{} = {expr}  # {}", var(i), node.name));
    }
    let output = net.outputs.first().map_or_else(|| var(net.nodes.len() - 1), |&o| var(o));
    let mut env = minijinja::Environment::new();
    env.add_template("pytorch", template.unwrap_or(TEMPLATE))
        .map_err(|e| PytorchError(format!("the PyTorch template does not parse: {e}")))?;
    let analysis = crate::analysis::analyze(net, 1, crate::Dtype::F32);
    env.get_template("pytorch")
        .and_then(|t| {
            t.render(minijinja::context! {
                name => net.name.clone(),
                class_name => class_name(&net.name),
                version => env!("CARGO_PKG_VERSION"),
                source => source,
                params => analysis.totals.params,
                input_shape => net.input_shape().0.clone(),
                modules => minijinja::value::Serde(&modules),
                forward => forward,
                output => output,
            })
        })
        .map_err(|e| PytorchError(format!("rendering the PyTorch template: {e}")))
}
