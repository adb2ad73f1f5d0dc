//! Step 1 of the pipeline: the image weights every strategy starts from — the shipped image
//! model, a file, or an image pre-training run cached by the hash of its config.
use std::path::{Path, PathBuf};

use freezeframe_model::text::fnv1a;
use freezeframe_train::{Run, RunConfig, TrainError, TrainOptions, train};

use crate::config::AblationConfig;
use crate::error::{LabError, io};

/// The shipped image model (made by `configs/image-model-slots.toml`: trained at every frame
/// slot of the calibrated clips, so that the `stream` study keeps the inflation identity),
/// embedded so that the lab and the demo start from image weights, as Open-Sora starts from
/// PixArt-α, wherever they run.
pub const SHIPPED_IMAGE_MODEL: &[u8] =
    include_bytes!("../../../assets/image-model-slots.safetensors");

/// Image weights ready for `[init] from`, and the hash that identifies their content.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageWeights {
    pub path: PathBuf,
    pub hash: u64,
    /// A pre-training run found finished in the cache (not trained by this call).
    #[serde(skip)]
    pub cached: bool,
}

/// The embedded image model as a file: written once into `dir` under a name that carries its
/// hash (a retrained model gets a file of its own), reused while its bytes are the shipped
/// ones, and never written over a different file.
pub fn shipped(dir: &Path) -> Result<ImageWeights, LabError> {
    let hash = fnv1a(0, SHIPPED_IMAGE_MODEL);
    let path = dir.join(format!(
        "shipped-image-model-{:08x}.safetensors",
        hash >> 32
    ));
    match std::fs::read(&path) {
        Ok(bytes) if bytes == SHIPPED_IMAGE_MODEL => {
            return Ok(ImageWeights {
                path,
                hash,
                cached: true,
            });
        }
        Ok(_) => {
            return Err(LabError::Results {
                path,
                message: "exists and is not the shipped image model; move it away and run again"
                    .into(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("read {}", path.display()))(e)),
    }
    std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    let tmp = path.with_extension("safetensors.tmp");
    std::fs::write(&tmp, SHIPPED_IMAGE_MODEL).map_err(io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(io(format!("rename to {}", path.display())))?;
    Ok(ImageWeights {
        path,
        hash,
        cached: false,
    })
}

/// The image weights in words, for the report: which file, its content hash, and where it
/// came from.
pub fn describe(ab: &AblationConfig, w: &ImageWeights) -> String {
    let origin = if let Some(pre) = &ab.image.pretrain {
        format!("pre-trained by this study from `{}`", pre.display())
    } else if w.hash == fnv1a(0, SHIPPED_IMAGE_MODEL) {
        "the shipped image model (`assets/image-model-slots.safetensors`, made by `configs/image-model-slots.toml`)".into()
    } else {
        "named by `[image] from`".into()
    };
    format!(
        "`{}`, {origin}; content hash (FNV-1a) {:016x}",
        w.path.display(),
        w.hash
    )
}

/// Whether the files `[image]` names are there, before the study folder is claimed: a typo in
/// a path must not leave a study folder behind.
pub fn check_source(ab: &AblationConfig) -> Result<(), LabError> {
    let named = match (&ab.image.pretrain, &ab.image.from) {
        (Some(p), _) => Some(("[image] pretrain", p)),
        (None, Some(p)) if p != Path::new("shipped") => Some(("[image] from", p)),
        _ => None,
    };
    match named {
        Some((key, p)) if !p.is_file() => Err(LabError::Config {
            path: p.clone(),
            message: format!("{key}: no such file (missing, or not a file)"),
        }),
        _ => Ok(()),
    }
}

/// Resolves `[image]`: pre-training runs go to `out/image-<hash>/` and are reused while their
/// config is unchanged.
pub fn image_weights(
    ab: &AblationConfig,
    out: &Path,
    progress: bool,
) -> Result<ImageWeights, LabError> {
    if let Some(pre) = &ab.image.pretrain {
        return pretrain(pre, out, progress);
    }
    match &ab.image.from {
        None => shipped(out),
        Some(p) if p == Path::new("shipped") => shipped(out),
        Some(p) => Ok(ImageWeights {
            path: p.clone(),
            hash: content_hash(p)?,
            cached: true,
        }),
    }
}

/// The content hash that identifies image weights (FNV-1a of the file's bytes): the cells'
/// names depend on it, and a cluster task checks the file against it before training.
pub fn content_hash(path: &Path) -> Result<u64, LabError> {
    let bytes = std::fs::read(path).map_err(|e| LabError::Config {
        path: path.to_path_buf(),
        message: format!("image weights: {e}"),
    })?;
    Ok(fnv1a(0, &bytes))
}

fn pretrain(config: &Path, out: &Path, progress: bool) -> Result<ImageWeights, LabError> {
    let mut cfg = RunConfig::load(config).map_err(|e| LabError::Config {
        path: config.to_path_buf(),
        message: e.to_string(),
    })?;
    if !cfg.data.image_mode {
        return Err(LabError::Config {
            path: config.to_path_buf(),
            message:
                "[image] pretrain names a run that is not an image run (data.image_mode = false)"
                    .into(),
        });
    }
    // The hash covers everything that shapes the weights, not where they are written.
    cfg.out_dir = PathBuf::new();
    cfg.name = String::new();
    let plan = freezeframe_plan::load(&cfg.plan).map_err(TrainError::from)?;
    let hash = fnv1a(fnv1a(0, cfg.to_toml().as_bytes()), plan.text.as_bytes());
    cfg.out_dir = out.to_path_buf();
    cfg.name = format!("image-{:08x}", hash >> 32);
    let run = Run::for_config(&cfg);
    let finished = run.latest_checkpoint().map(|(s, _)| s) == Some(cfg.train.steps);
    if !finished {
        train(
            &cfg,
            &TrainOptions {
                // A folder left by a kill before its config was written resumes too.
                resume: run.dir.exists(),
                progress,
                stop_after: None,
                final_samples: true,
            },
        )?;
    } else {
        tracing::info!(run = %run.dir.display(), "image pre-training found in the cache");
    }
    Ok(ImageWeights {
        path: run.dir,
        hash,
        cached: finished,
    })
}
