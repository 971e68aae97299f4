//! Bounded sample storage for long runs: when full, every other sample is dropped and
//! from then on only every `stride`-th new one is kept (the timeline stays uniform at a
//! coarser step), except the samples on either side of a phase mark, which are always kept
//! so that every window edge stays bracketed. Energy counters are cumulative, so their
//! window deltas stay exact; integrated power gets coarser (`stride` says by how much).

use super::{PhaseMark, Sample};

pub struct SampleBuffer {
    samples: Vec<Sample>,
    capacity: usize,
    stride: usize,
    since_kept: usize,
    /// The last sample skipped by the stride: kept after all if a mark follows it.
    pending: Option<Sample>,
}

impl SampleBuffer {
    /// At most `capacity` samples (at least 16).
    pub fn new(capacity: usize) -> SampleBuffer {
        let capacity = capacity.max(16);
        SampleBuffer {
            samples: Vec::with_capacity(capacity.min(4096)),
            capacity,
            stride: 1,
            since_kept: 0,
            pending: None,
        }
    }

    pub fn push(&mut self, sample: Sample, marks: &[PhaseMark]) {
        self.since_kept += 1;
        let last_t = self.samples.last().map(|s| s.t);
        // a mark since the last kept sample: keep the samples on both sides of it (marks are
        // registered before any sample stamped later is pushed, so `pending` is before it)
        let after_mark = marks.iter().any(|m| last_t.is_none_or(|last| m.t > last) && m.t <= sample.t);
        if after_mark {
            if let Some(before) = self.pending.take() {
                self.samples.push(before);
            }
        } else if self.since_kept < self.stride {
            self.pending = Some(sample);
            return;
        }
        self.pending = None;
        self.since_kept = 0;
        self.samples.push(sample);
        if self.samples.len() >= self.capacity {
            self.decimate(marks);
        }
    }

    fn decimate(&mut self, marks: &[PhaseMark]) {
        let n = self.samples.len();
        let mut keep: Vec<bool> = (0..n).map(|i| i % 2 == 0 || i + 1 == n).collect();
        for m in marks {
            let after = self.samples.partition_point(|s| s.t <= m.t);
            if after > 0 {
                keep[after - 1] = true;
            }
            if after < n {
                keep[after] = true;
            }
        }
        let mut i = 0;
        self.samples.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        self.stride *= 2;
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    pub fn into_samples(self) -> Vec<Sample> {
        self.samples
    }

    /// 1 while nothing was dropped; 2^k after k decimations.
    pub fn stride(&self) -> usize {
        self.stride
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Phase;
    use std::time::Duration;

    #[test]
    fn stays_bounded_and_keeps_window_edges() {
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        let marks = [
            PhaseMark { phase: Phase::Measured, t: us(333_500) },
            PhaseMark { phase: Phase::Cooldown, t: us(7_777_500) },
        ];
        let mut buffer = SampleBuffer::new(100);
        for i in 0..10_000u64 {
            // marks are known to the buffer from the moment they are made
            let known: Vec<PhaseMark> = marks.iter().copied().filter(|m| m.t <= ms(i)).collect();
            buffer.push(Sample::at(ms(i)), &known);
        }
        let s = buffer.samples();
        assert!(s.len() < 100, "{}", s.len());
        assert!(buffer.stride() >= 128, "{}", buffer.stride());
        assert!(s.windows(2).all(|w| w[0].t < w[1].t));
        for m in marks {
            let after = s.partition_point(|x| x.t <= m.t);
            assert_eq!(s[after - 1].t, m.t - us(500), "last sample before {m:?} kept");
            assert_eq!(s[after].t, m.t + us(500), "first sample after {m:?} kept");
        }
    }
}
