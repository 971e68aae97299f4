//! The worker threads a conv runs on, owned by the caller.
//!
//! A small dedicated pool (not rayon's global one, which candle uses): `Threads::new(n)`
//! holds `n - 1` helper threads and the calling thread works too, so a conv never runs
//! more than `n` threads at once, whatever candle's pool is doing.
//!
//! Why not a rayon scope: a scope waits for every spawned job to finish, so on a busy
//! machine (here: other builds sharing 2 cores) a helper the OS has not scheduled yet
//! makes the caller sit idle for a scheduler tick after doing all the work itself; small
//! layers ran slower on 2 threads than on 1. Here helpers *join* a call through a gate;
//! the caller closes the gate when the items run out and waits only for helpers that
//! joined and are finishing an item. A late helper finds the gate closed and goes back to
//! sleep. Idle helpers spin briefly (consecutive layers follow within microseconds), then
//! park. Helpers are pinned to their own CPUs and a call keeps its caller off them
//! (`affinity.rs`).
//!
//! Which thread runs which item: thread `t` owns the `t`-th of `n` equal runs of a call's
//! items and takes them in order from its own counter (its own cache line); a thread out
//! of items takes from the others' runs. So the same thread runs the same part of every
//! call (the top rows of an image, say), and the next layer mostly reads what its own
//! core wrote: on a VM whose two vCPUs sit on different core complexes, one shared
//! counter (every item to whichever thread asked first) ran ResNet-50 about 25% slower
//! than when they shared an L3, the data crossing between cores at every layer.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::affinity;
use super::ConvError;

/// Convs under this many multiply-adds run on the calling thread alone (about 10 us of
/// work: less than waking a parked helper costs).
const SERIAL_MACS: u64 = 1 << 20;
/// Runs of items per thread in [`Threads::for_each_run`] (load balance against hand-out cost).
const RUNS_PER_THREAD: usize = 4;
/// How long an idle helper spins before parking.
const SPIN: Duration = Duration::from_micros(50);
/// Gate bit: the current call accepts helpers. The bits below count helpers inside.
const OPEN: u64 = 1 << 63;

type Job = dyn Fn(usize) + Sync;

/// One thread's item counter, alone on its cache line(s).
#[repr(align(128))]
struct Counter(AtomicUsize);

struct Shared {
    /// `OPEN` | number of helpers inside the current call.
    gate: AtomicU64,
    /// Incremented per call, so a helper joins each call at most once.
    generation: AtomicU64,
    /// Per thread (0: the caller; `i`: helper `i`): the next item of its run.
    next: Box<[Counter]>,
    /// The current call's job and item count; written by the caller only while the gate is
    /// closed and empty, read by helpers only while inside.
    job: UnsafeCell<(*const Job, usize)>,
    /// A helper's job panicked (re-raised on the caller).
    panicked: AtomicBool,
    shutdown: AtomicBool,
    clock: ItemClock,
}

/// Item timing ([`Threads::set_item_timing`]), on its own cache line: every item reads
/// it, and the gate's line changes hands at every call.
#[repr(align(128))]
struct ItemClock {
    /// Whether work items are timed into `busy_ns`.
    on: AtomicBool,
    /// Nanoseconds this pool's threads spent inside work items while timing was on.
    busy_ns: AtomicU64,
}

impl Shared {
    /// `f(i)`, its time added to the busy time while item timing is on.
    #[inline]
    fn run_item(&self, f: &(dyn Fn(usize) + Sync + '_), i: usize) {
        if self.clock.on.load(Ordering::Relaxed) {
            let start = Instant::now();
            f(i);
            self.clock.busy_ns.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        } else {
            f(i);
        }
    }
}

// SAFETY: `job` is accessed under the gate protocol above (caller writes happen-before the
// `OPEN` release store that helpers acquire when joining; the caller does not write again
// until every joined helper has left with a release decrement).
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// How many threads a conv may use, and the helpers that provide them.
pub struct Threads {
    count: usize,
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
    /// One call at a time.
    calls: Mutex<()>,
    serial_below: u64,
    placement: affinity::Placement,
}

impl Threads {
    /// `count` threads in all (the calling thread included); 0 is taken as 1.
    pub fn new(count: usize) -> Result<Threads, ConvError> {
        let count = count.max(1);
        let shared = Arc::new(Shared {
            gate: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            next: (0..count).map(|_| Counter(AtomicUsize::new(0))).collect(),
            job: UnsafeCell::new((std::ptr::null::<fn(usize)>() as *const Job, 0)),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            clock: ItemClock { on: AtomicBool::new(false), busy_ns: AtomicU64::new(0) },
        });
        let placement = affinity::Placement::new(count - 1);
        let mut helpers = Vec::new();
        for i in 1..count {
            let s = Arc::clone(&shared);
            let cpu = placement.helper_cpu(i);
            let h = std::thread::Builder::new()
                .name(format!("synprof-conv-{i}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        affinity::pin_to(cpu);
                    }
                    helper(&s, i)
                })
                .map_err(|e| ConvError::new(format!("cannot start conv thread {i}: {e}")))?;
            helpers.push(h);
        }
        Ok(Threads { count, shared, helpers, calls: Mutex::new(()), serial_below: SERIAL_MACS, placement })
    }

    /// Everything on the calling thread.
    pub fn single() -> Threads {
        Threads::new(1).expect("no thread is started for one")
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Convs smaller than this (multiply-adds) run on the calling thread only.
    pub fn serial_below(&self) -> u64 {
        self.serial_below
    }

    /// Time every work item from now on (`true`) or stop (`false`): `--layers` measures
    /// how busy the threads were in each layer ([`Threads::busy_ns`]). Off by default; two
    /// clock reads per item are little next to an item, but a plain run does not pay them.
    pub fn set_item_timing(&self, on: bool) {
        self.shared.clock.on.store(on, Ordering::Relaxed);
    }

    /// Nanoseconds this pool's threads together have spent inside work items while item
    /// timing was on: a layer's share is the difference across it.
    pub fn busy_ns(&self) -> u64 {
        self.shared.clock.busy_ns.load(Ordering::Relaxed)
    }

    /// Spread even the smallest conv over the threads (tests of the threaded paths).
    #[doc(hidden)]
    pub fn always_parallel(mut self) -> Threads {
        self.serial_below = 0;
        self
    }

    /// Call `f(i)` once for each `i < items`, spread over the threads. Items are handed out
    /// one at a time from a shared counter, so uneven items still balance. `f` must not
    /// call `for_each` on the same `Threads`.
    pub(crate) fn for_each(&self, items: usize, f: &(dyn Fn(usize) + Sync)) {
        if self.helpers.is_empty() || items <= 1 {
            (0..items).for_each(|i| self.shared.run_item(f, i));
            return;
        }
        let _one_call = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let _off_helpers = self.placement.keep_caller_off();
        let s = &*self.shared;
        // SAFETY: the gate is closed and empty (every call leaves it so), so no helper
        // reads `job` now. The lifetime is erased; it is only used until this call has
        // waited for every helper that joined.
        unsafe {
            let f: *const (dyn Fn(usize) + Sync + '_) = f;
            *s.job.get() = (std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Job>(f), items);
        }
        for (t, next) in s.next.iter().enumerate() {
            next.0.store(share(items, self.count, t).0, Ordering::Relaxed);
        }
        s.generation.fetch_add(1, Ordering::Relaxed);
        s.gate.store(OPEN, Ordering::Release);
        for h in &self.helpers {
            h.thread().unpark();
        }
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(s, f, items, 0)));
        // Close the gate, then wait for the helpers inside: each is finishing one item.
        s.gate.fetch_and(!OPEN, Ordering::AcqRel);
        let start = Instant::now();
        while s.gate.load(Ordering::Acquire) != 0 {
            if start.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        if let Err(panic) = mine {
            std::panic::resume_unwind(panic);
        }
        if s.panicked.swap(false, Ordering::Relaxed) {
            panic!("a conv worker thread panicked");
        }
    }

    /// Call `f` on runs of consecutive items `0..items`, a few runs per thread: for items
    /// too small to hand out one by one (a 14x14 plane is a fraction of a microsecond).
    pub(crate) fn for_each_run(&self, items: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
        let runs = items.min(RUNS_PER_THREAD * self.count());
        self.for_each(runs, &|i| f(i * items / runs..(i + 1) * items / runs));
    }

    /// Call `f(i, chunk)` for each `chunk`-float piece `i` of `out` (the last may be
    /// shorter), spread over the threads; each piece is written by one call only.
    pub(crate) fn for_each_chunk(&self, out: &mut [f32], chunk: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        let pieces: Vec<std::sync::Mutex<&mut [f32]>> =
            out.chunks_mut(chunk.max(1)).map(std::sync::Mutex::new).collect();
        self.for_each(pieces.len(), &|i| {
            let mut piece = pieces[i].lock().unwrap_or_else(|e| e.into_inner());
            f(i, &mut piece);
        });
    }
}

/// `i`-th of `parts` near-equal slices of `0..total` (thread `i`'s run of a call's items).
pub(crate) fn share(total: usize, parts: usize, i: usize) -> (usize, usize) {
    (i * total / parts, (i + 1) * total / parts)
}

/// Thread `me`: take the items of its own run, then of the others' in turn, until none
/// are left.
fn work(s: &Shared, f: &(dyn Fn(usize) + Sync + '_), items: usize, me: usize) {
    let threads = s.next.len();
    for t in (me..threads).chain(0..me) {
        let end = share(items, threads, t).1;
        loop {
            let i = s.next[t].0.fetch_add(1, Ordering::Relaxed);
            if i >= end {
                break;
            }
            s.run_item(f, i);
        }
    }
}

/// A helper's life: join each call once if its gate is still open, else spin, then park.
fn helper(s: &Shared, me: usize) {
    let mut last = 0u64;
    let mut idle_since = Instant::now();
    loop {
        if s.shutdown.load(Ordering::Acquire) {
            return;
        }
        let gate = s.gate.load(Ordering::Acquire);
        let generation = s.generation.load(Ordering::Relaxed);
        if gate & OPEN != 0 && generation != last {
            if s.gate.compare_exchange_weak(gate, gate + 1, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                // Inside: the generation and job cannot change until we leave.
                last = s.generation.load(Ordering::Relaxed);
                // SAFETY: written before the gate opened (acquired above), valid until
                // we leave the gate.
                let (f, items) = unsafe { *s.job.get() };
                let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(s, unsafe { &*f }, items, me)));
                if ok.is_err() {
                    s.panicked.store(true, Ordering::Relaxed);
                }
                s.gate.fetch_sub(1, Ordering::Release);
                idle_since = Instant::now();
            }
            continue;
        }
        if idle_since.elapsed() < SPIN {
            std::hint::spin_loop();
        } else {
            // Woken by a call (or the timeout): spin a little again before the next park.
            std::thread::park_timeout(Duration::from_millis(100));
            idle_since = Instant::now();
        }
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        for h in &self.helpers {
            h.thread().unpark();
        }
        for h in self.helpers.drain(..) {
            let _ = h.join();
        }
    }
}

impl std::fmt::Debug for Threads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Threads({})", self.count)
    }
}

/// A raw output pointer shared by workers that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);

impl SendPtr {
    /// The pointer (a method, so closures capture the `Sync` wrapper, not the raw field).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: every user writes through it only to regions no other item touches, and the
// buffer outlives the `for_each` call that hands it out.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_item_runs_once_per_call() {
        for count in [1, 2, 3, 4] {
            let threads = Threads::new(count).unwrap();
            for items in [0, 1, 2, 3, 5, 7, 64] {
                for _ in 0..200 {
                    let hits: Vec<AtomicU32> = (0..items).map(|_| AtomicU32::new(0)).collect();
                    threads.for_each(items, &|i| {
                        hits[i].fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "{count} threads, {items} items");
                }
            }
        }
    }

    #[test]
    fn helpers_share_the_work() {
        let threads = Threads::new(2).unwrap();
        let main = std::thread::current().id();
        let elsewhere = AtomicU32::new(0);
        // Slow items: the helper must join and take some.
        for _ in 0..20 {
            threads.for_each(8, &|_| {
                std::thread::sleep(Duration::from_millis(1));
                if std::thread::current().id() != main {
                    elsewhere.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        assert!(elsewhere.load(Ordering::Relaxed) > 0, "the helper never ran an item");
    }

    /// Each thread starts on its own run of the items (the same part of every call), and
    /// takes from the others' only when its own is done.
    #[test]
    fn each_thread_starts_on_its_own_run() {
        let threads = Threads::new(2).unwrap();
        let main = std::thread::current().id();
        let mut helper_ran = 0;
        for _ in 0..20 {
            let firsts = Mutex::new((None, None));
            threads.for_each(8, &|i| {
                let mut f = firsts.lock().unwrap();
                let mine = if std::thread::current().id() == main { &mut f.0 } else { &mut f.1 };
                mine.get_or_insert(i);
                drop(f);
                std::thread::sleep(Duration::from_millis(1));
            });
            let (caller, helper) = firsts.into_inner().unwrap();
            assert_eq!(caller, Some(0), "the caller starts its own run (items 0..4)");
            if let Some(first) = helper {
                assert!(first >= 4, "the helper started at item {first}, not in its own run (4..8)");
                helper_ran += 1;
            }
        }
        assert!(helper_ran > 0, "the helper never ran an item");
    }

    /// Item time counts while timing is on, on every thread, and only then.
    #[test]
    fn items_are_timed_only_while_timing_is_on() {
        let slow = |_: usize| std::thread::sleep(Duration::from_millis(2));
        for count in [1, 2] {
            let threads = Threads::new(count).unwrap();
            threads.for_each(4, &slow);
            assert_eq!(threads.busy_ns(), 0, "{count} threads: counted with timing off");
            threads.set_item_timing(true);
            let start = Instant::now();
            threads.for_each(8, &slow);
            threads.for_each(1, &slow);
            let (busy, wall) = (threads.busy_ns(), start.elapsed().as_nanos() as u64);
            threads.set_item_timing(false);
            threads.for_each(4, &slow);
            assert!(busy >= 18_000_000, "{count} threads: 9 items of 2 ms, {busy} ns counted");
            // At most `count` threads were busy at once.
            assert!(busy <= count as u64 * wall, "{busy} ns busy in {wall} ns on {count} threads");
            assert_eq!(threads.busy_ns(), busy, "{count} threads: counted after timing stopped");
        }
    }

    #[test]
    fn a_panic_reaches_the_caller_and_the_pool_survives() {
        let threads = Threads::new(2).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            threads.for_each(16, &|i| {
                std::thread::sleep(Duration::from_micros(200));
                assert!(i != 5, "item 5 fails");
            })
        }));
        assert!(r.is_err());
        let done = AtomicU32::new(0);
        threads.for_each(16, &|_| {
            done.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(done.load(Ordering::Relaxed), 16);
    }
}
