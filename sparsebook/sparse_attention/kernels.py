"""Sparse attention, kernels: attention patterns as boolean masks, content-based routing, block gates,
Combiner's factorised attention, token selection, the recall measures and analytic costs.

Conventions.  ``L`` is the sequence length; a pattern is a boolean tensor ``[..., L, L]`` whose entry
``[i, j]`` says that query ``i`` may attend to key ``j``.  Every pattern here is causal (``j <= i``)
and keeps the diagonal (a token always sees itself), so no row is empty.  Attention probabilities
``A`` have the same shape, rows summing to one.  Pure functions, PyTorch tensors, no training.
"""
from __future__ import annotations

import math

import torch

from sparsebook.validate import check_int, check_real


def _tensor(x, name: str, ndim_min: int = 2) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.ndim < ndim_min:
        raise ValueError(f"{name} must have at least {ndim_min} dimensions; got shape {tuple(x.shape)}")
    return x


def _square(x, name: str) -> int:
    x = _tensor(x, name)
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{name} must be square in its last two dimensions [..., L, L]; got {tuple(x.shape)}")
    return x.shape[-1]


# ---------------------------------------------------------------------------
# fixed patterns
# ---------------------------------------------------------------------------
def causal_mask(L: int) -> torch.Tensor:
    """``M[i, j] = 1[j <= i]``, shape ``[L, L]``."""
    L = check_int(L, "L", 1)
    return torch.ones(L, L, dtype=torch.bool).tril()


def local_mask(L: int, window: int) -> torch.Tensor:
    """Sliding window: ``M[i, j] = 1[i - window < j <= i]`` (``window`` keys per row, the token included).

    The local pattern of the Sparse Transformer and of the Routing Transformer's local heads.  ``[L, L]``.
    """
    L = check_int(L, "L", 1)
    window = check_int(window, "window", 1)
    i = torch.arange(L)
    d = i[:, None] - i[None, :]
    return (d >= 0) & (d < window)


def strided_mask(L: int, stride: int) -> torch.Tensor:
    """Strided pattern: ``M[i, j] = 1[j <= i, (i - j) mod stride = 0]`` (about ``i/stride`` keys). ``[L, L]``."""
    L = check_int(L, "L", 1)
    stride = check_int(stride, "stride", 1)
    i = torch.arange(L)
    d = i[:, None] - i[None, :]
    return (d >= 0) & (d % stride == 0)


def random_mask(L: int, keys: int, heads: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random pattern: every row ``i`` keeps itself and ``min(keys, i + 1) - 1`` keys drawn uniformly without
    replacement from ``j < i``, independently per head.  ``[heads, L, L]``; exactly ``min(keys, i+1)`` per row.
    """
    L = check_int(L, "L", 1)
    keys = check_int(keys, "keys", 1)
    heads = check_int(heads, "heads", 1)
    u = torch.rand(heads, L, L, generator=generator)
    u = u.masked_fill(~causal_mask(L), 2.0)
    u.diagonal(dim1=-2, dim2=-1).fill_(-1.0)  # the token itself first
    rank = u.argsort(-1).argsort(-1)
    return (rank < keys) & causal_mask(L)


def s2_mask(L: int, heads: int, stride: int, block: int = 1, local_blocks: int = 1,
            heterogeneous: bool = True) -> torch.Tensor:
    """S2-Attention's sharded strided pattern (Lin et al. 2024, Sec. 3): keys are cut into blocks of
    ``block`` tokens; head ``h`` keeps key block ``b`` when ``(b + h) mod stride = 0`` (its shard), plus
    the ``local_blocks`` most recent blocks of the query (dense local part); causal.  With
    ``heterogeneous=False`` every head uses the offset of head 0 (a homogeneous strided pattern of the
    same density).  The union over heads covers every causal block exactly when ``heads >= stride``
    (heterogeneous).  Returns ``[heads, L, L]``.
    """
    L = check_int(L, "L", 1)
    heads = check_int(heads, "heads", 1)
    stride = check_int(stride, "stride", 1)
    block = check_int(block, "block", 1)
    local_blocks = check_int(local_blocks, "local_blocks", 0)
    pos = torch.arange(L)
    qb, kb = pos[:, None] // block, pos[None, :] // block
    h = torch.arange(heads)[:, None, None] if heterogeneous else torch.zeros(heads, 1, 1, dtype=torch.long)
    shard = (kb + h) % stride == 0
    local = (qb - kb) < local_blocks
    return (shard | local | torch.eye(L, dtype=torch.bool)) & causal_mask(L)


def union_coverage(mask: torch.Tensor) -> float:
    """Fraction of the causal pairs ``(i, j)`` that at least one head keeps: ``|∪_h M_h ∩ C| / |C|``."""
    L = _square(mask, "mask")
    c = causal_mask(L)
    u = mask.reshape(-1, L, L).any(0) & c
    return float(u.sum()) / float(c.sum())


def two_hop_coverage(first: torch.Tensor, second: torch.Tensor) -> float:
    """Fraction of two-hop retrievals a two-layer pattern can route (the induction-head circuit).

    The answer to query ``i`` is the token at ``p + 1`` that followed an earlier occurrence ``p`` of the query's
    token (``p + 1 < i``).  Layer 1 must let ``p + 1`` see ``p`` (some head of ``first``: the previous-token
    link), layer 2 must let ``i`` see ``p + 1`` (some head of ``second``).  Returns
    ``mean_{p+1<i} 1[∪_h first_h[p+1, p]] · 1[∪_h second_h[i, p+1]]``; 1 for dense attention.
    first, second ``[L, L]`` or ``[H, L, L]`` boolean, same ``L`` (≥ 3).
    """
    L = _square(first, "first")
    if _square(second, "second") != L or L < 3:
        raise ValueError(f"first and second must share L >= 3; got {tuple(first.shape)} and {tuple(second.shape)}")
    u1 = first.reshape(-1, L, L).any(0)
    u2 = second.reshape(-1, L, L).any(0)
    prev = u1.diagonal(offset=-1)  # [L - 1]: position p + 1 sees p
    i = torch.arange(L)[:, None]
    p = torch.arange(L - 1)[None, :]
    valid = p + 1 < i
    served = u2[:, 1:] & prev[None, :]  # [i, p]: i sees p + 1, and p + 1 saw p
    return float(served[valid].double().mean())


def density(mask: torch.Tensor) -> float:
    """Mean fraction of the causal keys kept per row: ``mean_i |M_i| / (i + 1)`` (over heads and rows)."""
    L = _square(mask, "mask")
    kept = (mask & causal_mask(L)).sum(-1).double()
    return float((kept / torch.arange(1, L + 1, dtype=torch.float64)).mean())


# ---------------------------------------------------------------------------
# content-based patterns
# ---------------------------------------------------------------------------
def _causal_rows(L: int, rows: torch.Tensor | None) -> torch.Tensor:
    c = causal_mask(L)
    return c if rows is None else c[rows]


def topk_mask(scores: torch.Tensor, keys: int, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Keep, per row, the token itself and the ``keys - 1`` causal keys with the largest ``scores``.

    With the model's own attention logits this is the oracle top-k pattern; with a low-rank predictor's
    scores (:func:`lowrank_factors`) it is Sparsifiner's connectivity mask (Wei et al. 2023, Sec. 3.2).
    scores ``[..., L, L]`` → boolean ``[..., L, L]`` with ``min(keys, i + 1)`` keys in row ``i``; or, with
    ``rows`` (query positions, ``[R]``), scores ``[..., R, L]`` for those queries only.
    """
    _tensor(scores, "scores")
    L = scores.shape[-1]
    if rows is None:
        _square(scores, "scores")
    elif scores.shape[-2] != len(rows):
        raise ValueError(f"scores must have one row per entry of rows ({len(rows)}); got {tuple(scores.shape)}")
    keys = check_int(keys, "keys", 1)
    c = _causal_rows(L, rows).to(scores.device)
    own = (torch.eye(L, dtype=torch.bool) if rows is None else torch.nn.functional.one_hot(rows, L).bool()).to(scores.device)
    s = scores.masked_fill(~c, float("-inf")).masked_fill(own, float("inf"))
    idx = s.topk(min(keys, L), dim=-1).indices
    m = torch.zeros_like(s, dtype=torch.bool).scatter_(-1, idx, True)
    return m & c


def lowrank_factors(wq: torch.Tensor, wk: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A rank-``r`` connectivity predictor from a head's projections: the truncated SVD of
    ``W_q W_kᵀ = U S Vᵀ`` gives ``P = U_r S_r^{1/2}``, ``R = V_r S_r^{1/2}`` with predicted scores
    ``(x P)(x R)ᵀ`` (cost ``2 L² r`` instead of ``2 L² d_h``).  wq, wk ``[d, d_h]`` → ``[d, r]`` each.
    """
    _tensor(wq, "wq")
    _tensor(wk, "wk")
    if wq.shape != wk.shape:
        raise ValueError(f"wq and wk must have the same shape; got {tuple(wq.shape)} and {tuple(wk.shape)}")
    rank = check_int(rank, "rank", 1, wq.shape[-1])
    u, s, vh = torch.linalg.svd(wq.double() @ wk.double().T)
    r = s[:rank].sqrt()
    return (u[:, :rank] * r).to(wq.dtype), (vh[:rank].T * r).to(wq.dtype)


def kmeans_assign(z: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Nearest centroid of each unit-normalised row: ``argmax_c μ_c · z/‖z‖``.  z ``[..., n, d]``, centroids ``[C, d]``."""
    _tensor(z, "z")
    _tensor(centroids, "centroids")
    zn = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (zn @ centroids.T).argmax(-1)


def kmeans_update(centroids: torch.Tensor, z: torch.Tensor, decay: float = 0.9) -> torch.Tensor:
    """One online (mini-batch) k-means step of the Routing Transformer (Roy et al. 2021, Sec. 4.1):
    ``μ_c ← λ μ_c + (1 − λ) mean{ẑ : ẑ assigned to c}``, then ``μ_c ← μ_c/‖μ_c‖``; ``ẑ`` are the unit-normalised
    rows of ``z`` ``[n, d]`` (queries and keys share the centroids).  Empty clusters keep their centroid.
    """
    decay = check_real(decay, "decay", 0.0, 1.0, high_open=True)
    z = _tensor(z, "z").reshape(-1, z.shape[-1])
    zn = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    a = kmeans_assign(zn, centroids)
    onehot = torch.nn.functional.one_hot(a, centroids.shape[0]).to(z.dtype)
    count = onehot.sum(0)[:, None]
    mean = (onehot.T @ zn) / count.clamp_min(1)
    new = torch.where(count > 0, decay * centroids + (1 - decay) * mean, centroids)
    return new / new.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def routing_mask(q: torch.Tensor, k: torch.Tensor, centroids: torch.Tensor, members: int) -> torch.Tensor:
    """Balanced routing (Roy et al. 2021, Sec. 4.1, the authors' top-k variant of k-means routing): each
    centroid takes the ``members`` queries and the ``members`` keys most similar to it; query ``i`` attends
    to the keys of every cluster that took it (causal, itself always).  q, k ``[..., L, d]`` → ``[..., L, L]``;
    centroids ``[C, d]`` (shared), or ``[..., C, d]`` broadcasting against the leading dimensions of q and k
    (e.g. ``[H, C, d]``: one set per head, for q, k ``[n, H, L, d]``).
    """
    _tensor(q, "q")
    _tensor(k, "k")
    _tensor(centroids, "centroids")
    L = q.shape[-2]
    members = check_int(members, "members", 1, L)
    norm = lambda z: z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    ct = centroids.transpose(-1, -2)
    sq = norm(q) @ ct  # [..., L, C]
    sk = norm(k) @ ct
    take = lambda s: torch.zeros_like(s, dtype=torch.bool).scatter_(
        -2, s.topk(members, dim=-2).indices, True).to(s.dtype)
    m = (take(sq) @ take(sk).transpose(-1, -2)) > 0
    return (m | torch.eye(L, dtype=torch.bool, device=m.device)) & causal_mask(L).to(m.device)


def block_ground_truth(attn: torch.Tensor, block: int) -> torch.Tensor:
    """SeerAttention's block-level target (Gao et al. 2024, Sec. 3.2): 2-D max-pooling of the attention
    map over ``block × block`` tiles, then each row normalised to sum to one (causal tiles only).
    attn ``[..., L, L]`` (L divisible by ``block``) → ``[..., L/block, L/block]``.
    """
    L = _square(attn, "attn")
    block = check_int(block, "block", 1, L)
    if L % block:
        raise ValueError(f"block must divide L = {L}; got {block}")
    n = L // block
    t = attn.reshape(*attn.shape[:-2], n, block, n, block).amax(dim=(-3, -1))
    t = t * causal_mask(n).to(t.device, t.dtype)
    return t / t.sum(-1, keepdim=True).clamp_min(1e-30)


def expand_blocks(block_mask: torch.Tensor, block: int) -> torch.Tensor:
    """A block mask ``[..., n, n]`` as a token mask ``[..., n·block, n·block]`` (causal, diagonal kept)."""
    n = _square(block_mask, "block_mask")
    block = check_int(block, "block", 1)
    m = block_mask.repeat_interleave(block, -2).repeat_interleave(block, -1)
    L = n * block
    return (m | torch.eye(L, dtype=torch.bool, device=m.device)) & causal_mask(L).to(m.device)


def topk_blocks(block_scores: torch.Tensor, blocks: int) -> torch.Tensor:
    """Per query block, the ``blocks`` causal key blocks with the largest scores (the diagonal block always
    among them).  ``[..., n, n]`` → boolean ``[..., n, n]``."""
    return topk_mask(block_scores, blocks)


# ---------------------------------------------------------------------------
# Combiner
# ---------------------------------------------------------------------------
def combiner_attention(logits: torch.Tensor, block: int) -> torch.Tensor:
    """Combiner-Fixed's effective attention (Ren et al. 2021, Sec. 3–4, causal "fixed" partition).

    Keys are cut into regions of ``block`` tokens.  Query ``i`` attends directly to the keys of its own
    region (``j <= i``) and to one abstraction per earlier region ``r``.  The abstraction's logit is
    ``log Σ_{j∈r} exp(s_ij)`` evaluated with the region's own summary query (the mean logit row of the
    region, ``s̄_rj``): ``ŝ_ir = max_{j∈r} s_ij`` stands in for the pooled key (max-pooling), and inside the
    region the probability is shared by all queries, ``q(j | r) = softmax_{j∈r}(s̄_rj)``.  One softmax
    over the direct logits and the abstraction logits, then

        A_ij = p(j | i)              for j in i's region,
        A_ij = p(r | i) · q(j | r)    for j in an earlier region r.

    Every causal entry is positive and every row sums to one (full support at ``O(L(b + L/b))`` cost).
    logits ``[..., L, L]`` (``s_ij = q_i·k_j/√d``), L divisible by ``block`` → ``[..., L, L]``.
    """
    L = _square(logits, "logits")
    block = check_int(block, "block", 1, L)
    if L % block:
        raise ValueError(f"block must divide L = {L}; got {block}")
    n = L // block
    dev = logits.device
    pos = torch.arange(L, device=dev)
    reg = pos // block
    same = (reg[:, None] == reg[None, :]) & causal_mask(L).to(dev)
    earlier = reg[None, :] < reg[:, None]  # [L(query), L(key)]: key in an earlier region
    s = logits
    # abstraction logit of region r for query i: max over the region's keys (pooled key)
    sr = s.reshape(*s.shape[:-1], n, block).amax(-1)  # [..., L, n]
    reg_earlier = torch.arange(n, device=dev)[None, :] < reg[:, None]  # [L, n]
    direct = s.masked_fill(~same, float("-inf"))
    abstr = sr.masked_fill(~reg_earlier, float("-inf"))
    p = torch.softmax(torch.cat([direct, abstr], -1), -1)
    p_dir, p_reg = p[..., :L], p[..., L:]
    # within-region distribution shared by the region's queries: softmax of the region's mean logit row
    rows = s.reshape(*s.shape[:-2], n, block, L).mean(-2)  # [..., n, L]
    rows = rows.reshape(*rows.shape[:-1], n, block)  # [..., n(query region), n(key region), block]
    qr = torch.softmax(rows, -1)
    # q(j|r) uses the summary of the *query's* region; gather per query
    qj = qr[..., reg, :, :]  # [..., L, n, block]
    within = qj.reshape(*qj.shape[:-2], L)  # [..., L, L]
    a = p_dir + (p_reg.repeat_interleave(block, -1) * within).masked_fill(~earlier, 0.0)
    return a


# ---------------------------------------------------------------------------
# token selection (SeqBoat, LeMo) and stochastic sub-sampling (Information Pathways)
# ---------------------------------------------------------------------------
def subsample_keys(L: int, keep: float, batch: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Stochastically sub-sampled attention (Information Pathways, Hussain et al. 2023, Sec. 4): every key
    token is kept with probability ``keep``, independently per sequence.  ``[batch, L]`` boolean (the
    attention masks are ``keep[j] or j = i``)."""
    L = check_int(L, "L", 1)
    keep = check_real(keep, "keep", 0.0, 1.0, low_open=True)
    batch = check_int(batch, "batch", 1)
    return torch.rand(batch, L, generator=generator) < keep


def informativeness(emb: torch.Tensor) -> torch.Tensor:
    """LeMo-style token informativeness (Wang et al. 2025, Sec. 4.1, reconstructed): the cosine distance of
    a token's embedding from the mean embedding of its sequence, ``1 − cos(e_t, ē)``; tokens that look like
    their context carry little.  emb ``[..., L, d]`` → ``[..., L]``."""
    _tensor(emb, "emb")
    mean = emb.mean(-2, keepdim=True)
    return 1 - torch.nn.functional.cosine_similarity(emb, mean.expand_as(emb), dim=-1)


def keep_top(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Boolean ``[..., L]`` keeping exactly the ``keep`` highest scores of each row (ties by position)."""
    _tensor(scores, "scores", 1)
    keep = check_int(keep, "keep", 1, scores.shape[-1])
    idx = scores.topk(keep, dim=-1).indices
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, idx, True)


# ---------------------------------------------------------------------------
# attention under a pattern, and what a pattern keeps
# ---------------------------------------------------------------------------
def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``softmax`` over the kept entries of each row (others get probability 0).  ``[..., R, L]``."""
    _tensor(logits, "logits")
    return torch.softmax(logits.masked_fill(~mask, float("-inf")), -1)


def mass_recall(attn: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Attention mass a pattern keeps, per row: ``Σ_j A_ij M_ij``.  ``[..., L, L]`` → ``[..., L]``.
    On uniform causal attention it equals the row's density ``|M_i| / (i + 1)``.  Rows may be a subset:
    ``[..., R, L]``."""
    _tensor(attn, "attn")
    return (attn * mask.to(attn.dtype)).sum(-1)


def top1_recall(attn: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Whether a pattern keeps the row's strongest key ``argmax_j A_ij``: boolean ``[..., R]``."""
    _tensor(attn, "attn")
    idx = attn.argmax(-1, keepdim=True)
    return mask.expand_as(attn).gather(-1, idx).squeeze(-1)


def total_variation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``½ Σ_j |a_ij − b_ij|`` per row."""
    return 0.5 * (a - b).abs().sum(-1)


# ---------------------------------------------------------------------------
# analytic cost
# ---------------------------------------------------------------------------
PATTERNS = ("dense", "local", "strided", "random", "s2", "routing", "combiner", "sparsifiner", "seer")


def attention_cost(pattern: str, L: int, d_head: int, keys: int | None = None, rank: int = 4,
                   block: int = 16) -> dict:
    """Multiply–adds of one causal attention head and the score entries it stores.

    ``entries`` = query–key pairs scored (``L(L+1)/2`` dense; about ``L·keys`` for a sparse pattern);
    ``flops`` = ``2·entries·d_head`` (scores) + ``2·entries·d_head`` (weighted values) + the pattern's
    overhead: routing ``2·L·C·d_head`` with ``C = L/keys`` centroids; Sparsifiner's predictor ``L(L+1)·rank``;
    SeerAttention's gate ``(L/block)² d_head`` on pooled blocks; Combiner ``keys`` = region size ``b``,
    entries ``L(b+1)/2 + L·L/b /2`` (direct plus abstractions, on average).  ``memory`` = stored entries.
    """
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {PATTERNS}; got {pattern!r}")
    L = check_int(L, "L", 1)
    d_head = check_int(d_head, "d_head", 1)
    dense = L * (L + 1) / 2
    if pattern == "dense":
        entries, extra = dense, 0.0
    else:
        if keys is None:
            raise ValueError(f"keys is required for pattern {pattern!r}")
        keys = check_int(keys, "keys", 1, L)
        # rows i < keys keep i + 1 keys, the others keep `keys`
        entries = keys * (keys + 1) / 2 + (L - keys) * keys
        extra = 0.0
        if pattern == "routing":
            extra = 2.0 * L * (L / keys) * d_head
        elif pattern == "sparsifiner":
            extra = L * (L + 1) * check_int(rank, "rank", 1)
        elif pattern == "seer":
            nb = L / check_int(block, "block", 1)
            extra = nb * nb * d_head
        elif pattern == "combiner":
            entries = L * (keys + 1) / 2 + L * (L / keys) / 2
    return {"entries": entries, "flops": 4.0 * entries * d_head + extra, "memory": entries}


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    lx = torch.log(torch.as_tensor(x, dtype=torch.float64))
    ly = torch.log(torch.as_tensor(y, dtype=torch.float64))
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return float((lx * ly).sum() / (lx * lx).sum())


def block_gather_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_idx: torch.Tensor,
                           block: int) -> torch.Tensor:
    """Block-sparse attention computed on the kept blocks only: query block ``a`` gathers the key/value
    blocks ``block_idx[a]`` ([n, m] indices), scores them, softmax, weighted sum (non-causal inside the
    blocks: a cost kernel, not a model).  q, k, v ``[L, d]`` → ``[L, d]``; work ``∝ L·m·block·d``."""
    L, d = q.shape
    n = L // block
    qb = q.reshape(n, block, d)
    kb = k.reshape(n, block, d)[block_idx].reshape(n, -1, d)
    vb = v.reshape(n, block, d)[block_idx].reshape(n, -1, d)
    p = torch.softmax(qb @ kb.transpose(-1, -2) / math.sqrt(d), -1)
    return (p @ vb).reshape(L, d)


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Unfused dense attention ``softmax(q kᵀ/√d [+ mask]) v`` (a mask changes nothing in its cost)."""
    s = q @ k.T / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, -1) @ v
