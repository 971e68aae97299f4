//! Measured ceilings: peak matmul FLOP/s and memory bandwidth, by microbenchmark on the
//! device itself (for %-of-peak and roofline ceilings, beside the datasheet's).

use super::Figure;
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    /// "cpu", "cuda:0".
    pub device: String,
    /// "matmul" or "memory bandwidth".
    pub kind: String,
    /// "f32", "tf32", "f16", "bf16".
    pub dtype: String,
    /// GFLOP/s for matmul, GB/s for bandwidth (10^9).
    pub value: f64,
    pub unit: String,
    pub size: String,
    /// The fastest repetition, from which `value` is computed.
    pub best_s: f64,
    pub repeats: usize,
    pub method: String,
}

fn sync(device: &Device) -> Result<(), String> {
    device.synchronize().map_err(|e| format!("synchronize failed: {e}"))
}

/// Time `f` (synchronised) repeatedly for about `budget`; returns (best seconds, repeats).
fn best_of(
    device: &Device,
    budget: Duration,
    f: &mut dyn FnMut() -> Result<(), String>,
) -> Result<(f64, usize), String> {
    let start = Instant::now();
    let (mut best, mut repeats) = (f64::INFINITY, 0);
    while repeats < 3 || (start.elapsed() < budget && repeats < 1000) {
        sync(device)?;
        let t0 = Instant::now();
        f()?;
        sync(device)?;
        best = best.min(t0.elapsed().as_secs_f64());
        repeats += 1;
    }
    Ok((best, repeats))
}

/// Peak matmul rate: square n x n matrices, n doubled (from 512, up to `max_n`) until one
/// product takes a tenth of the budget, then the fastest of repeated products.
pub fn matmul(device: &Device, label: &str, dtype: DType, max_n: usize, budget: Duration) -> Result<Peak, String> {
    let err = |e: candle_core::Error| format!("matmul {dtype:?} on {label}: {e}");
    let make = |n: usize| -> Result<(Tensor, Tensor), String> {
        let a = Tensor::randn(0f32, 1.0, (n, n), device).and_then(|t| t.to_dtype(dtype)).map_err(err)?;
        let b = Tensor::randn(0f32, 1.0, (n, n), device).and_then(|t| t.to_dtype(dtype)).map_err(err)?;
        Ok((a, b))
    };
    let mut n = 512;
    let (mut a, mut b) = make(n)?;
    loop {
        sync(device)?;
        let t0 = Instant::now();
        a.matmul(&b).map_err(err)?;
        sync(device)?;
        if t0.elapsed() >= budget / 10 || n * 2 > max_n {
            break;
        }
        n *= 2;
        (a, b) = make(n)?;
    }
    let (best, repeats) = best_of(device, budget, &mut || a.matmul(&b).map(drop).map_err(err))?;
    Ok(Peak {
        device: label.into(),
        kind: "matmul".into(),
        dtype: dtype_name(dtype).into(),
        value: 2.0 * (n as f64).powi(3) / best / 1e9,
        unit: "GFLOP/s".into(),
        size: format!("{n}x{n} @ {n}x{n}"),
        best_s: best,
        repeats,
        method: "candle Tensor::matmul, 2n^3 FLOP per product, fastest repetition".into(),
    })
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::F64 => "f64",
        _ => "other",
    }
}

/// Device memory bandwidth from `c = a + b` over `elements` f32 (2 reads, 1 write).
pub fn device_bandwidth(device: &Device, label: &str, elements: usize, budget: Duration) -> Result<Peak, String> {
    let err = |e: candle_core::Error| format!("bandwidth on {label}: {e}");
    let a = Tensor::ones(elements, DType::F32, device).map_err(err)?;
    let b = Tensor::ones(elements, DType::F32, device).map_err(err)?;
    let (best, repeats) = best_of(device, budget, &mut || (&a + &b).map(drop).map_err(err))?;
    let bytes = 3.0 * elements as f64 * 4.0;
    Ok(Peak {
        device: label.into(),
        kind: "memory bandwidth".into(),
        dtype: "f32".into(),
        value: bytes / best / 1e9,
        unit: "GB/s".into(),
        size: format!("3 x {} MiB", (elements * 4) >> 20),
        best_s: best,
        repeats,
        method: "c = a + b (candle), 3 x bytes moved, fastest repetition".into(),
    })
}

/// Host memory bandwidth: a STREAM-style triad `a = b + s*c` on `threads` threads over
/// arrays of `elements` f32 each, counted as 3 x 4 bytes per element (no write-allocate).
pub fn host_triad(threads: usize, elements: usize, budget: Duration) -> Peak {
    let threads = threads.max(1);
    let chunk = elements.div_ceil(threads);
    let (mut a, mut b, mut c) = (vec![0f32; elements], vec![0f32; elements], vec![0f32; elements]);
    // first touch on the threads that use the memory (NUMA placement)
    std::thread::scope(|s| {
        for ((a, b), c) in a.chunks_mut(chunk).zip(b.chunks_mut(chunk)).zip(c.chunks_mut(chunk)) {
            s.spawn(move || {
                a.fill(0.0);
                b.fill(1.0);
                c.fill(2.0);
            });
        }
    });
    let start = Instant::now();
    let (mut best, mut repeats) = (f64::INFINITY, 0);
    while repeats < 3 || (start.elapsed() < budget && repeats < 1000) {
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for ((a, b), c) in a.chunks_mut(chunk).zip(b.chunks(chunk)).zip(c.chunks(chunk)) {
                s.spawn(move || {
                    for ((x, y), z) in a.iter_mut().zip(b).zip(c) {
                        *x = y + 3.0 * z;
                    }
                });
            }
        });
        best = best.min(t0.elapsed().as_secs_f64());
        repeats += 1;
    }
    std::hint::black_box(&a);
    Peak {
        device: "cpu".into(),
        kind: "memory bandwidth".into(),
        dtype: "f32".into(),
        value: 3.0 * elements as f64 * 4.0 / best / 1e9,
        unit: "GB/s".into(),
        size: format!("3 x {} MiB", (elements * 4) >> 20),
        best_s: best,
        repeats,
        method: format!("triad a = b + 3c on {threads} threads, 3 x bytes moved, fastest repetition"),
    }
}

/// CPU ceilings: f32 matmul (candle, the process' thread count) and the triad.
pub fn cpu(budget: Duration) -> Vec<Figure<Peak>> {
    let threads = crate::exec::device::cpu_threads().unwrap_or_else(crate::exec::device::available_cores);
    // 128 MiB arrays, far beyond any cache; less where memory is short
    let mut elements = 32usize << 20;
    if let Some(free) = crate::exec::memory::available_bytes() {
        elements = elements.min((free / 4 / 4 / 4) as usize).max(1 << 20);
    }
    vec![
        matmul(&Device::Cpu, "cpu", DType::F32, 4096, budget).into(),
        Figure::Value(host_triad(threads, elements, budget)),
    ]
}

/// GPU ceilings per dtype: f32, tf32 (f32 with reduced-precision tensor cores), f16, bf16
/// matmul, and device memory bandwidth. (Compiled in every build so that it is checked
/// here; it runs with `--features cuda`.)
pub fn cuda(index: usize, budget: Duration) -> Vec<Figure<Peak>> {
    let label = format!("cuda:{index}");
    if !cfg!(feature = "cuda") {
        return vec![Figure::na(format!(
            "{label}: this synprof was built without CUDA: rebuild with `cargo build --release --features cuda`"
        ))];
    }
    let device = match Device::new_cuda(index) {
        Ok(d) => d,
        Err(e) => return vec![Figure::na(format!("cannot open {label}: {e}"))],
    };
    let mut out = Vec::new();
    let tf32_was = candle_core::cuda::gemm_reduced_precision_f32();
    candle_core::cuda::set_gemm_reduced_precision_f32(false);
    out.push(matmul(&device, &label, DType::F32, 16384, budget).into());
    candle_core::cuda::set_gemm_reduced_precision_f32(true);
    out.push(
        matmul(&device, &label, DType::F32, 16384, budget)
            .map(|p| Peak { dtype: "tf32".into(), method: p.method.clone() + " (TF32 tensor cores allowed)", ..p })
            .into(),
    );
    candle_core::cuda::set_gemm_reduced_precision_f32(tf32_was);
    for dtype in [DType::F16, DType::BF16] {
        out.push(matmul(&device, &label, dtype, 16384, budget).into());
    }
    out.push(device_bandwidth(&device, &label, 1 << 28, budget).into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_ceilings_are_measured() {
        let mm = matmul(&Device::Cpu, "cpu", DType::F32, 512, Duration::from_millis(50)).unwrap();
        assert_eq!(mm.size, "512x512 @ 512x512");
        assert!(mm.value > 0.1 && mm.repeats >= 3, "{mm:?}");
        // the same code path the GPU takes, on the CPU
        let bw = device_bandwidth(&Device::Cpu, "cpu", 1 << 20, Duration::from_millis(20)).unwrap();
        assert!(bw.value > 0.1, "{bw:?}");
        let triad = host_triad(2, 1 << 20, Duration::from_millis(20));
        assert!(triad.value > 0.1 && triad.size == "3 x 4 MiB", "{triad:?}");
    }
}
