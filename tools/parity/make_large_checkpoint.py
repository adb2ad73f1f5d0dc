"""A PixArt-α-sized diffusers checkpoint (28 layers, width 1152, 4096 caption channels: about
611 M parameters, 2.4 GB in f32) for measuring the import's memory (BENCHMARKS.md). The
values are zeros: the import reads and writes every byte regardless. The layout (names,
shapes, header) is diffusers' own: the model is built on PyTorch's meta device and the file
written tensor by tensor in safetensors' layout, so making it needs little memory.

    venv/bin/python tools/parity/make_large_checkpoint.py /tmp/pixart-xl
"""

import json
import pathlib
import struct
import sys

import torch
from diffusers import PixArtTransformer2DModel

CONFIG = dict(
    num_attention_heads=16,
    attention_head_dim=72,
    in_channels=4,
    out_channels=8,
    num_layers=28,
    cross_attention_dim=1152,
    sample_size=64,  # PixArt-α 512: no resolution / aspect-ratio embedders
    patch_size=2,
    caption_channels=4096,
)

out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
with torch.device("meta"):
    model = PixArtTransformer2DModel(**CONFIG)
(out / "config.json").write_text(json.dumps(dict(model.config), default=list))
shapes = sorted((k, list(v.shape)) for k, v in model.state_dict().items())
header, offset = {"__metadata__": {"format": "pt"}}, 0
for name, shape in shapes:
    n = 4 * int(torch.Size(shape).numel())
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}
    offset += n
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
chunk = bytes(1 << 24)
with open(out / "diffusion_pytorch_model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    left = offset
    while left > 0:
        f.write(chunk[: min(left, len(chunk))])
        left -= min(left, len(chunk))
params = offset // 4
print(f"{params:,} parameters, {offset / 1e9:.2f} GB of f32 in {out}")
