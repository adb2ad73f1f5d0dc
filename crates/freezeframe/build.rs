//! The commit this binary is built from, for reports and done markers (`FREEZEFRAME_COMMIT`).
//! Read at build time, not at run time: a run's working directory is often another repository
//! (a researcher's own project) or none at all (a cluster task in a container), and the report
//! must name the code that produced it.
use std::path::Path;
use std::process::Command;

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let root = Path::new(&manifest).join("../..");
    let commit = match git(&root, &["rev-parse", "--short", "HEAD"]) {
        Some(c) => match git(&root, &["status", "--porcelain", "--untracked-files=no"]) {
            Some(s) if !s.is_empty() => format!("{c} (with uncommitted changes)"),
            _ => c,
        },
        None => "unknown (built outside a git checkout)".into(),
    };
    println!("cargo:rustc-env=FREEZEFRAME_COMMIT={commit}");
    // Rebuilt when HEAD moves or a tracked source changes (which may make the tree dirty).
    for p in [".git/HEAD", ".git/index", "crates", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
}
