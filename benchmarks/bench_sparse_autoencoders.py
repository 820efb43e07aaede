"""Benchmarks for the sparse_autoencoders chapter.

- TopK SAE training, 5 seeds: our batched trainer (``train_sae``: the 5 SAEs stacked along a member
  axis, one optimiser, one einsum per layer) against a plain PyTorch implementation of the same
  model (an ``nn.Module`` per seed: ``Linear`` encoder, ``topk``/``scatter`` mask, decoder with
  unit-norm rows, Adam, the usual zero_grad/backward/step loop), run once per seed.  Same data,
  same steps, batch and learning rate; the agreement column compares the final FVU on the data.
- Mutual Choice allocation (BatchTopK) on a batch of pre-activations: ours against a flattened
  ``torch.topk`` + ``scatter`` written inline.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmarks.harness import Benchmark
from sparsebook import sparse_autoencoders as sa
from sparsebook.seeding import seed_everything

SEEDS, STEPS, BATCH, M, K = 5, 200, 256, 128, 4


class PlainTopKSAE(nn.Module):
    def __init__(self, d: int, m: int, k: int):
        super().__init__()
        self.enc, self.dec, self.k = nn.Linear(d, m), nn.Linear(m, d), k

    def forward(self, x):
        pre = self.enc(x)
        idx = pre.topk(self.k, dim=-1).indices
        z = torch.relu(pre) * torch.zeros_like(pre).scatter_(-1, idx, 1.0)
        return self.dec(z)


def _data():
    rng = np.random.default_rng(0)
    return torch.tensor(sa.superposition(8192, 64, 16, 0.04, 0.0, rng)["x"])


def benchmarks() -> list[Benchmark]:
    x = _data()
    xs = x.expand(SEEDS, -1, -1).contiguous()

    def ours():
        out = sa.train_sae(xs, xs, m=M, k=K, steps=STEPS, lr=3e-3, batch=BATCH, seed=0)
        z, xhat = sa.experiments.encode_eval(out["params"], xs, "topk", K, BATCH)
        return sa.fvu(xs[:, : xhat.shape[1]], xhat).numpy()

    def peer():
        fvus = []
        for s in range(SEEDS):
            seed_everything(s)
            model = PlainTopKSAE(x.shape[1], M, K)
            with torch.no_grad():   # the same initialisation as ours: tied unit-norm decoder, b_dec at the data mean
                model.enc.bias.zero_()
                model.dec.weight.copy_(model.enc.weight.T / model.enc.weight.T.norm(dim=0, keepdim=True))
                model.dec.bias.copy_(x.mean(0))
            opt = torch.optim.Adam(model.parameters(), lr=3e-3)
            g = torch.Generator().manual_seed(s)
            for _ in range(STEPS):
                xb = x[torch.randint(0, len(x), (BATCH,), generator=g)]
                loss = ((model(xb) - xb) ** 2).sum() / ((xb - xb.mean(0)) ** 2).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    model.dec.weight.div_(model.dec.weight.norm(dim=0, keepdim=True))
            with torch.no_grad():
                fvus.append(float(((model(x) - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()))
        return np.array(fvus)

    def check(a, b):
        if not (np.isfinite(a).all() and np.isfinite(b).all()) or abs(a.mean() - b.mean()) > 0.1:
            raise AssertionError(f"final FVU differs: ours {a.mean():.3f}, peer {b.mean():.3f}")
        return f"final FVU (mean of {SEEDS} seeds): ours {a.mean():.3f}, peer {b.mean():.3f}"

    pre = torch.randn(16, 256, 512, generator=torch.Generator().manual_seed(0))

    def inline_batch_topk():
        flat = pre.reshape(16, -1)
        return torch.zeros_like(flat, dtype=torch.bool).scatter_(-1, flat.topk(K * 256, dim=-1).indices, True).reshape(pre.shape)

    def check_masks(a, b):
        if not torch.equal(a, b):
            raise AssertionError("masks differ")
        return f"identical masks, {int(a.sum())} kept"

    return [
        Benchmark("sparse_autoencoders", f"TopK SAE training, {SEEDS} seeds x {STEPS} steps (batched vs per-seed loop)",
                  ours, peer, "plain PyTorch nn.Module + Adam loop", repeats=3, check=check),
        Benchmark("sparse_autoencoders", "Mutual Choice mask, 16 x 256 tokens x 512 latents",
                  lambda: sa.mutual_choice_mask(pre, K), inline_batch_topk, "inline torch.topk + scatter", repeats=7,
                  check=check_masks),
    ]
