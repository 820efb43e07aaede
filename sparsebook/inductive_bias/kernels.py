"""Pure math of the inductive_bias chapter: generalized χ² tails, the scaled-χ² fit,
GP hypotheses (RBF kernel, noise-free posterior, test-loss distribution) and linear CKA.

No training, no plotting, no experiment configs: those are in
:mod:`sparsebook.inductive_bias.experiments` and :mod:`sparsebook.inductive_bias.figures`.
The equations (1)–(3) cited below are in the package docstring (:mod:`sparsebook.inductive_bias`).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from numbers import Real

import numpy as np
import torch
from scipy import optimize, special, stats

from sparsebook.stats import Estimate, monte_carlo
from sparsebook.validate import check_int, check_real

LN2 = math.log(2.0)

# ---------------------------------------------------------------------------
# array checks; information in bits
# ---------------------------------------------------------------------------


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


def generalized_chi2_cdf_imhof(x, weights, noncentralities, epsabs: float = 1e-13) -> np.ndarray:
    """``P(e ≤ x)`` of ``e = Σ_j w_j (z_j + δ_j)²`` by Imhof's (1961) inversion integral, to ``epsabs``:

        P(e ≤ x) = ½ − (1/π) ∫_0^∞ sin θ(u) / (u ρ(u)) du,
        θ(u) = ½ Σ_j [arctan(w_j u) + δ_j² w_j u / (1 + w_j² u²)] − ½ x u,
        ρ(u) = Π_j (1 + w_j² u²)^{1/4} · exp(½ Σ_j δ_j² w_j² u² / (1 + w_j² u²)),

    (``scipy.integrate.quad``), with ``noncentralities`` ``= δ_j²``.  Exact up to the quadrature's
    absolute error, so it is the reference in the bulk; its *relative* error grows in the deep lower
    tail (``P`` below about ``1e3·epsabs``), where :func:`generalized_chi2_logcdf` (saddlepoint) takes over.
    ``x``: scalar or array (> 0).  The integrand decays like ``u^{-1-m/2}`` for ``m`` nonzero weights:
    with one or two terms the quadrature converges slowly; use it with several.
    """
    from scipy import integrate

    w, lam = _check_gx2(weights, noncentralities)
    xs = _check_x(x)
    a = check_real(epsabs, "epsabs", 0, low_open=True)
    out = np.empty(xs.shape)
    for i, xv in np.ndenumerate(xs):
        def f(u):
            wu = w * u
            q = 1.0 + wu * wu
            theta = 0.5 * np.sum(np.arctan(wu) + lam * wu / q) - 0.5 * xv * u
            logrho = 0.25 * np.sum(np.log(q)) + 0.5 * np.sum(lam * wu * wu / q)
            return math.sin(theta) / u * math.exp(-logrho)
        val, _ = integrate.quad(f, 0.0, np.inf, epsabs=a, epsrel=1e-10, limit=1000)
        out[i] = min(max(0.5 - val / math.pi, 0.0), 1.0)
    return float(out) if np.ndim(x) == 0 else out


def generalized_chi2_cumulants(weights, noncentralities) -> tuple[float, float, float]:
    """Mean, variance and third cumulant of ``Σ_j w_j (z_j + δ_j)²`` (``λ_j = δ_j²``)."""
    w, lam = _check_gx2(weights, noncentralities)
    return _cumulants(w, lam, np.ones_like(w))


def sample_generalized_chi2(weights, noncentralities, n: int, rng: np.random.Generator,
                            chunk: int = 8192) -> np.ndarray:
    """``n`` draws of ``Σ_j w_j (z_j + √λ_j)²`` (Monte Carlo reference), shape ``(n,)``."""
    w, lam = _check_gx2(weights, noncentralities)
    n = check_int(n, "n", 1)
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
    k1, k2 = check_real(k1, "k1", 0, low_open=True), check_real(k2, "k2", 0, low_open=True)
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
    max_evals = check_int(max_evals, "max_evals", 1)
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
    ell = check_real(lengthscale, "lengthscale", 0, low_open=True)
    amp = check_real(amplitude, "amplitude", 0, low_open=True)
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


def _jittered_cholesky(kx: np.ndarray, jitter) -> np.ndarray:
    """Lower Cholesky factor of ``kx + jitter·mean(diag kx)·I`` (``jitter`` a number >= 0)."""
    if not (isinstance(jitter, (Real, np.floating)) and jitter >= 0):
        raise ValueError(f"jitter must be a number >= 0; got {jitter!r}")
    kj = kx + float(jitter) * float(np.mean(np.diag(kx))) * np.eye(len(kx))
    return np.linalg.cholesky(kj)


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
    c = _jittered_cholesky(kx, jitter)
    a = np.linalg.solve(c, kc.T)                     # L⁻¹ K_{X*}
    mean = kc @ np.linalg.solve(c.T, np.linalg.solve(c, y))
    cov = ks - a.T @ a
    return mean, 0.5 * (cov + cov.T)


def ml_amplitude(k_train, y_train, jitter: float = 1e-8) -> float:
    """Maximum-marginal-likelihood amplitude of a noise-free GP, in closed form.

    With ``K = a·K₁`` (``K₁`` the kernel at amplitude 1), the log marginal likelihood of ``k``
    independent output columns, ``−½ tr(YᵀK⁻¹Y) − (k/2) log det K + const``, is maximised by

        a* = tr(Yᵀ K₁⁻¹ Y) / (n·k).

    ``k_train`` (n, n) at amplitude 1, positive semi-definite; ``y_train`` (n,) or (n, k).
    """
    kx = _finite_array(k_train, "k_train", ndim=(2,))
    y = _finite_array(y_train, "y_train", ndim=(1, 2))
    y = y[:, None] if y.ndim == 1 else y
    _check_psd(kx, "k_train")
    if y.shape[0] != kx.shape[0]:
        raise ValueError(f"y_train must have {kx.shape[0]} rows (one per training input); got {y.shape[0]}")
    c = _jittered_cholesky(kx, jitter)
    w = np.linalg.solve(c, y)
    return float(np.sum(w * w) / y.size)


# ---------------------------------------------------------------------------
# Monte Carlo summaries of repeated estimates (standard errors by the delta method)
# ---------------------------------------------------------------------------


def rms_estimate(sq_errors) -> Estimate:
    """RMS error ``√mean(e²)`` from ``R`` i.i.d. squared errors, as a Monte Carlo estimate.

    ``se(√m) = se(m)/(2√m)`` (delta method) with ``se(m) = sd(e²)/√R``.  ``sq_errors``: (R,), R >= 2, >= 0.
    """
    x = _finite_array(sq_errors, "sq_errors", ndim=(1,))
    if x.size < 2 or np.any(x < 0):
        raise ValueError("sq_errors must hold at least 2 numbers >= 0")
    m = float(x.mean())
    se_m = float(x.std(ddof=1) / math.sqrt(x.size))
    rms = math.sqrt(m)
    return monte_carlo(rms, se_m / (2 * rms) if rms > 0 else 0.0, x.size)


def independent_difference(a: Estimate, b: Estimate) -> Estimate:
    """``a − b`` for two independent Monte Carlo estimates: ``se = √(se_a² + se_b²)``."""
    for name, e in (("a", a), ("b", b)):
        if not isinstance(e, Estimate) or e.kind != "monte carlo":
            raise TypeError(f"{name} must be a Monte Carlo Estimate")
    return monte_carlo(a.value - b.value, math.hypot(a.se, b.se), min(a.n, b.n))


def log_slope_estimate(n, spread, repeats: int) -> Estimate:
    """Least-squares slope of ``log spread`` against ``log n``, with its Monte Carlo standard error.

    Each ``spread[i]`` is a sample standard deviation over ``repeats`` independent estimates, so
    ``var(log sd) ≈ 1/(2(R−1))`` (normal theory); the slope ``Σ c_i log sd_i`` with
    ``c_i = (x_i − x̄)/Σ(x_j − x̄)²`` then has ``se = √(Σ c_i² / (2(R−1)))``.
    """
    x = np.log(_finite_array(n, "n", ndim=(1,)))
    y = _finite_array(spread, "spread", ndim=(1,))
    if x.size != y.size or x.size < 2:
        raise ValueError("n and spread must have the same length >= 2")
    if np.any(y <= 0):
        raise ValueError("spread must be > 0")
    r = check_int(repeats, "repeats", 2)
    c = (x - x.mean()) / np.sum((x - x.mean()) ** 2)
    slope = float(np.sum(c * np.log(y)))
    return monte_carlo(slope, float(math.sqrt(np.sum(c * c) / (2 * (r - 1)))), r)


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

    def rescaled(self, factor: float) -> "KernelLoss":
        """The same task under the kernel's prior amplitude multiplied by ``factor`` > 0.

        The noise-free posterior mean does not depend on the amplitude and the covariance scales
        with it, so ``w_j → factor·w_j`` and ``δ_j² → δ_j²/factor``; the offset is unchanged.
        """
        f = check_real(factor, "factor", 0, low_open=True)
        return KernelLoss(self.weights * f, self.noncentralities / f, self.offset)


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


def _eps_at_bits(loss: KernelLoss, target_bits: float) -> float:
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
    n_target = check_int(n_target, "n_target", 1)
    n_guide = check_int(n_guide, "n_guide", 1)
    if n_target == 1 or n_guide == 1:
        return [(n_target - 1, n_guide - 1)]          # the last layers pair up
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


# ---------------------------------------------------------------------------
# active multi-task representation learning: relevance by the Lasso, source allocation
# ---------------------------------------------------------------------------


def lasso_relevance(source_params, target_params, alpha: float) -> np.ndarray:
    """Relevance ``ν̂`` of each source task to the target by the Lasso (Wang et al. 2023, the ν¹ strategy):

        ν̂ = argmin_ν  (1/(2m)) ‖ŵ_0 − Ŵ ν‖² + α ‖ν‖₁,

    with ``source_params`` ``Ŵ`` (m, T) the estimated source parameters as columns and
    ``target_params`` ``ŵ_0`` (m,) the estimated target parameter (``sklearn.linear_model.Lasso``,
    no intercept).  Returns ``ν̂`` (T,).
    """
    from sklearn.linear_model import Lasso

    s = _finite_array(source_params, "source_params", ndim=(2,))
    t = _finite_array(target_params, "target_params", ndim=(1,))
    if t.shape[0] != s.shape[0]:
        raise ValueError(f"target_params must have {s.shape[0]} entries (one per row of source_params); got {t.shape[0]}")
    a = check_real(alpha, "alpha", 0, low_open=True)
    return Lasso(alpha=a, fit_intercept=False, max_iter=100_000, tol=1e-10).fit(s, t).coef_.astype(float)


def allocate_samples(weights, budget: int) -> np.ndarray:
    """Split ``budget`` samples over tasks in proportion to ``|weights|`` (largest remainders: ints summing
    to ``budget``).  All-zero weights split evenly."""
    w = np.abs(_finite_array(weights, "weights", ndim=(1,)))
    n = check_int(budget, "budget", 0)
    if w.sum() == 0:
        w = np.ones_like(w)
    share = n * w / w.sum()
    out = np.floor(share).astype(int)
    rest = n - int(out.sum())
    out[np.argsort(-(share - out), kind="stable")[:rest]] += 1
    return out
