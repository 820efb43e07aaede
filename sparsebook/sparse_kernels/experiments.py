"""Experiments of the sparse-kernels chapter: the live CPU measurement and the stored H200 measurement.

- :class:`ConvConfig` / :func:`run_conv_sweep`: the pointwise (1×1) convolutions of MobileNet v1
  at 70–95% weight sparsity, sparse CSR weight × dense activation (``torch.sparse.mm``, MKL's
  sparse BLAS in x86 builds of PyTorch) against dense ``torch.mm`` (MKL's SGEMM), on one thread,
  timed side by side layer by layer in every round.
- :func:`load_h200` reads ``book/data/sparse_kernels_h200.json`` (written on an NVIDIA H200 by
  ``python -m sparsebook.sparse_kernels.measure``); :func:`gemv_rows`, :func:`layer_rows` and
  :func:`semi_rows` turn its repeats into estimates.
- :func:`build_claims` adds the chapter's reproductions and checks to a ``ClaimSet``.

Why CSR through ``torch.sparse.mm``: it is a compiled sparse-weight × dense-activation product
that every x86 PyTorch wheel ships (MKL's inspector-executor SpMM), takes the weight in the
layout the paper's kernel uses (rows = output channels, nonzeros of each row contiguous) and the
activations channel-major (``[C_in, H·W]``, the paper's CHW), and needs nothing compiled here.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sparsebook.scales import check_scale
from sparsebook.seeding import seed_everything
from sparsebook.sparse_kernels.kernels import (MOBILENET_V1_POINTWISE, conv1x1_as_matmul, crossover_sparsity,
                                               random_sparse_weight)
from sparsebook.stats import Estimate, from_samples
from sparsebook.validate import check_int

DATA = Path(__file__).resolve().parents[2] / "book" / "data" / "sparse_kernels_h200.json"
CPU_DATA = DATA.with_name("sparse_kernels_cpu.json")


# ---------------------------------------------------------------------------
# CPU: sparse 1x1 convolutions (Fast Sparse ConvNets)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvConfig:
    """The CPU sweep: MobileNet v1's 1×1 layers, weight sparsities, rounds and repeats.

    ``layers``: ``(C_in, C_out, side)``; ``rounds``: interleaved rounds (each gives one speedup per
    sparsity, the unit of the intervals); ``repeats``: calls per layer and method in a round,
    alternating (the fastest is the round's time); ``threads``: PyTorch intra-op threads (the paper times one core).
    """

    layers: tuple = MOBILENET_V1_POINTWISE
    sparsities: tuple = (0.7, 0.8, 0.9, 0.95)
    rounds: int = 5
    repeats: int = 5
    threads: int = 1

    @classmethod
    def preset(cls, scale: str) -> "ConvConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(sparsities=(0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97), rounds=11, repeats=5)


def _paired_min_times(fa, fb, repeats: int) -> tuple[float, float]:
    """The fastest of ``repeats`` calls of ``fa`` and of ``fb``, called alternately.

    The minimum, not the median: on a shared machine a call is only ever slowed down (preemption,
    another process's cache traffic), so the fastest call is the best estimate of the kernel's own
    time, and alternating the two keeps slow phases of the machine from favouring either.
    """
    ta, tb = math.inf, math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fa()
        t1 = time.perf_counter()
        fb()
        t2 = time.perf_counter()
        ta, tb = min(ta, t1 - t0), min(tb, t2 - t1)
    return ta, tb


def run_conv_sweep(config: ConvConfig, seed: int = 0) -> dict:
    """Time every 1×1 layer dense (``torch.mm``) and sparse (CSR ``torch.sparse.mm``), side by side.

    Returns ``{"sparsities", "layers", "dense": [R, S], "sparse": [R, S]`` (network totals in
    seconds per round and sparsity), ``"layer_dense"``, ``"layer_sparse"``: ``[R, S, L]``,
    ``"max_rel_err"``: the largest ``‖sparse − dense‖/‖dense‖`` over layers and sparsities}.
    """
    check_int(config.rounds, "rounds", 2)
    check_int(config.repeats, "repeats", 1)
    seed_everything(seed)
    old = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        g = torch.Generator().manual_seed(seed)
        xs = [torch.randn(ci, side, side, generator=g) for ci, _, side in config.layers]
        S, L, R = len(config.sparsities), len(config.layers), config.rounds
        ws, csrs, err = [], [], 0.0
        for s in config.sparsities:
            row_w, row_c = [], []
            for (ci, co, _), x in zip(config.layers, xs):
                w = random_sparse_weight(co, ci, s, g)
                c = w.to_sparse_csr()
                yd, ysp = conv1x1_as_matmul(w, x), conv1x1_as_matmul(c, x)
                err = max(err, float((ysp - yd).norm() / yd.norm()))
                row_w.append(w)
                row_c.append(c)
            ws.append(row_w)
            csrs.append(row_c)
        x2 = [x.reshape(x.shape[0], -1) for x in xs]
        ld = np.zeros((R, S, L))
        ls = np.zeros((R, S, L))
        for r in range(R):
            for j in range(S):
                for i in range(L):
                    w, c, x = ws[j][i], csrs[j][i], x2[i]
                    ld[r, j, i], ls[r, j, i] = _paired_min_times(lambda: torch.mm(w, x), lambda: torch.sparse.mm(c, x),
                                                                 config.repeats)
        return {"sparsities": list(config.sparsities), "layers": [list(v) for v in config.layers],
                "dense": ld.sum(2), "sparse": ls.sum(2), "layer_dense": ld, "layer_sparse": ls,
                "max_rel_err": err, "threads": config.threads}
    finally:
        torch.set_num_threads(old)


def cpu_environment() -> dict:
    """The CPU, PyTorch and MKL this process runs on (for the stored CPU measurement's label)."""
    import datetime as _dt
    import platform

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover - not Linux
        pass
    return {"cpu": model, "torch": torch.__version__, "mkl": bool(torch.backends.mkl.is_available()),
            "capability": torch.backends.cpu.get_cpu_capability(), "python": platform.python_version(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")}


def measure_cpu(config: ConvConfig, seed: int = 0, path: str | Path | None = None) -> dict:
    """Run :func:`run_conv_sweep` and return it as JSON-ready data with :func:`cpu_environment`; write it to ``path``.

    The chapter's CPU claim rests on such a stored run (``book/data/sparse_kernels_cpu.json``), as
    its GPU claims do: a live timing differs from machine to machine and from minute to minute on a
    shared one by more than its own rounds show, so a verdict on it could flip between two runs.
    """
    res = run_conv_sweep(config, seed)
    out = {"environment": {**cpu_environment(), "threads": config.threads}, "config": {
        "rounds": config.rounds, "repeats": config.repeats, "seed": seed},
        **{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.items()}}
    if path is not None:
        Path(path).write_text(json.dumps(out, separators=(",", ":")))
    return out


def cpu_label(data: dict) -> str:
    """"measured on <CPU>, <date>" with the versions, for the stored CPU measurement."""
    e = data["environment"]
    return (f"measured on {e['cpu']}, {e['date']} ({e['threads']} thread, torch {e['torch']}, "
            f"MKL {'yes' if e['mkl'] else 'no'}, ATen CPU capability {e['capability']})")


def conv_speedups(res: dict) -> list[Estimate]:
    """Network speedup (dense time / sparse time) at each sparsity: mean over rounds with its interval."""
    ratio = np.asarray(res["dense"]) / np.asarray(res["sparse"])
    return [from_samples(ratio[:, j]) for j in range(ratio.shape[1])]


def conv_crossover(res: dict) -> Estimate | None:
    """The sparsity from which sparse wins (:func:`~sparsebook.sparse_kernels.kernels.crossover_sparsity`) per round.

    ``None`` when sparse never wins in some round (the mean of a crossover that does not exist
    has no meaning).
    """
    ratio = np.asarray(res["dense"]) / np.asarray(res["sparse"])
    cs = [crossover_sparsity(res["sparsities"], r) for r in ratio]
    if any(math.isnan(c) for c in cs):
        return None
    return from_samples(cs)


# ---------------------------------------------------------------------------
# GPU: the stored H200 measurement
# ---------------------------------------------------------------------------
def load_h200(path: str | Path | None = None) -> dict:
    """The stored GPU measurement (``book/data/sparse_kernels_h200.json`` unless ``path``)."""
    p = Path(path) if path is not None else DATA
    return json.loads(p.read_text())


def _round_medians(rounds) -> np.ndarray:
    return np.array([statistics.median(r) if isinstance(r, list) else r for r in rounds], dtype=float)


def ratio_estimate(num_rounds, den_rounds) -> Estimate:
    """Speedup ``num/den`` from interleaved rounds: the ratio of each round's medians, mean over rounds."""
    a, b = _round_medians(num_rounds), _round_medians(den_rounds)
    if a.shape != b.shape:
        raise ValueError(f"rounds must pair up; got {a.size} and {b.size}")
    return from_samples(a / b)


def gemv_rows(data: dict) -> list[dict]:
    """One row per (shape, dtype, sparsity): median times and speedups of the kernel and the dispatcher.

    ``speedup``: dense / kernel; ``fraction``: speedup × active fraction (the share of the ideal
    ``1/ρ``); ``dispatch``: dense / dispatcher (the kernel above the crossover, dense below).
    """
    rows = []
    for p in data["gemv"]["points"]:
        t = p["times_ms"]
        sp = ratio_estimate(t["dense"], t["sparse"])
        rho = p["active_fraction"]
        frac = from_samples((_round_medians(t["dense"]) / _round_medians(t["sparse"])) * rho)
        rows.append({"shape": p["shape"], "K": p["K"], "N": p["N"], "dtype": p["dtype"], "sparsity": p["sparsity"],
                     "active": rho, "config": p["config"], "path": p["dispatch_path"],
                     "dense_us": 1e3 * float(np.median(_round_medians(t["dense"]))),
                     "sparse_us": 1e3 * float(np.median(_round_medians(t["sparse"]))),
                     "speedup": sp, "fraction": frac, "dispatch": ratio_estimate(t["dense"], t["dispatch"])})
    return rows


def worst(estimates) -> Estimate:
    """The estimate with the lowest value (a target that must hold for every shape and dtype)."""
    return min(estimates, key=lambda e: e.value)


def layer_rows(data: dict) -> list[dict]:
    """Decoder-layer stack (CUDA graph replays): speedups of CATS and CHESS-style layers over dense."""
    out = []
    for p in data["layer"]["points"]:
        t = p["times_ms"]
        row = {"sparsity": p["sparsity"], "dense_us_per_layer": 1e3 * statistics.median(t["dense"]) / data["layer"]["layers"]}
        for k in ("cats", "chess"):
            if k in t and t[k]:
                row[k] = ratio_estimate(t["dense"], t[k])
        out.append(row)
    return out


def tokens_per_second(data: dict, sparsity: float, variant: str, n_layers: int = 32) -> Estimate:
    """Decode tokens per second of ``n_layers`` such layers (weights only), from each round's stack time.

    The stored stack holds ``data["layer"]["layers"]`` layers; one token costs
    ``n_layers / layers`` stack times.  LLaMA-7B has 32 layers.
    """
    check_int(n_layers, "n_layers", 1)
    p = next((q for q in data["layer"]["points"] if q["sparsity"] == sparsity), None)
    if p is None or variant not in p["times_ms"]:
        raise ValueError(f"no layer measurement for sparsity {sparsity!r} and variant {variant!r}")
    stack_ms = np.asarray(p["times_ms"][variant], dtype=float)
    return from_samples(1e3 / (stack_ms * n_layers / data["layer"]["layers"]))


def semi_rows(data: dict) -> list[dict]:
    """2:4 against dense per (shape, dtype, backend, M): speedups eager and in CUDA graphs."""
    out = []
    for p in data["semi"]["points"]:
        t = p["times_ms"]
        row = {k: p[k] for k in ("case", "K", "N", "M", "dtype", "backend")}
        for mode in ("eager", "graph"):
            d, s = t.get(f"{mode}_dense"), t.get(f"{mode}_sparse")
            if d and s:
                row[mode] = ratio_estimate(d, s)
                row[f"{mode}_dense_us"] = 1e3 * statistics.median(d)
                row[f"{mode}_sparse_us"] = 1e3 * statistics.median(s)
        out.append(row)
    return out


def h200_label(data: dict) -> str:
    """"measured on NVIDIA H200, <date>" with the versions, for figure captions and tables."""
    e = data["environment"]
    return (f"measured on {e['gpu']}, {e['date']} (driver {e['nvidia_smi'].split(',')[0]}, torch {e['torch']}, "
            f"CUDA {e['cuda']}, Triton {e['triton']}, cuSPARSELt {e['cusparselt']})")
