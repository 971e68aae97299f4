//! Paired A/B timing: two nets in one process, measured in alternating short bursts
//! (A B, then B A, ...), so that whatever slows the machine for seconds or minutes (other
//! tenants, clock changes) slows both alike. Each burst pair gives one ratio B / A; their
//! median is a far steadier figure than two separate cases' images/s on a shared machine.
//! `synprof fidelity` uses it for target against proxy; `synprof paired` for synprof
//! against onnxruntime or PyTorch (the peer kept loaded and warm in its runner process,
//! bursting on request), where two separate runs on a host whose speed drifts by 20-40%
//! within seconds (benches/peers/RESULTS.md) could not tell a 5% difference.

use super::device::{self, DeviceSpec};
use super::external::Peer;
use super::lower::{ConvAlgorithm, Lowered, Phase};
use super::run::{RunOptions, Window};
use super::stats::percentile;
use super::ExecError;
use super::{Backend, Mode};
use crate::graph::Net;
use crate::weights::{synthetic_input, Weights};
use crate::Dtype;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedOptions {
    pub device: DeviceSpec,
    pub dtype: Dtype,
    pub batch: usize,
    /// CPU threads (`None`: all cores; ignored off the CPU).
    pub threads: Option<usize>,
    /// Burst pairs to measure.
    pub bursts: usize,
    /// Each burst runs at least one iteration and at least this long.
    pub burst_seconds: f64,
    /// Warm-up per net before the first burst, seconds (at least one iteration each).
    pub warmup_seconds: f64,
    /// Idle pause before each measured burst, seconds, so that the side before it has gone
    /// quiet. onnxruntime's thread pool spins for about 30 ms after its last run; on a
    /// 2-core host that spin takes a core from the first iterations of the next burst
    /// (synprof's ResNet-50 batch 1 first iteration after an onnxruntime burst: 55-60 ms
    /// against 31 ms, 5% of a 0.5 s burst; benches/peers/RESULTS.md section 12). With the
    /// pause each burst starts from an idle machine, as a process serving alone would.
    #[serde(default = "default_settle_seconds")]
    pub settle_seconds: f64,
    pub seed: u64,
}

fn default_settle_seconds() -> f64 {
    0.1
}

impl Default for PairedOptions {
    fn default() -> Self {
        PairedOptions {
            device: DeviceSpec::Cpu,
            dtype: Dtype::F32,
            batch: 1,
            threads: None,
            bursts: 12,
            burst_seconds: 0.3,
            warmup_seconds: 0.5,
            settle_seconds: default_settle_seconds(),
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedResult {
    pub a: String,
    pub b: String,
    pub options: PairedOptions,
    /// How the CPU convs ran (packed or candle).
    pub conv_algorithm: ConvAlgorithm,
    /// images/s of every burst, in burst-pair order.
    pub a_images_per_s: Vec<f64>,
    pub b_images_per_s: Vec<f64>,
}

impl PairedResult {
    /// B / A of each burst pair.
    pub fn ratios(&self) -> Vec<f64> {
        self.a_images_per_s.iter().zip(&self.b_images_per_s).map(|(a, b)| b / a).collect()
    }

    /// Median of the per-pair ratios, with the 25th and 75th percentiles.
    pub fn ratio_quartiles(&self) -> Option<[f64; 3]> {
        let mut r = self.ratios();
        if r.is_empty() {
            return None;
        }
        r.sort_by(f64::total_cmp);
        Some([percentile(&r, 0.25), percentile(&r, 0.5), percentile(&r, 0.75)])
    }

    pub fn a_median(&self) -> f64 {
        median(&self.a_images_per_s)
    }

    pub fn b_median(&self) -> f64 {
        median(&self.b_images_per_s)
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    percentile(&s, 0.5)
}

/// One net, lowered for inference, with its input.
struct Prepared {
    lowered: Lowered,
    input: Tensor,
}

impl Prepared {
    fn new(net: &Net, o: &PairedOptions, device: &candle_core::Device, conv: ConvAlgorithm) -> Result<Self, ExecError> {
        let dtype = o.device.dtype(o.dtype)?;
        let weights = Weights::init(net, o.seed);
        let phase = Phase::Inference { fold_batch_norm: true };
        let lowered = Lowered::with_conv(net, &weights, device, dtype, phase, conv)
            .map_err(|e| ExecError::new(format!("{}: {e}", net.name)))?;
        let host = synthetic_input(net, o.batch, o.seed);
        let input = Tensor::from_vec(host.data, host.shape, device)?.to_dtype(dtype)?;
        Ok(Prepared { lowered, input })
    }

    /// Run for at least `seconds` (and one iteration); images/s.
    fn burst(&self, seconds: f64, batch: usize, device: &candle_core::Device) -> Result<f64, ExecError> {
        let start = Instant::now();
        let mut iterations = 0usize;
        while iterations == 0 || start.elapsed().as_secs_f64() < seconds {
            self.lowered.infer(&self.input)?;
            device::synchronize(device)?;
            iterations += 1;
        }
        Ok((iterations * batch) as f64 / start.elapsed().as_secs_f64())
    }
}

/// Measure `a` and `b` in alternating bursts (inference, the candle backend).
pub fn run_paired(a: &Net, b: &Net, o: &PairedOptions) -> Result<PairedResult, ExecError> {
    let (device, conv) = check_and_open(o)?;
    let prepared = [Prepared::new(a, o, &device, conv)?, Prepared::new(b, o, &device, conv)?];
    let [a_images_per_s, b_images_per_s] =
        alternate(o, |which, seconds| prepared[which].burst(seconds, o.batch, &device))?;
    Ok(PairedResult {
        a: a.name.clone(),
        b: b.name.clone(),
        options: o.clone(),
        conv_algorithm: prepared[0].lowered.conv_algorithm,
        a_images_per_s,
        b_images_per_s,
    })
}

/// Measure `net` in an external runtime (A: onnxruntime or PyTorch, kept loaded in its
/// runner) against synprof (B: candle with the packed CPU convs, in this process), in
/// alternating bursts: B / A is synprof's speed over the peer's, each pair measured
/// within a second on the same machine state. Inference.
pub fn run_paired_with_peer(net: &Net, peer: Backend, o: &PairedOptions) -> Result<PairedResult, ExecError> {
    if peer == Backend::Candle {
        return Err(ExecError::new("the peer is an external runtime (onnxruntime or pytorch), not candle"));
    }
    let (device, conv) = check_and_open(o)?;
    let ours = Prepared::new(net, o, &device, conv)?;
    // The runner's own warm-up is one iteration; both sides then warm up alike below.
    let peer_opts = RunOptions {
        backend: peer,
        device: o.device,
        dtype: o.dtype,
        batch: o.batch,
        mode: Mode::Infer,
        seed: o.seed,
        warmup: Window { iterations: 1, seconds: 0.0 },
        ..RunOptions::default()
    };
    let mut theirs = Peer::start(net, &peer_opts)?;
    let [a_images_per_s, b_images_per_s] = alternate(o, |which, seconds| match which {
        0 => theirs.burst(seconds),
        _ => ours.burst(seconds, o.batch, &device),
    })?;
    Ok(PairedResult {
        a: theirs.runtime().to_string(),
        b: format!("synprof (candle, {} convs)", ours.lowered.conv_algorithm),
        options: o.clone(),
        conv_algorithm: ours.lowered.conv_algorithm,
        a_images_per_s,
        b_images_per_s,
    })
}

/// Check the options, fix the CPU threads, open the device; the conv algorithm to lower with.
fn check_and_open(o: &PairedOptions) -> Result<(candle_core::Device, ConvAlgorithm), ExecError> {
    check(o)?;
    device::set_cpu_threads(if o.device == DeviceSpec::Cpu { o.threads } else { None })?;
    Ok((o.device.open()?, ConvAlgorithm::from_env()?))
}

fn check(o: &PairedOptions) -> Result<(), ExecError> {
    if o.batch == 0 || o.bursts == 0 {
        return Err(ExecError::new("paired timing needs a batch and a number of bursts of at least 1"));
    }
    if !(o.burst_seconds.is_finite() && o.burst_seconds >= 0.0) {
        return Err(ExecError::new(format!("burst length {} s: give a non-negative number", o.burst_seconds)));
    }
    if !(o.warmup_seconds.is_finite() && o.warmup_seconds >= 0.0) {
        return Err(ExecError::new(format!("warm-up {} s: give a non-negative number", o.warmup_seconds)));
    }
    if !(o.settle_seconds.is_finite() && (0.0..=60.0).contains(&o.settle_seconds)) {
        return Err(ExecError::new(format!(
            "settle pause {} s: give a number of seconds from 0 to 60",
            o.settle_seconds
        )));
    }
    Ok(())
}

/// Warm both sides up, then `o.bursts` pairs, A B, B A, A B, ...: a steady drift favours
/// neither side. Each measured burst follows an idle pause of `o.settle_seconds`.
/// `burst(side, seconds)`: images/s of one burst of side 0 (A) or 1 (B).
fn alternate(
    o: &PairedOptions,
    mut burst: impl FnMut(usize, f64) -> Result<f64, ExecError>,
) -> Result<[Vec<f64>; 2], ExecError> {
    for which in [0, 1] {
        burst(which, o.warmup_seconds)?;
    }
    let mut speeds = [Vec::new(), Vec::new()];
    for i in 0..o.bursts {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            std::thread::sleep(std::time::Duration::from_secs_f64(o.settle_seconds));
            speeds[which].push(burst(which, o.burst_seconds)?);
        }
    }
    Ok(speeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_of_the_pair_ratios() {
        let r = PairedResult {
            a: "a".into(),
            b: "b".into(),
            options: PairedOptions::default(),
            conv_algorithm: ConvAlgorithm::Packed,
            a_images_per_s: vec![10.0, 20.0, 10.0, 5.0, 10.0],
            b_images_per_s: vec![11.0, 20.0, 13.0, 6.0, 9.0],
        };
        // ratios 1.1, 1.0, 1.3, 1.2, 0.9 -> sorted 0.9 1.0 1.1 1.2 1.3
        let [q1, m, q3] = r.ratio_quartiles().unwrap();
        assert!((m - 1.1).abs() < 1e-12 && (q1 - 1.0).abs() < 1e-12 && (q3 - 1.2).abs() < 1e-12, "{q1} {m} {q3}");
        assert_eq!(r.a_median(), 10.0);
        assert_eq!(r.b_median(), 11.0);
        assert!(median(&[1.0, 2.0, 3.0, 4.0]) == 2.5);
    }

    #[test]
    fn every_measured_burst_follows_an_idle_pause() {
        let o = PairedOptions { bursts: 3, settle_seconds: 0.03, ..Default::default() };
        let mut log: Vec<(usize, Instant, Instant)> = Vec::new();
        let [a, b] = alternate(&o, |which, _| {
            let start = Instant::now();
            std::thread::sleep(std::time::Duration::from_millis(2));
            log.push((which, start, Instant::now()));
            Ok(1.0 + which as f64)
        })
        .unwrap();
        assert_eq!((a, b), (vec![1.0; 3], vec![2.0; 3]));
        // Two warm-ups, then A B, B A, A B.
        let sides: Vec<usize> = log.iter().map(|l| l.0).collect();
        assert_eq!(sides, [0, 1, 0, 1, 1, 0, 0, 1]);
        for pair in log[1..].windows(2) {
            let gap = pair[1].1.duration_since(pair[0].2).as_secs_f64();
            assert!(gap >= 0.03, "a burst began {gap} s after the one before");
        }
        let bad = PairedOptions { settle_seconds: -1.0, ..o.clone() };
        let err = check(&bad).unwrap_err().to_string();
        assert!(err.contains("settle"), "{err}");
    }

    #[test]
    fn alternating_bursts_time_both_nets() {
        use crate::graph::{conv, NetBuilder};
        let build = |name: &str, side: usize, width: usize| {
            let mut g = NetBuilder::new(name, &[3, side, side]);
            let x = g.input();
            let y = g.conv(x, conv(width, 3).pad(1));
            g.finish(y).unwrap()
        };
        // 256x the MACs (7.1 M against 28 k): far past the per-inference overhead, so the
        // order holds on a loaded machine too (16x at 16x16 once lost to it).
        let (small, big) = (build("small", 16, 4), build("big", 64, 64));
        let o = PairedOptions { bursts: 4, burst_seconds: 0.0, warmup_seconds: 0.0, ..Default::default() };
        let r = run_paired(&small, &big, &o).unwrap();
        assert_eq!((r.a_images_per_s.len(), r.b_images_per_s.len()), (4, 4));
        assert!(r.a_images_per_s.iter().chain(&r.b_images_per_s).all(|v| v.is_finite() && *v > 0.0));
        // The big net is slower in the median pair.
        assert!(r.ratio_quartiles().unwrap()[1] < 1.0, "{:?}", r.ratios());
        let err = run_paired(&small, &big, &PairedOptions { bursts: 0, ..o }).unwrap_err();
        assert!(err.to_string().contains("bursts"), "{err}");
    }
}
