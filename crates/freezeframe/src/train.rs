//! `freezeframe train`.
use anyhow::Result;
use freezeframe_train::{RunConfig, TrainOptions, train};

use crate::cli::TrainArgs;

pub fn run(a: TrainArgs) -> Result<()> {
    let TrainArgs {
        config,
        resume,
        backend,
    } = a;
    let mut cfg = RunConfig::load(&config)?;
    if let Some(b) = backend {
        cfg.runtime.backend = b;
    }
    let run = freezeframe_train::Run::for_config(&cfg);
    // The library starts a run that has no folder yet (the lab relies on it); a user
    // who asks to resume means a run that exists, and a wrong path must not quietly
    // start a new one at step 0.
    if resume && !run.config_path().is_file() {
        anyhow::bail!(
            "--resume: there is no run at {} (paths in a config are relative to the config file)",
            run.dir.display()
        );
    }
    train_and_report(&cfg, resume)
}

fn train_and_report(cfg: &RunConfig, resume: bool) -> Result<()> {
    let m = cfg.model()?;
    eprintln!(
        "training {} ({} steps, batch {}, model {} D={} depth={}, {}×{}×{} videos)",
        cfg.name,
        cfg.train.steps,
        cfg.train.batch_size,
        cfg.model.preset,
        m.hidden,
        m.depth,
        m.frames,
        m.height,
        m.width
    );
    let s = train(
        cfg,
        &TrainOptions {
            resume,
            ..TrainOptions::default()
        },
    )?;
    if s.losses.is_empty() {
        println!(
            "run {} is already complete at step {}; nothing to train",
            s.run.dir.display(),
            s.steps
        );
        return Ok(());
    }
    println!("run folder: {}", s.run.dir.display());
    println!(
        "steps {} in {:.0} s; {}{}",
        s.steps,
        s.seconds,
        s.loss_line().unwrap_or_else(|| "no step trained".into()),
        s.final_val
            .map_or_else(String::new, |v| format!("; val loss {v:.4}"))
    );
    for p in &s.samples {
        println!("sample: {}", p.display());
    }
    Ok(())
}
