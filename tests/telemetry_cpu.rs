//! The real CPU sampler on this machine: utilisation rises under load, RSS rises when
//! memory is touched, RAPL and frequency are read or say why not.

use std::sync::Mutex;
use std::time::{Duration, Instant};
use synprof::telemetry::{CpuSampler, Figure, Sampler};

/// One test at a time: each measures this process' CPU use.
static ALONE: Mutex<()> = Mutex::new(());

fn spin_all_cores(for_: Duration) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| {
                let start = Instant::now();
                let mut x = 0u64;
                while start.elapsed() < for_ {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            });
        }
    });
}

#[test]
fn utilisation_rises_under_a_busy_loop() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let mut cpu = CpuSampler::new();
    let first = cpu.sample(Duration::ZERO);
    assert!(first.cpu_util_pct.is_none(), "no utilisation before a second reading");
    std::thread::sleep(Duration::from_millis(300));
    let idle = cpu.sample(Duration::from_millis(300));
    spin_all_cores(Duration::from_millis(500));
    let busy = cpu.sample(Duration::from_millis(800));
    let (idle_proc, busy_proc) = (idle.process_cpu_util_pct.unwrap(), busy.process_cpu_util_pct.unwrap());
    let busy_sys = busy.cpu_util_pct.unwrap();
    // the machine may be shared and busy: spinning threads get a fair share, not all of it
    assert!(idle_proc < 5.0, "this process was sleeping: {idle_proc}%");
    assert!(busy_proc > idle_proc + 10.0, "this process spun every core: {idle_proc}% -> {busy_proc}%");
    assert!(busy_sys >= busy_proc - 5.0 && busy_sys <= 100.0, "system {busy_sys}% vs process {busy_proc}%");
}

#[test]
fn rss_rises_when_memory_is_touched() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let mut cpu = CpuSampler::new();
    let before = cpu.sample(Duration::ZERO).rss_bytes.unwrap();
    let block = std::hint::black_box(vec![7u8; 128 << 20]);
    let after = cpu.sample(Duration::from_millis(1)).rss_bytes.unwrap();
    assert!(after >= before + (120 << 20), "RSS {before} -> {after}");
    drop(block);
}

#[test]
fn rapl_and_frequency_are_read_or_say_why_not() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let mut cpu = CpuSampler::new();
    let facts = cpu.facts();
    let s1 = cpu.sample(Duration::ZERO);
    match &facts.rapl {
        Figure::Value(domains) => {
            assert!(domains.contains("intel-rapl:"), "{domains}");
            spin_all_cores(Duration::from_millis(200));
            let s2 = cpu.sample(Duration::from_millis(200));
            assert!(s2.rapl_energy_uj.unwrap() > s1.rapl_energy_uj.unwrap(), "package energy increases");
        }
        Figure::NotAvailable { not_available } => {
            assert!(s1.rapl_energy_uj.is_none(), "no fake 0 J");
            assert!(not_available.contains("/sys/class/powercap"), "{not_available}");
            assert!(format!("{}", facts.rapl).starts_with("not available: "));
        }
    }
    match &facts.frequency_source {
        Figure::Value(_) => assert!(s1.cpu_freq_mhz.unwrap() > 100.0, "{:?}", s1.cpu_freq_mhz),
        Figure::NotAvailable { .. } => assert!(s1.cpu_freq_mhz.is_none()),
    }
    // A guest's /proc/cpuinfo clock is the host's nominal one: not offered as the clock.
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let guest = cpuinfo.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"));
    if guest && !std::path::Path::new("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq").exists() {
        let why = facts.frequency_mhz.reason().expect("no nominal clock passed off as the running one");
        assert!(why.contains("nominal"), "{why}");
    }
    // The measured clock is a clock, and the source says how it was measured.
    let mhz = *facts.measured_clock_mhz.value().expect("x86-64 or AArch64");
    assert!((400.0..7000.0).contains(&mhz), "{mhz} MHz");
    assert!(facts.measured_clock_method.contains("dependent"), "{}", facts.measured_clock_method);
    assert!(facts.threads >= 1);
    assert!(facts.model_name.value().is_some_and(|m| !m.is_empty()), "{:?}", facts.model_name);
}
