"""Information compression: the information plane of a small tanh/ReLU network, measured with
fixed and adaptive estimators, and the coding rate of its representations.

Chapter ``information_compression``.  Papers:

- Shwartz-Ziv & Tishby (2017), the 12-bit task and the information plane;
- Saxe et al. (2018) {saxe2018}: with fixed binning, tanh networks compress and ReLU networks do not;
- Chelombiev, Houghton & O'Donnell (2019) {chelombiev2019}: with adaptive estimators (entropy-based
  binning, a KDE whose noise scales with the layer's activity) non-saturating networks compress too,
  L2 regularization increases compression, and only the last layer's compression tracks generalization;
- Yu et al. (2023) (CRATE): the coding rate ``R(Z) = ½ logdet(I + d/(N ε²) Z Zᵀ)``.

Shapes: a layer's activity ``t`` is ``(N, d)`` (one row per input, ``N = 4096`` for the whole 12-bit
task); labels ``y`` are ``(N,)`` integers.  Information is in bits, coding rates in nats.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from sparsebook.progress import progress
from sparsebook.scales import check_scale
from sparsebook.seeding import seed_everything
from sparsebook.validate import check_int, check_real

CHAPTER = "information_compression"

# ---------------------------------------------------------------------------
# The 12-bit data set (Shwartz-Ziv & Tishby 2017)
# ---------------------------------------------------------------------------
#: The 30 edges of the icosahedron whose vertices carry the 12 bits.
ICOSAHEDRON_EDGES = (
    (0, 1), (0, 3), (0, 5), (0, 10), (0, 11), (1, 2), (1, 3), (1, 4), (1, 11), (2, 3),
    (2, 4), (2, 8), (2, 9), (3, 8), (3, 10), (4, 6), (4, 9), (4, 11), (5, 6), (5, 7),
    (5, 10), (5, 11), (6, 7), (6, 9), (6, 11), (7, 8), (7, 9), (7, 10), (8, 9), (8, 10),
)
#: The 6 antipodal vertex pairs of the icosahedron.
ANTIPODAL_PAIRS = ((0, 9), (1, 7), (2, 5), (3, 6), (4, 10), (8, 11))
N_BITS = 12
N_INPUTS = 2 ** N_BITS


def tishby_dataset() -> tuple[np.ndarray, np.ndarray]:
    """All 4096 inputs of the 12-bit task and their labels.

    Row ``r`` of ``X`` is the binary expansion of ``r`` (column 0 the most significant bit).
    With ``k`` the number of ones and ``a, b, c`` the numbers of pairs of "on" bits that are
    icosahedron edges, non-adjacent non-antipodal pairs, and antipodal pairs,
    ``y = 1`` iff ``103 k + 2 a − 22 b − 34 c > 429.5`` (2118 positives, as in the original file).

    Returns
    -------
    X : float32 array (4096, 12) of 0/1
    y : int64 array (4096,) of 0/1
    """
    r = np.arange(N_INPUTS)
    bits = (r[:, None] >> (N_BITS - 1 - np.arange(N_BITS))) & 1
    adj = np.zeros((N_BITS, N_BITS), dtype=np.int64)
    for i, j in ICOSAHEDRON_EDGES:
        adj[i, j] = adj[j, i] = 1
    anti = np.zeros((N_BITS, N_BITS), dtype=np.int64)
    for i, j in ANTIPODAL_PAIRS:
        anti[i, j] = anti[j, i] = 1
    k = bits.sum(1)
    a = np.einsum("ni,ij,nj->n", bits, adj, bits) // 2
    c = np.einsum("ni,ij,nj->n", bits, anti, bits) // 2
    b = k * (k - 1) // 2 - a - c
    y = (103 * k + 2 * a - 22 * b - 34 * c > 429.5).astype(np.int64)
    return bits.astype(np.float32), y


def train_test_split(n: int = N_INPUTS, train_fraction: float = 0.8, seed: int = 0,
                     shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` of a split of ``range(n)``.

    ``shuffle=True``: a seeded permutation (what this chapter uses).  ``shuffle=False``: the first
    ``round(train_fraction·n)`` rows, as in the original code; on the 12-bit task this leaves a test
    set of inputs with many leading ones, 84% of them positive against 52% overall.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an int >= 2; got {n!r}")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1); got {train_fraction!r}")
    n_train = int(round(train_fraction * n))
    n_train = min(max(n_train, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    return np.sort(order[:n_train]), np.sort(order[n_train:])


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------
def _as_layer(t, name: str = "t") -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    try:
        arr = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real array of shape (N, d); got {type(t).__name__}") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, d) with N, d >= 1; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (no NaN or inf activations)")
    return arr


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


def _check_bins(n_bins) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
        raise ValueError(f"n_bins must be an int >= 2; got {n_bins!r}")
    return int(n_bins)


def _check_positive(x, name: str) -> float:
    """A finite real > 0."""
    return check_real(x, name, 0, low_open=True)


# ---------------------------------------------------------------------------
# Discrete entropies and binning estimators
# ---------------------------------------------------------------------------
def entropy_bits(codes) -> float:
    """Plug-in entropy ``H = −Σ_k p_k log2 p_k`` (bits) of the empirical distribution of ``codes`` (N,) ints."""
    codes = np.asarray(codes).reshape(-1)
    if codes.size == 0:
        raise ValueError("codes must be non-empty")
    _, counts = np.unique(codes, return_counts=True)
    p = counts / counts.sum()
    return float(max(0.0, -(p * np.log2(p)).sum()))


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
    equal codes, ``K`` the number of distinct rows."""
    _, code = np.unique(_raw_codes(_as_digitized(digitized)), return_inverse=True)
    return code.reshape(-1).astype(np.int64)


def _entropy_from_counts(counts: np.ndarray) -> float:
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
    n_bins = _check_bins(n_bins)
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
    n_bins = _check_bins(n_bins)
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
    "adaptive": equal mass).  For benchmarks against continuous estimators (e.g. KSG)."""
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
    noise_var = _check_positive(noise_var, "noise_var")
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
    rel_noise = _check_positive(rel_noise, "rel_noise")
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
    if isinstance(z, torch.Tensor):
        z = z.detach().cpu().numpy()
    try:
        arr = np.asarray(z, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real array of shape (d, N)") from None
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have shape (d, N) with d, N >= 1; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return arr


def coding_rate(z, eps: float) -> float:
    """Coding rate ``R(Z) = ½ logdet(I_d + d/(N ε²) Z Zᵀ)`` in nats, ``z`` of shape ``(d, N)``.

    Yu et al. (2023), CRATE, Eq. (2) (the rate of Ma et al. 2007 / MCR²): the number of nats needed to
    code the N columns of Z up to distortion ε.  ``Z Zᵀ = c I`` gives ``d/2 · log(1 + d c/(N ε²))``.
    """
    z = _as_features(z)
    eps = _check_positive(eps, "eps")
    d, n = z.shape
    gram = z @ z.T
    sign, logdet = np.linalg.slogdet(np.eye(d) + (d / (n * eps ** 2)) * gram)
    return float(0.5 * logdet)


def class_coding_rate(z, labels, eps: float) -> float:
    """Class-conditional coding rate ``R^c = Σ_j N_j/(2N) logdet(I + d/(N_j ε²) Z_j Z_jᵀ)`` (nats).

    ``Z_j`` holds the columns of class ``j`` (MCR², Yu et al. 2020, Eq. 8; the compression term of
    CRATE's sparse rate reduction when the subspaces are the classes).  ``labels`` ``(N,)``.
    """
    z = _as_features(z)
    eps = _check_positive(eps, "eps")
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
# The 12-10-7-5-4-3-2 network, trained as a seeded ensemble in one batched model
# ---------------------------------------------------------------------------
LAYER_SIZES = (12, 10, 7, 5, 4, 3, 2)
#: Activations the chapter trains; tanh and softsign saturate, the others do not (on the positive side).
ACTIVATIONS = ("tanh", "softsign", "relu", "elu", "softplus", "centred_softplus", "leaky_relu")
SATURATING = ("tanh", "softsign")
_LN2 = math.log(2.0)


def activation_fn(name: str):
    """The torch function of activation ``name`` (one of :data:`ACTIVATIONS`).

    ``centred_softplus(x) = softplus(x) − log 2`` (zero at zero).
    """
    fns = {
        "tanh": torch.tanh,
        "softsign": torch.nn.functional.softsign,
        "relu": torch.relu,
        "elu": torch.nn.functional.elu,
        "softplus": torch.nn.functional.softplus,
        "centred_softplus": lambda x: torch.nn.functional.softplus(x) - _LN2,
        "leaky_relu": torch.nn.functional.leaky_relu,
    }
    if name not in fns:
        raise ValueError(f"activation must be one of {ACTIVATIONS}; got {name!r}")
    return fns[name]


def activation_range(name: str) -> tuple[float, float] | None:
    """The fixed range of a bounded activation (for fixed binning), ``None`` if unbounded."""
    activation_fn(name)
    return (-1.0, 1.0) if name in SATURATING else None


def init_weights(seed: int, sizes=LAYER_SIZES) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One network's weights ``W_l`` ``(n_{l+1}, n_l)`` and biases ``(n_{l+1}, 1)`` from seed ``seed``.

    Truncated normal weights, std ``1/√n_l`` cut at two std (as in the original code), zero biases.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0; got {seed!r}")
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        w = torch.randn(n_out, n_in, generator=g, dtype=torch.float32)
        while (bad := w.abs() > 2).any():
            w[bad] = torch.randn(int(bad.sum()), generator=g, dtype=torch.float32)
        out.append((w / math.sqrt(n_in), torch.zeros(n_out, 1, dtype=torch.float32)))
    return out


def _groups(activations) -> list[tuple[str, int, int]]:
    """Runs of equal activations: ``[(name, start, stop), ...]``."""
    out = []
    for i, a in enumerate(activations):
        if out and out[-1][0] == a:
            out[-1] = (a, out[-1][1], i + 1)
        else:
            out.append((a, i, i + 1))
    return out


def forward(params, x_t: torch.Tensor, activations) -> list[torch.Tensor]:
    """Every layer's activity for a batch of ``S`` networks, features first.

    ``params``: per layer ``(W (S, n_{l+1}, n_l), b (S, n_{l+1}, 1))``; ``x_t`` ``(12, N)`` shared by the
    networks; ``activations``: ``S`` names (network ``s`` uses ``activations[s]`` in every hidden layer).
    Hidden layers ``T_l = f(W_l T_{l−1} + b_l)``; the last entry is the output logits ``(S, 2, N)``.
    """
    groups = _groups(activations)
    fns = {a: activation_fn(a) for a, _, _ in groups}
    n_models = params[0][0].shape[0]
    if len(activations) != n_models:
        raise ValueError(f"activations must name one activation per network: {n_models} networks, "
                         f"{len(activations)} names")
    h = x_t.expand(n_models, -1, -1)
    outs = []
    for i, (w, b) in enumerate(params):
        h = torch.baddbmm(b, w, h)
        if i < len(params) - 1:
            if len(groups) == 1:
                h = fns[groups[0][0]](h)
            else:
                parts = h.split([s1 - s0 for _, s0, s1 in groups], 0)
                h = torch.cat([fns[a](part) for (a, _, _), part in zip(groups, parts)], 0)
        outs.append(h)
    return outs


def log_epochs(epochs: int, n_records: int) -> np.ndarray:
    """About ``n_records`` distinct epochs from 0 to ``epochs``, log-spaced (0 and ``epochs`` included)."""
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1; got {epochs!r}")
    if isinstance(n_records, bool) or not isinstance(n_records, (int, np.integer)) or n_records < 2:
        raise ValueError(f"n_records must be an int >= 2; got {n_records!r}")
    return np.unique(np.round(np.geomspace(1, epochs + 1, n_records) - 1).astype(np.int64))


@dataclass
class TrainedNetworks:
    """What :func:`train_networks` returns, for ``S`` networks.

    ``activations``, ``l2``, ``seeds`` ``(S,)`` describe network ``s``; ``epochs`` ``(R,)`` the record
    epochs; ``layers[l]`` float32 ``(S, R, 4096, n_l)``: activity of layer ``l`` on all inputs (the last
    layer is the softmax output); ``train_acc``/``test_acc`` ``(S,)`` at the end; ``loss`` ``(S, epochs)``
    training cross-entropy (without the L2 term).
    """

    activations: tuple
    l2: np.ndarray
    seeds: np.ndarray
    epochs: np.ndarray
    layers: list
    train_acc: np.ndarray
    test_acc: np.ndarray
    loss: np.ndarray

    def select(self, activation: str, l2: float | None = None) -> np.ndarray:
        """Indices of the networks with this activation (and this L2 strength, if given)."""
        mask = np.array([a == activation for a in self.activations])
        if l2 is not None:
            mask &= np.isclose(self.l2, l2)
        return np.flatnonzero(mask)


def train_networks(activations, seeds, epochs: int, lr: float, l2=0.0, n_records: int = 12,
                   train_fraction: float = 0.8, split_seed: int = 0) -> TrainedNetworks:
    """Train ``S`` 12-10-7-5-4-3-2 networks at once with full-batch Adam on the 12-bit task.

    Network ``s`` has activation ``activations[s]``, initial weights from ``seeds[s]``
    (:func:`init_weights`) and L2 strength ``l2[s]`` (a number applies to all).  Loss of network ``s``:
    mean cross-entropy on the training split ``+ l2_s · Σ_l ‖W_l‖²`` (weights only, as a Keras ``l2``
    regularizer); the losses are summed, so each network's gradient is its own.  The activity of every
    layer on all 4096 inputs is recorded at :func:`log_epochs`.  Deterministic:
    :func:`sparsebook.seed_everything` pins torch to one thread.
    """
    activations = tuple(activations)
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    n_models = len(activations)
    if n_models < 1 or seeds.shape[0] != n_models:
        raise ValueError(f"activations and seeds must have the same length >= 1; got {n_models} and {seeds.shape[0]}")
    for a in set(activations):
        activation_fn(a)
    lr = _check_positive(lr, "lr")
    l2 = np.broadcast_to(np.asarray(l2, dtype=np.float64), (n_models,)).copy()
    if not (np.isfinite(l2).all() and (l2 >= 0).all()):
        raise ValueError(f"l2 must be finite and >= 0; got {l2}")
    record = log_epochs(epochs, n_records)
    seed_everything(int(seeds[0]))
    X, y = tishby_dataset()
    tr, te = train_test_split(len(y), train_fraction, seed=split_seed)
    x_all = torch.from_numpy(np.ascontiguousarray(X.T))
    x_tr = torch.from_numpy(np.ascontiguousarray(X[tr].T))
    y_tr = torch.from_numpy(y[tr]).expand(n_models, 1, -1)
    inits = [init_weights(int(s)) for s in seeds]
    params = [(torch.stack([m[l][0] for m in inits]).requires_grad_(True),
               torch.stack([m[l][1] for m in inits]).requires_grad_(True)) for l in range(len(inits[0]))]
    flat = [p for wb in params for p in wb]
    opt = torch.optim.Adam(flat, lr=lr)
    l2_t = torch.from_numpy(l2.astype(np.float32))
    use_l2 = bool((l2 > 0).any())
    layers = [np.empty((n_models, len(record), N_INPUTS, n), dtype=np.float32) for n in LAYER_SIZES[1:]]
    losses = np.empty((n_models, epochs), dtype=np.float64)

    def snapshot(pos):
        with torch.no_grad():
            outs = forward(params, x_all, activations)
            outs[-1] = torch.softmax(outs[-1], dim=1)
            for l, o in enumerate(outs):
                layers[l][:, pos] = o.transpose(1, 2).numpy()

    rec_pos = 0
    if record[0] == 0:
        snapshot(0)
        rec_pos = 1
    for ep in range(epochs):
        logits = forward(params, x_tr, activations)[-1]
        ce = -torch.log_softmax(logits, 1).gather(1, y_tr).mean((1, 2))
        loss = ce.sum()
        if use_l2:
            loss = loss + (l2_t * sum((w * w).sum((1, 2)) for w, _ in params)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[:, ep] = ce.detach().numpy()
        if rec_pos < len(record) and record[rec_pos] == ep + 1:
            snapshot(rec_pos)
            rec_pos += 1
    with torch.no_grad():
        pred = forward(params, x_all, activations)[-1].argmax(1).numpy()
    correct = pred == y[None, :]
    return TrainedNetworks(activations, l2, seeds, record, layers, correct[:, tr].mean(1),
                           correct[:, te].mean(1), losses)


def fixed_ranges(nets: TrainedNetworks, models=None) -> list[list[tuple[float, float]]]:
    """Fixed-binning range per network and layer: ``[-1, 1]`` for bounded activations, ``[0, 1]`` for
    the softmax layer, else the layer's min and max over all recorded epochs (as in the original code)."""
    models = np.arange(len(nets.activations)) if models is None else np.asarray(models)
    out = []
    for s in models:
        bounded = activation_range(nets.activations[s])
        row = []
        for l, arr in enumerate(nets.layers):
            if l == len(nets.layers) - 1:
                row.append((0.0, 1.0))
            elif bounded is not None:
                row.append(bounded)
            else:
                lo, hi = float(arr[s].min()), float(arr[s].max())
                row.append((lo, hi if hi > lo else lo + 1.0))
        out.append(row)
    return out


def information_trajectory(nets: TrainedNetworks, estimator: str = "adaptive", n_bins: int = 30,
                           noise_var: float = 1e-3, rel_noise: float = 0.1, models=None,
                           points=None, records=None) -> np.ndarray:
    """Information plane of trained networks: array ``(S', R', L, 2)`` of ``(I(X;T), I(T;Y))`` in bits.

    ``estimator`` in :data:`ESTIMATORS`.  ``models``: indices of the networks (default all);
    ``points``: indices of the inputs to use (default all 4096; the KDE estimators cost O(N²) and may
    use a subsample); ``records``: indices of the record epochs to evaluate (default all).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}; got {estimator!r}")
    _, y = tishby_dataset()
    idx = np.arange(N_INPUTS) if points is None else np.asarray(points)
    y = y[idx]
    models = np.arange(len(nets.activations)) if models is None else np.asarray(models)
    rec = np.arange(len(nets.epochs)) if records is None else np.asarray(records)
    ranges = fixed_ranges(nets, models) if estimator == "fixed" else None
    out = np.zeros((len(models), len(rec), len(nets.layers), 2))
    for i, s in enumerate(models):
        for j, r in enumerate(rec):
            for l, arr in enumerate(nets.layers):
                t = arr[s, r][idx]
                if estimator == "fixed":
                    out[i, j, l] = layer_information(t, y, n_bins, "fixed", value_range=ranges[i][l])
                elif estimator == "adaptive":
                    out[i, j, l] = layer_information(t, y, n_bins, "adaptive")
                elif estimator == "kde":
                    out[i, j, l] = kde_information(t, y, noise_var)
                else:
                    out[i, j, l] = adaptive_kde_information(t, y, rel_noise)
    return out


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


def pearson_with_ci(x, y, n_boot: int = 2000, level: float = 0.9, seed: int = 0) -> tuple[float, float, float]:
    """Pearson correlation of paired samples with a percentile bootstrap interval ``(r, lo, hi)``.

    Resamples in which a coordinate is constant have no correlation and are dropped; NaN if ``x`` or
    ``y`` is constant.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or x.size < 3:
        raise ValueError(f"x and y must be 1-D of the same length >= 3; got {x.shape} and {y.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")

    def r_of(a, b):
        da = a - a.mean(-1, keepdims=True)
        db = b - b.mean(-1, keepdims=True)
        den = np.sqrt((da * da).sum(-1) * (db * db).sum(-1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 1e-12, (da * db).sum(-1) / np.where(den > 1e-12, den, 1.0), np.nan)

    r = float(r_of(x, y))
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    rb = r_of(x[idx], y[idx])
    rb = rb[np.isfinite(rb)]
    if rb.size == 0 or not np.isfinite(r):
        return r, float("nan"), float("nan")
    lo, hi = np.quantile(rb, [(1 - level) / 2, (1 + level) / 2])
    return r, float(lo), float(hi)


def hidden_coding_rates(nets: TrainedNetworks, eps: float = 0.5, models=None) -> np.ndarray:
    """``(S', R, L−1, 2)``: coding rate ``R(Z)`` and class rate ``R^c(Z)`` (nats) of every hidden layer,
    ``Z`` the layer's activity on all inputs, ``(d, 4096)``, with unit-norm columns."""
    _, y = tishby_dataset()
    models = np.arange(len(nets.activations)) if models is None else np.asarray(models)
    n_rec = len(nets.epochs)
    out = np.zeros((len(models), n_rec, len(nets.layers) - 1, 2))
    for i, s in enumerate(models):
        for r in range(n_rec):
            for l, arr in enumerate(nets.layers[:-1]):
                z = normalize_columns(arr[s, r].T)
                out[i, r, l] = coding_rate(z, eps), class_coding_rate(z, y, eps)
    return out


# ---------------------------------------------------------------------------
# Experiments
# ---------------------------------------------------------------------------
_check_int = check_int


@dataclass(frozen=True)
class PlaneConfig:
    """Information-plane experiment.

    Trains ``n_models`` seeds of every activation in ``activations`` without L2, and of every
    activation in ``l2_activations`` with L2 strength ``l2`` (same seeds, so the comparison is paired),
    all in one batched run; measures their information planes with fixed and adaptive binning (adaptive
    only for the L2 runs), and
    with both KDE estimators for ``kde_activations`` (first seed, a seeded subsample of ``kde_points``
    inputs, ``kde_records`` of the record epochs: the KDE costs O(N²)).
    """

    activations: tuple = ACTIVATIONS
    l2_activations: tuple = ("tanh", "relu")
    l2: float = 1e-3
    n_models: int = 2
    epochs: int = 500
    lr: float = 5e-3
    n_records: int = 10
    n_bins: int = 30
    kde_activations: tuple = ("tanh", "relu")
    kde_points: int = 512
    kde_records: int = 6
    noise_var: float = 1e-3
    rel_noise: float = 0.1
    eps: float = 0.5

    @classmethod
    def preset(cls, scale: str) -> "PlaneConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(l2_activations=ACTIVATIONS, n_models=10, epochs=4000, lr=1e-3, n_records=30,
                   kde_points=N_INPUTS, kde_records=12)

    def validate(self) -> "PlaneConfig":
        for a in self.activations + self.l2_activations + self.kde_activations:
            activation_fn(a)
        for a in self.kde_activations:
            if a not in self.activations:
                raise ValueError(f"kde_activations must be among activations; got {a!r}")
        _check_int(self.n_models, "n_models", 1)
        _check_int(self.epochs, "epochs", 1)
        _check_int(self.n_records, "n_records", 2)
        _check_int(self.n_bins, "n_bins", 2)
        _check_int(self.kde_points, "kde_points", 2)
        _check_int(self.kde_records, "kde_records", 2)
        if self.kde_points > N_INPUTS:
            raise ValueError(f"kde_points must be <= {N_INPUTS}; got {self.kde_points}")
        if not self.l2 > 0:
            raise ValueError(f"l2 must be > 0; got {self.l2!r}")
        for name in ("lr", "noise_var", "rel_noise", "eps"):
            _check_positive(getattr(self, name), name)
        return self


@dataclass
class PlaneResult:
    """Results of :func:`run_information_plane`.

    ``info[(estimator, activation, l2)]``: ``(S, R', L, 2)`` bits, ``(I(X;T), I(T;Y))`` per seed,
    record and layer (``L = 6``: five hidden layers and the softmax); the KDE entries cover the first
    seed and the records ``kde_record_index`` only.  ``rates[activation]``: ``(S, R, 5, 2)`` nats,
    ``(R(Z), R^c(Z))`` of the hidden layers without L2.  ``train_acc``, ``test_acc``, ``final_loss``:
    ``{(activation, l2): (S,)}``.  ``sample_layers[activation]``: the first seed's layer activities
    ``[(R, 4096, n_l) per layer]`` for the ``kde_activations`` (for estimator checks).
    """

    config: PlaneConfig
    epochs: np.ndarray
    info: dict
    rates: dict
    train_acc: dict
    test_acc: dict
    final_loss: dict
    kde_record_index: np.ndarray
    sample_layers: dict


def run_information_plane(config: PlaneConfig, seed: int = 0, scale: str = "ci") -> PlaneResult:
    """Train the networks of ``config`` (seeds ``seed … seed + n_models − 1``) and measure their
    information planes with every estimator, and the coding rates of their hidden layers."""
    if not isinstance(config, PlaneConfig):
        raise TypeError(f"config must be a PlaneConfig; got {type(config).__name__}")
    config.validate()
    seed_everything(seed)
    seeds = list(range(seed, seed + config.n_models))
    runs = [(a, 0.0) for a in config.activations] + [(a, float(config.l2)) for a in config.l2_activations]
    acts = tuple(a for a, _ in runs for _ in seeds)
    l2s = [l2 for _, l2 in runs for _ in seeds]
    nets = train_networks(acts, seeds * len(runs), config.epochs, config.lr, l2s, config.n_records)
    kde_rec = np.unique(np.round(np.linspace(0, len(nets.epochs) - 1, config.kde_records)).astype(int))
    pts = np.sort(np.random.default_rng(seed).permutation(N_INPUTS)[:config.kde_points])
    info, rates, tr_acc, te_acc, loss, sample = {}, {}, {}, {}, {}, {}
    for act, l2 in progress(runs, desc="information", scale=scale):
        m = nets.select(act, l2)
        for est in (("fixed", "adaptive") if l2 == 0.0 else ("adaptive",)):
            info[(est, act, l2)] = information_trajectory(nets, est, config.n_bins, models=m)
        if l2 == 0.0 and act in config.kde_activations:
            info[("kde", act, l2)] = information_trajectory(
                nets, "kde", noise_var=config.noise_var, models=m[:1], points=pts, records=kde_rec)
            info[("adaptive_kde", act, l2)] = information_trajectory(
                nets, "adaptive_kde", rel_noise=config.rel_noise, models=m[:1], points=pts, records=kde_rec)
            sample[act] = [arr[m[0]].copy() for arr in nets.layers]
        if l2 == 0.0:
            rates[act] = hidden_coding_rates(nets, config.eps, models=m)
        tr_acc[(act, l2)], te_acc[(act, l2)] = nets.train_acc[m], nets.test_acc[m]
        loss[(act, l2)] = nets.loss[m, -1]
    return PlaneResult(config, nets.epochs, info, rates, tr_acc, te_acc, loss, kde_rec, sample)


@dataclass(frozen=True)
class GeneralizationConfig:
    """Compression vs generalization: ``n_models`` initializations of one activation, one split."""

    activation: str = "tanh"
    n_models: int = 16
    epochs: int = 500
    lr: float = 5e-3
    l2: float = 0.0
    n_records: int = 10
    n_bins: int = 30
    n_boot: int = 2000
    level: float = 0.9

    @classmethod
    def preset(cls, scale: str) -> "GeneralizationConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(n_models=64, epochs=4000, lr=1e-3, n_records=30)

    def validate(self) -> "GeneralizationConfig":
        activation_fn(self.activation)
        _check_int(self.n_models, "n_models", 3)
        _check_int(self.epochs, "epochs", 1)
        _check_int(self.n_records, "n_records", 2)
        _check_int(self.n_bins, "n_bins", 2)
        _check_int(self.n_boot, "n_boot", 10)
        _check_positive(self.lr, "lr")
        if not (self.l2 >= 0):
            raise ValueError(f"l2 must be >= 0; got {self.l2!r}")
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1); got {self.level!r}")
        return self


def run_generalization(config: GeneralizationConfig, seed: int = 0) -> dict:
    """Per-layer compression (adaptive binning) against test accuracy across seeds.

    Seeds ``1000 + seed … 1000 + seed + n_models − 1`` (disjoint from the information-plane runs).
    Returns ``{"compression": (S, L) bits, "test_acc": (S,), "train_acc": (S,), "r": (L,),
    "lo": (L,), "hi": (L,)}``: Pearson r of each layer's compression with test accuracy and its
    bootstrap interval at ``level``.
    """
    if not isinstance(config, GeneralizationConfig):
        raise TypeError(f"config must be a GeneralizationConfig; got {type(config).__name__}")
    config.validate()
    seed_everything(seed)
    seeds = list(range(1000 + seed, 1000 + seed + config.n_models))
    nets = train_networks((config.activation,) * config.n_models, seeds, config.epochs, config.lr,
                          config.l2, config.n_records)
    comp = compression(information_trajectory(nets, "adaptive", config.n_bins)[..., 0])
    stats = np.array([pearson_with_ci(comp[:, l], nets.test_acc, config.n_boot, config.level, seed=seed)
                      for l in range(comp.shape[1])])
    return {"compression": comp, "test_acc": nets.test_acc, "train_acc": nets.train_acc,
            "r": stats[:, 0], "lo": stats[:, 1], "hi": stats[:, 2]}


# ---------------------------------------------------------------------------
# Summaries and figures for the chapter
# ---------------------------------------------------------------------------
LAYER_NAMES = ("10", "7", "5", "4", "3", "softmax")


def hidden_compression(info) -> np.ndarray:
    """Mean compression (bits) of the hidden layers, per seed: ``info`` ``(S, R, L, 2)`` -> ``(S,)``.

    Compression of a layer is ``max_epochs I(X;T) − final I(X;T)`` (:func:`compression`); the softmax
    layer (the last) is left out, since it is bounded and saturates whatever the activation.
    """
    info = np.asarray(info, dtype=float)
    if info.ndim != 4 or info.shape[-1] != 2:
        raise ValueError(f"info must have shape (S, R, L, 2); got {info.shape}")
    return compression(info[..., 0])[:, :-1].mean(-1)


def compression_table(res: PlaneResult) -> str:
    """Text table: per activation, hidden-layer compression (bits, mean over seeds) with fixed and
    adaptive binning, and test accuracy."""
    lines = [f"{'activation':<18}{'fixed (bits)':>14}{'adaptive (bits)':>17}{'test acc':>10}"]
    for act in res.config.activations:
        f = hidden_compression(res.info[("fixed", act, 0.0)]).mean()
        a = hidden_compression(res.info[("adaptive", act, 0.0)]).mean()
        acc = res.test_acc[(act, 0.0)].mean()
        lines.append(f"{act:<18}{f:>14.2f}{a:>17.2f}{acc:>10.3f}")
    return "\n".join(lines)


def _plane_axis(ax, info, title=""):
    from sparsebook import plotting

    mean = info.mean(0)                               # (R, L, 2), mean over seeds
    for l in range(mean.shape[1]):
        c = plotting.COLORS[l % len(plotting.COLORS)]
        ax.plot(mean[:, l, 0], mean[:, l, 1], "-", color=c, label=f"layer {LAYER_NAMES[l]}", lw=1.2)
        ax.plot(mean[0, l, 0], mean[0, l, 1], "o", color=c, mfc="none", ms=5)
        ax.plot(mean[-1, l, 0], mean[-1, l, 1], "o", color=c, ms=5)
    plotting.label(ax, "I(X;T) (bits)", "I(T;Y) (bits)", title)


def plot_planes(res: PlaneResult, activations=("tanh", "relu"), estimators=("fixed", "adaptive")):
    """Information planes (mean over seeds): rows ``estimators``, columns ``activations``; one line per
    layer from the first record (open circle) to the last (filled)."""
    from sparsebook import plotting

    fig, axes = plotting.figure(len(activations), len(estimators))
    names = {"fixed": "fixed binning", "adaptive": "adaptive binning", "kde": "KDE, σ² = 1e-3",
             "adaptive_kde": "adaptive KDE"}
    for i, est in enumerate(estimators):
        for j, act in enumerate(activations):
            ax = axes[i * len(activations) + j]
            _plane_axis(ax, res.info[(est, act, 0.0)], title=f"{act}, {names[est]}")
    fig = plotting.finish(fig, legend=False)
    axes[0].legend(fontsize=7)
    return fig


def plot_compression(res: PlaneResult):
    """Hidden-layer compression per activation, fixed against adaptive binning (bars: mean over seeds,
    dots: seeds)."""
    from sparsebook import plotting

    fig, axes = plotting.figure(1, 1)
    ax = axes[0]
    acts = res.config.activations
    x = np.arange(len(acts))
    for k, (est, off) in enumerate((("fixed", -0.2), ("adaptive", 0.2))):
        vals = np.array([hidden_compression(res.info[(est, a, 0.0)]) for a in acts])   # (A, S)
        ax.bar(x + off, vals.mean(1), width=0.38, color=plotting.COLORS[k], label=f"{est} binning")
        for s in range(vals.shape[1]):
            ax.plot(x + off, vals[:, s], "k.", ms=3)
    ax.set_xticks(x, [a.replace("centred_softplus", "c-softplus").replace("leaky_relu", "leaky") for a in acts],
                  rotation=30)
    plotting.label(ax, "activation", "hidden-layer compression (bits)", "compression by activation")
    return plotting.finish(fig)


def plot_l2(res: PlaneResult):
    """Per-layer compression (adaptive binning, mean over seeds) with and without L2."""
    from sparsebook import plotting

    acts = res.config.l2_activations
    fig, axes = plotting.figure(len(acts), 1)
    layers = np.arange(len(LAYER_NAMES))
    for ax, act in zip(axes, acts):
        for k, l2 in enumerate((0.0, float(res.config.l2))):
            comp = compression(res.info[("adaptive", act, l2)][..., 0]).mean(0)
            ax.plot(layers, comp, "o-", color=plotting.COLORS[k], label=f"L2 = {l2:g}")
        ax.set_xticks(layers, LAYER_NAMES)
        plotting.label(ax, "layer (width)", "compression (bits)", f"{act}, adaptive binning")
    return plotting.finish(fig)


def plot_generalization(gen: dict):
    """Left: softmax-layer compression against test accuracy, one point per seed.  Right: Pearson r
    of each layer's compression with test accuracy, with its bootstrap interval."""
    from sparsebook import plotting

    fig, axes = plotting.figure(2, 1)
    axes[0].plot(gen["compression"][:, -1], 100 * gen["test_acc"], "o", color=plotting.COLORS[0])
    plotting.label(axes[0], "softmax-layer compression (bits)", "test accuracy (%)", "one point per seed")
    layers = np.arange(len(gen["r"]))
    axes[1].errorbar(layers, gen["r"], yerr=[gen["r"] - gen["lo"], gen["hi"] - gen["r"]], fmt="o",
                     color=plotting.COLORS[1], capsize=3)
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set_xticks(layers, LAYER_NAMES)
    plotting.label(axes[1], "layer (width)", "Pearson r with test accuracy", "90% bootstrap intervals")
    return plotting.finish(fig, legend=False)


def plot_coding_rate(res: PlaneResult, layer: int = -1):
    """Class-conditional coding rate ``R^c`` and rate reduction ``ΔR`` of one hidden layer (default the
    last) over training, per activation (mean over seeds)."""
    from sparsebook import plotting

    fig, axes = plotting.figure(2, 1)
    ep = np.maximum(res.epochs, 0.5)
    for k, act in enumerate(res.config.activations):
        r = res.rates[act][:, :, layer].mean(0)          # (R, 2)
        c = plotting.COLORS[k % len(plotting.COLORS)]
        axes[0].plot(ep, r[:, 1], "-", color=c, label=act)
        axes[1].plot(ep, r[:, 0] - r[:, 1], "-", color=c, label=act)
    for ax in axes:
        ax.set_xscale("log")
    plotting.label(axes[0], "epoch (0 drawn at 0.5)", "$R^c(Z)$ (nats)", "class-conditional coding rate")
    plotting.label(axes[1], "epoch (0 drawn at 0.5)", r"$\Delta R = R - R^c$ (nats)", "rate reduction")
    fig = plotting.finish(fig, legend=False)
    axes[0].legend(fontsize=7)
    return fig


def invariance_check(layers, warp=np.sinh, n_bins: int = 30) -> dict:
    """Apply a strictly increasing ``warp`` to every recorded layer of one network and compare the
    information estimates: ``{"adaptive": max |ΔI|, "fixed": max |ΔI|}`` in bits over layers, records
    and both coordinates (fixed binning on each layer's own range)."""
    _, y = tishby_dataset()
    out = {"adaptive": 0.0, "fixed": 0.0}
    for arr in layers:
        for t in arr:
            t64 = t.astype(np.float64)
            for est in out:
                a = np.array(layer_information(t64, y, n_bins, est))
                b = np.array(layer_information(warp(t64), y, n_bins, est))
                out[est] = max(out[est], float(np.abs(a - b).max()))
    return out


def bounds_hold(res: PlaneResult, tol: float = 1e-9) -> bool:
    """Every estimate of ``res`` satisfies ``0 <= I(T;Y) <= H(Y)``, ``0 <= I(X;T) <= log2 N``."""
    _, y = tishby_dataset()
    h_y = _entropy_from_counts(np.bincount(y))
    ok = True
    for (est, _, _), v in res.info.items():
        n = res.config.kde_points if est in ("kde", "adaptive_kde") else N_INPUTS
        ok &= bool((v >= -tol).all() and (v[..., 1] <= h_y + tol).all() and (v[..., 0] <= math.log2(n) + tol).all())
    return ok
