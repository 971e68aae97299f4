//! SGD with momentum in place (PyTorch's form: `v = mu v + g; p -= lr v`), one pass over
//! the parameter, its velocity and its gradient, on the conv threads.
//!
//! As candle ops the step was five passes and three new tensors per parameter (`v * mu`,
//! `+ g`, `v * lr`, `p - lr v`, and `Var::set` copying the result back): about 6% of a
//! ResNet-50 training step. The velocity is the optimiser's own buffer here, not a tensor.

use super::isa::widest_vectors;
use super::threads::Threads;
use candle_core::{bail, CpuStorage, InplaceOp2, Layout, Result};
use std::sync::Mutex;

/// Elements per work item.
const CHUNK: usize = 1 << 15;

widest_vectors! {
    fn step_serial(p: &mut [f32], v: &mut [f32], g: &[f32], lr: f32, mu: f32) {
        for ((p, v), &g) in p.iter_mut().zip(v.iter_mut()).zip(g) {
            *v = *v * mu + g;
            *p -= *v * lr;
        }
    }
}

/// One parameter's update, applied to the parameter's tensor with its gradient:
/// `param.inplace_op2(&grad, &SgdStep { .. })`.
pub struct SgdStep<'a> {
    /// The parameter's velocity (zeros before the first step), as long as the parameter.
    pub velocity: Mutex<&'a mut [f32]>,
    pub learning_rate: f32,
    pub momentum: f32,
    pub threads: &'static Threads,
}

impl InplaceOp2 for SgdStep<'_> {
    fn name(&self) -> &'static str {
        "sgd-momentum"
    }

    fn cpu_fwd(&self, ps: &mut CpuStorage, pl: &Layout, gs: &CpuStorage, gl: &Layout) -> Result<()> {
        let (CpuStorage::F32(p), CpuStorage::F32(g)) = (ps, gs) else {
            bail!("SGD step: f32 parameters and gradients only")
        };
        let n = pl.shape().elem_count();
        let (Some((p0, p1)), Some((g0, g1))) = (pl.contiguous_offsets(), gl.contiguous_offsets()) else {
            bail!("SGD step: a parameter or gradient that is not contiguous")
        };
        let mut velocity = self.velocity.lock().unwrap_or_else(|e| e.into_inner());
        if p1 - p0 != n || g1 - g0 != n || velocity.len() != n {
            bail!("SGD step: {n} parameters, {} gradients, {} velocities", g1 - g0, velocity.len())
        }
        let (p, g, v) = (&mut p[p0..p1], &g[g0..g1], &mut **velocity);
        let (lr, mu) = (self.learning_rate, self.momentum);
        if n <= CHUNK || self.threads.count() == 1 {
            step_serial(p, v, g, lr, mu);
            return Ok(());
        }
        let pieces: Vec<Mutex<(&mut [f32], &mut [f32])>> =
            p.chunks_mut(CHUNK).zip(v.chunks_mut(CHUNK)).map(Mutex::new).collect();
        self.threads.for_each(pieces.len(), &|i| {
            let mut piece = pieces[i].lock().unwrap_or_else(|e| e.into_inner());
            let (p, v) = &mut *piece;
            let len = p.len();
            step_serial(p, v, &g[i * CHUNK..][..len], lr, mu);
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Three steps on a parameter of several chunks (two threads) against PyTorch's update
    /// written out; a second parameter's velocity stays its own.
    #[test]
    fn three_steps_follow_the_definition() {
        let threads: &'static Threads = Box::leak(Box::new(Threads::new(2).unwrap()));
        let n = 2 * CHUNK + 123;
        let init: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
        let grad =
            |step: usize| -> Vec<f32> { (0..n).map(|i| ((i * 13 + step * 7) % 17) as f32 / 8.0 - 1.0).collect() };
        let p = Tensor::from_vec(init.clone(), n, &Device::Cpu).unwrap();
        let (lr, mu) = (0.05f32, 0.9f32);
        let mut velocity = vec![0f32; n];
        let (mut want_p, mut want_v) = (init.clone(), vec![0f32; n]);
        for step in 0..3 {
            let g = grad(step);
            let op = SgdStep { velocity: Mutex::new(&mut velocity), learning_rate: lr, momentum: mu, threads };
            p.inplace_op2(&Tensor::from_vec(g.clone(), n, &Device::Cpu).unwrap(), &op).unwrap();
            for i in 0..n {
                want_v[i] = want_v[i] * mu + g[i];
                want_p[i] -= want_v[i] * lr;
            }
        }
        let got: Vec<f32> = p.to_vec1().unwrap();
        assert!(got.iter().zip(&want_p).all(|(a, b)| a.to_bits() == b.to_bits()), "parameters");
        assert!(velocity.iter().zip(&want_v).all(|(a, b)| a.to_bits() == b.to_bits()), "velocities");
        assert!(got.iter().zip(&init).filter(|(a, b)| a != b).count() > n / 2, "the parameter moved");
    }

    /// A gradient of another length is an error naming the counts, not a partial update.
    #[test]
    fn mismatched_lengths_are_an_error() {
        let threads: &'static Threads = Box::leak(Box::new(Threads::new(1).unwrap()));
        let p = Tensor::zeros(8, candle_core::DType::F32, &Device::Cpu).unwrap();
        let g = Tensor::ones(8, candle_core::DType::F32, &Device::Cpu).unwrap();
        let mut velocity = vec![0f32; 7];
        let op = SgdStep { velocity: Mutex::new(&mut velocity), learning_rate: 0.1, momentum: 0.9, threads };
        let err = p.inplace_op2(&g, &op).unwrap_err().to_string();
        assert!(err.contains("8 parameters") && err.contains("7 velocities"), "{err}");
        assert_eq!(p.to_vec1::<f32>().unwrap(), vec![0.0; 8]);
    }
}
