//! Where tensors live: Burn's `flex` CPU backend (the default: nothing to install, with the
//! fused kernels of `freezeframe-kernels`) or, in a build with the `gpu` feature, Burn's wgpu
//! backend (Vulkan, Metal or DX12 through wgpu; lavapipe, a software Vulkan device, on a Linux
//! machine without a GPU). The model is the same code on both: off `flex` the kernels fall back
//! to Burn's composed ops.
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Flex,
    Wgpu,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "flex" => Ok(Self::Flex),
            "wgpu" => Ok(Self::Wgpu),
            _ => Err(format!("{s:?} is not a backend: flex or wgpu")),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Flex => "flex",
            Self::Wgpu => "wgpu",
        })
    }
}

/// Whether this binary was built with the `gpu` feature (Burn's wgpu backend).
pub const GPU_BUILT: bool = cfg!(feature = "gpu");

impl Backend {
    /// The device for inference and evaluation. A wgpu device is opened and tried once here,
    /// so that a machine without an adapter gets an error, not a panic deep in training.
    pub fn device(self) -> Result<Device, TrainError> {
        match self {
            Self::Flex => Ok(Device::flex()),
            Self::Wgpu => wgpu_device(),
        }
    }

    /// The device for training: [`Backend::device`] under autodiff.
    pub fn autodiff(self) -> Result<Device, TrainError> {
        Ok(self.device()?.autodiff())
    }
}

#[cfg(feature = "gpu")]
fn wgpu_device() -> Result<Device, TrainError> {
    let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    // wgpu panics when no adapter can be opened; one tiny read-back finds out here.
    let probe = device.clone();
    let opened = std::panic::catch_unwind(move || {
        Tensor::<1>::ones([4], &probe)
            .sum()
            .into_data()
            .try_to_vec::<f32>()
            .ok()
    });
    match opened {
        Ok(Some(v)) if v == [4.0] => Ok(device),
        _ => Err(TrainError::Backend(
            "the wgpu backend found no working adapter (on Linux without a GPU, install \
             lavapipe: `apt-get install mesa-vulkan-drivers`)"
                .into(),
        )),
    }
}

#[cfg(not(feature = "gpu"))]
fn wgpu_device() -> Result<Device, TrainError> {
    Err(TrainError::Backend(
        "this binary was built without the wgpu backend; build it with \
         `cargo build --release --features gpu` (or `cargo run --release --features gpu -- …`)"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse_and_a_missing_one_says_how_to_build_it() {
        assert_eq!("flex".parse::<Backend>(), Ok(Backend::Flex));
        assert_eq!("wgpu".parse::<Backend>(), Ok(Backend::Wgpu));
        assert!("cuda".parse::<Backend>().is_err());
        assert!(Backend::Flex.device().is_ok());
        if !GPU_BUILT {
            let e = Backend::Wgpu.device().unwrap_err().to_string();
            assert!(e.contains("--features gpu"), "{e}");
        }
    }
}
