"""Latent caches for freezeframe (issue 27): VAE latents of video clips and text-encoder features
of their captions, precomputed once, so that an imported PixArt trains on what it was built for.

Run by hand in a venv (never needed by the default build or CI's Rust tests):

    python -m venv venv && venv/bin/pip install torch diffusers transformers safetensors imageio av
    # a folder of videos with a captions CSV (path,text), a diffusers VAE and a T5 encoder:
    venv/bin/python tools/latents/make_cache.py --videos clips/ --captions clips.csv \
        --vae PixArt-alpha/sd-vae-ft-ema --text-encoder t5-v1_1-xxl --frames 8 --size 256 \
        --text-len 120 --out latents/
    # the test fixture: synthetic clips, a random tiny VAE and text encoder:
    venv/bin/python tools/latents/make_cache.py --synthetic --out crates/freezeframe-train/tests/fixtures/latents
    # decode sampled latents (`freezeframe sample` on a latent run) to a GIF:
    venv/bin/python tools/latents/make_cache.py --decode samples.safetensors --vae ... --out samples.gif

The cache is a folder:
- `index.json`: {"format": 1, "kind": "freezeframe-latents", "latent_channels": C,
  "caption_channels": D, "text_len": L, "scaling_factor": s, "vae": "...", "text_encoder": "...",
  "shards": [{"file": "<16 hex>.safetensors", "hash": "<16 hex>"}],
  "clips": [{"shard": i, "key": "k", "frames": T, "height": h, "width": w, "caption": "...",
  "tokens": n}]}
- shards named by the FNV-1a 64 hash of their bytes (as freezeframe's clip cache), holding per
  clip `<key>.latent` f32 [T, C, h, w] (the VAE's mean latent times its scaling factor, as
  diffusers trains on), `<key>.caption` f32 [L, D] and `<key>.mask` u8 [L] (1 = a token).
Clips of several (frames, height, width) go in one cache; freezeframe batches one size at a time.
"""

import argparse
import json
import pathlib

import numpy as np
import torch
from safetensors.torch import load_file, save_file

FORMAT = 1


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# ---------------------------------------------------------------------------------------------
# Models: a diffusers VAE and a text encoder, from a folder or random and tiny (fixtures)
# ---------------------------------------------------------------------------------------------


def load_vae(spec: str, seed: int):
    from diffusers import AutoencoderKL

    if spec != "random-tiny":
        return AutoencoderKL.from_pretrained(spec).eval(), spec
    torch.manual_seed(seed)
    # Two blocks: 2× down-sampling, 4 latent channels (as SD's VAE has).
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )
    return vae.eval(), "random-tiny AutoencoderKL (seed %d)" % seed


class WordTokenizer:
    """Word ids in sorted order of the captions' words (0 is padding): the random-tiny encoder's
    tokenizer, standing in for a real one in fixtures."""

    def __init__(self, captions):
        words = sorted({w for c in captions for w in c.lower().split()})
        self.ids = {w: i + 1 for i, w in enumerate(words)}

    def __call__(self, caption, text_len):
        ids = [self.ids[w] for w in caption.lower().split()]
        if len(ids) > text_len:
            raise SystemExit(f"caption {caption!r} has {len(ids)} tokens, more than --text-len {text_len}")
        mask = [1] * len(ids) + [0] * (text_len - len(ids))
        return ids + [0] * (text_len - len(ids)), mask


def load_text_encoder(spec: str, captions, seed: int):
    from transformers import T5Config, T5EncoderModel

    if spec != "random-tiny":
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(spec)
        model = T5EncoderModel.from_pretrained(spec).eval()

        def encode(caption, text_len):
            # Never cut a caption short: a cut caption is a different caption.
            ids = tok(caption)["input_ids"]
            if len(ids) > text_len:
                raise SystemExit(f"caption {caption!r} has {len(ids)} tokens, more than --text-len {text_len}")
            pad = tok.pad_token_id or 0
            return ids + [pad] * (text_len - len(ids)), [1] * len(ids) + [0] * (text_len - len(ids))

        return model, encode, spec
    torch.manual_seed(seed + 1)
    tok = WordTokenizer(captions)
    cfg = T5Config(
        vocab_size=len(tok.ids) + 1, d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16
    )
    return T5EncoderModel(cfg).eval(), tok, "random-tiny T5EncoderModel (seed %d)" % (seed + 1)


# ---------------------------------------------------------------------------------------------
# Clips: a folder of videos with captions, or synthetic squares (fixtures)
# ---------------------------------------------------------------------------------------------


def synthetic_clips(seed: int):
    """12 clips in two sizes (4 frames of 16×16, 2 frames of 16×32 pixels) of a coloured square
    moving left or right, with captions saying which."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(12):
        frames, h, w = (4, 16, 16) if i % 3 else (2, 16, 32)
        colour = ["red", "blue"][i % 2]
        direction = ["left", "right"][(i // 2) % 2]
        rgb = np.array([1.0, 0.1, 0.1] if colour == "red" else [0.1, 0.2, 1.0])
        x0 = rng.integers(4, w - 8)
        video = np.full((frames, h, w, 3), 0.1, dtype=np.float32)
        for f in range(frames):
            x = x0 + (2 * f if direction == "right" else -2 * f)
            x = int(np.clip(x, 0, w - 4))
            video[f, 6:10, x : x + 4] = rgb
        clips.append((video, f"a {colour} square moves {direction}"))
    return clips


def folder_clips(videos: pathlib.Path, captions_csv: pathlib.Path, frames: int, size: int):
    import csv

    import imageio.v3 as iio

    out = []
    with open(captions_csv, newline="") as f:
        for row in csv.DictReader(f):
            # Open-Sora's optional columns give a clip its own size (a bucket of its own).
            t = int(row.get("num_frames") or frames)
            h, w = int(row.get("height") or size), int(row.get("width") or size)
            frames_all = iio.imread(videos / row["path"], plugin="pyav")  # [N, H, W, 3] u8
            if len(frames_all) < t:
                print(f"skipped {row['path']}: {len(frames_all)} frames < {t}")
                continue
            clip = torch.from_numpy(frames_all[:t]).float().permute(0, 3, 1, 2) / 255.0
            clip = torch.nn.functional.interpolate(clip, size=(h, w), mode="area")
            out.append((clip.permute(0, 2, 3, 1).numpy(), row["text"]))
    return out


# ---------------------------------------------------------------------------------------------
# Writing the cache
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def encode_clip(vae, video: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(video).permute(0, 3, 1, 2) * 2.0 - 1.0  # [T, 3, H, W] in [-1, 1]
    latent = vae.encode(x).latent_dist.mean  # [T, C, h, w]
    return (latent * vae.config.scaling_factor).float().contiguous()


@torch.no_grad()
def encode_caption(encoder, tokenize, caption: str, text_len: int):
    ids, mask = tokenize(caption, text_len)
    ids_t = torch.tensor([ids])
    mask_t = torch.tensor([mask])
    feats = encoder(input_ids=ids_t, attention_mask=mask_t).last_hidden_state[0]  # [L, D]
    return feats.float().contiguous(), torch.tensor(mask, dtype=torch.uint8), sum(mask)


def write_cache(out: pathlib.Path, clips, vae, vae_name, encoder, tokenize, enc_name, text_len, per_shard):
    out.mkdir(parents=True, exist_ok=True)
    if (out / "index.json").exists():
        raise SystemExit(f"{out / 'index.json'} exists; choose another --out")
    if not clips:
        raise SystemExit("no clip to write (every video was skipped)")
    index = {
        "format": FORMAT,
        "kind": "freezeframe-latents",
        "latent_channels": vae.config.latent_channels,
        "caption_channels": encoder.config.d_model,
        "text_len": text_len,
        "scaling_factor": vae.config.scaling_factor,
        "vae": vae_name,
        "text_encoder": enc_name,
        "shards": [],
        "clips": [],
    }
    for s in range(0, len(clips), per_shard):
        tensors = {}
        for i, (video, caption) in enumerate(clips[s : s + per_shard]):
            key = f"{s + i:06d}"
            latent = encode_clip(vae, video)
            feats, mask, n = encode_caption(encoder, tokenize, caption, text_len)
            tensors[f"{key}.latent"] = latent
            tensors[f"{key}.caption"] = feats
            tensors[f"{key}.mask"] = mask
            t, _, h, w = latent.shape
            index["clips"].append(
                dict(shard=len(index["shards"]), key=key, frames=t, height=h, width=w, caption=caption, tokens=n)
            )
        tmp = out / "shard.partial"
        save_file(tensors, str(tmp), metadata={"format": "freezeframe-latents"})
        digest = fnv1a64(tmp.read_bytes())
        name = f"{digest}.safetensors"
        tmp.rename(out / name)
        index["shards"].append({"file": name, "hash": digest})
    (out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    sizes = sorted({(c["frames"], c["height"], c["width"]) for c in index["clips"]})
    print(f"wrote {len(index['clips'])} clips in {len(index['shards'])} shards to {out}; sizes (T, h, w): {sizes}")


@torch.no_grad()
def decode(path: pathlib.Path, vae, out: pathlib.Path):
    from PIL import Image

    latents = load_file(str(path))["latents"]  # [n, T, C, h, w]
    rows = []
    for clip in latents:
        x = vae.decode(clip / vae.config.scaling_factor).sample  # [T, 3, H, W]
        rows.append(((x.clamp(-1, 1) + 1) * 127.5).byte().permute(0, 2, 3, 1).numpy())
    frames = [Image.fromarray(np.concatenate([r[f] for r in rows], axis=1)) for f in range(rows[0].shape[0])]
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=125, loop=0)
    print(f"wrote {out}: {len(rows)} clips side by side, {len(frames)} frames")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=pathlib.Path, required=True)
    p.add_argument("--vae", default="random-tiny")
    p.add_argument("--text-encoder", default="random-tiny")
    p.add_argument("--synthetic", action="store_true", help="the fixture's synthetic clips")
    p.add_argument("--videos", type=pathlib.Path)
    p.add_argument(
        "--captions",
        type=pathlib.Path,
        help="CSV with columns path,text and optionally num_frames,height,width (per-clip size)",
    )
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--text-len", type=int, help="caption tokens stored (default 120; 12 with --synthetic)")
    p.add_argument("--per-shard", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--decode", type=pathlib.Path, help="latents .safetensors to decode to --out (GIF)")
    a = p.parse_args()
    vae, vae_name = load_vae(a.vae, a.seed)
    if a.decode:
        return decode(a.decode, vae, a.out)
    if a.synthetic:
        clips = synthetic_clips(a.seed)
    elif a.videos and a.captions:
        clips = folder_clips(a.videos, a.captions, a.frames, a.size)
    else:
        raise SystemExit("give --synthetic, or --videos and --captions")
    text_len = a.text_len or (12 if a.synthetic else 120)
    encoder, tokenize, enc_name = load_text_encoder(a.text_encoder, [c for _, c in clips], a.seed)
    write_cache(a.out, clips, vae, vae_name, encoder, tokenize, enc_name, text_len, a.per_shard)


if __name__ == "__main__":
    main()
