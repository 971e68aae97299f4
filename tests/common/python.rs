//! A Python interpreter with the packages a test needs (onnx, onnxruntime, numpy, ...).
//!
//! `SYNPROF_PYTHON` names one to use as it is. Otherwise the first test that asks creates
//! a virtual environment at `<target dir>/pyenv` with `python3 -m venv` and installs the
//! packages there with pip (from PyPI), once: later runs find them installed. Tests in one
//! process share the work through a `OnceLock`; separate processes through a lock file.
//! When Python or the packages cannot be had, the test panics saying what to install: a
//! check that cannot run must not pass silently.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// Point synprof's external backends at `python` (`SYNPROF_PYTHON`) for this process: for
/// test binaries whose tests that read it run one at a time (one test function).
pub fn set_python(python: &Path) {
    // SAFETY: the callers' binaries have no other thread reading the environment meanwhile.
    unsafe { std::env::set_var("SYNPROF_PYTHON", python) };
}

/// A Python that sees no site-packages (isolated mode, `-I -S`): a runtime missing. A
/// script under a fresh temporary folder named after `tag` and this process.
pub fn bare_python(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("synprof_{tag}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bare = dir.join("bare-python");
    std::fs::write(&bare, "#!/bin/sh\nexec python3 -I -S \"$@\"\n").unwrap();
    std::fs::set_permissions(&bare, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    bare
}

/// An interpreter that can import `packages` (pip distribution names, e.g. `onnxruntime`).
pub fn python_with(packages: &[&str]) -> PathBuf {
    if let Some(python) = std::env::var_os("SYNPROF_PYTHON").filter(|p| !p.is_empty()) {
        let python = PathBuf::from(python);
        if let Err(missing) = has_packages(&python, packages) {
            panic!(
                "SYNPROF_PYTHON={} lacks {missing}: install them into it (`{} -m pip install {}`) \
                 or unset SYNPROF_PYTHON to let the tests make their own environment",
                python.display(),
                python.display(),
                packages.join(" ")
            );
        }
        return python;
    }
    // One set-up at a time in this process; the result of each is remembered.
    static READY: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let ready = READY.get_or_init(|| Mutex::new(Vec::new()));
    let mut ready = ready.lock().unwrap_or_else(|e| e.into_inner());
    let venv = target_dir().join("pyenv");
    let python = venv_python(&venv);
    if packages.iter().all(|p| ready.iter().any(|r| r == p)) && python.exists() {
        return python;
    }
    let _lock = FileLock::acquire(&target_dir().join("pyenv.lock"));
    if !python.exists() {
        create_venv(&venv);
    }
    if let Err(missing) = has_packages(&python, packages) {
        install(&python, &venv, packages, &missing);
        if let Err(missing) = has_packages(&python, packages) {
            panic!("pip reported success but {} still lacks {missing}", venv.display());
        }
    }
    ready.extend(packages.iter().map(|p| p.to_string()));
    python
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else the one holding this test binary
/// (`<target>/<profile>/deps/<test>`), else `target` in the crate.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() { dir } else { Path::new(env!("CARGO_MANIFEST_DIR")).join(dir) };
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .filter(|d| d.join("CACHEDIR.TAG").exists() || d.join(".rustc_info.json").exists())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// `Err` lists the packages `python` cannot find (by distribution name).
fn has_packages(python: &Path, packages: &[&str]) -> Result<(), String> {
    let script = "import sys, importlib.metadata as m\n\
                  missing = []\n\
                  for p in sys.argv[1:]:\n\
                  \x20   try: m.version(p)\n\
                  \x20   except m.PackageNotFoundError: missing.append(p)\n\
                  print(' '.join(missing))\n";
    match Command::new(python).arg("-c").arg(script).args(packages).output() {
        Ok(out) if out.status.success() => {
            let missing = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(missing)
            }
        }
        Ok(out) => Err(format!("everything ({} failed: {})", python.display(), String::from_utf8_lossy(&out.stderr))),
        Err(e) => Err(format!("everything ({} does not run: {e})", python.display())),
    }
}

fn help(packages: &[&str]) -> String {
    format!(
        "These tests need Python 3 with {list}. Either let them build their own environment \
         (needs `python3` with the venv module, e.g. Debian's `apt-get install python3-venv`, and \
         access to PyPI), or install the packages yourself (`python3 -m pip install {list}`) and \
         point SYNPROF_PYTHON at that interpreter.",
        list = packages.join(" ")
    )
}

fn create_venv(venv: &Path) {
    let base = std::env::var_os("PYTHON3").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("python3"));
    eprintln!("creating a Python environment for the tests at {} (once)", venv.display());
    let _ = std::fs::remove_dir_all(venv);
    let out = Command::new(&base).args(["-m", "venv"]).arg(venv).output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`{} -m venv {}` failed: {}\n{}",
            base.display(),
            venv.display(),
            String::from_utf8_lossy(&out.stderr).trim(),
            help(&["onnx", "onnxruntime", "numpy"])
        ),
        Err(e) => panic!("cannot run `{}`: {e}\n{}", base.display(), help(&["onnx", "onnxruntime", "numpy"])),
    }
}

fn install(python: &Path, venv: &Path, packages: &[&str], missing: &str) {
    eprintln!("installing {missing} into {} (once; takes a minute or two)", venv.display());
    let out = Command::new(python)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(packages)
        .output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`pip install {}` into {} failed:\n{}\n{}",
            packages.join(" "),
            venv.display(),
            String::from_utf8_lossy(&out.stderr).trim(),
            help(packages)
        ),
        Err(e) => panic!("cannot run {}: {e}\n{}", python.display(), help(packages)),
    }
}

/// A lock between processes: a file created exclusively, removed on drop. A lock older
/// than the longest install is taken to be left by a killed process and broken.
struct FileLock(PathBuf);

impl FileLock {
    fn acquire(path: &Path) -> FileLock {
        const STALE: Duration = Duration::from_secs(20 * 60);
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
        let start = Instant::now();
        loop {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(_) => return FileLock(path.to_path_buf()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|a| a > STALE) {
                        let _ = std::fs::remove_file(path);
                        continue;
                    }
                    if start.elapsed() > STALE {
                        panic!("waited {STALE:?} for {}; remove it if no test is running", path.display());
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!("cannot create the lock file {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
