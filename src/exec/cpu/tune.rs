//! Choosing a GEMM conv's B form by timing it, on first use, on the machine at hand.
//!
//! `gemm::method` guesses from lanes wasted and bytes moved, with constants measured on one
//! CPU. Where the B forms are close that guess follows the CPU: on a Zen 5 host the channel
//! tile won ResNet-50's 1x1 convs over 56x56 maps, on a Sapphire-class Xeon (2 MiB L2,
//! two 512-bit FMA pipes) packed im2col panels beat it by 15-25% on the same shapes
//! (benches/peers/RESULTS.md section 10). So the first call of each input shape runs every
//! form the conv can take, once to warm up (scratch, lazily packed panels) then timed,
//! keeps the fastest for that shape (the guess unless another form is 3% faster; convs of
//! microseconds are timed over several interleaved rounds), and every later call uses it. Like cuDNN's benchmark
//! mode, this costs the first call about twice the candidates' time (inside a run's
//! warm-up, never its measured window). `SYNPROF_CPU_TUNE=off` keeps the guess.

use super::gemm::{self, Method};
use super::kernels::KernelSet;
use super::pack::Geom;
use std::sync::Mutex;
use std::time::Instant;

/// Whether convs time their B forms on first use (`SYNPROF_CPU_TUNE=off`: no).
pub(crate) fn enabled() -> bool {
    static ON: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| !crate::exec::switched_off("SYNPROF_CPU_TUNE"));
    *ON
}

/// The distinct B forms a conv of geometry `g` with `m` output channels per group can run
/// (forcing an impossible one falls back to a possible one, counted once).
pub(crate) fn candidates(g: &Geom, m: usize, ks: &KernelSet) -> Vec<Method> {
    let mut out = Vec::new();
    for want in [Method::Pointwise, Method::Direct, Method::Im2col, Method::Channels] {
        let got = gemm::choose(g, m, ks, Some(want));
        if !out.contains(&got) {
            out.push(got);
        }
    }
    out
}

/// A candidate replaces the guess only if this much faster (timing noise must not flip it).
const MARGIN: f64 = 0.03;
/// Timed rounds are added until a candidate's rounds take about this long (at most 5).
const ROUNDS_SECONDS: f64 = 2e-3;

/// Warm each candidate up once, then time them in interleaved rounds (more rounds for
/// convs of microseconds) and return the fastest by its best round; `guess` (one of the
/// candidates) keeps its place unless another beats it by more than `MARGIN`.
pub(crate) fn fastest(candidates: &[Method], guess: Method, mut run: impl FnMut(Method)) -> Method {
    fastest_by_seconds(candidates, guess, |m| {
        let start = Instant::now();
        run(m);
        start.elapsed().as_secs_f64()
    })
}

/// `fastest` with the timing given: `seconds(m)` runs `m` once and says how long it took.
fn fastest_by_seconds(candidates: &[Method], guess: Method, mut seconds: impl FnMut(Method) -> f64) -> Method {
    let warm: Vec<f64> = candidates.iter().map(|&m| seconds(m)).collect();
    let slowest = warm.iter().cloned().fold(0.0, f64::max);
    let rounds = ((ROUNDS_SECONDS / slowest.max(1e-9)) as usize).clamp(1, 5);
    let mut best = vec![f64::INFINITY; candidates.len()];
    for _ in 0..rounds {
        for (i, &m) in candidates.iter().enumerate() {
            best[i] = best[i].min(seconds(m));
        }
    }
    let guess_time = candidates.iter().position(|&m| m == guess).map_or(f64::INFINITY, |i| best[i]);
    let (i, t) = best.iter().enumerate().fold((0, f64::INFINITY), |acc, (i, &t)| if t < acc.1 { (i, t) } else { acc });
    if t < guess_time * (1.0 - MARGIN) {
        candidates[i]
    } else {
        guess
    }
}

/// Each input shape's chosen method, `(n, h, w)` -> method.
#[derive(Default)]
pub(crate) struct Choices(Mutex<Vec<([usize; 3], Method)>>);

impl Choices {
    /// The method chosen for `shape`, if any yet.
    pub(crate) fn get(&self, shape: [usize; 3]) -> Option<Method> {
        let list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().find(|(s, _)| *s == shape).map(|&(_, m)| m)
    }

    pub(crate) fn set(&self, shape: [usize; 3], method: Method) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !list.iter().any(|(s, _)| *s == shape) {
            list.push((shape, method));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The choice logic on given timings (no sleeps: a loaded machine's jitter must not
    /// decide a unit test; CI once saw two 10 ms sleeps differ by more than 3%).
    #[test]
    fn the_fastest_candidate_wins_by_a_margin_over_the_guess() {
        let all = [Method::Pointwise, Method::Im2col, Method::Channels];
        let mut calls = Vec::new();
        let chosen = fastest_by_seconds(&all, Method::Im2col, |m| {
            calls.push(m);
            if m == Method::Im2col {
                0.020
            } else {
                0.001
            }
        });
        assert_ne!(chosen, Method::Im2col);
        // Each warmed up once, then one round (a 20 ms candidate is past ROUNDS_SECONDS).
        assert_eq!(calls, [all, all].concat());

        // Within the margin the guess stays; past it the faster form wins.
        let pair = [Method::Direct, Method::Im2col];
        let timed = |direct: f64| move |m: Method| if m == Method::Direct { direct } else { 0.010 };
        assert_eq!(fastest_by_seconds(&pair, Method::Direct, timed(0.010)), Method::Direct);
        assert_eq!(fastest_by_seconds(&pair, Method::Im2col, timed(0.010)), Method::Im2col);
        assert_eq!(fastest_by_seconds(&pair, Method::Direct, timed(0.0102)), Method::Direct);
        assert_eq!(fastest_by_seconds(&pair, Method::Direct, timed(0.0105)), Method::Im2col);
        assert_eq!(fastest_by_seconds(&pair, Method::Im2col, timed(0.0097)), Method::Im2col);
        assert_eq!(fastest_by_seconds(&pair, Method::Im2col, timed(0.0095)), Method::Direct);
    }

    /// Microsecond convs get five interleaved rounds, and each form is judged by its best
    /// round: one slow round (a preempted call) does not lose it the choice.
    #[test]
    fn short_convs_are_judged_by_their_best_of_several_rounds() {
        let pair = [Method::Direct, Method::Im2col];
        let mut calls = Vec::new();
        let chosen = fastest_by_seconds(&pair, Method::Direct, |m| {
            calls.push(m);
            let round = calls.iter().filter(|&&c| c == m).count();
            match (m, round) {
                (Method::Im2col, 2) => 1e-3, // its first timed round was preempted
                (Method::Im2col, _) => 5e-6,
                _ => 10e-6,
            }
        });
        assert_eq!(chosen, Method::Im2col);
        assert_eq!(calls, [pair; 6].concat(), "a warm-up and five rounds");
    }

    /// The real clock on real work: a form that does nothing beats one that sleeps 20 ms.
    #[test]
    fn timing_real_runs_finds_a_clearly_faster_form() {
        let pair = [Method::Direct, Method::Im2col];
        let slow_direct = |m: Method| {
            if m == Method::Direct {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        };
        assert_eq!(fastest(&pair, Method::Direct, slow_direct), Method::Im2col);
    }

    #[test]
    fn a_pointwise_conv_has_every_form_and_a_padded_3x3_no_pointwise() {
        let ks = super::super::kernels::kernel_set(super::super::Isa::Scalar);
        let geom = |k: usize, pad: usize| Geom {
            c: 64,
            h: 28,
            w: 28,
            kh: k,
            kw: k,
            sh: 1,
            sw: 1,
            dh: 1,
            dw: 1,
            pt: pad,
            pl: pad,
            oh: 28,
            ow: 28,
        };
        let c = candidates(&geom(1, 0), 64, &ks);
        assert!(
            c.contains(&Method::Pointwise) && c.contains(&Method::Im2col) && c.contains(&Method::Channels),
            "{c:?}"
        );
        let c = candidates(&geom(3, 1), 64, &ks);
        assert!(!c.contains(&Method::Pointwise) && c.contains(&Method::Im2col), "{c:?}");
    }

    #[test]
    fn a_shape_keeps_its_first_choice() {
        let c = Choices::default();
        assert_eq!(c.get([1, 56, 56]), None);
        c.set([1, 56, 56], Method::Im2col);
        c.set([1, 56, 56], Method::Channels);
        c.set([16, 56, 56], Method::Channels);
        assert_eq!(c.get([1, 56, 56]), Some(Method::Im2col));
        assert_eq!(c.get([16, 56, 56]), Some(Method::Channels));
    }
}
