//! The training step's reverse pass over the lowered layers (the CPU's f32 path).
//!
//! candle's autograd (`Tensor::backward`) adds every gradient into a fresh zeros tensor
//! (`GradStore::or_insert`: a fill and an add per gradient, where one gradient is nearly
//! always all there is), and its graph keeps every activation until the whole pass is done.
//! Here each node's gradient is the one its readers gave (summed only where several read
//! it), and each node's output is dropped as soon as its own backward has run.
//!
//! * The packed layers' backwards are the kernels candle's autograd calls through their
//!   custom ops (`cpu::conv2d_train_grads`, `cpu::BatchNormTrainOp::grads`, the fused add's
//!   and the max pool's `bwd`); a lone ReLU or ReLU6 takes the fused add's activation
//!   gradient (`lower::activation_grad`).
//! * Linear, global average pool, concat, add, flatten and dropout are written out below.
//! * Any other layer (average pools, LRN, channel shuffles, SE's multiply, other
//!   activations) runs its backward on candle's autograd, that layer alone
//!   ([`local_autograd`]).
//!
//! Nets off the CPU's f32 path train on candle's autograd ([`unsupported`] says why), as
//! does every net where `SYNPROF_TRAIN_BACKWARD=candle`. Both give the same gradients
//! (`tests/exec_train.rs`).

use super::lower::{activation_grad, conv_threads, epilogue_of, Layer, Lowered};
use super::ExecError;
use candle_core::{CustomOp1, CustomOp2, DType, Tensor, TensorId, Var};
use std::collections::HashMap;

/// The environment variable that sends every net to candle's autograd (`candle`).
pub const BACKWARD_ENV: &str = "SYNPROF_TRAIN_BACKWARD";

/// Why `lowered` does not run this reverse pass (it is off the CPU's f32 path, or
/// [`BACKWARD_ENV`] says so), or `None` where it does.
pub fn unsupported(lowered: &Lowered) -> Option<String> {
    if std::env::var(BACKWARD_ENV).is_ok_and(|v| v == "candle") {
        return Some(format!("{BACKWARD_ENV}=candle"));
    }
    if !lowered.device.is_cpu() || lowered.dtype != DType::F32 {
        return Some("the reverse pass runs on the CPU at f32".into());
    }
    None
}

/// What the reverse pass reads from the forward: every node's output, and each dropout's
/// mask (`None` where dropout was off).
pub struct Tape {
    values: Vec<Option<Tensor>>,
    masks: Vec<Option<Tensor>>,
}

impl Tape {
    /// The net's outputs, in `net.outputs` order.
    pub fn outputs(&self, lowered: &Lowered) -> Vec<Tensor> {
        lowered.net.outputs.iter().map(|&o| self.values[o].clone().expect("outputs are computed")).collect()
    }
}

/// The forward of a training step, keeping what [`backward`] reads. `mask(x, p)` gives a
/// dropout mask for `x` (`keep / (1 - p)` or 0 per element), or `None` for no dropout.
pub fn forward(
    lowered: &Lowered,
    input: &Tensor,
    mask: &mut dyn FnMut(&Tensor, f64) -> candle_core::Result<Option<Tensor>>,
) -> Result<Tape, ExecError> {
    let n = lowered.layers.len();
    let mut tape = Tape { values: vec![None; n], masks: vec![None; n] };
    let mut no_dropout = |x: &Tensor, _: f64| Ok(x.clone());
    for i in 0..n {
        let name = &lowered.net.nodes[i].name;
        let at = |e: candle_core::Error| ExecError::at(name, e.to_string());
        let inputs = lowered.layer_inputs(i, &tape.values);
        let out = match &lowered.layers[i] {
            Layer::Dropout(p) => match mask(inputs[0], *p).map_err(at)? {
                Some(m) => {
                    let y = inputs[0].mul(&m).map_err(at)?;
                    tape.masks[i] = Some(m);
                    y
                }
                None => inputs[0].clone(),
            },
            _ => lowered.run_layer(i, input, &inputs, &mut no_dropout).map_err(at)?,
        };
        tape.values[i] = Some(out);
    }
    Ok(tape)
}

/// Parameter gradients, by the parameter's tensor (as candle's `GradStore::get`).
#[derive(Default)]
pub struct ParamGrads(HashMap<TensorId, Tensor>);

impl ParamGrads {
    pub fn get(&self, param: &Tensor) -> Option<&Tensor> {
        self.0.get(&param.id())
    }

    /// Add `grad` to `param`'s gradient (a parameter that two layers share gets both).
    fn insert(&mut self, param: &Tensor, grad: Tensor) -> candle_core::Result<()> {
        let sum = match self.0.remove(&param.id()) {
            Some(earlier) => earlier.add(&grad)?,
            None => grad,
        };
        self.0.insert(param.id(), sum);
        Ok(())
    }
}

/// The reverse pass from the gradients of the given nodes' outputs (node index, gradient):
/// every parameter's gradient. Consumes the tape, dropping each node's output once its own
/// backward has run.
pub fn backward(lowered: &Lowered, mut tape: Tape, seeds: Vec<(usize, Tensor)>) -> Result<ParamGrads, ExecError> {
    let nodes = &lowered.net.nodes;
    // Whether a node's output depends on a parameter: only then is its gradient needed.
    let mut needs = vec![false; nodes.len()];
    for i in 0..nodes.len() {
        let own = matches!(lowered.layers[i], Layer::Conv { .. } | Layer::BatchNormTrain(_) | Layer::Linear { .. });
        needs[i] = own || nodes[i].inputs.iter().any(|&p| needs[p]);
    }
    let mut grads: Vec<Option<Tensor>> = vec![None; nodes.len()];
    for (i, g) in seeds {
        grads[i] = Some(g);
    }
    let mut params = ParamGrads::default();
    for i in (0..nodes.len()).rev() {
        let Some(g) = grads[i].take() else {
            tape.values[i] = None;
            continue;
        };
        let name = &nodes[i].name;
        let at = |e: candle_core::Error| ExecError::at(name, format!("backward: {e}"));
        let ins = &nodes[i].inputs;
        let value = |p: usize| tape.values[p].as_ref().expect("inputs are kept until their backward");
        let to = |grads: &mut Vec<Option<Tensor>>, p: usize, g: Tensor| -> Result<(), ExecError> {
            if needs[p] {
                grads[p] = Some(match grads[p].take() {
                    Some(sum) => sum.add(&g).map_err(at)?,
                    None => g,
                });
            }
            Ok(())
        };
        match &lowered.layers[i] {
            Layer::Input => {}
            Layer::Identity => to(&mut grads, ins[0], g)?,
            Layer::PassInput(k) => to(&mut grads, ins[*k], g)?,
            Layer::Conv { weight, bias, train: Some(op), .. } => {
                if let Some(b) = bias {
                    params.insert(b, g.sum((0, 2, 3)).map_err(at)?.reshape(b.shape()).map_err(at)?).map_err(at)?;
                }
                let (dx, dw) =
                    super::cpu::conv2d_train_grads(value(ins[0]), weight, op, &g, needs[ins[0]], true).map_err(at)?;
                params.insert(weight, dw.expect("asked for")).map_err(at)?;
                if let Some(dx) = dx {
                    to(&mut grads, ins[0], dx)?;
                }
            }
            Layer::BatchNormTrain(bn) => {
                let [dx, dgamma, dbeta] = super::lower::batch_norm_train_grads(value(ins[0]), bn, &g).map_err(at)?;
                params.insert(&bn.gamma, dgamma).map_err(at)?;
                params.insert(&bn.beta, dbeta).map_err(at)?;
                to(&mut grads, ins[0], dx)?;
            }
            Layer::AddAct(op) => {
                let (a, b) = (value(ins[0]), value(ins[1]));
                let (da, db) = op.bwd(a, b, value(i), &g).map_err(at)?;
                to(&mut grads, ins[0], da.expect("the fused add passes both"))?;
                to(&mut grads, ins[1], db.expect("the fused add passes both"))?;
            }
            Layer::PackedPool(op) => {
                let dx = op.bwd(value(ins[0]), value(i), &g).map_err(at)?.expect("max pools pass a gradient");
                to(&mut grads, ins[0], dx)?;
            }
            Layer::Activation(op) if let Some(act) = epilogue_of(op) => {
                let threads = conv_threads()?;
                let dx = activation_grad(value(i), &g, act, threads).map_err(at)?;
                to(&mut grads, ins[0], dx)?;
            }
            Layer::GlobalAvgPool => {
                let x = value(ins[0]);
                let (_, _, h, w) = x.dims4().map_err(at)?;
                let dx = g.affine(1.0 / (h * w) as f64, 0.0).and_then(|d| d.broadcast_as(x.shape())?.contiguous());
                to(&mut grads, ins[0], dx.map_err(at)?)?;
            }
            Layer::Add => {
                for &p in ins {
                    to(&mut grads, p, g.clone())?;
                }
            }
            Layer::Concat(axis) => {
                let mut start = 0;
                for &p in ins {
                    let len = value(p).dim(*axis).map_err(at)?;
                    to(&mut grads, p, g.narrow(*axis, start, len).and_then(|d| d.contiguous()).map_err(at)?)?;
                    start += len;
                }
            }
            Layer::Flatten => {
                let dx = g.reshape(value(ins[0]).shape()).map_err(at)?;
                to(&mut grads, ins[0], dx)?;
            }
            Layer::Linear { weight_t, bias } => {
                // y = x W^T + b, with x [N, F] and weight_t (W^T) [F, M].
                let x = value(ins[0]);
                let x2 = x.flatten_from(1).map_err(at)?;
                if let Some(b) = bias {
                    params.insert(b, g.sum(0).map_err(at)?.reshape(b.shape()).map_err(at)?).map_err(at)?;
                }
                params.insert(weight_t, x2.t().and_then(|xt| xt.matmul(&g)).map_err(at)?).map_err(at)?;
                let dx = g.matmul(&weight_t.t().map_err(at)?).and_then(|d| d.reshape(x.shape())).map_err(at)?;
                to(&mut grads, ins[0], dx)?;
            }
            Layer::Dropout(_) => {
                let dx = match &tape.masks[i] {
                    Some(m) => g.mul(m).map_err(at)?,
                    None => g,
                };
                to(&mut grads, ins[0], dx)?;
            }
            _ => {
                let inputs: Vec<&Tensor> = ins.iter().map(|&p| value(p)).collect();
                let (dxs, store) = local_autograd(lowered, i, &inputs, &g).map_err(at)?;
                for (&p, dx) in ins.iter().zip(dxs) {
                    if let Some(dx) = dx {
                        to(&mut grads, p, dx)?;
                    }
                }
                for param in layer_params(&lowered.layers[i]) {
                    if let Some(dp) = store.get(param) {
                        params.insert(param, dp.clone()).map_err(at)?;
                    }
                }
            }
        }
        // This node's output has no reader left whose backward has not run.
        tape.values[i] = None;
    }
    Ok(params)
}

/// Layer `i`'s backward by candle's autograd on that layer alone: its forward again on
/// fresh variables holding its inputs, then the gradient of `sum(y * dy)`, which is `dy`
/// at `y` exactly. For the layers without a backward above (average pools, LRN, channel
/// shuffles, SE's multiply, ...): the gradients candle's autograd of the whole net gives.
/// Returns each input's gradient and the store holding the layer's parameters' ones.
fn local_autograd(
    lowered: &Lowered,
    i: usize,
    inputs: &[&Tensor],
    dy: &Tensor,
) -> candle_core::Result<(Vec<Option<Tensor>>, candle_core::backprop::GradStore)> {
    let vars = inputs.iter().map(|x| Var::from_tensor(&x.detach())).collect::<candle_core::Result<Vec<_>>>()?;
    let xs: Vec<&Tensor> = vars.iter().map(Var::as_tensor).collect();
    let mut no_dropout = |x: &Tensor, _: f64| Ok(x.clone());
    let y = lowered.run_layer(i, xs[0], &xs, &mut no_dropout)?;
    let store = y.mul(dy)?.sum_all()?.backward()?;
    Ok((xs.iter().map(|x| store.get(x).cloned()).collect(), store))
}

/// The trainable tensors a layer holds.
fn layer_params(layer: &Layer) -> Vec<&Tensor> {
    match layer {
        Layer::Conv { weight, bias, .. } | Layer::Linear { weight_t: weight, bias } => {
            std::iter::once(weight).chain(bias).collect()
        }
        Layer::BatchNormTrain(bn) => vec![&bn.gamma, &bn.beta],
        _ => Vec::new(),
    }
}
