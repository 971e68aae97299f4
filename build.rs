//! Records the git revision and rustc version in the binary, for run contexts.
fn main() {
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let rev = run("git", &["rev-parse", "--short=12", "HEAD"]);
    let dirty = !run("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    println!("cargo:rustc-env=SYNPROF_GIT_REVISION={}{}", rev, if dirty && !rev.is_empty() { "-dirty" } else { "" });
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    println!("cargo:rustc-env=SYNPROF_RUSTC_VERSION={}", run(&rustc, &["--version"]));
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
}
