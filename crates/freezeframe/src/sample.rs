//! `freezeframe sample`: a GIF grid of one prompt from a run's EMA weights.
use std::path::Path;

use anyhow::Result;
use freezeframe_data::gif_out::{grid_size, write_grid};
use freezeframe_train::run::Run;
use freezeframe_train::sample::{SAMPLE_GIF_SCALE, generate, load_run};

use crate::cli::{SampleArgs, Sampling};
use crate::files::refuse_existing;

pub fn run(a: SampleArgs) -> Result<()> {
    sample(&a.run, &a.prompt, a.n, &a.out, a.sampling)
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
    let latent = run.load_config()?.data.kind == freezeframe_data::DataKind::Latents;
    // Checked before the model and the cache are loaded.
    anyhow::ensure!(
        !latent || out.extension().is_some_and(|e| e == "safetensors"),
        "{}: a latent run writes latents; name the output `<name>.safetensors`",
        out.display()
    );
    let loaded = load_run(&run, &device)?;
    let spec = loaded.spec(steps, cfg, seed);
    if latent {
        return sample_latents(&loaded, prompt, n, out, spec, &device);
    }
    let m = &loaded.model_config;
    grid_size(n, n, (m.height, m.width), SAMPLE_GIF_SCALE)?;
    let bar = freezeframe_train::progress::bar(
        "sample",
        0,
        steps as u64,
        true,
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} steps",
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
    bar.finish();
    write_grid(out, &videos, n.max(1), SAMPLE_GIF_SCALE, 15)?;
    println!(
        "wrote {} ({} videos of {prompt:?}, {steps} steps, cfg {cfg})",
        out.display(),
        videos.len()
    );
    Ok(())
}

/// A latent run's samples: the latents the model predicts, as `latents` [n, T, C, h, w] in a
/// safetensors file (decode with `tools/latents/make_cache.py --decode`).
fn sample_latents(
    loaded: &freezeframe_train::sample::LoadedRun,
    prompt: &str,
    n: usize,
    out: &Path,
    spec: freezeframe_train::sample::SampleSpec,
    device: &burn::prelude::Device,
) -> Result<()> {
    let prompts = vec![prompt.to_string(); n.max(1)];
    let x = freezeframe_train::sample::sample_tensor(
        &loaded.model,
        &loaded.encoder,
        &prompts,
        0,
        spec,
        device,
        |_| {},
    )?;
    freezeframe_train::sample::save_latents(out, x)?;
    let [t, c, h, w] = spec.shape;
    println!(
        "wrote {} ({} latent clips [{t}, {c}, {h}, {w}] of {prompt:?}); decode with tools/latents/make_cache.py --decode",
        out.display(),
        prompts.len()
    );
    Ok(())
}
