"""Inductive bias in bits (Boopathy et al. 2024) and guidance by representational alignment
(Subramaniam et al. 2024).

**Inductive bias.**  For a task with training set ``(X, Y)``, a test set and an error
level ``ε``, the inductive bias a hypothesis space needs is the information it takes
to pick a well-generalizing hypothesis out of the hypotheses that fit the data:

    I(ε) = −log₂ P_h( e(h) ≤ ε ),   h ~ p(h | h fits (X, Y)),                   (1)

in **bits** (the authors' code returns nats; divide by ln 2).  ``e(h)`` is the test
mean squared error ``e = ‖f(X_test) − Y_test‖² / (n_test·k)`` for ``k`` outputs.

**Kernel hypotheses.**  Take the noise-free Gaussian-process posterior under a kernel
``κ`` (hypotheses that interpolate the training set):

    μ = K_{*X} K_{XX}⁻¹ Y,   Σ = K_{**} − K_{*X} K_{XX}⁻¹ K_{X*}.                 (2)

With ``Σ = U diag(λ) Uᵀ`` and ``f = μ + U diag(√λ) z`` (``z`` standard normal), the
test error of a random hypothesis is exactly a *generalized χ²*

    e = Σ_j w_j (z_j + δ_j)²,   w_j = λ_j / (n_test·k),   δ_j = u_jᵀ(μ − y)/√λ_j,   (3)

one term per eigenvector and output.  :func:`generalized_chi2_logcdf` computes
``log P(e ≤ x)`` far into the lower tail with a saddlepoint approximation.

**Practical estimator.**  For hypothesis spaces without a closed form (trained
networks), the paper samples hypotheses, records their test errors and fits a
scaled noncentral χ² ``e ≈ s·χ²_ν(λ)`` (:func:`fit_scaled_ncx2`), then reads
``I(ε)`` from the fitted lower tail.

**Guidance.**  Linear centred kernel alignment between representations
``X (n×p)`` and ``Y (n×q)`` of the same ``n`` examples (:func:`linear_cka`), and a
target network trained on ``CE + α Σ_l (1 − CKA(target_l, guide_l))`` against a
frozen guide (:func:`guidance_penalty`, :func:`run_guidance`).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from numbers import Real

import numpy as np
import torch
from scipy import optimize, special, stats

from sparsebook.scales import check_scale
from sparsebook.seeding import seed_everything
from sparsebook.validate import check_int, check_real

LN2 = math.log(2.0)

# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------


def _positive(x, name: str) -> float:
    """A finite real > 0."""
    return check_real(x, name, 0, low_open=True)


def _pos_int(x, name: str, low: int = 1) -> int:
    """An int >= ``low``."""
    return check_int(x, name, low)


def _finite_array(x, name: str, ndim: tuple[int, ...] | None = None) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of real numbers") from None
    if ndim is not None and arr.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return arr


def bits(log_prob):
    """Information in bits of an event of natural-log probability ``log_prob``: ``−log_prob / ln 2``."""
    return -np.asarray(log_prob, dtype=np.float64) / LN2 if np.ndim(log_prob) else -float(log_prob) / LN2


# ---------------------------------------------------------------------------
# the generalized chi-squared lower tail (saddlepoint)
# ---------------------------------------------------------------------------


def _cumulants(w, lam, nu):
    """First three cumulants of Σ_j w_j χ²_{ν_j}(λ_j): κ_r = 2^{r−1}(r−1)! Σ w_j^r (ν_j + r λ_j)."""
    k1 = float(np.sum(w * (nu + lam)))
    k2 = float(2 * np.sum(w**2 * (nu + 2 * lam)))
    k3 = float(8 * np.sum(w**3 * (nu + 3 * lam)))
    return k1, k2, k3


def _saddlepoint_logcdf(x: float, w: np.ndarray, lam: np.ndarray, nu: np.ndarray) -> float:
    """log P(Σ_j w_j χ²_{ν_j}(λ_j) ≤ x) by the Barndorff-Nielsen r* saddlepoint formula.

    Cumulant generating function (valid for t < 1/(2 max w)):

        K(t) = Σ_j [ −(ν_j/2) log(1 − 2 t w_j) + λ_j w_j t / (1 − 2 t w_j) ].

    Solve K'(t̂) = x; with r = sign(t̂) √(2 (t̂ x − K(t̂))) and u = t̂ √K''(t̂),
    ``P ≈ Φ(r + log(u/r)/r)`` (relative error O(1/m) for m terms, uniformly into the
    lower tail, where ``log Φ`` is evaluated with ``scipy.special.log_ndtr``).
    """
    k1, k2, k3 = _cumulants(w, lam, nu)
    sd = math.sqrt(k2)
    z = (x - k1) / sd
    if abs(z) < 1e-4:  # near the mean the saddlepoint formula is 0/0: one-term Edgeworth
        p = special.ndtr(z) - math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi) * k3 / (6 * sd**3) * (z * z - 1)
        return math.log(p)

    def kp(t):  # K'(t) − x
        a = 1.0 - 2.0 * t * w
        return float(np.sum(nu * w / a + lam * w / a**2)) - x

    if x < k1:
        big = max(float(np.sum(nu)) / x, math.sqrt(float(np.sum(lam / w)) / (2.0 * x)))
        lo = -2.0 * big - 1.0
        while kp(lo) > 0:  # pragma: no cover - the bound above guarantees a sign change
            lo *= 2.0
        t = optimize.brentq(kp, lo, 0.0, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    else:
        hi = (1.0 - 1e-12) / (2.0 * float(np.max(w)))
        if kp(hi) < 0:
            return 0.0  # x is beyond the reach of double precision: P = 1
        t = optimize.brentq(kp, 0.0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    a = 1.0 - 2.0 * t * w
    K = float(np.sum(-0.5 * nu * np.log1p(-2.0 * t * w) + lam * w * t / a))
    K2 = float(np.sum(2 * nu * w**2 / a**2 + 4 * lam * w**2 / a**3))
    r2 = 2.0 * (t * x - K)
    if r2 <= 0:  # rounding right next to the mean
        return math.log(special.ndtr(z))
    r = math.copysign(math.sqrt(r2), t)
    u = t * math.sqrt(K2)
    rstar = r + math.log(u / r) / r
    return float(special.log_ndtr(rstar))


def _check_gx2(weights, noncentralities):
    w = _finite_array(weights, "weights", ndim=(0, 1)).ravel()
    lam = _finite_array(noncentralities, "noncentralities", ndim=(0, 1)).ravel()
    if w.shape != lam.shape:
        raise ValueError(f"weights and noncentralities must have the same shape; got {w.shape} and {lam.shape}")
    if np.any(w < 0):
        raise ValueError("weights must be >= 0")
    if not np.any(w > 0):
        raise ValueError("weights must contain at least one value > 0")
    if np.any(lam < 0):
        raise ValueError("noncentralities must be >= 0 (they are λ_j = δ_j²)")
    keep = w > 0
    return w[keep], lam[keep]


def _check_x(x, name: str = "x") -> np.ndarray:
    arr = _finite_array(x, name)
    if np.any(arr <= 0):
        raise ValueError(f"{name} (an error level ε) must be > 0; got min {arr.min():.3g}")
    return arr


def generalized_chi2_logcdf(x, weights, noncentralities):
    """Natural log of ``P(Σ_j w_j (z_j + δ_j)² ≤ x)`` for independent standard normal ``z_j``.

    ``noncentralities`` are ``λ_j = δ_j²`` (the convention of ``scipy.stats.ncx2``'s
    ``nc``), so with one weight this is ``ncx2.logcdf(x / w, 1, λ)``.  Computed with
    the saddlepoint approximation of the Barndorff-Nielsen ``r*`` form (see
    :func:`_saddlepoint_logcdf`); accurate to a relative error of a few percent
    in the probability (hundredths of a bit) even at probabilities like 1e-300
    and below, where sampling cannot reach.

    Parameters
    ----------
    x : float or array, > 0
        The level(s) ``ε`` (e.g. a test MSE).
    weights : (m,) array, >= 0, at least one > 0
    noncentralities : (m,) array, >= 0

    Returns
    -------
    float, or an array of the shape of ``x``: ``log P`` (<= 0).
    """
    w, lam = _check_gx2(weights, noncentralities)
    xs = _check_x(x)
    nu = np.ones_like(w)
    out = np.array([_saddlepoint_logcdf(float(v), w, lam, nu) for v in xs.ravel()]).reshape(xs.shape)
    return float(out) if np.ndim(x) == 0 else out


def generalized_chi2_cumulants(weights, noncentralities) -> tuple[float, float, float]:
    """Mean, variance and third cumulant of ``Σ_j w_j (z_j + δ_j)²`` (``λ_j = δ_j²``)."""
    w, lam = _check_gx2(weights, noncentralities)
    return _cumulants(w, lam, np.ones_like(w))


def sample_generalized_chi2(weights, noncentralities, n: int, rng: np.random.Generator,
                            chunk: int = 8192) -> np.ndarray:
    """``n`` draws of ``Σ_j w_j (z_j + √λ_j)²`` (Monte Carlo reference), shape ``(n,)``."""
    w, lam = _check_gx2(weights, noncentralities)
    n = _pos_int(n, "n")
    d = np.sqrt(lam)
    out = np.empty(n)
    for s in range(0, n, chunk):
        z = rng.standard_normal((min(chunk, n - s), w.size))
        out[s:s + len(z)] = ((z + d) ** 2) @ w
    return out


# ---------------------------------------------------------------------------
# scaled noncentral chi-squared fit (the practical estimator)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaledNcx2:
    """The distribution ``s·χ²_ν(λ)``: ``df`` = ν > 0, ``nc`` = λ >= 0, ``scale`` = s > 0."""

    df: float
    nc: float
    scale: float
    method: str = "given"

    def cumulants(self) -> tuple[float, float, float]:
        """κ1 = s(ν+λ), κ2 = 2s²(ν+2λ), κ3 = 8s³(ν+3λ)."""
        s, v, l = self.scale, self.df, self.nc
        return s * (v + l), 2 * s**2 * (v + 2 * l), 8 * s**3 * (v + 3 * l)

    def logpdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.nc > 0:
            return stats.ncx2.logpdf(x / self.scale, self.df, self.nc) - math.log(self.scale)
        return stats.chi2.logpdf(x / self.scale, self.df) - math.log(self.scale)

    def logcdf(self, x):
        """log P(s·χ²_ν(λ) ≤ x): SciPy's exact value where it is finite, the saddlepoint beyond."""
        xs = _check_x(x)
        y = xs / self.scale
        with np.errstate(all="ignore"):
            ex = (stats.ncx2.logcdf(y, self.df, self.nc) if self.nc > 0 else stats.chi2.logcdf(y, self.df))
        ex = np.atleast_1d(np.asarray(ex, dtype=np.float64))
        w = np.array([self.scale])
        lam, nu = np.array([self.nc]), np.array([self.df])
        for i, (v, e) in enumerate(zip(xs.ravel(), ex.ravel())):
            if not np.isfinite(e) or e < -600:
                ex.ravel()[i] = _saddlepoint_logcdf(float(v), w, lam, nu)
        ex = ex.reshape(xs.shape)
        return float(ex) if np.ndim(x) == 0 else ex

    def bits(self, eps):
        """Inductive bias ``−log₂ P(e ≤ ε)`` (eq. 1) under this distribution."""
        return bits(self.logcdf(eps))


def _sample_cumulants(x: np.ndarray) -> tuple[float, float, float]:
    """Unbiased k-statistics k1, k2, k3 of a sample."""
    n = x.size
    m = x.mean()
    d = x - m
    m2, m3 = float(np.mean(d**2)), float(np.mean(d**3))
    return float(m), m2 * n / (n - 1), m3 * n * n / ((n - 1) * (n - 2))


def ncx2_moment_fit(samples) -> ScaledNcx2:
    """Method-of-moments fit of ``s·χ²_ν(λ)`` from the first three cumulants.

    From κ1 = s(ν+λ), κ2 = 2s²(ν+2λ), κ3 = 8s³(ν+3λ):  κ1 s² − κ2 s + κ3/8 = 0, so

        s = (κ2 − √(κ2² − κ1κ3/2)) / (2κ1),   λ = κ2/(2s²) − κ1/s,   ν = 2κ1/s − κ2/(2s²).

    (κ2² − κ1κ3/2 = 4s⁴λ² ≥ 0 for the family.)  When the sample's cumulants fall
    outside the family (negative discriminant, ν <= 0 or λ < 0), the central fit
    matching two moments is returned: λ = 0, s = κ2/(2κ1), ν = κ1/s.
    """
    x = _check_samples(samples)
    return ncx2_from_cumulants(*_sample_cumulants(x))


def ncx2_from_cumulants(k1: float, k2: float, k3: float) -> ScaledNcx2:
    """The scaled noncentral χ² with cumulants ``(k1, k2, k3)`` (formulas in :func:`ncx2_moment_fit`)."""
    k1, k2 = _positive(k1, "k1"), _positive(k2, "k2")
    k3 = float(k3)
    disc = k2 * k2 - k1 * k3 / 2
    if disc >= 0 and k3 > 0:
        s = (k2 - math.sqrt(disc)) / (2 * k1)
        if s > 0:
            lam = k2 / (2 * s * s) - k1 / s
            nu = 2 * k1 / s - k2 / (2 * s * s)
            if nu > 0 and lam >= 0:
                return ScaledNcx2(float(nu), float(lam), float(s), "moments")
    s = k2 / (2 * k1)
    return ScaledNcx2(float(k1 / s), 0.0, float(s), "moments (central)")


def _check_samples(samples) -> np.ndarray:
    x = _finite_array(samples, "samples", ndim=(1,))
    if x.size < 3:
        raise ValueError(f"samples must hold at least 3 values; got {x.size}")
    if np.any(x <= 0):
        raise ValueError("samples must be > 0 (they are test losses)")
    if np.ptp(x) == 0:
        raise ValueError("samples must not all be equal")
    return x


def _nll(fit: ScaledNcx2, x: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        v = -float(np.sum(fit.logpdf(x)))
    return v if np.isfinite(v) else np.inf


def fit_scaled_ncx2(samples, method: str = "mle", max_evals: int = 400) -> ScaledNcx2:
    """Fit ``s·χ²_ν(λ)`` to sampled test losses (the paper's practical estimator).

    ``method="moments"``: :func:`ncx2_moment_fit`.  ``method="mle"`` (default):
    maximum likelihood over ``(log ν, √λ, log s)`` by Nelder–Mead (at most ``max_evals``
    likelihood evaluations), **started from
    the moment fit**; the result is kept only if it is finite and its likelihood is
    at least the moment fit's, otherwise the moment fit is returned (SciPy's default
    ``ncx2.fit`` starts from generic values and can stop, without warning, at a
    distribution far from the data).

    Parameters
    ----------
    samples : (n,) array of losses > 0, n >= 3, not all equal.

    Returns
    -------
    ScaledNcx2
    """
    if method not in ("mle", "moments"):
        raise ValueError(f"method must be 'mle' or 'moments'; got {method!r}")
    max_evals = _pos_int(max_evals, "max_evals")
    x = _check_samples(samples)
    m = ncx2_moment_fit(x)
    if method == "moments":
        return m
    r0 = math.sqrt(max(m.nc, 0.01 * m.df))
    theta0 = np.array([math.log(m.df), r0, math.log(m.scale)])
    simplex = np.vstack([theta0, theta0 + [0.2, 0, 0], theta0 + [0, 0.5 * r0, 0], theta0 + [0, 0, 0.1]])

    def nll(theta):
        v, s = np.exp(np.clip(theta[[0, 2]], -50, 50))
        return _nll(ScaledNcx2(float(v), float(theta[1]) ** 2, float(s)), x) / x.size

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = optimize.minimize(nll, theta0, method="Nelder-Mead",
                                options={"initial_simplex": simplex, "xatol": 1e-4, "fatol": 1e-8,
                                         "maxfev": max_evals})
    v, l, s = float(np.exp(res.x[0])), float(res.x[1]) ** 2, float(np.exp(res.x[2]))
    cand = ScaledNcx2(float(v), float(l), float(s), "mle")
    if np.isfinite(res.fun) and _nll(cand, x) <= _nll(m, x):
        return cand
    return m


# ---------------------------------------------------------------------------
# kernel hypothesis spaces (noise-free GP posterior)
# ---------------------------------------------------------------------------


def rbf_kernel(a, b, lengthscale: float, amplitude: float = 1.0) -> np.ndarray:
    """``κ(a_i, b_j) = amplitude · exp(−‖a_i − b_j‖² / (2 ℓ²))``; a (n, d), b (m, d) → (n, m)."""
    a = _finite_array(a, "a", ndim=(2,))
    b = _finite_array(b, "b", ndim=(2,))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same number of columns; got {a.shape[1]} and {b.shape[1]}")
    ell = _positive(lengthscale, "lengthscale")
    amp = _positive(amplitude, "amplitude")
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return amp * np.exp(-np.maximum(d2, 0.0) / (2 * ell * ell))


def median_lengthscale(x) -> float:
    """The median heuristic: the median pairwise Euclidean distance between rows of ``x`` (n, d)."""
    x = _finite_array(x, "x", ndim=(2,))
    if len(x) < 2:
        raise ValueError("x must have at least 2 rows")
    d2 = (x * x).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2 * x @ x.T
    iu = np.triu_indices(len(x), 1)
    return float(np.median(np.sqrt(np.maximum(d2[iu], 0.0))))


def _check_psd(k: np.ndarray, name: str, tol: float = 1e-8) -> np.ndarray:
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"{name} must be a square matrix; got shape {k.shape}")
    if not np.allclose(k, k.T, rtol=1e-10, atol=1e-12 * max(1.0, float(np.abs(k).max()))):
        raise ValueError(f"{name} must be symmetric")
    ev = np.linalg.eigvalsh(k)
    if ev[0] < -tol * max(1.0, abs(ev[-1])):
        raise ValueError(f"{name} is not positive semi-definite (smallest eigenvalue {ev[0]:.3g})")
    return ev


def gp_posterior(k_train, k_cross, k_test, y_train, jitter: float = 1e-8):
    """Noise-free GP posterior at the test points (eq. 2): hypotheses that interpolate the data.

    Parameters
    ----------
    k_train : (n, n) kernel matrix of the training inputs, positive semi-definite
    k_cross : (n_test, n) kernel between test and training inputs
    k_test : (n_test, n_test) kernel matrix of the test inputs, positive semi-definite
    y_train : (n,) or (n, k) targets
    jitter : float >= 0, added to the diagonal of ``k_train`` (relative to its mean diagonal)

    Returns
    -------
    mean : (n_test, k) = K_{*X} K⁻¹ Y,   cov : (n_test, n_test) = K_{**} − K_{*X} K⁻¹ K_{X*}
    """
    kx = _finite_array(k_train, "k_train", ndim=(2,))
    ks = _finite_array(k_test, "k_test", ndim=(2,))
    kc = _finite_array(k_cross, "k_cross", ndim=(2,))
    y = _finite_array(y_train, "y_train", ndim=(1, 2))
    y = y[:, None] if y.ndim == 1 else y
    _check_psd(kx, "k_train")
    _check_psd(ks, "k_test")
    if kc.shape != (ks.shape[0], kx.shape[0]):
        raise ValueError(f"k_cross must have shape (n_test, n) = {(ks.shape[0], kx.shape[0])}; got {kc.shape}")
    if y.shape[0] != kx.shape[0]:
        raise ValueError(f"y_train must have {kx.shape[0]} rows (one per training input); got {y.shape[0]}")
    if not (isinstance(jitter, (Real, np.floating)) and jitter >= 0):
        raise ValueError(f"jitter must be a number >= 0; got {jitter!r}")
    kj = kx + float(jitter) * float(np.mean(np.diag(kx))) * np.eye(len(kx))
    c = np.linalg.cholesky(kj)
    a = np.linalg.solve(c, kc.T)                     # L⁻¹ K_{X*}
    mean = kc @ np.linalg.solve(c.T, np.linalg.solve(c, y))
    cov = ks - a.T @ a
    return mean, 0.5 * (cov + cov.T)


@dataclass(frozen=True)
class KernelLoss:
    """The test MSE of a random interpolating kernel hypothesis: ``offset + Σ_j w_j (z_j + δ_j)²`` (eq. 3).

    ``noncentralities`` are ``λ_j = δ_j²``; ``offset`` collects the directions of
    (numerically) zero posterior variance, where every hypothesis errs the same.
    """

    weights: np.ndarray
    noncentralities: np.ndarray
    offset: float

    def cumulants(self):
        k1, k2, k3 = generalized_chi2_cumulants(self.weights, self.noncentralities)
        return k1 + self.offset, k2, k3

    def logcdf(self, eps):
        """log P(e ≤ ε); −inf where ε <= offset."""
        e = _check_x(eps, "eps")
        shifted = e - self.offset
        out = np.full(e.shape, -np.inf)
        ok = shifted > 0
        if np.any(ok):
            out[ok] = generalized_chi2_logcdf(shifted[ok], self.weights, self.noncentralities)
        return float(out) if np.ndim(eps) == 0 else out

    def bits(self, eps):
        """Inductive bias (eq. 1) in bits; inf where ε <= offset."""
        return bits(self.logcdf(eps))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.offset + sample_generalized_chi2(self.weights, self.noncentralities, n, rng)


def gaussian_test_loss(mean, cov, y_test, rel_tol: float = 1e-10) -> KernelLoss:
    """Distribution of ``‖f − y‖²/(n_test·k)`` for ``f_c ~ N(mean_c, cov)`` per output ``c`` (eq. 3).

    mean : (n_test,) or (n_test, k); cov : (n_test, n_test) PSD; y_test like ``mean``.
    Eigenvalues below ``rel_tol``·max go into the constant ``offset``.
    """
    mu = _finite_array(mean, "mean", ndim=(1, 2))
    y = _finite_array(y_test, "y_test", ndim=(1, 2))
    mu = mu[:, None] if mu.ndim == 1 else mu
    y = y[:, None] if y.ndim == 1 else y
    cov = _finite_array(cov, "cov", ndim=(2,))
    if mu.shape != y.shape:
        raise ValueError(f"mean and y_test must have the same shape; got {mu.shape} and {y.shape}")
    if cov.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"cov must have shape {(mu.shape[0], mu.shape[0])}; got {cov.shape}")
    _check_psd(cov, "cov", tol=1e-6)
    lam, u = np.linalg.eigh(cov)
    n_test, k = mu.shape
    norm = n_test * k
    proj = u.T @ (mu - y)                             # (n_test, k)
    keep = lam > rel_tol * max(lam[-1], 0.0)
    if not np.any(keep):
        raise ValueError("cov has no positive eigenvalue: every hypothesis is the same")
    offset = float(np.sum(proj[~keep] ** 2) / norm)
    lk = lam[keep]
    w = np.repeat(lk / norm, k)
    nc = ((proj[keep] ** 2) / lk[:, None]).ravel()
    return KernelLoss(w, nc, offset)


def kernel_test_loss(x_train, y_train, x_test, y_test, lengthscale: float | None = None,
                     amplitude: float = 1.0, jitter: float = 1e-8) -> KernelLoss:
    """Test-MSE distribution of the RBF-kernel GP hypotheses that interpolate ``(x_train, y_train)``.

    ``lengthscale=None`` uses :func:`median_lengthscale` of ``x_train``.  Shapes: x (n, d), y (n,) or (n, k).
    """
    xtr = _finite_array(x_train, "x_train", ndim=(2,))
    xte = _finite_array(x_test, "x_test", ndim=(2,))
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"x_train and x_test must have the same number of columns; got {xtr.shape[1]} and {xte.shape[1]}")
    ell = median_lengthscale(xtr) if lengthscale is None else lengthscale
    mean, cov = gp_posterior(rbf_kernel(xtr, xtr, ell, amplitude), rbf_kernel(xte, xtr, ell, amplitude),
                             rbf_kernel(xte, xte, ell, amplitude), y_train, jitter)
    return gaussian_test_loss(mean, cov, y_test)


# ---------------------------------------------------------------------------
# neural-network hypothesis spaces: many networks trained at once
# ---------------------------------------------------------------------------


def train_mlp_ensemble(x_train, y_train, x_test, y_test, *, n_models: int, width: int, depth: int,
                       steps: int, lr: float = 1e-3, seed: int = 0, device: str | None = None) -> np.ndarray:
    """Test MSEs of ``n_models`` ReLU MLPs trained from independent initializations, in one batch.

    Each network is ``d → width → … (depth hidden layers) → k``, PyTorch's default
    initialization, trained by full-batch Adam on the MSE to ``y_train`` (one-hot
    targets for classification, as in the authors' code).  The ensemble is one set
    of batched weight tensors ``(n_models, fan_in, fan_out)``; Adam acts per element, so
    this equals training each network alone.

    Shapes: x (n, d), y (n, k).  Returns ``(n_models,)`` test MSEs ``‖f − y‖²/(n_test·k)``.
    ``device``: ``None`` uses CPU for up to 10⁹ multiply-adds per step and a GPU, when one is
    present, above that (``SCALE = "full"``); the initialization is drawn on the CPU either way.
    """


    xtr = _finite_array(x_train, "x_train", ndim=(2,))
    ytr = _finite_array(y_train, "y_train", ndim=(2,))
    xte = _finite_array(x_test, "x_test", ndim=(2,))
    yte = _finite_array(y_test, "y_test", ndim=(2,))
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise ValueError("x and y must have the same number of rows")
    if xtr.shape[1] != xte.shape[1] or ytr.shape[1] != yte.shape[1]:
        raise ValueError("train and test must have the same input and output dimensions")
    e = _pos_int(n_models, "n_models")
    width = _pos_int(width, "width")
    depth = _pos_int(depth, "depth")
    steps = _pos_int(steps, "steps")
    lr = _positive(lr, "lr")
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    sizes = [xtr.shape[1]] + [width] * depth + [ytr.shape[1]]
    params = []
    for fi, fo in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(fi)
        w = (torch.rand(e, fi, fo, generator=g, dtype=torch.float32) * 2 - 1) * bound
        b = (torch.rand(e, 1, fo, generator=g, dtype=torch.float32) * 2 - 1) * bound
        params += [w.requires_grad_(), b.requires_grad_()]
    if device is None:
        work = e * len(xtr) * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        device = "cuda" if (work > 1e9 and torch.cuda.is_available()) else "cpu"
    params = [p.detach().to(device).requires_grad_() for p in params]
    xt = torch.as_tensor(xtr, dtype=torch.float32, device=device)
    yt = torch.as_tensor(ytr, dtype=torch.float32, device=device)

    def forward(x):
        h = x.expand(e, *x.shape)
        for i in range(0, len(params), 2):
            h = torch.baddbmm(params[i + 1], h, params[i])
            if i + 2 < len(params):
                h = torch.relu(h)
        return h

    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        loss = ((forward(xt) - yt) ** 2).mean(dim=(1, 2)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = ((forward(torch.as_tensor(xte, dtype=torch.float32, device=device))
                - torch.as_tensor(yte, dtype=torch.float32, device=device)) ** 2).mean(dim=(1, 2))
    return out.cpu().numpy().astype(np.float64)


# ---------------------------------------------------------------------------
# representational alignment (CKA) and guidance
# ---------------------------------------------------------------------------


def linear_cka(x, y):
    """Linear centred kernel alignment between two representations of the same examples.

    ``CKA(X, Y) = ‖Ỹᵀ X̃‖²_F / (‖X̃ᵀ X̃‖_F ‖Ỹᵀ Ỹ‖_F)`` with column-centred ``X̃, Ỹ``
    (Kornblith et al. 2019, eq. for linear HSIC; as used for guidance by Subramaniam
    et al. 2024).  Rows are examples: x (n, p), y (n, q), n >= 2; higher-rank arrays
    are flattened to (n, −1).  NumPy arrays give a float; torch tensors give a 0-d
    tensor (differentiable).  In [0, 1], 1 for X = Y, invariant to isotropic scaling
    and orthogonal transforms of either argument.  Computed from the ``n × n`` Gram
    matrices when ``n`` is smaller than both feature counts.
    """
    is_torch = isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor)
    if is_torch:
        x = torch.as_tensor(x)
        y = torch.as_tensor(y, dtype=x.dtype)
        if x.ndim < 2 or y.ndim < 2:
            raise ValueError("x and y must have at least 2 dimensions (rows are examples)")
        x, y = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    else:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim < 2 or y.ndim < 2:
            raise ValueError("x and y must have at least 2 dimensions (rows are examples)")
        x, y = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError("x and y must be finite")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same number of rows (examples); got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] < 2:
        raise ValueError(f"x and y need at least 2 rows (examples); got {x.shape[0]}")
    x = x - x.mean(0, keepdims=True) if not is_torch else x - x.mean(0, keepdim=True)
    y = y - y.mean(0, keepdims=True) if not is_torch else y - y.mean(0, keepdim=True)
    n = x.shape[0]
    if n < min(x.shape[1], y.shape[1]):
        kx, ky = x @ x.T, y @ y.T
        num = (kx * ky).sum()
        den = ((kx * kx).sum() * (ky * ky).sum()) ** 0.5
    else:
        num = ((y.T @ x) ** 2).sum()
        den = (((x.T @ x) ** 2).sum() * ((y.T @ y) ** 2).sum()) ** 0.5
    if is_torch:
        return num / den.clamp_min(torch.finfo(x.dtype).tiny)
    if den == 0:
        raise ValueError("x or y is constant across examples: CKA is undefined")
    return float(num / den)


def layer_pairs(n_target: int, n_guide: int) -> list[tuple[int, int]]:
    """Map guide layers evenly onto target layers: ``[(target_index, guide_index), …]``.

    When the target has at least as many layers, guide layer ``j`` goes to target
    layer ``round(j·(n_target−1)/(n_guide−1))``; otherwise each target layer ``i``
    takes guide layer ``round(i·(n_guide−1)/(n_target−1))`` (one guide per target layer,
    avoiding the overwrite in the authors' code).
    """
    n_target = _pos_int(n_target, "n_target")
    n_guide = _pos_int(n_guide, "n_guide")
    if n_target == 1 or n_guide == 1:
        return [(n_target - 1, n_guide - 1)] if n_target == 1 or n_guide == 1 else []
    if n_target >= n_guide:
        return [(int(round(j * (n_target - 1) / (n_guide - 1))), j) for j in range(n_guide)]
    return [(i, int(round(i * (n_guide - 1) / (n_target - 1)))) for i in range(n_target)]


def guidance_penalty(target_feats, guide_feats, alpha: float = 1.0):
    """``α Σ_l (1 − CKA(target_l, guide_l))`` over paired layer representations (lists of equal length)."""
    if len(target_feats) != len(guide_feats) or len(target_feats) == 0:
        raise ValueError(f"target_feats and guide_feats must be non-empty lists of equal length; "
                         f"got {len(target_feats)} and {len(guide_feats)}")
    if not (isinstance(alpha, (Real, np.floating)) and alpha >= 0):
        raise ValueError(f"alpha must be a number >= 0; got {alpha!r}")
    return alpha * sum(1 - linear_cka(t, g) for t, g in zip(target_feats, guide_feats))


def _nets():

    from torch import nn

    class FCN(nn.Module):
        """Target: 64 → width (× depth, ReLU) → 10; ``forward`` returns logits and hidden layers."""

        def __init__(self, width: int, depth: int):
            super().__init__()
            sizes = [64] + [width] * depth
            self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
            self.out = nn.Linear(width, 10)

        def forward(self, x):
            feats = []
            h = x.reshape(len(x), -1)
            for lin in self.hidden:
                h = torch.relu(lin(h))
                feats.append(h)
            return self.out(h), feats

    class CNN(nn.Module):
        """Guide: 1×8×8 → conv3×3(c) → ReLU → conv3×3(2c) → ReLU → maxpool 2 → FC 64 → ReLU → 10."""

        def __init__(self, channels: int):
            super().__init__()
            self.c1 = nn.Conv2d(1, channels, 3, padding=1)
            self.c2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
            self.fc = nn.Linear(2 * channels * 16, 64)
            self.out = nn.Linear(64, 10)

        def forward(self, x):
            h1 = torch.relu(self.c1(x.reshape(len(x), 1, 8, 8)))
            h2 = torch.nn.functional.max_pool2d(torch.relu(self.c2(h1)), 2)
            h3 = torch.relu(self.fc(h2.reshape(len(x), -1)))
            return self.out(h3), [h1, h2, h3]

    return FCN, CNN


# ---------------------------------------------------------------------------
# experiments
# ---------------------------------------------------------------------------


def single_index_task(d: int, n_train: int, n_test: int, seed: int = 0, frequency: float = 2.0):
    """A task of input dimension ``d`` and fixed complexity: ``y = sin(frequency · aᵀx)``.

    ``x ~ N(0, I_d)``, ``a`` a random unit vector; the target varies along one
    direction whatever ``d`` is, so only the dimension of the input changes.
    Returns ``x_train (n_train, d), y_train (n_train,), x_test, y_test``.
    """
    d = _pos_int(d, "d")
    n_train = _pos_int(n_train, "n_train")
    n_test = _pos_int(n_test, "n_test")
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(d)
    a /= np.linalg.norm(a)
    x = rng.standard_normal((n_train + n_test, d))
    y = np.sin(frequency * x @ a)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


@dataclass(frozen=True)
class EstimatorConfig:
    """Exact tail vs Monte Carlo vs the fitted scaled χ², on one kernel task."""

    d: int = 4
    n_train: int = 32
    n_test: int = 48
    n_mc: int = 100_000            # Monte Carlo reference for the exact tail
    n_fit: int = 1000              # sampled hypotheses for the practical estimator
    tail_bits: float = 20.0        # where the fitted tail is compared with the exact one (bits)
    sample_sizes: tuple = (50, 100, 200, 400, 800)
    repeats: int = 100
    convergence_method: str = "moments"  # fit used in the convergence study
    min_hits: int = 1000           # MC points used for comparison need at least this many hits

    @classmethod
    def preset(cls, scale: str = "ci") -> "EstimatorConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(n_train=64, n_test=128, n_mc=1_000_000, n_fit=10_000,
                   sample_sizes=(50, 100, 200, 400, 800, 1600, 3200, 6400), repeats=40,
                   convergence_method="mle")


def _kernel_bits_at(loss: KernelLoss, target_bits: float) -> float:
    """The error level ε at which the exact kernel tail equals ``target_bits`` (bisection in log ε)."""
    k1 = loss.cumulants()[0]
    lo, hi = math.log(max(loss.offset, 0.0) + 1e-12 * k1 + 1e-300), math.log(k1)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if loss.bits(math.exp(mid)) > target_bits:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def run_estimator(config: EstimatorConfig, seed: int = 0) -> dict:
    """Check eq. 3 and the estimator on a single-index task in ``config.d`` dimensions.

    Returns a dict with the ε grid, exact/MC/fitted bits, the direct GP-sample check,
    the far-tail comparison and the convergence in the number of sampled hypotheses.
    """
    if not isinstance(config, EstimatorConfig):
        raise TypeError(f"config must be an EstimatorConfig; got {type(config).__name__}")
    rng = seed_everything(seed)
    xtr, ytr, xte, yte = single_index_task(config.d, config.n_train, config.n_test, seed)
    ell = median_lengthscale(xtr)
    mean, cov = gp_posterior(rbf_kernel(xtr, xtr, ell), rbf_kernel(xte, xtr, ell), rbf_kernel(xte, xte, ell), ytr)
    loss = gaussian_test_loss(mean, cov, yte)
    # Monte Carlo by sampling the GP posterior directly (f = μ + C z): checks eq. 3 too
    lam, u = np.linalg.eigh(cov)
    root = u * np.sqrt(np.clip(lam, 0, None))
    mc = np.empty(config.n_mc)
    chunk = 8192
    for s in range(0, config.n_mc, chunk):
        z = rng.standard_normal((min(chunk, config.n_mc - s), len(lam)))
        f = mean[:, 0][None, :] + z @ root.T
        mc[s:s + len(z)] = np.mean((f - yte[None, :]) ** 2, axis=1)
    mc.sort()
    # ε grid: from where MC still has min_hits down to 30 bits (far beyond sampling)
    eps_lo = _kernel_bits_at(loss, 40.0)
    eps_grid = np.geomspace(eps_lo, float(np.quantile(mc, 0.9)), 40)
    exact = loss.bits(eps_grid)
    hits = np.searchsorted(mc, eps_grid, side="right")
    with np.errstate(divide="ignore"):
        mc_bits = -np.log2(hits / config.n_mc)
    resolved = hits >= config.min_hits
    mc_gap = float(np.max(np.abs(exact[resolved] - mc_bits[resolved])))
    # the practical estimator from n_fit sampled hypotheses
    sampled = mc[rng.permutation(config.n_mc)[:config.n_fit]]
    fit = fit_scaled_ncx2(sampled)
    fit_mom = fit_scaled_ncx2(sampled, method="moments")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df, nc, _, sc = stats.ncx2.fit(sampled, floc=0)
    fit_default = ScaledNcx2(float(df), float(nc), float(sc), "scipy default")
    fitted = fit.bits(eps_grid)
    eps_tail = _kernel_bits_at(loss, config.tail_bits)
    exact_tail = float(loss.bits(eps_tail))
    fit_tail = float(fit.bits(eps_tail))
    # convergence in the number of sampled hypotheses (spread over independent repeats)
    spread, rmse = [], []
    for n in config.sample_sizes:
        est = np.array([fit_scaled_ncx2(mc[rng.integers(0, config.n_mc, n)], config.convergence_method).bits(eps_tail)
                        for _ in range(config.repeats)])
        spread.append(float(np.std(est, ddof=1)))
        rmse.append(float(np.sqrt(np.mean((est - exact_tail) ** 2))))
    ns = np.asarray(config.sample_sizes, dtype=float)
    slope = float(np.polyfit(np.log(ns), np.log(spread), 1)[0])
    return {
        "eps": eps_grid, "exact_bits": exact, "mc_bits": mc_bits, "mc_resolved": resolved,
        "fitted_bits": fitted, "mc_gap_bits": mc_gap, "fit": fit, "fit_moments": fit_mom,
        "fit_scipy_default": fit_default,
        "nll": {f.method: _nll(f, sampled) for f in (fit, fit_mom, fit_default)},
        "eps_tail": eps_tail, "exact_tail_bits": exact_tail, "fit_tail_bits": fit_tail,
        "default_tail_bits": float(fit_default.bits(eps_tail)),
        "moments_tail_bits": float(fit_mom.bits(eps_tail)),
        "fit_tail_rel_err": abs(fit_tail / exact_tail - 1.0),
        "sample_sizes": ns, "spread_bits": np.asarray(spread), "rmse_bits": np.asarray(rmse),
        "spread_slope": slope, "mc_max_bits": float(math.log2(config.n_mc)),
    }


def gp_task(d: int, n_train: int, n_test: int, seed: int = 0, lengthscale: float = 1.0):
    """A task of input dimension ``d`` drawn from the kernel's own prior (a well-specified task).

    ``x ~ N(0, I_d)``; ``y`` is one draw of a GP with the RBF kernel of length scale
    ``lengthscale·√d`` (so that ``‖x − x'‖²/ℓ²`` stays of order 1 in every dimension)
    and amplitude 1, at the training and test inputs jointly.  Only ``d`` changes the
    task; its prior variance is 1 everywhere.  Returns ``x_train, y_train, x_test, y_test, ℓ``.
    """
    d = _pos_int(d, "d")
    n_train = _pos_int(n_train, "n_train")
    n_test = _pos_int(n_test, "n_test")
    ell = _positive(lengthscale, "lengthscale") * math.sqrt(d)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_test, d))
    k = rbf_kernel(x, x, ell)
    y = np.linalg.cholesky(k + 1e-8 * np.eye(len(x))) @ rng.standard_normal(len(x))
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], ell


@dataclass(frozen=True)
class DimensionConfig:
    """Bits needed by the RBF-kernel space against input dimension (tasks drawn from the kernel's prior)."""

    dims: tuple = (4, 8, 16, 32, 64)
    n_train: int = 64
    n_test: int = 64
    eps: float = 0.25              # target test MSE (the prior variance of the task is 1)
    tasks: int = 4                 # independent tasks (seeds) averaged per dimension

    @classmethod
    def preset(cls, scale: str = "ci") -> "DimensionConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(dims=(8, 16, 32, 64, 128, 256), n_train=256, n_test=256, tasks=20)


def run_dimension(config: DimensionConfig, seed: int = 0) -> dict:
    """Exact inductive bias (bits, eq. 1 with eq. 3) of the RBF-kernel space for each input dimension.

    Returns ``{"dims", "bits" (dims, tasks), "mean_bits" (dims,), "mean_error" (dims,)}``:
    ``mean_error`` is the average test MSE of a random interpolating hypothesis.
    """
    if not isinstance(config, DimensionConfig):
        raise TypeError(f"config must be a DimensionConfig; got {type(config).__name__}")
    seed_everything(seed)
    out = np.empty((len(config.dims), config.tasks))
    mean_err = np.empty_like(out)
    for i, d in enumerate(config.dims):
        for t in range(config.tasks):
            xtr, ytr, xte, yte, ell = gp_task(d, config.n_train, config.n_test, seed=1000 * seed + t)
            loss = kernel_test_loss(xtr, ytr, xte, yte, lengthscale=ell)
            out[i, t] = loss.bits(config.eps)
            mean_err[i, t] = loss.cumulants()[0]
    return {"dims": np.asarray(config.dims), "bits": out, "mean_bits": out.mean(1),
            "mean_error": mean_err.mean(1), "eps": config.eps}


@dataclass(frozen=True)
class NetworkConfig:
    """Kernel bits at trained networks' error levels, and bits within the network space (digits)."""

    n_train: int = 150
    n_test: int = 200
    n_models: int = 24
    steps: int = 150
    lr: float = 2e-3
    base: tuple = (32, 1)                              # (width, depth) of the reference network
    archs: tuple = ((8, 1), (32, 1), (128, 1), (32, 2), (32, 3))

    @classmethod
    def preset(cls, scale: str = "ci") -> "NetworkConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(n_train=1000, n_test=400, n_models=256, steps=2000, lr=1e-3, base=(64, 1),
                   archs=((16, 1), (64, 1), (256, 1), (1024, 1), (64, 2), (64, 3), (64, 4)))


def run_network_bias(config: NetworkConfig, seed: int = 0) -> dict:
    """Train ensembles of MLPs on a digits subset (MSE to one-hot) and measure, in bits:

    - ``kernel_bits``: −log₂ P_kernel(e ≤ ε) at ε = each architecture's median test MSE
      (the information the network class supplies relative to the RBF-kernel space);
    - ``network_bits``: −log₂ P_network(e ≤ ε) from the scaled-χ² fit to the ensemble's losses.
    """
    if not isinstance(config, NetworkConfig):
        raise TypeError(f"config must be a NetworkConfig; got {type(config).__name__}")
    from sparsebook.data import digits

    seed_everything(seed)
    data = digits(test_fraction=0.3, seed=seed)
    xtr, xte = data["x_train"][:config.n_train].astype(np.float64), data["x_test"][:config.n_test].astype(np.float64)
    ytr = np.eye(10)[data["y_train"][:config.n_train]]
    yte = np.eye(10)[data["y_test"][:config.n_test]]
    kloss = kernel_test_loss(xtr, ytr, xte, yte)
    rows = []
    for width, depth in config.archs:
        losses = train_mlp_ensemble(xtr, ytr, xte, yte, n_models=config.n_models, width=width, depth=depth,
                                    steps=config.steps, lr=config.lr, seed=seed)
        eps = float(np.median(losses))
        fit = fit_scaled_ncx2(losses)
        rows.append({"width": width, "depth": depth, "median_mse": eps,
                     "min_mse": float(losses.min()), "kernel_bits": float(kloss.bits(eps)),
                     "network_bits": float(fit.bits(eps)), "losses": losses})
    eps_grid = np.geomspace(0.5 * min(r["median_mse"] for r in rows), kloss.cumulants()[0], 40)
    return {"rows": rows, "kernel_mean_mse": kloss.cumulants()[0],
            "kernel_eps": eps_grid, "kernel_bits": kloss.bits(eps_grid),
            "kernel_mean_fn_mse": float(kloss.offset + np.sum(kloss.weights * kloss.noncentralities)),
            "base": config.base}


@dataclass(frozen=True)
class GuidanceConfig:
    """An overfitting FCN on a digits subset, unguided or guided by an untrained / a trained CNN."""

    n_train: int = 100
    n_test: int = 400
    width: int = 256
    depth: int = 4
    channels: int = 8
    steps: int = 300
    guide_steps: int = 300
    batch_size: int = 100
    lr: float = 1e-3
    alpha: float = 1.0
    every: int = 20

    @classmethod
    def preset(cls, scale: str = "ci") -> "GuidanceConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(n_train=300, n_test=1000, width=512, depth=6, channels=16, steps=3000, guide_steps=3000)


def run_guidance(config: GuidanceConfig, seed: int = 0) -> dict:
    """Train the target FCN three ways: ``none`` (CE only), ``untrained`` and ``trained`` CNN guide.

    loss = CE + α Σ_l (1 − CKA(FCN layer l, CNN layer g(l))) on each minibatch, guide frozen,
    layers paired by :func:`layer_pairs`.  Returns per run: final test loss/accuracy, train
    accuracy, held-out CKA to the guide (mean over layer pairs) and the test-loss curve.
    """
    if not isinstance(config, GuidanceConfig):
        raise TypeError(f"config must be a GuidanceConfig; got {type(config).__name__}")

    from torch.nn import functional as F

    from sparsebook.data import digits
    from sparsebook.train import fit

    seed_everything(seed)
    data = digits(test_fraction=0.4, seed=seed)
    xtr = torch.as_tensor(data["x_train"][:config.n_train])
    ytr = torch.as_tensor(data["y_train"][:config.n_train])
    xte = torch.as_tensor(data["x_test"][:config.n_test])
    yte = torch.as_tensor(data["y_test"][:config.n_test])
    FCN, CNN = _nets()
    seed_everything(seed + 1)
    guide_untrained = CNN(config.channels)
    seed_everything(seed + 1)
    guide_trained = CNN(config.channels)
    fit(_Logits(guide_trained), xtr, ytr, steps=config.guide_steps, lr=config.lr,
        batch_size=config.batch_size, seed=seed + 1)
    guide_trained.eval()
    for g in (guide_untrained, guide_trained):
        g.eval()
        for p in g.parameters():
            p.requires_grad_(False)
    pairs = layer_pairs(config.depth, 3)

    def held_out_cka(target, guide):
        with torch.no_grad():
            _, tf = target(xte)
            _, gf = guide(xte)
        return float(np.mean([float(linear_cka(tf[i].double(), gf[j].double())) for i, j in pairs]))

    guide_acc = int((guide_trained(xte)[0].argmax(1) == yte).sum()) / len(yte)
    runs = {}
    for name, guide in (("none", None), ("untrained", guide_untrained), ("trained", guide_trained)):
        seed_everything(seed)
        target = FCN(config.width, config.depth)
        curve = []

        def callback(model, step):
            logits, _ = model(xte)
            curve.append((step, float(F.cross_entropy(logits, yte))))

        wrapped = _Guided(target, guide, pairs, config.alpha)
        fit(wrapped, xtr, ytr, steps=config.steps, lr=config.lr, batch_size=config.batch_size, seed=seed,
            penalty=(lambda m, step: m.last_penalty) if guide is not None else None,
            callback=lambda m, step: callback(target, step), every=config.every)
        with torch.no_grad():
            logits, _ = target(xte)
            tr_logits, _ = target(xtr)
        runs[name] = {
            "test_loss": float(F.cross_entropy(logits, yte)),
            # counts are exact integers: differences of accuracies are taken on them (a float32 mean
            # turned a gain of exactly 4 of 400 images into 0.00999999)
            "test_correct": int((logits.argmax(1) == yte).sum()),
            "n_test": int(len(yte)),
            "test_acc": int((logits.argmax(1) == yte).sum()) / len(yte),
            "train_acc": int((tr_logits.argmax(1) == ytr).sum()) / len(ytr),
            "cka_untrained": held_out_cka(target, guide_untrained),
            "cka_trained": held_out_cka(target, guide_trained),
            "curve": np.array(curve),
        }
    return {"runs": runs, "guide_test_acc": guide_acc, "pairs": pairs}


class _Logits(torch.nn.Module):
    """Wraps a network returning ``(logits, features)`` so that :func:`sparsebook.train.fit` sees logits."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[0]


class _Guided(torch.nn.Module):
    """Target network whose forward also computes the guidance penalty against a frozen guide."""

    def __init__(self, target, guide, pairs, alpha):
        super().__init__()
        self.target = target
        self.guide = [guide]            # a list, so the guide is not registered as a submodule
        self.pairs = pairs
        self.alpha = alpha
        self.last_penalty = None

    def forward(self, x):
        logits, tf = self.target(x)
        guide = self.guide[0]
        if guide is not None and self.training:
            with torch.no_grad():
                _, gf = guide(x)
            self.last_penalty = guidance_penalty([tf[i] for i, _ in self.pairs], [gf[j] for _, j in self.pairs],
                                                 self.alpha)
        return logits


# ---------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------


def plot_estimator(r: dict):
    """Left: bits against ε (exact, Monte Carlo, fitted scaled χ²). Right: estimator error against n."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2, 1)
    c = plotting.COLORS
    a.plot(r["eps"], r["exact_bits"], color=c[0], label="exact (saddlepoint)")
    ok = np.isfinite(r["mc_bits"])
    a.plot(r["eps"][ok], r["mc_bits"][ok], "o", color=c[1], ms=3, label="Monte Carlo")
    a.plot(r["eps"], r["fitted_bits"], "--", color=c[2], label="fitted scaled χ²")
    a.axhline(r["mc_max_bits"], color="0.5", lw=0.8, ls=":", label="Monte Carlo reach")
    a.axvline(r["eps_tail"], color="0.7", lw=0.8)
    a.set_yscale("log")
    plotting.label(a, "error level ε (test MSE)", "inductive bias (bits)", "a kernel task: tail of the test error")
    n = r["sample_sizes"]
    b.loglog(n, r["spread_bits"], "o-", color=c[0], label="spread over repeats (sd)")
    b.loglog(n, r["rmse_bits"], "s-", color=c[1], label="RMS error vs exact")
    b.loglog(n, r["spread_bits"][0] * np.sqrt(n[0] / n), ":", color="0.4", label="∝ n^-1/2")
    from matplotlib.ticker import FixedLocator, NullLocator
    b.xaxis.set_major_locator(FixedLocator(n))
    b.xaxis.set_minor_locator(NullLocator())
    b.set_xticklabels([f"{int(v)}" for v in n])
    plotting.label(b, "sampled hypotheses n", f"error of estimated bits at {r['exact_tail_bits']:.0f} bits",
                   "convergence in n")
    return plotting.finish(fig)


def plot_dimension(r: dict):
    """Left: bits against input dimension (tasks as dots, mean as line). Right: mean error of a random hypothesis."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2, 1)
    c = plotting.COLORS
    d = r["dims"]
    for t in range(r["bits"].shape[1]):
        a.plot(d, r["bits"][:, t], "o", color=c[0], alpha=0.35, ms=3)
    a.plot(d, r["mean_bits"], "-", color=c[0], label="mean over tasks")
    a.set_xscale("log", base=2)
    plotting.label(a, "input dimension d", f"inductive bias at ε = {r['eps']:g} (bits)", "RBF-kernel hypotheses")
    b.plot(d, r["mean_error"], "o-", color=c[1], label="random interpolating hypothesis")
    b.axhline(r["eps"], color="0.4", ls=":", label="target ε")
    b.set_xscale("log", base=2)
    plotting.label(b, "input dimension d", "mean test MSE", "how far the hypotheses are from ε")
    return plotting.finish(fig)


def plot_network_bias(r: dict):
    """Left: the trained networks' losses with the fitted scaled χ². Right: kernel bits at each network's error."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2, 1)
    c = plotting.COLORS
    base = next(x for x in r["rows"] if (x["width"], x["depth"]) == tuple(r["base"]))
    losses = np.sort(base["losses"])
    a.step(losses, np.arange(1, len(losses) + 1) / len(losses), where="post", color=c[0], label="trained networks")
    fit = fit_scaled_ncx2(base["losses"])
    grid = np.linspace(0.8 * losses[0], 1.1 * losses[-1], 200)
    a.plot(grid, np.exp(fit.logcdf(grid)), "--", color=c[2], label="fitted scaled χ²")
    plotting.label(a, "test MSE", "fraction of networks ≤ MSE",
                   f"network space: width {base['width']}, depth {base['depth']}")
    b.plot(r["kernel_eps"], r["kernel_bits"], color="0.5", label="RBF-kernel space")
    for i, x in enumerate(r["rows"]):
        b.plot(x["median_mse"], x["kernel_bits"], "o", color=c[(i + 1) % len(c)],
               label=f"width {x['width']}, depth {x['depth']}")
    b.set_yscale("log")
    plotting.label(b, "error level ε (test MSE)", "kernel inductive bias (bits)", "bits a kernel needs to match a network")
    return plotting.finish(fig)


def plot_guidance(r: dict):
    """Left: test cross-entropy during training. Right: held-out CKA to each guide."""
    from sparsebook import plotting

    fig, (a, b) = plotting.figure(2, 1)
    c = plotting.COLORS
    names = {"none": "no guide", "untrained": "untrained CNN guide", "trained": "trained CNN guide"}
    for i, (k, v) in enumerate(r["runs"].items()):
        a.plot(v["curve"][:, 0], v["curve"][:, 1], "o-", ms=2, color=c[i], label=names[k])
    a.set_yscale("log")
    plotting.label(a, "training step", "test cross-entropy (nats)", "FCN on a digits subset")
    x = np.arange(len(r["runs"]))
    b.bar(x - 0.2, [v["cka_untrained"] for v in r["runs"].values()], 0.4, color=c[3], label="to untrained CNN")
    b.bar(x + 0.2, [v["cka_trained"] for v in r["runs"].values()], 0.4, color=c[4], label="to trained CNN")
    b.set_xticks(x, [names[k] for k in r["runs"]], rotation=15)
    b.set_ylim(0, 1)
    plotting.label(b, "target trained with", "held-out CKA (mean over layers)", "representational alignment")
    return plotting.finish(fig)
