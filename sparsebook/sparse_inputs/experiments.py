"""Sparse inputs and structured operators, experiments: data generators, models, frozen configs with
``preset(scale)`` and the runners.

DIN: :func:`ctr_data` draws a click-through task with planted interests; :class:`CTRNet` is the
Embedding&MLP baseline (sum or mean pooling) or DIN (local activation unit), for K seeds at once
(every weight has a leading seed axis; the embedding table is one ``nn.Embedding(sparse=True)``
of ``K·V`` rows, seed ``k`` owning rows ``kV … (k+1)V − 1``); :func:`run_ctr` trains it.

MgNO: :func:`darcy_data` solves 1-D / 2-D Darcy problems with SciPy; :class:`MgNO`, :class:`FNO`
and :class:`PlainCNN` are the three operators; :func:`run_operator` trains one of them on
several seeds at once (:func:`train_one_cycle`: the batched multi-seed training of
:func:`sparsebook.train.fit_seeds` with the MgNO authors' one-cycle learning-rate schedule).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from sparsebook.scales import check_scale
from sparsebook.seeding import seed_everything
from sparsebook.train import batch_order, fit_seeds, run_steps
from sparsebook.validate import check_int, check_real
from sparsebook.sparse_inputs.kernels import (
    BCS, activation_unit_input, auc, darcy_1d, darcy_2d, dice, full_l2, mba_l2, mean_pool, prelu, relative_l2,
    sparse_grad_bytes, spectral_conv, sum_pool, vcycle, weighted_pool,
)

N_SEEDS = {"ci": 5, "full": 10}


def device_for(scale: str) -> torch.device:
    """CUDA at ``full`` when present, else CPU (``ci`` always runs on the CPU)."""
    return torch.device("cuda") if check_scale(scale) == "full" and torch.cuda.is_available() else torch.device("cpu")


# ---------------------------------------------------------------------------
# DIN: data
# ---------------------------------------------------------------------------
def ctr_data(n: int, n_items: int, n_interests: int, interests_per_user: int, hist_len: int, *,
             p_hi: float = 0.8, p_lo: float = 0.2, zipf: float = 1.0, seed: int = 0) -> dict:
    """A click-through task with planted interests (the answer is known).

    Items ``0 … V−1`` are split at random into ``C`` interests of ``V/C`` items each; within an
    interest, item popularity follows Zipf's law with exponent ``zipf`` (a long tail of rare
    ids, as in the paper's goods ids).  Each sample is a fresh user with ``m`` interests drawn
    without replacement; their ``L`` behaviours are items of those interests (interest uniform
    among the user's, item by popularity); the candidate comes with probability 1/2 from one of
    the user's interests (a *match*), else from another interest; the click is
    Bernoulli(``p_hi``) on a match, Bernoulli(``p_lo``) otherwise.

    Returns numpy arrays ``hist`` ``[n, L]``, ``hist_interest`` ``[n, L]``, ``cand`` ``[n]``,
    ``cand_interest`` ``[n]``, ``match`` ``[n]`` (bool), ``click`` ``[n]`` (0/1) and
    ``interest_of`` ``[V]``.
    """
    n = check_int(n, "n", 2)
    C = check_int(n_interests, "n_interests", 2)
    V = check_int(n_items, "n_items", C)
    if V % C:
        raise ValueError(f"n_items must be a multiple of n_interests ({C}); got {V}")
    m = check_int(interests_per_user, "interests_per_user", 1, C - 1)
    L = check_int(hist_len, "hist_len", 1)
    p_hi = check_real(p_hi, "p_hi", 0, 1)
    p_lo = check_real(p_lo, "p_lo", 0, 1)
    zipf = check_real(zipf, "zipf", 0, None)
    rng = np.random.default_rng(seed)
    members = rng.permutation(V).reshape(C, V // C)          # members[c]: the items of interest c
    interest_of = np.empty(V, dtype=np.int64)
    interest_of[members] = np.arange(C)[:, None]
    pop = 1.0 / np.arange(1, V // C + 1) ** zipf
    pop /= pop.sum()
    order = np.argsort(rng.random((n, C)), axis=1)           # a random ranking of interests per user
    mine, others = order[:, :m], order[:, m:]
    h_int = mine[np.arange(n)[:, None], rng.integers(0, m, (n, L))]
    hist = members[h_int, rng.choice(V // C, size=(n, L), p=pop)]
    match = rng.random(n) < 0.5
    c_int = np.where(match, mine[np.arange(n), rng.integers(0, m, n)], others[np.arange(n), rng.integers(0, C - m, n)])
    cand = members[c_int, rng.choice(V // C, size=n, p=pop)]
    click = (rng.random(n) < np.where(match, p_hi, p_lo)).astype(np.int64)
    return {"hist": hist, "hist_interest": h_int, "cand": cand, "cand_interest": c_int, "match": match,
            "click": click, "interest_of": interest_of}


def feature_counts(hist: np.ndarray, cand: np.ndarray, n_items: int) -> np.ndarray:
    """``n_j``: how many times item id ``j`` occurs in the training samples (behaviours and candidates)."""
    return np.bincount(np.concatenate([np.asarray(hist).ravel(), np.asarray(cand).ravel()]), minlength=n_items)


# ---------------------------------------------------------------------------
# DIN: the model, K seeds at once
# ---------------------------------------------------------------------------
class _Linear(nn.Module):
    """K independent linear maps: ``x [K, B, i] -> x W_k + b_k`` with ``W [K, i, o]``."""

    def __init__(self, K: int, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(K, n_in, n_out))
        self.bias = nn.Parameter(torch.empty(K, 1, n_out))

    def init_member(self, k: int, g: torch.Generator):
        bound = 1.0 / self.weight.shape[1] ** 0.5
        with torch.no_grad():
            self.weight[k].uniform_(-bound, bound, generator=g)
            self.bias[k].uniform_(-bound, bound, generator=g)

    def forward(self, x):
        return torch.baddbmm(self.bias, x, self.weight)


class _Act(nn.Module):
    """PReLU or Dice with one slope ``α`` per unit and seed (initialised to 0.25)."""

    def __init__(self, K: int, width: int, kind: str):
        super().__init__()
        if kind not in ("prelu", "dice"):
            raise ValueError(f"act must be 'prelu' or 'dice'; got {kind!r}")
        self.kind = kind
        self.alpha = nn.Parameter(torch.full((K, 1, width), 0.25))

    def forward(self, s):                                     # s: [K, B, width]
        return dice(s, self.alpha, dim=1) if self.kind == "dice" else prelu(s, self.alpha)


class CTRNet(nn.Module):
    """Embedding&MLP (``pool="sum"`` or ``"mean"``) or DIN (``pool="din"``) for K seeds at once.

    Input: behaviour ids ``hist [K, B, L]`` and candidate ids ``cand [K, B]`` (each in ``[0, V)``).
    ``v_A`` = embedding of the candidate, ``v_U`` = pooled behaviour embeddings (sum, mean, or
    DIN's ``Σ_j a(e_j, v_A) e_j`` with the activation unit ``a = Linear(4d → h) → act → Linear(h → 1)``,
    no softmax); logit = MLP(``[v_A, v_U]``) with ``hidden`` widths and ``act`` (PReLU or Dice).
    ``drop``: probability of dropping each behaviour id in training (dropout on feature ids,
    kept ones rescaled by ``1/(1 − drop)``).  Member ``k`` is initialised from ``seeds[k]`` alone.
    """

    def __init__(self, seeds: Sequence[int], n_items: int, dim: int = 8, pool: str = "din", act: str = "prelu",
                 hidden: Sequence[int] = (32, 16), att_hidden: int = 16, drop: float = 0.0, sparse: bool = True,
                 cate_of: torch.Tensor | None = None, n_cates: int = 0, cate_dim: int = 4):
        super().__init__()
        if pool not in ("sum", "mean", "din"):
            raise ValueError(f"pool must be 'sum', 'mean' or 'din'; got {pool!r}")
        K = len(seeds)
        self.K, self.V, self.pool, self.drop = K, check_int(n_items, "n_items", 1), pool, check_real(drop, "drop", 0, 1, high_open=True)
        self.emb = nn.Embedding(K * self.V, check_int(dim, "dim", 1), sparse=sparse)
        self.C = n_cates if cate_of is not None else 0
        if cate_of is not None:
            if tuple(cate_of.shape) != (K, self.V):
                raise ValueError(f"cate_of must have shape [K={K}, V={self.V}]; got {tuple(cate_of.shape)}")
            self.register_buffer("cate_of", cate_of.long() + self.C * torch.arange(K)[:, None])
            self.cate = nn.Embedding(K * self.C, cate_dim)
            dim = dim + cate_dim
        if pool == "din":
            self.att1, self.att_act, self.att2 = _Linear(K, 4 * dim, att_hidden), _Act(K, att_hidden, act), _Linear(K, att_hidden, 1)
        sizes = [2 * dim, *hidden]
        self.mlp = nn.ModuleList(_Linear(K, a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.acts = nn.ModuleList(_Act(K, b, act) for b in hidden)
        self.out = _Linear(K, sizes[-1], 1)
        for k, s in enumerate(seeds):
            g = torch.Generator().manual_seed(int(s))
            with torch.no_grad():
                self.emb.weight[k * self.V:(k + 1) * self.V].normal_(0.0, 0.1, generator=g)
                if self.C:
                    self.cate.weight[k * self.C:(k + 1) * self.C].normal_(0.0, 0.1, generator=g)
            for mod in self.modules():
                if isinstance(mod, _Linear):
                    mod.init_member(k, g)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Item vectors ``[goods-id embedding, category embedding]`` for ids ``[K, ...]``."""
        rows = self.offset(ids)
        e = self.emb(rows)
        if self.C:
            e = torch.cat([e, self.cate(self.cate_of.view(-1)[rows])], dim=-1)
        return e

    def offset(self, ids: torch.Tensor) -> torch.Tensor:
        """Global row ids: ``ids + k·V`` for member ``k`` (ids ``[K, ...]``)."""
        shape = (self.K,) + (1,) * (ids.ndim - 1)
        return ids + self.V * torch.arange(self.K, device=ids.device).view(shape)

    def attention(self, e: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The activation unit's weights ``a(e_j, v_A)``: ``e [K, B, L, d]``, ``v [K, B, d]`` -> ``[K, B, L]``."""
        K, B, L, d = e.shape
        z = activation_unit_input(e, v).reshape(K, B * L, 4 * d)
        return self.att2(self.att_act(self.att1(z))).reshape(K, B, L)

    def forward(self, hist: torch.Tensor, cand: torch.Tensor, return_weights: bool = False):
        e = self.embed(hist)
        v = self.embed(cand)
        mask = None
        if self.training and self.drop > 0:
            mask = torch.rand(hist.shape, device=hist.device) >= self.drop
            e = e / (1 - self.drop)
        w = None
        if self.pool == "din":
            w = self.attention(e, v)
            u = weighted_pool(e, w, mask)
        elif self.pool == "sum":
            u = sum_pool(e, mask)
        else:
            u = mean_pool(e if mask is None else e * (1 - self.drop), mask)
        x = torch.cat([v, u], dim=-1)
        for lin, act in zip(self.mlp, self.acts):
            x = act(lin(x))
        logit = self.out(x).squeeze(-1)
        return (logit, w) if return_weights else logit


class _TwoOptimizers:
    """SparseAdam on the embedding table (sparse gradients) and Adam on the dense weights,
    stepped together (what :func:`sparsebook.train.run_steps` calls ``opt``)."""

    def __init__(self, model: CTRNet, lr: float):
        dense = [p for n, p in model.named_parameters() if not n.startswith("emb.")]  # categories: few, dense
        self.opts = [torch.optim.Adam(dense, lr=lr)]
        emb = torch.optim.SparseAdam if model.emb.sparse else torch.optim.Adam
        self.opts.append(emb([model.emb.weight], lr=lr))

    def zero_grad(self, set_to_none: bool = True):
        for o in self.opts:
            o.zero_grad(set_to_none=set_to_none)

    def step(self):
        for o in self.opts:
            o.step()


@dataclass(frozen=True)
class CTRConfig:
    """One DIN / Embedding&MLP training: data, model and optimisation.

    ``pool``/``act``: the model; ``reg``: ``"none"``, ``"dropout"`` (50% of behaviour ids),
    ``"mba"`` (mini-batch aware L2 with ``lam``) or ``"l2"`` (L2 on the whole table with ``lam``,
    dense gradients).  ``evals``: number of test-loss evaluations along training (the curve).
    At ``ci`` the vocabulary is small (200 goods ids, 10 per interest) and the learning rate high
    (0.02 for 300 steps), so that every model trains to near its best within the time budget: with
    1,000 ids and 0.005 for 200 steps every model stayed near AUC 0.58 against an attainable 0.8.

    ``full`` (one GPU, at most 9 minutes for the whole chapter; sized by optimizer steps, since a step
    of this batched model is launch-bound on a GPU, 220 to 420 PyTorch operations whatever its size):
    200,000 goods ids in 50 interests, 400,000 training samples, the paper's MLP 200-80, embedding
    16 + 4, 1,000 steps of 4,096 (about ten epochs, and about as many updates of each id's embedding
    row as 4,000 steps of 1,024, the earlier preset, which did not fit).  The test set (50,000 users)
    is evaluated in chunks of ``eval_chunk`` rows, so that a 10-seed task holds about 1 GB of
    activations instead of 8 (Dice's statistics are then those of a chunk of 8,192 users; at ``ci``
    the test set is one chunk).
    """

    n_items: int = 200
    n_interests: int = 20
    use_cates: bool = True
    cate_dim: int = 4
    interests_per_user: int = 3
    hist_len: int = 10
    n_train: int = 20000
    n_test: int = 4000
    dim: int = 8
    hidden: tuple = (32, 16)
    att_hidden: int = 16
    pool: str = "din"
    act: str = "prelu"
    reg: str = "none"
    lam: float = 0.05
    steps: int = 300
    batch_size: int = 256
    lr: float = 0.02
    zipf: float = 1.0
    p_hi: float = 0.8
    p_lo: float = 0.2
    evals: int = 4
    n_eval: int = 1000
    eval_chunk: int = 8192
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str = "ci", **changes) -> "CTRConfig":
        check_scale(scale)
        base = cls() if scale == "ci" else cls(n_items=200_000, n_interests=50, n_train=400_000, n_test=50_000,
                                                hidden=(200, 80), att_hidden=36, dim=16, hist_len=20, steps=1000,
                                                batch_size=4096, lr=0.005, evals=10, device=str(device_for(scale)))
        return replace(base, **changes)


def _ctr_split(config: CTRConfig, seed: int) -> tuple[dict, dict, np.ndarray]:
    d = ctr_data(config.n_train + config.n_test, config.n_items, config.n_interests, config.interests_per_user,
                 config.hist_len, p_hi=config.p_hi, p_lo=config.p_lo, zipf=config.zipf, seed=seed)
    tr = {k: v[:config.n_train] for k, v in d.items() if k != "interest_of"}
    te = {k: v[config.n_train:] for k, v in d.items() if k != "interest_of"}
    return tr, te, d["interest_of"]


def _logloss(logit: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy per member: ``[K, B]`` -> ``[K]``."""
    return F.binary_cross_entropy_with_logits(logit, y, reduction="none").mean(-1)


def run_ctr(seeds: Sequence[int], config: CTRConfig) -> list[dict]:
    """Train ``config``'s model for every seed in ``seeds`` as one batched computation.

    Seed ``k`` draws its own data (:func:`ctr_data` with ``seed``), initialisation and batch order
    (:func:`sparsebook.train.batch_order`); a seed's result does not depend on which other seeds
    share the batch.  Returns one dict per seed: ``test_auc``, ``train_auc``, ``test_logloss``,
    ``train_logloss``, ``curve`` (test log-loss at ``evals + 1`` points, on the first
    ``n_eval`` test samples), ``curve_steps``, ``train_curve`` (the same on the first ``n_eval`` training
    samples, which also give ``train_auc`` and ``train_logloss``), ``oracle_auc`` (the test AUC of the
    Bayes-optimal score, the planted match), and for DIN ``w_match``/``w_other`` (mean |activation weight| on behaviours of
    the candidate's interest / of the user's other interests, on matching test candidates) and
    ``example`` (one test user's weights and behaviour interests).
    """
    seeds = [check_int(s, "seeds[i]", 0) for s in seeds]
    if config.reg not in ("none", "dropout", "mba", "l2"):
        raise ValueError(f"reg must be 'none', 'dropout', 'mba' or 'l2'; got {config.reg!r}")
    seed_everything(seeds[0])
    dev = torch.device(config.device)
    K, V = len(seeds), config.n_items
    splits = [_ctr_split(config, s) for s in seeds]
    T = lambda part, key, dt=torch.long: torch.as_tensor(np.stack([sp[part][key] for sp in splits]), dtype=dt, device=dev)
    htr, ctr_, ytr = T(0, "hist"), T(0, "cand"), T(0, "click", torch.float32)
    hte, cte, yte = T(1, "hist"), T(1, "cand"), T(1, "click", torch.float32)
    counts = torch.as_tensor(np.concatenate([feature_counts(sp[0]["hist"], sp[0]["cand"], V) for sp in splits]), device=dev)
    counts = counts.clamp(min=1)
    model = CTRNet(seeds, V, config.dim, config.pool, config.act, config.hidden, config.att_hidden,
                   drop=0.5 if config.reg == "dropout" else 0.0, sparse=config.reg != "l2",
                   cate_of=torch.as_tensor(np.stack([sp[2] for sp in splits])) if config.use_cates else None,
                   n_cates=config.n_interests, cate_dim=config.cate_dim).to(dev)
    opt = _TwoOptimizers(model, config.lr)
    order = torch.as_tensor(np.stack([batch_order(config.n_train, config.batch_size, config.steps, s) for s in seeds], 1), device=dev)
    ks = torch.arange(K, device=dev)[:, None]
    every = max(1, config.steps // config.evals)
    curve, train_curve, curve_steps = [], [], []

    @torch.no_grad()
    def forward_chunks(hist, cand, return_weights=False):
        """The model on ``[K, n, ...]`` test rows in chunks of ``config.eval_chunk`` rows (one chunk when
        ``n`` fits: Dice's statistics are then those of the whole set, as at ``ci``)."""
        model.eval()
        parts = [model(hist[:, a:a + config.eval_chunk], cand[:, a:a + config.eval_chunk], return_weights=return_weights)
                 for a in range(0, hist.shape[1], config.eval_chunk)]
        model.train()
        if not return_weights:
            return torch.cat(parts, 1)
        return torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)

    def evaluate(hist, cand, y):
        logit = forward_chunks(hist, cand)
        return logit, _logloss(logit, y)

    ne = min(config.n_eval, config.n_test, config.n_train)

    def record(step):
        if step % every == 0 or step == config.steps:
            curve.append(evaluate(hte[:, :ne], cte[:, :ne], yte[:, :ne])[1].cpu().numpy())
            train_curve.append(evaluate(htr[:, :ne], ctr_[:, :ne], ytr[:, :ne])[1].cpu().numpy())
            curve_steps.append(step)

    def objective(s):
        idx = order[s]                                        # [K, bs]
        hb, cb, yb = htr[ks, idx], ctr_[ks, idx], ytr[ks, idx]
        per = _logloss(model(hb, cb), yb)
        total = per.sum()
        if config.reg == "mba":
            rows = torch.unique(model.offset(torch.cat([hb, cb[..., None]], -1)))
            total = total + mba_l2(model.emb.weight, rows, counts, config.lam)
        elif config.reg == "l2":
            total = total + full_l2(model.emb.weight, config.lam * config.batch_size / config.n_train)
        return total, per

    record(0)
    model.train()
    run_steps(opt, objective, steps=config.steps, on_step=record)
    logit_te, ll_te = evaluate(hte, cte, yte)
    logit_tr, ll_tr = evaluate(htr[:, :ne], ctr_[:, :ne], ytr[:, :ne])
    out = []
    for k, s in enumerate(seeds):
        r = {"seed": s, "test_auc": auc(logit_te[k].cpu().numpy(), splits[k][1]["click"]),
             "train_auc": auc(logit_tr[k].cpu().numpy(), splits[k][0]["click"][:ne]),
             "test_logloss": float(ll_te[k]), "train_logloss": float(ll_tr[k]),
             "curve": np.array([c[k] for c in curve]), "train_curve": np.array([c[k] for c in train_curve]),
             "curve_steps": np.array(curve_steps),
             "oracle_auc": auc(splits[k][1]["match"].astype(float), splits[k][1]["click"])}
        out.append(r)
    if config.pool == "din":
        _, w = forward_chunks(hte, cte, return_weights=True)
        model.eval()
        for k in range(K):
            te = splits[k][1]
            wk = w[k].cpu().numpy()
            same = te["hist_interest"] == te["cand_interest"][:, None]
            sel = te["match"]
            on, off = np.abs(wk[sel][same[sel]]), np.abs(wk[sel][~same[sel]])
            out[k]["w_match"] = float(on.mean()) if on.size else float("nan")
            out[k]["w_other"] = float(off.mean()) if off.size else float("nan")   # none when m = 1
            i = int(np.flatnonzero(sel)[0])
            out[k]["example"] = {"weights": wk[i], "hist_interest": te["hist_interest"][i],
                                 "cand_interest": int(te["cand_interest"][i])}
    return out


# ---------------------------------------------------------------------------
# DIN: what regularising the embedding table costs
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RegCostConfig:
    """Steps of embedding-table regularisation alone, at several vocabulary sizes."""

    vocab: tuple = (10_000, 100_000, 1_000_000)
    dim: int = 8
    batch_size: int = 256
    hist_len: int = 12
    repeats: int = 7

    @classmethod
    def preset(cls, scale: str = "ci") -> "RegCostConfig":
        check_scale(scale)
        return cls() if scale == "ci" else cls(vocab=(10_000, 100_000, 1_000_000, 10_000_000), dim=16)


def run_reg_cost(config: RegCostConfig, seed: int = 0) -> dict:
    """Gradient bytes (exact) and wall-clock seconds of one regularised step, per vocabulary size.

    One step = penalty + backward + SGD update of the table, for (a) mini-batch aware L2 through
    sparse gradients on the rows of one batch (``B·(L+1)`` ids drawn uniformly), (b) L2 on the
    whole table (dense gradient).  Also the bytes of the lookup's gradient, sparse against dense.
    Returns ``{"vocab", "rows", "bytes_mba", "bytes_full", "bytes_lookup_sparse", "bytes_lookup_dense",
    "sec_mba" [V, repeats], "sec_full" [V, repeats]}``.
    """
    rng = seed_everything(seed)
    out = {k: [] for k in ("vocab", "rows", "bytes_mba", "bytes_full", "bytes_lookup_sparse", "bytes_lookup_dense",
                           "sec_mba", "sec_full")}
    n_ids = config.batch_size * (config.hist_len + 1)
    for V in config.vocab:
        table = torch.zeros(V, config.dim).normal_(0, 0.1)
        ids = torch.as_tensor(rng.integers(0, V, n_ids))
        rows = torch.unique(ids)
        counts = torch.ones(V)
        w = nn.Parameter(table)
        F.embedding(ids, w, sparse=True).sum().backward()
        out["bytes_lookup_sparse"].append(sparse_grad_bytes(w.grad))
        w.grad = None
        F.embedding(ids, w).sum().backward()
        out["bytes_lookup_dense"].append(sparse_grad_bytes(w.grad))
        times = {"mba": [], "full": []}
        for kind in ("mba", "full"):
            for r in range(config.repeats + 1):
                w.grad = None
                t0 = time.perf_counter()
                pen = mba_l2(w, rows, counts, 0.1) if kind == "mba" else full_l2(w, 0.1)
                pen.backward()
                with torch.no_grad():
                    w.add_(w.grad, alpha=-0.01)
                dt = time.perf_counter() - t0
                if r:
                    times[kind].append(dt)
                else:
                    out[f"bytes_{kind}"].append(sparse_grad_bytes(w.grad))
        out["vocab"].append(V)
        out["rows"].append(int(rows.numel()))
        out["sec_mba"].append(times["mba"])
        out["sec_full"].append(times["full"])
    return {k: np.array(v) for k, v in out.items()}


# ---------------------------------------------------------------------------
# MgNO: data
# ---------------------------------------------------------------------------
def random_coefficient(n: int, dim: int, rng: np.random.Generator, modes: int = 6, lo: float = 3.0,
                       hi: float = 12.0) -> np.ndarray:
    """A two-phase coefficient on ``n`` (× ``n``) nodes: ``hi`` where a random smooth field
    ``ψ = Σ_k ξ_k sin(kπx + φ_k)/k`` (tensor products in 2-D) is ≥ 0, ``lo`` elsewhere
    (the piecewise-constant Darcy coefficients of the FNO benchmark, with a sine series for the field)."""
    x = np.linspace(0, 1, n)
    ks = np.arange(1, modes + 1)
    if dim == 1:
        xi, ph = rng.standard_normal(modes), rng.uniform(0, 2 * np.pi, modes)
        psi = (xi[:, None] * np.sin(np.pi * ks[:, None] * x + ph[:, None]) / ks[:, None]).sum(0)
    else:
        xi = rng.standard_normal((modes, modes))
        ph = rng.uniform(0, 2 * np.pi, (2, modes))
        bx = np.sin(np.pi * ks[:, None] * x + ph[0][:, None]) / ks[:, None]
        by = np.sin(np.pi * ks[:, None] * x + ph[1][:, None]) / ks[:, None]
        psi = np.einsum("ij,ix,jy->xy", xi, bx, by)
    return np.where(psi >= 0, hi, lo)


def darcy_data(n_samples: int, n_grid: int, dim: int = 1, bc: str = "dirichlet", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(a, u)`` pairs for ``−∇·(a∇u) = f``: ``a`` from :func:`random_coefficient`, ``u`` from
    :func:`darcy_1d` (harmonic mean of the nodal ``a`` on each cell) or :func:`darcy_2d`.

    ``f = 1`` (Dirichlet) or ``f = cos(πx)`` (Neumann; compatible: its mean is 0).
    Returns float32 arrays ``[n_samples, 1, n_grid(, n_grid)]``.
    """
    n_samples = check_int(n_samples, "n_samples", 1)
    n_grid = check_int(n_grid, "n_grid", 3)
    dim = check_int(dim, "dim", 1, 2)
    if bc not in BCS:
        raise ValueError(f"bc must be one of {BCS}; got {bc!r}")
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, n_grid)
    a_all, u_all = [], []
    for _ in range(n_samples):
        a = random_coefficient(n_grid, dim, rng)
        if dim == 1:
            f = np.ones(n_grid) if bc == "dirichlet" else np.cos(np.pi * x)
            u = darcy_1d(2.0 / (1.0 / a[1:] + 1.0 / a[:-1]), f, bc)
        else:
            u = darcy_2d(a, np.ones((n_grid, n_grid)), bc)
        a_all.append(a)
        u_all.append(u)
    return np.stack(a_all)[:, None].astype(np.float32), np.stack(u_all)[:, None].astype(np.float32)


# ---------------------------------------------------------------------------
# MgNO, FNO, CNN
# ---------------------------------------------------------------------------
def _kernel(c_out: int, c_in: int, dim: int) -> nn.Parameter:
    fan = c_in * 3 ** dim
    return nn.Parameter(torch.empty((c_out, c_in) + (3,) * dim).uniform_(-fan ** -0.5, fan ** -0.5))


class VCycleOperator(nn.Module):
    """One linear operator ``W`` between ``c_in`` and ``c_out`` neurons, parameterized by a V-cycle
    (:func:`~sparsebook.sparse_inputs.kernels.vcycle`): per level ``A`` (c_out → c_in), ``S``
    (c_in → c_out), and above the coarsest ``R`` (c_in → c_in) and ``P`` (c_out → c_out), all 3-point
    (3×3) kernels."""

    def __init__(self, c_in: int, c_out: int, levels: int, dim: int = 1, bc: str = "dirichlet", nu: int = 1):
        super().__init__()
        self.bc, self.nu, self.dim = bc, nu, dim
        self.A = nn.ParameterList(_kernel(c_in, c_out, dim) for _ in range(levels))
        self.S = nn.ParameterList(_kernel(c_out, c_in, dim) for _ in range(levels))
        self.R = nn.ParameterList(_kernel(c_in, c_in, dim) for _ in range(levels - 1))
        self.P = nn.ParameterList(_kernel(c_out, c_out, dim) for _ in range(levels - 1))

    def forward(self, f):
        lv = [{"A": self.A[i], "S": self.S[i], **({"R": self.R[i], "P": self.P[i]} if i < len(self.R) else {})}
              for i in range(len(self.A))]
        return vcycle(f, lv, self.bc, self.nu)


class MgNO(nn.Module):
    """MgNO (He et al. 2024): ``u_{ℓ+1} = σ(W_ℓ u_ℓ + b_ℓ)`` with V-cycle operators ``W_ℓ`` between
    neuron layers ``1 → c → … → c → 1`` (no lifting or projection), GELU, and the last layer linear.
    The bias is a constant function per neuron (one number per channel)."""

    def __init__(self, channels: int = 8, depth: int = 3, levels: int = 4, dim: int = 1, bc: str = "dirichlet", nu: int = 1):
        super().__init__()
        sizes = [1] + [channels] * (depth - 1) + [1]
        self.ops = nn.ModuleList(VCycleOperator(a, b, levels, dim, bc, nu) for a, b in zip(sizes[:-1], sizes[1:]))
        self.bias = nn.ParameterList(nn.Parameter(torch.zeros((b,) + (1,) * dim)) for b in sizes[1:])

    def forward(self, a):
        u = a
        for i, (op, b) in enumerate(zip(self.ops, self.bias)):
            u = op(u) + b
            if i < len(self.ops) - 1:
                u = F.gelu(u)
        return u


class FNO(nn.Module):
    """A small Fourier neural operator (Li et al. 2021): lift ``[a, x] → width`` pointwise, ``depth``
    layers ``σ(K v + W v)`` (``K`` = :func:`spectral_conv` on ``modes``, ``W`` pointwise), project
    ``width → width → 1`` pointwise."""

    def __init__(self, width: int = 12, modes: int = 12, depth: int = 3, dim: int = 1):
        super().__init__()
        self.dim, self.modes = dim, modes
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        self.lift = conv(1 + dim, width, 1)
        shape = (width, width, modes) if dim == 1 else (2, width, width, modes, modes)
        scale = 1.0 / (width * width)
        self.spectral = nn.ParameterList(nn.Parameter(scale * torch.rand(shape + (2,))) for _ in range(depth))
        self.pointwise = nn.ModuleList(conv(width, width, 1) for _ in range(depth))
        self.proj1, self.proj2 = conv(width, width, 1), conv(width, 1, 1)

    def forward(self, a):
        n = a.shape[-1]
        grid = torch.linspace(0, 1, n, device=a.device, dtype=a.dtype)
        if self.dim == 1:
            coords = grid.expand(a.shape[0], 1, n)
        else:
            gx, gy = torch.meshgrid(grid, grid, indexing="ij")
            coords = torch.stack([gx, gy]).expand(a.shape[0], 2, n, n)
        v = self.lift(torch.cat([a, coords], 1))
        for i, (w, pw) in enumerate(zip(self.spectral, self.pointwise)):
            v = spectral_conv(v, torch.view_as_complex(w), self.modes) + pw(v)
            if i < len(self.spectral) - 1:
                v = F.gelu(v)
        return self.proj2(F.gelu(self.proj1(v)))


class PlainCNN(nn.Module):
    """A plain CNN of ``depth`` same-size convolutions (kernel 5, zero padding), ``1 → width → … → 1``, GELU."""

    def __init__(self, width: int = 16, depth: int = 5, dim: int = 1, kernel: int = 5):
        super().__init__()
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        sizes = [1] + [width] * (depth - 1) + [1]
        self.convs = nn.ModuleList(conv(a, b, kernel, padding=kernel // 2) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, a):
        u = a
        for i, c in enumerate(self.convs):
            u = c(u)
            if i < len(self.convs) - 1:
                u = F.gelu(u)
        return u


def n_params(model: nn.Module) -> int:
    """Number of trainable scalars (a complex weight stored as two reals counts 2)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass(frozen=True)
class OperatorConfig:
    """Operator learning on Darcy data: the three models at (close to) one parameter count.

    ``channels``/``levels``: MgNO; ``modes``: FNO (its width, and the CNN's, are chosen to match
    MgNO's parameter count, :func:`matched_models`).  ``n_train``: the training-set sizes swept.
    Optimisation (all three models alike): Adam with L2 ``weight_decay`` and a one-cycle schedule
    peaking at ``lr``, starting at ``lr/div_factor`` and ending at ``lr/(div_factor·final_div_factor)``
    (the MgNO authors' settings: weight decay 1e-4, ``div_factor`` 2, ``final_div_factor`` 100).

    ``full`` (one GPU, at most 9 minutes for the whole chapter; sized by optimizer steps: a vmapped
    MgNO step of 10 seeds is about 3,700 PyTorch operations, launch-bound on a GPU at 40-55 ms a
    step whatever the batch): 129-node grids with 7 levels, 16 channels, training sizes up to 1,024,
    500 steps of 64 (the earlier 1,000 steps of 32 and, before them, 4,000 did not fit).
    """

    dim: int = 1
    n_grid: int = 33
    bc: str = "dirichlet"
    n_train: tuple = (16, 64, 256)
    n_test: int = 200
    channels: int = 8
    depth: int = 3
    levels: int = 5
    modes: int = 12
    cnn_depth: int = 5
    steps: int = 300
    batch_size: int = 16
    lr: float = 5e-3
    weight_decay: float = 1e-4
    div_factor: float = 2.0
    final_div_factor: float = 100.0
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str = "ci", **changes) -> "OperatorConfig":
        check_scale(scale)
        base = cls() if scale == "ci" else cls(n_grid=129, n_train=(16, 64, 256, 1024), n_test=500, channels=16, levels=7,
                                                modes=16, steps=500, batch_size=64, device=str(device_for(scale)))
        return replace(base, **changes)


def build_model(kind: str, config: OperatorConfig, width: int | None = None) -> nn.Module:
    """``"mgno"``, ``"fno"`` (``width``) or ``"cnn"`` (``width``) for ``config``."""
    if kind == "mgno":
        return MgNO(config.channels, config.depth, config.levels, config.dim, config.bc)
    if kind == "fno":
        return FNO(width, config.modes, config.depth, config.dim)
    if kind == "cnn":
        return PlainCNN(width, config.cnn_depth, config.dim)
    raise ValueError(f"kind must be 'mgno', 'fno' or 'cnn'; got {kind!r}")


def matched_widths(config: OperatorConfig) -> dict:
    """The FNO and CNN widths whose parameter counts are closest to MgNO's, and the three counts."""
    target = n_params(build_model("mgno", config))
    out = {"mgno": {"width": config.channels, "params": target}}
    for kind in ("fno", "cnn"):
        counts = {}
        for w in range(1, 513):                   # parameter counts grow with the width: stop past the target
            counts[w] = n_params(build_model(kind, config, w))
            if counts[w] >= target:
                break
        best = min(counts, key=lambda w: (abs(counts[w] - target), w))
        out[kind] = {"width": best, "params": counts[best]}
    return out


def _rel_loss(pred, y):
    return relative_l2(pred, y).mean()


def train_one_cycle(make_model, x, y, seeds: Sequence[int], *, steps: int, lr: float, batch_size: int,
                    weight_decay: float = 0.0, div_factor: float = 2.0, final_div_factor: float = 100.0,
                    loss_fn=_rel_loss) -> dict:
    """K seeds of one operator trained as one vmapped computation (:func:`sparsebook.train.fit_seeds`)
    with Adam (``weight_decay``) and the MgNO authors' one-cycle learning rate.

    The rate follows ``torch.optim.lr_scheduler.OneCycleLR``: cosine up from ``lr/div_factor`` to ``lr``
    over the first 30% of the steps, cosine down to ``lr/(div_factor·final_div_factor)``.  Returns
    ``{"loss": [steps, K] training losses, "lr": [steps] learning rates, "predict": x -> [K, rows, ...]}``.
    """
    def one_cycle(opt):
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, div_factor=div_factor,
                                                   final_div_factor=final_div_factor)

    res = fit_seeds(make_model, x, y, seeds, steps=steps, lr=lr, batch_size=batch_size, optimizer="adam",
                    weight_decay=weight_decay, loss_fn=loss_fn, schedule=one_cycle)
    return {"loss": res["loss"], "lr": res["lr"], "predict": res["predict"]}


def run_operator(seeds: Sequence[int], config: OperatorConfig, kind: str, n_train: int, data_seed: int = 0) -> list[dict]:
    """Train ``kind`` on the first ``n_train`` Darcy samples for every seed at once (:func:`train_one_cycle`).

    The data (training pool and ``n_test`` test samples) is drawn with ``data_seed``; the seeds
    vary the initialisation and the batch order.  ``u`` is scaled by the standard deviation of
    the training pool, ``a`` mapped to ``(a − 7.5)/4.5`` (±1).  Returns one dict per seed:
    ``test_err``, ``train_err`` (mean relative L2 error), ``params``, ``pred`` (the first
    three test predictions, rescaled) and ``loss`` (the minibatch training loss at every step).
    """
    seeds = [check_int(s, "seeds[i]", 0) for s in seeds]
    n_train = check_int(n_train, "n_train", 1)
    seed_everything(seeds[0])
    dev = torch.device(config.device)
    a, u = _darcy_cached(config.dim, config.n_grid, config.bc, max(config.n_train) + config.n_test, data_seed)
    scale = float(u[:max(config.n_train)].std())
    x = torch.as_tensor((a - 7.5) / 4.5, device=dev)
    y = torch.as_tensor(u / scale, device=dev)
    xtr, ytr, xte, yte = x[:n_train], y[:n_train], x[-config.n_test:], y[-config.n_test:]
    width = None if kind == "mgno" else matched_widths(config)[kind]["width"]
    make = lambda: build_model(kind, config, width).to(dev)
    res = train_one_cycle(make, xtr, ytr, seeds, steps=config.steps, lr=config.lr, batch_size=config.batch_size,
                          weight_decay=config.weight_decay, div_factor=config.div_factor,
                          final_div_factor=config.final_div_factor)
    pte, ptr = res["predict"](xte), res["predict"](xtr)
    out = []
    for k, s in enumerate(seeds):
        out.append({"seed": s, "test_err": float(relative_l2(pte[k], yte).mean()),
                    "train_err": float(relative_l2(ptr[k], ytr).mean()), "params": n_params(make()),
                    "pred": (pte[k, :3] * scale).cpu().numpy(), "loss": res["loss"][:, k]})
    return out


_DARCY: dict = {}


def _darcy_cached(dim, n_grid, bc, n, seed):
    key = (dim, n_grid, bc, n, seed)
    if key not in _DARCY:
        _DARCY[key] = darcy_data(n, n_grid, dim, bc, seed)
    return _DARCY[key]


def true_solutions(config: OperatorConfig, data_seed: int = 0, count: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` test coefficients and true solutions of :func:`run_operator`'s data."""
    a, u = _darcy_cached(config.dim, config.n_grid, config.bc, max(config.n_train) + config.n_test, data_seed)
    return a[-config.n_test:][:count], u[-config.n_test:][:count]


# ---------------------------------------------------------------------------
# The chapter's runs: every condition over the seeds, on worker processes
# ---------------------------------------------------------------------------
#: DIN conditions: name -> (interests per user m or None for the sweep's largest, config changes).
CTR_VARIANTS = {
    "sum pooling": {"pool": "sum"},
    "mean pooling": {"pool": "mean"},
    "DIN": {"pool": "din"},
    "DIN + Dice": {"pool": "din", "act": "dice"},
    "DIN + MBA L2": {"pool": "din", "reg": "mba"},
    "DIN + dropout": {"pool": "din", "reg": "dropout"},
}


def _run_chunk(index: int, tasks: Sequence[tuple]) -> list:
    """``runner(seeds, *args)`` for task ``index`` of ``tasks``, a list of ``(runner, seeds, args)``
    (what :func:`_over_jobs` hands to the workers: a module-level function, so spawned workers load it)."""
    runner, seeds, args = tasks[index]
    return runner(seeds, *args)


def _over_jobs(runner, jobs: dict, seeds: Sequence[int], batch: int, workers: int | None, cost=None) -> dict:
    """``{key: [one result per seed]}`` for every ``key: args`` of ``jobs``, where a chunk of ``batch``
    consecutive seeds is one batched run ``runner(chunk, *args)``.

    Every (job, chunk) pair goes to the :func:`sparsebook.seeding.over_seeds` workers in one call, so
    a worker that finishes a small chunk starts the next job's instead of waiting for the job's
    largest chunk; ``cost(args)`` (a relative cost, optional) submits the costliest jobs first, so
    that the cheap ones fill the end.  The chunks are the same whatever the workers and the order
    (consecutive seeds from the first), and a run depends only on its job and its chunk, so the
    results are those of one ``over_seeds`` call per job with ``batch=batch``.
    """
    from sparsebook.seeding import over_seeds

    batch = check_int(batch, "batch", 1)
    seeds = [check_int(s, "seeds[i]", 0) for s in seeds]
    chunks = [seeds[i:i + batch] for i in range(0, len(seeds), batch)]
    tasks = [(runner, chunk, args) for args in jobs.values() for chunk in chunks]
    first = sorted(range(len(tasks)), key=lambda i: (-(cost(tasks[i][2]) if cost else 0), -len(tasks[i][1]), i))
    done = dict(zip(first, over_seeds(_run_chunk, first, tasks, workers=workers)))
    results = iter(done[i] for i in range(len(tasks)))
    return {key: [r for _ in chunks for r in next(results)] for key in jobs}


@dataclass(frozen=True)
class CTRSuiteConfig:
    """The DIN section: interests per user swept for sum pooling and DIN; every variant of
    :data:`CTR_VARIANTS` at the largest ``m``.  ``batch``: seeds trained as one batched run.  At
    ``ci`` 3 (chunks of 3 and 2 seeds): on a CPU this model costs per number, so one chunk of 5
    saves nothing (54 against 58 CPU s for the section), and it would change the results (the
    dropout masks are drawn over the whole ``[K, B, L]`` batch).  At ``full`` every seed: on a GPU
    a step is launch-bound and costs about the same for 3 or 10 seeds, so one task per condition."""

    interests: tuple = (1, 4)
    base: CTRConfig = CTRConfig()
    batch: int = 3

    @classmethod
    def preset(cls, scale: str = "ci") -> "CTRSuiteConfig":
        check_scale(scale)
        if scale == "ci":
            return cls(base=CTRConfig.preset(scale))
        return cls(interests=(1, 2, 4, 8), base=CTRConfig.preset(scale), batch=N_SEEDS["full"])


def run_ctr_suite(config: CTRSuiteConfig, seeds: Sequence[int], workers: int | None = None) -> dict:
    """``{(name, m): [one run_ctr dict per seed]}`` for the sweep and the variants: every condition and
    chunk of ``config.batch`` seeds at once on the workers (:func:`_over_jobs`)."""
    top = max(config.interests)
    jobs = [(name, m) for m in config.interests for name in ("sum pooling", "DIN")]
    jobs += [(name, top) for name in CTR_VARIANTS if (name, top) not in jobs]
    args = {(name, m): (replace(config.base, interests_per_user=m, **CTR_VARIANTS[name]),) for name, m in jobs}
    return _over_jobs(run_ctr, args, seeds, config.batch, workers, cost=lambda a: 2 if a[0].pool == "din" else 1)


@dataclass(frozen=True)
class OperatorSuiteConfig:
    """The MgNO section: MgNO and FNO against the training-set size and the CNN at the largest size
    (Dirichlet), MgNO and FNO with Neumann boundaries at the largest size, and on a coarser grid.

    ``batch``: seeds trained as one vmapped run, every seed at both scales.  These small operators
    cost per operation, not per number: on one CPU thread a ``ci`` condition took 9.6-11.1 CPU s
    (MgNO) and 3.2-4.0 s (FNO, CNN) for five seeds in one run, against 8-9 s and 2.3-3.1 s for
    each of the chunks of three and two (57 s for the section against 91 s).  MgNO's results are
    the same to the bit either way; the FNO's and the CNN's move by a few 1e-8 (float32 rounding
    of the batched convolutions)."""

    base: OperatorConfig = OperatorConfig()
    coarse_grid: int = 17
    coarse_levels: int = 4
    batch: int = N_SEEDS["ci"]

    @classmethod
    def preset(cls, scale: str = "ci") -> "OperatorSuiteConfig":
        check_scale(scale)
        if scale == "ci":
            return cls(base=OperatorConfig.preset("ci", n_train=(16, 128), steps=200, modes=8))
        return cls(base=OperatorConfig.preset("full"), coarse_grid=65, coarse_levels=6, batch=N_SEEDS["full"])


def run_operator_suite(config: OperatorSuiteConfig, seeds: Sequence[int], workers: int | None = None) -> dict:
    """``{(model, bc, n_grid, n_train): [one run_operator dict per seed]}``: every condition and chunk of
    ``config.batch`` seeds at once on the workers (:func:`_over_jobs`)."""
    b = config.base
    top = max(b.n_train)
    coarse = replace(b, n_grid=config.coarse_grid, levels=config.coarse_levels, modes=min(b.modes, config.coarse_grid // 2 + 1))
    jobs = [(kind, b, n) for n in b.n_train for kind in ("mgno", "fno")] + [("cnn", b, top)]
    jobs += [(kind, replace(b, bc="neumann"), top) for kind in ("mgno", "fno")]
    jobs += [(kind, coarse, top) for kind in ("mgno", "fno")]
    args = {(kind, cfg.bc, cfg.n_grid, n): (cfg, kind, n) for kind, cfg, n in jobs}
    return _over_jobs(run_operator, args, seeds, config.batch, workers, cost=lambda a: 3 if a[1] == "mgno" else 1)
