//! Data for freezeframe: a deterministic synthetic text-to-video world whose every sample keeps
//! its ground truth, and GIF writing for previews and samples.
pub mod gif_in;
pub mod gif_out;
pub mod lock;
pub mod real;
pub mod render;
pub mod video;
pub mod world;

pub use video::Video;
pub use world::{
    Clip, Colour, DataKind, Motion, ObjectTruth, Shape, Speed, Split, World, WorldConfig,
};
