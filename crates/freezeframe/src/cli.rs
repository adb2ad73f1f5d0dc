//! Flag definitions (clap), apart from dispatch (`main.rs`) and command bodies.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use freezeframe_train::limits;
use freezeframe_train::runtime::Backend;

#[derive(Parser)]
#[command(
    name = "freezeframe",
    version,
    about = "Train STDiT video diffusion models with declarative training plans"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// How `sample` and `eval --run` draw videos from a run's EMA weights.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Sampling {
    /// Euler steps from noise to data.
    #[arg(long, default_value_t = 30, value_parser = sampler_steps)]
    pub steps: usize,
    /// Classifier-free guidance scale (1 = none; at most 50).
    #[arg(long, default_value_t = 4.0, value_parser = guidance)]
    pub cfg: f32,
    /// Seed of the starting noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// flex (CPU) or wgpu (a build with `--features gpu`) [default: the run's]
    #[arg(long)]
    pub backend: Option<Backend>,
}

#[derive(Subcommand)]
pub enum Command {
    /// A small version of the study in under 15 minutes: `full` and `temporal-only`, two seeds
    /// each, from the shipped image model on the calibrated world cut to 4-frame clips
    /// (1800 steps × batch 8 at a constant learning rate), evaluated, with an HTML report and a
    /// verdict on claim 1 (temporal-only gives too-static videos).
    Demo(DemoArgs),
    /// Run an ablation study: strategies × seeds on one budget, evaluated, with verdicts and an
    /// HTML report. Resumable: a re-run skips finished runs and resumes interrupted ones. On a
    /// cluster: `ablate plan`, then `ablate run-cell` per task, then `ablate report` (or
    /// `ablate slurm` for the sbatch scripts).
    Ablate(AblateArgs),
    /// Inspect models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Synthetic data.
    #[command(subcommand)]
    Data(DataCommand),
    /// Train from a TOML config.
    Train(TrainArgs),
    /// Sample videos from a trained run (its newest checkpoint's EMA weights).
    Sample(SampleArgs),
    /// Score videos: a run's samples against real videos of the same prompts (`--run`), or
    /// existing GIFs with the metrics that need no prompt (`--videos`).
    Eval(EvalArgs),
    /// Training plans: which parameters learn, when, and how fast.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Bring image weights in from another layout.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Write a run's model in another layout.
    Export(ExportArgs),
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ExportFormat {
    /// diffusers' `PixArtTransformer2DModel` folder: the spatial weights, LoRA adapters merged.
    DiffusersPixart,
    /// The LoRA adapters alone for PEFT, on Open-Sora's STDiT module names (every adapter).
    LoraPeft,
    /// The LoRA adapters alone for PEFT, on diffusers' PixArt transformer module names (fused
    /// q/k/v split; temporal-attention adapters have no place there and are left out).
    LoraDiffusersPixart,
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// A diffusers PixArt-α transformer (`PixArtTransformer2DModel`) as a freezeframe image
    /// checkpoint under Open-Sora keys, for `[init] from`; prints the `[model]` section that
    /// builds it.
    Pixart(PixartArgs),
}

#[derive(Subcommand)]
pub enum PlanCommand {
    /// The built-in plans (also shipped as files under configs/plans/).
    List,
    /// Validate a plan against a model and print its table: groups, phases, learning rates,
    /// optimiser state. Exits non-zero with the validation message on an invalid plan.
    Explain(ExplainArgs),
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// One line per parameter (Open-Sora path, shape, count) and totals.
    Params(ParamsArgs),
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// A GIF grid of synthetic videos; captions are printed and written beside it.
    Preview(PreviewArgs),
    /// Decode the videos of an Open-Sora-style CSV (`path,text[,num_frames,height,width,fps]`)
    /// into a clip cache with FFmpeg; re-runs only decode new or changed files.
    Prepare(PrepareArgs),
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Seconds to score a set of synthetic 8×32×32 videos with every evaluation metric.
    Eval(BenchEvalArgs),
    /// Median milliseconds of a full training step.
    TrainStep(TrainStepArgs),
}

#[derive(Args)]
pub struct DemoArgs {
    /// Parent folder of the study folder (`demo/`, or `demo-quick/`); a re-run resumes it.
    /// (`--out-dir`, the name of earlier builds, is still accepted.)
    #[arg(long, default_value = "runs", alias = "out-dir")]
    pub out: PathBuf,
    /// Every stage at the smallest size, in about a minute: a smoke test whose numbers
    /// mean nothing.
    #[arg(long)]
    pub quick: bool,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AblateArgs {
    #[command(subcommand)]
    pub command: Option<AblateCommand>,
    #[arg(long, required = true)]
    pub config: Option<PathBuf>,
    /// Study folder (default: runs/<name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker processes (each gets its share of the cores).
    #[arg(long, default_value_t = 1, value_parser = count)]
    pub jobs: usize,
    /// Train nothing: write the report from the runs finished so far (the missing ones are
    /// named in it, and claims that need them are not tested).
    #[arg(long, conflicts_with = "jobs")]
    pub report_only: bool,
    /// Internal: run the grid cells i mod n only (a `--jobs` worker).
    #[arg(long, hide = true)]
    pub shard: Option<String>,
}

/// The study grid on a cluster engine, by one index contract.
#[derive(Subcommand)]
pub enum AblateCommand {
    /// Claim the study folder, make the image weights and write `manifest.json` (the cells,
    /// strategy × seed); prints how many cells there are.
    Plan(PlanStudyArgs),
    /// Run the cells of one task index (from --index, else SLURM_ARRAY_TASK_ID, else
    /// JOB_COMPLETION_INDEX). Idempotent: a finished cell is skipped, an interrupted one resumed
    /// from its checkpoint; a cell another task is running is refused.
    RunCell(RunCellArgs),
    /// Write the report from the finished cells (the missing ones named in it).
    Report(StudyFolderArgs),
    /// Plan the study and write sbatch scripts: an array of run-cell tasks and the report job
    /// after them (`--dependency=afterany`); `slurm/submit.sh` submits both.
    Slurm(SlurmArgs),
}

#[derive(Args)]
pub struct PlanStudyArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// Study folder (default: runs/<name>); on a cluster, on storage every node sees at the
    /// same path.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct StudyFolderArgs {
    /// The study folder `ablate plan` wrote.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct RunCellArgs {
    /// The study folder `ablate plan` wrote.
    #[arg(long)]
    pub out: PathBuf,
    /// Task index [default: $SLURM_ARRAY_TASK_ID, else $JOB_COMPLETION_INDEX].
    #[arg(long)]
    pub index: Option<usize>,
    /// Cells each task runs, one after another (task i: cells i·K .. i·K+K−1).
    #[arg(long, default_value_t = 1, value_parser = count)]
    pub cells_per_task: usize,
    /// The grid this task was submitted for (`ablate plan` prints it): refused if the study was
    /// planned again since, which may have moved cells to other indices.
    #[arg(long)]
    pub manifest: Option<String>,
}

#[derive(Args)]
pub struct SlurmArgs {
    #[command(flatten)]
    pub study: PlanStudyArgs,
    #[arg(long)]
    pub partition: Option<String>,
    #[arg(long, value_parser = count)]
    pub gpus_per_task: Option<usize>,
    #[arg(long, value_parser = count)]
    pub cpus_per_task: Option<usize>,
    /// At most this many array tasks at once (`--array=0-N%K`).
    #[arg(long, value_parser = count)]
    pub max_parallel: Option<usize>,
    #[arg(long, default_value_t = 1, value_parser = count)]
    pub cells_per_task: usize,
    /// Time limit of each array task, in SLURM's format (e.g. 04:00:00).
    #[arg(long)]
    pub time: Option<String>,
}

#[derive(Args)]
pub struct TrainArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// Continue from the newest complete checkpoint of the run folder.
    #[arg(long)]
    pub resume: bool,
    /// flex (CPU) or wgpu (a build with `--features gpu`) [default: the config's
    /// `[runtime] backend`, else flex]
    #[arg(long)]
    pub backend: Option<Backend>,
}

#[derive(Args)]
pub struct SampleArgs {
    #[arg(long)]
    pub run: PathBuf,
    #[arg(long)]
    pub prompt: String,
    /// Videos in the GIF grid (at most 64).
    #[arg(long, default_value_t = 4, value_parser = grid_videos)]
    pub n: usize,
    /// The GIF to write (never replaced: an existing file is an error).
    #[arg(long, default_value = "out.gif")]
    pub out: PathBuf,
    #[command(flatten)]
    pub sampling: Sampling,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["run", "videos"])))]
pub struct EvalArgs {
    /// Run folder: samples a fixed prompt set with fixed noise from its newest EMA weights;
    /// writes eval.json and eval.md into it.
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// A GIF, a folder of GIFs (each file one video), or a clip cache folder.
    #[arg(long)]
    pub videos: Option<PathBuf>,
    /// Prompts sampled and scored with `--run` (at most 4096).
    #[arg(long, default_value_t = 256, value_parser = videos)]
    pub n: usize,
    #[command(flatten)]
    pub sampling: Sampling,
    /// Frame rate of `--videos` (sets VBench's dynamic-degree threshold).
    #[arg(long, default_value_t = 8.0, value_parser = positive_f32)]
    pub fps: f32,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Run folder (its newest checkpoint's EMA weights).
    #[arg(long)]
    pub run: PathBuf,
    /// `diffusers-pixart`: the spatial part as a diffusers `PixArtTransformer2DModel`
    /// folder (`diffusion_pytorch_model.safetensors` + `config.json`), LoRA adapters merged.
    /// `lora-peft`: a LoRA run's adapters alone, as PEFT saves them (`adapter_model.safetensors`
    /// + `adapter_config.json`, Open-Sora's module names).
    #[arg(long)]
    pub format: ExportFormat,
    /// Output folder (created; files in it are never replaced).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct PixartArgs {
    /// The transformer's safetensors (f32, f16 or bf16).
    #[arg(long)]
    pub from: PathBuf,
    /// Its `config.json` [default: beside --from].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output file (never replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Caption tokens per prompt (`[model] text_len`): the shape of the null caption,
    /// which diffusers does not store and the import initialises.
    #[arg(long, default_value_t = 12, value_parser = count)]
    pub text_len: usize,
    /// Seed of the null caption's initial values.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// A preset name or a plan file.
    #[arg(long)]
    pub plan: String,
    /// Model preset whose parameter paths the plan is resolved against.
    #[arg(long, default_value = "base")]
    pub model: String,
    /// Length of the run (fractions in the plan are fractions of this).
    #[arg(long, default_value_t = 1000, value_parser = count)]
    pub steps: usize,
    /// Peak learning rate shown in the table.
    #[arg(long, default_value_t = 5e-4, value_parser = positive_f64)]
    pub lr: f64,
}

#[derive(Args)]
pub struct ParamsArgs {
    #[arg(long, default_value = "base")]
    pub preset: String,
}

#[derive(Args)]
pub struct PreviewArgs {
    /// Clips in the grid (at most 4096).
    #[arg(long, default_value_t = 16, value_parser = videos)]
    pub n: usize,
    /// The GIF to write (never replaced: an existing file is an error).
    #[arg(long, default_value = "preview.gif")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Take the world settings from this run config's [data] section.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Preview clips of a prepared cache instead of the synthetic world.
    #[arg(long, conflicts_with = "config")]
    pub cache: Option<PathBuf>,
}

#[derive(Args)]
pub struct PrepareArgs {
    #[arg(long)]
    pub csv: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// Frames a clip (at most 512).
    #[arg(long, default_value_t = 8, value_parser = clip_frames)]
    pub frames: usize,
    /// Frame side in pixels (at most 1024).
    #[arg(long, default_value_t = 32, value_parser = frame_size)]
    pub size: usize,
    /// Resample to this frame rate first (otherwise the source's frames, see --stride).
    #[arg(long, value_parser = positive_f32)]
    pub fps: Option<f32>,
    /// Keep every k-th source frame (without --fps).
    #[arg(long, default_value_t = 1, conflicts_with = "fps", value_parser = count)]
    pub stride: usize,
    #[arg(long, default_value_t = 1, value_parser = count)]
    pub clips_per_video: usize,
}

#[derive(Args)]
pub struct BenchEvalArgs {
    /// Videos scored (at most 4096).
    #[arg(long, default_value_t = 256, value_parser = videos)]
    pub n: usize,
}

#[derive(Args)]
pub struct TrainStepArgs {
    /// Time the step this run config takes (its model, world, batch size and plan) instead
    /// of a preset's.
    #[arg(long, conflicts_with_all = ["preset", "plan"])]
    pub config: Option<PathBuf>,
    #[arg(long, default_value = "base")]
    pub preset: String,
    /// Freeze as this plan does (preset or file) …
    #[arg(long, default_value = "full")]
    pub plan: String,
    /// … in this phase (0-based).
    #[arg(long, default_value_t = 0)]
    pub phase: usize,
    #[arg(long, default_value_t = 20, value_parser = count)]
    pub steps: usize,
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Batch size [default: the config's, or 8 for a preset].
    #[arg(long, value_parser = count)]
    pub batch: Option<usize>,
    /// flex (CPU) or wgpu (a build with `--features gpu`) [default: the config's, or flex]
    #[arg(long)]
    pub backend: Option<Backend>,
}

/// clap value parsers: what no command can use — a count of zero, a number that is not finite
/// or out of range — is refused at the boundary with the flag named, instead of panicking or
/// producing a silent wrong result later.
fn count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A count of at most `max`, the limit named in the error.
fn count_up_to(s: &str, max: usize) -> Result<usize, String> {
    match count(s)? {
        n if n > max => Err(format!("{n} is above the limit {max}")),
        n => Ok(n),
    }
}

fn videos(s: &str) -> Result<usize, String> {
    count_up_to(s, limits::MAX_VIDEOS)
}

fn grid_videos(s: &str) -> Result<usize, String> {
    count_up_to(s, limits::MAX_GRID_VIDEOS)
}

fn clip_frames(s: &str) -> Result<usize, String> {
    count_up_to(s, freezeframe_data::world::MAX_FRAMES)
}

fn frame_size(s: &str) -> Result<usize, String> {
    count_up_to(s, freezeframe_data::world::MAX_SIZE)
}

fn sampler_steps(s: &str) -> Result<usize, String> {
    count_up_to(s, limits::MAX_SAMPLER_STEPS)
}

fn guidance(s: &str) -> Result<f32, String> {
    match non_negative_f32(s)? {
        x if x > limits::MAX_CFG => Err(format!(
            "{s} is above the limit {} (strong guidance saturates every pixel)",
            limits::MAX_CFG
        )),
        x => Ok(x),
    }
}

fn finite(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .parse()
        .map_err(|e: std::num::ParseFloatError| e.to_string())?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("{s} is not a finite number"))
    }
}

fn positive_f64(s: &str) -> Result<f64, String> {
    match finite(s)? {
        x if x > 0.0 => Ok(x),
        _ => Err("must be greater than 0".into()),
    }
}

fn positive_f32(s: &str) -> Result<f32, String> {
    positive_f64(s).map(|x| x as f32)
}

fn non_negative_f32(s: &str) -> Result<f32, String> {
    match finite(s)? {
        x if x >= 0.0 => Ok(x as f32),
        _ => Err("must not be negative".into()),
    }
}
