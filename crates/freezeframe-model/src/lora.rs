//! Low-rank adapters (LoRA, Hu et al. 2021) on the model's linear layers: which layers carry
//! one, attaching them, reading them back and merging them into the weights.
//!
//! The model does not decide where adapters go — a plan does (`[[lora]]`), as it decides what
//! trains. Attaching one adds two parameters at the layer's path, `<layer>.lora_a` [d_in, r]
//! (drawn at random) and `<layer>.lora_b` [r, d_out] (zero), so a model with fresh adapters
//! computes exactly what it computed without them.
use serde::{Deserialize, Serialize};

use burn::module::Param;
use burn::prelude::*;

use crate::init::initial_values;
use crate::paths::{stable_ids, to_opensora};
use crate::stdit::{Linear, Stdit};
use crate::text::fnv1a;

/// One adapter: the Open-Sora path of its linear layer (`blocks.0.attn.qkv`), its rank and α.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraLayer {
    pub layer: String,
    pub rank: usize,
    pub alpha: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LoraError {
    #[error("`{0}` is not a linear layer of this model")]
    UnknownLayer(String),
    #[error("`{layer}`: rank {rank} must be between 1 and min(d_in, d_out) = {max}")]
    Rank {
        layer: String,
        rank: usize,
        max: usize,
    },
    #[error("`{layer}`: alpha {alpha} must be a positive finite number")]
    Alpha { layer: String, alpha: f64 },
    #[error("`{0}` is given an adapter twice")]
    Duplicate(String),
    #[error("`{0}` already has an adapter")]
    Attached(String),
    #[error("`{0}`: the adapter's values cannot be read: {1}")]
    Read(String, String),
}

/// Every linear layer of a model as (Open-Sora path, `&` or `&mut` reference), in traversal
/// order: the one list [`Stdit::linears`] and `linears_mut` share.
macro_rules! each_linear {
    ($m:expr, $($r:tt)+) => {{
        let mut v = vec![
            ("x_embedder.proj".to_string(), $($r)+ $m.x_embedder.proj),
            ("t_embedder.fc1".to_string(), $($r)+ $m.t_embedder.fc1),
            ("t_embedder.fc2".to_string(), $($r)+ $m.t_embedder.fc2),
            ("t_block".to_string(), $($r)+ $m.t_block),
            ("y_embedder.y_proj.fc1".to_string(), $($r)+ $m.y_embedder.y_proj.fc1),
            ("y_embedder.y_proj.fc2".to_string(), $($r)+ $m.y_embedder.y_proj.fc2),
        ];
        for (i, b) in ($($r)+ $m.blocks).into_iter().enumerate() {
            let p = |s: &str| format!("blocks.{i}.{s}");
            v.push((p("attn.qkv"), $($r)+ b.attn.qkv));
            v.push((p("attn.proj"), $($r)+ b.attn.proj));
            v.push((p("attn_temp.qkv"), $($r)+ b.attn_temp.qkv));
            v.push((p("attn_temp.proj"), $($r)+ b.attn_temp.proj));
            if let Some(c) = $($r)+ b.attn_temp.y_cond {
                v.push((p("attn_temp.y_cond"), c));
            }
            v.push((p("cross_attn.q_linear"), $($r)+ b.cross_attn.q_linear));
            v.push((p("cross_attn.kv_linear"), $($r)+ b.cross_attn.kv_linear));
            v.push((p("cross_attn.proj"), $($r)+ b.cross_attn.proj));
            v.push((p("mlp.fc1"), $($r)+ b.mlp.fc1));
            v.push((p("mlp.fc2"), $($r)+ b.mlp.fc2));
        }
        v.push(("final_layer.linear".to_string(), $($r)+ $m.final_layer.linear));
        v.into_iter()
            .map(|(p, l)| (opensora_layer(&p), l))
            .collect()
    }};
}

impl Stdit {
    /// Every linear layer with its Open-Sora path, in traversal order.
    pub fn linears(&self) -> Vec<(String, &Linear)> {
        each_linear!(self, &)
    }

    /// [`Stdit::linears`], mutable.
    fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        each_linear!(self, &mut)
    }

    /// The adapters the model carries, in traversal order.
    pub fn lora_layers(&self) -> Vec<LoraLayer> {
        self.linears()
            .into_iter()
            .filter_map(|(layer, l)| {
                let rank = l.lora_rank()?;
                Some(LoraLayer {
                    layer,
                    rank,
                    alpha: l.lora_alpha,
                })
            })
            .collect()
    }

    /// The model with these adapters attached: `lora_a` drawn from `seed` and the layer's path
    /// (so an adapter's values do not depend on which others exist), `lora_b` zero. Parameter
    /// ids are renumbered in traversal order, as [`crate::init::initialize`] leaves them.
    pub fn with_lora(mut self, layers: &[LoraLayer], seed: u64) -> Result<Self, LoraError> {
        let mut todo: Vec<&LoraLayer> = Vec::with_capacity(layers.len());
        for l in layers {
            if todo.iter().any(|t| t.layer == l.layer) {
                return Err(LoraError::Duplicate(l.layer.clone()));
            }
            todo.push(l);
        }
        for (path, lin) in self.linears_mut() {
            let Some(pos) = todo.iter().position(|t| t.layer == path) else {
                continue;
            };
            let spec = todo.swap_remove(pos);
            attach(&path, lin, spec, seed)?;
        }
        if let Some(left) = todo.first() {
            return Err(LoraError::UnknownLayer(left.layer.clone()));
        }
        Ok(stable_ids(self))
    }

    /// The model without its adapters (their contribution dropped, not merged).
    pub fn without_lora(mut self) -> Self {
        for (_, lin) in self.linears_mut() {
            lin.lora_a = None;
            lin.lora_b = None;
            lin.lora_alpha = 0.0;
        }
        self
    }

    /// The same function with every adapter merged into its weight (`W + (α / r)·A·B`) and
    /// removed: what an export writes.
    pub fn merge_lora(mut self) -> Self {
        for (_, lin) in self.linears_mut() {
            let l = std::mem::replace(lin, placeholder(lin));
            *lin = l.merged();
        }
        self
    }
}

/// One tensor in PyTorch's row-major layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// One adapter as PEFT holds it: the module it sits on (named in the target model's layout),
/// its rank and α, and its two matrices in PyTorch's [out, in] layout (the transpose of
/// Burn's): `a` [r, d_in], `b` [d_out, r] — or, on a convolution, `a` [r, C, kh, kw] and `b`
/// [d_out, r, 1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct PeftAdapter {
    pub spec: LoraLayer,
    pub a: Matrix,
    pub b: Matrix,
}

/// The model's adapters in PyTorch's layout, named by Open-Sora paths.
pub fn peft_adapters(model: &Stdit) -> Result<Vec<PeftAdapter>, LoraError> {
    let transpose = |layer: &str, p: &Param<Tensor<2>>| {
        let [i, o] = p.dims();
        let v = p.val().transpose().into_data().convert::<f32>();
        v.try_into_vec::<f32>()
            .map(|values| Matrix {
                shape: vec![o, i],
                values,
            })
            .map_err(|e| LoraError::Read(layer.to_string(), format!("{e:?}")))
    };
    let mut out = Vec::new();
    for (layer, lin) in model.linears() {
        if let (Some(a), Some(b), Some(rank)) = (&lin.lora_a, &lin.lora_b, lin.lora_rank()) {
            out.push(PeftAdapter {
                a: transpose(&layer, a)?,
                b: transpose(&layer, b)?,
                spec: LoraLayer {
                    layer,
                    rank,
                    alpha: lin.lora_alpha,
                },
            });
        }
    }
    Ok(out)
}

/// The tensors PEFT saves for these adapters, keyed `base_model.model.<module>.lora_A.weight`
/// and `.lora_B.weight`, in the adapters' order.
pub fn peft_tensors(adapters: Vec<PeftAdapter>) -> Vec<(String, Matrix)> {
    let key = |m: &str, w: &str| format!("base_model.model.{m}.{w}.weight");
    adapters
        .into_iter()
        .flat_map(|ad| {
            let m = ad.spec.layer;
            [(key(&m, "lora_A"), ad.a), (key(&m, "lora_B"), ad.b)]
        })
        .collect()
}

/// PEFT's `adapter_config.json` for these adapters: the most common rank and α as `r` and
/// `lora_alpha`, the others in `rank_pattern` / `alpha_pattern`.
pub fn peft_config(layers: &[LoraLayer]) -> serde_json::Value {
    fn most<K: Ord + Copy>(keys: impl Iterator<Item = K>) -> Option<K> {
        let mut n: std::collections::BTreeMap<K, usize> = Default::default();
        for k in keys {
            *n.entry(k).or_default() += 1;
        }
        n.into_iter().max_by_key(|&(_, c)| c).map(|(k, _)| k)
    }
    let r = most(layers.iter().map(|l| l.rank));
    let alpha = most(layers.iter().map(|l| l.alpha.to_bits())).map(f64::from_bits);
    let pattern = |f: &dyn Fn(&LoraLayer) -> Option<serde_json::Value>| {
        layers
            .iter()
            .filter_map(|l| Some((l.layer.clone(), f(l)?)))
            .collect::<serde_json::Map<_, _>>()
    };
    serde_json::json!({
        "peft_type": "LORA",
        "r": r,
        "lora_alpha": alpha,
        "target_modules": layers.iter().map(|l| l.layer.clone()).collect::<Vec<_>>(),
        "rank_pattern": pattern(&|l| (Some(l.rank) != r).then(|| l.rank.into())),
        "alpha_pattern": pattern(&|l| (Some(l.alpha) != alpha).then(|| l.alpha.into())),
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": false,
    })
}

/// A Burn path of a linear layer (`t_embedder.fc1`) as its Open-Sora path (`t_embedder.mlp.0`).
fn opensora_layer(burn: &str) -> String {
    let with = to_opensora(&format!("{burn}.weight"));
    with.strip_suffix(".weight").unwrap_or(&with).to_string()
}

/// A 1 × 1 layer on the same device, to stand in while a layer is moved out and back.
fn placeholder(lin: &Linear) -> Linear {
    Linear::new(1, 1, &lin.weight.val().device())
}

fn attach(path: &str, lin: &mut Linear, spec: &LoraLayer, seed: u64) -> Result<(), LoraError> {
    let (d_in, d_out) = lin.dims();
    // A rank above min(d_in, d_out) adds nothing, and the bound keeps a typo from allocating
    // more than the layer itself holds.
    let max = d_in.min(d_out);
    if spec.rank == 0 || spec.rank > max {
        return Err(LoraError::Rank {
            layer: path.into(),
            rank: spec.rank,
            max,
        });
    }
    if !(spec.alpha.is_finite() && spec.alpha > 0.0) {
        return Err(LoraError::Alpha {
            layer: path.into(),
            alpha: spec.alpha,
        });
    }
    if lin.lora_a.is_some() {
        return Err(LoraError::Attached(path.into()));
    }
    let device = lin.weight.val().device();
    let r = spec.rank;
    let a_path = format!("{path}.lora_a");
    let a = initial_values(&a_path, &[d_in, r], seed ^ fnv1a(0, a_path.as_bytes()));
    let a = Tensor::<1>::from_floats(a.as_slice(), &device).reshape([d_in, r]);
    lin.lora_a = Some(Param::from_tensor(a));
    lin.lora_b = Some(Param::from_tensor(Tensor::zeros([r, d_out], &device)));
    lin.lora_alpha = spec.alpha;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::initialize;
    use crate::paths::{map_values, param_table};
    use crate::text::{TextEncoder, WordEncoder};
    use crate::{CaptionBatch, StdiTConfig};
    use burn::optim::GradientsParams;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    /// A tiny model with every zero-initialised tensor (final layer, temporal and cross
    /// projections) made non-zero, so that every layer shows in the output.
    fn model(dev: &Device) -> Stdit {
        let mut c = StdiTConfig::tiny();
        c.caption_to_temporal = true;
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        map_values(initialize(Stdit::new(&c, dev), 3), |_, shape, read| {
            let v = read();
            v.iter().all(|&x| x == 0.0).then(|| {
                let n: usize = shape.iter().product();
                (0..n)
                    .map(|_| 0.1 * rng.sample::<f32, _>(StandardNormal))
                    .collect()
            })
        })
    }

    fn inputs(dev: &Device) -> (Tensor<5>, Tensor<1>, CaptionBatch) {
        let c = StdiTConfig::tiny();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let n = 2 * c.frames * c.channels * c.height * c.width;
        let v: Vec<f32> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
        let x = Tensor::<1>::from_floats(v.as_slice(), dev)
            .reshape([2, c.frames, c.channels, c.height, c.width]);
        let enc = WordEncoder::new(
            ["a", "red", "circle", "moves", "left"].map(String::from),
            c.text_dim,
            c.text_len,
            0,
        );
        let prompts = [
            "a red circle moves left".to_string(),
            "a circle".to_string(),
        ];
        let cap = enc.encode_batch(&prompts, dev).unwrap();
        (x, Tensor::from_floats([0.3, 0.8], dev), cap)
    }

    fn layers(pattern: &str, m: &Stdit, rank: usize) -> Vec<LoraLayer> {
        m.linears()
            .into_iter()
            .filter(|(p, _)| p.contains(pattern))
            .map(|(layer, _)| LoraLayer {
                layer,
                rank,
                alpha: 2.0 * rank as f64,
            })
            .collect()
    }

    #[test]
    fn linears_are_exactly_the_two_dimensional_weights_under_their_opensora_paths() {
        let m = model(&Device::flex());
        let mut want: Vec<String> = param_table(&m)
            .into_iter()
            .filter(|p| p.shape.len() == 2 && p.path.ends_with(".weight"))
            .map(|p| p.path.trim_end_matches(".weight").to_string())
            .collect();
        let mut got: Vec<String> = m.linears().into_iter().map(|(p, _)| p).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want);
        assert!(got.contains(&"t_embedder.mlp.0".to_string()), "{got:?}");
        assert!(got.contains(&"t_block.1".to_string()), "{got:?}");
    }

    #[test]
    fn fresh_adapters_leave_the_output_bit_identical_and_add_their_paths() {
        let dev = Device::flex();
        let m = model(&dev);
        let ls = layers("blocks.", &m, 4);
        let (x, t, cap) = inputs(&dev);
        let before = m.forward(x.clone(), t.clone(), &cap);
        assert!(before.clone().abs().max().into_scalar::<f32>() > 0.1);
        let before = before.into_data();
        let m = m.with_lora(&ls, 7).unwrap();
        assert_eq!(m.forward(x, t, &cap).into_data(), before);
        assert_eq!(m.lora_layers(), ls);
        let paths: Vec<String> = param_table(&m).into_iter().map(|p| p.path).collect();
        assert!(paths.contains(&"blocks.0.attn_temp.y_cond.lora_a".to_string()));
        assert!(paths.contains(&"blocks.1.mlp.fc2.lora_b".to_string()));
        // A's values depend on the seed and the path only, not on which other layers adapt.
        let one = model(&dev).with_lora(&ls[3..4], 7).unwrap();
        let a = |m: &Stdit| {
            let mut v = Vec::new();
            map_values(m.clone(), |p, _, r| {
                if p == format!("{}.lora_a", ls[3].layer) {
                    v = r();
                }
                None
            });
            v
        };
        assert_eq!(a(&one), a(&m));
        assert!(!a(&m).is_empty());
    }

    #[test]
    fn merging_computes_what_the_adapted_model_computes() {
        let dev = Device::flex();
        let m = model(&dev);
        let ls = layers("attn", &m, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        // Non-zero B, as after training.
        let m = map_values(m.with_lora(&ls, 1).unwrap(), |p, shape, _| {
            p.ends_with(".lora_b").then(|| {
                let n: usize = shape.iter().product();
                (0..n)
                    .map(|_| 0.2 * rng.sample::<f32, _>(StandardNormal))
                    .collect()
            })
        });
        let (x, t, cap) = inputs(&dev);
        let plain = model(&dev).forward(x.clone(), t.clone(), &cap);
        let adapted = m.forward(x.clone(), t.clone(), &cap);
        let merged = m.merge_lora();
        assert!(merged.lora_layers().is_empty());
        let m_out = merged.forward(x, t, &cap);
        let d = |a: Tensor<5>, b: Tensor<5>| (a - b).abs().max().into_scalar::<f32>();
        assert!(d(adapted.clone(), plain) > 1e-3, "the adapters must matter");
        assert!(d(adapted, m_out) < 1e-4, "merged differs");
    }

    #[test]
    fn peft_tensors_are_pytorch_layout_and_the_config_names_every_layer() {
        let dev = Device::flex();
        let m = model(&dev);
        let mut ls = layers("mlp.fc1", &m, 2);
        ls[1].rank = 3;
        ls[1].alpha = 6.0;
        // B with distinct values (a fresh one is zero, where a wrong layout would not show).
        let m = map_values(m.with_lora(&ls, 1).unwrap(), |p, shape, _| {
            p.ends_with(".lora_b").then(|| {
                (0..shape.iter().product::<usize>())
                    .map(|i| 0.01 * (i + 1) as f32)
                    .collect()
            })
        });
        let t = peft_tensors(peft_adapters(&m).unwrap());
        assert_eq!(t.len(), 4);
        let (a_key, a) = &t[0];
        assert_eq!(a_key, "base_model.model.blocks.0.mlp.fc1.lora_A.weight");
        let lin = &m.blocks[0].mlp.fc1;
        let (d_in, d_out) = lin.dims();
        assert_eq!(a.shape, vec![2, d_in]);
        let values = |p: &Option<Param<Tensor<2>>>| -> Vec<f32> {
            p.as_ref()
                .unwrap()
                .val()
                .into_data()
                .try_into_vec()
                .unwrap()
        };
        // Burn's A is [d_in, r]: PEFT's [r, d_in] is its transpose.
        let burn = values(&lin.lora_a);
        assert_eq!(a.values[1], burn[2]); // PEFT [0, 1] = Burn [1, 0]
        assert_eq!(a.values[d_in], burn[1]); // PEFT [1, 0] = Burn [0, 1]
        assert_eq!(t[1].0, "base_model.model.blocks.0.mlp.fc1.lora_B.weight");
        // Burn's B is [r, d_out]: PEFT's [d_out, r] is its transpose.
        assert_eq!(t[1].1.shape, vec![d_out, 2]);
        let burn_b = values(&lin.lora_b);
        assert_eq!(t[1].1.values[1], burn_b[d_out]); // PEFT [0, 1] = Burn [1, 0]
        assert_eq!(t[1].1.values[2], burn_b[1]); // PEFT [1, 0] = Burn [0, 1]
        let c = peft_config(&m.lora_layers());
        assert_eq!(c["target_modules"].as_array().unwrap().len(), 2);
        // Ranks 2 and 3 (α 4 and 6): one of each is `r` / `lora_alpha`, the other a pattern.
        assert_eq!(c["rank_pattern"].as_object().unwrap().len(), 1);
        assert_eq!(c["alpha_pattern"].as_object().unwrap().len(), 1);
    }

    #[test]
    fn bad_adapters_are_refused_naming_the_layer() {
        let m = model(&Device::flex());
        let l = |layer: &str, rank, alpha| LoraLayer {
            layer: layer.into(),
            rank,
            alpha,
        };
        let e = |ls: &[LoraLayer]| m.clone().with_lora(ls, 0).unwrap_err();
        assert_eq!(
            e(&[l("blocks.0.attn.nope", 2, 2.0)]),
            LoraError::UnknownLayer("blocks.0.attn.nope".into())
        );
        assert!(matches!(
            e(&[l("blocks.0.attn.qkv", 0, 1.0)]),
            LoraError::Rank { .. }
        ));
        assert!(matches!(
            e(&[l("blocks.0.attn.qkv", 10_000, 1.0)]),
            LoraError::Rank { .. }
        ));
        assert!(matches!(
            e(&[l("blocks.0.attn.qkv", 2, f64::NAN)]),
            LoraError::Alpha { .. }
        ));
        assert_eq!(
            e(&[l("t_block.1", 2, 2.0), l("t_block.1", 2, 2.0)]),
            LoraError::Duplicate("t_block.1".into())
        );
        let once = m.clone().with_lora(&[l("t_block.1", 2, 2.0)], 0).unwrap();
        assert_eq!(
            once.with_lora(&[l("t_block.1", 2, 2.0)], 0).unwrap_err(),
            LoraError::Attached("t_block.1".into())
        );
    }

    /// Gradient check of the adapter's backward (the fused kernel's, composed): against Burn's
    /// own matmuls under autodiff, and against central differences for a few entries.
    #[test]
    fn adapter_gradients_match_burn_and_finite_differences() {
        let dev = Device::flex().autodiff();
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let mut rand = |shape: [usize; 2]| {
            let v: Vec<f32> = (0..shape[0] * shape[1])
                .map(|_| rng.sample(StandardNormal))
                .collect();
            Tensor::<1>::from_floats(v.as_slice(), &dev).reshape(shape)
        };
        let (d_in, d_out, r) = (12, 10, 3);
        let (x, w, a, b, probe) = (
            rand([5, d_in]),
            rand([d_in, d_out]),
            rand([d_in, r]),
            rand([r, d_out]),
            rand([5, d_out]),
        );
        let mut lin = Linear::new(d_in, d_out, &dev);
        // The base frozen, as under a LoRA plan.
        lin.weight = Param::from_tensor(w.clone()).set_require_grad(false);
        lin.lora_a = Some(Param::from_tensor(a.clone()));
        lin.lora_b = Some(Param::from_tensor(b.clone()));
        lin.lora_alpha = 0.75 * 3.0;
        let bias = lin.bias.as_ref().map(|p| p.val()).unwrap();
        let x = x.require_grad();
        let loss = (lin.forward(x.clone()) * probe.clone()).sum();
        let grads0 = loss.backward();
        // The input's gradient too: with the base frozen the fused kernel keeps its input for
        // the adapter alone, and a block below needs this gradient.
        let gx = x.grad(&grads0).expect("input gradient");
        let g = GradientsParams::from_grads(grads0, &lin);
        let ga = g.get::<2>(lin.lora_a.as_ref().unwrap().id).unwrap();
        let gb = g.get::<2>(lin.lora_b.as_ref().unwrap().id).unwrap();
        assert!(
            g.get::<2>(lin.weight.id).is_none(),
            "a frozen base gets no gradient"
        );

        // Reference: the same function on Burn's matmuls.
        let (ra, rb) = (a.clone().require_grad(), b.clone().require_grad());
        let rx = x.clone().detach().require_grad();
        let y = rx.clone().matmul(w.clone())
            + bias.clone().detach().unsqueeze::<2>()
            + rx.clone()
                .matmul(ra.clone())
                .matmul(rb.clone())
                .mul_scalar(0.75);
        let grads = (y * probe.clone()).sum().backward();
        let close = |p: Tensor<2>, q: Tensor<2>| {
            let d = (p.inner() - q.inner()).abs().max().into_scalar::<f32>();
            assert!(d < 1e-4, "gradient differs by {d}");
        };
        close(ga.clone(), Tensor::from_inner(ra.grad(&grads).unwrap()));
        close(gb.clone(), Tensor::from_inner(rb.grad(&grads).unwrap()));
        close(
            Tensor::from_inner(gx),
            Tensor::from_inner(rx.grad(&grads).unwrap()),
        );

        // Central differences in f64 on the plain values, for a few entries of A and B.
        fn vals<const D: usize>(t: &Tensor<D>) -> Vec<f64> {
            t.clone()
                .inner()
                .into_data()
                .try_into_vec::<f32>()
                .unwrap()
                .iter()
                .map(|&v| v as f64)
                .collect()
        }
        let (xv, wv, av, bv, pv) = (
            vals(&x.clone().detach()),
            vals(&w),
            vals(&a),
            vals(&b),
            vals(&probe),
        );
        let bsv = vals(&bias);
        let f = |av: &[f64], bv: &[f64]| {
            let mut s = 0.0;
            for i in 0..5 {
                for o in 0..d_out {
                    let mut y = bsv[o];
                    for k in 0..d_in {
                        y += xv[i * d_in + k] * wv[k * d_out + o];
                    }
                    let mut low = 0.0;
                    for q in 0..r {
                        let mut h = 0.0;
                        for k in 0..d_in {
                            h += xv[i * d_in + k] * av[k * r + q];
                        }
                        low += h * bv[q * d_out + o];
                    }
                    s += (y + 0.75 * low) * pv[i * d_out + o];
                }
            }
            s
        };
        let (gav, gbv) = (vals(&ga), vals(&gb));
        let h = 1e-4;
        for idx in [0, 7, 20, 35] {
            let (mut p, mut m) = (av.clone(), av.clone());
            p[idx] += h;
            m[idx] -= h;
            let fd = (f(&p, &bv) - f(&m, &bv)) / (2.0 * h);
            assert!(
                (fd - gav[idx]).abs() < 1e-3 * (1.0 + fd.abs()),
                "A[{idx}]: {fd} vs {}",
                gav[idx]
            );
            let (mut p, mut m) = (bv.clone(), bv.clone());
            p[idx % bv.len()] += h;
            m[idx % bv.len()] -= h;
            let fd = (f(&av, &p) - f(&av, &m)) / (2.0 * h);
            let an = gbv[idx % bv.len()];
            assert!(
                (fd - an).abs() < 1e-3 * (1.0 + fd.abs()),
                "B[{idx}]: {fd} vs {an}"
            );
        }
    }
}
