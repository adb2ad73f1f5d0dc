//! `freezeframe bench`: scoring and training-step timings (their figures go to BENCHMARKS.md).
use std::path::Path;

use anyhow::Result;
use freezeframe_train::RunConfig;

use crate::cli::{BenchCommand, TrainStepArgs};

pub fn run(c: BenchCommand) -> Result<()> {
    match c {
        BenchCommand::Eval(a) => eval(a.n),
        BenchCommand::TrainStep(a) => train_step(a),
    }
}

fn eval(n: usize) -> Result<()> {
    let r = freezeframe_eval::bench::score_set(n)?;
    println!(
        "bench eval: {} videos of {:?} scored in {:.2} s ({:.1} ms/video, {} threads); set comparison {:.1} ms",
        r.videos,
        r.shape,
        r.scoring_seconds,
        1e3 * r.scoring_seconds / r.videos as f64,
        r.threads,
        r.compare_ms
    );
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

fn train_step(a: TrainStepArgs) -> Result<()> {
    let TrainStepArgs {
        config,
        preset,
        plan,
        phase,
        steps,
        warmup,
        batch,
        backend,
    } = a;
    use freezeframe_train::bench::{StepBenchSpec, preset_spec, train_step};
    let (mut cfg, label) = match config {
        Some(path) => {
            let cfg = RunConfig::load(&path)?;
            let label = cfg.name.clone();
            (cfg, label)
        }
        None => (preset_spec(&preset, &plan, 8)?, preset),
    };
    if let Some(b) = batch {
        cfg.train.batch_size = b;
        // Validated again as a whole: the batch's limits (and the activation size it
        // makes with this model) hold for the flag as for the key.
        cfg = RunConfig::parse(&cfg.to_toml(), Path::new("bench train-step --batch"))?;
    }
    if let Some(b) = backend {
        cfg.runtime.backend = b;
    }
    let r = train_step(&StepBenchSpec {
        cfg,
        label,
        phase,
        steps,
        warmup,
    })?;
    println!(
        "bench train-step model={} backend={} plan={} phase={} batch={} params={} trainable={} steps={}: median {:.1} ms/step (min {:.1}, max {:.1}); peak RSS {}; batch construction {:.1} ms (not included)",
        r.model,
        r.backend,
        r.plan,
        r.phase,
        r.batch_size,
        r.params,
        r.trainable_params,
        r.steps,
        r.median_ms,
        r.min_ms,
        r.max_ms,
        r.peak_rss_mib
            .map_or("n/a".to_string(), |m| format!("{m:.0} MiB")),
        r.data_ms_median
    );
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
