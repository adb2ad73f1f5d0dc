//! The `freezeframe` command line: a thin layer over the library crates.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::{Parser, Subcommand};
use freezeframe_data::gif_out::write_grid;
use freezeframe_data::{Split, World, WorldConfig};
use freezeframe_model::{StdiTConfig, Stdit, param_table};
use freezeframe_train::run::Run;
use freezeframe_train::sample::{SampleSpec, generate, load_run};
use freezeframe_train::{RunConfig, TrainOptions, train};

/// The quick-start config, embedded so `freezeframe demo` works from any folder.
const QUICKSTART: &str = include_str!("../../../configs/quickstart.toml");

#[derive(Parser)]
#[command(
    name = "freezeframe",
    version,
    about = "Train STDiT video diffusion models with declarative training plans"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the embedded quick-start config end to end (synthetic data, training, sample GIFs).
    Demo {
        /// Parent folder of the run folder.
        #[arg(long, default_value = "runs")]
        out_dir: PathBuf,
    },
    /// Inspect models.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Synthetic data.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Train from a TOML config.
    Train {
        #[arg(long)]
        config: PathBuf,
        /// Continue from the newest complete checkpoint of the run folder.
        #[arg(long)]
        resume: bool,
    },
    /// Sample videos from a trained run (its newest checkpoint's EMA weights).
    Sample {
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 4)]
        n: usize,
        #[arg(long, default_value = "out.gif")]
        out: PathBuf,
        #[arg(long, default_value_t = 30)]
        steps: usize,
        #[arg(long, default_value_t = 4.0)]
        cfg: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// One line per parameter (Open-Sora path, shape, count) and totals.
    Params {
        #[arg(long, default_value = "base")]
        preset: String,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// A GIF grid of synthetic videos; captions are printed and written beside it.
    Preview {
        #[arg(long, default_value_t = 16)]
        n: usize,
        #[arg(long, default_value = "preview.gif")]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Take the world settings from this run config's [data] section.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Median milliseconds of a full training step.
    TrainStep {
        #[arg(long, default_value = "base")]
        preset: String,
        #[arg(long, default_value_t = 20)]
        steps: usize,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        #[arg(long, default_value_t = 8)]
        batch: usize,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo { out_dir } => demo(&out_dir),
        Command::Model {
            command: ModelCommand::Params { preset },
        } => model_params(&preset),
        Command::Data {
            command:
                DataCommand::Preview {
                    n,
                    out,
                    seed,
                    config,
                },
        } => data_preview(n, &out, seed, config.as_deref()),
        Command::Train { config, resume } => {
            let cfg = RunConfig::load(&config)?;
            train_and_report(&cfg, resume)
        }
        Command::Sample {
            run,
            prompt,
            n,
            out,
            steps,
            cfg,
            seed,
        } => sample(&run, &prompt, n, &out, steps, cfg, seed),
        Command::Bench {
            command:
                BenchCommand::TrainStep {
                    preset,
                    steps,
                    warmup,
                    batch,
                },
        } => {
            let r = freezeframe_train::bench::train_step(&preset, batch, steps, warmup)?;
            println!(
                "bench train-step preset={} batch={} params={} steps={}: median {:.1} ms/step (min {:.1}, max {:.1}); batch construction {:.1} ms (not included)",
                r.preset,
                r.batch_size,
                r.params,
                r.steps,
                r.median_ms,
                r.min_ms,
                r.max_ms,
                r.data_ms_median
            );
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
    }
}

fn demo(out_dir: &Path) -> Result<()> {
    let mut cfg = RunConfig::parse(QUICKSTART, Path::new("configs/quickstart.toml"))?;
    cfg.out_dir = out_dir.to_path_buf();
    // Never overwrite an earlier demo: take the first free name.
    let base = cfg.name.clone();
    let mut k = 2;
    while cfg.out_dir.join(&cfg.name).exists() {
        cfg.name = format!("{base}-{k}");
        k += 1;
    }
    train_and_report(&cfg, false)
}

fn train_and_report(cfg: &RunConfig, resume: bool) -> Result<()> {
    let m = cfg.model_config().map_err(anyhow::Error::msg)?;
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
    let first =
        s.losses.iter().take(10).map(|l| l.1).sum::<f32>() / s.losses.len().clamp(1, 10) as f32;
    let last_n = s.losses.len().min(10).max(1);
    let last = s.losses.iter().rev().take(last_n).map(|l| l.1).sum::<f32>() / last_n as f32;
    println!("run folder: {}", s.run.dir.display());
    println!(
        "steps {} in {:.0} s; train loss {:.4} → {:.4}{}",
        s.steps,
        s.seconds,
        first,
        last,
        s.final_val
            .map(|v| format!("; val loss {v:.4}"))
            .unwrap_or_default()
    );
    for p in &s.samples {
        println!("sample: {}", p.display());
    }
    Ok(())
}

fn model_params(preset: &str) -> Result<()> {
    let Some(cfg) = StdiTConfig::preset(preset) else {
        bail!(
            "unknown preset {preset:?}; choose one of {:?}",
            StdiTConfig::PRESETS
        );
    };
    let model = Stdit::new(&cfg, &Device::flex());
    let table = param_table(&model);
    let width = table.iter().map(|p| p.path.len()).max().unwrap_or(10);
    println!(
        "# Open-Sora paths; shapes as Burn stores them (Linear weights [in, out], PyTorch has [out, in])"
    );
    println!("{:<width$}  {:<14}  {:>10}", "path", "shape", "count");
    for p in &table {
        println!(
            "{:<width$}  {:<14}  {:>10}",
            p.path,
            format!("{:?}", p.shape),
            p.numel()
        );
    }
    let total: usize = table.iter().map(|p| p.numel()).sum();
    println!(
        "total: {} tensors, {} parameters (preset {preset})",
        table.len(),
        total
    );
    Ok(())
}

fn data_preview(n: usize, out: &Path, seed: u64, config: Option<&Path>) -> Result<()> {
    let mut world_cfg = match config {
        Some(p) => RunConfig::load(p)?.data,
        None => WorldConfig::default(),
    };
    world_cfg.seed = seed;
    let world = World::new(world_cfg)?;
    let clips: Vec<_> = (0..n.max(1) as u64)
        .map(|i| world.clip(Split::Train, i))
        .collect();
    let videos: Vec<_> = clips.iter().map(|c| c.video.clone()).collect();
    let cols = (n as f64).sqrt().ceil() as usize;
    write_grid(out, &videos, cols, 3, 15)?;
    let mut text = String::new();
    for (i, c) in clips.iter().enumerate() {
        text.push_str(&format!(
            "{:>3} (row {}, col {}): {}\n",
            i,
            i / cols,
            i % cols,
            c.caption
        ));
    }
    let txt = out.with_extension("txt");
    std::fs::write(&txt, &text).with_context(|| format!("write {}", txt.display()))?;
    print!("{text}");
    println!("wrote {} and {}", out.display(), txt.display());
    Ok(())
}

fn sample(
    run: &Path,
    prompt: &str,
    n: usize,
    out: &Path,
    steps: usize,
    cfg: f32,
    seed: u64,
) -> Result<()> {
    let device = Device::flex();
    let (model, enc, rc) = load_run(&Run::new(run), &device)?;
    let m = rc.model_config().map_err(anyhow::Error::msg)?;
    let spec = SampleSpec {
        steps,
        cfg,
        seed,
        shape: [m.frames, m.channels, m.height, m.width],
    };
    let bar = indicatif::ProgressBar::new(steps as u64);
    let prompts = vec![prompt.to_string(); n.max(1)];
    let videos = generate(&model, &enc, &prompts, spec, &device, |i| {
        bar.set_position(i as u64)
    })?;
    bar.finish_and_clear();
    write_grid(out, &videos, n.max(1), 4, 15)?;
    println!(
        "wrote {} ({} videos of {prompt:?}, {steps} steps, cfg {cfg})",
        out.display(),
        videos.len()
    );
    Ok(())
}
