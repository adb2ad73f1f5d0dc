//! Weights in and out of freezeframe.
//!
//! `import_pixart` reads a diffusers `PixArtTransformer2DModel` (PixArt-α, the image model
//! Open-Sora's STDiT starts from) and writes a freezeframe image checkpoint under Open-Sora's
//! STDiT keys; `export_pixart` writes a trained model's spatial part back in diffusers' layout.
//! Both read one key map (`pixart::key_map`) and stream tensor by tensor; `pixart_lora` moves
//! LoRA adapters onto diffusers' modules by the same map.
pub mod convert;
pub mod error;
pub mod lora;
pub mod pixart;
pub mod st;

pub use convert::{
    Exported, ImportOptions, Imported, NULL_CAPTION, export_pixart, has_diffusers_place,
    import_pixart, model_section,
};
pub use error::InteropError;
pub use lora::{PixartLora, pixart_lora};
pub use pixart::PixartConfig;
