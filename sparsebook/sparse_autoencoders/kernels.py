"""Pure math of the sparse-autoencoder chapter: allocation rules, losses and dictionary metrics.

Shapes: ``pre`` are encoder pre-activations ``[..., B, m]`` (B tokens, m latents, any leading
batch of autoencoders); dictionaries are ``[F, d]`` (true) and ``[..., m, d]`` (decoder rows).
Every function validates its arguments and names the offending one in the error.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from sparsebook.validate import check_int, check_real

RULES = ("topk", "mutual", "feature")


def _t(x, name: str, ndim: int = 1) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray; got {type(x).__name__}")
    if x.ndim < ndim or x.numel() == 0:
        raise ValueError(f"{name} must be a non-empty array with at least {ndim} dimensions; got shape {tuple(x.shape)}")
    return x


# ---------------------------------------------------------------------------
# allocation rules: which (token, latent) pairs are active
# ---------------------------------------------------------------------------
def topk_mask(pre, k: int) -> torch.Tensor:
    """TopK allocation (Gao et al. 2024, Eq. 3; Ayonrinde 2024, Sec. 3): each token keeps its ``k``
    largest pre-activations.  ``pre [..., B, m]`` → bool mask of the same shape, exactly ``k`` per row."""
    pre = _t(pre, "pre", 1)
    k = check_int(k, "k", 1, pre.shape[-1])
    idx = pre.topk(k, dim=-1).indices
    return torch.zeros_like(pre, dtype=torch.bool).scatter_(-1, idx, True)


def mutual_choice_mask(pre, k: int) -> torch.Tensor:
    """Mutual Choice (= BatchTopK) allocation (Ayonrinde 2024, Sec. 3.2): the ``k·B`` largest
    pre-activations of the whole batch ``[B, m]`` are kept, so tokens get a variable number of latents.
    ``pre [..., B, m]`` → bool mask; exactly ``k·B`` per batch."""
    pre = _t(pre, "pre", 2)
    B, m = pre.shape[-2:]
    k = check_int(k, "k", 1, m)
    flat = pre.reshape(*pre.shape[:-2], B * m)
    idx = flat.topk(k * B, dim=-1).indices
    return torch.zeros_like(flat, dtype=torch.bool).scatter_(-1, idx, True).reshape(pre.shape)


def feature_choice_mask(pre, per_latent: int) -> torch.Tensor:
    """Feature Choice allocation (Ayonrinde 2024, Sec. 3.3): each latent (column) keeps its
    ``per_latent`` largest pre-activations over the batch's tokens.  ``pre [..., B, m]`` → bool mask,
    exactly ``per_latent`` per column (total ``per_latent·m``; equal budget to TopK when
    ``per_latent = k·B/m``)."""
    pre = _t(pre, "pre", 2)
    per_latent = check_int(per_latent, "per_latent", 1, pre.shape[-2])
    idx = pre.topk(per_latent, dim=-2).indices
    return torch.zeros_like(pre, dtype=torch.bool).scatter_(-2, idx, True)


def budget_per_latent(k: int, batch: int, m: int) -> int:
    """Feature Choice's per-latent capacity for the TopK budget ``k·B`` spread over ``m`` latents:
    ``max(1, round(k·B/m))``."""
    k, batch, m = check_int(k, "k", 1), check_int(batch, "batch", 1), check_int(m, "m", 1)
    return max(1, min(batch, int(round(k * batch / m))))


def allocate(pre, rule: str, k: int) -> torch.Tensor:
    """The mask of ``rule`` in :data:`RULES` at the TopK-equivalent budget ``k`` per token."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}; got {rule!r}")
    if rule == "topk":
        return topk_mask(pre, k)
    if rule == "mutual":
        return mutual_choice_mask(pre, k)
    pre = _t(pre, "pre", 2)
    return feature_choice_mask(pre, budget_per_latent(k, pre.shape[-2], pre.shape[-1]))


def gradient_topk_mask(pre, grad, w_dec, k: int) -> torch.Tensor:
    """g-SAE selection (Olmo et al. 2024, Sec. 3, our reading): rank latents by their first-order
    effect on the downstream loss, ``relu(pre_i)·|⟨d_i, ∇_x L⟩|``, and keep the ``k`` largest.
    pre ``[..., B, m]``; grad ``[..., B, d]`` (∇_x L per token); w_dec ``[..., m, d]`` (rows d_i)."""
    pre, grad, w_dec = _t(pre, "pre", 1), _t(grad, "grad", 1), _t(w_dec, "w_dec", 2)
    if w_dec.shape[-1] != grad.shape[-1] or w_dec.shape[-2] != pre.shape[-1]:
        raise ValueError(f"w_dec must have shape [..., m={pre.shape[-1]}, d={grad.shape[-1]}]; got {tuple(w_dec.shape)}")
    effect = torch.einsum("...bd,...md->...bm", grad, w_dec).abs()
    return topk_mask(torch.relu(pre) * effect, k)


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------
def fvu(x, xhat) -> torch.Tensor:
    """Fraction of variance unexplained, ``Σ‖x − x̂‖² / Σ‖x − x̄‖²`` over the last two dims
    (tokens, features); x, xhat ``[..., B, d]`` → ``[...]``.  (Gao et al. 2024's normalised MSE.)"""
    x, xhat = _t(x, "x", 2), _t(xhat, "xhat", 2)
    if x.shape != xhat.shape:
        raise ValueError(f"x and xhat must have the same shape; got {tuple(x.shape)} and {tuple(xhat.shape)}")
    num = (x - xhat).pow(2).sum((-1, -2))
    den = (x - x.mean(-2, keepdim=True)).pow(2).sum((-1, -2))
    return num / den.clamp_min(1e-12)


def auxk_loss(resid, pre, dead, w_dec, k_aux: int) -> torch.Tensor:
    """AuxK loss (Gao et al. 2024, Sec. 2.4): the ``k_aux`` largest pre-activations among *dead*
    latents reconstruct the main reconstruction's residual ``e = x − x̂``:
    ``‖e − ê‖² / ‖e − ē‖²`` with ``ê = TopK_aux(relu(pre) on dead) W_dec``.

    resid ``[..., B, d]``, pre ``[..., B, m]``, dead bool ``[..., m]``, w_dec ``[..., m, d]`` → ``[...]``;
    zero where no latent is dead.  With weights instead of a bool ``dead`` see :func:`aux_zipf_loss`.
    """
    dead = _t(dead, "dead", 1)
    if dead.dtype != torch.bool:
        raise TypeError(f"dead must be a bool tensor; got {dead.dtype}")
    return aux_zipf_loss(resid, pre, dead.to(pre.dtype), w_dec, k_aux)


def aux_zipf_loss(resid, pre, underuse, w_dec, k_aux: int) -> torch.Tensor:
    """Auxiliary loss for under-used latents (after Ayonrinde 2024's ``aux_zipf_loss``, our reading):
    weight each latent by its under-use ``u_i ∈ [0, 1]`` (1 = dead, 0 = used as expected), select the
    ``k_aux`` largest ``u_i·relu(pre_i)`` and let them reconstruct the residual as in :func:`auxk_loss`.
    ``u = 1[dead]`` gives AuxK exactly; see :func:`zipf_underuse` for ``u``."""
    resid, pre, w_dec = _t(resid, "resid", 2), _t(pre, "pre", 2), _t(w_dec, "w_dec", 2)
    underuse = _t(underuse, "underuse", 1)
    m = pre.shape[-1]
    k_aux = check_int(k_aux, "k_aux", 1, m)
    if underuse.shape[-1] != m:
        raise ValueError(f"underuse must have m={m} entries in its last dim; got {tuple(underuse.shape)}")
    if torch.any(underuse < 0) or torch.any(underuse > 1):
        raise ValueError("underuse must lie in [0, 1]")
    score = torch.relu(pre) * underuse.unsqueeze(-2)
    mask = topk_mask(score, k_aux) & (score > 0)
    zaux = torch.relu(pre) * mask
    ehat = torch.einsum("...bm,...md->...bd", zaux, w_dec)
    loss = fvu(resid, ehat)
    any_used = (underuse > 0).any(-1)
    return torch.where(any_used, loss, torch.zeros_like(loss))


def zipf_targets(m: int, k: float, alpha: float = 1.0) -> np.ndarray:
    """Expected firing frequency of the latent of rank r (1 = most used) under a Zipf law,
    ``f_r = c·r^(−α)`` with ``Σ_r f_r = k`` (k active latents per token on average), capped at 1.  Shape ``[m]``."""
    m = check_int(m, "m", 1)
    k = check_real(k, "k", 0, m, low_open=True)
    alpha = check_real(alpha, "alpha", 0, None)
    f = np.arange(1, m + 1, dtype=float) ** (-alpha)
    return np.minimum(1.0, f * k / f.sum())


def zipf_underuse(freq, targets) -> torch.Tensor:
    """Under-use of each latent against its Zipf target at its own frequency rank:
    ``u_i = clip(1 − f_i / f*_{rank(i)}, 0, 1)``; freq ``[..., m]`` (firing frequencies),
    targets ``[m]`` or ``[..., m]`` (:func:`zipf_targets`) → ``[..., m]``.  Dead latents get ``u = 1``."""
    freq = _t(freq, "freq", 1)
    targets = torch.as_tensor(_t(targets, "targets", 1), dtype=freq.dtype, device=freq.device)
    if targets.shape[-1] != freq.shape[-1]:
        raise ValueError(f"targets must have {freq.shape[-1]} entries; got {targets.shape[-1]}")
    rank = freq.argsort(-1, descending=True).argsort(-1)
    tgt = torch.gather(targets.expand_as(freq), -1, rank)
    return (1 - freq / tgt.clamp_min(1e-12)).clamp(0, 1)


# ---------------------------------------------------------------------------
# metrics against a known dictionary and known codes
# ---------------------------------------------------------------------------
def cosine_matrix(true_dict, learned) -> np.ndarray:
    """Cosines between true features ``[F, d]`` and learned directions ``[..., m, d]`` → ``[..., F, m]``."""
    a = np.asarray(_t(true_dict, "true_dict", 2).detach().cpu(), float)
    b = np.asarray(_t(learned, "learned", 2).detach().cpu(), float)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"true_dict and learned must share the last dim; got {a.shape[-1]} and {b.shape[-1]}")
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return np.einsum("fd,...md->...fm", a, b)


def mean_max_cosine(true_dict, learned) -> np.ndarray:
    """Mean over true features of their best cosine with any learned direction (MMCS; Sharkey et al. 2022)."""
    return cosine_matrix(true_dict, learned).max(-1).mean(-1)


def fraction_recovered(true_dict, learned, threshold: float = 0.9) -> np.ndarray:
    """Fraction of true features with some learned direction at cosine > ``threshold``."""
    threshold = check_real(threshold, "threshold", -1, 1)
    return (cosine_matrix(true_dict, learned).max(-1) > threshold).mean(-1)


def hungarian_match(score) -> tuple[float, np.ndarray, np.ndarray]:
    """One-to-one matching of rows to columns maximising the total ``score`` (``[F, m]``, ``F ≤ m``
    or not), by SciPy's ``linear_sum_assignment``; returns (mean matched score, rows, cols)."""
    s = np.asarray(score, float)
    if s.ndim != 2 or s.size == 0 or not np.isfinite(s).all():
        raise ValueError(f"score must be a finite 2-d array; got shape {s.shape}")
    r, c = linear_sum_assignment(s, maximize=True)
    return float(s[r, c].mean()), r, c


def correlation_matrix(codes, latents) -> np.ndarray:
    """Pearson correlations between true codes ``[N, F]`` and latents ``[N, m]`` → ``[F, m]``
    (a constant column correlates 0)."""
    a = np.asarray(_t(codes, "codes", 2).detach().cpu() if isinstance(codes, torch.Tensor) else codes, float)
    b = np.asarray(_t(latents, "latents", 2).detach().cpu() if isinstance(latents, torch.Tensor) else latents, float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"codes and latents must be [N, F] and [N, m] with the same N; got {a.shape} and {b.shape}")
    a = a - a.mean(0)
    b = b - b.mean(0)
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    c = a.T @ b
    ok = np.outer(na, nb) > 1e-12
    return np.where(ok, c / np.where(ok, np.outer(na, nb), 1.0), 0.0)


def hungarian_mcc(codes, latents) -> float:
    """Mean correlation coefficient after Hungarian matching: match true codes to latents one-to-one
    to maximise ``Σ |corr|``, average the matched ``|corr|`` (the MCC of ICA identifiability work)."""
    return hungarian_match(np.abs(correlation_matrix(codes, latents)))[0]


def dead_fraction(z) -> torch.Tensor:
    """Fraction of latents that never fire on the tokens of ``z [..., N, m]`` → ``[...]``."""
    z = _t(z, "z", 2)
    return (~(z != 0).any(-2)).to(torch.float64).mean(-1)


def l0(z) -> torch.Tensor:
    """Mean number of active latents per token, ``z [..., N, m]`` → ``[...]``."""
    z = _t(z, "z", 2)
    return (z != 0).to(torch.float64).sum(-1).mean(-1)


# ---------------------------------------------------------------------------
# automatic interpretation without a language model
# ---------------------------------------------------------------------------
def balanced_accuracy(pred, truth) -> np.ndarray:
    """``(TPR + TNR)/2`` of boolean predictions against boolean truth over the first axis
    (``[N, ...]`` → ``[...]``); a class that never occurs counts 0.5 for its rate."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    if p.shape != t.shape or p.shape[0] == 0:
        raise ValueError(f"pred and truth must have the same non-empty shape; got {p.shape} and {t.shape}")
    pos, neg = t.sum(0), (~t).sum(0)
    tpr = np.where(pos > 0, (p & t).sum(0) / np.maximum(pos, 1), 0.5)
    tnr = np.where(neg > 0, (~p & ~t).sum(0) / np.maximum(neg, 1), 0.5)
    return (tpr + tnr) / 2


def explain_and_score(fires_train, vars_train, fires_test, vars_test) -> tuple[np.ndarray, np.ndarray]:
    """Explanation = the planted boolean variable that best predicts where a latent fires on the
    training split (balanced accuracy); detection score = that explanation's balanced accuracy on
    held-out data, the scoring of Paulo et al. (2024, Sec. 3.3) with a variable in place of text.

    fires ``[N, m]`` bool, vars ``[N, V]`` bool → (best variable per latent ``[m]``, score ``[m]``)."""
    ft, vt = np.asarray(fires_train, bool), np.asarray(vars_train, bool)
    fe, ve = np.asarray(fires_test, bool), np.asarray(vars_test, bool)
    if ft.ndim != 2 or vt.ndim != 2 or ft.shape[0] != vt.shape[0] or fe.shape[0] != ve.shape[0]:
        raise ValueError("fires and vars must be [N, m] and [N, V] with matching N per split")
    if ft.shape[1] != fe.shape[1] or vt.shape[1] != ve.shape[1]:
        raise ValueError("train and test splits must have the same latents and variables")
    # balanced accuracy of variable v predicting latent j, for every pair [V, m]
    pos = ft.sum(0)[None, :]
    neg = (~ft).sum(0)[None, :]
    tp = vt.T.astype(float) @ ft.astype(float)
    tn = (~vt).T.astype(float) @ (~ft).astype(float)
    ba = (np.where(pos > 0, tp / np.maximum(pos, 1), 0.5) + np.where(neg > 0, tn / np.maximum(neg, 1), 0.5)) / 2
    best = ba.argmax(0)
    score = balanced_accuracy(ve[:, best], fe)
    return best, score


# ---------------------------------------------------------------------------
# codebook features and discrete codes
# ---------------------------------------------------------------------------
def codebook_select(h, codebook, k: int = 1) -> torch.Tensor:
    """Codebook bottleneck (Tamkin et al. 2023, Sec. 3): the ``k`` codes of largest cosine similarity
    with ``h``; returns their indices ``[..., B, k]``.  h ``[..., B, n]``, codebook ``[..., C, n]``."""
    h, codebook = _t(h, "h", 1), _t(codebook, "codebook", 2)
    if h.shape[-1] != codebook.shape[-1]:
        raise ValueError(f"h and codebook must share the last dim; got {h.shape[-1]} and {codebook.shape[-1]}")
    k = check_int(k, "k", 1, codebook.shape[-2])
    sim = torch.einsum("...bn,...cn->...bc", torch.nn.functional.normalize(h, dim=-1),
                       torch.nn.functional.normalize(codebook, dim=-1))
    return sim.topk(k, dim=-1).indices


def unique_code_fraction(codes_pos, codes_neg) -> float:
    """O'Neill & Bui (2024, Sec. 3): the fraction of positive examples whose discrete code never
    occurs among the negative examples' codes (1 = the component's state separates the task)."""
    p, n = np.asarray(codes_pos).ravel(), np.asarray(codes_neg).ravel()
    if p.size == 0 or n.size == 0:
        raise ValueError("codes_pos and codes_neg must be non-empty")
    return float((~np.isin(p, n)).mean())


def f1_score(pred, truth) -> float:
    """F1 of a predicted set (bool ``[n]``) against the true set; 1 when both are empty."""
    p, t = np.asarray(pred, bool).ravel(), np.asarray(truth, bool).ravel()
    if p.shape != t.shape:
        raise ValueError(f"pred and truth must have the same shape; got {p.shape} and {t.shape}")
    tp = int((p & t).sum())
    if p.sum() + t.sum() == 0:
        return 1.0
    return 2 * tp / (int(p.sum()) + int(t.sum()))


# ---------------------------------------------------------------------------
# feature absorption in hierarchical feature families
# ---------------------------------------------------------------------------
def absorption_counts(parent_on, child_on, parent_fires, child_fires) -> tuple[np.ndarray, np.ndarray]:
    """Feature absorption (Chanin et al. 2024, Sec. 3, "A is for Absorption"), counted per family.

    A parent feature's occurrence *can* be absorbed when one of its children is active with it; it
    *is* absorbed when the parent's latent stays silent while the latent of an active child fires
    (the child's latent has taken over the parent's direction)::

        co[g]       = #{n : parent_on[n, g] and any_c child_on[n, g, c]}
        absorbed[g] = #{n : parent_on[n, g] and not parent_fires[n, g]
                            and any_c (child_on[n, g, c] and child_fires[n, g, c])}

    parent_on, parent_fires ``[N, G]`` bool (true parent active / its latent fires); child_on,
    child_fires ``[N, G, c]`` bool.  Returns ``(absorbed [G], co [G])`` as int arrays; the absorption
    rate of family g is ``absorbed[g] / co[g]`` and the pooled rate ``Σ absorbed / Σ co``."""
    po, pf = np.asarray(parent_on), np.asarray(parent_fires)
    co_, cf = np.asarray(child_on), np.asarray(child_fires)
    for name, a in (("parent_on", po), ("parent_fires", pf), ("child_on", co_), ("child_fires", cf)):
        if a.dtype != bool:
            raise TypeError(f"{name} must be a boolean array; got dtype {a.dtype}")
    if po.ndim != 2 or po.shape[0] == 0 or pf.shape != po.shape:
        raise ValueError(f"parent_on and parent_fires must be the same non-empty [N, G]; got {po.shape} and {pf.shape}")
    if co_.ndim != 3 or co_.shape[:2] != po.shape or cf.shape != co_.shape:
        raise ValueError(f"child_on and child_fires must be the same [N, G, c] with [N, G] = {po.shape}; "
                         f"got {co_.shape} and {cf.shape}")
    co = po & co_.any(-1)
    absorbed = co & ~pf & (co_ & cf).any(-1)
    return absorbed.sum(0), co.sum(0)


def absorption_rate(parent_on, child_on, parent_fires, child_fires) -> float:
    """Pooled absorption rate ``Σ_g absorbed[g] / Σ_g co[g]`` of :func:`absorption_counts` (NaN when
    no parent ever co-occurs with a child)."""
    absorbed, co = absorption_counts(parent_on, child_on, parent_fires, child_fires)
    return float(absorbed.sum() / co.sum()) if co.sum() > 0 else float("nan")
