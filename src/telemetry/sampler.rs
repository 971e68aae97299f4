//! The sampler interface, a sampler that reads nothing, and one that merges several.

use super::{DeviceFacts, Sample};
use std::time::Duration;

/// A source of readings. The monitor thread owns it and calls [`Sampler::sample`] at a
/// fixed interval, passing the monotonic time it stamps the sample with.
pub trait Sampler: Send {
    fn name(&self) -> &str;

    /// Read every figure this sampler has, now; `t` is the sample's timestamp.
    fn sample(&mut self, t: Duration) -> Sample;

    /// Read only power and energy (used to probe update periods quickly).
    fn sample_power(&mut self, t: Duration) -> Sample {
        self.sample(t)
    }

    fn describe(&self) -> DeviceFacts;
}

/// Reads nothing, and says why.
pub struct NullSampler {
    reason: String,
}

impl NullSampler {
    pub fn new(reason: impl Into<String>) -> Self {
        NullSampler { reason: reason.into() }
    }
}

impl Sampler for NullSampler {
    fn name(&self) -> &str {
        "null"
    }

    fn sample(&mut self, t: Duration) -> Sample {
        Sample::at(t)
    }

    fn describe(&self) -> DeviceFacts {
        DeviceFacts { notes: vec![format!("no telemetry: {}", self.reason)], ..DeviceFacts::default() }
    }
}

/// Several samplers read one after another into one sample; the first one to give a
/// figure wins, so put the device under test first (its power is read first, nearest `t`).
pub struct Combined {
    name: String,
    parts: Vec<Box<dyn Sampler>>,
}

impl Combined {
    pub fn new(parts: Vec<Box<dyn Sampler>>) -> Self {
        let name = parts.iter().map(|p| p.name()).collect::<Vec<_>>().join("+");
        Combined { name, parts }
    }
}

impl Sampler for Combined {
    fn name(&self) -> &str {
        &self.name
    }

    fn sample(&mut self, t: Duration) -> Sample {
        let mut out = Sample::at(t);
        for p in &mut self.parts {
            out.fill_from(p.sample(t));
        }
        out
    }

    fn sample_power(&mut self, t: Duration) -> Sample {
        let mut out = Sample::at(t);
        for p in &mut self.parts {
            out.fill_from(p.sample_power(t));
        }
        out
    }

    fn describe(&self) -> DeviceFacts {
        let mut facts = DeviceFacts::default();
        for p in &self.parts {
            facts.merge(p.describe());
        }
        facts
    }
}
