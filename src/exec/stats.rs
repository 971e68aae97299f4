//! Latency statistics of a measured window (DESIGN.md, measurement conventions).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub iterations: usize,
    pub mean_ms: f64,
    /// Standard error of the mean.
    pub stderr_ms: f64,
    pub median_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// 1.4826 x median absolute deviation (a robust standard deviation; tf_cnn_benchmarks' jitter).
    pub mad_jitter_ms: f64,
    /// Images per second: batch x iterations / total measured time.
    pub images_per_s: f64,
}

/// Percentile by linear interpolation between closest ranks (numpy's default).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Statistics of per-iteration latencies (ms) for `batch` images per iteration.
pub fn summarize(latencies_ms: &[f64], batch: usize) -> LatencyStats {
    let n = latencies_ms.len();
    let mut sorted = latencies_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let total: f64 = latencies_ms.iter().sum();
    let mean = total / n.max(1) as f64;
    let var = if n > 1 { latencies_ms.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
    let median = percentile(&sorted, 0.5);
    let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - median).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    LatencyStats {
        iterations: n,
        mean_ms: mean,
        stderr_ms: (var / n.max(1) as f64).sqrt(),
        median_ms: median,
        p50_ms: median,
        p90_ms: percentile(&sorted, 0.9),
        p99_ms: percentile(&sorted, 0.99),
        min_ms: sorted.first().copied().unwrap_or(f64::NAN),
        max_ms: sorted.last().copied().unwrap_or(f64::NAN),
        mad_jitter_ms: 1.4826 * percentile(&deviations, 0.5),
        images_per_s: if total > 0.0 { batch as f64 * n as f64 / (total / 1000.0) } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_a_known_sample() {
        let s = summarize(&[10.0, 12.0, 11.0, 13.0, 100.0], 4);
        assert_eq!(s.median_ms, 12.0);
        assert_eq!(s.mean_ms, 29.2);
        // deviations from 12: 2, 0, 1, 1, 88 -> median 1
        assert!((s.mad_jitter_ms - 1.4826).abs() < 1e-12);
        assert!((s.p90_ms - (13.0 + 0.6 * 87.0)).abs() < 1e-9);
        // 5 iterations x 4 images in 146 ms
        assert!((s.images_per_s - 20.0 / 0.146).abs() < 1e-9);
        let sd =
            ((19.2f64.powi(2) + 17.2f64.powi(2) + 18.2f64.powi(2) + 16.2f64.powi(2) + 70.8f64.powi(2)) / 4.0).sqrt();
        assert!((s.stderr_ms - sd / 5f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn percentiles_interpolate() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((percentile(&v, 0.99) - 99.01).abs() < 1e-9);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[5.0], 0.9), 5.0);
    }
}
