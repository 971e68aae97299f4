//! Parsers for /proc and /sys text, and a file kept open for cheap re-reads.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A procfs or sysfs file kept open: seeking to 0 and reading again makes the kernel
/// regenerate it, without the cost of an open and close per sample.
pub struct PolledFile {
    path: PathBuf,
    file: File,
    text: String,
}

impl PolledFile {
    pub fn open(path: impl AsRef<Path>) -> io::Result<PolledFile> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path)?;
        let mut polled = PolledFile { path, file, text: String::with_capacity(4096) };
        polled.read()?; // fail here, not at the first sample, if it cannot be read
        Ok(polled)
    }

    pub fn read(&mut self) -> io::Result<&str> {
        self.text.clear();
        self.file.seek(SeekFrom::Start(0))?;
        self.file.read_to_string(&mut self.text)?;
        Ok(&self.text)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Jiffies from the aggregate `cpu` line of /proc/stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

/// Busy = user + nice + system + irq + softirq + steal; idle = idle + iowait (guest time is
/// already inside user and nice, so it is not added again).
pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|x| x.parse().ok()).collect::<Option<_>>()?;
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some(CpuTimes { busy: total - idle, total })
}

/// utime + stime (jiffies) from /proc/self/stat; the command name may hold spaces and
/// parentheses, so fields are counted after the last ')'.
pub fn parse_self_stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // after ')': state is field 3 of the line, utime 14 and stime 15 -> indices 11 and 12
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `Key:   123 kB` line of /proc/self/status, in bytes.
pub fn parse_status_bytes(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What /proc/cpuinfo says about the processors.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CpuInfo {
    pub model_name: Option<String>,
    pub logical_cpus: usize,
    pub sockets: Option<usize>,
    pub physical_cores: Option<usize>,
    pub mean_mhz: Option<f64>,
    /// The `hypervisor` flag: a virtual machine, whose `cpu MHz` is the host's nominal clock.
    pub hypervisor: bool,
}

pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    let mut sockets = std::collections::BTreeSet::new();
    let mut cores = std::collections::BTreeSet::new();
    let (mut mhz_sum, mut mhz_n) = (0.0, 0usize);
    let (mut socket, mut core) = (None, None);
    let value = |line: &str| line.split_once(':').map(|(_, v)| v.trim().to_string());
    for line in text.lines().chain(std::iter::once("")) {
        let key = line.split(':').next().unwrap_or("").trim();
        match key {
            "processor" => info.logical_cpus += 1,
            "model name" | "Model" if info.model_name.is_none() => info.model_name = value(line),
            "cpu MHz" => {
                if let Some(mhz) = value(line).and_then(|v| v.parse::<f64>().ok()) {
                    mhz_sum += mhz;
                    mhz_n += 1;
                }
            }
            "flags" | "Features" => {
                info.hypervisor |= value(line).is_some_and(|v| v.split_whitespace().any(|f| f == "hypervisor"))
            }
            "physical id" => socket = value(line),
            "core id" => core = value(line),
            "" => {
                // end of one processor's block
                if let Some(s) = socket.take() {
                    sockets.insert(s.clone());
                    if let Some(c) = core.take() {
                        cores.insert((s, c));
                    }
                }
            }
            _ => {}
        }
    }
    if !sockets.is_empty() {
        info.sockets = Some(sockets.len());
    }
    if !cores.is_empty() {
        info.physical_cores = Some(cores.len());
    }
    if mhz_n > 0 {
        info.mean_mhz = Some(mhz_sum / mhz_n as f64);
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_busy_and_total() {
        let text = "cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n";
        let t = parse_proc_stat(text).unwrap();
        assert_eq!(t.total, 100 + 5 + 50 + 800 + 20 + 3 + 2 + 10);
        assert_eq!(t.busy, 100 + 5 + 50 + 3 + 2 + 10);
        assert!(parse_proc_stat("intr 1 2 3").is_none());
    }

    #[test]
    fn self_stat_counts_fields_after_the_command_name() {
        let text = "4242 (my (odd) prog) R 1 4242 4242 0 -1 4194304 100 0 0 0 37 5 0 0 20 0 1 0 10 0 0";
        assert_eq!(parse_self_stat_ticks(text), Some(42));
    }

    #[test]
    fn status_values_in_bytes() {
        let text = "VmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_status_bytes(text, "VmRSS"), Some(1024 * 1024));
        assert_eq!(parse_status_bytes(text, "VmSwap"), None);
    }

    #[test]
    fn cpuinfo_counts_sockets_and_cores() {
        let block = |p: usize, s: usize, c: usize, mhz: f64| {
            format!("processor\t: {p}\nmodel name\t: Test CPU 9000\nphysical id\t: {s}\ncore id\t\t: {c}\ncpu MHz\t\t: {mhz}\n\n")
        };
        // 2 sockets x 2 cores x 2 threads
        let mut text = String::new();
        for p in 0..8 {
            text += &block(p, p / 4, (p / 2) % 2, 1000.0 + p as f64 * 100.0);
        }
        let info = parse_cpuinfo(&text);
        assert_eq!(info.model_name.as_deref(), Some("Test CPU 9000"));
        assert_eq!(info.logical_cpus, 8);
        assert_eq!(info.sockets, Some(2));
        assert_eq!(info.physical_cores, Some(4));
        assert_eq!(info.mean_mhz, Some(1350.0));
        assert!(!info.hypervisor);
    }

    /// A guest's `flags` name `hypervisor` (x86); a word that merely contains it does not count.
    #[test]
    fn cpuinfo_tells_a_virtual_machine() {
        let cpu = |flags: &str| format!("processor\t: 0\ncpu MHz\t\t: 2596.0\nflags\t\t: {flags}\n\n");
        assert!(parse_cpuinfo(&cpu("fpu vme sse2 hypervisor avx512f")).hypervisor);
        assert!(!parse_cpuinfo(&cpu("fpu vme sse2 avx512f")).hypervisor);
        assert!(!parse_cpuinfo(&cpu("fpu not_a_hypervisor_flag")).hypervisor);
    }

    #[test]
    fn polled_files_reread_fresh_text() {
        let mut stat = PolledFile::open("/proc/self/stat").unwrap();
        let first = parse_self_stat_ticks(stat.read().unwrap()).unwrap();
        let spin = std::time::Instant::now();
        while spin.elapsed().as_millis() < 60 {
            std::hint::black_box(0);
        }
        let second = parse_self_stat_ticks(stat.read().unwrap()).unwrap();
        assert!(second > first, "{first} -> {second}");
    }
}
