//! The `freezeframe` command line: a thin layer over the library crates.
use std::io::IsTerminal;
use std::process::ExitCode;

mod bench;
mod cli;
mod cluster;
mod data;
mod eval;
mod files;
mod interop;
mod lab;
mod model;
mod plan;
mod sample;
mod train;

use anyhow::Result;
use clap::Parser;
use cli::{Cli, Command};

/// glibc's default malloc returns every freed block above its mmap threshold to the kernel, and
/// a training step frees and reallocates megabytes of activations: measured on `base`, 0.15–0.3 s
/// per step went to page faults (system time), more with frozen parameters, whose smaller
/// working set keeps the dynamic threshold low. Keeping freed memory in the heap removes that.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // A log file (nohup, SLURM) gets no colour codes.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by `: ` as `{:#}` joins them, except a cause whose text the
/// message before it already ends with: the libraries' errors print their source themselves
/// (`cannot read config X: No such file …`), and `{:#}` would say it twice.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        // Whole cause only: `read profile` does not swallow a cause `file`.
        if out == text || out.ends_with(&format!(": {text}")) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// One arm per command; each body lives in its module.
fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(a) => lab::demo(a),
        Command::Ablate(a) => lab::ablate(a),
        Command::Model(c) => model::run(c),
        Command::Data(c) => data::run(c),
        Command::Train(a) => train::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Plan(c) => plan::run(c),
        Command::Bench(c) => bench::run(c),
        Command::Import(c) => interop::import(c),
        Command::Export(a) => interop::export(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_the_message_already_ends_with_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(freezeframe_train::TrainError::ReadConfig {
            path: "a.toml".into(),
            source: io,
        });
        assert_eq!(message(&e), "cannot read config a.toml: no such file");
        // A context that does not repeat its cause keeps it, as `{:#}` does.
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(message(&e), "outer: inner");
        // A cause that is only the tail of a word is a cause of its own.
        let e = anyhow::anyhow!("file").context("read profile");
        assert_eq!(message(&e), "read profile: file");
    }
}
