use burn::module::Module;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Distribution;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::*;
use crate::init::initialize;
use crate::paths::{map_values, param_table};
use crate::text::{TextEncoder, WordEncoder};

fn tiny() -> StdiTConfig {
    StdiTConfig::tiny()
}

fn captions(b: usize, dev: &Device) -> CaptionBatch {
    let enc = WordEncoder::new(
        ["a", "red", "circle", "moves", "left", "blue"].map(String::from),
        16,
        12,
        0,
    );
    let prompts: Vec<String> = (0..b)
        .map(|i| {
            if i % 2 == 0 {
                "a red circle moves left".into()
            } else {
                "a blue circle".into()
            }
        })
        .collect();
    enc.encode_batch(&prompts, dev).unwrap()
}

/// Seeded N(0, 1) videos: tests must not depend on a global RNG's state.
fn video(b: usize, t: usize, dev: &Device) -> Tensor<5> {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut rng =
        ChaCha8Rng::seed_from_u64(1000 + CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let n = b * t * 3 * 16 * 16;
    let v: Vec<f32> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
    Tensor::<1>::from_floats(v.as_slice(), dev).reshape([b, t, 3, 16, 16])
}

fn max_abs_diff(a: Tensor<5>, b: Tensor<5>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

/// Adds N(0, std) to every parameter whose Open-Sora path contains `pattern`.
fn perturb<M: Module>(m: M, pattern: &'static str, std: f32) -> M {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    map_values(m, |path, _, read| {
        path.contains(pattern).then(|| {
            read()
                .into_iter()
                .map(|x| x + std * rng.sample::<f32, _>(StandardNormal))
                .collect()
        })
    })
}

#[test]
fn forward_keeps_the_video_shape_in_video_and_image_mode() {
    let dev = Device::flex();
    let model = initialize(Stdit::new(&tiny(), &dev), 0);
    let x = video(2, 4, &dev);
    let y = model.forward(x, Tensor::from_floats([0.3, 0.9], &dev), &captions(2, &dev));
    assert_eq!(y.dims(), [2, 4, 3, 16, 16]);
    let img = model.forward(
        video(3, 1, &dev),
        Tensor::from_floats([0.1, 0.5, 0.7], &dev),
        &captions(3, &dev),
    );
    assert_eq!(img.dims(), [3, 1, 3, 16, 16]);
}

#[test]
fn parameter_paths_are_opensora_keys() {
    let model = Stdit::new(&tiny(), &Device::flex());
    let paths: Vec<String> = param_table(&model).into_iter().map(|p| p.path).collect();
    for key in [
        "x_embedder.proj.weight",
        "t_embedder.mlp.0.weight",
        "t_embedder.mlp.2.bias",
        "t_block.1.weight",
        "y_embedder.y_proj.fc1.weight",
        "y_embedder.y_embedding",
        "blocks.0.attn.qkv.weight",
        "blocks.1.attn_temp.proj.weight",
        "blocks.0.cross_attn.q_linear.weight",
        "blocks.0.cross_attn.kv_linear.bias",
        "blocks.1.mlp.fc2.weight",
        "blocks.1.scale_shift_table",
        "final_layer.linear.weight",
        "final_layer.scale_shift_table",
    ] {
        assert!(
            paths.contains(&key.to_string()),
            "missing {key}; have {paths:?}"
        );
    }
    assert_eq!(paths.len(), 13 + 19 * 2 + 3);
}

#[test]
fn inflated_model_equals_the_per_frame_image_model() {
    for (pos, frame_slots) in [
        (TemporalPos::Attention, 0),
        (TemporalPos::Gated, 0),
        // `stream` with slots: frame f against the image model at slot f.
        (TemporalPos::Stream, 6),
    ] {
        inflation_identity_holds(pos, frame_slots, false);
    }
    // The temporal attention reading the caption keeps it too (its output projection is zero).
    inflation_identity_holds(TemporalPos::Stream, 6, true);
}

fn inflation_identity_holds(pos: TemporalPos, frame_slots: usize, caption_to_temporal: bool) {
    let dev = Device::flex();
    let cfg = StdiTConfig {
        temporal_pos: pos,
        frame_slots,
        caption_to_temporal,
        ..tiny()
    };
    // Random weights everywhere except the zero-initialised temporal output projection (and,
    // when gated, the zero-initialised position gates).
    let model = perturb(initialize(Stdit::new(&cfg, &dev), 1), "", 0.05);
    let model = initialize_temporal_proj_to_zero(model);
    let (b, t) = (2, 4);
    let x = video(b, t, &dev);
    let time = Tensor::<1>::from_floats([0.25, 0.8], &dev);
    let cap = captions(b, &dev);
    let video_out = model.forward(x.clone(), time.clone(), &cap); // [B, T, C, H, W]

    // The image model: every frame on its own, T = 1, temporal branch skipped.
    let frames = x.clone().reshape([b * t, 1, 3, 16, 16]);
    let time_f = time.clone().reshape([b, 1]).expand([b, t]).reshape([b * t]);
    let cap_f = CaptionBatch {
        tokens: cap
            .tokens
            .clone()
            .unsqueeze_dim::<4>(1)
            .expand([b, t, 12, 16])
            .reshape([b * t, 12, 16]),
        pad: cap
            .pad
            .clone()
            .unsqueeze_dim::<3>(1)
            .expand([b, t, 12])
            .reshape([b * t, 12]),
        null: cap
            .null
            .clone()
            .reshape([b, 1])
            .expand([b, t])
            .reshape([b * t]),
    };
    let slots: Vec<usize> = (0..b).flat_map(|_| 0..t).collect();
    let image_out = model
        .forward_at(frames.clone(), time_f.clone(), &cap_f, &slots)
        .reshape([b, t, 3, 16, 16]);
    let d = max_abs_diff(video_out.clone(), image_out.clone());
    assert!(d < 1e-5, "{pos:?}: inflation identity broken: |Δ| = {d}");
    if frame_slots > 0 {
        // The slot is read: every frame at slot 0 is not the video.
        let at_zero = model
            .forward(frames.clone(), time_f.clone(), &cap_f)
            .reshape([b, t, 3, 16, 16]);
        let d0 = max_abs_diff(video_out.clone(), at_zero);
        assert!(d0 > 1e-3, "frame slots had no effect: {d0}");
        // A model without slots adds no position to an image, so the same frames at their
        // slots are the image model of plain `stream`, which the video is not.
        let mut plain = model.clone();
        plain.frame_slots = 0;
        let d1 = max_abs_diff(
            video_out.clone(),
            plain
                .forward_at(frames.clone(), time_f.clone(), &cap_f, &slots)
                .reshape([b, t, 3, 16, 16]),
        );
        assert!(d1 > 1e-3, "plain stream kept the identity: {d1}");
    }

    // The check is sensitive: a non-zero temporal projection breaks the identity, and so does
    // an open position gate.
    let moved = perturb(model.clone(), "attn_temp.proj", 0.05);
    let d2 = max_abs_diff(
        moved.forward(x.clone(), time.clone(), &cap),
        image_out.clone(),
    );
    assert!(d2 > 1e-3, "{pos:?}: temporal branch had no effect: {d2}");
    if pos == TemporalPos::Gated {
        let opened = perturb(model, "attn_temp.pos_gate", 0.05);
        let d3 = max_abs_diff(opened.forward(x, time, &cap), image_out);
        assert!(d3 > 1e-3, "an open position gate had no effect: {d3}");
    }
}

/// Zeroes what an inflated model starts with at zero: the temporal output projections and the
/// temporal position gates.
fn initialize_temporal_proj_to_zero(m: Stdit) -> Stdit {
    map_values(m, |path, shape, _| {
        (path.contains("attn_temp.proj") || path.contains("attn_temp.pos_gate"))
            .then(|| vec![0.0; shape.iter().product()])
    })
}

#[test]
fn null_caption_changes_the_prediction_and_padding_is_ignored() {
    let dev = Device::flex();
    let model = perturb(initialize(Stdit::new(&tiny(), &dev), 2), "", 0.05);
    let x = video(2, 4, &dev);
    let t = Tensor::<1>::from_floats([0.5, 0.5], &dev);
    let cap = captions(2, &dev);
    let a = model.forward(x.clone(), t.clone(), &cap);
    let b = model.forward(x.clone(), t.clone(), &cap.to_null());
    assert!(max_abs_diff(a.clone(), b) > 1e-4);
    // Garbage in padded token slots must not matter.
    let noise = Tensor::<3>::random([2, 12, 16], Distribution::Normal(0.0, 1.0), &dev);
    let pad3 = cap.pad.clone().unsqueeze_dim::<3>(2).expand([2, 12, 16]);
    let dirty = CaptionBatch {
        tokens: cap.tokens.clone().mask_where(pad3, noise),
        ..cap.clone()
    };
    assert!(max_abs_diff(a, model.forward(x, t, &dirty)) < 1e-5);
}

/// Loss of a fixed batch as f64, for finite differences.
fn loss_of(
    model: &Stdit,
    x: &Tensor<5>,
    t: &Tensor<1>,
    cap: &CaptionBatch,
    target: &Tensor<5>,
) -> Tensor<1> {
    (model.forward(x.clone(), t.clone(), cap) - target.clone())
        .powi_scalar(2)
        .mean()
}

/// The model with element `index` of the parameter at `target` moved by `eps`.
/// Moves parameter `target` by `eps` along `dir`.
fn nudge(m: Stdit, target: &str, dir: &[f32], eps: f32) -> Stdit {
    map_values(m, |path, _, read| {
        (path == target).then(|| read().iter().zip(dir).map(|(v, d)| v + eps * d).collect())
    })
}

#[test]
fn autodiff_gradients_match_finite_differences() {
    // On flex the model runs the fused kernels of `freezeframe-kernels`, whose hand-written
    // backwards are each gradient-checked in their own files; this checks them as the model
    // composes them with Burn's ops and reshapes, against finite differences.
    gradients_match_finite_differences(TemporalPos::Attention, false, &[]);
    gradients_match_finite_differences(
        TemporalPos::Gated,
        false,
        &["blocks.0.attn_temp.pos_gate", "blocks.1.attn_temp.pos_gate"],
    );
    gradients_match_finite_differences(
        TemporalPos::Stream,
        true,
        &[
            "blocks.0.attn_temp.y_cond.weight",
            "blocks.1.attn_temp.y_cond.bias",
        ],
    );
}

fn gradients_match_finite_differences(pos: TemporalPos, caption_to_temporal: bool, extra: &[&str]) {
    let ad = Device::flex().autodiff();
    let plain = Device::flex();
    let cfg = StdiTConfig {
        temporal_pos: pos,
        caption_to_temporal,
        ..tiny()
    };
    let model = perturb(initialize(Stdit::new(&cfg, &ad), 3), "", 0.1);
    let x = video(2, 4, &plain);
    let target = video(2, 4, &plain);
    let t = Tensor::<1>::from_floats([0.3, 0.7], &plain);
    let cap = captions(2, &plain);
    let to_ad = |c: &CaptionBatch| CaptionBatch {
        tokens: c.tokens.clone().to_device(&ad),
        pad: c.pad.clone().to_device(&ad),
        null: c.null.clone().to_device(&ad),
    };
    let loss = loss_of(
        &model,
        &x.clone().to_device(&ad),
        &t.clone().to_device(&ad),
        &to_ad(&cap),
        &target.clone().to_device(&ad),
    );
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let table = param_table(&model);
    let plain_model = model.valid();
    // Directional derivatives along the autodiff gradient's own direction: the finite difference
    // must give |g| (a wrong gradient, in size or direction, gives less or more). Checking a
    // whole tensor at once keeps the signal far above f32 rounding, which single entries with
    // gradients of 1e-6 are not.
    let common = [
        "blocks.0.attn.qkv.weight",
        "blocks.1.attn_temp.qkv.weight",
        "blocks.0.attn_temp.proj.weight",
        "blocks.1.cross_attn.kv_linear.weight",
        "blocks.0.mlp.fc1.weight",
        "blocks.1.scale_shift_table",
        "y_embedder.y_proj.fc1.weight",
        "t_embedder.mlp.0.weight",
        "x_embedder.proj.weight",
    ];
    for &path in common.iter().chain(extra) {
        let info = table.iter().find(|p| p.path == path).unwrap();
        let g: Vec<f32> = match info.shape.len() {
            1 => grads
                .get::<1>(info.id)
                .unwrap()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap(),
            _ => grads
                .get::<2>(info.id)
                .unwrap()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap(),
        };
        let norm = g.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
        assert!(
            norm > 1e-4,
            "{path}: gradient norm {norm:e} too small to check"
        );
        let dir: Vec<f32> = g.iter().map(|v| (*v as f64 / norm) as f32).collect();
        let eps = 1e-2;
        let f = |e: f32| {
            let m = nudge(plain_model.clone(), path, &dir, e);
            loss_of(&m, &x, &t, &cap, &target).into_scalar::<f32>() as f64
        };
        let fd = (f(eps) - f(-eps)) / (2.0 * eps as f64);
        let tol = 2e-2 * norm + 1e-5;
        assert!(
            (fd - norm).abs() < tol,
            "{pos:?} {path}: autodiff |g| {norm:.6e} vs finite difference along g {fd:.6e}"
        );
    }
}

#[test]
fn the_temporal_attention_reads_the_caption_only_with_caption_to_temporal() {
    let dev = Device::flex();
    let with = StdiTConfig {
        temporal_pos: TemporalPos::Stream,
        caption_to_temporal: true,
        ..tiny()
    };
    let paths = |m: &Stdit| -> Vec<String> { param_table(m).into_iter().map(|p| p.path).collect() };
    let model = Stdit::new(&with, &dev);
    assert!(paths(&model).contains(&"blocks.1.attn_temp.y_cond.weight".to_string()));
    assert!(
        !paths(&Stdit::new(&tiny(), &dev))
            .iter()
            .any(|p| p.contains("y_cond")),
        "the option is off by default"
    );
    // Random weights everywhere (a trained model), then y_cond zeroed: the model without the
    // option, loaded with the same weights, gives the same output — a zero y_cond adds nothing.
    let trained = perturb(initialize(model, 2), "", 0.05);
    let zeroed = map_values(trained.clone(), |path, shape, _| {
        path.contains("attn_temp.y_cond")
            .then(|| vec![0.0; shape.iter().product()])
    });
    let mut values = std::collections::HashMap::new();
    let _ = map_values(trained.clone(), |path, _, read| {
        values.insert(path.to_string(), read());
        None
    });
    let without = StdiTConfig {
        temporal_pos: TemporalPos::Stream,
        ..tiny()
    };
    let plain = map_values(Stdit::new(&without, &dev), |path, _, _| {
        values.get(path).cloned()
    });
    let (x, t, cap) = (
        video(2, 4, &dev),
        Tensor::<1>::from_floats([0.3, 0.9], &dev),
        captions(2, &dev),
    );
    let z = zeroed.forward(x.clone(), t.clone(), &cap);
    let p = plain.forward(x.clone(), t.clone(), &cap);
    assert!(
        max_abs_diff(z.clone(), p) < 1e-6,
        "a zero y_cond changed the output"
    );
    // With y_cond non-zero, the temporal branch reads the caption.
    let a = trained.forward(x, t, &cap);
    assert!(max_abs_diff(a, z) > 1e-3, "y_cond had no effect");
}

/// Reverses the frame axis of a [B, T, C, H, W] tensor.
fn reverse_frames(x: Tensor<5>) -> Tensor<5> {
    let t = x.dims()[1];
    let idx: Vec<i64> = (0..t as i64).rev().collect();
    let idx = Tensor::<1, Int>::from_ints(idx.as_slice(), &x.device());
    x.select(1, idx)
}

#[test]
fn only_the_stream_embedding_tells_frame_order_before_temporal_training() {
    // With the temporal output projections still zero, the v1.0 model is the image model per
    // frame: reversing the frames reverses the output, so nothing can tie a direction word to
    // a direction yet. The stream embedding breaks that symmetry from the first step.
    let dev = Device::flex();
    let (b, t) = (2, 4);
    let x = video(b, t, &dev);
    let time = Tensor::<1>::from_floats([0.3, 0.7], &dev);
    let cap = captions(b, &dev);
    let wirings = [
        (TemporalPos::Attention, true),
        (TemporalPos::Stream, false),
        (TemporalPos::Gated, true),
    ];
    for (pos, symmetric) in wirings {
        let cfg = StdiTConfig {
            temporal_pos: pos,
            ..tiny()
        };
        let model = perturb(initialize(Stdit::new(&cfg, &dev), 3), "", 0.05);
        let model = initialize_temporal_proj_to_zero(model);
        let forward = model.forward(x.clone(), time.clone(), &cap);
        let backward = model.forward(reverse_frames(x.clone()), time.clone(), &cap);
        let d = max_abs_diff(reverse_frames(backward), forward);
        assert_eq!(d < 1e-5, symmetric, "{pos:?}: |Δ| = {d}");
    }
}

#[test]
fn a_closed_position_gate_still_learns() {
    // Zero at step 0 keeps the inflation identity; the gate's gradient must not be zero too,
    // or the gated wiring would be `attention` in disguise. The gradient reaches the gate even
    // with every temporal output projection still zero.
    let ad = Device::flex().autodiff();
    let cfg = StdiTConfig {
        temporal_pos: TemporalPos::Gated,
        ..tiny()
    };
    let model = perturb(initialize(Stdit::new(&cfg, &ad), 5), "", 0.05);
    let model = initialize_temporal_proj_to_zero(model);
    let x = video(2, 4, &ad);
    let target = video(2, 4, &ad);
    let t = Tensor::<1>::from_floats([0.3, 0.7], &ad);
    let loss = loss_of(&model, &x, &t, &captions(2, &ad), &target);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let gates: Vec<_> = param_table(&model)
        .into_iter()
        .filter(|p| p.path.ends_with("attn_temp.pos_gate"))
        .collect();
    assert_eq!(gates.len(), cfg.depth);
    for p in gates {
        let g = grads
            .get::<1>(p.id)
            .unwrap()
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(g > 1e-6, "{}: gradient {g:e} at a closed gate", p.path);
    }
}

#[test]
fn the_parameter_estimate_that_bounds_a_config_is_within_ten_percent_of_the_real_count() {
    let dev = Device::flex();
    for (name, cfg) in [
        ("small", StdiTConfig::small()),
        ("base", StdiTConfig::base()),
        (
            "small, ratio 2",
            StdiTConfig {
                mlp_ratio: 2.0,
                ..StdiTConfig::small()
            },
        ),
    ] {
        let real: usize = param_table(&Stdit::new(&cfg, &dev))
            .iter()
            .map(|p| p.shape.iter().product::<usize>())
            .sum();
        let est = cfg.estimated_params() as f64;
        let rel = (est - real as f64).abs() / real as f64;
        assert!(rel < 0.10, "{name}: estimate {est} against {real}");
    }
}
