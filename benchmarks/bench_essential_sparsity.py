"""Benchmarks for the essential_sparsity chapter.

- Global magnitude masking of a 2.2M-weight MLP: ``magnitude_mask`` + ``apply_masks``
  (explicit boolean masks) against ``torch.nn.utils.prune.global_unstructured``
  (L1, which re-parametrises every layer as ``weight_orig * weight_mask``).  Both
  start from a fresh copy of the model each call.  The agreement column also gives
  the extra memory each leaves attached to the model (masks; ``weight_orig`` and
  float masks for the peer).
- N:M (2:4) mask construction: our stable-sort ``nm_mask`` against a plain
  ``topk``-per-group implementation, and against our JAX version.
"""
from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import torch
from torch.nn.utils import prune

from benchmarks.harness import Benchmark
from sparsebook import essential_sparsity as es
from sparsebook.models import mlp
from sparsebook.seeding import seed_everything

SPARSITY = 0.9


def _model():
    seed_everything(0)
    return mlp([64, 1024, 1024, 1024, 10])


def _bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


_PEAK = r"""
import sys
import torch
from torch.nn.utils import prune
from sparsebook import essential_sparsity as es
from sparsebook.models import mlp
from sparsebook.seeding import seed_everything
seed_everything(0)
model = mlp([64, 4096, 4096, 4096, 10])  # 34M weights, so that pruning dominates the peak
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
before = rss("VmRSS:")
names = list(es.prunable(model, include_head=True))
if sys.argv[1] == "ours":
    ws = es.prunable(model, include_head=True)
    es.apply_masks(model, es.magnitude_mask({k: v.detach() for k, v in ws.items()}, SPARSITY))
else:
    prune.global_unstructured([(model[int(k.split(".")[0])], "weight") for k in names],
                              pruning_method=prune.L1Unstructured, amount=SPARSITY)
print(rss("VmHWM:") - before)
"""


def peak_rss_increase_mib(which: str) -> float:
    """Rise of the peak resident memory (MiB) while pruning a 34M-weight MLP, in a fresh process (``ours`` or ``peer``)."""
    code = _PEAK.replace("SPARSITY", repr(SPARSITY))
    out = subprocess.run([sys.executable, "-c", code, which], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # /proc reports KiB


def benchmarks() -> list[Benchmark]:
    base = _model()
    names = list(es.prunable(base, include_head=True))
    base_bytes = _bytes(base)
    extra = {}

    def ours():
        model = copy.deepcopy(base)
        ws = es.prunable(model, include_head=True)
        masks = es.magnitude_mask({k: v.detach() for k, v in ws.items()}, SPARSITY)
        es.apply_masks(model, masks)
        extra["ours"] = sum(m.numel() * m.element_size() for m in masks.values())
        return model

    def peer():
        model = copy.deepcopy(base)
        mods = [(model[int(k.split(".")[0])], "weight") for k in names]
        prune.global_unstructured(mods, pruning_method=prune.L1Unstructured, amount=SPARSITY)
        extra["peer"] = _bytes(model) - base_bytes
        return model

    def check_global(a, b):
        wa = [a[int(k.split(".")[0])].weight.detach() for k in names]
        wb = [b[int(k.split(".")[0])].weight.detach() for k in names]
        same = all(torch.equal(x != 0, y != 0) for x, y in zip(wa, wb))
        if not same:
            raise AssertionError("masks differ")
        return (f"same masks; memory left on the model: ours {extra['ours'] / 2**20:.1f} MiB (bool masks), "
                f"peer {extra['peer'] / 2**20:.1f} MiB (weight_orig + float masks); peak RSS rise at 34M weights: "
                f"ours {peak_rss_increase_mib('ours'):.0f} MiB, peer {peak_rss_increase_mib('peer'):.0f} MiB")

    w = torch.randn(4096, 1024, generator=torch.Generator().manual_seed(0))
    w_np = w.numpy()

    def topk_nm(n=2, m=4):
        g = w.abs().reshape(-1, m)
        keep = torch.zeros_like(g, dtype=torch.bool)
        keep.scatter_(1, g.topk(n, dim=1).indices, True)
        return keep.reshape(w.shape)

    def check_equal(a, b):
        a, b = np.asarray(a), np.asarray(b)
        if not np.array_equal(a, b):
            raise AssertionError("masks differ")
        return f"identical 2:4 masks, kept {a.mean():.3g}"

    return [
        Benchmark("essential_sparsity", f"global magnitude mask, 2.2M weights, s={SPARSITY}", ours, peer,
                  "torch.nn.utils.prune.global_unstructured", repeats=5, check=check_global),
        Benchmark("essential_sparsity", "2:4 mask, 4096x1024", lambda: es.nm_mask(w, 2, 4), topk_nm,
                  "torch.topk per group", repeats=7, check=check_equal),
        Benchmark("essential_sparsity", "2:4 mask, 4096x1024 (torch vs JAX)", lambda: es.nm_mask(w, 2, 4),
                  lambda: es.nm_mask_jax(w_np, 2, 4), "sparsebook nm_mask_jax", repeats=7, check=check_equal),
    ]
