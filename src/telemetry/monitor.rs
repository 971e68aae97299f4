//! The sampling thread: samples at a fixed interval on monotonic time into a bounded
//! buffer, with phase marks, until stopped.

use super::buffer::SampleBuffer;
use super::sample::duration_s;
use super::{Phase, PhaseMark, Sample, Sampler};
use serde::{Deserialize, Serialize};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// About 16 MB of samples at most; at 10 ms, decimation starts after 5.5 minutes.
pub const DEFAULT_CAPACITY: usize = 1 << 15;

/// What a monitor saw: the samples and the phase marks, on one monotonic time axis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    pub sampler: String,
    #[serde(rename = "interval_s", with = "duration_s")]
    pub interval: Duration,
    pub samples: Vec<Sample>,
    pub phases: Vec<PhaseMark>,
    /// When the monitor was stopped.
    #[serde(rename = "end_s", with = "duration_s")]
    pub end: Duration,
    /// 1, or the decimation factor of old samples once the buffer filled (see `buffer`).
    pub stride: usize,
    pub samples_taken: u64,
    /// Mean time one sample took to read, on the sampling thread.
    #[serde(rename = "mean_sample_cost_s", with = "duration_s")]
    pub mean_sample_cost: Duration,
    /// Ticks that came late by more than one interval (the sampler was slower than asked).
    pub late_ticks: u64,
}

impl Recording {
    /// From the first mark of `phase` to the next mark (or the end of the recording).
    pub fn window(&self, phase: Phase) -> Option<(Duration, Duration)> {
        let i = self.phases.iter().position(|m| m.phase == phase)?;
        let end = self.phases.get(i + 1).map_or(self.end, |m| m.t);
        Some((self.phases[i].t, end))
    }

    /// Samples with `t0 <= t <= t1`.
    pub fn samples_in(&self, t0: Duration, t1: Duration) -> &[Sample] {
        let a = self.samples.partition_point(|s| s.t < t0);
        let b = self.samples.partition_point(|s| s.t <= t1);
        &self.samples[a..b.max(a)]
    }
}

struct Shared {
    buffer: SampleBuffer,
    marks: Vec<PhaseMark>,
    taken: u64,
    cost: Duration,
    late_ticks: u64,
}

/// A running sampler thread. Dropping it stops the thread (the samples are lost).
pub struct Monitor {
    shared: Arc<Mutex<Shared>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    epoch: Instant,
    interval: Duration,
    name: String,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // a panic on the sampling thread happens outside the lock; take the data regardless
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl Monitor {
    /// Start sampling every `interval`; returns once the first sample has been taken.
    pub fn start(sampler: Box<dyn Sampler>, interval: Duration) -> Monitor {
        Monitor::with_capacity(sampler, interval, DEFAULT_CAPACITY)
    }

    pub fn with_capacity(mut sampler: Box<dyn Sampler>, interval: Duration, capacity: usize) -> Monitor {
        let interval = interval.max(Duration::from_micros(100));
        let epoch = Instant::now();
        let shared = Arc::new(Mutex::new(Shared {
            buffer: SampleBuffer::new(capacity),
            marks: Vec::new(),
            taken: 0,
            cost: Duration::ZERO,
            late_ticks: 0,
        }));
        let (stop, stopped) = mpsc::channel::<()>();
        let name = sampler.name().to_string();
        let thread_shared = Arc::clone(&shared);
        let take = move |sampler: &mut Box<dyn Sampler>| {
            let t = epoch.elapsed();
            let sample = sampler.sample(t);
            let cost = epoch.elapsed() - t;
            let mut s = lock(&thread_shared);
            let Shared { buffer, marks, .. } = &mut *s;
            buffer.push(sample, marks);
            s.taken += 1;
            s.cost += cost;
        };
        let late_shared = Arc::clone(&shared);
        let (started, first_taken) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("synprof-telemetry".into())
            .spawn(move || {
                take(&mut sampler);
                let _ = started.send(());
                let mut next = epoch + interval;
                loop {
                    let now = Instant::now();
                    let wait = next.saturating_duration_since(now);
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                    take(&mut sampler);
                    next += interval;
                    let now = Instant::now();
                    if now > next + interval {
                        // fell behind (a slow read, a descheduled thread): skip, do not burst
                        lock(&late_shared).late_ticks += 1;
                        next = now;
                    }
                }
                // one last sample, so the final window is closed by a sample after it
                take(&mut sampler);
            })
            .expect("cannot start the telemetry thread");
        // return once the first sample is in: a mark made now is preceded by a sample
        let _ = first_taken.recv();
        Monitor { shared, stop: Some(stop), thread: Some(thread), epoch, interval, name }
    }

    /// Time since this monitor's epoch, on the samples' axis.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// A phase begins now; returns its timestamp.
    pub fn mark(&self, phase: Phase) -> Duration {
        // stamped under the lock: any sample stamped later is pushed after the mark is known
        let mut s = lock(&self.shared);
        let t = self.epoch.elapsed();
        s.marks.push(PhaseMark { phase, t });
        t
    }

    pub fn has_mark(&self, phase: Phase) -> bool {
        lock(&self.shared).marks.iter().any(|m| m.phase == phase)
    }

    /// Samples kept so far; for progress displays and tests.
    pub fn samples_so_far(&self) -> usize {
        lock(&self.shared).buffer.samples().len()
    }

    /// Stop the thread (after one last sample) and hand over what it recorded.
    pub fn stop(mut self) -> Recording {
        self.halt();
        let end = self.epoch.elapsed();
        let mut s = lock(&self.shared);
        let buffer = std::mem::replace(&mut s.buffer, SampleBuffer::new(16));
        let stride = buffer.stride();
        Recording {
            sampler: self.name.clone(),
            interval: self.interval,
            samples: buffer.into_samples(),
            phases: std::mem::take(&mut s.marks),
            end,
            stride,
            samples_taken: s.taken,
            mean_sample_cost: if s.taken > 0 { s.cost / s.taken as u32 } else { Duration::ZERO },
            late_ticks: s.late_ticks,
        }
    }

    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.halt();
    }
}
