//! Where a run's cross-attention looks: the mean attention weight on each caption word, per
//! block, for one prompt on pure noise at a given t
//! (`cargo run --release -p freezeframe-train --example caption_attention -- RUN "prompt" [t]`).
//! A word the image stage never saw (a motion word) that gets almost no weight also gets almost
//! no gradient: softmax saturation keeps it unlearned.
use burn::prelude::*;
use burn::tensor::activation::{silu, softmax};
use freezeframe_model::stdit::{BlockContext, BlockModulation, sincos_1d, sincos_2d};
use freezeframe_model::{TemporalPos, TextEncoder};
use freezeframe_train::batch::normal_tensor;
use freezeframe_train::run::Run;
use freezeframe_train::sample::load_run;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (run, prompt) = match args.as_slice() {
        [_, r, p, ..] => (r.clone(), p.clone()),
        _ => return Err("usage: caption_attention RUN PROMPT [t]".into()),
    };
    let time: f32 = args.get(3).map_or(Ok(0.9), |s| s.parse())?;
    let dev = Device::flex();
    let r = load_run(&Run::new(&run), &dev)?;
    let m = &r.model;
    let [frames, c, h, w] = r.spec(1, 1.0, 0).shape;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let b = 4;
    let x = normal_tensor(&mut rng, [b, frames, c, h, w], &dev);
    let cap = r.encoder.encode_batch(&vec![prompt.clone(); b], &dev)?;
    let words = freezeframe_model::text::words(&prompt);
    // The model's forward up to each block's cross-attention (see Stdit::forward).
    let d = m.hidden;
    let (hp, wp) = (h / m.patch, w / m.patch);
    let s = hp * wp;
    let pos = Tensor::<1>::from_floats(sincos_2d(hp, wp, d).as_slice(), &dev).reshape([1, 1, s, d]);
    let tpe =
        Tensor::<1>::from_floats(sincos_1d(frames, d).as_slice(), &dev).reshape([1, frames, d]);
    let mut xs = m.x_embedder.forward(x).reshape([b, frames, s, d]) + pos;
    if frames > 1 && m.temporal_pos == TemporalPos::Stream {
        xs = xs + tpe.clone().reshape([1, frames, 1, d]);
    }
    let mut xs = xs.reshape([b, frames * s, d]);
    let t_emb = m.t_embedder.forward(Tensor::<1>::full([b], time, &dev));
    let t0 = m.t_block.forward(silu(t_emb));
    let (y, pad) = m
        .y_embedder
        .forward(cap.tokens.clone(), cap.pad.clone(), cap.null.clone());
    // Read only by blocks whose temporal attention reads the caption (`caption_to_temporal`).
    let pooled = freezeframe_model::stdit::mean_over_tokens(&y, &pad);
    for (i, block) in m.blocks.iter().enumerate() {
        let ctx = BlockContext {
            y: &y,
            pad: &pad,
            t0: &t0,
            frames,
            tpe: &tpe,
            tpe_into_attention: i == 0 && m.temporal_pos == TemporalPos::Attention,
            y_pooled: Some(&pooled),
        };
        // Stream at the block's cross-attention: after its spatial and temporal branches.
        let mo = BlockModulation::new(block.scale_shift_table.val(), t0.clone());
        let n = frames * s;
        let xa = block.space_time(xs.clone(), &ctx, &mo);
        let heads = block.cross_attn.heads;
        let dh = d / heads;
        let l = y.dims()[1];
        let q = block
            .cross_attn
            .q_linear
            .forward(xa)
            .reshape([b, n, heads, dh])
            .swap_dims(1, 2);
        let k = block
            .cross_attn
            .kv_linear
            .forward(y.clone())
            .narrow(2, 0, d)
            .reshape([b, l, heads, dh])
            .swap_dims(1, 2);
        let logits = q.matmul(k.transpose()).div_scalar((dh as f32).sqrt()); // [B, H, N, L]
        let mask = pad.clone().reshape([b, 1, 1, l]).expand([b, heads, n, l]);
        let wts = softmax(logits.mask_fill(mask, -1e9), 3);
        let per_word: Vec<f32> = wts
            .mean_dim(0)
            .mean_dim(1)
            .mean_dim(2)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        let row: Vec<String> = words
            .iter()
            .zip(&per_word)
            .map(|(w, p)| format!("{w} {p:.4}"))
            .collect();
        println!("block {i}: {}", row.join(", "));
        xs = block.forward(xs, &ctx);
    }
    Ok(())
}
