//! The core clock as running code sees it: a chain of dependent register adds (one cycle
//! each on every x86-64 and AArch64 core) timed against the wall clock.
//!
//! Where the kernel has no cpufreq driver (virtual machines, most containers on them),
//! `/proc/cpuinfo`'s `cpu MHz` is the host's nominal clock, a constant: on the Zen 5 VM of
//! benches/peers/RESULTS.md it says 2596 MHz while the cores run at about 4.1 GHz (the
//! FMA peak, `benches/host/fma_peak.c`, 265 GFLOP/s = 2 FMAs x 32 FLOP x 4.14 GHz). This
//! measurement is the clock figure such a machine can honestly give.

use super::Figure;
use std::time::Instant;

/// Dependent adds per loop iteration (the loop's own counter runs beside the chain).
const ADDS_PER_ITERATION: u64 = 10;
/// Iterations per timed run: 10 M cycles, about 2.5 ms at 4 GHz.
const ITERATIONS: u64 = 1_000_000;
/// Timed runs; the fastest counts (a run the scheduler interrupted only reads slower).
const RUNS: usize = 5;

/// `iterations` x [`ADDS_PER_ITERATION`] dependent register adds. Register operands, not
/// immediates: some cores (Intel's Golden Cove) fold `add reg, imm` chains at rename.
#[cfg(target_arch = "x86_64")]
fn dependent_adds(iterations: u64) {
    // SAFETY: register arithmetic only; no memory, no stack.
    unsafe {
        core::arch::asm!(
            "2:",
            "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}",
            "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}",
            "dec {n}",
            "jnz 2b",
            x = inout(reg) 0u64 => _,
            y = in(reg) std::hint::black_box(1u64),
            n = inout(reg) iterations => _,
            options(nomem, nostack),
        );
    }
}

#[cfg(target_arch = "aarch64")]
fn dependent_adds(iterations: u64) {
    // SAFETY: register arithmetic only; no memory, no stack.
    unsafe {
        core::arch::asm!(
            "2:",
            "add {x}, {x}, {y}", "add {x}, {x}, {y}", "add {x}, {x}, {y}", "add {x}, {x}, {y}",
            "add {x}, {x}, {y}", "add {x}, {x}, {y}", "add {x}, {x}, {y}", "add {x}, {x}, {y}",
            "add {x}, {x}, {y}", "add {x}, {x}, {y}",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            x = inout(reg) 0u64 => _,
            y = in(reg) std::hint::black_box(1u64),
            n = inout(reg) iterations => _,
            options(nomem, nostack),
        );
    }
}

/// The clock of the core this thread runs on, in MHz: the fastest of a few ~2.5 ms runs
/// of dependent adds. It reads low if the core is shared with other busy threads for all
/// of them, and it is this core's clock now, not a sampled mean.
pub fn measure_mhz() -> Figure<f64> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        dependent_adds(ITERATIONS / 10); // wake the core up from any idle state
        let best_s = (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                dependent_adds(ITERATIONS);
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        if best_s > 0.0 {
            Figure::Value((ITERATIONS * ADDS_PER_ITERATION) as f64 / best_s / 1e6)
        } else {
            Figure::na("the dependent-add loop took no measurable time")
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Figure::na("no dependent-add loop for this architecture (x86-64 and AArch64 only)")
    }
}

/// How [`measure_mhz`] measures, for the record beside the figure.
pub const METHOD: &str = "dependent register adds, one cycle each, timed (fastest of 5 runs of 10 M cycles)";

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use super::*;

    /// The loop runs (a loop optimised away, or adds that took no cycles, would read
    /// tens of GHz) and a chain of adds is not slower than one add a cycle by more than a
    /// shared core explains: every x86-64 or AArch64 core of the last 20 years clocks
    /// between 0.4 and 7 GHz.
    #[test]
    fn the_clock_is_a_cpu_clock() {
        let mhz = *measure_mhz().value().expect("x86-64 or AArch64");
        assert!((400.0..7000.0).contains(&mhz), "{mhz} MHz");
    }

    /// Twice the adds take twice the time: the figure measures the chain, not the call.
    /// The two lengths run interleaved, nine times each, and each keeps its fastest run,
    /// so a burst of load elsewhere on a shared machine slows runs of both.
    #[test]
    fn time_grows_with_the_chain() {
        let time = |n: u64| {
            let t = Instant::now();
            dependent_adds(n);
            t.elapsed().as_secs_f64()
        };
        dependent_adds(ITERATIONS / 10);
        let (mut one, mut two) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..9 {
            one = one.min(time(ITERATIONS / 2));
            two = two.min(time(ITERATIONS));
        }
        let ratio = two / one;
        assert!((1.6..2.5).contains(&ratio), "{ITERATIONS} iterations took {ratio:.2}x half as many");
    }
}
