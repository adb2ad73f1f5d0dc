//! Upper bounds on the counts and scales a user sets for training, sampling and evaluation,
//! checked where the value enters (a flag's parser, a config's validation) before anything is
//! allocated or written. The model's and the world's own sizes are bounded where they are
//! validated (`freezeframe_model::config`, `freezeframe_data::world`).

/// Videos one command samples, scores or previews (`eval --n`, `data preview --n`,
/// `bench eval --n`): far above the study's 64 prompts, and a few hundred MiB at 8×32×32.
pub const MAX_VIDEOS: usize = 4096;
/// Videos `sample` draws into one GIF grid (`sample --n`, `[sample] n`): one row of tiles.
pub const MAX_GRID_VIDEOS: usize = 64;
/// Classifier-free guidance scale (`--cfg`, `[sample] cfg`). Guidance far above ~20 pushes
/// every pixel to saturation (at 1e10 a sample is black); 50 leaves room to explore.
pub const MAX_CFG: f32 = 50.0;
/// Euler steps of the sampler (`--steps`, `[sample] steps`).
pub const MAX_SAMPLER_STEPS: usize = 10_000;
/// Clips in one training batch (`train.batch_size`).
pub const MAX_BATCH: usize = 4096;
/// Values in one activation of a training step, batch × frames × patches × hidden: 2³⁰ f32
/// (4 GiB), checked before the first batch is drawn.
pub const MAX_ACTIVATION_VALUES: u64 = 1 << 30;
