//! `freezeframe eval`: a run against real videos of its prompts, or existing videos alone.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use freezeframe_train::evaluate::{EvalOptions, EvalSettings, evaluate_run, markdown};
use freezeframe_train::run::Run;

use crate::cli::{EvalArgs, Sampling};

pub fn run(a: EvalArgs) -> Result<()> {
    match (a.run, a.videos) {
        (Some(run), _) => eval_run(&run, a.n, a.sampling),
        (None, Some(path)) => eval_videos(&path, a.fps),
        (None, None) => bail!("give --run or --videos"),
    }
}

fn eval_run(run: &Path, n: usize, s: Sampling) -> Result<()> {
    let opts = EvalOptions {
        settings: EvalSettings {
            n,
            steps: s.steps,
            cfg: s.cfg,
            seed: s.seed,
        },
        progress: true,
        backend: s.backend,
    };
    let run = Run::new(run);
    let report = evaluate_run(&run, &opts)?;
    print!("{}", markdown(&report));
    println!(
        "wrote {} and {}",
        run.eval_path().display(),
        run.dir.join("eval.md").display()
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
