"""lazy_neurons benchmarks: the activation recorder's overhead, and the sparse MLP down projection.

- Recorder: a forward pass of the chapter's Transformer with :class:`ActivationRecorder` hooks
  against the same pass without (goal: under 10% overhead).
- Sparse forward: :func:`sparse_down` (gathers the rows of ``W_downᵀ`` of the active neurons)
  against dense ``torch.nn.functional.linear``, one token through a 1024 → 4096 → 1024 MLP's
  down projection, at 50/70/90/95% activation sparsity.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from benchmarks.harness import Benchmark
from sparsebook import lazy_neurons as ln
from sparsebook.seeding import seed_everything


def _max_err(a, b) -> str:
    err = float((a - b).abs().max())
    if err > 1e-4:
        raise AssertionError(f"results differ: max abs err {err:.3g}")
    return f"max abs err {err:.1g}"


def _recorder_bench() -> Benchmark:
    seed_everything(0)
    cfg = ln.EmergenceConfig()
    model = ln.TinyTransformer(cfg.vocab, cfg.seq_len, cfg.d_model, cfg.ff, cfg.layers).eval()
    x, _ = ln.MarkovSource(cfg.vocab).sample(256, cfg.seq_len, np.random.default_rng(0))
    rec = ln.ActivationRecorder(model)

    def ours():
        with rec, torch.no_grad():
            return model(x)

    def peer():
        with torch.no_grad():
            return model(x)

    return Benchmark("lazy_neurons", "forward + activation recorder (Transformer, 4096 tokens)", ours, peer,
                     "forward without hooks", repeats=101, check=_max_err)


def _sparse_bench(sparsity: float, fallback: bool, d: int = 1024, h: int = 4096) -> Benchmark:
    rng = seed_everything(0)
    w = torch.as_tensor(rng.standard_normal((d, h)) / np.sqrt(h), dtype=torch.float32)
    wt, b = w.T.contiguous(), torch.zeros(d)
    a = ln.sparse_activation_batch(1, h, sparsity, rng)
    kw = {} if fallback else {"dense_above": 1.0}
    what = "default dense fallback" if fallback else "always gather"
    return Benchmark("lazy_neurons", f"sparse_down ({what}), 1 token, {d}×{h}, {int(round(100 * sparsity))}% zeros",
                     lambda: ln.sparse_down(a, wt, b, **kw), lambda: F.linear(a, w, b),
                     "torch.nn.functional.linear (dense)", repeats=51, check=_max_err)


def benchmarks() -> list[Benchmark]:
    return ([_recorder_bench()] + [_sparse_bench(s, False) for s in (0.5, 0.7, 0.9, 0.95)]
            + [_sparse_bench(s, True) for s in (0.5, 0.7)])
