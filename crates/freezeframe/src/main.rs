//! The `freezeframe` command line: a thin layer over the library crates.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod cli;
mod interop;
mod lab;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::Parser;
use cli::{
    BenchCommand, Cli, Command, DataCommand, ExportFormat, ImportCommand, ModelCommand,
    PlanCommand, Sampling,
};
use freezeframe_data::gif_out::{grid_size, write_grid};
use freezeframe_data::{Split, World, WorldConfig};
use freezeframe_model::{StdiTConfig, Stdit, param_table};
use freezeframe_train::run::Run;
use freezeframe_train::sample::{SAMPLE_GIF_SCALE, generate, load_run};
use freezeframe_train::{RunConfig, TrainOptions, train};
use interop::{export_pixart, import_pixart};

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
        Command::Demo { out_dir, quick } => lab::demo(&out_dir, quick),
        Command::Ablate {
            config,
            out,
            jobs,
            report_only,
            shard,
        } => lab::ablate(&config, out, jobs, report_only, shard.as_deref()),
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
                    cache,
                },
        } => match cache {
            Some(dir) => cache_preview(n, &out, &dir),
            None => data_preview(n, &out, seed, config.as_deref()),
        },
        Command::Data {
            command:
                DataCommand::Prepare {
                    csv,
                    out,
                    frames,
                    size,
                    fps,
                    stride,
                    clips_per_video,
                },
        } => {
            let settings = freezeframe_data::real::PrepareSettings {
                frames,
                size,
                fps,
                stride,
                clips_per_video,
            };
            let bar = freezeframe_train::progress::bar(
                0,
                true,
                "prepare [{elapsed_precise}] {wide_bar} {pos}/{len} videos (eta {eta})",
            );
            let r = freezeframe_data::real::prepare(&csv, &out, &settings, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            for s in &r.skipped {
                eprintln!("skipped line {}: {} — {}", s.line, s.path, s.reason);
            }
            println!("{}", r.summary());
            Ok(())
        }
        Command::Train {
            config,
            resume,
            backend,
        } => {
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
        Command::Sample {
            run,
            prompt,
            n,
            out,
            sampling,
        } => sample(&run, &prompt, n, &out, sampling),
        Command::Import {
            command:
                ImportCommand::Pixart {
                    from,
                    config,
                    out,
                    text_len,
                    seed,
                },
        } => import_pixart(&from, config, &out, text_len, seed),
        Command::Export { run, format, out } => match format {
            ExportFormat::DiffusersPixart => export_pixart(&run, &out),
        },
        Command::Eval {
            run,
            videos,
            n,
            sampling,
            fps,
        } => match (run, videos) {
            (Some(run), _) => eval_run(&run, n, sampling),
            (None, Some(path)) => eval_videos(&path, fps),
            (None, None) => bail!("give --run or --videos"),
        },
        Command::Bench {
            command: BenchCommand::Eval { n },
        } => {
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
        Command::Plan {
            command: PlanCommand::List,
        } => {
            for (name, text) in freezeframe_plan::PRESETS {
                let p = freezeframe_plan::parse(name, text)?;
                println!("{name:<22} {}", p.spec.description);
            }
            Ok(())
        }
        Command::Plan {
            command:
                PlanCommand::Explain {
                    plan,
                    model,
                    steps,
                    lr,
                },
        } => plan_explain(&plan, &model, steps, lr),
        Command::Bench {
            command:
                BenchCommand::TrainStep {
                    config,
                    preset,
                    plan,
                    phase,
                    steps,
                    warmup,
                    batch,
                    backend,
                },
        } => {
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
    }
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

fn eval_run(run: &Path, n: usize, sampling: Sampling) -> Result<()> {
    let Sampling {
        steps,
        cfg,
        seed,
        backend,
    } = sampling;
    let opts = freezeframe_train::evaluate::EvalOptions {
        settings: freezeframe_train::evaluate::EvalSettings {
            n,
            steps,
            cfg,
            seed,
        },
        progress: true,
        backend,
    };
    let report = freezeframe_train::evaluate::evaluate_run(&Run::new(run), &opts)?;
    print!("{}", freezeframe_train::evaluate::markdown(&report));
    println!(
        "wrote {} and {}",
        run.join("eval.json").display(),
        run.join("eval.md").display()
    );
    Ok(())
}

fn eval_videos(path: &Path, fps: f32) -> Result<()> {
    if path.join("index.json").is_file() {
        // A clip cache from `data prepare`: every clip, at the cache's own frame rate if known.
        let cache = freezeframe_data::real::ClipCache::open(path)?;
        let videos: Vec<_> = (0..cache.len()).map(|i| cache.video(i)).collect();
        let cache_fps = cache.fps().unwrap_or(fps);
        let summary =
            freezeframe_eval::summarise(&freezeframe_eval::score_videos(&videos, cache_fps));
        println!(
            "{} clips of cache {} scored at {cache_fps:.2} fps",
            summary.n,
            path.display()
        );
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("read {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("gif")))
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let (mut videos, mut skipped) = (Vec::new(), 0);
    for f in &files {
        match freezeframe_data::gif_in::read_gif(f) {
            // Motion needs two frames: a still image is not scored as a (static) video.
            Ok(v) if v.frames < 2 => {
                tracing::warn!("skipped: {} has one frame, not a video", f.display());
                skipped += 1;
            }
            Ok(v) => videos.push(v),
            Err(e) => {
                tracing::warn!("skipped: {e}");
                skipped += 1;
            }
        }
    }
    if videos.is_empty() {
        bail!(
            "no readable GIF under {} ({skipped} skipped)",
            path.display()
        );
    }
    let s = freezeframe_eval::summarise(&freezeframe_eval::score_videos(&videos, fps));
    println!("{} videos scored ({skipped} skipped) at {fps} fps", s.n);
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(())
}

fn plan_explain(plan: &str, model: &str, steps: usize, lr: f64) -> Result<()> {
    let Some(cfg) = StdiTConfig::preset(model) else {
        bail!(
            "unknown model preset {model:?}; choose one of {:?}",
            StdiTConfig::PRESETS
        );
    };
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    let loaded = freezeframe_plan::load(plan)?;
    let m = freezeframe_model::paths::stable_ids(Stdit::new(&cfg, &Device::flex()));
    let bound = freezeframe_train::plans::resolve_for(&loaded, &m, cfg.depth, steps)?;
    print!("{}", freezeframe_plan::explain(&bound.plan, lr));
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

/// Pixel scale of preview grids.
const PREVIEW_SCALE: usize = 3;

/// Files a command writes are never the user's existing files: refused before any work.
fn refuse_existing(paths: &[&Path]) -> Result<()> {
    for p in paths {
        if p.exists() {
            bail!(
                "{} exists and is never replaced: pass another --out or move it away",
                p.display()
            );
        }
    }
    Ok(())
}

fn data_preview(n: usize, out: &Path, seed: u64, config: Option<&Path>) -> Result<()> {
    refuse_existing(&[out, &out.with_extension("txt")])?;
    let mut world_cfg = match config {
        Some(p) => RunConfig::load(p)?.data,
        None => WorldConfig::default(),
    };
    world_cfg.seed = seed;
    let cols = (n as f64).sqrt().ceil() as usize;
    grid_size(n, cols, (world_cfg.size, world_cfg.size), PREVIEW_SCALE)?;
    let world = World::new(world_cfg)?;
    let clips: Vec<_> = (0..n.max(1) as u64)
        .map(|i| world.clip(Split::Train, i))
        .collect();
    let videos: Vec<_> = clips.iter().map(|c| c.video.clone()).collect();
    write_grid(out, &videos, cols, PREVIEW_SCALE, 15)?;
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

fn cache_preview(n: usize, out: &Path, dir: &Path) -> Result<()> {
    refuse_existing(&[out, &out.with_extension("txt")])?;
    let cache = freezeframe_data::real::ClipCache::open(dir)?;
    if cache.is_empty() {
        bail!("{} holds no clips", dir.display());
    }
    let k = n.clamp(1, cache.len());
    // Spread the preview over the whole cache rather than its first videos.
    let picks: Vec<usize> = (0..k).map(|i| i * cache.len() / k).collect();
    let videos: Vec<_> = picks.iter().map(|&i| cache.video(i)).collect();
    let cols = (k as f64).sqrt().ceil() as usize;
    write_grid(out, &videos, cols, PREVIEW_SCALE, 15)?;
    let mut text = String::new();
    for (j, &i) in picks.iter().enumerate() {
        text.push_str(&format!("{j:>3} (clip {i}): {}\n", cache.caption(i)));
    }
    let txt = out.with_extension("txt");
    std::fs::write(&txt, &text).with_context(|| format!("write {}", txt.display()))?;
    print!("{text}");
    println!(
        "wrote {} and {} ({} of {} clips)",
        out.display(),
        txt.display(),
        k,
        cache.len()
    );
    Ok(())
}

fn sample(run: &Path, prompt: &str, n: usize, out: &Path, sampling: Sampling) -> Result<()> {
    let Sampling {
        steps,
        cfg,
        seed,
        backend,
    } = sampling;
    refuse_existing(&[out])?;
    let run = Run::new(run);
    let device = run.backend(backend)?.device()?;
    let loaded = load_run(&run, &device)?;
    let m = &loaded.model_config;
    grid_size(n, n, (m.height, m.width), SAMPLE_GIF_SCALE)?;
    let spec = loaded.spec(steps, cfg, seed);
    let bar = freezeframe_train::progress::bar(
        steps as u64,
        true,
        "sample [{elapsed_precise}] {wide_bar} {pos}/{len} steps",
    );
    let prompts = vec![prompt.to_string(); n.max(1)];
    let videos = generate(
        &loaded.model,
        &loaded.encoder,
        &prompts,
        spec,
        &device,
        |i| bar.set_position(i as u64),
    )?;
    bar.finish_and_clear();
    write_grid(out, &videos, n.max(1), SAMPLE_GIF_SCALE, 15)?;
    println!(
        "wrote {} ({} videos of {prompt:?}, {steps} steps, cfg {cfg})",
        out.display(),
        videos.len()
    );
    Ok(())
}
