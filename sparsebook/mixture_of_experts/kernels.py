"""Mixture of experts, kernels: routing, balance losses, capacity, dispatch, gates, merging, scores.

Shapes: every kernel accepts any number of leading batch dimensions ``...`` (the chapter
stacks seeds there), then ``T`` tokens, ``E`` experts, ``k`` experts per token, ``d`` input
width, ``h`` expert hidden width, ``o`` output width.  An expert is a one-hidden-layer ReLU
MLP, ``f_e(x) = relu(x W1_e + b1_e) W2_e + b2_e``, stored as a dict of stacked tensors
``{"w1": [..., E, d, h], "b1": [..., E, h], "w2": [..., E, h, o], "b2": [..., E, o]}``.
No kernel loops over tokens in Python.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from sparsebook.validate import check_int, check_real

EXPERT_KEYS = ("w1", "b1", "w2", "b2")


def _tensor(x, name: str, ndim_min: int = 1) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.ndim < ndim_min:
        raise ValueError(f"{name} must have at least {ndim_min} dimensions; got shape {tuple(x.shape)}")
    return x


def _check_experts(experts: dict) -> int:
    if not isinstance(experts, dict) or any(k not in experts for k in EXPERT_KEYS):
        raise TypeError(f"experts must be a dict with keys {EXPERT_KEYS}")
    w1 = _tensor(experts["w1"], "experts['w1']", 3)
    return w1.shape[-3]


# ---------------------------------------------------------------------------
# routing
# ---------------------------------------------------------------------------
def top_k_routing(logits: torch.Tensor, k: int, renormalize: bool = True):
    """Top-k routing (Shazeer et al. 2017; Switch: k = 1, Fedus et al. 2022, Eq. 1-2).

    ``p = softmax(logits)`` over the last axis (``[..., T, E]``); each token goes to the ``k``
    experts with the largest ``p`` (ties: the lower index first) with gates ``p_i`` or, when
    ``renormalize``, ``p_i / Σ_{j in top-k} p_j`` (the gates of a token sum to 1).

    Returns ``(probs [..., T, E], idx [..., T, k] long, gates [..., T, k])``.
    """
    logits = _tensor(logits, "logits", 2)
    n_exp = logits.shape[-1]
    k = check_int(k, "k", 1, n_exp)
    probs = torch.softmax(logits, dim=-1)
    # a stable descending sort puts the lower index first among equal probabilities
    idx = torch.sort(probs, dim=-1, descending=True, stable=True).indices[..., :k]
    gates = torch.gather(probs, -1, idx)
    if renormalize:
        gates = gates / gates.sum(-1, keepdim=True)
    return probs, idx, gates


def expected_active_fraction(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Estimated fraction of each ReLU expert's hidden units that are active on each token, from
    the experts' weight statistics alone (the sparsity estimate behind MoE-X's router; our
    reading of Yang et al. 2025, which routes tokens to the experts with the sparsest
    activations, estimated without running the experts).

    Model: the pre-activations ``z_u = x·W1[:, u] + b1[u]`` of expert ``e``'s ``h`` units are
    treated as draws whose weights are independent across input coordinates, with per-coordinate
    mean ``μ_k = mean_u W1[k, u]`` and variance ``σ²_k = var_u W1[k, u]`` (and ``β̄, s²_b`` for the
    bias), so ``z ~ N(x·μ + β̄, Σ_k x_k² σ²_k + s²_b)`` and
    ``P(z > 0) = Φ((x·μ + β̄) / sqrt(Σ_k x_k² σ²_k + s²_b))``: O(d) per expert and token instead
    of the expert's O(d h).  ``x``: ``[..., T, d]``; ``w1``: ``[..., E, d, h]``; ``b1``:
    ``[..., E, h]``.  Returns ``[..., T, E]`` in ``[0, 1]``.
    """
    x, w1, b1 = _tensor(x, "x", 2), _tensor(w1, "w1", 3), _tensor(b1, "b1", 2)
    if w1.shape[-2] != x.shape[-1] or b1.shape[-1] != w1.shape[-1] or b1.shape[-2] != w1.shape[-3]:
        raise ValueError(f"shapes must be x [..., T, d], w1 [..., E, d, h], b1 [..., E, h]; got "
                         f"{tuple(x.shape)}, {tuple(w1.shape)}, {tuple(b1.shape)}")
    eps = check_real(eps, "eps", 0, low_open=True)
    mu, var = w1.mean(-1), w1.var(-1, unbiased=False)                      # [..., E, d]
    mean = torch.einsum("...td,...ed->...te", x, mu) + b1.mean(-1).unsqueeze(-2)
    sd = torch.sqrt(torch.einsum("...td,...ed->...te", x * x, var) + b1.var(-1, unbiased=False).unsqueeze(-2) + eps)
    return 0.5 * (1 + torch.erf(mean / (sd * math.sqrt(2))))


def sparsity_routing(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, k: int, temperature: float = 0.1):
    """MoE-X-style sparsity-aware routing (our reading of Yang et al. 2025): router logits
    ``ℓ_te = −a_te / τ`` with ``a`` the :func:`expected_active_fraction`, so each token goes to the
    ``k`` experts whose units are expected to be least active, with renormalised softmax gates
    (:func:`top_k_routing`).  No router parameters: the routing follows the experts' own weights.
    Returns ``(logits, probs, idx, gates)``."""
    temperature = check_real(temperature, "temperature", 0, low_open=True)
    logits = -expected_active_fraction(x, w1, b1) / temperature
    return (logits, *top_k_routing(logits, k))


def load_balancing_loss(probs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Switch Transformer's auxiliary loss ``E · Σ_i f_i P_i`` (Fedus et al. 2022, Eq. 4-6).

    ``f_i``: the fraction of the ``T·k`` token-to-expert assignments that go to expert ``i``;
    ``P_i``: the mean router probability of expert ``i`` over the ``T`` tokens.  It equals 1 when
    both are uniform and ``E`` when every token goes to one expert with probability 1.
    ``probs``: ``[..., T, E]``; ``idx``: ``[..., T, k]``.  Returns shape ``[...]``.
    """
    probs = _tensor(probs, "probs", 2)
    idx = _tensor(idx, "idx", 2)
    if idx.shape[:-1] != probs.shape[:-1]:
        raise ValueError(f"idx must have shape [..., T, k] matching probs [..., T, E]; got {tuple(idx.shape)}, {tuple(probs.shape)}")
    n_exp = probs.shape[-1]
    counts = torch.nn.functional.one_hot(idx, n_exp).to(probs.dtype).sum(dim=(-3, -2))  # [..., E]
    f = counts / (idx.shape[-2] * idx.shape[-1])
    p = probs.mean(dim=-2)
    return n_exp * (f * p).sum(-1)


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE's router z-loss ``mean_t (log Σ_e exp(logit_te))²`` (Zoph et al. 2022, Eq. 5).

    ``logits``: ``[..., T, E]``; returns ``[...]``.
    """
    logits = _tensor(logits, "logits", 2)
    return (torch.logsumexp(logits, dim=-1) ** 2).mean(-1)


def expert_capacity(tokens: int, n_experts: int, k: int, factor: float | None) -> int:
    """Slots per expert: ``ceil(factor · T · k / E)`` (Switch, Eq. 3-4 with k assignments per
    token); ``factor=None`` means no limit (``T`` slots: an expert can take every token once)."""
    tokens = check_int(tokens, "tokens", 1)
    n_experts = check_int(n_experts, "n_experts", 1)
    k = check_int(k, "k", 1, n_experts)
    if factor is None:
        return tokens
    factor = check_real(factor, "factor", 0, None, low_open=True)
    return max(1, math.ceil(factor * tokens * k / n_experts))


def assign_slots(idx: torch.Tensor, n_experts: int, capacity: int):
    """Position of every assignment in its expert's buffer, and whether it fits.

    Priority as in GShard: all first choices, in token order, then all second choices, ...
    An assignment whose position reaches ``capacity`` is dropped (its token skips that expert;
    the residual path carries it).  ``idx``: ``[..., T, k]``.  Returns
    ``(pos [..., T, k] long, kept [..., T, k] bool)``.
    """
    idx = _tensor(idx, "idx", 2)
    n_experts = check_int(n_experts, "n_experts", 1)
    capacity = check_int(capacity, "capacity", 1)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n_experts):
        raise ValueError(f"idx must hold expert indices in [0, {n_experts - 1}]")
    order = idx.transpose(-1, -2)                                   # [..., k, T]: choice-major
    onehot = torch.nn.functional.one_hot(order.reshape(*order.shape[:-2], -1), n_experts)
    pos = (onehot.cumsum(-2) - 1).mul(onehot).sum(-1)               # [..., k·T]
    pos = pos.reshape(order.shape).transpose(-1, -2).contiguous()   # [..., T, k]
    return pos, pos < capacity


def gate_matrix(idx: torch.Tensor, gates: torch.Tensor, n_experts: int, kept: torch.Tensor | None = None) -> torch.Tensor:
    """The sparse gates as a dense ``[..., T, E]`` matrix: ``G_te = Σ_j gates_tj · 1[idx_tj = e] · kept_tj``."""
    idx = _tensor(idx, "idx", 2)
    gates = _tensor(gates, "gates", 2)
    if gates.shape != idx.shape:
        raise ValueError(f"gates must have the shape of idx; got {tuple(gates.shape)} and {tuple(idx.shape)}")
    g = gates if kept is None else gates * kept.to(gates.dtype)
    out = torch.zeros(*idx.shape[:-1], check_int(n_experts, "n_experts", 1), dtype=gates.dtype, device=gates.device)
    return out.scatter_add(-1, idx, g)


# ---------------------------------------------------------------------------
# experts: index dispatch and the dense-masked reference
# ---------------------------------------------------------------------------
def experts_all(x: torch.Tensor, experts: dict):
    """Every expert on every token: ``hidden [..., T, E, h] = relu(x W1_e + b1_e)``,
    ``out [..., T, E, o] = hidden W2_e + b2_e``.  ``x``: ``[..., T, d]``."""
    _check_experts(experts)
    x = _tensor(x, "x", 2)
    hid = torch.relu(torch.einsum("...td,...edh->...teh", x, experts["w1"]) + experts["b1"].unsqueeze(-3))
    out = torch.einsum("...teh,...eho->...teo", hid, experts["w2"]) + experts["b2"].unsqueeze(-3)
    return hid, out


def moe_dense_reference(x: torch.Tensor, experts: dict, gmat: torch.Tensor) -> torch.Tensor:
    """The peer implementation: every expert on every token, masked by the gate matrix,
    ``y_t = Σ_e G_te f_e(x_t)``.  ``gmat``: ``[..., T, E]`` (:func:`gate_matrix`)."""
    _, out = experts_all(x, experts)
    return torch.einsum("...te,...teo->...to", gmat, out)


def moe_dispatch(x: torch.Tensor, experts: dict, idx: torch.Tensor, gates: torch.Tensor, capacity: int | None = None):
    """Sparse MoE layer by index dispatch: ``y_t = Σ_{j: kept} gates_tj f_{idx_tj}(x_t)``.

    Tokens are gathered into per-expert buffers of ``capacity`` slots (:func:`assign_slots`;
    ``None``: the largest load, so nothing is dropped), each expert runs one batched matmul on
    its buffer, and the outputs are gathered back and weighted: cost ``E · C`` expert
    evaluations instead of ``E · T``.  ``x``: ``[..., T, d]``; ``idx``, ``gates``: ``[..., T, k]``.

    Returns ``(y [..., T, o], kept [..., T, k] bool)``.
    """
    n_exp = _check_experts(experts)
    x = _tensor(x, "x", 2)
    lead, t, d = x.shape[:-2], x.shape[-2], x.shape[-1]
    k = idx.shape[-1]
    if capacity is None:
        counts = torch.nn.functional.one_hot(idx, n_exp).sum(dim=(-3, -2))
        capacity = max(1, int(counts.max()))
    pos, kept = assign_slots(idx, n_exp, capacity)
    b = int(np.prod(lead)) if len(lead) else 1
    xf = x.reshape(b, t, d)
    flat_slot = (idx * capacity + pos).reshape(b, t * k)
    flat_slot = torch.where(kept.reshape(b, t * k), flat_slot, torch.full_like(flat_slot, n_exp * capacity))
    tok = torch.arange(t, device=x.device).repeat_interleave(k).expand(b, -1)
    # buffer of token indices; empty slots point at an extra zero row (index t); the extra slot takes drops
    buf = torch.full((b, n_exp * capacity + 1), t, dtype=torch.long, device=x.device)
    buf.scatter_(1, flat_slot, tok)
    buf = buf[:, :-1].reshape(b, n_exp, capacity)
    xpad = torch.cat([xf, xf.new_zeros(b, 1, d)], dim=1)
    xin = torch.gather(xpad, 1, buf.reshape(b, -1, 1).expand(-1, -1, d)).reshape(b, n_exp, capacity, d)
    ex = {key: v.reshape(b, *v.shape[len(lead):]) for key, v in experts.items() if key in EXPERT_KEYS}
    hid = torch.relu(torch.einsum("becd,bedh->bech", xin, ex["w1"]) + ex["b1"].unsqueeze(-2))
    yout = torch.einsum("bech,beho->beco", hid, ex["w2"]) + ex["b2"].unsqueeze(-2)       # [b, E, C, o]
    o = yout.shape[-1]
    ypad = torch.cat([yout.reshape(b, n_exp * capacity, o), yout.new_zeros(b, 1, o)], dim=1)
    ych = torch.gather(ypad, 1, flat_slot.unsqueeze(-1).expand(-1, -1, o)).reshape(b, t, k, o)
    w = (gates * kept.to(gates.dtype)).reshape(b, t, k, 1)
    y = (w * ych).sum(-2)
    return y.reshape(*lead, t, o), kept


# ---------------------------------------------------------------------------
# COMET: differentiable tree gates with a cardinality constraint
# ---------------------------------------------------------------------------
def smooth_step(t: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """Smooth-step (Hazimeh et al. 2020; used by DSelect-k and COMET): 0 for ``t <= -γ/2``, 1 for
    ``t >= γ/2``, and ``-2t³/γ³ + 3t/(2γ) + 1/2`` between: continuously differentiable and exactly
    0 or 1 outside ``(-γ/2, γ/2)``, so a trained gate can be exactly sparse."""
    t = _tensor(t, "t", 0)
    gamma = check_real(gamma, "gamma", 0, None, low_open=True)
    mid = -2.0 / gamma**3 * t**3 + 1.5 / gamma * t + 0.5
    return torch.where(t <= -gamma / 2, torch.zeros_like(t), torch.where(t >= gamma / 2, torch.ones_like(t), mid))


def tree_leaf_probs(node_logits: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """Leaf probabilities of perfect binary trees of depth ``D`` with smooth-step splits.

    ``node_logits``: ``[..., 2^D − 1]`` in breadth-first order (root first); at node ``n`` a
    sample goes left with ``s_n = smooth_step(logit_n)``, right with ``1 − s_n``; a leaf's
    probability is the product along its path.  Returns ``[..., 2^D]`` (sums to 1).
    """
    node_logits = _tensor(node_logits, "node_logits", 1)
    n_nodes = node_logits.shape[-1]
    depth = int(round(math.log2(n_nodes + 1)))
    if 2**depth - 1 != n_nodes or depth < 1:
        raise ValueError(f"node_logits must have 2^D - 1 entries on its last axis (D >= 1); got {n_nodes}")
    s = smooth_step(node_logits, gamma)
    probs = torch.ones_like(node_logits[..., :1])
    for level in range(depth):                      # loop over tree levels (D of them), not tokens
        first = 2**level - 1
        sl = s[..., first:first + 2**level]
        probs = torch.stack([probs * sl, probs * (1 - sl)], dim=-1).reshape(*probs.shape[:-1], 2 ** (level + 1))
    return probs


def comet_gate(x: torch.Tensor, node_w: torch.Tensor, node_b: torch.Tensor, tree_w: torch.Tensor,
               gamma: float = 1.0) -> torch.Tensor:
    """COMET's gate (Ibrahim et al. 2023): ``k`` trees, each selecting one of ``E = 2^D`` experts.

    ``G(x) = Σ_j α_j(x) · leaf_j(x)`` with ``leaf_j`` from :func:`tree_leaf_probs` on
    ``x W_j + b_j`` and ``α = softmax(x Z)`` over the trees.  When every split is saturated each
    tree puts all its mass on one leaf, so at most ``k`` gates are non-zero: the cardinality
    constraint.  ``x``: ``[..., T, d]``; ``node_w``: ``[..., k, d, E − 1]``; ``node_b``:
    ``[..., k, E − 1]``; ``tree_w``: ``[..., d, k]``.  Returns ``G [..., T, E]`` (rows sum to 1).
    """
    x = _tensor(x, "x", 2)
    logits = torch.einsum("...td,...jdn->...tjn", x, node_w) + node_b.unsqueeze(-3)
    leaves = tree_leaf_probs(logits, gamma)                                   # [..., T, k, E]
    alpha = torch.softmax(torch.einsum("...td,...dj->...tj", x, tree_w), dim=-1)
    return (alpha.unsqueeze(-1) * leaves).sum(-2)


# ---------------------------------------------------------------------------
# MC-SMoE: permutation alignment and frequency-weighted merging
# ---------------------------------------------------------------------------
def permute_gates(gmat: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Route gate output ``j`` to expert ``perm[j]``: ``out[..., t, perm[j]] = gmat[..., t, j]``, so
    the layer computes ``Σ_j G_tj f_{perm(j)}(x_t)`` (the permutation between a sparse gate and its
    experts that COMET's local search changes, Ibrahim et al. 2023).  ``gmat``: ``[..., T, E]``;
    ``perm``: ``[..., E]`` long, a permutation of ``0..E−1`` per leading index."""
    gmat, perm = _tensor(gmat, "gmat", 2), _tensor(perm, "perm", 1)
    if perm.shape[-1] != gmat.shape[-1] or perm.dtype != torch.long:
        raise ValueError(f"perm must be a long tensor [..., E] with E = {gmat.shape[-1]}; got {perm.dtype} {tuple(perm.shape)}")
    inv = torch.argsort(perm, dim=-1)                                  # expert e receives gate output inv[e]
    return torch.gather(gmat, -1, inv.unsqueeze(-2).expand_as(gmat))


def swap_neighbourhood(perm: torch.Tensor) -> torch.Tensor:
    """Every permutation one transposition away: ``[E(E−1)/2, ..., E]``, move ``(a, b)`` (``a < b``,
    in lexicographic order) exchanging the experts at gate positions ``a`` and ``b``.  The
    neighbourhood of COMET's permutation-based local search (our reading of Ibrahim et al. 2023)."""
    perm = _tensor(perm, "perm", 1)
    e = perm.shape[-1]
    if e < 2:
        raise ValueError(f"perm must have at least 2 entries; got {e}")
    out = []
    for a in range(e):
        for b in range(a + 1, e):
            q = perm.clone()
            q[..., a], q[..., b] = perm[..., b], perm[..., a]
            out.append(q)
    return torch.stack(out)


def _unit_features(expert: dict) -> torch.Tensor:
    """One row per hidden unit: its input weights, bias and output weights (``[h, d + 1 + o]``)."""
    return torch.cat([expert["w1"].T, expert["b1"].unsqueeze(-1), expert["w2"]], dim=-1)


def align_permutation(reference: dict, expert: dict) -> np.ndarray:
    """Weight matching (Ainsworth et al. 2023; MC-SMoE's alignment step, Li et al. 2024 §3.2):
    the permutation ``π`` of ``expert``'s hidden units maximising ``Σ_u ⟨φ_ref(u), φ(π(u))⟩``,
    ``φ`` = a unit's input weights, bias and output weights, solved exactly by the Hungarian
    algorithm (``scipy.optimize.linear_sum_assignment``).  Experts are single (unstacked)
    dicts: ``w1 [d, h]``, ``b1 [h]``, ``w2 [h, o]``, ``b2 [o]``.  Returns ``π`` (``[h]`` ints)."""
    from scipy.optimize import linear_sum_assignment

    a, b = _unit_features(reference), _unit_features(expert)
    if a.shape != b.shape:
        raise ValueError(f"experts must have the same shapes; got {tuple(a.shape)} and {tuple(b.shape)}")
    sim = (a @ b.T).detach().cpu().double().numpy()
    _, cols = linear_sum_assignment(sim, maximize=True)
    return cols


def permute_units(expert: dict, perm) -> dict:
    """The same function with hidden units reordered: ``w1[:, π]``, ``b1[π]``, ``w2[π, :]``."""
    perm = torch.as_tensor(np.asarray(perm), dtype=torch.long)
    h = expert["w1"].shape[-1]
    if perm.shape != (h,) or not torch.equal(torch.sort(perm).values, torch.arange(h)):
        raise ValueError(f"perm must be a permutation of range({h})")
    return {"w1": expert["w1"][:, perm], "b1": expert["b1"][perm], "w2": expert["w2"][perm, :], "b2": expert["b2"]}


def merge_experts(experts: list[dict], weights, align: bool = True) -> dict:
    """MC-SMoE's merge of one group (Li et al. 2024, §3.2-3.3): align every member's hidden units
    to the first member's (the dominant expert) by :func:`align_permutation` (if ``align``), then
    average the parameters with ``weights`` (usage frequencies; normalised to sum to 1)."""
    if not experts:
        raise ValueError("experts must hold at least one expert")
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(experts),) or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be one non-negative number per expert, with a positive sum")
    w = w / w.sum()
    members = [experts[0]] + [permute_units(e, align_permutation(experts[0], e)) if align else e for e in experts[1:]]
    return {key: sum(float(wi) * m[key] for wi, m in zip(w, members)) for key in EXPERT_KEYS}


def group_experts(usage, similarity, n_groups: int) -> np.ndarray:
    """MC-SMoE's grouping (Li et al. 2024, §3.2): the ``n_groups`` most used experts are dominant
    (ties: lower index); every other expert joins the dominant expert it is most similar to
    (``similarity [E, E]``, e.g. the cosine of router logits over data).  Returns the group
    index of every expert (``[E]``; dominant expert ``g`` leads group ``g``, ordered by usage)."""
    usage = np.asarray(usage, dtype=float)
    sim = np.asarray(similarity, dtype=float)
    n_exp = usage.size
    n_groups = check_int(n_groups, "n_groups", 1, n_exp)
    if sim.shape != (n_exp, n_exp):
        raise ValueError(f"similarity must have shape [{n_exp}, {n_exp}]; got {sim.shape}")
    dom = np.argsort(-usage, kind="stable")[:n_groups]
    group = np.empty(n_exp, dtype=int)
    group[dom] = np.arange(n_groups)
    rest = np.setdiff1d(np.arange(n_exp), dom)
    if rest.size:
        group[rest] = np.argmax(sim[np.ix_(rest, dom)], axis=1)
    return group


def stable_rank(w: torch.Tensor) -> torch.Tensor:
    """Stable rank ``‖W‖_F² / ‖W‖₂² = Σ σ_i² / σ_1²`` of every matrix on the last two axes
    (``[..., m, n]`` → ``[...]``): between 1 (rank one) and ``rank W``; the measure of a weight
    matrix's dimensionality that MC-SMoE reports for merged experts (Li et al. 2024)."""
    w = _tensor(w, "w", 2)
    sv = torch.linalg.svdvals(w)
    if bool((sv[..., 0] <= 0).any()):
        raise ValueError("w must not contain an all-zero matrix (its stable rank is undefined)")
    return (sv ** 2).sum(-1) / sv[..., 0] ** 2


def low_rank_sparse_factors(w: torch.Tensor, rank: int, columns: int = 0) -> dict:
    """The factors of MC-SMoE's compression of a merged expert's matrix (Li et al. 2024, the
    compression stage, after LoSparse): ``W ≈ A B + S ⊙ M`` with ``A = U_r Σ_r`` (``[m, r]``),
    ``B = V_rᵀ`` (``[r, n]``) from the truncated SVD, and ``S`` the residual ``W − A B`` on the
    ``columns`` columns of largest L2 norm (``M``, a ``[n]`` column mask; zero elsewhere).
    ``w``: ``[m, n]``.  Returns ``{"a", "b", "s", "mask"}``; the factors can be trained further
    (the paper distils after compressing) while ``mask`` keeps the sparse part's structure."""
    w = _tensor(w, "w", 2)
    if w.ndim != 2:
        raise ValueError(f"w must be one matrix [m, n]; got shape {tuple(w.shape)}")
    m, n = w.shape
    rank = check_int(rank, "rank", 0, min(m, n))
    columns = check_int(columns, "columns", 0, n)
    u, sv, vh = torch.linalg.svd(w, full_matrices=False)
    a, b = u[:, :rank] * sv[:rank], vh[:rank]
    res = w - a @ b
    keep = torch.zeros(n, dtype=w.dtype, device=w.device)
    if columns:
        keep[torch.sort(res.norm(dim=0), descending=True, stable=True).indices[:columns]] = 1
    return {"a": a, "b": b, "s": res * keep, "mask": keep}


def low_rank_plus_sparse(w: torch.Tensor, rank: int, columns: int = 0) -> tuple[torch.Tensor, int]:
    """MC-SMoE's training-free compression of a merged expert's matrix (Li et al. 2024, the
    compression stage, after LoSparse): ``W ≈ U_r Σ_r V_rᵀ + S``, the rank-``rank`` truncated SVD
    plus a structured sparse residual ``S`` that keeps the ``columns`` columns of
    ``W − U_r Σ_r V_rᵀ`` with the largest L2 norm (zero elsewhere) (:func:`low_rank_sparse_factors`).
    ``w``: ``[m, n]``.  Returns ``(approximation [m, n], stored parameters r(m + n) + columns·m)``.
    """
    f = low_rank_sparse_factors(w, rank, columns)
    m, n = w.shape
    return f["a"] @ f["b"] + f["s"], f["a"].shape[1] * (m + n) + int(f["mask"].sum()) * m


# ---------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------
def auroc_matrix(acts, labels) -> np.ndarray:
    """Area under the ROC curve of every unit as a detector of every planted binary variable.

    ``acts``: ``[N, U]`` activations; ``labels``: ``[N, M]`` in {0, 1}, every column with both
    values.  Mann–Whitney form with mid-ranks for ties: ``(R₁ − n₁(n₁+1)/2)/(n₁ n₀)``, ``R₁`` the
    rank sum of the positives.  Returns ``[U, M]``.
    """
    from scipy.stats import rankdata

    a = np.asarray(acts, dtype=float)
    z = np.asarray(labels)
    if a.ndim != 2 or z.ndim != 2 or a.shape[0] != z.shape[0]:
        raise ValueError(f"acts [N, U] and labels [N, M] must share N; got {a.shape} and {z.shape}")
    if not np.isin(z, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    z = z.astype(float)
    n1 = z.sum(0)
    n0 = z.shape[0] - n1
    if (n1 == 0).any() or (n0 == 0).any():
        raise ValueError("every label column must hold both 0 and 1")
    ranks = rankdata(a, axis=0)                      # [N, U]
    r1 = ranks.T @ z                                 # [U, M]
    return (r1 - n1 * (n1 + 1) / 2) / (n1 * n0)


def moe_flops(d: int, h: int, o: int, n_experts: int, k: int) -> dict:
    """Multiply-adds × 2 per token of one MoE layer and of the dense MLP with the same active
    parameters (hidden width ``k·h``): router ``2dE``; experts ``k(2dh + 2ho)`` (+ biases, ``k(h + o)``);
    the gate-weighted sum ``2ko``.  Parameters: total and active per token."""
    d, h, o = (check_int(v, n, 1) for v, n in ((d, "d"), (h, "h"), (o, "o")))
    n_experts = check_int(n_experts, "n_experts", 1)
    k = check_int(k, "k", 1, n_experts)
    expert = 2 * d * h + 2 * h * o + h + o
    moe = 2 * d * n_experts + k * expert + 2 * k * o
    dense = 2 * d * (k * h) + 2 * (k * h) * o + k * h + o
    p_exp = d * h + h + h * o + o
    return {"moe_flops": moe, "dense_flops": dense, "moe_params": n_experts * p_exp + d * n_experts,
            "moe_active_params": k * p_exp + d * n_experts, "dense_params": d * k * h + k * h + k * h * o + o}


# ---------------------------------------------------------------------------
# softmax Gaussian MoE with a temperature (Nguyen, Akbarian & Ho 2024)
# ---------------------------------------------------------------------------
GATES = ("temperature", "activation")


def gaussian_moe_logpdf(x: torch.Tensor, y: torch.Tensor, theta: dict, gate: str = "temperature") -> torch.Tensor:
    """Log-density of a two-expert Gaussian MoE, ``p(y|x) = Σ_i g_i(x) N(y | a_i x + b_i, ν_i)``.

    Gate logits (expert 2's fixed at 0): ``temperature``: ``(β₁x + β₀)/τ`` (dense-to-sparse
    gating); ``activation``: ``tanh(β₁x + β₀)/τ`` (the paper's activation dense-to-sparse gate).
    ``theta`` holds tensors ``beta1, beta0, tau`` (``[...]``) and ``a, b, nu`` (``[..., 2]``);
    ``x, y``: ``[..., n]``.  Returns ``[..., n]``.
    """
    if gate not in GATES:
        raise ValueError(f"gate must be one of {GATES}; got {gate!r}")
    lin = theta["beta1"].unsqueeze(-1) * x + theta["beta0"].unsqueeze(-1)
    z = (lin if gate == "temperature" else torch.tanh(lin)) / theta["tau"].unsqueeze(-1)
    terms = []
    for i, logg in enumerate((torch.nn.functional.logsigmoid(z), torch.nn.functional.logsigmoid(-z))):
        nu = theta["nu"][..., i].unsqueeze(-1)
        mean = theta["a"][..., i].unsqueeze(-1) * x + theta["b"][..., i].unsqueeze(-1)
        terms.append(logg - 0.5 * (y - mean) ** 2 / nu - 0.5 * torch.log(2 * math.pi * nu))
    return torch.logaddexp(terms[0], terms[1])
