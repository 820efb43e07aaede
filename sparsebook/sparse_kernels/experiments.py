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
from sparsebook.sparse_kernels.kernels import (MOBILENET_V1_POINTWISE, cats_threshold, chess_thresholds,
                                               conv1x1_as_matmul, crossover_sparsity, random_sparse_weight,
                                               threshold_activation)
from sparsebook.stats import Estimate, from_samples, from_seeds, paired_difference
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


# ---------------------------------------------------------------------------
# CPU: the accuracy cost of CATS and CHESS thresholds on a trained gated LM
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AccuracyConfig:
    """Trained gated (SwiGLU) language models on a seeded order-2 Markov source, then thresholds from calibration.

    ``vocab`` tokens, a ``context`` of previous tokens, transitions ``P(x_t | x_{t-2}, x_{t-1})`` drawn
    once from ``Dirichlet(alpha)`` (``data_seed``); ``seeds`` models trained as one batched
    computation (:func:`sparsebook.train.fit_seeds`); thresholds calibrated on ``n_calib`` windows
    and evaluated on ``n_test`` held-out windows at each of ``sparsities``.
    """

    vocab: int = 16
    context: int = 2
    alpha: float = 0.3
    d_model: int = 32
    d_ff: int = 128
    layers: int = 2
    n_train: int = 16384
    n_calib: int = 2048
    n_test: int = 4096
    steps: int = 400
    batch_size: int = 128
    lr: float = 1e-2
    n_seeds: int = 5
    sparsities: tuple = (0.3, 0.5, 0.7, 0.9)
    data_seed: int = 0
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str) -> "AccuracyConfig":
        if check_scale(scale) == "ci":
            return cls()
        return cls(context=3, d_model=128, d_ff=512, layers=3, n_train=65536, n_test=16384, steps=4000, lr=3e-3, n_seeds=10, device="cuda",
                   sparsities=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9))


def markov_windows(vocab: int, context: int, n: int, alpha: float, seed: int, table_seed: int) -> tuple:
    """``n`` windows ``(x_{1..C}, x_{C+1})`` of an order-2 Markov chain over ``vocab`` tokens.

    The transition table ``P[a, b] ~ Dirichlet(alpha · 1)`` comes from ``table_seed`` (one language);
    the windows from ``seed`` (first two tokens uniform).  Returns ``(x [n, C] int64, y [n] int64)``.
    """
    v, c, n = check_int(vocab, "vocab", 2), check_int(context, "context", 2), check_int(n, "n", 1)
    table = np.random.default_rng(table_seed).dirichlet(np.full(v, float(alpha)), size=(v, v))
    cdf = np.cumsum(table, axis=-1)
    rng = np.random.default_rng(seed)
    seq = np.empty((n, c + 1), dtype=np.int64)
    seq[:, :2] = rng.integers(0, v, size=(n, 2))
    for t in range(2, c + 1):
        u = rng.random(n)[:, None]
        seq[:, t] = np.minimum((u > cdf[seq[:, t - 2], seq[:, t - 1]]).sum(-1), v - 1)
    return torch.from_numpy(seq[:, :c]), torch.from_numpy(seq[:, c])


class GatedLM(torch.nn.Module):
    """A small next-token model with LLaMA-style gated FFN blocks (the FFN CATS and CHESS sparsify).

    ``h = W_in · concat(emb(x_1..x_C))``; each block ``h ← h + W_down (CATS_t(SiLU(W_gate n)) ⊙ W_up n)``,
    ``n = LayerNorm(h)``; logits ``= head(LayerNorm(h))``.  ``thresholds[l]``: ``None`` (dense), a
    scalar (CATS) or a ``[d_ff]`` tensor (CHESS), applied by :func:`~.kernels.threshold_activation`
    to the gate activation.  ``forward(x, record=list)`` appends each block's ``(a_gate, a_up)``.
    """

    def __init__(self, vocab: int, context: int, d_model: int, d_ff: int, layers: int):
        super().__init__()
        nn = torch.nn
        self.emb = nn.Embedding(vocab, d_model)
        self.inp = nn.Linear(context * d_model, d_model)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(layers))
        self.gate = nn.ModuleList(nn.Linear(d_model, d_ff, bias=False) for _ in range(layers))
        self.up = nn.ModuleList(nn.Linear(d_model, d_ff, bias=False) for _ in range(layers))
        self.down = nn.ModuleList(nn.Linear(d_ff, d_model, bias=False) for _ in range(layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)
        self.thresholds = [None] * layers

    def forward(self, x, record: list | None = None):
        h = self.inp(self.emb(x).flatten(-2))
        for l, (norm, wg, wu, wd) in enumerate(zip(self.norms, self.gate, self.up, self.down)):
            n = norm(h)
            a, u = torch.nn.functional.silu(wg(n)), wu(n)
            if record is not None:
                record.append((a, u))
            if self.thresholds[l] is not None:
                a = threshold_activation(a, self.thresholds[l])
            h = h + wd(a * u)
        return self.head(self.ln(h))


def _evaluate(model, params, x, y) -> tuple[float, float, float]:
    """Test loss, accuracy and the fraction of gate activations cut (over blocks) of one member."""
    from torch.func import functional_call

    rec = []
    with torch.no_grad():
        logits = functional_call(model, params, (x,), {"record": rec})
        loss = float(torch.nn.functional.cross_entropy(logits, y))
        acc = float((logits.argmax(-1) == y).double().mean())
        cut = [float((threshold_activation(a, t) == 0).double().mean()) if t is not None else float((a == 0).double().mean())
               for (a, _), t in zip(rec, model.thresholds)]
    return loss, acc, float(np.mean(cut))


def run_accuracy(config: AccuracyConfig, seed: int = 0) -> dict:
    """Train ``n_seeds`` gated LMs (seeds ``seed .. seed+n_seeds-1``), then threshold them without fine-tuning.

    Per member and target sparsity ``s``: CATS (:func:`~.kernels.cats_threshold`, one per block) and
    CHESS (:func:`~.kernels.chess_thresholds`, one per channel), both from the calibration windows.
    Returns ``{"seeds", "sparsities", "dense_loss", "dense_acc": [K], "cats_loss", "cats_acc",
    "cats_cut", "chess_loss", "chess_acc", "chess_cut": [K, S], "entropy_floor"}`` (test loss of the
    true conditional distribution: no model can go below it).
    """
    from sparsebook.train import fit_seeds

    cfg = config
    check_int(cfg.n_seeds, "n_seeds", 2)
    seed_everything(seed)
    seeds = [seed + k for k in range(cfg.n_seeds)]
    xtr, ytr = markov_windows(cfg.vocab, cfg.context, cfg.n_train, cfg.alpha, 1000 + cfg.data_seed, cfg.data_seed)
    xca, _ = markov_windows(cfg.vocab, cfg.context, cfg.n_calib, cfg.alpha, 2000 + cfg.data_seed, cfg.data_seed)
    xte, yte = markov_windows(cfg.vocab, cfg.context, cfg.n_test, cfg.alpha, 3000 + cfg.data_seed, cfg.data_seed)
    dev = torch.device("cuda") if cfg.device == "cuda" and torch.cuda.is_available() else torch.device("cpu")
    xtr, ytr, xca, xte_d, yte_d = (t.to(dev) for t in (xtr, ytr, xca, xte, yte))
    make = lambda: GatedLM(cfg.vocab, cfg.context, cfg.d_model, cfg.d_ff, cfg.layers).to(dev)
    fit = fit_seeds(make, xtr, ytr, seeds, steps=cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size)
    model, P = fit["model"], fit["params"]
    table = np.random.default_rng(cfg.data_seed).dirichlet(np.full(cfg.vocab, float(cfg.alpha)), size=(cfg.vocab,) * 2)
    p_true = torch.from_numpy(table[xte[:, -2].numpy(), xte[:, -1].numpy(), yte.numpy()])
    K, S = len(seeds), len(cfg.sparsities)
    out = {k: np.zeros((K, S)) for k in ("cats_loss", "cats_acc", "cats_cut", "chess_loss", "chess_acc", "chess_cut")}
    out.update(dense_loss=np.zeros(K), dense_acc=np.zeros(K))
    for k in range(K):
        pk = {name: v[k] for name, v in P.items()}
        model.thresholds = [None] * cfg.layers
        out["dense_loss"][k], out["dense_acc"][k], _ = _evaluate(model, pk, xte_d, yte_d)
        rec = []
        with torch.no_grad():
            torch.func.functional_call(model, pk, (xca,), {"record": rec})
        for j, s in enumerate(cfg.sparsities):
            for rule in ("cats", "chess"):
                model.thresholds = [cats_threshold(a, s) if rule == "cats" else chess_thresholds(a, u, s).float()
                                    for a, u in rec]
                out[f"{rule}_loss"][k, j], out[f"{rule}_acc"][k, j], out[f"{rule}_cut"][k, j] = _evaluate(model, pk, xte_d, yte_d)
    model.thresholds = [None] * cfg.layers
    return {"seeds": seeds, "sparsities": list(cfg.sparsities), **out,
            "entropy_floor": float(-torch.log(p_true).mean()), "train_loss": np.asarray(fit["loss"]), "device": str(dev)}


def accuracy_rows(res: dict) -> list[dict]:
    """Per target sparsity: paired per-seed costs of CATS and CHESS against the dense model.

    ``cats_dloss``/``chess_dloss``: test-loss increase (nats/token); ``cats_rel_drop``/``chess_rel_drop``:
    relative accuracy drop ``1 − acc/acc_dense``; ``chess_minus_cats``: CHESS's loss increase minus
    CATS's (paired); ``cats_cut``/``chess_cut``: fraction of gate activations cut on the test windows.
    """
    rows = []
    dl, da = np.asarray(res["dense_loss"]), np.asarray(res["dense_acc"])
    for j, s in enumerate(res["sparsities"]):
        cl, hl = np.asarray(res["cats_loss"])[:, j], np.asarray(res["chess_loss"])[:, j]
        rows.append({"sparsity": s, "cats_dloss": paired_difference(cl, dl), "chess_dloss": paired_difference(hl, dl),
                     "chess_minus_cats": paired_difference(hl, cl),
                     "cats_rel_drop": from_seeds(1 - np.asarray(res["cats_acc"])[:, j] / da),
                     "chess_rel_drop": from_seeds(1 - np.asarray(res["chess_acc"])[:, j] / da),
                     "cats_cut": from_seeds(np.asarray(res["cats_cut"])[:, j]),
                     "chess_cut": from_seeds(np.asarray(res["chess_cut"])[:, j])})
    return rows


DISPATCH_DATA = DATA.with_name("sparse_kernels_dispatch_h200.json")


def dispatch_rows(data: dict) -> list[dict]:
    """The dispatcher's layer stack: speedup over dense of CATS, CHESS-style and both dispatched, per sparsity.

    ``data``: the JSON of ``measure --sections dispatch`` (its ``"dispatch"`` section).  Also the
    per-round ratio CHESS-style / dispatched CHESS (``dispatch_gain``: > 1 where the dispatcher helps).
    """
    sec = data["dispatch"]
    out = []
    for p in sec["points"]:
        t = p["times_ms"]
        row = {"sparsity": p["sparsity"], "plan": p["plan"]}
        for k in ("cats", "chess", "cats_dispatch", "chess_dispatch"):
            if t.get(k):
                row[k] = ratio_estimate(t["dense"], t[k])
        if t.get("chess") and t.get("chess_dispatch"):
            row["dispatch_gain"] = ratio_estimate(t["chess"], t["chess_dispatch"])
        out.append(row)
    return out


def dispatch_table(data: dict) -> dict:
    """The measured crossover table ``{shape: {"crossover", "sparsities", "speedup"}}`` (dense / best kernel, tuning medians)."""
    sec = data["dispatch"]
    table = {}
    for key, c in sec["crossover"].items():
        pts = sorted((p for p in sec["tuning"] if p["shape"] == key), key=lambda p: p["sparsity"])
        table[key] = {"crossover": c, "sparsities": [p["sparsity"] for p in pts],
                      "speedup": [p["dense_ms"] / p["sparse_ms"] for p in pts]}
    return table
