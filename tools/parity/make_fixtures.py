"""Parity fixtures for freezeframe's PixArt import (issue 13), made with diffusers' own model.

Run by hand (CI reads the committed fixtures and needs no Python):

    python -m venv venv && venv/bin/pip install torch diffusers safetensors
    venv/bin/python tools/parity/make_fixtures.py

For each small, randomly initialised `PixArtTransformer2DModel` below it writes, under
`crates/freezeframe-interop/tests/fixtures/pixart/<name>/`:
- `config.json` and `diffusion_pytorch_model.safetensors`: the model as diffusers saves it;
- `io.safetensors` (and, for `p2-rgb`, `io-24.safetensors` at 24×24, off the trained
  resolution): fixed inputs (`latents` [B, C, H, W], `timestep` [B] on diffusers' 0..1000
  scale, `caption` [B, L, caption_channels], `caption_mask` [B, L] with 1 = keep) and the
  model's output `sample` [B, out_channels, H, W], computed in float32.

Every parameter is drawn afresh (not diffusers' init, which leaves some tensors at zero or one),
so that each one moves the output and a wrong mapping of any single tensor shows.
"""

import json
import pathlib

import torch
from diffusers import PixArtTransformer2DModel
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/freezeframe-interop/tests/fixtures/pixart"

# Caption length: freezeframe's default `text_len`.
CAPTION_LEN = 12

CONFIGS = {
    # Patch 2 on 16×16 RGB, two layers, output channels = input channels.
    "p2-rgb": dict(
        num_attention_heads=4,
        attention_head_dim=16,
        in_channels=3,
        out_channels=3,
        num_layers=2,
        cross_attention_dim=64,
        sample_size=16,
        patch_size=2,
        caption_channels=32,
    ),
    # Patch 4 on 32×32 latents with PixArt-α's learned-sigma output (out = 2 × in) and a
    # position table interpolated by 2 (PixArt-α 1024's setting).
    "p4-sigma": dict(
        num_attention_heads=2,
        attention_head_dim=32,
        in_channels=4,
        out_channels=8,
        num_layers=1,
        cross_attention_dim=64,
        sample_size=32,
        patch_size=4,
        caption_channels=32,
        interpolation_scale=2,
    ),
}


def randomise(model: torch.nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            if name.endswith("scale_shift_table"):
                # Modulation values of order 0.3: gates that neither vanish nor explode.
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))


def make(name: str, cfg: dict, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    model = PixArtTransformer2DModel(**cfg).eval()
    randomise(model, gen)
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)

    write_io(model, cfg, gen, cfg["sample_size"], folder / "io.safetensors")
    if name == "p2-rgb":
        # Off the trained resolution: diffusers recomputes the position table with
        # `base_size`, so positions are rescaled (freezeframe's `pos_base`).
        write_io(model, cfg, gen, 24, folder / "io-24.safetensors")
    print(name, json.dumps(cfg))


def write_io(model, cfg: dict, gen: torch.Generator, size: int, path: pathlib.Path) -> None:
    b, c = 2, cfg["in_channels"]
    latents = torch.randn(b, c, size, size, generator=gen)
    timestep = torch.tensor([999.0, 250.0])
    caption = torch.randn(b, CAPTION_LEN, cfg["caption_channels"], generator=gen)
    mask = torch.ones(b, CAPTION_LEN)
    mask[1, 7:] = 0.0  # the second caption has 7 tokens and 5 of padding
    with torch.no_grad():
        out = model(
            latents,
            encoder_hidden_states=caption,
            encoder_attention_mask=mask,
            timestep=timestep,
            return_dict=False,
        )[0]
    save_file(
        {
            "latents": latents.contiguous(),
            "timestep": timestep,
            "caption": caption.contiguous(),
            "caption_mask": mask,
            "sample": out.contiguous(),
        },
        path,
    )
    print(path.name, "output", tuple(out.shape), f"|out| {out.abs().mean():.3f}")


if __name__ == "__main__":
    torch.manual_seed(0)
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        make(name, cfg, seed=1000 + i)
