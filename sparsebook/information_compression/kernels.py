"""Pure math of the information_compression chapter: binning and KDE estimators of the information
plane, the coding rate of representations, compression and correlation summaries.

Shapes as in :mod:`sparsebook.information_compression`: a layer's activity ``t`` is ``(N, d)``, labels
``y`` are ``(N,)`` integers, features for coding rates ``z`` are ``(d, N)``.  Information is in bits,
coding rates in nats.  No training, no plotting, no experiment configs.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from sparsebook.validate import check_int, check_real


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------
def _real_2d(x, name: str, shape: str, expand_1d: bool) -> np.ndarray:
    """``x`` (array or tensor) as a finite float64 2-D array with both sizes >= 1; ``shape`` names the
    axes in the messages, ``expand_1d`` turns a 1-D input into one column."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real array of shape {shape}; got {type(x).__name__}") from None
    if expand_1d and arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        dims = shape.strip("()")
        raise ValueError(f"{name} must have shape {shape} with {dims} >= 1; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return arr


def _as_layer(t, name: str = "t") -> np.ndarray:
    """A layer's activity ``(N, d)`` (a 1-D input is one unit)."""
    return _real_2d(t, name, "(N, d)", expand_1d=True)


def _as_labels(y, n: int, name: str = "y") -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integer labels; got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have one label per row of t: {n} rows but {arr.shape[0]} labels")
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer class labels; got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= max(n, 2)):
        _, arr = np.unique(arr, return_inverse=True)
    return arr.reshape(-1).astype(np.int64)




# ---------------------------------------------------------------------------
# Discrete entropies and binning estimators
# ---------------------------------------------------------------------------
def entropy_bits(codes) -> float:
    """Plug-in entropy ``H = −Σ_k p_k log2 p_k`` (bits) of the empirical distribution of ``codes`` (N,) ints."""
    codes = np.asarray(codes).reshape(-1)
    if codes.size == 0:
        raise ValueError("codes must be non-empty")
    return _entropy_from_counts(np.unique(codes, return_counts=True)[1])


def _raw_codes(d: np.ndarray) -> np.ndarray:
    """Integer codes ``(N,)`` of the rows of a non-negative int64 array ``d`` ``(N, k)``: equal rows ↔ equal
    codes (mixed radix, re-ranked with ``np.unique`` whenever the code could overflow int64)."""
    code = np.zeros(d.shape[0], dtype=np.int64)
    n_codes = 1
    for j in range(d.shape[1]):
        radix = int(d[:, j].max()) + 1
        if n_codes * radix >= 2 ** 62:
            _, code = np.unique(code, return_inverse=True)
            code = code.reshape(-1).astype(np.int64)
            n_codes = int(code.max()) + 1
        code = code * radix + d[:, j]
        n_codes *= radix
    return code


def _as_digitized(digitized) -> np.ndarray:
    d = np.asarray(digitized)
    if d.ndim == 1:
        d = d[:, None]
    if d.ndim != 2 or d.dtype.kind not in "iub" or d.shape[0] < 1:
        raise ValueError(f"digitized must be an (N, d) integer array; got shape {d.shape}, dtype {d.dtype}")
    d = d.astype(np.int64)
    return d - d.min(axis=0, keepdims=True)


def joint_codes(digitized) -> np.ndarray:
    """Dense integer codes ``(N,)`` in ``0 … K−1`` of the rows of ``digitized`` ``(N, d)``: equal rows ↔
    equal codes, ``K`` the number of distinct rows, in lexicographic order of the rows.

    The same codes as ``np.unique(digitized, axis=0, return_inverse=True)`` (the tests use it as the
    oracle), which is 15–30 times slower on 4096 rows: the binning estimators call this thousands of
    times per chapter."""
    _, code = np.unique(_raw_codes(_as_digitized(digitized)), return_inverse=True)
    return code.reshape(-1).astype(np.int64)


def _entropy_from_counts(counts: np.ndarray) -> float:
    """Plug-in entropy (bits) of the empirical distribution with these counts (zeros ignored).

    ``scipy.stats.entropy(counts, base=2)`` computes the same quantity (the tests use it as the
    oracle); this form is kept because the stored estimates were computed with it, bit for bit."""
    counts = counts[counts > 0]
    p = counts / counts.sum()
    return float(max(0.0, -(p * np.log2(p)).sum()))


def fixed_bins(t, n_bins: int = 30, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Bin index ``(N, d)`` of every activation in ``n_bins`` equal-width bins over ``value_range``.

    ``value_range = (lo, hi)``; ``None`` uses the layer's own ``(min t, max t)``.  Values outside are
    put in the end bins.  This is the binning of Shwartz-Ziv & Tishby and of Saxe et al. (2018).
    A constant layer falls in one bin.
    """
    t = _as_layer(t)
    n_bins = check_int(n_bins, "n_bins", 2)
    if value_range is None:
        lo, hi = float(t.min()), float(t.max())
    else:
        try:
            lo, hi = (float(v) for v in value_range)
        except (TypeError, ValueError):
            raise TypeError(f"value_range must be a pair (lo, hi) of numbers; got {value_range!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"value_range must be finite with hi > lo; got {value_range!r}")
    if hi <= lo:
        return np.zeros(t.shape, dtype=np.int64)
    idx = np.floor((t - lo) / (hi - lo) * n_bins).astype(np.int64)
    return np.clip(idx, 0, n_bins - 1)


def adaptive_bins(t, n_bins: int = 30) -> np.ndarray:
    """Entropy-based (adaptive) bin index ``(N, d)`` of every activation (Chelombiev et al. 2019, Sec. 3).

    The bin edges sit at equally spaced ranks of the layer's distinct activation values
    ``u_(0) < … < u_(M−1)`` (all neurons pooled): edge ``k`` is ``u_(⌊k M / n_bins⌋)``, so every bin
    holds about the same number of distinct values.  Bin membership depends only on the order of
    the values, so the binning is invariant to any strictly increasing transform of ``t``.
    """
    t = _as_layer(t)
    n_bins = check_int(n_bins, "n_bins", 2)
    u, rank = np.unique(t, return_inverse=True)
    rank = rank.reshape(t.shape).astype(np.int64)
    m = u.size
    # bin of rank r = the largest k with ⌊k m / n_bins⌋ <= r, i.e. ⌈(r + 1) n_bins / m⌉ − 1
    return np.minimum(((rank + 1) * n_bins + m - 1) // m - 1, n_bins - 1)


def binned_information(digitized, y) -> tuple[float, float]:
    """``(I(X;T), I(T;Y))`` in bits of a binned layer ``digitized`` ``(N, d)`` over all N distinct inputs.

    With one row per input, ``p(x) = 1/N`` and ``T`` a deterministic function of ``X``:
    ``I(X;T) = H(T)`` and ``I(T;Y) = H(T) + H(Y) − H(T, Y)`` (plug-in entropies of the binned codes).
    """
    d = _as_digitized(digitized)
    y = _as_labels(y, d.shape[0])
    _, inv, counts = np.unique(_raw_codes(d), return_inverse=True, return_counts=True)
    n_y = int(y.max()) + 1
    h_t = _entropy_from_counts(counts)
    h_y = _entropy_from_counts(np.bincount(y))
    h_ty = _entropy_from_counts(np.bincount(inv.reshape(-1) * n_y + y))
    return h_t, float(min(max(0.0, h_t + h_y - h_ty), h_y))


def layer_information(t, y, n_bins: int = 30, strategy: str = "fixed", *,
                      value_range: tuple[float, float] | None = None) -> tuple[float, float]:
    """``(I(X;T), I(T;Y))`` in bits for a layer's activations ``t`` ``(N, d)`` on all N inputs.

    ``strategy="fixed"``: ``n_bins`` equal-width bins over ``value_range`` (default the layer's own
    range), as in Saxe et al. (2018).  ``strategy="adaptive"``: entropy-based binning (bins of equal
    mass of distinct values, Chelombiev et al. 2019).  ``I(X;T)`` is the entropy of the binned layer
    (``≤ log2 N``, 12 bits on the 12-bit task); ``I(T;Y) ≤ H(Y)``.  A constant layer carries zero
    information.
    """
    if strategy not in ("fixed", "adaptive"):
        raise ValueError(f"strategy must be 'fixed' or 'adaptive'; got {strategy!r}")
    t = _as_layer(t)
    y = _as_labels(y, t.shape[0])
    if strategy == "fixed":
        dig = fixed_bins(t, n_bins, value_range)
    else:
        if value_range is not None:
            raise ValueError("value_range applies to strategy='fixed' only")
        dig = adaptive_bins(t, n_bins)
    return binned_information(dig, y)


def pair_information(u, v, n_bins: int = 30, strategy: str = "adaptive") -> float:
    """Plug-in ``I(U;V) = H(U) + H(V) − H(U,V)`` in bits between two samples ``u`` ``(N, d_u)`` and
    ``v`` ``(N, d_v)``, each binned with ``strategy`` ("fixed": equal width over its own range,
    "adaptive": equal numbers of *distinct* values per bin, which is equal mass only without ties; a
    value shared by many samples, such as ReLU's zero, falls in one bin).  For benchmarks against continuous estimators (e.g. KSG)."""
    if strategy not in ("fixed", "adaptive"):
        raise ValueError(f"strategy must be 'fixed' or 'adaptive'; got {strategy!r}")
    u = _as_layer(u, "u")
    v = _as_layer(v, "v")
    if u.shape[0] != v.shape[0]:
        raise ValueError(f"u and v must have the same number of rows; got {u.shape[0]} and {v.shape[0]}")
    binner = fixed_bins if strategy == "fixed" else adaptive_bins
    cu = joint_codes(binner(u, n_bins))
    cv = joint_codes(binner(v, n_bins))
    h_u = _entropy_from_counts(np.bincount(cu))
    h_v = _entropy_from_counts(np.bincount(cv))
    _, counts = np.unique(cu * (int(cv.max()) + 1) + cv, return_counts=True)
    return float(max(0.0, h_u + h_v - _entropy_from_counts(counts)))


# ---------------------------------------------------------------------------
# Kernel density estimators (Kolchinsky & Tracey upper bound)
# ---------------------------------------------------------------------------
def _mean_log_kernel(t: np.ndarray, noise_var: float, block: int = 512) -> float:
    """``mean_i log( (1/N) Σ_j exp(−‖t_i − t_j‖² / (2σ²)) )`` (nats), in row blocks."""
    n = t.shape[0]
    sq = (t * t).sum(1)
    total = 0.0
    for s in range(0, n, block):
        tb = t[s:s + block]
        d2 = sq[s:s + block, None] + sq[None, :] - 2.0 * (tb @ t.T)
        np.maximum(d2, 0.0, out=d2)
        a = d2 * (-0.5 / noise_var)
        m = a.max(1, keepdims=True)
        total += float((np.log(np.exp(a - m).sum(1)) + m[:, 0]).sum())
    return total / n - math.log(n)


def kde_information(t, y, noise_var: float = 1e-3) -> tuple[float, float]:
    """``(I(X;T), I(T;Y))`` in bits from the Kolchinsky–Tracey KDE upper bound (Saxe et al. 2018, App. C).

    ``T = h(X) + ε``, ``ε ~ N(0, σ² I)`` with ``σ² = noise_var``; the pairwise-distance bound
    ``H(T) ≤ d/2 − mean_i log (1/N) Σ_j N(t_i; t_j, σ² I)`` minus ``H(T|X) = d/2 log(2πeσ²)`` gives
    ``I(X;T) = −mean_i log (1/N) Σ_j exp(−‖t_i − t_j‖²/(2σ²))``, at most ``log N``; ``I(T;Y)`` is the
    same bound on ``H(T)`` minus ``Σ_y p(y) H(T|Y=y)`` estimated class by class.
    """
    t = _as_layer(t)
    y = _as_labels(y, t.shape[0])
    noise_var = check_real(noise_var, "noise_var", 0, low_open=True)
    h = -_mean_log_kernel(t, noise_var)
    h_cond = 0.0
    for c in np.unique(y):
        tc = t[y == c]
        h_cond += tc.shape[0] / t.shape[0] * -_mean_log_kernel(tc, noise_var)
    ln2 = math.log(2.0)
    ixt = max(0.0, h) / ln2
    ity = max(0.0, h - h_cond) / ln2
    return float(ixt), float(ity)


def adaptive_kde_information(t, y, rel_noise: float = 0.1) -> tuple[float, float]:
    """KDE information with the noise scaled to the layer's activity (Chelombiev et al. 2019, Sec. 3).

    ``σ = rel_noise · max_{i,k} |t_ik|`` (our reading of "noise proportional to the layer's activity"),
    then :func:`kde_information`.  Rescaling the layer by a constant leaves the estimate unchanged.
    A layer that is identically zero carries zero information.
    """
    t = _as_layer(t)
    rel_noise = check_real(rel_noise, "rel_noise", 0, low_open=True)
    scale = float(np.abs(t).max())
    if scale == 0.0:
        _as_labels(y, t.shape[0])
        return 0.0, 0.0
    return kde_information(t, y, noise_var=(rel_noise * scale) ** 2)


ESTIMATORS = ("fixed", "adaptive", "kde", "adaptive_kde")


# ---------------------------------------------------------------------------
# Coding rate (CRATE / MCR²)
# ---------------------------------------------------------------------------
def _as_features(z, name: str = "z") -> np.ndarray:
    """Features ``(d, N)``, one column per sample."""
    return _real_2d(z, name, "(d, N)", expand_1d=False)


def coding_rate(z, eps: float) -> float:
    """Coding rate ``R(Z) = ½ logdet(I_d + d/(N ε²) Z Zᵀ)`` in nats, ``z`` of shape ``(d, N)``.

    Yu et al. (2023), CRATE, Eq. (2) (the rate of Ma et al. 2007 / MCR²): the number of nats needed to
    code the N columns of Z up to distortion ε.  ``Z Zᵀ = c I`` gives ``d/2 · log(1 + d c/(N ε²))``.
    """
    z = _as_features(z)
    eps = check_real(eps, "eps", 0, low_open=True)
    d, n = z.shape
    gram = z @ z.T
    sign, logdet = np.linalg.slogdet(np.eye(d) + (d / (n * eps ** 2)) * gram)
    return float(0.5 * logdet)


def class_coding_rate(z, labels, eps: float) -> float:
    """Class-conditional coding rate ``R^c = Σ_j N_j/(2N) logdet(I + d/(N_j ε²) Z_j Z_jᵀ)`` (nats).

    ``Z_j`` holds the columns of class ``j`` (MCR², Yu et al. 2020, Eq. 8: the samples are partitioned
    by class and weighted by ``N_j/N``; CRATE's compression term, :func:`subspace_coding_rate`, is a
    different object).  ``labels`` ``(N,)``.
    """
    z = _as_features(z)
    eps = check_real(eps, "eps", 0, low_open=True)
    lab = _as_labels(labels, z.shape[1], "labels")
    n = z.shape[1]
    total = 0.0
    for c in np.unique(lab):
        zc = z[:, lab == c]
        total += zc.shape[1] / n * coding_rate(zc, eps)
    return float(total)


def class_mean_cosine(t, y) -> float:
    """Cosine between the mean unit-normalized feature vectors of the two classes.

    ``t`` ``(N, d)`` activity, ``y`` ``(N,)`` binary labels.  −1: the classes point in opposite
    directions of one line (the same subspace, so no rate reduction); 0: orthogonal directions.
    Rows of zeros are left out.
    """
    t = _as_layer(t)
    y = _as_labels(y, t.shape[0])
    if len(np.unique(y)) != 2:
        raise ValueError("y must hold exactly two classes")
    norm = np.linalg.norm(t, axis=1)
    keep = norm > 0
    u = t[keep] / norm[keep, None]
    yk = y[keep]
    m = [u[yk == c].mean(0) for c in np.unique(yk)]
    den = np.linalg.norm(m[0]) * np.linalg.norm(m[1])
    return float(m[0] @ m[1] / den) if den > 0 else 0.0


def rate_reduction(z, labels, eps: float) -> float:
    """``ΔR = R(Z) − R^c(Z | classes)`` in nats: expand the whole, compress each class (MCR²)."""
    return coding_rate(z, eps) - class_coding_rate(z, labels, eps)


def normalize_columns(z) -> np.ndarray:
    """Columns of ``z`` ``(d, N)`` scaled to unit norm (zero columns stay zero), as CRATE's LayerNorm/sphere."""
    z = _as_features(z)
    norm = np.linalg.norm(z, axis=0, keepdims=True)
    return z / np.where(norm > 0, norm, 1.0)



# ---------------------------------------------------------------------------
# CRATE: sparse rate reduction block (Yu et al. 2023)
# ---------------------------------------------------------------------------
def _check_subspaces(u, d: int) -> np.ndarray:
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 3 or u.shape[1] != d or u.shape[2] < 1:
        raise ValueError(f"u must have shape (K, d={d}, p); got {u.shape}")
    return u


def _batched_tokens(z) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 2:
        z = z[None]
    if z.ndim != 3 or min(z.shape) < 1:
        raise ValueError(f"z must have shape (d, n) or (B, d, n); got {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("z must be finite")
    return z


def subspace_coding_rate(z, u, eps: float) -> np.ndarray:
    """CRATE's compression term ``R^c(Z; U) = Σ_k R(U_kᵀ Z)``, ``R(W) = ½ logdet(I_p + p/(n ε²) W Wᵀ)``
    (nats; Yu et al. 2023, the coding rate against the subspaces ``U_k``; every token is projected on
    every subspace, no labels).  ``z`` ``(d, n)`` or ``(B, d, n)`` (B token sets); ``u`` ``(K, d, p)``.
    Returns ``(B,)``."""
    z = _batched_tokens(z)
    u = _check_subspaces(u, z.shape[1])
    eps = check_real(eps, "eps", 0, low_open=True)
    p, n = u.shape[2], z.shape[2]
    w = np.einsum("kdp,bdn->bkpn", u, z)                                  # (B, K, p, n)
    g = np.eye(p) + (p / (n * eps ** 2)) * np.einsum("bkpn,bkqn->bkpq", w, w)
    return 0.5 * np.linalg.slogdet(g)[1].sum(-1)


def mssa_step(z, u, step: float) -> np.ndarray:
    """CRATE's compression step: ``Z + step·(MSSA(Z|U) − Z)``, a convex mix of the tokens with
    ``MSSA(Z|U) = Σ_k U_k SSA(U_kᵀZ)``, ``SSA(W) = W softmax(WᵀW)`` (softmax over each column's keys;
    Yu et al. 2023: ``(1 − κp/(nε²))Z + κp/(nε²) MSSA(Z|U)``, ``step = κp/(nε²)``).
    ``z`` ``(d, n)`` or ``(B, d, n)``; returns ``(B, d, n)``."""
    z = _batched_tokens(z)
    u = _check_subspaces(u, z.shape[1])
    step = check_real(step, "step", 0, 1)
    w = np.einsum("kdp,bdn->bkpn", u, z)
    logits = np.einsum("bkpi,bkpj->bkij", w, w)                             # (B, K, n, n): keys i, queries j
    logits -= logits.max(2, keepdims=True)
    a = np.exp(logits)
    a /= a.sum(2, keepdims=True)
    mssa = np.einsum("kdp,bkpi,bkij->bdj", u, w, a)
    return z + step * (mssa - z)


def ista_step(z, dictionary, eta: float = 0.1, lam: float = 0.1) -> np.ndarray:
    """CRATE's sparsification step: ``ReLU(Z + η Dᵀ(Z − D Z) − η λ)`` (one ISTA step towards a sparse
    ``Z`` with ``Z ≈ D Z``; Yu et al. 2023, CRATE's ISTA block, defaults ``η = λ = 0.1``).
    ``dictionary`` ``(d, d)``."""
    z = _batched_tokens(z)
    dmat = np.asarray(dictionary, dtype=np.float64)
    if dmat.shape != (z.shape[1], z.shape[1]):
        raise ValueError(f"dictionary must have shape ({z.shape[1]}, {z.shape[1]}); got {dmat.shape}")
    eta = check_real(eta, "eta", 0, low_open=True)
    lam = check_real(lam, "lam", 0)
    resid = z - np.einsum("de,ben->bdn", dmat, z)
    return np.maximum(z + eta * np.einsum("ed,ben->bdn", dmat, resid) - eta * lam, 0.0)


def unit_tokens(z) -> np.ndarray:
    """Tokens (columns) scaled to unit norm, ``(B, d, n)`` (CRATE normalizes before each step)."""
    z = _batched_tokens(z)
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.where(norm > 0, norm, 1.0)


# ---------------------------------------------------------------------------
# Summaries of trajectories
# ---------------------------------------------------------------------------
def compression(ixt) -> np.ndarray:
    """Compression of each trajectory: ``max over epochs of I(X;T) − final I(X;T)`` (bits, ≥ 0; below
    1e-9 counts as 0).

    ``ixt`` ``(..., R, L)``: I(X;T) along the records axis ``-2``; returns ``(..., L)``.
    """
    ixt = np.asarray(ixt, dtype=float)
    if ixt.ndim < 2:
        raise ValueError(f"ixt must have shape (..., R, L); got {ixt.shape}")
    c = ixt.max(axis=-2) - ixt[..., -1, :]
    return np.where(c < 1e-9, 0.0, c)             # rounding residue of equal values is no compression


def correlation_contrast(comp, acc, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Pearson r of each layer's compression with accuracy, and the contrast "last layer minus the
    mean of the other layers", with percentile bootstrap intervals over networks (paired resamples).

    ``comp`` ``(S, L)`` compression per network and layer, ``acc`` ``(S,)``.  In a resample, a layer
    whose compression is constant has no correlation and is left out of that resample's hidden mean
    (and of its own interval); a resample in which the last layer or every hidden layer is constant
    is dropped.  Returns ``{"r": (L,), "lo": (L,), "hi": (L,), "contrast": float, "contrast_lo",
    "contrast_hi", "contrast_se": float, "n_boot_used": int}`` (NaN where undefined).
    """
    comp = np.asarray(comp, dtype=float)
    acc = np.asarray(acc, dtype=float)
    if comp.ndim != 2 or comp.shape[1] < 2 or acc.shape != (comp.shape[0],) or comp.shape[0] < 3:
        raise ValueError(f"comp must be (S, L) with S >= 3, L >= 2 and acc (S,); got {comp.shape} and {acc.shape}")
    n_boot = check_int(n_boot, "n_boot", 10)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")

    def r_of(a, b):                       # a (..., S, L), b (..., S) -> (..., L)
        da = a - a.mean(-2, keepdims=True)
        db = (b - b.mean(-1, keepdims=True))[..., None]
        den = np.sqrt((da * da).sum(-2) * (db * db).sum(-2))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 1e-12, (da * db).sum(-2) / np.where(den > 1e-12, den, 1.0), np.nan)

    def contrast(r):
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return r[..., -1] - np.nanmean(r[..., :-1], axis=-1)

    r = r_of(comp, acc)
    idx = np.random.default_rng(seed).integers(0, comp.shape[0], size=(n_boot, comp.shape[0]))
    rb = r_of(comp[idx], acc[idx])                                   # (B, L)
    q = [(1 - level) / 2, (1 + level) / 2]
    lo = np.full(r.shape, np.nan)
    hi = np.full(r.shape, np.nan)
    for l in range(r.size):
        v = rb[:, l][np.isfinite(rb[:, l])]
        if v.size and np.isfinite(r[l]):
            lo[l], hi[l] = np.quantile(v, q)
    cb = contrast(rb)
    cb = cb[np.isfinite(cb)]
    c = float(contrast(r))
    if cb.size < 2 or not np.isfinite(c):
        c_lo = c_hi = c_se = float("nan")
    else:
        c_lo, c_hi = (float(v) for v in np.quantile(cb, q))
        c_se = float(cb.std(ddof=1))
    return {"r": r, "lo": lo, "hi": hi, "contrast": c, "contrast_lo": c_lo, "contrast_hi": c_hi,
            "contrast_se": c_se, "n_boot_used": int(cb.size)}


def coefficient_of_variation(x, axis: int = -1) -> np.ndarray:
    """Between-sample variation relative to the mean, ``sd(x) / mean(x)`` (``sd`` with ``ddof = 1``).

    ``x`` ``(..., S)`` with ``S >= 2`` samples along ``axis`` and a positive mean; returns ``(...)``.
    Used for the spread of compression across network initializations (Chelombiev et al. 2019).
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 0 or x.shape[axis] < 2:
        raise ValueError(f"x needs at least 2 samples along axis {axis}; got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x must be finite")
    mean = x.mean(axis=axis)
    if np.any(mean <= 0):
        raise ValueError("the mean of x must be positive")
    return x.std(axis=axis, ddof=1) / mean


def hidden_compression(info) -> np.ndarray:
    """Mean compression (bits) of the hidden layers, per seed: ``info`` ``(S, R, L, 2)`` -> ``(S,)``.

    Compression of a layer is ``max_epochs I(X;T) − final I(X;T)`` (:func:`compression`); the softmax
    layer (the last) is left out, since it is bounded and saturates whatever the activation.
    """
    info = np.asarray(info, dtype=float)
    if info.ndim != 4 or info.shape[-1] != 2:
        raise ValueError(f"info must have shape (S, R, L, 2); got {info.shape}")
    return compression(info[..., 0])[:, :-1].mean(-1)

