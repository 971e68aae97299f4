//! CPU package energy from RAPL (/sys/class/powercap/intel-rapl:N, also used by AMD Zen),
//! summed over packages, each package's wrap unwound with its `max_energy_range_uj`.

use super::procfs::PolledFile;
use std::path::Path;

const POWERCAP: &str = "/sys/class/powercap";

struct Package {
    energy: PolledFile,
    range_uj: u64,
    last_uj: u64,
}

/// Accumulates package energy since it was opened; a reading below the previous one is a
/// wrap (the counter restarts at 0 after `max_energy_range_uj`).
pub struct Rapl {
    packages: Vec<Package>,
    total_uj: u64,
    description: String,
}

impl Rapl {
    /// Open every top-level package domain, or say why there is none.
    pub fn open() -> Result<Rapl, String> {
        Rapl::open_at(Path::new(POWERCAP))
    }

    pub fn open_at(root: &Path) -> Result<Rapl, String> {
        let entries = std::fs::read_dir(root).map_err(|e| {
            format!("{} cannot be read ({e}): no powercap driver, or a VM or container without RAPL", root.display())
        })?;
        let mut dirs: Vec<_> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                // intel-rapl:0 is a package; intel-rapl:0:0 is a sub-domain (core, dram) inside it
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("intel-rapl:") && n.matches(':').count() == 1)
            })
            .collect();
        dirs.sort();
        if dirs.is_empty() {
            return Err(format!("{} has no intel-rapl package domains (no RAPL driver loaded)", root.display()));
        }
        let mut packages = Vec::new();
        let mut names = Vec::new();
        for dir in &dirs {
            let path = dir.join("energy_uj");
            let mut energy = PolledFile::open(&path).map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                    ": since Linux 5.10 only root may read it (CVE-2020-8694); run as root or make it readable"
                } else {
                    ""
                };
                format!("{} cannot be read ({e}){hint}", path.display())
            })?;
            let last_uj = parse_uj(energy.read().map_err(|e| format!("{}: {e}", path.display()))?)
                .ok_or_else(|| format!("{} does not hold a number", path.display()))?;
            let range_path = dir.join("max_energy_range_uj");
            let range_uj = std::fs::read_to_string(&range_path)
                .ok()
                .and_then(|t| parse_uj(&t))
                .ok_or_else(|| format!("{} cannot be read: cannot unwind counter wraps", range_path.display()))?;
            let name = std::fs::read_to_string(dir.join("name")).map(|n| n.trim().to_string()).unwrap_or_default();
            names.push(format!("{} ({name})", dir.file_name().unwrap_or_default().to_string_lossy()));
            packages.push(Package { energy, range_uj, last_uj });
        }
        let range_j = packages.iter().map(|p| p.range_uj).min().unwrap_or(0) as f64 / 1e6;
        let description = format!("{}, wraps every {range_j:.0} J, unwound", names.join(", "));
        Ok(Rapl { packages, total_uj: 0, description })
    }

    /// Energy of all packages since `open`, in microjoules.
    pub fn read_uj(&mut self) -> Option<u64> {
        for p in &mut self.packages {
            let now = parse_uj(p.energy.read().ok()?)?;
            self.total_uj += unwrap_delta(p.last_uj, now, p.range_uj);
            p.last_uj = now;
        }
        Some(self.total_uj)
    }

    pub fn description(&self) -> &str {
        &self.description
    }
}

fn parse_uj(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Increase of a counter that restarts at 0 after `range`.
pub fn unwrap_delta(previous: u64, now: u64, range: u64) -> u64 {
    if now >= previous {
        now - previous
    } else {
        range.saturating_sub(previous) + now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_are_unwound() {
        assert_eq!(unwrap_delta(100, 250, 1000), 150);
        assert_eq!(unwrap_delta(900, 50, 1000), 150);
    }

    #[test]
    fn reads_a_fake_powercap_tree_and_unwinds_its_wrap() {
        let root = std::env::temp_dir().join(format!("synprof-rapl-{}", std::process::id()));
        let pkg = root.join("intel-rapl:0");
        std::fs::create_dir_all(root.join("intel-rapl:0:0")).unwrap();
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join("name"), "package-0\n").unwrap();
        std::fs::write(pkg.join("max_energy_range_uj"), "1000000\n").unwrap();
        std::fs::write(pkg.join("energy_uj"), "999000\n").unwrap();
        let mut rapl = Rapl::open_at(&root).unwrap();
        assert!(rapl.description().contains("intel-rapl:0 (package-0)"), "{}", rapl.description());
        assert_eq!(rapl.read_uj(), Some(0));
        std::fs::write(pkg.join("energy_uj"), "4000\n").unwrap(); // wrapped
        assert_eq!(rapl.read_uj(), Some(5000));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_missing_tree_says_why() {
        let e = Rapl::open_at(Path::new("/nonexistent/powercap")).err().unwrap();
        assert!(e.contains("/nonexistent/powercap cannot be read"), "{e}");
    }
}
