//! `freezeframe data`: preview the synthetic world or a clip cache; prepare real footage.
use std::path::Path;

use anyhow::{Context, Result, bail};
use freezeframe_data::gif_out::{grid_size, write_grid};
use freezeframe_data::{Split, World, WorldConfig};
use freezeframe_train::RunConfig;

use crate::cli::{DataCommand, PrepareArgs};
use crate::files::refuse_existing;

pub fn run(c: DataCommand) -> Result<()> {
    match c {
        DataCommand::Preview(a) => match a.cache {
            Some(dir) => cache_preview(a.n, &a.out, &dir),
            None => data_preview(a.n, &a.out, a.seed, a.config.as_deref()),
        },
        DataCommand::Prepare(a) => prepare(a),
    }
}

fn prepare(a: PrepareArgs) -> Result<()> {
    let PrepareArgs {
        csv,
        out,
        frames,
        size,
        fps,
        stride,
        clips_per_video,
    } = a;
    let settings = freezeframe_data::real::PrepareSettings {
        frames,
        size,
        fps,
        stride,
        clips_per_video,
    };
    let bar = freezeframe_train::progress::bar(
        "prepare",
        0,
        0,
        true,
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} videos (eta {eta})",
    );
    let r = freezeframe_data::real::prepare(&csv, &out, &settings, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish();
    for s in &r.skipped {
        eprintln!("skipped line {}: {} — {}", s.line, s.path, s.reason);
    }
    println!("{}", r.summary());
    Ok(())
}

/// Pixel scale of preview grids.
const PREVIEW_SCALE: usize = 3;

fn data_preview(n: usize, out: &Path, seed: u64, config: Option<&Path>) -> Result<()> {
    refuse_existing(&[out, &out.with_extension("txt")])?;
    let mut world_cfg = match config {
        Some(p) => RunConfig::load(p)?.data,
        None => WorldConfig::default(),
    };
    anyhow::ensure!(
        world_cfg.kind.is_pixels(),
        "{}: a latent run; its clips are latents, which preview cannot draw (decode them with \
         tools/latents/make_cache.py --decode)",
        config.map_or(String::new(), |p| p.display().to_string())
    );
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
