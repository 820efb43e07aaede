"""Dendrites and sparse distributed representations (Ahmad & Hawkins 2016).

A dendritic segment with ``s`` synapses onto a population of ``n`` cells fires an
NMDA spike when at least ``theta`` of its synapses see an active cell.  Patterns
are sparse: ``a`` of the ``n`` cells are active.  This module computes the
paper's error probabilities exactly (to relative 1e-12 in double precision, in
log space, far below the underflow of a naive evaluation), simulates them by
Monte Carlo in JAX, and runs the chapter's experiments.

Everything here is a hypergeometric tail.  Draw ``m`` items without replacement
from a population of ``N`` that holds ``K`` marked items; the number of marked
items drawn, ``X``, has

    P(X = b) = C(K, b) C(N − K, m − b) / C(N, m)
             = C(m, b) (K)_b (N − K)_{m−b} / (N)_m,                          (H)

with ``(x)_k = x (x − 1) ⋯ (x − k + 1)`` the falling factorial.  The second form
has ``m + 1`` terms, each a sum of at most ``m`` logarithms of integers, so in
log space its relative error is a few ``m·ε`` whatever the size of ``N``.

- False match (paper eq. 1): ``P = Σ_{b ≥ θ} C(s, b) C(n − s, a − b) / C(n, a)``:
  ``X`` = active cells among the ``s`` synapses, population ``n``, ``a`` marked
  (active), ``s`` drawn.
- False negative under noise (paper, "robustness to noise"): ``v`` of the stored
  pattern's ``a`` cells are replaced by cells outside it; the segment (``s``
  synapses onto the pattern) misses when more than ``s − θ`` of its cells are
  among the replaced: ``P = Σ_{b > s − θ} C(s, b) C(a − s, v − b) / C(a, v)``.
- Union (paper, "the union property"): ``M`` patterns of ``s`` synapses each on
  one segment give on average ``n (1 − (1 − s/n)^M)`` distinct synapses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from numbers import Integral

import numpy as np
from scipy.special import gammaln, logsumexp
from scipy.stats import binom

# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------


def _int_array(x, name: str) -> np.ndarray:
    """``x`` as an int64 array; raises TypeError for non-integers, ValueError for negatives."""
    arr = np.asarray(x)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a non-negative integer (or an array of them); got {x!r}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise TypeError(f"{name} must hold integer values; got {x!r}")
    arr = arr.astype(np.int64)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0; got {x!r}")
    return arr


def _check_le(small, big, small_name: str, big_name: str) -> None:
    if np.any(small > big):
        raise ValueError(f"{small_name} must be <= {big_name}; got {small_name}={small.tolist()} "
                         f"and {big_name}={big.tolist()}")


def _scalar_or_array(x: np.ndarray):
    return float(x) if np.ndim(x) == 0 else x


# ---------------------------------------------------------------------------
# exact probabilities
# ---------------------------------------------------------------------------


def _log_falling(x: np.ndarray, kmax: int) -> np.ndarray:
    """``log (x)_k`` for k = 0..kmax, shape ``x.shape + (kmax + 1,)``; −inf where (x)_k = 0."""
    i = np.arange(kmax, dtype=np.float64)
    factors = x[..., None].astype(np.float64) - i            # x, x−1, …, x−kmax+1
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(factors > 0, np.log(np.where(factors > 0, factors, 1.0)), -np.inf)
    out = np.zeros(x.shape + (kmax + 1,))
    out[..., 1:] = np.cumsum(logs, axis=-1)
    return out


def hypergeom_log_sf(k, population, marked, draws) -> np.ndarray:
    """``log P(X ≥ k)`` for ``X`` ~ Hypergeometric(population N, marked K, draws m), exactly.

    Uses form (H) of the module docstring with ``m ← min(K, m)`` (the law is
    symmetric in K and m), in log space: no overflow, no underflow (values far
    below 1e-308 come back as finite logs), relative error ~1e-13.

    Arguments broadcast against each other; all are non-negative integers with
    ``K <= N`` and ``m <= N``.  Returns an array of the broadcast shape (−inf
    where the probability is exactly 0).
    """
    k, N, K, m = np.broadcast_arrays(*(_int_array(v, nm) for v, nm in
                                       ((k, "k"), (population, "population"), (marked, "marked"), (draws, "draws"))))
    _check_le(K, N, "marked", "population")
    _check_le(m, N, "draws", "population")
    K, m = np.minimum(K, m), np.maximum(K, m)   # symmetry: fewer terms
    # X = b marked among m draws ⇔ by symmetry b draws among K marked; use K (the smaller) terms:
    # P(X = b) = C(K, b) (m)_b (N − m)_{K−b} / (N)_K.
    kmax = int(K.max()) if K.size else 0
    b = np.arange(kmax + 1)
    lf_m = _log_falling(m, kmax)                     # log (m)_b
    lf_rest = _log_falling(N - m, kmax)              # log (N − m)_j
    lf_N = _log_falling(N, kmax)                     # log (N)_j
    Kb = K[..., None]
    valid = b <= Kb
    j = np.where(valid, Kb - b, 0)
    log_choose = gammaln(Kb + 1.0) - gammaln(b + 1.0) - gammaln(np.where(valid, Kb - b, 0) + 1.0)
    log_rest = np.take_along_axis(lf_rest, j, axis=-1)
    log_norm = np.take_along_axis(lf_N, np.broadcast_to(Kb, K.shape + (1,)), axis=-1)
    logpmf = log_choose + lf_m + log_rest - log_norm
    logpmf = np.where(valid & (b >= k[..., None]), logpmf, -np.inf)
    with np.errstate(divide="ignore"):
        out = logsumexp(logpmf, axis=-1)
    out = np.where(k <= 0, 0.0, out)                  # P(X ≥ 0) = 1 exactly
    return np.minimum(out, 0.0)


def log_false_match_probability(n, a, s, theta):
    """Natural log of :func:`false_match_probability` (finite far below 1e-308)."""
    n, a, s, theta = (_int_array(v, nm) for v, nm in ((n, "n"), (a, "a"), (s, "s"), (theta, "theta")))
    n, a, s, theta = np.broadcast_arrays(n, a, s, theta)
    _check_le(a, n, "a", "n")
    _check_le(s, n, "s", "n")
    _check_le(theta, s, "theta", "s")
    return _scalar_or_array(hypergeom_log_sf(theta, n, a, s))


def false_match_probability(n, a, s, theta):
    """Probability that a random pattern of ``a`` active cells out of ``n`` activates at least
    ``theta`` of a segment's ``s`` synapses (Ahmad & Hawkins 2016, eq. 1):

        P = Σ_{b=θ}^{s} C(s, b) C(n − s, a − b) / C(n, a).

    Exact to relative ~1e-12 for every representable value (computed in log
    space; values below the smallest double return 0.0: use
    :func:`log_false_match_probability` for those).  Vectorised: arguments
    broadcast; a scalar in gives a float out.

    Raises ``TypeError`` for non-integers and ``ValueError`` unless
    ``0 <= a <= n``, ``0 <= s <= n``, ``0 <= theta <= s``.
    """
    return _scalar_or_array(np.exp(log_false_match_probability(n, a, s, theta)))


def false_negative_probability(a, s, theta, v):
    """Probability that a segment stops recognising its pattern when ``v`` of the pattern's ``a``
    active cells are replaced by random cells outside it (Ahmad & Hawkins 2016, noise robustness).

    The segment's ``s`` synapses sit on ``s`` of the ``a`` cells; it keeps firing while at
    least ``theta`` of those cells stay active, so it misses when more than ``s − θ`` of them
    are among the ``v`` replaced:

        P = Σ_{b=s−θ+1}^{s} C(s, b) C(a − s, v − b) / C(a, v)        (independent of n).

    Raises ``ValueError`` unless ``s <= a``, ``theta <= s`` and ``v <= a`` (all >= 0).
    """
    a, s, theta, v = (_int_array(x, nm) for x, nm in ((a, "a"), (s, "s"), (theta, "theta"), (v, "v")))
    a, s, theta, v = np.broadcast_arrays(a, s, theta, v)
    _check_le(s, a, "s", "a")
    _check_le(theta, s, "theta", "s")
    _check_le(v, a, "v", "a")
    logp = hypergeom_log_sf(s - theta + 1, a, s, v)
    return _scalar_or_array(np.exp(logp))


def union_synapse_count(n, s, m):
    """Expected number of distinct synapses on a segment storing ``m`` patterns of ``s`` synapses
    each, every pattern's synapses drawn uniformly from ``n`` cells (the union property):

        E[|union|] = n (1 − (1 − s/n)^m).

    Returns a float (or array).  Raises ``ValueError`` unless ``0 <= s <= n`` and ``m >= 0``.
    """
    n, s, m = (_int_array(x, nm) for x, nm in ((n, "n"), (s, "s"), (m, "m")))
    n, s, m = np.broadcast_arrays(n, s, m)
    _check_le(s, n, "s", "n")
    if np.any(n == 0):
        raise ValueError("n must be >= 1")
    out = n * -np.expm1(m * np.log1p(-s / n))
    return _scalar_or_array(out)


def union_false_match_probability(n, a, s, m, theta):
    """False-match rate of a segment that stores the union of ``m`` patterns of ``s`` synapses:
    :func:`false_match_probability` with ``s`` replaced by the union's expected size
    :func:`union_synapse_count` rounded to the nearest integer.
    """
    su = np.rint(np.asarray(union_synapse_count(n, s, m))).astype(np.int64)
    theta = _int_array(theta, "theta")
    _check_le(theta, np.maximum(su, theta * 0 + np.asarray(s)), "theta", "s")
    return false_match_probability(n, a, su, theta)


# ---------------------------------------------------------------------------
# Monte Carlo (JAX)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MonteCarloResult:
    """Outcome of a Monte Carlo estimate of a probability.

    ``hits`` of ``trials`` random trials succeeded; ``estimate = hits / trials`` with
    binomial standard error ``stderr``; ``exact`` is the formula's value and
    ``z = (estimate − exact) / sqrt(exact (1 − exact) / trials)``.
    """

    hits: int
    trials: int
    exact: float

    @property
    def estimate(self) -> float:
        return self.hits / self.trials

    @property
    def stderr(self) -> float:
        p = self.estimate
        return math.sqrt(max(p * (1 - p), 1e-300) / self.trials)

    @property
    def z(self) -> float:
        sd = math.sqrt(self.exact * (1 - self.exact) / self.trials)
        return (self.estimate - self.exact) / sd if sd > 0 else 0.0


def _random_subsets(key, rows: int, population: int, size: int):
    """A ``(rows, population)`` 0/1 float32 matrix whose rows are uniform random ``size``-subsets."""
    import jax
    import jax.numpy as jnp

    u = jax.random.uniform(key, (rows, population))
    idx = jax.lax.top_k(u, size)[1] if size > 0 else jnp.zeros((rows, 0), jnp.int32)
    return jnp.zeros((rows, population), jnp.float32).at[jnp.arange(rows)[:, None], idx].set(1.0)


def _count_hits(key, population: int, size_x: int, size_y: int, rows_x: int, rows_y: int, lo: int, hi: int):
    """Count pairs (x, y) of random subsets (``rows_x`` of size ``size_x``, ``rows_y`` of size ``size_y``)
    whose overlap |x ∩ y| lies in [lo, hi].  Overlaps of all pairs at once: one 0/1 matrix product."""
    import jax
    import jax.numpy as jnp

    kx, ky = jax.random.split(key)
    x = _random_subsets(kx, rows_x, population, size_x)
    y = _random_subsets(ky, rows_y, population, size_y)
    overlap = x @ y.T                      # exact: integers < 2**24 in float32
    return jnp.sum((overlap >= lo) & (overlap <= hi), dtype=jnp.int32)


_count_hits_jit = None


def _hits(key, population, size_x, size_y, rows_x, rows_y, lo, hi):
    global _count_hits_jit
    if _count_hits_jit is None:
        import jax

        _count_hits_jit = jax.jit(_count_hits, static_argnums=(1, 2, 3, 4, 5, 6, 7))
    return int(_count_hits_jit(key, population, size_x, size_y, rows_x, rows_y, lo, hi))


def _mc_blocks(trials: int, population: int) -> tuple[int, int, int]:
    """Split ``trials`` into blocks of rows_x × rows_y pairs with a bounded matrix size."""
    if not isinstance(trials, Integral) or isinstance(trials, bool) or trials < 1:
        raise ValueError(f"trials must be an int >= 1; got {trials!r}")
    side = int(max(1, min(1024, math.isqrt(trials), (2**25 // max(population, 1)))))
    per_block = side * side
    blocks = max(1, -(-trials // per_block))
    return side, side, blocks


def _simulate(population, size_x, size_y, lo, hi, trials, seed):
    import jax

    rx, ry, blocks = _mc_blocks(trials, population)
    key = jax.random.key(int(seed))
    hits = 0
    for kb in jax.random.split(key, blocks):
        hits += _hits(kb, population, size_x, size_y, rx, ry, lo, hi)
    return hits, rx * ry * blocks


def simulate_false_match(n: int, a: int, s: int, theta: int, trials: int = 1_000_000, seed: int = 0) -> MonteCarloResult:
    """Monte Carlo estimate of :func:`false_match_probability`.

    Draws random segments (``s`` synapses on distinct cells out of ``n``) and random
    patterns (``a`` active cells out of ``n``) and counts the pairs whose overlap is at
    least ``theta``.  Overlaps of ``R × R`` pairs come from one product of 0/1 matrices
    (``R ≤ 1024``), so a million trials cost one matmul.  Pairs that share a pattern
    are independent given it (every fixed pattern has the same overlap law), so the
    binomial standard error holds.  ``trials`` is rounded up to whole blocks.
    """
    n, a, s, theta = (int(_int_array(v, nm)) for v, nm in ((n, "n"), (a, "a"), (s, "s"), (theta, "theta")))
    exact = false_match_probability(n, a, s, theta)  # validates the arguments
    hits, total = _simulate(n, s, a, theta, s, trials, seed)
    return MonteCarloResult(hits=hits, trials=total, exact=float(exact))


def simulate_false_negative(a: int, s: int, theta: int, v: int, trials: int = 1_000_000, seed: int = 0) -> MonteCarloResult:
    """Monte Carlo estimate of :func:`false_negative_probability`.

    Draws random segments (``s`` of the pattern's ``a`` cells) and random noise (``v``
    of the ``a`` cells replaced) and counts the pairs where more than ``s − θ`` of the
    segment's cells were replaced (the replacements lie outside the pattern, so no
    synapse sees them).
    """
    a, s, theta, v = (int(_int_array(x, nm)) for x, nm in ((a, "a"), (s, "s"), (theta, "theta"), (v, "v")))
    exact = false_negative_probability(a, s, theta, v)
    hits, total = _simulate(a, s, v, s - theta + 1, s, trials, seed)
    return MonteCarloResult(hits=hits, trials=total, exact=float(exact))


def simulate_false_match_numpy(n: int, a: int, s: int, theta: int, trials: int, seed: int = 0) -> float:
    """The same Monte Carlo in plain NumPy, one trial at a time (the benchmark's peer)."""
    rng = np.random.default_rng(seed)
    segment = np.zeros(n, bool)
    hits = 0
    for _ in range(trials):
        segment[:] = False
        segment[rng.choice(n, s, replace=False)] = True
        pattern = rng.choice(n, a, replace=False)
        hits += int(segment[pattern].sum() >= theta)
    return hits / trials


def simulate_union_false_match(n: int, a: int, s: int, m: int, theta: int, trials: int = 1_000_000,
                               seed: int = 0) -> MonteCarloResult:
    """Monte Carlo false-match rate of a segment storing the union of ``m`` random patterns of ``s``
    synapses (the union's size is random here, not its mean); ``exact`` holds the
    mean-size approximation :func:`union_false_match_probability` it is compared with."""
    import jax
    import jax.numpy as jnp

    n, a, s, m, theta = (int(_int_array(x, nm)) for x, nm in ((n, "n"), (a, "a"), (s, "s"), (m, "m"), (theta, "theta")))
    if m < 1:
        raise ValueError(f"m must be >= 1; got {m}")
    approx = union_false_match_probability(n, a, s, m, theta)
    rx, ry, blocks = _mc_blocks(trials, n)

    @partial(jax.jit, static_argnums=())
    def block(key):
        ks = jax.random.split(key, m + 1)
        seg = sum(_random_subsets(k, ry, n, s) for k in ks[:m])
        seg = jnp.minimum(seg, 1.0)
        pat = _random_subsets(ks[m], rx, n, a)
        return jnp.sum(pat @ seg.T >= theta, dtype=jnp.int32)

    hits = sum(int(block(k)) for k in jax.random.split(jax.random.key(int(seed)), blocks))
    return MonteCarloResult(hits=hits, trials=rx * ry * blocks, exact=float(approx))


# ---------------------------------------------------------------------------
# Experiments
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DendritesConfig:
    """Parameters of the chapter's experiments (defaults follow the paper's figures).

    ``preset("ci")`` runs in seconds on a laptop; ``preset("full")`` uses the paper's
    Monte Carlo budget (1e8 trials a point) and finer grids.
    """

    scale: str = "ci"
    # false match against n (paper: a = 64, 128, 256; s = 24, θ = 12)
    n_values: tuple = tuple(int(x) for x in np.unique(np.rint(np.logspace(np.log10(500), np.log10(50_000), 25))))
    a_values: tuple = (64, 128, 256)
    s: int = 24
    theta: int = 12
    dense_fraction: float = 0.5
    sparse_fraction: float = 0.02
    # false match against s with θ = s/2
    s_values: tuple = tuple(range(2, 65, 2))
    n_for_s: int = 10_000
    a_for_s: int = 200
    # subsampling: segment of s synapses on a large pattern of a cells out of n
    n_sub: int = 200_000
    a_sub_values: tuple = (500, 2000, 8000)
    s_sub_values: tuple = tuple(range(2, 41, 2))
    sub_tolerance: float = 1e-9
    # noise
    a_noise: int = 64
    s_noise: int = 24
    n_noise: int = 10_000
    theta_noise_values: tuple = (6, 9, 12, 15, 18)
    # union
    n_union: int = 10_000
    a_union: int = 64
    s_union: int = 24
    theta_union: int = 12
    m_values: tuple = tuple(range(1, 41))
    union_tolerance: float = 1e-6
    # optimal threshold grid (paper: n 10k-190k, sparsity 0.5%-3%, s 20-50)
    grid_n: tuple = tuple(range(10_000, 190_001, 20_000))
    grid_sparsity: tuple = (0.005, 0.01, 0.015, 0.02, 0.025, 0.03)
    grid_s: tuple = tuple(range(20, 51, 5))
    grid_theta: tuple = tuple(range(1, 21))
    optimum_noise: float = 0.25
    optimum_noise_values: tuple = (0.1, 0.2, 0.25, 0.3, 0.4, 0.5)
    # Monte Carlo: (n, a, s, θ) false-match points, (a, s, θ, v) false-negative points,
    # (n, a, s, m, θ) union points
    mc_trials: int = 4_000_000
    mc_false_match: tuple = ((1000, 50, 24, 8), (2000, 64, 24, 6), (1000, 100, 24, 10), (4000, 128, 16, 5))
    mc_false_negative: tuple = ((64, 24, 12, 16), (64, 24, 12, 24), (64, 24, 12, 32), (128, 32, 20, 40))
    mc_union: tuple = ((2000, 40, 20, 5, 6), (2000, 40, 20, 10, 8))

    @classmethod
    def preset(cls, scale: str) -> "DendritesConfig":
        from sparsebook.scales import check_scale

        check_scale(scale)
        if scale == "ci":
            return cls(scale="ci")
        return cls(scale="full", mc_trials=100_000_000,
                   n_values=tuple(int(x) for x in np.unique(np.rint(np.logspace(np.log10(500), 5, 60)))),
                   grid_n=tuple(range(10_000, 190_001, 10_000)),
                   grid_sparsity=tuple(np.round(np.arange(0.005, 0.0301, 0.0025), 4)),
                   grid_s=tuple(range(20, 51, 2)),
                   mc_false_match=cls.mc_false_match + ((10_000, 200, 24, 6), (5_000, 128, 24, 7)),
                   mc_false_negative=cls.mc_false_negative + ((256, 48, 24, 96),))


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x (the exponent of a power law y ∝ x^k)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError("x and y must be 1-D arrays of the same length >= 2")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be > 0 for a log-log fit")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def run_scaling(cfg: DendritesConfig) -> dict:
    """False match against n (several a), at fixed sparsity (dense and sparse), against s with θ = s/2,
    and under subsampling (s < a).  Returns arrays for the figures and the fitted exponents."""
    n = np.asarray(cfg.n_values)
    out = {"n": n, "fm_vs_n": {a: false_match_probability(n, a, cfg.s, cfg.theta) for a in cfg.a_values}}
    large = n >= 0.5 * n.max()
    out["slope_vs_n"] = {a: loglog_slope(n[large], out["fm_vs_n"][a][large]) for a in cfg.a_values}
    for name, frac in (("dense", cfg.dense_fraction), ("sparse", cfg.sparse_fraction)):
        a = np.rint(frac * n).astype(int)
        keep = a >= cfg.theta                     # fewer active cells than θ can never match
        out[f"n_{name}"] = n[keep]
        out[f"fm_{name}"] = false_match_probability(n[keep], a[keep], cfg.s, cfg.theta)
        # n → ∞ at fixed a/n = p: the hypergeometric tail tends to the binomial tail
        out[f"fm_{name}_limit"] = float(binom.sf(cfg.theta - 1, cfg.s, frac))
    s = np.asarray(cfg.s_values)
    out["s"] = s
    out["log10_fm_vs_s"] = log_false_match_probability(cfg.n_for_s, cfg.a_for_s, s, s // 2) / np.log(10)
    fit = np.polyfit(s, out["log10_fm_vs_s"], 1, full=True)
    resid = fit[1][0] if len(fit[1]) else 0.0
    ss_tot = float(np.sum((out["log10_fm_vs_s"] - out["log10_fm_vs_s"].mean()) ** 2))
    out["s_slope"] = float(fit[0][0])
    ssub = np.asarray(cfg.s_sub_values)
    out["s_min_sub"] = {a: int(ssub[out_sub <= cfg.sub_tolerance].min()) if np.any(out_sub <= cfg.sub_tolerance) else None
                        for a, out_sub in ((a, false_match_probability(cfg.n_sub, a, np.asarray(cfg.s_sub_values),
                                                                       np.asarray(cfg.s_sub_values) // 2))
                                           for a in cfg.a_sub_values)}
    out["s_r2"] = 1.0 - float(resid) / ss_tot
    out["s_sub"] = ssub
    out["fm_sub"] = {a: false_match_probability(cfg.n_sub, a, ssub, ssub // 2) for a in cfg.a_sub_values}
    return out


def run_noise(cfg: DendritesConfig) -> dict:
    """False negatives against the fraction of the pattern replaced, for several θ, with each θ's
    false-match rate at ``n_noise``."""
    v = np.arange(cfg.a_noise + 1)
    thetas = np.asarray(cfg.theta_noise_values)
    fn = false_negative_probability(cfg.a_noise, cfg.s_noise, thetas[:, None], v[None, :])
    fm = false_match_probability(cfg.n_noise, cfg.a_noise, cfg.s_noise, thetas)
    # largest noise fraction with P(miss) <= 1%, per θ
    tolerated = np.array([v[row <= 0.01].max() / cfg.a_noise for row in fn])
    # noise fraction at which P(miss) crosses 1/2 (linear interpolation; P(miss) rises with v)
    half = np.array([np.interp(0.5, row, v / cfg.a_noise) for row in fn])
    return {"noise": v / cfg.a_noise, "thetas": thetas, "fn": fn, "fm": fm, "tolerated_1pct": tolerated,
            "half_miss_noise": half}


def run_union(cfg: DendritesConfig) -> dict:
    """Union property: distinct synapses and false-match rate against the number of stored patterns m."""
    m = np.asarray(cfg.m_values)
    count = union_synapse_count(cfg.n_union, cfg.s_union, m)
    fm = union_false_match_probability(cfg.n_union, cfg.a_union, cfg.s_union, m, cfg.theta_union)
    ok = m[fm <= cfg.union_tolerance]
    return {"m": m, "synapses": count, "fm": fm, "m_max": int(ok.max()) if ok.size else 0}


def run_optimal_threshold(cfg: DendritesConfig) -> dict:
    """Median false-match rate over the grid (n, sparsity, s) against θ; the θ that minimises the median
    of false match + false negative (a fraction ``optimum_noise`` of the pattern replaced), and that
    optimum for other noise levels."""
    N, SP, S, TH = np.meshgrid(cfg.grid_n, cfg.grid_sparsity, cfg.grid_s, cfg.grid_theta, indexing="ij")
    A = np.rint(N * SP).astype(np.int64)
    thetas = np.asarray(cfg.grid_theta)
    fm = false_match_probability(N, A, S, TH).reshape(-1, len(thetas))
    out = {"theta": thetas, "median_fm": np.median(fm, axis=0), "optimum": {}, "median_total": {}}
    for noise in cfg.optimum_noise_values:
        V = np.rint(A * noise).astype(np.int64)
        fn = false_negative_probability(A, S, TH, V).reshape(-1, len(thetas))
        total = np.median(fm + fn, axis=0)
        out["median_total"][noise] = total
        out["optimum"][noise] = int(thetas[np.argmin(total)])
    if cfg.optimum_noise not in out["optimum"]:
        raise ValueError("optimum_noise must be one of optimum_noise_values")
    out["theta_star"] = out["optimum"][cfg.optimum_noise]
    return out


def run_monte_carlo(cfg: DendritesConfig, seed: int = 0) -> dict:
    """Monte Carlo estimates at the configured points, each with its exact value and z-score."""
    from sparsebook.progress import progress
    from sparsebook.seeding import seed_everything

    seed_everything(seed)
    points = ([("false match", p) for p in cfg.mc_false_match] + [("false negative", p) for p in cfg.mc_false_negative]
              + [("union", p) for p in cfg.mc_union])
    rows = []
    for i, (kind, p) in enumerate(progress(points, desc="Monte Carlo", scale=cfg.scale)):
        fn = {"false match": simulate_false_match, "false negative": simulate_false_negative,
              "union": simulate_union_false_match}[kind]
        rows.append((kind, p, fn(*p, trials=cfg.mc_trials, seed=seed * 1000 + i)))
    exact_rows = [r for kind, _, r in rows if kind != "union"]
    union_rows = [r for kind, _, r in rows if kind == "union"]
    return {"rows": rows, "max_abs_z": max(abs(r.z) for r in exact_rows),
            "union_max_rel_dev": max(abs(r.estimate / r.exact - 1) for r in union_rows) if union_rows else float("nan")}


# ---------------------------------------------------------------------------
# Figures (house style; one function per figure of the chapter)
# ---------------------------------------------------------------------------


def plot_scaling(res: dict, cfg: DendritesConfig):
    """Three panels: false match against n, against s (θ = s/2), and under subsampling."""
    from sparsebook import plotting

    fig, (ax1, ax2, ax3) = plotting.figure(ncols=3)
    for a, y in res["fm_vs_n"].items():
        ax1.loglog(res["n"], y, label=f"a = {a}")
    ax1.loglog(res["n_dense"], res["fm_dense"], "k--", label=f"a = {cfg.dense_fraction:.0%} of n")
    ax1.loglog(res["n_sparse"], res["fm_sparse"], "k:", label=f"a = {cfg.sparse_fraction:.0%} of n")
    plotting.label(ax1, "population size n (cells)", "P(false match)", f"s = {cfg.s}, θ = {cfg.theta}")
    ax2.semilogy(res["s"], 10.0 ** res["log10_fm_vs_s"], "o-")
    plotting.label(ax2, "synapses on the segment s", "P(false match)",
                   f"θ = s/2, n = {cfg.n_for_s:,}, a = {cfg.a_for_s}")
    for a, y in res["fm_sub"].items():
        ax3.semilogy(res["s_sub"], y, "o-", label=f"a = {a:,}")
    ax3.axhline(cfg.sub_tolerance, color="grey", lw=0.8)
    plotting.label(ax3, "synapses on the segment s (s < a)", "P(false match)",
                   f"subsampling, θ = s/2, n = {cfg.n_sub:,}")
    return plotting.finish(fig)


def plot_noise(res: dict, cfg: DendritesConfig):
    """P(miss) against the fraction of the pattern replaced, one curve per θ."""
    from sparsebook import plotting

    fig, (ax,) = plotting.figure(ncols=1)
    for th, row, fm in zip(res["thetas"], res["fn"], res["fm"]):
        ax.plot(res["noise"], row, label=f"θ = {th} (false match {fm:.1e})")
    ax.axvline(0.5, color="grey", lw=0.8)
    plotting.label(ax, "fraction of the pattern's cells replaced v/a", "P(false negative)",
                   f"a = {cfg.a_noise}, s = {cfg.s_noise}, n = {cfg.n_noise:,}")
    return plotting.finish(fig)


def plot_union(res: dict, cfg: DendritesConfig):
    """Distinct synapses and false match against the number of stored patterns."""
    from sparsebook import plotting

    fig, (ax1, ax2) = plotting.figure(ncols=2)
    ax1.plot(res["m"], res["synapses"], label="expected distinct synapses")
    ax1.plot(res["m"], res["m"] * cfg.s_union, "k:", label="m·s (no overlaps)")
    plotting.label(ax1, "patterns stored m", "synapses on the segment")
    ax2.semilogy(res["m"], res["fm"], "o-", ms=3)
    ax2.axhline(cfg.union_tolerance, color="grey", lw=0.8, label=f"{cfg.union_tolerance:.0e}")
    plotting.label(ax2, "patterns stored m", "P(false match)",
                   f"n = {cfg.n_union:,}, a = {cfg.a_union}, s = {cfg.s_union}, θ = {cfg.theta_union}")
    return plotting.finish(fig)


def plot_optimal_threshold(res: dict, cfg: DendritesConfig):
    """Median false match over the grid against θ, and median false match + false negative per noise level."""
    from sparsebook import plotting

    fig, (ax1, ax2) = plotting.figure(ncols=2)
    ax1.semilogy(res["theta"], res["median_fm"], "o-")
    plotting.label(ax1, "NMDA threshold θ (synapses)", "median P(false match)", "over the (n, a/n, s) grid")
    for noise, total in res["median_total"].items():
        ax2.semilogy(res["theta"], total, label=f"{noise:.0%} noise (θ* = {res['optimum'][noise]})")
    for ax in (ax1, ax2):
        ax.axvspan(8, 20, color="grey", alpha=0.15, lw=0)
    plotting.label(ax2, "NMDA threshold θ (synapses)", "median P(false match) + P(false negative)",
                   "shaded: measured NMDA thresholds")
    return plotting.finish(fig)


def plot_monte_carlo(res: dict):
    """Monte Carlo estimates (±2 standard errors) against the exact values."""
    from sparsebook import plotting

    fig, (ax,) = plotting.figure(ncols=1)
    for kind, color in (("false match", plotting.COLORS[0]), ("false negative", plotting.COLORS[1]),
                        ("union", plotting.COLORS[2])):
        rows = [r for k, _, r in res["rows"] if k == kind]
        if not rows:
            continue
        x = np.array([r.exact for r in rows])
        y = np.array([r.estimate for r in rows])
        e = np.array([2 * r.stderr for r in rows])
        ax.errorbar(x, y, yerr=e, fmt="o", color=color, label=kind)
    lims = np.array([1e-8, 1.0])
    ax.loglog(lims, lims, "k:", lw=0.8, label="estimate = exact")
    plotting.label(ax, "exact probability", "Monte Carlo estimate")
    return plotting.finish(fig)


def monte_carlo_table(res: dict) -> str:
    """The Monte Carlo rows as aligned text (3 significant digits)."""
    lines = [f"{'kind':15s} {'parameters':28s} {'trials':>9s} {'hits':>9s} {'estimate':>10s} {'exact':>10s} {'z':>6s}"]
    for kind, p, r in res["rows"]:
        lines.append(f"{kind:15s} {str(p):28s} {r.trials:9d} {r.hits:9d} {r.estimate:10.3g} {r.exact:10.3g} {r.z:6.2f}")
    return "\n".join(lines)
