//! A real training step: forward with batch statistics, softmax cross-entropy against
//! random labels, backward, SGD with momentum (PyTorch's form: `v = mu v + g; p -= lr v`).
//!
//! * The backward is synprof's reverse pass over the lowered layers (`exec::backward`) on
//!   the CPU at f32, candle's autograd elsewhere ([`Trainer::backward_name`] says which).
//! * On the CPU at f32 the update is one in-place pass per parameter (`cpu::SgdStep`), its
//!   velocity the optimiser's own buffer; elsewhere candle ops.
//!
//! A final softmax is folded into the loss. Batch-norm running statistics are not updated: they do not enter the step's loss or
//! gradients, and their update is a few elementwise ops per layer.

use super::backward::{self, ParamGrads};
use super::lower::{cross_entropy, logits, Layer, Lowered, Phase};
use super::ExecError;
use crate::graph::{Net, Op};
use crate::weights::{synthetic_input, synthetic_labels, Weights};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy)]
pub struct Sgd {
    pub learning_rate: f64,
    pub momentum: f64,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd { learning_rate: 0.01, momentum: 0.9 }
    }
}

pub struct Trainer {
    pub lowered: Lowered,
    /// Trainable parameters, in node order.
    pub params: Vec<(String, Var)>,
    velocity: Velocity,
    sgd: Sgd,
    input: Tensor,
    one_hot: Tensor,
    dropout_rng: ChaCha8Rng,
    seed: u64,
    /// Apply dropout masks (on by default; off to compare gradients with a reference).
    pub dropout: bool,
    /// Why the step's backward is candle's autograd, or `None` where it is synprof's
    /// reverse pass over the lowered layers (`exec::backward`).
    pub autograd_because: Option<String>,
}

/// The optimiser's momentum buffers: on the CPU at f32 its own (each step one in-place
/// pass, `cpu::SgdStep`), else candle tensors.
enum Velocity {
    InPlace { buffers: Vec<Vec<f32>>, threads: &'static crate::exec::cpu::Threads },
    Tensors(Vec<Option<Tensor>>),
}

/// A step's parameter gradients, from either backward.
enum Grads {
    Autograd(GradStore),
    Reverse(ParamGrads),
}

impl Grads {
    fn get(&self, param: &Tensor) -> Option<&Tensor> {
        match self {
            Grads::Autograd(g) => g.get(param),
            Grads::Reverse(g) => g.get(param),
        }
    }
}

/// A dropout mask for `x` from the seeded stream on the host (candle's CPU RNG cannot be
/// seeded): 0 with probability `p`, else `1 / (1 - p)`.
fn dropout_mask(rng: &mut ChaCha8Rng, x: &Tensor, p: f64) -> candle_core::Result<Tensor> {
    let keep: Vec<f32> =
        (0..x.elem_count()).map(|_| if rng.random::<f64>() < p { 0.0 } else { (1.0 / (1.0 - p)) as f32 }).collect();
    Tensor::from_vec(keep, x.shape(), x.device())?.to_dtype(x.dtype())
}

fn make_var(t: &mut Tensor, params: &mut Vec<(String, Var)>, name: String) -> candle_core::Result<()> {
    let var = Var::from_tensor(t)?;
    *t = var.as_tensor().clone();
    params.push((name, var));
    Ok(())
}

impl Trainer {
    /// Prepare `net` for training on a fixed synthetic batch (input and labels from `seed`).
    pub fn new(
        net: &Net,
        weights: &Weights,
        device: &Device,
        dtype: DType,
        batch: usize,
        seed: u64,
        sgd: Sgd,
    ) -> Result<Trainer, ExecError> {
        let classes = net.nodes[net.outputs[0]].shape.elements() as usize;
        if classes < 2 {
            return Err(ExecError::new(
                "training needs a first output with at least 2 classes for the cross-entropy loss",
            ));
        }
        // A final softmax belongs to the loss: cross-entropy on its input (what Keras does for
        // categorical cross-entropy on probabilities); on probabilities as logits it would stall.
        let trimmed;
        let net = match net.nodes[net.outputs[0]].op {
            Op::Softmax if net.outputs.len() == 1 => {
                let softmax = &net.nodes[net.outputs[0]];
                let logits = net.nodes[softmax.inputs[0]].name.clone();
                let raw = net.to_raw().into_iter().filter(|n| n.name != softmax.name).collect();
                trimmed = Net::from_raw(&net.name, raw, Some(vec![logits]), None)
                    .map_err(|e| ExecError::new(e.to_string()))?;
                &trimmed
            }
            _ => net,
        };
        let mut lowered = Lowered::new(net, weights, device, dtype, Phase::Training)?;
        let mut params = Vec::new();
        for (node, layer) in lowered.net.nodes.iter().zip(lowered.layers.iter_mut()) {
            let name = &node.name;
            let r = match layer {
                Layer::Conv { weight, bias, .. } | Layer::Linear { weight_t: weight, bias } => {
                    make_var(weight, &mut params, format!("{name}.weight")).and_then(|_| match bias {
                        Some(b) => make_var(b, &mut params, format!("{name}.bias")),
                        None => Ok(()),
                    })
                }
                Layer::BatchNormTrain(bn) => make_var(&mut bn.gamma, &mut params, format!("{name}.gamma"))
                    .and_then(|_| make_var(&mut bn.beta, &mut params, format!("{name}.beta"))),
                _ => Ok(()),
            };
            r.map_err(|e| ExecError::at(name, e.to_string()))?;
        }
        let host_input = synthetic_input(net, batch, seed);
        let input = Tensor::from_vec(host_input.data, host_input.shape, device)?.to_dtype(dtype)?;
        let labels = synthetic_labels(batch, classes, seed);
        let mut one_hot = vec![0f32; batch * classes];
        for (i, &l) in labels.iter().enumerate() {
            one_hot[i * classes + l as usize] = 1.0;
        }
        let one_hot = Tensor::from_vec(one_hot, (batch, classes), device)?.to_dtype(dtype)?;
        let velocity = if device.is_cpu() && dtype == DType::F32 {
            let buffers = params.iter().map(|(_, v)| vec![0f32; v.elem_count()]).collect();
            Velocity::InPlace { buffers, threads: super::lower::conv_threads()? }
        } else {
            Velocity::Tensors(vec![None; params.len()])
        };
        let autograd_because = backward::unsupported(&lowered);
        Ok(Trainer {
            autograd_because,
            lowered,
            params,
            velocity,
            sgd,
            input,
            one_hot,
            dropout_rng: ChaCha8Rng::seed_from_u64(seed ^ 0xd50),
            seed,
            dropout: true,
        })
    }

    /// Restart the dropout masks' stream from the trainer's seed: the next step draws the
    /// masks the first one did.
    pub fn restart_dropout(&mut self) {
        self.dropout_rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xd50);
    }

    /// Which backward the steps run, for the record.
    pub fn backward_name(&self) -> String {
        match &self.autograd_because {
            None => "synprof's reverse pass over the lowered layers".into(),
            Some(why) => format!("candle's autograd ({why})"),
        }
    }

    /// The loss on the fixed batch (forward only, dropout on).
    pub fn loss(&mut self) -> Result<Tensor, ExecError> {
        let rng = &mut self.dropout_rng;
        let enabled = self.dropout;
        let mut dropout = |x: &Tensor, p: f64| -> candle_core::Result<Tensor> {
            if !enabled {
                return Ok(x.clone());
            }
            x.mul(&dropout_mask(rng, x, p)?)
        };
        let outputs = self.lowered.forward(&self.input, &mut dropout)?;
        Ok(cross_entropy(&logits(&outputs)?, &self.one_hot)?)
    }

    /// The loss and every parameter's gradient, by the reverse pass where the net has one,
    /// else by candle's autograd.
    fn loss_and_grads(&mut self) -> Result<(Tensor, Grads), ExecError> {
        if self.autograd_because.is_some() {
            let loss = self.loss()?;
            let grads = loss.backward()?;
            return Ok((loss, Grads::Autograd(grads)));
        }
        let (rng, enabled) = (&mut self.dropout_rng, self.dropout);
        let mut mask = |x: &Tensor, p: f64| enabled.then(|| dropout_mask(rng, x, p)).transpose();
        let tape = backward::forward(&self.lowered, &self.input, &mut mask)?;
        let output = tape.outputs(&self.lowered).swap_remove(0);
        // The loss head (batch x classes floats) on candle's autograd: its gradient,
        // (softmax - one_hot) / N, comes out bit for bit as on the autograd path.
        let logits = Var::from_tensor(&logits(std::slice::from_ref(&output))?.detach())?;
        let loss = cross_entropy(logits.as_tensor(), &self.one_hot)?;
        let dlogits =
            loss.backward()?.remove(logits.as_tensor()).ok_or_else(|| ExecError::new("no logits gradient"))?;
        let dlogits = dlogits.reshape(output.shape())?;
        let grads = backward::backward(&self.lowered, tape, vec![(self.lowered.net.outputs[0], dlogits)])?;
        Ok((loss, Grads::Reverse(grads)))
    }

    /// One step; returns the loss before the update.
    pub fn step(&mut self) -> Result<f32, ExecError> {
        let (loss, grads) = self.loss_and_grads()?;
        let Sgd { learning_rate: lr, momentum: mu } = self.sgd;
        for (i, (name, var)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            let at = |e: candle_core::Error| ExecError::at(name, e.to_string());
            match &mut self.velocity {
                Velocity::InPlace { buffers, threads } => {
                    let step = crate::exec::cpu::SgdStep {
                        velocity: std::sync::Mutex::new(&mut buffers[i]),
                        learning_rate: lr as f32,
                        momentum: mu as f32,
                        threads,
                    };
                    var.as_tensor().inplace_op2(&g.contiguous().map_err(at)?, &step).map_err(at)?;
                }
                Velocity::Tensors(velocity) => {
                    let v = match &velocity[i] {
                        Some(v) => (v.affine(mu, 0.0)? + g)?,
                        None => g.clone(),
                    };
                    let updated = (var.as_tensor() - v.affine(lr, 0.0)?).map_err(at)?;
                    var.set(&updated.detach()).map_err(at)?;
                    velocity[i] = Some(v.detach());
                }
            }
        }
        Ok(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?)
    }

    /// Gradients of the loss at the current parameters, by parameter name (for checks).
    pub fn gradients(&mut self) -> Result<Vec<(String, Tensor)>, ExecError> {
        let (_, grads) = self.loss_and_grads()?;
        Ok(self.params.iter().filter_map(|(n, v)| grads.get(v.as_tensor()).map(|g| (n.clone(), g.clone()))).collect())
    }
}
