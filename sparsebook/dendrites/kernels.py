"""Pure math of the dendrites chapter: exact hypergeometric error probabilities and their Monte Carlo estimates.

The exact probabilities are hypergeometric tails computed in log space (form (H) of
:mod:`sparsebook.dendrites`); the Monte Carlo estimators draw random subsets in JAX and
count overlaps with one 0/1 matrix product per block.  No experiments, no plotting.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, logsumexp

from sparsebook.validate import check_int

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

    Uses form (H) of the :mod:`sparsebook.dendrites` docstring with ``m ← min(K, m)`` (the law is
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
    full = s == n                                       # every cell is a synapse: log1p(−1) = −inf
    with np.errstate(divide="ignore", invalid="ignore"):
        out = n * -np.expm1(m * np.log1p(-np.where(full, 0, s) / n))
    out = np.where(full, np.where(m > 0, n, 0), out).astype(float)
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


def false_match_probability_exact(n: int, a: int, s: int, theta: int):
    """:func:`false_match_probability` in exact rational arithmetic (``fractions.Fraction``):

        P = Σ_{b=θ}^{s} C(s, b) C(n − s, a − b) / C(n, a)       (Ahmad & Hawkins 2016, eq. 1).

    Slow for large ``a`` and ``n`` (big integers), exact to the last digit: the reference against
    which printed values with many digits are compared.  Same argument checks as the float version.
    """
    from fractions import Fraction
    from math import comb

    n, a, s, theta = (int(_int_array(v, nm)) for v, nm in ((n, "n"), (a, "a"), (s, "s"), (theta, "theta")))
    _check_le(np.asarray(a), np.asarray(n), "a", "n")
    _check_le(np.asarray(s), np.asarray(n), "s", "n")
    _check_le(np.asarray(theta), np.asarray(s), "theta", "s")
    num = sum(comb(s, b) * comb(n - s, a - b) for b in range(theta, min(s, a) + 1) if a - b <= n - s)
    return Fraction(num, comb(n, a))


def _union_size_chain(n: int, s: int, size: int, steps: int):
    """The pmfs ``p[u]``, ``u = 0 … size − 1``, of the union size after ``0 … steps`` patterns of ``s``
    cells out of ``n`` (a generator).  Each new pattern overlaps the union in
    ``j`` ~ Hypergeometric(N = n, K = u, draws = s) cells, so ``u → u + s − j``; ``size`` must hold
    every size reached (``size ≥ min(n, steps·s) + 1``).  The overlap pmfs are evaluated once."""
    from scipy.stats import hypergeom

    sizes, j = np.arange(size), np.arange(s + 1)
    w_all = hypergeom.pmf(j[None, :], n, sizes[:, None], s)             # (sizes, overlaps)
    new_all = sizes[:, None] + s - j[None, :]
    p = np.zeros(size)
    p[0] = 1.0
    yield p
    for _ in range(steps):
        u = np.nonzero(p > 0)[0]
        w, new = w_all[u], new_all[u]
        ok = (w > 0) & (new < size)
        q = np.zeros(size)
        np.add.at(q, new[ok], (p[u, None] * w)[ok])
        p = q / q.sum()
        yield p


def union_size_distribution(n, s, m) -> np.ndarray:
    """Exact law of the number of distinct synapses after storing ``m`` patterns of ``s`` synapses,
    each pattern's ``s`` cells drawn uniformly (without replacement) from ``n``.

    A Markov chain on the union size ``u``: a new pattern overlaps the current union in
    ``k`` ~ Hypergeometric(N = n, K = u, draws = s) cells, so ``u → u + s − k``.  Returns the pmf
    ``p[u]`` for ``u = 0 … min(n, m·s)`` (float64, sums to 1).  Its mean is
    :func:`union_synapse_count`.  Raises ``ValueError`` unless ``0 <= s <= n``, ``n >= 1``, ``m >= 0``.
    """
    n, s, m = (int(_int_array(x, nm)) for x, nm in ((n, "n"), (s, "s"), (m, "m")))
    if n == 0:
        raise ValueError("n must be >= 1")
    _check_le(np.asarray(s), np.asarray(n), "s", "n")
    *_, p = _union_size_chain(n, s, min(n, m * s) + 1, m)
    return p


def union_false_match_exact(n, a, s, m, theta) -> float:
    """False-match rate of a segment storing the union of ``m`` random patterns of ``s`` synapses,
    averaged over the exact law of the union's size (:func:`union_size_distribution`):

        P = Σ_u P(U = u) · P_FM(n, a, u, θ).

    This is what a simulation of real random unions estimates; :func:`union_false_match_probability`
    is the paper's approximation (the mean size, rounded, in place of the random size).
    """
    n, a, s, m, theta = (int(_int_array(x, nm)) for x, nm in ((n, "n"), (a, "a"), (s, "s"), (m, "m"),
                                                                 (theta, "theta")))
    check_int(m, "m", 1)
    _check_le(np.asarray(a), np.asarray(n), "a", "n")
    _check_le(np.asarray(theta), np.asarray(s), "theta", "s")
    p = union_size_distribution(n, s, m)
    u = np.arange(p.size)
    ok = (p > 0) & (u >= theta)
    return float(np.sum(p[ok] * false_match_probability(n, a, u[ok], theta)))


def printed_deviation(value: float, printed: str) -> float:
    """``|value − printed|`` in units of half the last printed digit of ``printed`` (a decimal string
    such as ``"2.041e-9"`` or ``"0.0716985"``): at most 1 when ``value`` rounds to the printed number.
    ``value`` may be a float or an exact ``Fraction`` (compared exactly).

    Raises ``TypeError`` unless ``printed`` is a str, ``ValueError`` if it is not a decimal number.
    """
    from decimal import Decimal, InvalidOperation

    if not isinstance(printed, str):
        raise TypeError(f"printed must be a str holding the printed decimal; got {type(printed).__name__}")
    try:
        d = Decimal(printed.strip())
    except InvalidOperation:
        raise ValueError(f"printed must be a decimal number; got {printed!r}") from None
    if not d.is_finite():
        raise ValueError(f"printed must be finite; got {printed!r}")
    from fractions import Fraction

    half_unit = Fraction(Decimal(1).scaleb(d.as_tuple().exponent)) / 2
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, Fraction, np.integer, np.floating)):
        raise TypeError(f"value must be a real number or a Fraction; got {type(value).__name__}")
    if not np.isfinite(float(value)):
        raise ValueError(f"value must be finite; got {value}")
    exact_value = value if isinstance(value, Fraction) else Fraction(float(value))
    return float(abs(exact_value - Fraction(d)) / half_unit)


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
    trials = check_int(trials, "trials", 1)
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
    check_int(m, "m", 1)
    approx = union_false_match_probability(n, a, s, m, theta)
    rx, ry, blocks = _mc_blocks(trials, n)

    @jax.jit        # a closure over n, s, m, θ and the block shape: compiled once per call
    def block(key):
        ks = jax.random.split(key, m + 1)
        seg = sum(_random_subsets(k, ry, n, s) for k in ks[:m])
        seg = jnp.minimum(seg, 1.0)
        pat = _random_subsets(ks[m], rx, n, a)
        return jnp.sum(pat @ seg.T >= theta, dtype=jnp.int32)

    hits = sum(int(block(k)) for k in jax.random.split(jax.random.key(int(seed)), blocks))
    return MonteCarloResult(hits=hits, trials=rx * ry * blocks, exact=float(approx))


# ---------------------------------------------------------------------------
# fits
# ---------------------------------------------------------------------------


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x (the exponent of a power law y ∝ x^k)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError("x and y must be 1-D arrays of the same length >= 2")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be > 0 for a log-log fit")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])



# ---------------------------------------------------------------------------
# noise curves: the whole false-negative curve from one set of random replacement orders
# ---------------------------------------------------------------------------


def simulate_noise_overlaps(a: int, s: int, trials: int, seed: int = 0) -> np.ndarray:
    """Monte Carlo of the noise experiment along the whole curve: for every noise level ``v = 0 … a``
    the number of a segment's ``s`` cells among the ``v`` replaced cells of its pattern.

    Each trial draws one uniformly random order in which the pattern's ``a`` cells are replaced
    (NumPy ``default_rng(seed)``); replacing the first ``v`` of that order is a uniformly random
    ``v``-subset for every ``v``, so column ``v`` of the result has the law of ``X_v`` ~
    Hypergeometric(N = a, K = s, draws = v) of :func:`false_negative_probability`, and the segment
    misses when ``X_v ≥ s − θ + 1``.  The segment sits on the first ``s`` cells: by exchangeability
    the law does not depend on which ``s`` cells it uses.  Columns are dependent (nested subsets),
    rows independent.  Returns an ``int16`` array of shape ``(trials, a + 1)``.

    Raises ``ValueError`` unless ``1 <= s <= a`` and ``trials >= 1``.
    """
    a = check_int(a, "a", 1)
    s = check_int(s, "s", 1, a)
    trials = check_int(trials, "trials", 1)
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((trials, a)), axis=1)              # replacement order of the cells
    out = np.zeros((trials, a + 1), np.int16)
    np.cumsum(order < s, axis=1, out=out[:, 1:])                     # segment cells among the first v
    return out


def binomial_two_sided_p(hits, trials, p):
    """Exact two-sided binomial p-value of ``hits`` successes in ``trials`` under success probability
    ``p`` (twice the smaller tail, capped at 1; where ``p`` is 0 or 1 the p-value is 1 if ``hits`` is
    the only possible count and 0 otherwise).  Arrays broadcast.

    Raises ``ValueError`` unless ``0 <= hits <= trials`` and ``0 <= p <= 1``.
    """
    from scipy.stats import binom

    hits, trials, p = np.broadcast_arrays(np.asarray(hits, float), np.asarray(trials, float), np.asarray(p, float))
    if np.any(hits < 0) or np.any(hits > trials):
        raise ValueError("hits must lie in [0, trials]")
    if np.any(~np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise ValueError("p must lie in [0, 1]")
    with np.errstate(divide="ignore", invalid="ignore"):
        tails = np.minimum(binom.cdf(hits, trials, p), binom.sf(hits - 1, trials, p))
    out = np.minimum(1.0, 2.0 * tails)
    out = np.where(p == 0, (hits == 0).astype(float), out)
    out = np.where(p == 1, (hits == trials).astype(float), out)
    return out


# ---------------------------------------------------------------------------
# Sparsey (Rinkus 2017): superposed sparse distributed codes in one coding field
# ---------------------------------------------------------------------------
#
# A coding field of F = Q·K binary units in Q winner-take-all competitive modules (CMs) of K units;
# a code is one active unit per CM.  Inputs are binary vectors of M bits with exactly m active bits,
# stored as index arrays ``items[..., m]``.  Weights from input bit j to unit i are binary
# (``W[j, i] ∈ {0, 1}``), shared by every stored item (superposition), and set by one Hebbian step:
# storing item x with code c sets W[j, i] = 1 for every active j of x and every unit i of c.
# Everything is batched over a leading axis S (independent memories, e.g. seeds).


def _check_field(weights, q: int) -> tuple[int, int]:
    w = np.asarray(weights)
    if w.ndim != 3:
        raise ValueError(f"weights must have shape (S, M, F); got {w.shape}")
    q = check_int(q, "q", 1)
    if w.shape[2] % q:
        raise ValueError(f"q must divide the field size F = {w.shape[2]}; got q = {q}")
    return q, w.shape[2] // q


def _check_items(items, weights) -> np.ndarray:
    x = np.asarray(items)
    if x.dtype.kind not in "iu":
        raise TypeError(f"items must be an integer index array (S, B, m); got dtype {x.dtype}")
    if x.ndim != 3 or x.shape[0] != np.shape(weights)[0]:
        raise ValueError(f"items must have shape (S, B, m) with S = {np.shape(weights)[0]}; got {x.shape}")
    if x.size and (x.min() < 0 or x.max() >= np.shape(weights)[1]):
        raise ValueError(f"items must index input bits 0 … {np.shape(weights)[1] - 1}")
    return x


def sparsey_drive(weights, items) -> np.ndarray:
    """Input summation of every coding unit for a batch of inputs (Rinkus 2017, CSA step 1):

        u[s, b, i] = Σ_j x[s, b, j] W[s, j, i] = Σ_{j ∈ x} W[s, j, i],

    read as ``m`` rows of ``W`` per input.  ``weights``: (S, M, F) in {0, 1}; ``items``: (S, B, m)
    indices of the active bits.  Returns int32 (S, B, F).
    """
    w = np.asarray(weights)
    if w.ndim != 3:
        raise ValueError(f"weights must have shape (S, M, F); got {w.shape}")
    x = _check_items(items, w)
    return w[np.arange(w.shape[0])[:, None, None], x].sum(axis=2, dtype=np.int32)


def sparsey_familiarity(v, q: int) -> np.ndarray:
    """Global familiarity of an input (Rinkus 2017, CSA): the mean over the Q CMs of the largest
    normalised drive in the CM, ``G = (1/Q) Σ_q max_{i ∈ CM q} V_i``, with ``V = u / m`` ∈ [0, 1].
    ``v``: (..., F).  Returns (...)."""
    v = np.asarray(v, float)
    q = check_int(q, "q", 1)
    if v.shape[-1] % q:
        raise ValueError(f"q must divide the field size {v.shape[-1]}; got {q}")
    return v.reshape(v.shape[:-1] + (q, -1)).max(axis=-1).mean(axis=-1)


def sparsey_win_probabilities(v, q: int, *, chi: float = 1000.0, lam: float = 28.0, phi: float = 0.5,
                              g_min: float = 0.2) -> np.ndarray:
    """Code-selection probabilities of Sparsey's CSA (Rinkus 2017; Rinkus 2010, CSA steps 4-7).

    With ``G`` = :func:`sparsey_familiarity` and ``η = clip((G − g_min)/(1 − g_min), 0, 1)`` every unit
    gets the relative weight ``ψ_i = 1 + η·χ / (1 + exp(−λ (V_i − φ)))`` and wins its CM with
    probability ``ρ_i = ψ_i / Σ_{i' ∈ CM} ψ_i'``.  A novel input (G ≤ g_min) gets a uniformly random
    code; a familiar one (G → 1) the units of highest V, so similar inputs get overlapping codes.
    ``v``: (..., F).  Returns (..., Q, K), each CM's row summing to 1.
    """
    from sparsebook.validate import check_real

    chi = check_real(chi, "chi", 0)
    lam = check_real(lam, "lam", 0)
    phi = check_real(phi, "phi", 0, 1)
    g_min = check_real(g_min, "g_min", 0, 1, high_open=True)
    v = np.asarray(v, float)
    if np.any(v < 0) or np.any(v > 1):
        raise ValueError("v must lie in [0, 1] (the drive divided by the number of active inputs)")
    g = sparsey_familiarity(v, q)
    eta = np.clip((g - g_min) / (1 - g_min), 0.0, 1.0)
    psi = 1.0 + eta[..., None] * chi / (1.0 + np.exp(-lam * (v - phi)))
    psi = psi.reshape(v.shape[:-1] + (q, -1))
    return psi / psi.sum(axis=-1, keepdims=True)


def sparsey_choose(rho, uniform) -> np.ndarray:
    """One winner per CM drawn from ``rho`` (..., Q, K) with the uniform numbers ``uniform`` (..., Q)
    in [0, 1) (inverse-CDF sampling).  Returns int64 unit indices within the CM, shape (..., Q)."""
    rho = np.asarray(rho, float)
    u = np.asarray(uniform, float)
    if u.shape != rho.shape[:-1]:
        raise ValueError(f"uniform must have shape {rho.shape[:-1]}; got {u.shape}")
    cdf = np.cumsum(rho, axis=-1)
    return np.minimum((cdf < u[..., None] * cdf[..., -1:]).sum(axis=-1), rho.shape[-1] - 1)


def sparsey_store(weights, items, codes) -> np.ndarray:
    """Hebbian single-trial storage (Rinkus 2017): ``W[s, j, i] ← 1`` for every active input bit j of
    ``items[s, b]`` and every unit i of ``codes[s, b]``.  ``weights`` (S, M, F) is updated in place and
    returned; ``items`` (S, B, m); ``codes`` (S, B, Q) unit indices within each CM."""
    w = np.asarray(weights)
    x = _check_items(items, w)
    c = np.asarray(codes)
    q, k = _check_field(w, c.shape[-1])
    if c.shape[:2] != x.shape[:2]:
        raise ValueError(f"codes must have shape {x.shape[:2] + (q,)}; got {c.shape}")
    if c.size and (c.min() < 0 or c.max() >= k):
        raise ValueError(f"codes must hold unit indices 0 … {k - 1} within each CM")
    units = c + k * np.arange(q)                                   # (S, B, Q) field indices
    s_idx = np.arange(w.shape[0])[:, None, None, None]
    w[s_idx, x[..., :, None], units[..., None, :]] = 1
    return w


def sparsey_learn(weights, items, q: int, rng, random_codes: bool = False, **csa) -> np.ndarray:
    """Store ``items`` (S, N, m) one after another with the CSA (:func:`sparsey_win_probabilities`,
    keyword arguments ``csa``) and Hebbian storage: item t's code depends on the items before it.
    ``random_codes=True`` (the control) draws every code uniformly instead, whatever the input.
    ``rng``: a NumPy Generator.  ``weights`` is updated in place.  Returns the codes (S, N, Q).

    Cost per item: m·F weight reads, O(F) for the CSA, m·Q weight writes; none of it depends on the
    number of items already stored.
    """
    w = np.asarray(weights)
    x = _check_items(items, w)
    q, k = _check_field(w, q)
    m = x.shape[2]
    codes = np.zeros(x.shape[:2] + (q,), np.int64)
    for t in range(x.shape[1]):
        if random_codes:
            rho = np.full((x.shape[0], 1, q, k), 1.0 / k)
        else:
            rho = sparsey_win_probabilities(sparsey_drive(w, x[:, t:t + 1]) / m, q, **csa)   # (S, 1, Q, K)
        codes[:, t:t + 1] = sparsey_choose(rho, rng.random(rho.shape[:-1]))
        sparsey_store(w, x[:, t:t + 1], codes[:, t:t + 1])
    return codes


def sparsey_retrieve(weights, cues, q: int, rng) -> tuple[np.ndarray, int]:
    """Retrieval (Rinkus 2017, the CSA with familiar input): in every CM the unit with the largest
    input summation wins, ties broken uniformly at random (``rng``).  ``cues`` (S, B, m).

    Returns ``(codes (S, B, Q), operations per cue)``, where the operations are counted from the
    arrays the computation touches: the ``m·F`` weight reads of the input summation plus the ``F``
    comparisons of the CM maxima.  Nothing in it depends on how many items are stored.
    """
    w = np.asarray(weights)
    q, k = _check_field(w, q)
    u = sparsey_drive(w, cues)
    ops = np.asarray(cues).shape[2] * w.shape[2] + u.shape[2]
    noisy = u + 0.5 * rng.random(u.shape)                            # breaks ties, keeps the order
    return noisy.reshape(u.shape[:2] + (q, k)).argmax(axis=-1), int(ops)


def code_overlap(codes_a, codes_b) -> np.ndarray:
    """Overlap of Sparsey codes: the number of CMs in which they pick the same unit,
    ``|c ∩ c'| = Σ_q [c_q = c'_q]``.  Arrays (..., Q) broadcast; returns int (...)."""
    a, b = np.asarray(codes_a), np.asarray(codes_b)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"codes must have the same number of CMs; got {a.shape[-1]} and {b.shape[-1]}")
    return (a == b).sum(axis=-1)


def nearest_code_correct(retrieved, stored, own) -> np.ndarray:
    """Whether each retrieved code's strictly nearest stored code (largest overlap) is its own item's.

    ``retrieved`` (S, B, Q), ``stored`` (S, N, Q) codes with K units a CM, ``own`` (S, B) indices
    into the stored items.  Overlaps of all pairs come from a unit → stored-items table (B·Q·N
    additions a memory).  A tie with another item counts as a failure.  Returns bool (S, B).
    """
    r, c = np.asarray(retrieved), np.asarray(stored)
    own = np.asarray(own)
    if r.ndim != 3 or c.ndim != 3 or r.shape[0] != c.shape[0] or r.shape[2] != c.shape[2]:
        raise ValueError(f"retrieved (S, B, Q) and stored (S, N, Q) must share S and Q; got {r.shape} and {c.shape}")
    q = r.shape[-1]
    k = int(max(r.max(), c.max())) + 1
    offset = k * np.arange(q)
    ov = np.empty(r.shape[:2] + (c.shape[1],), np.int16)
    for i in range(r.shape[0]):                        # per memory: which stored items use each unit
        z = np.zeros((q * k, c.shape[1]), np.uint8)
        z[(c[i] + offset).T, np.arange(c.shape[1])[None, :]] = 1
        ov[i] = z[r[i] + offset].sum(axis=1, dtype=np.int16)          # (B, Q, N) → (B, N)
    mine = np.take_along_axis(ov, own[..., None], axis=2)[..., 0]
    np.put_along_axis(ov, own[..., None], -1, axis=2)
    return mine > ov.max(axis=2)


def union_size_laws(n: int, s: int, kmax: int) -> np.ndarray:
    """Exact laws of the size of the union of ``k`` uniformly random ``s``-subsets of ``n`` cells, for
    every ``k = 0 … kmax``: row k is the pmf over sizes ``0 … n`` (row k of the Markov chain of
    :func:`union_size_distribution`, zero-padded).  Returns float64 (kmax + 1, n + 1)."""
    n = check_int(n, "n", 1)
    s = check_int(s, "s", 0, n)
    kmax = check_int(kmax, "kmax", 0)
    return np.stack(list(_union_size_chain(n, s, n + 1, kmax)))


def superposed_false_match(n: int, a: int, s: int, theta: int, kmax: int) -> np.ndarray:
    """The union property applied to a unit that has stored ``k`` random items of ``s`` active bits
    (out of ``n``): its false-match rate for an unrelated random input of ``a`` active bits, averaged
    over the exact law of its union's size (:func:`union_size_laws`),

        P_k = Σ_u P(U_k = u) · P_FM(n, a, u, θ),   k = 0 … kmax   (Ahmad & Hawkins 2016, eq. 1).

    Returns float64 (kmax + 1,)."""
    n = check_int(n, "n", 1)
    a = check_int(a, "a", 0, n)
    theta = check_int(theta, "theta", 1)
    laws = union_size_laws(n, s, kmax)
    u = np.arange(n + 1)
    fm = np.zeros(n + 1)
    ok = u >= theta
    fm[ok] = false_match_probability(n, a, u[ok], theta)
    return laws @ fm
