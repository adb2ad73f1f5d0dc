//! The plan file as written (TOML). Unknown keys are errors; see `configs/plans/*.toml` for one
//! file per built-in strategy and README for the reference.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where the weights of a run that follows this plan come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Every parameter except the `fresh` ones is loaded from an image model's checkpoint (the
    /// Open-Sora setting: PixArt weights, new temporal attention).
    Image,
    /// Random initialisation; loading image weights is refused.
    Scratch,
}

/// A step given as an absolute step (integer) or a fraction of the run (float in [0, 1]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StepSpec {
    Step(u64),
    Fraction(f64),
}

impl StepSpec {
    pub fn resolve(self, total: usize) -> usize {
        match self {
            StepSpec::Step(s) => s as usize,
            StepSpec::Fraction(f) => (f * total as f64).round() as usize,
        }
    }

    pub fn describe(self) -> String {
        match self {
            StepSpec::Step(s) => s.to_string(),
            StepSpec::Fraction(f) => f.to_string(),
        }
    }
}

/// A named set of parameters: a list of selectors (union), or `{ select = [...], except = [...] }`.
/// A selector is a path glob (`blocks.*.attn_temp.**`) or another group's name after `@`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GroupSpec {
    Union(Vec<String>),
    Except(ExceptSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptSpec {
    #[serde(default = "everything")]
    pub select: Vec<String>,
    pub except: Vec<String>,
}

fn everything() -> Vec<String> {
    vec!["**".into()]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    /// Shown in tables and metrics; defaults to `phase<i>`.
    pub name: Option<String>,
    /// Where the phase ends (exclusive); the last phase ends with the run and must omit it.
    pub end: Option<StepSpec>,
    /// Groups that train: names from `[groups]`, `rest` (parameters in no group) or `all`.
    pub train: Vec<String>,
    /// Linear learning-rate warm-up, for parameters that did not train in the previous phase.
    pub rewarm: Option<StepSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LrSpec {
    /// Learning-rate multiplier per group (groups absent here get 1).
    pub multipliers: BTreeMap<String, f64>,
    /// Layer-wise decay: `blocks.i` gets `decay^(depth − i)`, embedders `decay^(depth + 1)`,
    /// `final_layer` 1 (BEiT's convention with the embedders as layer 0). 1 turns it off.
    pub layer_decay: f64,
}

impl Default for LrSpec {
    fn default() -> Self {
        Self {
            multipliers: BTreeMap::new(),
            layer_decay: 1.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeightDecaySpec {
    /// Selectors exempt from weight decay. nanoGPT's rule: every 1-D tensor (biases, norm gains)
    /// is always exempt; these add the modulation tables and the learned null caption.
    pub no_decay: Vec<String>,
}

impl Default for WeightDecaySpec {
    fn default() -> Self {
        Self {
            no_decay: vec![
                "**.scale_shift_table".into(),
                "y_embedder.y_embedding".into(),
            ],
        }
    }
}

/// Low-rank adapters (`[[lora]]`): every linear layer whose `weight` a target selects gets
/// `<layer>.lora_a` [d_in, r] and `<layer>.lora_b` [r, d_out], which start from their
/// initialisation (`B` = 0, so the model is unchanged at step 0) and train where a phase trains
/// them; the layer's own weight and bias are frozen for the whole run, whatever the phases say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSpec {
    /// Path globs (not `@group`s: groups may select the adapters these create); the linear
    /// layers among what they select get adapters.
    pub targets: Vec<String>,
    pub rank: usize,
    /// The adapter's output is scaled by α / r; α defaults to r (scale 1).
    pub alpha: Option<f64>,
}

impl LoraSpec {
    /// α, defaulting to the rank (an adapter scale of 1).
    pub fn alpha(&self) -> f64 {
        self.alpha.unwrap_or(self.rank as f64)
    }
}

/// The whole plan file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    #[serde(default)]
    pub description: String,
    pub init: Init,
    /// With `init = "image"`: parameters an image checkpoint does not provide; they keep their
    /// initialisation (temporal attention, whose zero output projection makes the inflated model
    /// start as the image model).
    #[serde(default = "default_fresh")]
    pub fresh: Vec<String>,
    #[serde(default)]
    pub groups: BTreeMap<String, GroupSpec>,
    /// Earlier groups win where groups overlap; overlapping groups missing here are an error.
    #[serde(default)]
    pub precedence: Vec<String>,
    pub phase: Vec<PhaseSpec>,
    #[serde(default)]
    pub lr: LrSpec,
    #[serde(default)]
    pub weight_decay: WeightDecaySpec,
    /// Selectors of parameters allowed to stay at their initialisation for the whole run.
    #[serde(default)]
    pub allow_untrained: Vec<String>,
    #[serde(default)]
    pub lora: Vec<LoraSpec>,
}

fn default_fresh() -> Vec<String> {
    vec!["blocks.*.attn_temp.**".into()]
}
