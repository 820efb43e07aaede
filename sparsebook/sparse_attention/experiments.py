"""Sparse attention, experiments: the recall tasks, a one-layer NoPE attention model whose attention can be
restricted by a pattern, frozen configs with ``preset(scale)`` and the runners ``run_<experiment>(config, seed)``.

Every runner trains or evaluates ``N_SEEDS[scale]`` seeds ``seed, seed+1, ...`` at once
(:func:`sparsebook.train.fit_seeds`, one batched computation) and returns per-seed arrays for
:mod:`sparsebook.stats`.
"""
from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sparsebook.scales import check_scale
from sparsebook.seeding import seed_everything
from sparsebook.sparse_attention import kernels as K
from sparsebook.train import fit_seeds, make_optimizer, run_steps
from sparsebook.validate import check_int, check_real

N_SEEDS = {"ci": 5, "full": 10}
IGNORE = -100


def _device(scale: str) -> torch.device:
    return torch.device("cuda") if scale == "full" and torch.cuda.is_available() else torch.device("cpu")


# ---------------------------------------------------------------------------
# the tasks
# ---------------------------------------------------------------------------
def recall_task(n: int, L: int, pairs: int, keys: int = 32, values: int = 16, noise: int = 4, local: bool = False,
                keep: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-query associative recall with one token per key–value pair.

    A sequence of ``L`` positions holds ``pairs`` tokens ``(key, value)`` (distinct keys from ``keys``,
    values from ``values``), noise tokens ``(noise symbol, none)`` everywhere else, and ends with the
    ``pairs`` queries ``(key, query)`` in a random order; the target at a query is its pair's value
    (``IGNORE`` elsewhere).  ``local=False``: pairs at random positions among the first ``L - pairs``
    (attention must find content anywhere); ``local=True``: the pairs fill the ``pairs`` positions just
    before the queries (a local window is enough).  A third channel holds a key-keep bit drawn with
    probability ``keep`` (used only by stochastically sub-sampled training).

    Returns ``x`` ``[n, L, 3]`` (int64: key-or-noise symbol, value-or-marker, keep bit) and ``y`` ``[n, L]``.
    """
    n, L = check_int(n, "n", 1), check_int(L, "L", 2)
    pairs = check_int(pairs, "pairs", 1, min(keys, L // 2))
    keep = check_real(keep, "keep", 0.0, 1.0, low_open=True)
    rng = np.random.default_rng(seed)
    none, query = values, values + 1
    a = rng.integers(keys, keys + noise, size=(n, L))
    b = np.full((n, L), none)
    y = np.full((n, L), IGNORE)
    ks = np.argsort(rng.random((n, keys)), axis=1)[:, :pairs]
    vs = rng.integers(0, values, size=(n, pairs))
    if local:
        pos = L - 2 * pairs + np.argsort(rng.random((n, pairs)), axis=1)
    else:
        pos = np.argsort(rng.random((n, L - pairs)), axis=1)[:, :pairs]
    rows = np.arange(n)[:, None]
    a[rows, pos], b[rows, pos] = ks, vs
    order = np.argsort(rng.random((n, pairs)), axis=1)
    qpos = np.arange(L - pairs, L)[None, :].repeat(n, 0)
    a[rows, qpos] = np.take_along_axis(ks, order, 1)
    b[rows, qpos] = query
    y[rows, qpos] = np.take_along_axis(vs, order, 1)
    kb = rng.random((n, L)) < keep
    x = np.stack([a, b, kb.astype(np.int64)], -1)
    return torch.as_tensor(x), torch.as_tensor(y)


# ---------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------
MODES = ("dense", "pattern", "ssa", "seqboat", "lemo", "sparsifiner", "routing", "seer")
GATED = ("seqboat", "sparsifiner", "routing", "seer")  # modes whose forward returns (logits, auxiliary loss)


class RecallNet(nn.Module):
    """One pre-LayerNorm causal attention layer without position encodings (NoPE) and a linear head.

    ``h_t = E_a[a_t] + E_b[b_t]``; ``s = q kᵀ/√d_h`` per head; ``A = softmax(s | M)`` with ``M`` the causal
    mask intersected with the mode's pattern; output ``head(LN(h + W_o A v))``.  Modes:

    - ``dense``; ``pattern``: a fixed boolean ``[H, L, L]`` buffer (S2 shards, a homogeneous stride, ...);
    - ``ssa``: keys whose keep bit (``x[..., 2]``) is 0 are dropped (Information Pathways' sub-sampling);
    - ``seqboat``: a gate ``g_t = σ(w·LN(h_t))`` activates token ``t`` when ``g_t > 1/2``; only active tokens
      attend and are attended (Sparse Modular Activation);
      values are scaled by ``g_t`` (so the gate learns from the keys it serves); ``forward`` then returns ``(logits, mean g)`` so that a penalty can act on the gate;
    - ``lemo``: only the ``keep_tokens`` most informative tokens (:func:`~.kernels.informativeness` of the
      embeddings; queries always kept) serve as keys and values (LeMo's token elimination);
    - ``sparsifiner``: a low-rank connectivity predictor per head (``P_h, R_h`` ``[d, rank]``, scores
      ``(z P_h)(z R_h)ᵀ`` with ``z = LN(h)``) whose top-``keys`` keys per row form the mask (Wei et al. 2023,
      Sec. 3.2); ``forward`` returns ``(logits, KL)`` with ``KL`` the divergence of the predictor's causal softmax
      from the head's dense attention (detached), the connectivity distillation that trains the predictor;
    - ``routing``: per-head centroids ``[H, C, d_h]`` (a parameter); each centroid takes its ``cluster_size``
      nearest queries and keys (:func:`~.kernels.routing_mask` of the detached ``q, k``) and a query attends to
      the keys of its clusters (Roy et al. 2021, Sec. 4); ``forward`` returns ``(logits, J)`` with ``J`` the
      spherical k-means objective ``mean(1 − max_c μ̂_c·ẑ)`` of the detached, normalised queries and keys, whose
      gradient moves only the centroids (the gradient form of the online k-means update);
    - ``seer``: a :class:`SeerGate` on the detached ``q, k`` whose top ``blocks`` key blocks per query block form
      the mask (Gao et al. 2024); ``forward`` returns ``(logits, KL)`` with ``KL`` the divergence of the gate from
      the block ground truth of the head's own dense attention (detached), the paper's gate distillation.

    ``forward(x, mask=None, attention=None)``: ``mask`` (``[.., H, L, L]``) replaces the mode's pattern;
    ``attention`` (a function ``s, M -> A``) replaces the softmax (Combiner).
    """

    def __init__(self, n_a: int, n_b: int, L: int, d: int = 64, heads: int = 8, mode: str = "dense",
                 pattern: torch.Tensor | None = None, keep_tokens: int | None = None, keys: int | None = None,
                 rank: int = 2, clusters: int | None = None, cluster_size: int | None = None,
                 block: int | None = None, blocks: int | None = None, gate_dim: int = 8):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
        if d % heads:
            raise ValueError(f"d must be divisible by heads; got {d} and {heads}")
        self.mode, self.heads, self.L, self.keep_tokens, self.query_symbol = mode, heads, L, keep_tokens, n_b - 1
        self.emb_a, self.emb_b = nn.Embedding(n_a, d), nn.Embedding(n_b, d)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.head = nn.Linear(d, n_b - 2)
        if mode == "seqboat":
            self.gate = nn.Linear(d, 1)
            nn.init.constant_(self.gate.bias, 1.0)  # every token starts active
        if mode == "sparsifiner":
            self.keys = check_int(keys, "keys", 1)
            self.pred_p = nn.Parameter(torch.randn(heads, d, rank) / math.sqrt(d))
            self.pred_r = nn.Parameter(torch.randn(heads, d, rank) / math.sqrt(d))
        if mode == "routing":
            self.cluster_size = check_int(cluster_size, "cluster_size", 1, L)
            self.centroids = nn.Parameter(torch.randn(heads, check_int(clusters, "clusters", 1), d // heads))
        if mode == "seer":
            self.blocks = check_int(blocks, "blocks", 1)
            self.seer = SeerGate(heads, d // heads, gate_dim, check_int(block, "block", 1, L))
        self.register_buffer("pattern", pattern if pattern is not None else K.causal_mask(L), persistent=False)

    def embed(self, x):
        return self.emb_a(x[..., 0]) + self.emb_b(x[..., 1])

    def qkv_heads(self, h):
        n, L, d = h.shape
        q, k, v = self.qkv(self.ln1(h)).view(n, L, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return q, k, v  # [n, H, L, d_h]

    def logits(self, x):
        """Attention logits ``[n, H, L, L]`` and the head inputs of ``x``."""
        h = self.embed(x)
        q, k, v = self.qkv_heads(h)
        return q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), h, v

    def forward(self, x, mask=None, attention=None):
        h = self.embed(x)
        q, k, v = self.qkv_heads(h)
        L = x.shape[-2]
        eye = torch.eye(L, dtype=torch.bool, device=x.device)
        causal = K.causal_mask(L).to(x.device)
        gate = None
        if mask is None:
            mask = self.pattern[..., :L, :L] & causal
            if self.mode == "ssa":
                mask = mask & ((x[..., 2] > 0)[:, None, None, :] | eye)
            elif self.mode == "seqboat":
                gate = torch.sigmoid(self.gate(self.ln2(h))).squeeze(-1)  # [n, L]
                act = gate > 0.5
                mask = mask & ((act[:, :, None] & act[:, None, :]) | eye)[:, None]
                v = v * (gate * act)[:, None, :, None]  # an active key contributes its gated value
            elif self.mode == "lemo":
                score = K.informativeness(h).masked_fill(x[..., 1] == self.query_symbol, float("inf"))
                kept = K.keep_top(score, self.keep_tokens)
                mask = mask & (kept[:, None, None, :] | eye)
            elif self.mode == "sparsifiner":
                z = self.ln1(h)
                pred = torch.einsum("nld,hdr->nhlr", z, self.pred_p) @ torch.einsum("nld,hdr->nhrl", z, self.pred_r)
                mask = mask & K.topk_mask(pred.detach(), self.keys)
                with torch.no_grad():
                    target = K.masked_softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), causal)
                logp = torch.log_softmax(pred.masked_fill(~causal, float("-inf")), -1).masked_fill(~causal, 0.0)
                gate = (target * (torch.log(target.clamp_min(1e-12)) - logp)).sum(-1).mean()
            elif self.mode == "routing":
                qd, kd, c = q.detach(), k.detach(), self.centroids
                mask = mask & K.routing_mask(qd, kd, c.detach(), self.cluster_size)  # per-head centroids
                z = F.normalize(torch.cat([qd, kd], -2), dim=-1)  # [n, H, 2L, d_h]
                gate = (1 - (z @ F.normalize(c, dim=-1).transpose(-1, -2)).amax(-1)).mean()
            elif self.mode == "seer":
                p = self.seer(q.detach(), k.detach())
                mask = mask & K.expand_blocks(K.topk_blocks(p.detach(), self.blocks), self.seer.block)
                with torch.no_grad():
                    target = K.block_ground_truth(
                        K.masked_softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), causal), self.seer.block)
                gate = (target * (torch.log(target.clamp_min(1e-12)) - torch.log(p.clamp_min(1e-12)))).sum(-1).mean()
        if attention is not None:
            o = attention(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), mask) @ v
        elif q.is_cuda:  # PyTorch's math kernel on a GPU: the memory-efficient one fails in backward with
            # a boolean mask at these shapes ("LSE is not correctly aligned") and is not deterministic
            from torch.nn.attention import SDPBackend, sdpa_kernel

            with sdpa_kernel([SDPBackend.MATH]):
                o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:  # the fused kernel: softmax(q kᵀ/√d_h | M) v without storing the probabilities
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        o = o.transpose(1, 2).reshape(h.shape)
        o = self.out(o)
        logits = self.head(self.ln2(h + o))
        return (logits, gate.mean()) if gate is not None else logits  # seqboat: mean gate; others: their auxiliary loss


def _ce(out, y):
    if isinstance(out, tuple):
        out = out[0]
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), ignore_index=IGNORE)


def _gated_ce(weight):
    def loss(out, y):
        return _ce(out[0], y) + weight * out[1]
    return loss


# ---------------------------------------------------------------------------
# training, batched over seeds
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RecallConfig:
    """The recall model and its training.  ``L`` sequence length; ``pairs`` key–value pairs (= queries);
    ``keys`` per row kept by every sparse pattern (the equal-density budget, about ``L/8``).

    ``full`` (one GPU): sized by optimizer steps, not FLOPs (these models are tiny, so a GPU step is
    launch-bound): 3x the steps (450), and what a GPU gives for free: 4x the length (256 tokens, 16 pairs),
    2x the width (d = 64, 8 heads of the same size 8), 8x the batch (128), 8x the test set (2,048), 10 seeds
    batched in one loop.  The whole chapter's steps at ``full`` stay within 3x those at ``ci``
    (:func:`training_steps`)."""

    L: int = 64
    pairs: int = 8
    n_keys: int = 32
    n_values: int = 16
    d: int = 32
    heads: int = 4
    steps: int = 150
    lr: float = 1e-2
    batch: int = 16
    n_train: int = 8192
    n_test: int = 256
    keys: int = 8
    scale: str = "ci"

    @classmethod
    def preset(cls, scale: str) -> "RecallConfig":
        scale = check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(L=256, pairs=16, n_keys=64, d=64, heads=8, steps=450, lr=1e-2, batch=128, n_train=65536,
                   n_test=2048, keys=32, scale="full")

    def data(self, n, seed, local=False, keep=1.0, L=None, pairs=None):
        return recall_task(n, L or self.L, pairs or self.pairs, self.n_keys, self.n_values, local=local, keep=keep,
                           seed=seed)

    def model(self, mode="dense", pattern=None, keep_tokens=None, L=None, **kw):
        return RecallNet(self.n_keys + 4, self.n_values + 2, L or self.L, self.d, self.heads, mode, pattern, keep_tokens,
                         **kw)


def _seeds(seed: int, scale: str) -> list[int]:
    return list(range(check_int(seed, "seed", 0), seed + N_SEEDS[check_scale(scale)]))


def _train(cfg: RecallConfig, seeds, mode="dense", pattern=None, local=False, keep=1.0, steps=None, init=None,
           keep_tokens=None, gate_weight=0.0, L=None, pairs=None, data_seed=10_000, model_kw=None):
    """:func:`fit_seeds` of ``cfg.model(mode, ...)`` on a training set drawn with ``data_seed + seeds[0]``;
    ``init`` (a ``[K, ...]`` parameter dict) starts member ``k`` from its weights instead of a fresh draw.
    Returns the fit result and the template model."""
    x, y = cfg.data(cfg.n_train, data_seed + seeds[0], local=local, keep=keep, L=L, pairs=pairs)
    dev = _device(cfg.scale)
    count = iter(range(len(seeds)))

    def make():
        m = cfg.model(mode, pattern, keep_tokens, L=L, **(model_kw or {}))
        if init is not None:
            j = next(count)
            m.load_state_dict({k: v[j] for k, v in init.items()}, strict=False)
        return m.to(dev)

    loss = _ce if mode not in GATED else _gated_ce(gate_weight)
    with warnings.catch_warnings():  # vmap runs the fused attention kernel member by member (same numbers)
        warnings.filterwarnings("ignore", message="There is a performance drop")
        return fit_seeds(make, x.to(dev), y.to(dev), seeds, steps=steps or cfg.steps, lr=cfg.lr,
                         batch_size=cfg.batch, loss_fn=loss)


def members(cfg: RecallConfig, fit: dict, mode="dense", pattern=None, keep_tokens=None, L=None, **kw) -> list[RecallNet]:
    """One :class:`RecallNet` per seed with that seed's trained weights (eval mode), on the training device
    (:func:`_device`: the GPU at ``full`` when there is one), where every runner also evaluates."""
    out, dev = [], _device(cfg.scale)
    for j in range(next(iter(fit["params"].values())).shape[0]):
        m = cfg.model(mode, pattern, keep_tokens, L=L, **kw)
        m.load_state_dict({k: v[j].cpu() for k, v in fit["params"].items()}, strict=False)
        out.append(m.to(dev).eval())
    return out


def _test_data(cfg: RecallConfig, n: int, seed: int, **kw):
    """``cfg.data(n, seed, **kw)`` on the training device."""
    return tuple(t.to(_device(cfg.scale)) for t in cfg.data(n, seed, **kw))


EVAL_CHUNK = 512  # test sequences per forward pass (bounds the [n, H, L, L] scores of full-scale evaluation)


@torch.no_grad()
def accuracy(model: nn.Module, x, y, **kw) -> float:
    """Fraction of query positions answered correctly (exact count / queries), in chunks of ``EVAL_CHUNK``
    sequences (one pass when ``x`` has no more)."""
    if len(x) > EVAL_CHUNK:
        parts = [(accuracy(model, x[i:i + EVAL_CHUNK], y[i:i + EVAL_CHUNK], **kw), int((y[i:i + EVAL_CHUNK] != IGNORE).sum()))
                 for i in range(0, len(x), EVAL_CHUNK)]
        return sum(a * n for a, n in parts) / sum(n for _, n in parts)
    out = model(x, **kw)
    out = out[0] if isinstance(out, tuple) else out
    q = y != IGNORE
    return float((out.argmax(-1)[q] == y[q]).double().mean())


@torch.no_grad()
def test_loss(model: nn.Module, x, y, **kw) -> float:
    """Mean cross-entropy (nats) over the query positions, in chunks of ``EVAL_CHUNK`` sequences."""
    if len(x) > EVAL_CHUNK:
        parts = [(test_loss(model, x[i:i + EVAL_CHUNK], y[i:i + EVAL_CHUNK], **kw), int((y[i:i + EVAL_CHUNK] != IGNORE).sum()))
                 for i in range(0, len(x), EVAL_CHUNK)]
        return sum(a * n for a, n in parts) / sum(n for _, n in parts)
    out = model(x, **kw)
    return float(_ce(out, y))


@functools.lru_cache(maxsize=8)
def _dense_cached(cfg: RecallConfig, seed: int, local: bool):
    seeds = _seeds(seed, cfg.scale)
    seed_everything(seeds[0])
    fit = _train(cfg, seeds, local=local)
    return fit


def train_dense(cfg: RecallConfig, seed: int = 0, local: bool = False) -> list[RecallNet]:
    """The dense models (one per seed) on the global (``local=False``) or local recall task (cached)."""
    return members(cfg, _dense_cached(cfg, seed, local))


# ---------------------------------------------------------------------------
# patterns on a trained dense model
# ---------------------------------------------------------------------------
STATIC = ("local", "strided", "random", "s2")
CONTENT = ("routing", "sparsifiner", "seer", "oracle")


@dataclass(frozen=True)
class PatternConfig:
    """Patterns imposed on the trained dense model.  ``budgets``: keys per row for the density sweep;
    ``rank``: Sparsifiner's predictor rank; ``block`` and ``gate_steps``: SeerAttention's block size and gate
    training; ``kmeans_steps``: online k-means iterations; ``combiner_block``: Combiner's region size."""

    recall: RecallConfig = RecallConfig()
    budgets: tuple = (4, 8, 16, 32)
    rank: int = 2
    block: int = 4
    gate_dim: int = 8
    gate_steps: int = 100
    gate_batch: int = 64
    kmeans_steps: int = 20
    combiner_block: int = 8

    @classmethod
    def preset(cls, scale: str) -> "PatternConfig":
        r = RecallConfig.preset(scale)
        if scale == "ci":
            return cls(recall=r)
        # full: the gate's 100 steps per seed on 4x the rows per step (one loop per seed: steps are not free)
        return cls(recall=r, budgets=(8, 16, 32, 64, 128), rank=4, block=16, gate_steps=100, gate_batch=256,
                   kmeans_steps=20, combiner_block=16)


def fit_routing(q: torch.Tensor, k: torch.Tensor, clusters: int, steps: int, seed: int) -> torch.Tensor:
    """Centroids ``[H, C, d_h]`` of online k-means on the queries and keys of each head (shared), from a
    seeded random start.  q, k ``[n, H, L, d_h]``."""
    g = torch.Generator().manual_seed(seed)  # draws on the CPU, moved to q's device (same numbers anywhere)
    H, dh = q.shape[1], q.shape[-1]
    cents = []
    for h in range(H):
        c = F.normalize(torch.randn(clusters, dh, generator=g), dim=-1).to(q.device)
        z = torch.cat([q[:, h], k[:, h]], 1).reshape(-1, dh)
        for s in range(steps):
            rows = torch.randint(0, z.shape[0], (min(2048, z.shape[0]),), generator=g).to(z.device)
            c = K.kmeans_update(c, z[rows], decay=0.9)
        cents.append(c)
    return torch.stack(cents)


def routing_pattern(q, k, centroids, members_: int) -> torch.Tensor:
    """:func:`~.kernels.routing_mask` per head with that head's centroids: ``[n, H, L, L]``."""
    return K.routing_mask(q, k, centroids, members_)  # centroids [H, C, d_h] broadcast over the heads of q, k


class SeerGate(nn.Module):
    """SeerAttention's gate (Gao et al. 2024, Sec. 3.1): average-pooled queries and max-, min- and
    average-pooled keys of every ``block``, projected per head to ``gate_dim``, scored, softmax over the causal
    key blocks.  Input q, k ``[n, H, L, d_h]`` → block probabilities ``[n, H, L/b, L/b]``."""

    def __init__(self, heads: int, d_head: int, gate_dim: int, block: int):
        super().__init__()
        self.block = block
        self.wq = nn.Parameter(torch.randn(heads, d_head, gate_dim) / math.sqrt(d_head))
        self.wk = nn.Parameter(torch.randn(heads, 3 * d_head, gate_dim) / math.sqrt(3 * d_head))

    def forward(self, q, k):
        n, H, L, dh = q.shape
        nb = L // self.block
        qb = q.reshape(n, H, nb, self.block, dh).mean(-2)
        kr = k.reshape(n, H, nb, self.block, dh)
        kb = torch.cat([kr.amax(-2), kr.amin(-2), kr.mean(-2)], -1)
        s = torch.einsum("nhad,hdg->nhag", qb, self.wq) @ torch.einsum("nhbd,hdg->nhbg", kb, self.wk).transpose(-1, -2)
        return K.masked_softmax(s / math.sqrt(self.wq.shape[-1]), K.causal_mask(nb).to(s.device))


def train_seer_gate(q, k, attn, cfg: PatternConfig, seed: int) -> SeerGate:
    """Fit the gate to the block ground truth (:func:`~.kernels.block_ground_truth`) by KL divergence."""
    seed_everything(seed)
    gate = SeerGate(q.shape[1], q.shape[-1], cfg.gate_dim, cfg.block).to(q.device)
    target = K.block_ground_truth(attn, cfg.block)
    opt = make_optimizer(gate.parameters(), "adam", 1e-2)
    g = torch.Generator().manual_seed(seed)

    def objective(s):
        rows = torch.randint(0, q.shape[0], (cfg.gate_batch,), generator=g).to(q.device)
        p = gate(q[rows], k[rows])
        t = target[rows]
        kl = (t * (torch.log(t.clamp_min(1e-12)) - torch.log(p.clamp_min(1e-12)))).sum(-1).mean()
        return kl, kl

    run_steps(opt, objective, steps=cfg.gate_steps)
    return gate


@torch.no_grad()
def _rows_view(model: RecallNet, x, rows):
    """Everything a one-layer model's answers at the query ``rows`` depend on: embeddings ``h``, per-head
    ``q, k, v``, the logits of those rows ``s`` ``[n, H, R, L]`` and their causal attention ``attn``."""
    h = model.embed(x)
    q, k, v = model.qkv_heads(h)
    s = q[..., rows, :] @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    attn = K.masked_softmax(s, K.causal_mask(x.shape[1])[rows].to(s.device))
    return {"h": h, "q": q, "k": k, "v": v, "s": s, "attn": attn, "rows": rows}


@torch.no_grad()
def rows_accuracy(model: RecallNet, view: dict, y, mask=None, attn=None) -> float:
    """Accuracy at the query rows when their attention is ``masked_softmax(s | mask)`` (or ``attn``):
    the same as the full forward pass with that pattern, since a one-layer model's answer at a row
    depends on that row's attention only."""
    rows = view["rows"]
    if attn is None:
        attn = K.masked_softmax(view["s"], mask) if mask is not None else view["attn"]
    o = (attn @ view["v"]).transpose(1, 2)
    o = model.out(o.reshape(*o.shape[:2], -1))
    logits = model.head(model.ln2(view["h"][:, rows] + o))
    return float((logits.argmax(-1) == y[:, rows]).double().mean())


@torch.no_grad()
def evaluate_patterns(model: RecallNet, x, y, train_x, cfg: PatternConfig, keys: int, seed: int,
                      which=STATIC + CONTENT, gate=None, centroids=None) -> dict:
    """Mass recall, top-1 recall, accuracy and mean density (kept keys / causal keys) at the query rows of
    each pattern at ``keys`` keys per row.  ``gate`` (a trained :class:`SeerGate`) and ``centroids``
    (routing) are fitted on ``train_x`` when not given."""
    L, H = x.shape[1], model.heads
    rows = torch.arange(L - cfg.recall.pairs, L)
    view = _rows_view(model, x, rows)
    s, attn, q, k = view["s"], view["attn"], view["q"], view["k"]
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in which:
        if name == "local":
            m = K.local_mask(L, keys)[rows].expand(H, -1, -1)
        elif name == "strided":
            m = (K.strided_mask(L, max(1, L // keys)) | torch.eye(L, dtype=torch.bool))[rows].expand(H, -1, -1)
        elif name == "random":
            m = K.random_mask(L, keys, H, generator=g)[:, rows]
        elif name == "s2":
            m = K.s2_mask(L, H, max(1, L // keys), block=1, local_blocks=1)[:, rows]
        elif name == "oracle":
            m = K.topk_mask(s, keys, rows)
        elif name == "sparsifiner":
            d = model.qkv.weight.shape[1]
            wq, wk = model.qkv.weight[:d], model.qkv.weight[d:2 * d]
            dh = d // H
            z = model.ln1(view["h"])
            preds = []
            for hh in range(H):
                P, R = K.lowrank_factors(wq[hh * dh:(hh + 1) * dh].T, wk[hh * dh:(hh + 1) * dh].T, cfg.rank)
                preds.append((z[:, rows] @ P) @ (z @ R).transpose(-1, -2))
            m = K.topk_mask(torch.stack(preds, 1), keys, rows)
        elif name == "routing":
            # a query may join several clusters, so each cluster takes half the budget (the measured density
            # stays at or below the static patterns')
            half = max(1, keys // 2)
            cents = centroids if centroids is not None else _fit_centroids(model, train_x, max(1, L // half), cfg, seed)
            m = routing_pattern(q, k, cents, half)[..., rows, :]
        elif name in ("seer", "seer_oracle"):
            if name == "seer":
                gate = gate if gate is not None else _fit_gate(model, train_x, cfg, seed)
                bs = gate(q, k)
            else:
                bs = K.block_ground_truth(K.masked_softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]),
                                                          K.causal_mask(L).to(q.device)), cfg.block)
            m = K.expand_blocks(K.topk_blocks(bs, max(1, keys // cfg.block)), cfg.block)[..., rows, :]
        elif name == "block_local":
            nb = L // cfg.block
            m = K.expand_blocks(K.local_mask(nb, max(1, keys // cfg.block)), cfg.block)[rows].expand(H, -1, -1)
        else:
            raise ValueError(f"unknown pattern {name!r}")
        m = m.to(attn.device).expand_as(attn)
        dens = float((m.sum(-1).double() / (rows.to(m.device) + 1)).mean())
        out[name] = {"mass": float(K.mass_recall(attn, m).mean()), "top1": float(K.top1_recall(attn, m).double().mean()),
                     "acc": rows_accuracy(model, view, y, mask=m), "density": dens}
    return out


@torch.no_grad()
def _fit_centroids(model, train_x, clusters, cfg: PatternConfig, seed: int):
    _, th, _ = model.logits(train_x)
    tq, tk, _ = model.qkv_heads(th)
    return fit_routing(tq, tk, clusters, cfg.kmeans_steps, seed)


def _fit_gate(model, train_x, cfg: PatternConfig, seed: int):
    with torch.no_grad():
        tsc, th, _ = model.logits(train_x)
        tq, tk, _ = model.qkv_heads(th)
        attn = K.masked_softmax(tsc, K.causal_mask(train_x.shape[1]).to(tsc.device))
    gate = train_seer_gate(tq, tk, attn, cfg, seed)
    return gate.requires_grad_(False)


@torch.no_grad()
def evaluate_combiner(model: RecallNet, x, y, cfg: PatternConfig) -> dict:
    """Combiner-Fixed (region size ``b``) against the local pattern of the same cost
    (``b + L/b`` keys per row): total variation from full attention on the query rows, and accuracy."""
    L, b = x.shape[1], cfg.combiner_block
    rows = torch.arange(L - cfg.recall.pairs, L)
    view = _rows_view(model, x, rows)
    s, _, _ = model.logits(x)
    comb = K.combiner_attention(s, b)
    causal = K.causal_mask(L).to(x.device)
    loc_mask = K.local_mask(L, b + L // b)[rows].to(x.device)
    loc = K.masked_softmax(view["s"], loc_mask)
    tv = lambda a: float(K.total_variation(a, view["attn"]).mean())
    return {"tv_combiner": tv(comb[..., rows, :]), "tv_local": tv(loc),
            "acc_combiner": rows_accuracy(model, view, y, attn=comb[..., rows, :]),
            "acc_local": rows_accuracy(model, view, y, mask=loc_mask), "acc_dense": rows_accuracy(model, view, y),
            "rows_sum_to_one": bool(torch.allclose(comb.sum(-1), torch.ones((), device=comb.device), atol=1e-5)),
            "full_support": bool((comb[..., causal] > 0).all() and (comb[..., ~causal] == 0).all())}


@functools.lru_cache(maxsize=4)
def _content_fits(config: PatternConfig, seed: int) -> list[dict]:
    """Per seed, the SeerAttention gate and the routing centroids (one set per budget) fitted on the trained
    dense model's queries and keys of global training sequences (cached: imposed and trained runs share them)."""
    cfg = config.recall
    seeds = _seeds(seed, cfg.scale)
    tx, _ = _test_data(cfg, 256, 30_000 + seed)
    out = []
    for j, model in enumerate(train_dense(cfg, seed)):
        seed_everything(seeds[j])
        gate = _fit_gate(model, tx, config, seeds[j])
        cents = {kb: _fit_centroids(model, tx, max(1, cfg.L // max(1, kb // 2)), config, seeds[j])
                 for kb in set(config.budgets) | {cfg.keys}}
        out.append({"gate": gate, "centroids": cents})
    return out


def run_patterns(config: PatternConfig, seed: int = 0) -> dict:
    """Train the dense model (one per seed, on the global task), then impose every pattern at the
    equal-density budget ``config.recall.keys`` on both tasks, and sweep the budget on the global task.
    Routing centroids and the SeerAttention gate are fitted once per seed on global training sequences.
    Returns per-seed arrays ``out[task][pattern][measure]`` (shape ``[K]``),
    ``out["sweep"][pattern][measure]`` (shape ``[K, budgets]``) and Combiner's ``out["combiner"]``."""
    cfg = config.recall
    seeds = _seeds(seed, cfg.scale)
    L = cfg.L
    out = {"seeds": seeds, "budgets": tuple(config.budgets)}
    main_which = STATIC + CONTENT + ("seer_oracle", "block_local")
    sweep_which = ("local", "strided", "random", "routing", "sparsifiner", "oracle")
    measures = ("mass", "top1", "acc", "density")
    models = train_dense(cfg, seed)
    tx, _ = _test_data(cfg, 256, 30_000 + seed)
    data = {task: _test_data(cfg, cfg.n_test, 20_000 + seed, local=local) for task, local in (("global", False), ("local", True))}
    acc = {task: {name: {m: [] for m in measures} for name in main_which} for task in data}
    sw = {name: {m: [] for m in measures} for name in sweep_which}
    dense_acc = {task: [] for task in data}
    comb = []
    fits = _content_fits(config, seed)
    for j, model in enumerate(models):
        gate, cents = fits[j]["gate"], fits[j]["centroids"]
        for task, (x, y) in data.items():
            dense_acc[task].append(accuracy(model, x, y))
            r = evaluate_patterns(model, x, y, tx, config, cfg.keys, seeds[j], main_which, gate, cents[cfg.keys])
            for name in main_which:
                for m in measures:
                    acc[task][name][m].append(r[name][m])
        x, y = data["global"]
        per = [evaluate_patterns(model, x, y, tx, config, kb, seeds[j], sweep_which, gate, cents[kb])
               for kb in config.budgets]
        for name in sweep_which:
            for m in measures:
                sw[name][m].append([p[name][m] for p in per])
        comb.append(evaluate_combiner(model, x, y, config))
    for task in data:
        out[task] = {name: {m: np.array(v) for m, v in d.items()} for name, d in acc[task].items()}
        out[task]["dense"] = {"acc": np.array(dense_acc[task])}
    out["sweep"] = {name: {m: np.array(v) for m, v in d.items()} for name, d in sw.items()}
    out["combiner"] = {k: np.array([c[k] for c in comb]) for k in comb[0]}
    return out


@dataclass(frozen=True)
class SparsifinerConfig:
    """Sparsifiner trained with its mask (Wei et al. 2023, Sec. 3): starting from the trained dense model, the
    model and a rank-``rank`` connectivity predictor (initialised at the head's truncated SVD, i.e. at the
    imposed predictor) are fine-tuned jointly for ``steps`` steps with the top-``keys`` mask applied and the
    predictor distilled from the dense attention (``distill`` weighs the KL term); learning rate ``lr``."""

    recall: RecallConfig = RecallConfig()
    keys: int = 16
    rank: int = 2
    steps: int = 50
    lr: float = 3e-3
    distill: float = 1.0

    @classmethod
    def preset(cls, scale: str) -> "SparsifinerConfig":
        r = RecallConfig.preset(scale)
        return cls(recall=r) if check_scale(scale) == "ci" else cls(recall=r, keys=64, rank=4, steps=150)


def svd_predictor(params: dict, heads: int, rank: int) -> dict:
    """Per-seed predictor factors ``pred_p, pred_r`` ``[K, H, d, rank]`` from the stacked dense weights
    (:func:`~.kernels.lowrank_factors` of each head's ``W_q W_kᵀ``)."""
    w = params["qkv.weight"].cpu()
    K_, d = w.shape[0], w.shape[-1]
    dh = d // heads
    P, R = torch.zeros(K_, heads, d, rank), torch.zeros(K_, heads, d, rank)
    for j in range(K_):
        for h in range(heads):
            P[j, h], R[j, h] = K.lowrank_factors(w[j, h * dh:(h + 1) * dh].T, w[j, d + h * dh:d + (h + 1) * dh].T, rank)
    return {"pred_p": P, "pred_r": R}


def run_sparsifiner(config: SparsifinerConfig, seed: int = 0) -> dict:
    """Accuracy (global task, per seed) of the dense model with the SVD predictor's mask imposed (step 0 of
    the joint training) and after fine-tuning model and predictor with the mask, and of the dense model."""
    cfg = config.recall
    seeds = _seeds(seed, cfg.scale)
    x, y = _test_data(cfg, cfg.n_test, 20_000 + seed)
    dense = _dense_cached(cfg, seed, False)["params"]
    init = {**dense, **svd_predictor(dense, cfg.heads, config.rank)}
    kw = {"keys": config.keys, "rank": config.rank}
    imposed = members(cfg, {"params": init}, "sparsifiner", **kw)
    seed_everything(seeds[0])
    fit = _train(replace(cfg, lr=config.lr), seeds, "sparsifiner", steps=config.steps, init=init,
                 gate_weight=config.distill, data_seed=60_000, model_kw=kw)
    return {"imposed": np.array([accuracy(m, x, y) for m in imposed]),
            "trained": np.array([accuracy(m, x, y) for m in members(cfg, fit, "sparsifiner", **kw)]),
            "dense": np.array([accuracy(m, x, y) for m in members(cfg, {"params": dense})])}


@dataclass(frozen=True)
class TrainedPatternConfig:
    """Routing and SeerAttention trained with their patterns: from the trained dense model, the model and the
    pattern's own parameters (routing centroids; the gate) are fine-tuned jointly for ``steps`` steps at learning
    rate ``lr`` with the pattern applied in the forward pass, at the chapter's equal budget ``recall.keys``; the
    centroids follow the k-means objective and the gate its distillation against the block-pooled dense attention
    (weight ``aux``).  Both start at the imposed pattern (the fitted centroids and gate of :func:`run_patterns`)
    and are compared with the local window and the local block pattern of the same density, fine-tuned alike."""

    patterns: PatternConfig = PatternConfig()
    steps: int = 40
    lr: float = 3e-3
    aux: float = 1.0

    @classmethod
    def preset(cls, scale: str) -> "TrainedPatternConfig":
        p = PatternConfig.preset(check_scale(scale))
        return cls(patterns=p) if scale == "ci" else cls(patterns=p, steps=120)  # full: 3x the steps

    def model_kw(self) -> dict:
        """Mode and keyword arguments of :class:`RecallNet` for each pattern at the budget."""
        pc = self.patterns
        L, keys = pc.recall.L, pc.recall.keys
        half = max(1, keys // 2)  # as imposed: a query may join several clusters
        nb = max(1, keys // pc.block)
        return {"routing": ("routing", None, {"clusters": max(1, L // half), "cluster_size": half}),
                "seer": ("seer", None, {"block": pc.block, "blocks": nb, "gate_dim": pc.gate_dim}),
                "local": ("pattern", K.local_mask(L, keys), {}),
                "block_local": ("pattern", K.expand_blocks(K.local_mask(L // pc.block, nb), pc.block), {})}


@torch.no_grad()
def routing_density(model: RecallNet, x, rows) -> float:
    """Mean kept fraction of the causal keys at ``rows`` of a ``routing``-mode model's pattern on ``x``."""
    q, k, _ = model.qkv_heads(model.embed(x))
    m = routing_pattern(q, k, model.centroids, model.cluster_size)[..., rows, :]
    return float((m.sum(-1).double() / (rows + 1)).mean())


def run_trained_patterns(config: TrainedPatternConfig, seed: int = 0) -> dict:
    """Accuracy on the global task (per seed, the test set of :func:`run_patterns`) of routing, the SeerAttention
    gate, the local window and local blocks, each imposed on the dense model (step 0) and after fine-tuning model
    and pattern jointly; the routing pattern's density before and after; the dense model's accuracy."""
    pc = config.patterns
    cfg = pc.recall
    seeds = _seeds(seed, cfg.scale)
    x, y = _test_data(cfg, cfg.n_test, 20_000 + seed)
    rows = torch.arange(cfg.L - cfg.pairs, cfg.L)
    dense = _dense_cached(cfg, seed, False)["params"]
    fits = _content_fits(pc, seed)
    own = {"routing": {"centroids": torch.stack([f["centroids"][cfg.keys] for f in fits])},
           "seer": {"seer.wq": torch.stack([f["gate"].wq for f in fits]),
                    "seer.wk": torch.stack([f["gate"].wk for f in fits])}}
    dev = _device(cfg.scale)
    xd, yd = x, y
    out = {"dense": np.array([accuracy(m, xd, yd) for m in members(cfg, {"params": dense})])}
    for name, (mode, pattern, kw) in config.model_kw().items():
        init = {**dense, **own.get(name, {})}
        seed_everything(seeds[0])
        fit = _train(replace(cfg, lr=config.lr), seeds, mode, pattern=pattern, steps=config.steps, init=init,
                     gate_weight=config.aux, data_seed=80_000, model_kw=kw)
        res = {}
        for when, params in (("imposed", init), ("trained", fit["params"])):
            ms = members(cfg, {"params": params}, mode, pattern, **kw)  # on the device
            res[when] = np.array([accuracy(m, xd, yd) for m in ms])
            if name == "routing":
                res["density_" + when] = np.array([routing_density(m, xd, rows.to(dev)) for m in ms])
        out[name] = res
    return out


@dataclass(frozen=True)
class ScratchConfig:
    """Routing trained from scratch with its pattern, as the Routing Transformer is (Roy et al. 2021, Sec. 4-5),
    against the local window and a random pattern (one draw per head, fixed in training) trained from scratch at
    the same budget ``recall.keys`` keys per query, and the chapter's dense model (also trained from scratch); all
    for ``recall.steps`` steps on the same data, seeds and learning rate.  Routing: fresh random centroids per
    head, each taking ``keys/2`` queries and keys (as imposed, so its density stays at or below the local
    window's), moved by the spherical k-means objective with weight ``aux`` (the gradient form of the online
    k-means update; the paper updates them by an exponential moving average)."""

    recall: RecallConfig = RecallConfig()
    aux: float = 1.0

    @classmethod
    def preset(cls, scale: str) -> "ScratchConfig":
        return cls(recall=RecallConfig.preset(check_scale(scale)))

    def model_kw(self, seed: int) -> dict:
        """Mode, pattern and keyword arguments of :class:`RecallNet` for each pattern trained from scratch."""
        c = self.recall
        half = max(1, c.keys // 2)
        rnd = K.random_mask(c.L, c.keys, c.heads, generator=torch.Generator().manual_seed(90_000 + seed))
        return {"routing": ("routing", None, {"clusters": max(1, c.L // half), "cluster_size": half}),
                "local": ("pattern", K.local_mask(c.L, c.keys), {}),
                "random": ("pattern", rnd, {})}


@torch.no_grad()
def pair_coverage(mask: torch.Tensor, x: torch.Tensor, rows: torch.Tensor, n_values: int) -> float:
    """Fraction of the queries at ``rows`` whose key-value pair is kept by at least one head (S2's coverage,
    measured on the task): ``mask`` ``[n or 1, H, R, L]`` (the query rows' patterns), ``x`` ``[n, L, 3]``."""
    pair = (x[:, None, :, 0] == x[:, rows, 0][:, :, None]) & (x[:, None, :, 1] < n_values)  # [n, R, L]
    pair = pair & (torch.arange(x.shape[1], device=x.device)[None, None, :] < rows.min())  # the pair, not the query
    return float((mask.any(1) & pair).any(-1).double().mean())


@torch.no_grad()
def _pattern_rows(model: RecallNet, x, rows) -> torch.Tensor:
    """The mask ``[n or 1, H, R, L]`` a ``pattern``- or ``routing``-mode model applies at the query rows of ``x``."""
    causal = K.causal_mask(x.shape[1]).to(x.device)
    if model.mode == "routing":
        q, k, _ = model.qkv_heads(model.embed(x))
        m = K.routing_mask(q, k, model.centroids, model.cluster_size)
    else:
        m = (model.pattern & causal).expand(1, -1, -1, -1) if model.pattern.ndim == 3 else (model.pattern & causal)[None, None]
    return m[..., rows, :]


def run_scratch(config: ScratchConfig, seed: int = 0) -> dict:
    """Accuracy on the global task (per seed, the test set of :func:`run_patterns`) of models trained from scratch
    with routing, the local window and the random pattern, and of the dense model; per pattern the density of the
    query rows and the pair coverage (:func:`pair_coverage`) of the trained model's pattern."""
    cfg = config.recall
    seeds = _seeds(seed, cfg.scale)
    x, y = _test_data(cfg, cfg.n_test, 20_000 + seed)
    rows = torch.arange(cfg.L - cfg.pairs, cfg.L, device=x.device)
    out = {"dense": np.array([accuracy(m, x, y) for m in train_dense(cfg, seed)]),
           "dense_loss": np.asarray(_dense_cached(cfg, seed, False)["loss"])}
    for name, (mode, pattern, kw) in config.model_kw(seed).items():
        seed_everything(seeds[0])
        fit = _train(cfg, seeds, mode, pattern=pattern, gate_weight=config.aux, model_kw=kw)
        ms = members(cfg, fit, mode, pattern, **kw)
        out[name] = np.array([accuracy(m, x, y) for m in ms])
        masks = [_pattern_rows(m, x, rows) for m in ms]
        out[name + "_density"] = np.array([float((mk.sum(-1).double() / (rows + 1)).mean()) for mk in masks])
        out[name + "_coverage"] = np.array([pair_coverage(mk, x, rows, cfg.n_values) for mk in masks])
        out[name + "_loss"] = np.asarray(fit["loss"])
    return out


# ---------------------------------------------------------------------------
# training with a pattern: S2 shards, sub-sampled training, SeqBoat, LeMo
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class S2Config:
    """From-scratch training with S2's heterogeneous shards against a homogeneous stride of equal density
    (``stride`` = heads, so that the heterogeneous union covers the context)."""

    recall: RecallConfig = RecallConfig()
    stride: int = 4
    block: int = 1
    local_blocks: int = 1

    @classmethod
    def preset(cls, scale: str) -> "S2Config":
        r = RecallConfig.preset(scale)
        return cls(recall=r) if scale == "ci" else cls(recall=r, stride=8, block=4, local_blocks=1)

    def masks(self):
        c = self.recall
        return {h: K.s2_mask(c.L, c.heads, self.stride, self.block, self.local_blocks, heterogeneous=h)
                for h in (True, False)}


def run_s2(config: S2Config, seed: int = 0) -> dict:
    """Accuracy of models trained from scratch with heterogeneous and with homogeneous shards (per seed),
    their union coverage and density (exact), and the dense model's accuracy."""
    cfg = config.recall
    seeds = _seeds(seed, cfg.scale)
    x, y = _test_data(cfg, cfg.n_test, 20_000 + seed)
    out = {"dense": np.array([accuracy(m, x, y) for m in train_dense(cfg, seed)])}
    for het, mask in config.masks().items():
        name = "heterogeneous" if het else "homogeneous"
        seed_everything(seeds[0])
        fit = _train(cfg, seeds, "pattern", pattern=mask)
        out[name] = np.array([accuracy(m, x, y) for m in members(cfg, fit, "pattern", mask)])
        out[name + "_coverage"] = K.union_coverage(mask)
        out[name + "_density"] = K.density(mask)
    return out


@dataclass(frozen=True)
class PathwaysConfig:
    """Stochastically sub-sampled training (keep probability ``keep``) for ``1 - finetune`` of the steps, then
    dense fine-tuning, against dense training for the same total number of steps."""

    recall: RecallConfig = RecallConfig()
    keep: float = 0.25
    finetune: float = 0.2
    ensemble: int = 16

    @classmethod
    def preset(cls, scale: str) -> "PathwaysConfig":
        return cls(recall=RecallConfig.preset(scale))

    def step_split(self):
        t = self.recall.steps
        ft = max(1, int(round(self.finetune * t)))
        return t - ft, ft

    def attention_cost(self) -> float:
        """Training attention cost relative to dense training: ``(T₁·keep + T₂)/(T₁ + T₂)`` (expected
        fraction of score entries; causal structure the same in both)."""
        t1, t2 = self.step_split()
        return (t1 * self.keep + t2) / (t1 + t2)


def run_pathways(config: PathwaysConfig, seed: int = 0) -> dict:
    """Test accuracy and loss of SSA training + dense fine-tuning, of SSA alone, and of dense training."""
    cfg = config.recall
    seeds = _seeds(seed, cfg.scale)
    x, y = _test_data(cfg, cfg.n_test, 20_000 + seed)
    t1, t2 = config.step_split()
    seed_everything(seeds[0])
    ssa = _train(cfg, seeds, "ssa", keep=config.keep, steps=t1)
    ssa_models = members(cfg, ssa)  # evaluated dense (mode "dense"), as the paper evaluates
    seed_everything(seeds[0])
    ft = _train(cfg, seeds, "dense", steps=t2, init=ssa["params"], data_seed=40_000)
    dense = train_dense(cfg, seed)
    return {"ssa_ft": np.array([accuracy(m, x, y) for m in members(cfg, ft)]),
            "ssa": np.array([accuracy(m, x, y) for m in ssa_models]),
            "dense": np.array([accuracy(m, x, y) for m in dense]),
            "loss_ssa_ft": np.array([test_loss(m, x, y) for m in members(cfg, ft)]),
            "loss_dense": np.array([test_loss(m, x, y) for m in dense]),
            "ssa_ensemble": np.array([subsample_ensemble_accuracy(m, x, y, config.keep, config.ensemble, seed + 70_000)
                                      for m in members(cfg, ssa, "ssa")]),
            "cost": config.attention_cost()}


@torch.no_grad()
def subsample_ensemble_accuracy(model: RecallNet, x, y, keep: float, samples: int, seed: int) -> float:
    """Information Pathways' sub-model ensemble at inference (Hussain et al. 2023, Sec. 4): the model is run
    ``samples`` times with keys sub-sampled as in training (each kept with probability ``keep``, fresh draws
    from ``seed``), and the softmax outputs are averaged; accuracy of the averaged prediction at the queries."""
    samples = check_int(samples, "samples", 1)
    g = torch.Generator().manual_seed(seed)
    probs = 0.0
    for _ in range(samples):
        xs = x.clone()
        xs[..., 2] = K.subsample_keys(x.shape[1], keep, x.shape[0], generator=g).long().to(x.device)
        probs = probs + torch.softmax(model(xs), -1)
    q = y != IGNORE
    return float(((probs / samples).argmax(-1)[q] == y[q]).double().mean())


@dataclass(frozen=True)
class SeqBoatConfig:
    """Sparse Modular Activation trained from scratch; ``gate_weight`` penalises the mean gate value."""

    recall: RecallConfig = RecallConfig()
    gate_weight: float = 0.0

    @classmethod
    def preset(cls, scale: str) -> "SeqBoatConfig":
        return cls(recall=RecallConfig.preset(scale))


@torch.no_grad()
def active_fraction(model: RecallNet, x) -> float:
    """Fraction of tokens whose gate activates attention (``g_t > 1/2``)."""
    h = model.embed(x)
    return float((torch.sigmoid(model.gate(model.ln2(h))) > 0.5).double().mean())


def run_seqboat(config: SeqBoatConfig, seed: int = 0) -> dict:
    cfg = config.recall
    seeds = _seeds(seed, cfg.scale)
    x, y = _test_data(cfg, cfg.n_test, 20_000 + seed)
    seed_everything(seeds[0])
    fit = _train(cfg, seeds, "seqboat", gate_weight=config.gate_weight)
    ms = members(cfg, fit, "seqboat")
    return {"seqboat": np.array([accuracy(m, x, y) for m in ms]),
            "active": np.array([active_fraction(m, x) for m in ms]),
            "needed": 2 * cfg.pairs / cfg.L,
            "dense": np.array([accuracy(m, x, y) for m in train_dense(cfg, seed)])}


@dataclass(frozen=True)
class LeMoConfig:
    """Fine-tuning the trained dense model on longer sequences (``L_ft``), with LeMo's token elimination
    keeping ``keep`` of the tokens as keys/values, against full fine-tuning; ``batch`` sequences per step
    (``None``: the recall model's)."""

    recall: RecallConfig = RecallConfig()
    L_ft: int = 128
    keep: float = 0.5
    steps: int = 40
    batch: int | None = None

    @classmethod
    def preset(cls, scale: str) -> "LeMoConfig":
        r = RecallConfig.preset(scale)
        return cls(recall=r) if scale == "ci" else cls(recall=r, L_ft=512, steps=120, batch=64)  # full: 2x L, 3x the steps

    def memory_ratio(self) -> dict:
        """Activation memory of the attention with elimination over without: values/outputs scale with the
        kept keys (``keep``), the score matrix with ``keep`` as well (queries stay, keys go)."""
        return {"kv": self.keep, "scores": self.keep}


def run_lemo(config: LeMoConfig, seed: int = 0) -> dict:
    cfg = config.recall
    seeds = _seeds(seed, cfg.scale)
    Lf = config.L_ft
    x, y = _test_data(cfg, cfg.n_test, 20_000 + seed, L=Lf)
    init = _dense_cached(cfg, seed, False)["params"]
    out = {}
    for name, mode, kt in (("full", "dense", None), ("lemo", "lemo", int(round(config.keep * Lf)))):
        seed_everything(seeds[0])
        fit = _train(replace(cfg, batch=config.batch or cfg.batch), seeds, mode, steps=config.steps, init=init,
                     keep_tokens=kt, L=Lf, data_seed=50_000)
        ms = members(cfg, fit, "dense", L=Lf)
        out[name + "_loss"] = np.array([test_loss(m, x, y) for m in ms])
        out[name + "_acc"] = np.array([accuracy(m, x, y) for m in ms])
    before = members(cfg, {"params": init}, "dense", L=Lf)
    out["before_loss"] = np.array([test_loss(m, x, y) for m in before])
    # how many of the pairs the elimination keeps (queries always kept)
    lm = cfg.model("lemo", keep_tokens=int(round(config.keep * Lf)), L=Lf).to(_device(cfg.scale))
    kept_pairs = []
    for j in range(len(seeds)):
        lm.load_state_dict({k: v[j].cpu() for k, v in init.items()}, strict=False)
        with torch.no_grad():
            sc = K.informativeness(lm.embed(x)).masked_fill(x[..., 1] == lm.query_symbol, float("inf"))
            kept = K.keep_top(sc, int(round(config.keep * Lf)))
        pair = (x[..., 1] < cfg.n_values)
        kept_pairs.append(float((kept & pair).sum()) / float(pair.sum()))
    out["pairs_kept"] = np.array(kept_pairs)
    return out


# ---------------------------------------------------------------------------
# cost
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CostConfig:
    """Analytic cost against ``lengths`` (``keys = √L``, Combiner's region ``√L``); CPU wall-clock of a
    block-sparse gather kernel against unfused dense attention (and dense with a mask) at ``timed``."""

    lengths: tuple = (256, 512, 1024, 2048, 4096, 8192, 16384)
    timed: tuple = (256, 512, 1024, 2048)
    d_head: int = 64
    block: int = 32
    repeats: int = 3

    @classmethod
    def preset(cls, scale: str) -> "CostConfig":
        return cls() if check_scale(scale) == "ci" else cls(timed=(256, 512, 1024, 2048, 4096), repeats=7)


def analytic_costs(config: CostConfig) -> dict:
    """FLOPs and stored entries of every pattern at each length (exact formulas, :func:`~.kernels.attention_cost`)."""
    out = {}
    for p in K.PATTERNS:
        rows = [K.attention_cost(p, L, config.d_head, keys=None if p == "dense" else int(math.isqrt(L)))
                for L in config.lengths]
        out[p] = {m: np.array([r[m] for r in rows]) for m in ("flops", "memory")}
    return out


def run_wallclock(config: CostConfig, seed: int = 0) -> dict:
    """Seconds per call (each repeat) of dense, masked dense and block-gathered attention with
    ``√L/block``-ish kept blocks (at least 1) per query block, and the log-log slope of each repeat."""
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    res = {k: np.zeros((config.repeats, len(config.timed))) for k in ("dense", "masked", "block")}
    for j, L in enumerate(config.timed):
        q, k, v = (torch.randn(L, config.d_head, generator=g) for _ in range(3))
        n = L // config.block
        m_blocks = max(1, int(round(math.sqrt(L) / config.block)) + 1)
        idx = torch.stack([torch.arange(a - m_blocks + 1, a + 1).clamp_min(0) for a in range(n)])
        mask = K.expand_blocks(K.local_mask(n, m_blocks), config.block)
        fns = {"dense": lambda: K.dense_attention(q, k, v), "masked": lambda: K.dense_attention(q, k, v, mask),
               "block": lambda: K.block_gather_attention(q, k, v, idx, config.block)}
        for name, fn in fns.items():
            fn()
            for r in range(config.repeats):
                t0 = time.perf_counter()
                fn()
                res[name][r, j] = time.perf_counter() - t0
    res["slopes"] = {name: np.array([K.loglog_slope(config.timed, res[name][r]) for r in range(config.repeats)])
                     for name in ("dense", "masked", "block")}
    return res


# ---------------------------------------------------------------------------
# two-hop recall: the induction-head task
# ---------------------------------------------------------------------------
def induction_task(n: int, copy: int, symbols: int = 16, gap: int = 8, noise: int = 4,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-hop recall that needs an induction head: ``copy`` distinct symbols (of ``symbols``), a run of noise
    tokens of random length in ``[0, gap]``, the same symbols again, noise to the end (``L = 2·copy + gap``).
    Inside the second copy the target at each token is the symbol that *followed* that token's earlier
    occurrence (the next symbol of the copy); the random gap makes the offset between the copies vary, so no
    fixed position rule finds it: the model must match the current token with its earlier occurrence and read
    the token after it (previous-token head, then induction head).  Returns ``x`` ``[n, L]`` and ``y``
    ``[n, L]`` (``IGNORE`` where there is no target)."""
    n = check_int(n, "n", 1)
    copy = check_int(copy, "copy", 2, symbols)
    gap = check_int(gap, "gap", 0)
    noise = check_int(noise, "noise", 1)
    rng = np.random.default_rng(seed)
    L = 2 * copy + gap
    a = np.argsort(rng.random((n, symbols)), axis=1)[:, :copy]
    g = rng.integers(0, gap + 1, size=n)
    x = rng.integers(symbols, symbols + noise, size=(n, L))
    y = np.full((n, L), IGNORE)
    rows = np.arange(n)[:, None]
    x[:, :copy] = a
    second = copy + g[:, None] + np.arange(copy)[None, :]
    x[rows, second] = a
    y[rows, second[:, :-1]] = a[:, 1:]
    return torch.as_tensor(x), torch.as_tensor(y)


class InductionNet(nn.Module):
    """Two pre-LayerNorm causal attention layers (no MLP) with learned positions and a linear head: the smallest
    model that forms an induction circuit.  ``forward(x, pattern=None)``: ``pattern(layer, q, k)`` returns the
    boolean mask ``[.., H, L, L]`` of that layer (intersected with causal), computed from the layer's own queries
    and keys in the masked forward pass (so content-based patterns see what the sparse model computes).

    Trained with a pattern: ``mask`` (``[L, L]`` or ``[H, L, L]``, every layer) is applied when no ``pattern`` is
    given; with ``clusters`` and ``cluster_size`` each layer routes (per-head centroids ``[layers, H, C, d_h]``,
    :func:`~.kernels.routing_mask` of the detached queries and keys, as in :class:`RecallNet`'s ``routing`` mode)
    and ``forward`` returns ``(logits, J)`` with ``J`` the layers' mean spherical k-means objective."""

    def __init__(self, vocab: int, L: int, d: int = 32, heads: int = 2, layers: int = 2,
                 mask: torch.Tensor | None = None, clusters: int | None = None, cluster_size: int | None = None):
        super().__init__()
        if d % heads:
            raise ValueError(f"d must be divisible by heads; got {d} and {heads}")
        self.heads, self.layers = heads, check_int(layers, "layers", 1)
        self.emb, self.pos = nn.Embedding(vocab, d), nn.Parameter(0.1 * torch.randn(L, d))
        self.ln = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers + 1))
        self.qkv = nn.ModuleList(nn.Linear(d, 3 * d) for _ in range(layers))
        self.out = nn.ModuleList(nn.Linear(d, d) for _ in range(layers))
        self.head = nn.Linear(d, vocab)
        self.routing = clusters is not None
        if self.routing:  # created last: a dense model draws the same initial weights as before
            self.cluster_size = check_int(cluster_size, "cluster_size", 1, L)
            self.centroids = nn.Parameter(torch.randn(layers, heads, check_int(clusters, "clusters", 1), d // heads))
        self.register_buffer("mask", mask if mask is not None else K.causal_mask(L), persistent=False)

    def forward(self, x, pattern=None):
        n, L = x.shape
        h = self.emb(x) + self.pos[:L]
        causal = K.causal_mask(L).to(x.device)
        aux = []
        for i in range(self.layers):
            q, k, v = self.qkv[i](self.ln[i](h)).view(n, L, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            if pattern is not None:
                mask = pattern(i, q, k) & causal
            elif self.routing:
                qd, kd, c = q.detach(), k.detach(), self.centroids[i]
                mask = K.routing_mask(qd, kd, c.detach(), self.cluster_size) & causal
                z = F.normalize(torch.cat([qd, kd], -2), dim=-1)
                aux.append((1 - (z @ F.normalize(c, dim=-1).transpose(-1, -2)).amax(-1)).mean())
            else:
                mask = self.mask[..., :L, :L] & causal
            # explicit softmax(q kᵀ/√d_h | M) v: batches natively under vmap (the fused kernel runs member by member)
            o = K.masked_softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), mask) @ v
            h = h + self.out[i](o.transpose(1, 2).reshape(h.shape))
        logits = self.head(self.ln[-1](h))
        return (logits, torch.stack(aux).mean()) if aux else logits

    @torch.no_grad()
    def qk(self, x, layer: int, pattern=None):
        """Queries and keys ``[n, H, L, d_h]`` of ``layer`` in the (masked) forward pass."""
        got = {}

        def spy(i, q, k):
            if i == layer:
                got["qk"] = (q, k)
            return pattern(i, q, k) if pattern is not None else K.causal_mask(q.shape[-2]).to(q.device)

        self(x, spy)
        return got["qk"]


@dataclass(frozen=True)
class InductionConfig:
    """The induction task and its two-layer model, trained densely with the standard remedies for the plateau
    before induction heads form: a small vocabulary (``symbols``), short sequences (``copy``, ``gap``), a high
    learning rate ``lr`` after ``warmup`` steps of linear warm-up.  ``keys``: the equal budget of the patterns
    imposed afterwards (both layers); ``plateau``: the training loss (nats) below which the plateau counts as
    left (half of ``ln(symbols)``)."""

    symbols: int = 16
    copy: int = 4
    gap: int = 4
    d: int = 32
    heads: int = 2
    steps: int = 150
    lr: float = 1e-2
    warmup: int = 50
    batch: int = 32
    n_train: int = 8192
    n_test: int = 512
    keys: int = 4
    kmeans_steps: int = 20
    scale: str = "ci"

    @classmethod
    def preset(cls, scale: str) -> "InductionConfig":
        scale = check_scale(scale)
        if scale == "ci":
            return cls()
        # full: 3x the steps, 2x the width, 4x the batch, 8x the test set; the same short copies (the plateau)
        return cls(symbols=16, copy=4, gap=4, d=64, heads=2, steps=450, lr=1e-2, warmup=50, batch=128,
                   n_train=65536, n_test=4096, keys=4, scale="full")

    @property
    def L(self) -> int:
        return 2 * self.copy + self.gap

    def data(self, n, seed):
        return induction_task(n, self.copy, self.symbols, self.gap, seed=seed)

    def model(self, **kw):
        return InductionNet(self.symbols + 4, self.L, self.d, self.heads, **kw)


def induction_patterns(cfg: InductionConfig, model: InductionNet, train_x, seed: int) -> dict:
    """Per pattern, a function ``(layer, q, k) -> mask`` at ``cfg.keys`` keys per row (both layers): local
    window, strided (with the token itself), random per head, and balanced routing (each centroid takes
    ``keys/2`` queries and keys, as in the one-layer runs) with centroids fitted per layer on the dense model's
    queries and keys."""
    L, H, keys = cfg.L, cfg.heads, cfg.keys
    g = torch.Generator().manual_seed(seed)
    fixed = {"local": K.local_mask(L, keys), "strided": K.strided_mask(L, max(1, L // keys)) | torch.eye(L, dtype=torch.bool),
             "random": K.random_mask(L, keys, H, generator=g)}
    half = max(1, keys // 2)
    cents = []
    for layer in range(model.layers):
        q, k = model.qk(train_x, layer)
        cents.append(fit_routing(q, k, max(1, L // half), cfg.kmeans_steps, seed + layer))
    out = {name: (lambda m: lambda i, q, k: m.to(q.device))(m) for name, m in fixed.items()}
    out["routing"] = lambda i, q, k: routing_pattern(q, k, cents[i], half)
    return out


INDUCTION_PATTERNS = ("local", "strided", "random", "routing")


def run_induction(config: InductionConfig, seed: int = 0) -> dict:
    """Train the two-layer model densely on the induction task (``N_SEEDS`` seeds, one batched computation),
    then impose each pattern on both layers.  Returns per-seed test accuracy of the dense model and of each
    pattern, each pattern's density (mean over layers, heads and rows: kept / causal keys), the training loss ``[steps, K]`` and the first step at which each seed's loss (mean of a 10-step
    window) falls below half of ``ln(symbols)`` (``steps`` if never)."""
    seeds = _seeds(seed, config.scale)
    dev = _device(config.scale)
    x, y = config.data(config.n_train, 10_000 + seed)
    tx, ty = (t.to(dev) for t in config.data(config.n_test, 20_000 + seed))  # evaluated on the device
    fit = _fit_induction(config, seeds, x, y)
    loss = np.asarray(fit["loss"])
    left = _plateau_left(loss, 0.5 * math.log(config.symbols), config.steps)
    out = {"loss": loss, "plateau_left": left, "dense": [], **{p: [] for p in INDUCTION_PATTERNS},
           **{p + "_density": [] for p in INDUCTION_PATTERNS}}
    for j in range(len(seeds)):
        m = config.model()
        m.load_state_dict({k: v[j].cpu() for k, v in fit["params"].items()})
        m.to(dev).eval()
        out["dense"].append(accuracy(m, tx, ty))
        pats = induction_patterns(config, m, tx[:256], seeds[j])
        for p in INDUCTION_PATTERNS:
            kept = []

            def spy(i, q, k, f=pats[p]):
                mk = f(i, q, k) & K.causal_mask(q.shape[-2]).to(q.device)
                kept.append(float((mk.sum(-1).double() / torch.arange(1, q.shape[-2] + 1, device=q.device)).mean()))
                return mk

            out[p].append(accuracy(m, tx, ty, pattern=spy))
            out[p + "_density"].append(float(np.mean(kept)))
    return {k: (np.array(v) if isinstance(v, list) else v) for k, v in out.items()}


def training_steps(scale: str) -> int:
    """Optimizer steps summed over every training loop the chapter runs at ``scale`` (loops x steps, from the
    presets): the dense model twice (the notebook's process and the background worker each train it), the
    SeerAttention gate once per seed, and every runner's loops.  ``full`` is held to at most 3x ``ci``."""
    scale = check_scale(scale)
    r, pc = RecallConfig.preset(scale), PatternConfig.preset(scale)
    loops = {"dense": 2 * r.steps, "gates": N_SEEDS[scale] * pc.gate_steps,
             "sparsifiner": SparsifinerConfig.preset(scale).steps,
             "trained": len(TrainedPatternConfig.preset(scale).model_kw()) * TrainedPatternConfig.preset(scale).steps,
             "s2": 2 * r.steps, "pathways": sum(PathwaysConfig.preset(scale).step_split()), "seqboat": r.steps,
             "lemo": 2 * LeMoConfig.preset(scale).steps,
             "scratch": len(ScratchConfig.preset(scale).model_kw(0)) * ScratchConfig.preset(scale).recall.steps,
             "induction": InductionConfig.preset(scale).steps,
             "induction_scratch": len(INDUCTION_PATTERNS) * InductionConfig.preset(scale).steps}
    return int(sum(loops.values()))


def _fit_induction(config: InductionConfig, seeds, x, y, loss_fn=_ce, **model_kw) -> dict:
    """:func:`fit_seeds` of ``config.model(**model_kw)`` on ``(x, y)`` with the warm-up schedule (the same data,
    seeds, steps and learning rate for every pattern)."""
    dev = _device(config.scale)
    warm = max(1, config.warmup)
    seed_everything(seeds[0])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="There is a performance drop")
        return fit_seeds(lambda: config.model(**model_kw).to(dev), x.to(dev), y.to(dev), seeds, steps=config.steps,
                         lr=config.lr, batch_size=config.batch, loss_fn=loss_fn,
                         schedule=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda t: min(1.0, (t + 1) / warm)))


def _plateau_left(loss: np.ndarray, level: float, steps: int) -> np.ndarray:
    """Per seed, the first step at which the 10-step mean of the loss ``[steps, K]`` falls below ``level``
    (``steps`` if never)."""
    smooth = np.stack([np.convolve(loss[:, j], np.ones(10) / 10, mode="valid") for j in range(loss.shape[1])], 1)
    return np.array([int(np.argmax(smooth[:, j] < level)) + 9 if (smooth[:, j] < level).any() else steps
                     for j in range(loss.shape[1])])


def run_induction_scratch(config: InductionConfig, seed: int = 0) -> dict:
    """The two-layer model trained from scratch on the induction task with each pattern in both layers at
    ``config.keys`` keys per row: local window, strided (with the token itself), random (one draw per head, as
    imposed) and routing (fresh centroids per layer, ``keys/2`` members each, moved by the k-means objective),
    with the seeds, data, steps and schedule of the dense model of :func:`run_induction` (its dense baseline).
    Returns per-seed test accuracy, training loss ``[steps, K]`` and plateau step of each pattern."""
    seeds = _seeds(seed, config.scale)
    dev = _device(config.scale)
    x, y = config.data(config.n_train, 10_000 + seed)
    tx, ty = (t.to(dev) for t in config.data(config.n_test, 20_000 + seed))
    L, H, keys = config.L, config.heads, config.keys
    half = max(1, keys // 2)
    kinds = {"local": {"mask": K.local_mask(L, keys)},
             "strided": {"mask": K.strided_mask(L, max(1, L // keys)) | torch.eye(L, dtype=torch.bool)},
             "random": {"mask": K.random_mask(L, keys, H, generator=torch.Generator().manual_seed(seed))},
             "routing": {"clusters": max(1, L // half), "cluster_size": half}}
    level = 0.5 * math.log(config.symbols)
    out = {}
    for name, kw in kinds.items():
        fit = _fit_induction(config, seeds, x, y, _gated_ce(1.0) if name == "routing" else _ce, **kw)
        accs = []
        for j in range(len(seeds)):
            m = config.model(**kw)
            m.load_state_dict({k: v[j].cpu() for k, v in fit["params"].items()})
            accs.append(accuracy(m.to(dev).eval(), tx, ty))
        out[name] = np.array(accs)
        out[name + "_loss"] = np.asarray(fit["loss"])
        out[name + "_plateau_left"] = _plateau_left(out[name + "_loss"], level, config.steps)
    return out


#: The experiments that need nothing from the others (each trains its own models, or the cached dense
#: ones, from its own seeds): started early on the second core by :func:`start_background`.
BACKGROUND = {"s2": (lambda scale: S2Config.preset(scale), "run_s2"),
              "pathways": (lambda scale: PathwaysConfig.preset(scale), "run_pathways"),
              "seqboat": (lambda scale: SeqBoatConfig.preset(scale), "run_seqboat"),
              "lemo": (lambda scale: LeMoConfig.preset(scale), "run_lemo"),
              "scratch": (lambda scale: ScratchConfig.preset(scale), "run_scratch")}


def start_background(scale: str = "ci", seed: int = 0) -> dict:
    """``{name: future}`` for ``run_<name>(<Name>Config.preset(scale), seed)`` of every experiment in
    :data:`BACKGROUND`, started beside the notebook (:func:`sparsebook.seeding.in_background`: on a
    spare worker process, or in the notebook's own process when it is asked for with one worker).
    ``future.result()`` is exactly what calling the runner there would return."""
    from sparsebook.seeding import in_background

    scale = check_scale(scale)
    seed = check_int(seed, "seed", 0)
    return {name: in_background(globals()[runner], make(scale), seed) for name, (make, runner) in BACKGROUND.items()}
