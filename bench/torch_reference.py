#!/usr/bin/env python3
"""PyTorch twin of freezeframe's STDiT `base` training step, for side-by-side timing.

Same architecture and sizes as `freezeframe bench train-step --preset base`: B 8, T 8,
32x32 RGB, patch 4 (64 tokens per frame), D 128, 4 heads, depth 4, MLP ratio 4, caption
tokens 12 x 64, exact GELU, rectified-flow MSE loss, global grad-norm clip 1.0, AdamW.
Run by hand: `pip install torch && python3 bench/torch_reference.py [--steps 20]`.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

B, T, C, H, W, P, D, HEADS, DEPTH, TXT_DIM, TXT_LEN = 8, 8, 3, 32, 32, 4, 128, 4, 4, 64, 12


def modulate(x, shift, scale):
    return x * (1 + scale) + shift


class Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(D, 3 * D)
        self.proj = nn.Linear(D, D)

    def forward(self, x):
        n, l, _ = x.shape
        q, k, v = self.qkv(x).view(n, l, 3, HEADS, D // HEADS).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v)
        return self.proj(o.transpose(1, 2).reshape(n, l, D))


class CrossAttn(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_linear = nn.Linear(D, D)
        self.kv_linear = nn.Linear(D, 2 * D)
        self.proj = nn.Linear(D, D)

    def forward(self, x, y, pad):
        b, n, _ = x.shape
        l = y.shape[1]
        q = self.q_linear(x).view(b, n, HEADS, D // HEADS).transpose(1, 2)
        k, v = self.kv_linear(y).view(b, l, 2, HEADS, D // HEADS).permute(2, 0, 3, 1, 4)
        mask = ~pad[:, None, None, :]  # True = attend
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(o.transpose(1, 2).reshape(b, n, D))


class Mlp(nn.Module):
    def __init__(self, i, h, o):
        super().__init__()
        self.fc1 = nn.Linear(i, h)
        self.fc2 = nn.Linear(h, o)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn, self.attn_temp, self.cross_attn = Attn(), Attn(), CrossAttn()
        self.mlp = Mlp(D, 4 * D, D)
        self.scale_shift_table = nn.Parameter(torch.randn(6, D) / D**0.5)

    def forward(self, x, y, pad, t0, tpe):
        b, n, _ = x.shape
        s = n // T
        sh1, sc1, g1, sh2, sc2, g2 = (self.scale_shift_table[None] + t0.view(b, 6, D)).chunk(6, 1)
        xm = modulate(F.layer_norm(x, (D,), eps=1e-6), sh1, sc1)
        x = x + g1 * self.attn(xm.reshape(b * T, s, D)).reshape(b, n, D)
        xt = x.view(b, T, s, D).transpose(1, 2).reshape(b * s, T, D)
        if tpe is not None:
            xt = xt + tpe
        xt = self.attn_temp(xt).view(b, s, T, D).transpose(1, 2).reshape(b, n, D)
        x = x + g1 * xt
        x = x + self.cross_attn(x, y, pad)
        xm = modulate(F.layer_norm(x, (D,), eps=1e-6), sh2, sc2)
        return x + g2 * self.mlp(xm)


class STDiT(nn.Module):
    def __init__(self):
        super().__init__()
        self.x_proj = nn.Linear(C * P * P, D)
        self.t_mlp = Mlp(256, D, D)
        self.t_block = nn.Linear(D, 6 * D)
        self.y_proj = Mlp(TXT_DIM, D, D)
        self.y_embedding = nn.Parameter(torch.randn(TXT_LEN, TXT_DIM) / TXT_DIM**0.5)
        self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))
        self.final_linear = nn.Linear(D, P * P * C)
        self.final_table = nn.Parameter(torch.randn(2, D) / D**0.5)
        s = (H // P) * (W // P)
        self.register_buffer("pos", torch.randn(1, 1, s, D) * 0.02)
        self.register_buffer("tpe", torch.randn(1, T, D) * 0.02)

    def forward(self, x, t, y, pad, null):
        b = x.shape[0]
        hp, wp = H // P, W // P
        x = x.reshape(b * T, C, hp, P, wp, P).permute(0, 2, 4, 1, 3, 5).reshape(b, T * hp * wp, C * P * P)
        x = (self.x_proj(x).view(b, T, hp * wp, D) + self.pos).view(b, -1, D)
        half = 128
        freqs = torch.exp(-math.log(10000) * torch.arange(half) / half)
        args = (t * 1000)[:, None] * freqs[None]
        temb = self.t_mlp.fc2(F.silu(self.t_mlp.fc1(torch.cat([args.cos(), args.sin()], 1))))
        t0 = self.t_block(F.silu(temb))
        y = torch.where(null[:, None, None], self.y_embedding[None].expand(b, -1, -1), y)
        pad = pad & ~null[:, None]
        y = self.y_proj(y)
        for i, blk in enumerate(self.blocks):
            x = blk(x, y, pad, t0, self.tpe if i == 0 else None)
        sh, sc = (self.final_table[None] + temb[:, None]).chunk(2, 1)
        x = self.final_linear(modulate(F.layer_norm(x, (D,), eps=1e-6), sh, sc))
        x = x.view(b * T, hp, wp, P, P, C).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, T, C, H, W)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument(
        "--freeze",
        choices=["none", "not_temporal"],
        default="none",
        help="not_temporal: Open-Sora's rule, only parameters named attn_temp train",
    )
    args = ap.parse_args()
    torch.manual_seed(0)
    model = STDiT()
    if args.freeze == "not_temporal":
        for name, p in model.named_parameters():
            p.requires_grad = "attn_temp" in name
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0)
    nparams = sum(p.numel() for p in model.parameters())
    times = []
    for step in range(args.warmup + args.steps):
        x0 = torch.rand(B, T, C, H, W) * 2 - 1
        noise = torch.randn_like(x0)
        t = torch.sigmoid(torch.randn(B))
        y = torch.randn(B, TXT_LEN, TXT_DIM) / TXT_DIM**0.5
        pad = torch.zeros(B, TXT_LEN, dtype=torch.bool)
        pad[:, 8:] = True
        null = torch.rand(B) < 0.1
        start = time.perf_counter()
        xt = (1 - t.view(B, 1, 1, 1, 1)) * x0 + t.view(B, 1, 1, 1, 1) * noise
        loss = F.mse_loss(model(xt, t, y, pad, null), noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        if step >= args.warmup:
            times.append((time.perf_counter() - start) * 1e3)
    print(
        f"torch {torch.__version__} threads={torch.get_num_threads()} params={nparams} "
        f"trainable={sum(p.numel() for p in trainable)} freeze={args.freeze} "
        f"median {statistics.median(times):.1f} ms/step (min {min(times):.1f}, max {max(times):.1f})"
    )


if __name__ == "__main__":
    main()
