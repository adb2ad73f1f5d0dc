//! The model's linear layer: `y = x·W + b`, plus an optional low-rank adapter
//! `(α / r) · (x·A)·B` (LoRA) that a plan may attach.
//!
//! Why not Burn's `nn::Linear`: a LoRA plan needs the adapter inside the layer, so that its
//! parameters sit at the layer's path (`blocks.0.attn.qkv.lora_a`) and travel with it through
//! checkpoints, the EMA and the optimiser. The struct keeps Burn's name and field names, so paths
//! and files are those of `nn::Linear`: Burn's PyTorch adapter recognises a `Linear` module by its
//! name and stores `weight` [out, in] as before (tested by loading the shipped image model).
use burn::module::Param;
use burn::nn::LinearConfig;
use burn::prelude::*;
use freezeframe_kernels::linear_tensors;

#[derive(Module, Debug)]
pub struct Linear {
    /// [d_in, d_out] (Burn's layout; files hold [d_out, d_in]).
    pub weight: Param<Tensor<2>>,
    pub bias: Option<Param<Tensor<1>>>,
    /// LoRA's `A`, [d_in, r]: drawn at random when the adapter is attached.
    pub lora_a: Option<Param<Tensor<2>>>,
    /// LoRA's `B`, [r, d_out]: zero when attached, so the layer starts as it was.
    pub lora_b: Option<Param<Tensor<2>>>,
    /// LoRA's α (the adapter's output is scaled by α / r); not a parameter (a checkpoint
    /// records α and r in its metadata).
    #[module(skip)]
    pub lora_alpha: f64,
}

impl Linear {
    /// A layer `d_in → d_out` with a bias; call [`crate::init::initialize`] for its weights.
    pub fn new(d_in: usize, d_out: usize, device: &Device) -> Self {
        let l = LinearConfig::new(d_in, d_out).init(device);
        Self {
            weight: l.weight,
            bias: l.bias,
            lora_a: None,
            lora_b: None,
            lora_alpha: 0.0,
        }
    }

    /// (d_in, d_out).
    pub fn dims(&self) -> (usize, usize) {
        let [i, o] = self.weight.dims();
        (i, o)
    }

    /// The adapter's rank, when the layer has one.
    pub fn lora_rank(&self) -> Option<usize> {
        self.lora_a.as_ref().map(|a| a.dims()[1])
    }

    /// α / r (0 without an adapter).
    pub fn lora_scale(&self) -> f32 {
        self.lora_rank()
            .map_or(0.0, |r| (self.lora_alpha / r as f64) as f32)
    }

    /// `x` [..., d_in] → [..., d_out].
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let bias = self.bias.as_ref().map(|b| b.val());
        match (&self.lora_a, &self.lora_b) {
            (Some(a), Some(b)) => {
                let low = linear_tensors(x.clone(), a.val(), None); // [..., r]
                let delta = linear_tensors(low, b.val(), None); // [..., d_out]
                linear_tensors(x, self.weight.val(), bias) + delta.mul_scalar(self.lora_scale())
            }
            _ => linear_tensors(x, self.weight.val(), bias),
        }
    }

    /// The same function without the adapter: `W ← W + (α / r)·A·B`.
    pub fn merged(self) -> Self {
        let weight = match (&self.lora_a, &self.lora_b) {
            (Some(a), Some(b)) => {
                let delta = a.val().matmul(b.val()).mul_scalar(self.lora_scale());
                Param::from_tensor(self.weight.val() + delta)
            }
            _ => self.weight,
        };
        Self {
            weight,
            bias: self.bias,
            lora_a: None,
            lora_b: None,
            lora_alpha: 0.0,
        }
    }
}
