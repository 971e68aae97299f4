//! Which CPU the conv threads run on (Linux; elsewhere nothing is pinned).
//!
//! Helper `i` of a pool is pinned to the `i`-th CPU this process may use, and the calling
//! thread is kept off the helpers' CPUs while it works with them.
//!
//! Why: on a VM with few vCPUs the scheduler often wakes a helper on the caller's own CPU
//! and leaves the two time-slicing one core. Measured on the 2-vCPU dev box: 2 threads
//! ran no faster than 1 under other builds until the helper was pinned; and with the
//! helper pinned, about one process in three still started with the caller on the
//! helper's CPU and ran every parallel conv at half speed (a 3x3 conv at 14x14: 0.52 ms
//! or 1.03-1.18 ms, run to run). onnxruntime pins its intra-op threads the same way.
//!
//! The caller is never pinned for good: only when a call finds it on a helper's CPU is it
//! moved (its affinity narrowed to the other CPUs), and its own affinity is restored when
//! the call ends; the scheduler then leaves it where it is, so later calls find it off the
//! helpers and make no system call at all.

#[cfg(target_os = "linux")]
mod linux {
    /// A `cpu_set_t` of 1024 bits, as glibc defines it.
    pub(super) const WORDS: usize = 1024 / 64;
    pub(super) type Mask = [u64; WORDS];

    extern "C" {
        fn sched_getaffinity(pid: i32, size: usize, mask: *mut u64) -> i32;
        fn sched_setaffinity(pid: i32, size: usize, mask: *const u64) -> i32;
        fn sched_getcpu() -> i32;
    }

    /// This thread's allowed CPUs.
    pub(super) fn get() -> Option<Mask> {
        let mut mask = [0u64; WORDS];
        // SAFETY: the mask buffer is `WORDS * 8` bytes, as passed; pid 0 is this thread.
        (unsafe { sched_getaffinity(0, WORDS * 8, mask.as_mut_ptr()) } == 0).then_some(mask)
    }

    /// Restrict this thread to `mask` (failure leaves it as it was).
    pub(super) fn set(mask: &Mask) -> bool {
        // SAFETY: as in `get`.
        unsafe { sched_setaffinity(0, WORDS * 8, mask.as_ptr()) == 0 }
    }

    /// The CPU this thread runs on now (a vDSO call, no system call).
    pub(super) fn current() -> Option<usize> {
        // SAFETY: no arguments; -1 on failure.
        usize::try_from(unsafe { sched_getcpu() }).ok()
    }

    pub(super) fn cpus(mask: &Mask) -> Vec<usize> {
        (0..WORDS * 64).filter(|&c| mask[c / 64] >> (c % 64) & 1 == 1).collect()
    }

    pub(super) fn only(cpu: usize) -> Mask {
        let mut mask = [0u64; WORDS];
        mask[cpu / 64] |= 1 << (cpu % 64);
        mask
    }
}

/// Where a pool's threads run: worked out once, when the pool starts, from the CPUs the
/// starting thread may use (the process's set: callers are never pinned for good).
pub(crate) struct Placement {
    /// Helper `i` (1-based) runs on `helper_cpus[i - 1]`: the `i`-th allowed CPU, modulo
    /// their count. Empty when the process may use fewer than two CPUs (nothing pinned).
    helper_cpus: Vec<usize>,
    /// The allowed CPUs no helper uses, for a caller found on a helper's CPU.
    #[cfg(target_os = "linux")]
    free: Option<linux::Mask>,
}

impl Placement {
    pub(crate) fn new(helpers: usize) -> Placement {
        #[cfg(target_os = "linux")]
        if let Some(mask) = linux::get() {
            let allowed = linux::cpus(&mask);
            if allowed.len() >= 2 {
                let helper_cpus: Vec<usize> = (1..=helpers).map(|i| allowed[i % allowed.len()]).collect();
                let mut free = [0u64; linux::WORDS];
                for &c in allowed.iter().filter(|c| !helper_cpus.contains(c)) {
                    free[c / 64] |= 1 << (c % 64);
                }
                let free = free.iter().any(|&w| w != 0).then_some(free);
                return Placement { helper_cpus, free };
            }
        }
        let _ = helpers;
        Placement {
            helper_cpus: Vec::new(),
            #[cfg(target_os = "linux")]
            free: None,
        }
    }

    /// Helper `i` (1-based)'s CPU, if helpers are pinned.
    pub(crate) fn helper_cpu(&self, i: usize) -> Option<usize> {
        self.helper_cpus.get(i.wrapping_sub(1)).copied()
    }

    /// Keep the calling thread off the helpers' CPUs while the guard lives (see the module
    /// doc). Off them already, this costs one vDSO call and no system call.
    pub(crate) fn keep_caller_off(&self) -> CallerOffHelpers {
        #[cfg(target_os = "linux")]
        {
            let on_helper = linux::current().is_some_and(|here| self.helper_cpus.contains(&here));
            let restore = match &self.free {
                Some(free) if on_helper => linux::get().filter(|_| linux::set(free)),
                _ => None,
            };
            CallerOffHelpers { restore }
        }
        #[cfg(not(target_os = "linux"))]
        CallerOffHelpers {}
    }
}

/// Pin the calling thread to `cpu` (a helper, once, at its start). Nothing off Linux.
pub(crate) fn pin_to(cpu: usize) {
    #[cfg(target_os = "linux")]
    linux::set(&linux::only(cpu));
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

/// While alive, keeps the calling thread off a pool's helper CPUs; restores the thread's
/// affinity when dropped.
pub(crate) struct CallerOffHelpers {
    #[cfg(target_os = "linux")]
    restore: Option<linux::Mask>,
}

impl Drop for CallerOffHelpers {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(mask) = &self.restore {
            linux::set(mask);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_caller_on_a_helper_cpu_is_moved_off_it_and_restored() {
        let Some(mask) = linux::get() else { return };
        let allowed = linux::cpus(&mask);
        if allowed.len() < 2 {
            eprintln!("one CPU: nothing to test");
            return;
        }
        // Put this thread on helper 1's CPU, as the scheduler sometimes does.
        let placement = Placement::new(1);
        let helper = placement.helper_cpu(1).expect("two CPUs: helper 1 is pinned");
        if !linux::set(&linux::only(helper)) {
            eprintln!("this thread may not change its affinity here: nothing to test");
            return;
        }
        std::thread::yield_now();
        // Give it back its full set; it stays where it is until the guard moves it.
        assert!(linux::set(&mask), "cannot restore this thread's affinity");
        if linux::current() != Some(helper) {
            eprintln!("the scheduler moved this thread already; nothing to test");
            return;
        }
        {
            let _guard = placement.keep_caller_off();
            let now = linux::get().unwrap();
            assert_eq!(now[helper / 64] >> (helper % 64) & 1, 0, "helper's CPU still allowed");
            assert_ne!(linux::current(), Some(helper), "still on the helper's CPU");
        }
        assert_eq!(linux::get().unwrap(), mask, "affinity not restored");
        // Off the helpers' CPUs, a call changes nothing.
        let here = linux::current().unwrap();
        if here != helper {
            let guard = placement.keep_caller_off();
            assert!(guard.restore.is_none());
        }
    }
}
