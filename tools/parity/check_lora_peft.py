"""Checks `freezeframe export --format lora-diffusers-pixart` with PEFT and diffusers themselves
(issue 26). Run by hand; CI's Rust test checks the same arithmetic without Python.

    python -m venv venv && venv/bin/pip install torch diffusers peft safetensors
    venv/bin/python tools/parity/check_lora_peft.py BASE_DIR LORA_DIR MERGED_DIR

BASE_DIR: the diffusers `PixArtTransformer2DModel` folder the LoRA run started from (the parity
fixture `crates/freezeframe-interop/tests/fixtures/pixart/p2-rgb` in the CLI test);
LORA_DIR: `export --format lora-diffusers-pixart` of the run;
MERGED_DIR: `export --format diffusers-pixart` of the same run (adapters merged).

It loads the adapters onto the base with `PeftModel.from_pretrained` and requires: every target
module found and every adapter tensor loaded unchanged; the adapted model's output on random
inputs equal to the merged export's (and, so that the check means something, the base's
different from it). Prints the figures; exits non-zero on a failure.
"""

import json
import pathlib
import sys
import warnings

import torch
from diffusers import PixArtTransformer2DModel
from peft import PeftModel
from safetensors.torch import load_file


def forward(model, inputs):
    with torch.no_grad():
        return model(**inputs, return_dict=False)[0]


def main(base_dir, lora_dir, merged_dir):
    lora_dir = pathlib.Path(lora_dir)
    config = json.loads((lora_dir / "adapter_config.json").read_text())
    saved = load_file(str(lora_dir / "adapter_model.safetensors"))

    base = PixArtTransformer2DModel.from_pretrained(base_dir).eval()
    merged = PixArtTransformer2DModel.from_pretrained(merged_dir).eval()

    torch.manual_seed(0)
    c = base.config
    inputs = dict(
        hidden_states=torch.randn(2, c.in_channels, c.sample_size, c.sample_size),
        timestep=torch.tensor([100.0, 700.0]),
        encoder_hidden_states=torch.randn(2, 12, c.caption_channels),
        added_cond_kwargs={"resolution": None, "aspect_ratio": None},
    )
    out_base = forward(base, inputs)
    out_merged = forward(merged, inputs)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        adapted = PeftModel.from_pretrained(base, str(lora_dir)).eval()
    for w in caught:
        print("PEFT warning:", w.message)
    failures = [w for w in caught if "missing" in str(w.message).lower() or "unexpected" in str(w.message).lower()]

    # Every adapter tensor in the file is in the model, unchanged (PEFT inserts the adapter
    # name, "default", before ".weight").
    state = adapted.state_dict()
    loaded = 0
    for key, value in saved.items():
        name = key.replace(".lora_A.weight", ".lora_A.default.weight").replace(
            ".lora_B.weight", ".lora_B.default.weight"
        )
        if name not in state:
            failures.append(f"{key}: not in the adapted model")
            continue
        if not torch.equal(state[name], value):
            failures.append(f"{key}: loaded values differ")
        loaded += 1
    wrapped = [n for n, m in adapted.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A]
    out_adapted = forward(adapted, inputs)

    d_adapted = (out_adapted - out_merged).abs().max().item()
    d_base = (out_base - out_merged).abs().max().item()
    print(f"target modules {len(config['target_modules'])}, wrapped by PEFT {len(wrapped)}")
    print(f"adapter tensors in the file {len(saved)}, loaded unchanged {loaded}")
    print(f"max |adapted - merged| = {d_adapted:.3e}; max |base - merged| = {d_base:.3e}")
    if len(wrapped) != len(config["target_modules"]):
        failures.append("PEFT wrapped another number of modules than the config targets")
    if not d_adapted < 1e-2 * d_base:
        failures.append("the adapted model does not compute the merged export")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
