//! Elementwise ops the lowering fuses at inference: `a + b`, then an [`Epilogue`] (the
//! residual add and ReLU of a ResNet block in one pass instead of two), spread over the
//! conv threads.

use super::{ConvError, Epilogue, Threads};
use std::sync::Mutex;

/// Elements per work item.
const CHUNK: usize = 1 << 14;
/// Below this many elements, one thread does it all.
const SERIAL: usize = 1 << 16;

fn add_act_serial(a: &[f32], b: &[f32], out: &mut [f32], act: Epilogue) {
    let pairs = out.iter_mut().zip(a.iter().zip(b));
    match act {
        Epilogue::None => pairs.for_each(|(o, (x, y))| *o = x + y),
        Epilogue::Relu => pairs.for_each(|(o, (x, y))| *o = (x + y).max(0.0)),
        Epilogue::Relu6 => pairs.for_each(|(o, (x, y))| *o = (x + y).clamp(0.0, 6.0)),
    }
}

/// `out = act(a + b)`, all three of one length.
pub fn add_act(a: &[f32], b: &[f32], out: &mut [f32], act: Epilogue, threads: &Threads) -> Result<(), ConvError> {
    if a.len() != out.len() || b.len() != out.len() {
        return Err(ConvError::new(format!(
            "add of {} and {} elements into {}: the lengths must agree",
            a.len(),
            b.len(),
            out.len()
        )));
    }
    if out.len() < SERIAL || threads.count() == 1 {
        add_act_serial(a, b, out, act);
        return Ok(());
    }
    let chunks: Vec<Mutex<&mut [f32]>> = out.chunks_mut(CHUNK).map(Mutex::new).collect();
    threads.for_each(chunks.len(), &|i| {
        let mut o = chunks[i].lock().unwrap_or_else(|e| e.into_inner());
        let start = i * CHUNK;
        let end = start + o.len();
        add_act_serial(&a[start..end], &b[start..end], &mut o, act);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_act_matches_a_plain_loop() {
        let n = 3 * SERIAL + 17;
        let a: Vec<f32> = (0..n).map(|i| ((i * 7919) % 23) as f32 - 11.0).collect();
        let b: Vec<f32> = (0..n).map(|i| ((i * 104729) % 19) as f32 * 0.5 - 4.0).collect();
        for threads in [Threads::single(), Threads::new(3).unwrap()] {
            for act in [Epilogue::None, Epilogue::Relu, Epilogue::Relu6] {
                for len in [0, 5, n] {
                    let mut out = vec![f32::NAN; len];
                    add_act(&a[..len], &b[..len], &mut out, act, &threads).unwrap();
                    for i in 0..len {
                        let s = a[i] + b[i];
                        let want = match act {
                            Epilogue::None => s,
                            Epilogue::Relu => s.max(0.0),
                            Epilogue::Relu6 => s.clamp(0.0, 6.0),
                        };
                        assert_eq!(out[i], want, "{act:?} at {i} of {len}");
                    }
                }
            }
        }
        assert!(add_act(&a[..3], &b[..4], &mut [0.0; 3], Epilogue::None, &Threads::single()).is_err());
    }
}
