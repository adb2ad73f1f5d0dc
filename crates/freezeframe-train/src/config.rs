//! The run configuration (TOML). Unknown keys and wrong types are errors that name the key;
//! value checks name the key too. Missing sections and keys take the documented defaults.
use std::path::{Path, PathBuf};

use freezeframe_data::WorldConfig;
use freezeframe_model::{Activation, StdiTConfig, TemporalPos};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::lr::Schedule;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Run name; the run folder is `out_dir/name`.
    pub name: String,
    #[serde(default = "default_out_dir")]
    pub out_dir: PathBuf,
    /// Seeds initialisation, batches, noise and caption dropout.
    #[serde(default)]
    pub seed: u64,
    /// Training plan: a preset name (`freezeframe plan list`) or a plan file, relative to the
    /// config's folder.
    #[serde(default = "default_plan")]
    pub plan: String,
    #[serde(default)]
    pub init: InitSection,
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub data: WorldConfig,
    #[serde(default)]
    pub train: TrainSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub sample: SampleSection,
    /// Where tensors live. Left out of the written config while it is the default, so the
    /// resolved config (and the study's run keys) of a `flex` run read as before it existed.
    #[serde(default, skip_serializing_if = "RuntimeSection::is_default")]
    pub runtime: RuntimeSection,
}

/// The backend a run trains and samples on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSection {
    /// `flex` (CPU, the default) or `wgpu` (a build with the `gpu` feature).
    pub backend: crate::runtime::Backend,
}

impl RuntimeSection {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn default_out_dir() -> PathBuf {
    PathBuf::from("runs")
}

fn default_plan() -> String {
    "scratch".into()
}

/// Where initial weights come from when the plan says `init = "image"`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitSection {
    /// A run folder (its newest checkpoint's EMA weights) or a `.safetensors` file with
    /// Open-Sora keys.
    pub from: Option<PathBuf>,
}

/// Architecture: a preset, optionally overridden. Frames and resolution come from `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// `small` when the section gives only overrides.
    #[serde(default = "default_preset")]
    pub preset: String,
    pub hidden: Option<usize>,
    pub depth: Option<usize>,
    pub heads: Option<usize>,
    pub patch: Option<usize>,
    pub mlp_ratio: Option<f64>,
    /// Caption feature width (PixArt's `caption_channels`).
    #[serde(alias = "caption_channels")]
    pub text_dim: Option<usize>,
    pub text_len: Option<usize>,
    /// Input channels: 3 for RGB (the default), a VAE's latent channels for `[data] kind =
    /// "latents"`.
    pub in_channels: Option<usize>,
    /// `attention` (Open-Sora v1.0, the default), `stream` (Latte) or `gated` (the stream
    /// behind zero-initialised gates): where the temporal position embedding enters.
    pub temporal_pos: Option<TemporalPos>,
    /// `gelu` (exact, the default), `gelu_tanh` (PixArt / Open-Sora) or `silu`: the block MLPs'
    /// activation.
    pub mlp_act: Option<Activation>,
    /// The same choice for the caption projection `y_embedder.y_proj`.
    pub caption_act: Option<Activation>,
    /// PixArt's `interpolation_scale` (default 1).
    pub pos_scale: Option<f64>,
    /// PixArt's `base_size` in patches (default: the grid itself).
    pub pos_base: Option<usize>,
    /// With `temporal_pos = "stream"`: the frame positions the model knows. An image run
    /// (`data.image_mode`) draws a slot per image in [0, frame_slots) and adds its position,
    /// so a video model inflated from it starts as that image model at each frame's slot.
    pub frame_slots: Option<usize>,
    /// The temporal attention also reads the pooled caption (`attn_temp.y_cond`, zero-init).
    pub caption_to_temporal: Option<bool>,
}

fn default_preset() -> String {
    "small".into()
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            preset: default_preset(),
            hidden: None,
            depth: None,
            heads: None,
            patch: None,
            mlp_ratio: None,
            text_dim: None,
            text_len: None,
            in_channels: None,
            temporal_pos: None,
            mlp_act: None,
            caption_act: None,
            pos_scale: None,
            pos_base: None,
            frame_slots: None,
            caption_to_temporal: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    pub batch_size: usize,
    pub steps: usize,
    pub lr: f64,
    pub betas: [f32; 2],
    pub weight_decay: f32,
    pub warmup: usize,
    pub schedule: Schedule,
    /// Final learning rate of the cosine schedule, as a fraction of `lr`.
    pub min_lr_ratio: f64,
    /// Global gradient-norm clip; 0 disables it.
    pub grad_clip: f32,
    pub ema_decay: f32,
    /// Probability of replacing a caption by the null caption (enables guidance).
    pub caption_dropout: f64,
    /// Shift of the logit-normal training timesteps toward noise (SD3 / Open-Sora v1.2):
    /// t' = s·t / (1 + (s − 1)·t); 1 = none.
    pub timestep_shift: f64,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            batch_size: 8,
            steps: 1000,
            lr: 5e-4,
            betas: [0.9, 0.99],
            weight_decay: 0.0,
            warmup: 50,
            schedule: Schedule::Cosine,
            min_lr_ratio: 0.1,
            grad_clip: 1.0,
            ema_decay: 0.99,
            caption_dropout: 0.1,
            timestep_shift: 1.0,
        }
    }
}

/// Intervals in steps; 0 turns a periodic action off (the final checkpoint, validation and
/// samples are always written).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    pub every: usize,
    pub val_every: usize,
    pub checkpoint_every: usize,
    pub sample_every: usize,
    /// Held-out clips scored by the validation loss.
    pub val_clips: usize,
    /// Per-group gradient norm and update/weight ratio (0 = off).
    pub diag_every: usize,
    /// Gradient norm that frozen groups would receive, by an extra backward (0 = off).
    pub frozen_grad_every: usize,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            every: 10,
            val_every: 200,
            checkpoint_every: 200,
            sample_every: 0,
            val_clips: 32,
            diag_every: 50,
            frozen_grad_every: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleSection {
    pub prompts: Vec<String>,
    /// Videos per prompt.
    pub n: usize,
    pub steps: usize,
    pub cfg: f32,
    pub seed: u64,
}

impl Default for SampleSection {
    fn default() -> Self {
        Self {
            prompts: vec![
                "a red circle moves left quickly".into(),
                "a blue square moves up slowly".into(),
                "a yellow triangle stays still".into(),
            ],
            n: 4,
            steps: 30,
            cfg: 4.0,
            seed: 0,
        }
    }
}

/// A `name` that becomes a folder must be one plain folder name: no separators, not `.`/`..`,
/// so that a config can never write outside its `out_dir`.
pub fn check_folder_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(format!("name = {name:?} must be a plain folder name"));
    }
    Ok(())
}

/// The folder of the config file `path`, canonical (absolute, symlinks resolved), that the
/// file's paths are relative to.
pub fn config_dir(path: &Path) -> Result<PathBuf, TrainError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::canonicalize(dir).map_err(|source| TrainError::ReadConfig {
        path: dir.to_path_buf(),
        source,
    })
}

/// The one rule for a path written in a config file: relative to the file's folder `dir`
/// (from [`config_dir`]: canonical, so a `..` that leaves it means what the OS would make of
/// it). The result is lexically normalised (`a/../b` → `b`), so that the resolved config saved
/// in a run folder reads plainly and means the same from any working directory.
pub fn resolve_path(dir: &Path, p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in dir.join(p).components() {
        match c {
            std::path::Component::CurDir => {}
            // `..` after a normal component cancels it; at the root it stays at the root.
            std::path::Component::ParentDir => {
                if !out.pop() && !out.has_root() {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// The smallest runnable config: the tiny model on 4 frames of 16×16, a record every step, no
/// validation or checkpoint between steps, 3 steps ([`RunConfig::tiny`]).
pub const TINY: &str = r#"
name = "tiny"
[model]
preset = "tiny"
[data]
frames = 4
size = 16
speeds = { slow = 0.5, fast = 1.0 }
object_size = [2.0, 3.0]
train_clips = 64
val_clips = 8
[train]
batch_size = 2
steps = 3
lr = 1e-3
warmup = 1
[log]
every = 1
val_every = 0
checkpoint_every = 0
val_clips = 2
"#;

impl RunConfig {
    /// Reads and validates a config file. Every path in it (`out_dir`, `plan` files,
    /// `[init] from`, `[data] cache` and `csv`) is relative to the file's folder, as in Cargo —
    /// `out_dir`'s default `runs` too — whatever the working directory.
    ///
    /// A config with `base = "other.toml"` is that config with this file's keys over it (see
    /// [`crate::inherit`]); it must set its own `name`, or its runs would land in the base's
    /// run folder.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = freezeframe_fs::read_text(path).map_err(|source| TrainError::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = config_dir(path)?;
        match crate::inherit::table_of(&text) {
            Some(t) if t.contains_key("base") => {
                if !t.contains_key("name") {
                    return Err(TrainError::Config {
                        path: path.to_path_buf(),
                        message: "a config with `base` sets its own `name` (else its runs would go to the base's run folder)".into(),
                    });
                }
                Self::load_merged(path, &dir)
            }
            _ => {
                let mut cfg = Self::parse(&text, path)?;
                cfg.resolve_paths(&|_| dir.as_path());
                Ok(cfg)
            }
        }
    }

    /// [`RunConfig::load`] of a config with a `base`: merged, then checked as one file is.
    fn load_merged(path: &Path, dir: &Path) -> Result<Self, TrainError> {
        let crate::inherit::Merged { table, dirs, files } = crate::inherit::load(path)?;
        let bad = |message: String| TrainError::Config {
            path: path.to_path_buf(),
            message: format!(
                "{message} (merged with its base: {})",
                files
                    .iter()
                    .skip(1)
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
        };
        // The merged table has no lines to point at: the error names the key's section instead.
        let mut cfg: RunConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e: serde_path_to_error::Error<toml::de::Error>| {
                let at = e.path().to_string();
                let msg = e.into_inner().message().trim_end().to_string();
                bad(if at == "." {
                    msg
                } else {
                    format!("{at}: {msg}")
                })
            })?;
        cfg.validate().map_err(bad)?;
        cfg.resolve_paths(&|key| dirs.get(key).map_or(dir, |d| d.as_path()));
        // A name of its own is not enough when `out_dir` is inherited too: the same folder
        // would let `train --resume` go on with the base's run under the child's settings. A
        // base that is no whole config alone (a fragment without `name`) has no run folder.
        if let Some(base) = files.get(1)
            && let Ok(b) = RunConfig::load(base)
            && b.out_dir.join(&b.name) == cfg.out_dir.join(&cfg.name)
        {
            return Err(bad(format!(
                "its run folder {} is its base's ({}): give it a `name` of its own",
                cfg.out_dir.join(&cfg.name).display(),
                base.display()
            )));
        }
        Ok(cfg)
    }

    /// Makes every relative path absolute (see [`resolve_path`]) against the folder of the
    /// file that wrote it: `dir_of` maps a dotted key (`init.from`) to that folder.
    fn resolve_paths<'a>(&mut self, dir_of: &dyn Fn(&str) -> &'a Path) {
        self.out_dir = resolve_path(dir_of("out_dir"), &self.out_dir);
        let is_preset = freezeframe_plan::PRESETS
            .iter()
            .any(|(n, _)| *n == self.plan);
        if !is_preset {
            self.plan = resolve_path(dir_of("plan"), Path::new(&self.plan))
                .display()
                .to_string();
        }
        for (key, p) in [
            ("init.from", &mut self.init.from),
            ("data.cache", &mut self.data.cache),
            ("data.csv", &mut self.data.csv),
        ] {
            if let Some(p) = p {
                *p = resolve_path(dir_of(key), p);
            }
        }
    }

    /// Parses and validates TOML text; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TrainError> {
        let cfg: RunConfig = toml::from_str(text).map_err(|e| TrainError::Config {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate().map_err(|message| TrainError::Config {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    /// The smallest runnable config ([`TINY`]) named `name` under `out_dir`: tests and smoke
    /// checks start from it and change what they vary, then call [`RunConfig::checked`].
    pub fn tiny(name: &str, out_dir: &Path) -> Result<Self, TrainError> {
        let mut cfg = Self::parse(TINY, Path::new("RunConfig::tiny"))?;
        cfg.name = name.to_string();
        cfg.out_dir = out_dir.to_path_buf();
        cfg.checked()
    }

    /// The config validated again as a whole after fields were set in code (a flag, a test):
    /// a value set in code meets the same checks as one read from a file.
    pub fn checked(self) -> Result<Self, TrainError> {
        Self::parse(&self.to_toml(), Path::new("config set in code"))
    }

    /// The fully resolved TOML written into the run folder.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# could not serialise config: {e}\n"))
    }

    /// [`RunConfig::model_config`] with a typed error, for callers past validation.
    pub fn model(&self) -> Result<StdiTConfig, TrainError> {
        self.model_config().map_err(TrainError::Model)
    }

    /// The model shape: the preset with overrides, frames and resolution from `[data]`; the
    /// error names the bad key (validation embeds it in the config error).
    pub fn model_config(&self) -> Result<StdiTConfig, String> {
        let m = &self.model;
        let mut c = StdiTConfig::preset(&m.preset).ok_or_else(|| {
            format!(
                "model.preset = {:?} is not one of {:?}",
                m.preset,
                StdiTConfig::PRESETS
            )
        })?;
        c.frames = self.data.clip_frames();
        c.height = self.data.size;
        c.width = self.data.size;
        if let Some(v) = m.hidden {
            c.hidden = v;
        }
        if let Some(v) = m.depth {
            c.depth = v;
        }
        if let Some(v) = m.heads {
            c.heads = v;
        }
        if let Some(v) = m.patch {
            c.patch = v;
        }
        if let Some(v) = m.mlp_ratio {
            c.mlp_ratio = v;
        }
        if let Some(v) = m.text_dim {
            c.text_dim = v;
        }
        if let Some(v) = m.text_len {
            c.text_len = v;
        }
        if let Some(v) = m.in_channels {
            c.channels = v;
        }
        if let Some(v) = m.temporal_pos {
            c.temporal_pos = v;
        }
        if let Some(v) = m.mlp_act {
            c.mlp_act = v;
        }
        if let Some(v) = m.caption_act {
            c.caption_act = v;
        }
        if let Some(v) = m.pos_scale {
            c.pos_scale = v;
        }
        if m.pos_base.is_some() {
            c.pos_base = m.pos_base;
        }
        if let Some(v) = m.frame_slots {
            c.frame_slots = v;
        }
        if let Some(v) = m.caption_to_temporal {
            c.caption_to_temporal = v;
        }
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), String> {
        check_folder_name(&self.name)?;
        self.data.validate().map_err(|e| e.to_string())?;
        let model = self.model_config()?;
        if self.data.kind == freezeframe_data::DataKind::Pixels && model.channels != 3 {
            return Err(format!(
                "[model] in_channels = {} reads latents, but [data] kind is \"pixels\" (RGB, 3 \
                 channels): set [data] kind = \"latents\" with cache = a latent cache, or remove \
                 in_channels",
                model.channels
            ));
        }
        self.validate_limits(&model)?;
        let t = &self.train;
        let checks: [(bool, String); 14] = [
            (
                t.weight_decay >= 0.0 && t.weight_decay.is_finite(),
                format!(
                    "train.weight_decay = {} must be a number ≥ 0",
                    t.weight_decay
                ),
            ),
            (
                (0.0..=1.0).contains(&t.min_lr_ratio),
                format!("train.min_lr_ratio = {} must lie in [0, 1]", t.min_lr_ratio),
            ),
            (
                t.grad_clip.is_finite(),
                format!("train.grad_clip = {} must be a number", t.grad_clip),
            ),
            (
                self.sample.cfg.is_finite() && self.sample.cfg >= 0.0,
                format!("sample.cfg = {} must be a number ≥ 0", self.sample.cfg),
            ),
            (
                // The synthetic world's held-out split is data.val_clips long; a real cache's
                // length is only known when it is opened.
                self.data.csv.is_some()
                    || self.data.cache.is_some()
                    || self.log.val_clips <= self.data.val_clips,
                format!(
                    "log.val_clips = {} is more than the world's data.val_clips = {}",
                    self.log.val_clips, self.data.val_clips
                ),
            ),
            (
                t.timestep_shift > 0.0 && t.timestep_shift.is_finite(),
                format!(
                    "train.timestep_shift = {} must be a positive number",
                    t.timestep_shift
                ),
            ),
            (
                t.batch_size >= 1,
                format!("train.batch_size = {} must be at least 1", t.batch_size),
            ),
            (
                t.steps >= 1,
                format!("train.steps = {} must be at least 1", t.steps),
            ),
            (
                t.lr > 0.0 && t.lr.is_finite(),
                format!("train.lr = {} must be positive", t.lr),
            ),
            (
                t.betas.iter().all(|b| (0.0..1.0).contains(b)),
                format!("train.betas = {:?} must lie in [0, 1)", t.betas),
            ),
            (
                (0.0..1.0).contains(&t.ema_decay),
                format!("train.ema_decay = {} must lie in [0, 1)", t.ema_decay),
            ),
            (
                (0.0..1.0).contains(&t.caption_dropout),
                format!(
                    "train.caption_dropout = {} must lie in [0, 1)",
                    t.caption_dropout
                ),
            ),
            (
                t.grad_clip >= 0.0,
                format!("train.grad_clip = {} must not be negative", t.grad_clip),
            ),
            (
                self.log.val_clips >= 1,
                format!("log.val_clips = {} must be at least 1", self.log.val_clips),
            ),
        ];
        for (ok, msg) in checks {
            if !ok {
                return Err(msg);
            }
        }
        if self.sample.steps == 0 || self.sample.n == 0 {
            return Err("sample.steps and sample.n must be at least 1".into());
        }
        Ok(())
    }

    /// The upper bounds of [`crate::limits`] on what this run allocates and samples.
    fn validate_limits(&self, m: &StdiTConfig) -> Result<(), String> {
        use crate::limits::*;
        let (b, s) = (self.train.batch_size, &self.sample);
        if b > MAX_BATCH {
            return Err(format!(
                "train.batch_size = {b} is above the limit {MAX_BATCH}"
            ));
        }
        let values = (b * m.frames * m.tokens_per_frame()) as u64 * m.hidden as u64;
        if values > MAX_ACTIVATION_VALUES {
            return Err(format!(
                "train.batch_size = {b} with {} frames of {} patches at hidden {} makes \
                 activations of {values} values, above the limit {MAX_ACTIVATION_VALUES}",
                m.frames,
                m.tokens_per_frame(),
                m.hidden
            ));
        }
        if self.train.warmup > self.train.steps {
            return Err(format!(
                "train.warmup = {} is longer than train.steps = {}: the learning rate would never \
                 reach train.lr",
                self.train.warmup, self.train.steps
            ));
        }
        if s.n > MAX_GRID_VIDEOS {
            return Err(format!(
                "sample.n = {} is above the limit {MAX_GRID_VIDEOS}",
                s.n
            ));
        }
        // The end-of-run samples are one GIF row of n tiles: checked now, not after training.
        let scale = crate::sample::SAMPLE_GIF_SCALE;
        if let Err(e) = freezeframe_data::gif_out::grid_size(s.n, s.n, (m.height, m.width), scale) {
            return Err(format!(
                "sample.n = {} at data.size = {}: {e}",
                s.n, m.height
            ));
        }
        if s.cfg > MAX_CFG {
            return Err(format!(
                "sample.cfg = {} is above the limit {MAX_CFG}",
                s.cfg
            ));
        }
        if s.steps > MAX_SAMPLER_STEPS {
            return Err(format!(
                "sample.steps = {} is above the limit {MAX_SAMPLER_STEPS}",
                s.steps
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RunConfig, TrainError> {
        RunConfig::parse(s, Path::new("run.toml"))
    }

    #[test]
    fn minimal_config_takes_defaults_and_round_trips() {
        let c = parse("name = \"x\"\n").unwrap();
        assert_eq!(c.train, TrainSection::default());
        let again = parse(&c.to_toml()).unwrap();
        assert_eq!(c, again);
        assert_eq!(c.model_config().unwrap().frames, 8);
    }

    #[test]
    fn unknown_key_is_named_with_file() {
        let e = parse("name = \"x\"\n[train]\nlrr = 0.1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("run.toml") && e.contains("lrr"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = parse("name = \"x\"\n[train]\nsteps = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("steps"), "{e}");
    }

    #[test]
    fn sizes_above_their_limits_are_refused_naming_the_key() {
        for (toml, key) in [
            (
                "[train]\nbatch_size = 100000000\n",
                "train.batch_size = 100000000",
            ),
            ("[data]\nsize = 100000\n", "data.size = 100000"),
            ("[model]\nhidden = 4000000\n", "model.hidden = 4000000"),
            ("[model]\ndepth = 100000000\n", "model.depth = 100000000"),
            (
                "[model]\ntext_len = 100000000\n",
                "model.text_len = 100000000",
            ),
            ("[model]\nmlp_ratio = 1e9\n", "model.mlp_ratio = 1000000000"),
            ("[sample]\ncfg = 1e10\n", "sample.cfg = 10000000000"),
            ("[sample]\nn = 1000000\n", "sample.n = 1000000"),
            // 64 tiles of 512 px at scale 4 in one row: 131 202 px wide.
            (
                "[sample]\nn = 64\n[data]\nsize = 512\n",
                "sample.n = 64 at data.size = 512",
            ),
            // Each within its limit, too large together: 4096 clips of 8 × (16×16) patches at
            // D 256 are 2³¹ values an activation.
            (
                "[train]\nbatch_size = 4096\n[model]\nhidden = 256\npatch = 2\n",
                "activations",
            ),
        ] {
            let e = parse(&format!("name = \"x\"\n{toml}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains("limit"), "{toml}: {e}");
        }
    }

    #[test]
    fn a_warm_up_longer_than_the_run_is_refused() {
        let e = parse("name = \"x\"\n[train]\nsteps = 10\nwarmup = 100\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train.warmup = 100") && e.contains("train.steps = 10"),
            "{e}"
        );
        assert!(parse("name = \"x\"\n[train]\nsteps = 10\nwarmup = 10\n").is_ok());
    }

    #[test]
    fn bad_values_are_named() {
        let e = parse("name = \"x\"\n[train]\nbatch_size = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("train.batch_size"), "{e}");
        let e = parse("name = \"x\"\n[model]\npreset = \"huge\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.preset") && e.contains("tiny"), "{e}");
        let e = parse("name = \"x\"\n[data]\ncolours = []\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("data.colours"), "{e}");
    }

    #[test]
    fn numbers_that_are_not_numbers_or_out_of_range_are_named() {
        for (section, key, values) in [
            ("train", "lr", &["nan", "inf", "-1.0", "0.0"][..]),
            ("train", "weight_decay", &["nan", "-0.5", "inf"]),
            ("train", "min_lr_ratio", &["nan", "-1.0", "5.0"]),
            ("train", "grad_clip", &["nan", "-1.0"]),
            ("train", "timestep_shift", &["nan", "0.0", "-2.0"]),
            ("train", "ema_decay", &["nan", "1.5"]),
            ("train", "caption_dropout", &["nan", "-0.1"]),
            ("sample", "cfg", &["nan", "inf", "-1.0"]),
            ("model", "mlp_ratio", &["nan", "inf", "0.0", "-1.0"]),
            ("model", "pos_scale", &["nan", "0.0", "-2.0"]),
            ("model", "pos_base", &["0"]),
            ("log", "val_clips", &["0", "100000"]),
        ] {
            for v in values {
                let e = parse(&format!("name = \"x\"\n[{section}]\n{key} = {v}\n"))
                    .expect_err(&format!("{section}.{key} = {v} accepted"))
                    .to_string();
                assert!(e.contains(key), "{section}.{key} = {v}: {e}");
            }
        }
        for speeds in [
            "{ slow = -1.0, fast = 1.4 }",
            "{ slow = nan, fast = 1.4 }",
            "{ slow = 2.0, fast = 1.0 }",
        ] {
            let e = parse(&format!("name = \"x\"\n[data]\nspeeds = {speeds}\n"))
                .expect_err(speeds)
                .to_string();
            assert!(e.contains("speeds"), "{speeds}: {e}");
        }
        let e = parse("name = \"x\"\n[data]\nframes = 1\n")
            .expect_err("frames = 1")
            .to_string();
        assert!(e.contains("image_mode"), "{e}");
    }

    #[test]
    fn every_path_is_relative_to_the_config_file() {
        let dir = std::env::temp_dir().join(format!("ff-paths-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("exp/plans")).unwrap();
        std::fs::write(dir.join("exp/plans/mine.toml"), "").unwrap();
        let file = dir.join("exp/run.toml");
        std::fs::write(
            &file,
            "name = \"x\"\nplan = \"plans/mine.toml\"\n[init]\nfrom = \"../w.safetensors\"\n[data]\ncache = \"clips\"\n",
        )
        .unwrap();
        let c = RunConfig::load(&file).unwrap();
        let exp = std::fs::canonicalize(dir.join("exp")).unwrap();
        assert_eq!(c.out_dir, exp.join("runs"));
        assert_eq!(c.plan, exp.join("plans/mine.toml").display().to_string());
        assert_eq!(
            c.init.from,
            Some(exp.parent().unwrap().join("w.safetensors"))
        );
        assert_eq!(c.data.cache, Some(exp.join("clips")));
        // Presets and absolute paths are kept; the resolved config round-trips unchanged.
        std::fs::write(
            &file,
            "name = \"x\"\nplan = \"full\"\nout_dir = \"/tmp/o\"\n",
        )
        .unwrap();
        let c = RunConfig::load(&file).unwrap();
        assert_eq!(
            (c.plan.as_str(), c.out_dir.as_path()),
            ("full", Path::new("/tmp/o"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resolve_path_normalises() {
        assert_eq!(
            resolve_path(Path::new("/a/b"), Path::new("../c/./d")),
            Path::new("/a/c/d")
        );
        assert_eq!(
            resolve_path(Path::new("/a"), Path::new("/x/y")),
            Path::new("/x/y")
        );
        assert_eq!(
            resolve_path(Path::new("/"), Path::new("../..")),
            Path::new("/")
        );
    }

    #[test]
    fn missing_file_is_named() {
        let e = RunConfig::load(Path::new("/nonexistent/run.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/run.toml"), "{e}");
    }
}
