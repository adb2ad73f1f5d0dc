//! freezeframe evaluation: network-free metrics for generated videos, each validated on ground
//! truth (see the tests beside each metric).
//!
//! Videos are `freezeframe_data::Video` ([T, C, H, W], values in [0, 1]). Motion follows
//! VBench (dense optical flow, top-5% magnitudes, dynamic degree) and so does temporal
//! flickering; text alignment reads the synthetic world's objects analytically; quality is a
//! Fréchet distance over hand-made features plus sharpness.
pub mod align;
pub mod bench;
pub mod cases;
pub mod flow;
pub mod gray;
pub mod motion;
pub mod nan;
pub mod quality;
pub mod report;
pub mod trajectory;

pub use align::{Alignment, Reading, Target, Track, alignment, read_video, track};
pub use report::{
    Comparison, SetSummary, VideoScore, compare, read_videos, score_videos, summarise,
};
