//! Host figures from procfs and sysfs: CPU utilisation (system and this process), RSS,
//! CPU frequency, and RAPL package energy where readable.

use super::procfs::{self, CpuTimes, PolledFile};
use super::rapl::Rapl;
use super::{CpuFacts, DeviceFacts, Figure, Sample, Sampler};
use std::time::{Duration, Instant};

/// /proc/cpuinfo can be slow to read on large machines: read it at most this often.
const CPUINFO_EVERY: Duration = Duration::from_secs(1);
/// One sysfs file per CPU: read the frequency at most this often (clocks change slowly).
const FREQUENCY_EVERY: Duration = Duration::from_millis(100);

pub struct CpuSampler {
    proc_stat: Result<PolledFile, String>,
    self_stat: Result<PolledFile, String>,
    status: Result<PolledFile, String>,
    freq: Frequency,
    rapl: Result<Rapl, String>,
    previous: Option<(CpuTimes, u64)>,
    last_frequency: Option<Duration>,
}

enum Frequency {
    /// scaling_cur_freq of every CPU (kHz).
    Sysfs(Vec<PolledFile>),
    /// "cpu MHz" of /proc/cpuinfo, cached between reads.
    Cpuinfo {
        last: Option<(Instant, f64)>,
    },
    None(String),
}

fn open(path: &str) -> Result<PolledFile, String> {
    PolledFile::open(path).map_err(|e| format!("{path} cannot be read: {e}"))
}

impl CpuSampler {
    pub fn new() -> CpuSampler {
        CpuSampler {
            proc_stat: open("/proc/stat"),
            self_stat: open("/proc/self/stat"),
            status: open("/proc/self/status"),
            freq: Frequency::open(),
            rapl: Rapl::open(),
            previous: None,
            last_frequency: None,
        }
    }

    /// System and process utilisation since the previous call (none at the first).
    fn utilisation(&mut self) -> (Option<f64>, Option<f64>) {
        let (Ok(stat), Ok(own)) = (&mut self.proc_stat, &mut self.self_stat) else { return (None, None) };
        let Some(times) = stat.read().ok().and_then(procfs::parse_proc_stat) else { return (None, None) };
        let Some(ticks) = own.read().ok().and_then(procfs::parse_self_stat_ticks) else { return (None, None) };
        let out = match self.previous {
            Some((before, own_before)) if times.total > before.total => {
                let total = (times.total - before.total) as f64;
                let system = (times.busy.saturating_sub(before.busy)) as f64 / total * 100.0;
                // both counters are in USER_HZ ticks: the process' share of all CPUs' time
                let process = (ticks.saturating_sub(own_before)) as f64 / total * 100.0;
                (Some(system.min(100.0)), Some(process.min(100.0)))
            }
            _ => (None, None),
        };
        self.previous = Some((times, ticks));
        out
    }

    fn rss_bytes(&mut self) -> Option<u64> {
        let status = self.status.as_mut().ok()?;
        procfs::parse_status_bytes(status.read().ok()?, "VmRSS")
    }

    pub fn facts(&self) -> CpuFacts {
        let info = std::fs::read_to_string("/proc/cpuinfo").map(|t| procfs::parse_cpuinfo(&t));
        let from_info = |f: &dyn Fn(&procfs::CpuInfo) -> Option<String>, what: &str| -> Figure<String> {
            match &info {
                Ok(i) => f(i).map(Figure::Value).unwrap_or_else(|| Figure::na(format!("/proc/cpuinfo has no {what}"))),
                Err(e) => Figure::na(format!("/proc/cpuinfo cannot be read: {e}")),
            }
        };
        let number = |fig: Figure<String>| match fig {
            Figure::Value(v) => v.parse::<usize>().map_err(|e| e.to_string()).into(),
            Figure::NotAvailable { not_available } => Figure::na(not_available),
        };
        let max_frequency_mhz = read_khz("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
            .map(|khz| khz / 1e3)
            .map_err(|e| format!("{e} (no cpufreq driver)"))
            .into();
        CpuFacts {
            model_name: from_info(&|i| i.model_name.clone(), "model name"),
            sockets: number(from_info(&|i| i.sockets.map(|s| s.to_string()), "physical id")),
            physical_cores: number(from_info(&|i| i.physical_cores.map(|s| s.to_string()), "core id")),
            threads: crate::exec::device::available_cores(),
            frequency_mhz: self.current_mhz_uncached(),
            measured_clock_mhz: super::clock::measure_mhz(),
            measured_clock_method: super::clock::METHOD.to_string(),
            max_frequency_mhz,
            utilization_source: match (&self.proc_stat, &self.self_stat) {
                (Ok(_), Ok(_)) => Figure::Value("/proc/stat and /proc/self/stat".into()),
                (Err(e), _) | (_, Err(e)) => Figure::na(e.clone()),
            },
            rss_source: match &self.status {
                Ok(_) => Figure::Value("VmRSS of /proc/self/status".into()),
                Err(e) => Figure::na(e.clone()),
            },
            frequency_source: match &self.freq {
                Frequency::Sysfs(files) => Figure::Value(format!("scaling_cur_freq of {} CPUs", files.len())),
                Frequency::Cpuinfo { .. } => Figure::Value("cpu MHz of /proc/cpuinfo (no cpufreq in sysfs)".into()),
                Frequency::None(why) => Figure::na(why.clone()),
            },
            rapl: match &self.rapl {
                Ok(r) => Figure::Value(r.description().to_string()),
                Err(e) => Figure::na(e.clone()),
            },
        }
    }

    fn current_mhz_uncached(&self) -> Figure<f64> {
        match &self.freq {
            Frequency::Sysfs(files) => {
                let mut sum = 0.0;
                for f in files {
                    match read_khz(f.path()) {
                        Ok(khz) => sum += khz / 1e3,
                        Err(e) => return Figure::na(e),
                    }
                }
                Figure::Value(sum / files.len() as f64)
            }
            Frequency::Cpuinfo { .. } => {
                cpuinfo_mhz().map_or_else(|| Figure::na("/proc/cpuinfo has no cpu MHz"), Figure::Value)
            }
            Frequency::None(why) => Figure::na(why.clone()),
        }
    }
}

impl Default for CpuSampler {
    fn default() -> Self {
        CpuSampler::new()
    }
}

fn read_khz(path: impl AsRef<std::path::Path>) -> Result<f64, String> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
    text.trim().parse::<f64>().map_err(|_| format!("{} does not hold a number", path.display()))
}

fn cpuinfo_mhz() -> Option<f64> {
    procfs::parse_cpuinfo(&std::fs::read_to_string("/proc/cpuinfo").ok()?).mean_mhz
}

impl Frequency {
    fn open() -> Frequency {
        let mut cpus: Vec<(usize, std::path::PathBuf)> = std::fs::read_dir("/sys/devices/system/cpu")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let n = e.file_name().to_str()?.strip_prefix("cpu")?.parse::<usize>().ok()?;
                        Some((n, e.path().join("cpufreq/scaling_cur_freq")))
                    })
                    .collect()
            })
            .unwrap_or_default();
        cpus.sort();
        // offline CPUs have no cpufreq directory: skip them
        let files: Vec<PolledFile> = cpus.iter().filter_map(|(_, path)| PolledFile::open(path).ok()).collect();
        let info = std::fs::read_to_string("/proc/cpuinfo").ok().map(|t| procfs::parse_cpuinfo(&t));
        if !files.is_empty() {
            Frequency::Sysfs(files)
        } else if let Some(procfs::CpuInfo { mean_mhz: Some(mhz), hypervisor: true, .. }) = info {
            Frequency::None(format!(
                "no cpufreq in sysfs, and in a virtual machine /proc/cpuinfo's cpu MHz ({mhz:.0}) is the host's \
                 nominal clock, not the running one (see the measured clock)"
            ))
        } else if info.is_some_and(|i| i.mean_mhz.is_some()) {
            Frequency::Cpuinfo { last: None }
        } else {
            Frequency::None(
                "no scaling_cur_freq in /sys/devices/system/cpu/cpu*/cpufreq and no cpu MHz in /proc/cpuinfo".into(),
            )
        }
    }

    fn read_mhz(&mut self, now: Instant) -> Option<f64> {
        match self {
            Frequency::Sysfs(files) => {
                let mut sum = 0.0;
                for f in files.iter_mut() {
                    sum += f.read().ok()?.trim().parse::<f64>().ok()? / 1e3;
                }
                Some(sum / files.len() as f64)
            }
            Frequency::Cpuinfo { last } => match last {
                Some((at, mhz)) if now.duration_since(*at) < CPUINFO_EVERY => Some(*mhz),
                _ => {
                    let mhz = cpuinfo_mhz()?;
                    *last = Some((now, mhz));
                    Some(mhz)
                }
            },
            Frequency::None(_) => None,
        }
    }
}

impl Sampler for CpuSampler {
    fn name(&self) -> &str {
        "cpu"
    }

    fn sample(&mut self, t: Duration) -> Sample {
        let rapl_energy_uj = self.rapl.as_mut().ok().and_then(|r| r.read_uj());
        let (cpu_util_pct, process_cpu_util_pct) = self.utilisation();
        let frequency_due = self.last_frequency.is_none_or(|last| t >= last + FREQUENCY_EVERY);
        if frequency_due {
            self.last_frequency = Some(t);
        }
        Sample {
            rapl_energy_uj,
            cpu_util_pct,
            process_cpu_util_pct,
            rss_bytes: self.rss_bytes(),
            cpu_freq_mhz: if frequency_due { self.freq.read_mhz(Instant::now()) } else { None },
            ..Sample::at(t)
        }
    }

    fn sample_power(&mut self, t: Duration) -> Sample {
        Sample { rapl_energy_uj: self.rapl.as_mut().ok().and_then(|r| r.read_uj()), ..Sample::at(t) }
    }

    fn describe(&self) -> DeviceFacts {
        DeviceFacts { cpu: Some(self.facts()), ..DeviceFacts::default() }
    }
}
