"""Pure math of the RG-flow chapter: activations, Gaussian expectations, the kernel / vertex / NTK
recursions, criticality and universality classes, finite-width closed forms, the optimal aspect
ratio's information theory, two-input kernels, and the fourth-cumulant estimator.

JAX (float64 inside ``jax.enable_x64``) for the recursions, NumPy for the rest; no training, no
plotting, no experiment configs (those are in :mod:`sparsebook.rg_flow.experiments` and
:mod:`sparsebook.rg_flow.figures`).  Conventions: see :mod:`sparsebook.rg_flow`.
"""
from __future__ import annotations

import math
from functools import lru_cache, partial
from typing import Callable, NamedTuple

import numpy as np

import jax
import jax.numpy as jnp
from jax.scipy.special import erf as _jerf

from sparsebook.validate import check_int, check_real

# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------


def _swish(z):
    return z * jax.nn.sigmoid(z)


def _gelu(z):
    return 0.5 * z * (1.0 + _jerf(z / jnp.sqrt(2.0)))


#: Named activations (JAX functions of one array).  ``gelu`` is the exact z·Φ(z);
#: ``swish`` is z·sigmoid(z) (SiLU).
ACTIVATIONS: dict[str, Callable] = {
    "linear": lambda z: z,
    "relu": lambda z: jnp.maximum(z, 0.0),
    "tanh": jnp.tanh,
    "erf": _jerf,
    "sin": jnp.sin,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "swish": _swish,
    "gelu": _gelu,
}


def _lookup_activation(activation, table: dict) -> Callable:
    """``table[activation]`` for a name, the callable itself otherwise; clear errors for anything else."""
    if isinstance(activation, str):
        if activation not in table:
            raise ValueError(f"activation must be one of {sorted(table)} or a callable; got {activation!r}")
        return table[activation]
    if callable(activation):
        return activation
    raise TypeError(f"activation must be a name in {sorted(table)} or a callable; got {type(activation).__name__}")


def activation_fn(activation) -> Callable:
    """The JAX function for ``activation``: a name in :data:`ACTIVATIONS` or a callable ``σ(z)``."""
    return _lookup_activation(activation, ACTIVATIONS)


def _name(activation) -> str:
    return activation if isinstance(activation, str) else getattr(activation, "__name__", "callable")


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------


def _check_flow_args(c_b, c_w, k1, depth):
    return (check_real(c_b, "c_b", 0.0), check_real(c_w, "c_w", 0.0, low_open=True),
            check_real(k1, "k1", 0.0, low_open=True), check_int(depth, "depth", 1))


# ---------------------------------------------------------------------------
# Gaussian expectations (trapezoidal rule in standardized units)
# ---------------------------------------------------------------------------

#: Nodes per Gaussian expectation: the trapezoidal rule on x ∈ [−X_MAX, X_MAX] with z = √K x.
#: For integrands analytic in a strip it converges geometrically (error ~ exp(−2πd/h)).  The
#: node count is even, so x = 0 lies midway between two nodes and the grid is symmetric: then the
#: rule is also spectrally accurate for the kinked integrands ReLU produces (σ², σ⁴, σ'², e.g.
#: relu(z)² = z²·1[z > 0], which are not even): their odd parts cancel on the symmetric grid and
#: their even parts (z²/2, z⁴/2, 1/2) are smooth, whatever value autodiff gives σ' at the kink.  Gauss–Hermite with 256 nodes was tried first and rejected:
#: its nodes are 0.14√K apart near 0, too coarse for erf² at K = 40 (2e-3 error) and for
#: SWISH's χ⊥ at its critical K* ≈ 14 (1e-8).
N_NODES = 4000
X_MAX = 12.0


@lru_cache(maxsize=8)
def _trapezoid_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``x`` and weights ``w`` with ``Σ w f(x) ≈ ∫ f(x) φ(x) dx`` (trapezoid, ``n`` even nodes)."""
    n = n if n % 2 == 0 else n + 1
    x = np.linspace(-X_MAX, X_MAX, n)
    h = x[1] - x[0]
    w = h * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
    return x, w


def gaussian_expectation(f: Callable, k, n_nodes: int = N_NODES):
    """``⟨f(z)⟩_K = ∫ f(z) e^{-z²/2K} dz / √(2πK)`` by the ``n_nodes``-point trapezoidal rule (:data:`N_NODES`).

    ``f`` maps an array of ``z`` to an array of the same shape; ``k`` is a positive
    scalar or array (any shape); returns a float64 array of ``k``'s shape.
    """
    if not callable(f):
        raise TypeError(f"f must be callable; got {type(f).__name__}")
    check_int(n_nodes, "n_nodes", 2)
    karr = np.asarray(k, dtype=float)
    if np.any(~np.isfinite(karr)) or np.any(karr <= 0):
        raise ValueError("k must be > 0 and finite")
    x, w = _trapezoid_nodes(n_nodes)
    with jax.enable_x64(True):
        z = jnp.sqrt(jnp.asarray(karr))[..., None] * jnp.asarray(x)
        return np.asarray(jnp.sum(f(z) * jnp.asarray(w), axis=-1))


def mean_square_activation(sigma, k, x, w, with_squares: bool = False):
    """``⟨σ(z)²⟩_K = Σ_i w_i σ(√K x_i)²``: the Gaussian expectation of the squared activation (PDLT eq. 4.118's
    ``⟨σ²⟩``), the one place the chapter computes it (traced JAX, float64 inside ``jax.enable_x64``).

    ``sigma`` a JAX function; ``k`` a positive scalar or array of kernels (any shape); ``x, w`` the
    quadrature nodes and weights of :func:`_trapezoid_nodes` (shape ``(n,)``).  Returns an array of
    ``k``'s shape.  With ``with_squares`` it also returns the integrand ``σ(√K x)²`` (shape
    ``k.shape + (n,)``), from which :func:`_moments` builds ⟨σ⁴⟩ and χ∥ in the same fused reduction.
    The kernel map, its fixed points, the vertex and NTK recursions and the phase diagram all call
    this (the public NumPy entry point is :func:`flow_step`).
    """
    s2 = sigma(jnp.sqrt(k)[..., None] * x) ** 2
    m2 = jnp.sum(w * s2, axis=-1)
    return (m2, s2) if with_squares else m2


def _moments(sigma, k, x, w):
    """⟨σ²⟩, ⟨σ⁴⟩, ⟨σ²(z²−K)⟩/(2K²) and ⟨σ'²⟩ at scalar K (traced, float64)."""
    z = jnp.sqrt(k) * x
    ds = jax.vmap(jax.grad(lambda t: sigma(t)))(z)
    m2, s2 = mean_square_activation(sigma, k, x, w, with_squares=True)
    m4 = jnp.sum(w * s2 * s2)
    dk = jnp.sum(w * s2 * (z * z - k)) / (2.0 * k * k)  # d⟨σ²⟩/dK
    dp = jnp.sum(w * ds * ds)
    return m2, m4, dk, dp


@partial(jax.jit, static_argnums=(0, 1, 6))
def _flow_scan(sigma, depth, c_b, c_w, k1, theta_args, n_nodes):
    x, w = _trapezoid_nodes(n_nodes)
    x = jnp.asarray(x)
    w = jnp.asarray(w)
    lam_b, lam_w, theta1 = theta_args

    def step(carry, _):
        k, v, th = carry
        m2, m4, dk, dp = _moments(sigma, k, x, w)
        chi_par = c_w * dk
        chi_perp = c_w * dp
        out = (k, v, th, chi_par, chi_perp)
        k_next = c_b + c_w * m2
        v_next = c_w * c_w * (m4 - m2 * m2) + chi_par * chi_par * v
        th_next = lam_b + lam_w * m2 + chi_perp * th
        return (k_next, v_next, th_next), out

    init = (jnp.asarray(k1, jnp.float64), jnp.asarray(0.0, jnp.float64), jnp.asarray(theta1, jnp.float64))
    _, outs = jax.lax.scan(step, init, None, length=depth)
    return outs


def _flows(activation, c_b, c_w, k1, depth, lambda_b=0.0, lambda_w=1.0, theta1=None, n_nodes=N_NODES):
    sigma = activation_fn(activation)
    c_b, c_w, k1, depth = _check_flow_args(c_b, c_w, k1, depth)
    lambda_b = check_real(lambda_b, "lambda_b", 0.0)
    lambda_w = check_real(lambda_w, "lambda_w", 0.0)
    if theta1 is None:
        theta1 = lambda_b + lambda_w * (k1 - c_b) / c_w  # λ_b + λ_W |x|²/n_0
    theta1 = check_real(theta1, "theta1", 0.0)
    with jax.enable_x64(True):
        outs = _flow_scan(sigma, depth, c_b, c_w, k1, (lambda_b, lambda_w, theta1), n_nodes)
        return tuple(np.asarray(o, dtype=float) for o in outs)


def kernel_flow(activation, c_b: float, c_w: float, k1: float, depth: int) -> np.ndarray:
    """``K^(1..depth)`` from ``K^(l+1) = C_b + C_W ⟨σ(z)²⟩_{K^(l)}`` (PDLT eq. 4.118 / 5.1).

    Parameters: ``activation`` a name in :data:`ACTIVATIONS` or a callable; ``c_b >= 0``;
    ``c_w > 0``; ``k1 > 0`` the first-layer kernel ``C_b + C_W |x|²/n_0``; ``depth >= 1``.
    Returns a float64 array of shape ``(depth,)`` whose ``[l-1]`` entry is ``K^(l)``.
    """
    return _flows(activation, c_b, c_w, k1, depth)[0]


def flow_step(activation, c_b: float, c_w: float, k) -> np.ndarray:
    """One layer of the kernel map, ``F(K) = C_b + C_W ⟨σ²⟩_K``, for a positive scalar or array ``k``."""
    sigma = activation_fn(activation)
    c_b = check_real(c_b, "c_b", 0.0)
    c_w = check_real(c_w, "c_w", 0.0, low_open=True)
    karr = np.asarray(k, dtype=float)
    if np.any(~np.isfinite(karr)) or np.any(karr <= 0):
        raise ValueError("k must be > 0 and finite")
    with jax.enable_x64(True):
        m2 = np.asarray(_m2_jit(sigma, jnp.asarray(karr.ravel())))
    return (c_b + c_w * m2).reshape(karr.shape)


@partial(jax.jit, static_argnums=(0,))
def _m2_jit(sigma, k):
    x, w = _trapezoid_nodes(N_NODES)
    return mean_square_activation(sigma, k, jnp.asarray(x), jnp.asarray(w))


def vertex_flow(activation, c_b: float, c_w: float, k1: float, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """``(K^(l), V^(l))`` for ``l = 1..depth``: the four-point vertex at leading order in ``1/n``.

    Equal widths (PDLT eq. 4.119 with ``n_l = n_{l-1}``, one input)::

        V^(l+1) = C_W² [⟨σ⁴⟩ − ⟨σ²⟩²]_{K^(l)} + χ∥(K^(l))² V^(l),   V^(1) = 0.

    The normalized fourth cumulant of one preactivation is ``V^(l)/(n (K^(l))²)``:
    ``Cov(z_i², z_j²)/K² = V/(nK²)`` for two neurons ``i ≠ j`` and the excess kurtosis
    of one neuron is ``3 V/(nK²)``.  For ReLU at criticality ``V^(l)/(K^(l))² = 5(l−1)``.
    Returns two float64 arrays of shape ``(depth,)``.
    """
    out = _flows(activation, c_b, c_w, k1, depth)
    return out[0], out[1]


def ntk_flow(activation, c_b: float, c_w: float, k1: float, depth: int,
             lambda_b: float = 0.0, lambda_w: float = 1.0, theta1: float | None = None) -> np.ndarray:
    """The infinite-width NTK ``Θ^(1..depth)`` of one input (PDLT eq. 8.63 / 9.4)::

        Θ^(l+1) = λ_b + λ_W ⟨σ²⟩_{K^(l)} + χ⊥(K^(l)) Θ^(l),   Θ^(1) = λ_b + λ_W |x|²/n_0,

    with ``|x|²/n_0 = (k1 − c_b)/c_w`` unless ``theta1`` is given.  At criticality
    ``χ⊥ = 1``, so for ReLU ``Θ^(l)`` grows linearly in ``l`` (the book's critical
    learning-rate scaling ``λ ∝ 1/L``); off criticality it grows or decays like ``χ⊥^l``.
    Returns a float64 array of shape ``(depth,)``.
    """
    return _flows(activation, c_b, c_w, k1, depth, lambda_b, lambda_w, theta1)[2]


def susceptibilities(activation, c_w: float, k) -> tuple[np.ndarray, np.ndarray]:
    """``(χ∥(K), χ⊥(K))`` (PDLT eqs. 5.50–5.51)::

        χ∥ = (C_W / 2K²) ⟨σ(z)² (z² − K)⟩_K = C_W d⟨σ²⟩_K/dK,    χ⊥ = C_W ⟨σ'(z)²⟩_K.

    ``k`` is a positive scalar or 1-D array; returns two float64 arrays of its shape.
    """
    sigma = activation_fn(activation)
    c_w = check_real(c_w, "c_w", 0.0, low_open=True)
    karr = np.atleast_1d(np.asarray(k, dtype=float))
    if karr.ndim != 1 or np.any(~np.isfinite(karr)) or np.any(karr <= 0):
        raise ValueError("k must be a positive scalar or 1-D array of positive numbers")
    with jax.enable_x64(True):
        _, dk, dp = _gap_jit(sigma, jnp.asarray(karr))
        par, perp = c_w * np.asarray(dk), c_w * np.asarray(dp)
    shape = np.shape(k)
    return par.reshape(shape), perp.reshape(shape)


def chi_parallel(activation, c_w: float, k):
    """χ∥(K) alone; see :func:`susceptibilities`."""
    return susceptibilities(activation, c_w, k)[0]


def chi_perp(activation, c_w: float, k):
    """χ⊥(K) alone; see :func:`susceptibilities`."""
    return susceptibilities(activation, c_w, k)[1]


# ---------------------------------------------------------------------------
# Criticality and universality classes
# ---------------------------------------------------------------------------


class CriticalPoint(NamedTuple):
    """``(c_b, c_w, k_star)``; ``k_star`` is NaN for the scale-invariant class (every K is fixed)."""

    c_b: float
    c_w: float
    k_star: float


class NoCriticalPoint(ValueError):
    """Raised by :func:`critical_point` when no (C_b ≥ 0, C_W > 0) makes χ∥ = χ⊥ = 1 at a fixed point."""


def k0_class_constants(activation) -> dict:
    """Constants of the K* = 0 universality class (PDLT §5.3.3, eqs. 5.83–5.99).

    With ``σ(z) = Σ_p σ_p z^p / p!``: critical ``C_b = 0``, ``C_W = 1/σ_1²``,
    ``a_1 = σ_3/σ_1 + ¾ (σ_2/σ_1)²``, ``b_1 = σ_3/σ_1 + (σ_2/σ_1)²``,
    ``p⊥ = b_1/a_1``; at criticality ``K^(l) ≈ 1/(−a_1 l)`` and ``χ⊥ ≈ 1 − p⊥/l``.
    The class requires ``σ_0 = 0``, ``σ_1 ≠ 0`` and ``a_1 < 0`` (``in_class``).
    Returns a dict with ``sigma0..sigma3, c_w, a1, b1, p_perp, in_class``.
    """
    return dict(_k0_constants(activation_fn(activation)))


@lru_cache(maxsize=64)
def _k0_constants(sigma) -> tuple:
    s0, s1, s2, s3 = _analysis(sigma)["taylor"]
    if s1 == 0.0:
        return tuple({"sigma0": s0, "sigma1": s1, "sigma2": s2, "sigma3": s3, "c_w": math.inf,
                      "a1": math.nan, "b1": math.nan, "p_perp": math.nan, "in_class": False}.items())
    a1 = s3 / s1 + 0.75 * (s2 / s1) ** 2
    b1 = s3 / s1 + (s2 / s1) ** 2
    return tuple({"sigma0": s0, "sigma1": s1, "sigma2": s2, "sigma3": s3, "c_w": 1.0 / s1 ** 2,
                  "a1": a1, "b1": b1, "p_perp": b1 / a1 if a1 != 0 else math.nan,
                  "in_class": bool(abs(s0) < 1e-12 and a1 < -1e-12)}.items())


#: Kernels on which the criticality conditions are scanned (log grid).
K_GRID = np.geomspace(1e-3, 1e3, 241)


@partial(jax.jit, static_argnums=(0,))
def _gap_jit(sigma, k):
    x, w = _trapezoid_nodes(N_NODES)
    m2, _, dk, dp = jax.vmap(lambda kk: _moments(sigma, kk, jnp.asarray(x), jnp.asarray(w)))(k)
    return m2, dk, dp


#: Refinements of the bracket of the non-trivial critical kernel (each divides it by 240, in log K).
_REFINE = 6
#: Relative offsets K/K* at which the analysis also evaluates ⟨σ²⟩ (half-stability test and figure):
#: K*(1 − 1e-3), K*, K*(1 + 1e-3), then 81 points from 0.9 K* to 1.1 K*.
HALF_STABLE_DELTA = 1e-3
_OFFSETS = np.concatenate([[1 - HALF_STABLE_DELTA, 1.0, 1 + HALF_STABLE_DELTA], np.linspace(0.9, 1.1, 81)])


@partial(jax.jit, static_argnums=(0,))
def _analysis_jit(sigma, grid, offsets, x, w):
    """Everything the classification needs, in one compiled call per activation:
    ⟨σ²⟩, ⟨σσ''⟩ and ⟨σ'²⟩ on ``grid``; the first sign change of ⟨σσ''⟩ refined by bisection
    in log K (repeated sub-grids), with ⟨σ²⟩, d⟨σ²⟩/dK and ⟨σ'²⟩ there and ⟨σ²⟩ at ``K_root·offsets``; and the
    Taylor coefficients of σ at 0 (its value and first three derivatives).  The quadrature nodes
    ``x, w`` are arguments, not constants, which keeps XLA from constant-folding them (slow)."""

    def gap_at(k):
        m2, _, dk, dp = _moments(sigma, k, x, w)
        return dk - dp, m2, dp, dk

    on_grid = jax.vmap(gap_at)
    gap, m2, dp, _ = on_grid(grid)
    change = jnp.sign(gap[:-1]) * jnp.sign(gap[1:]) < 0
    i = jnp.argmax(change)
    t = jnp.linspace(0.0, 1.0, grid.shape[0])

    def refine(_, bounds):
        # evaluate the same vmapped function on a sub-grid of the bracket (one compiled body)
        lo, hi = bounds
        g = on_grid(jnp.exp(lo + (hi - lo) * t))[0]
        j = jnp.argmax(jnp.sign(g[:-1]) * jnp.sign(g[1:]) <= 0)
        return lo + (hi - lo) * t[j], lo + (hi - lo) * t[j + 1]

    lo, hi = jax.lax.fori_loop(0, _REFINE, refine, (jnp.log(grid[i]), jnp.log(grid[i + 1])))
    k_root = jnp.exp(0.5 * (lo + hi))
    _, m2_r, dp_r, dk_r = on_grid(jnp.full(grid.shape, k_root))
    m2_root, dp_root, dk_root = m2_r[0], dp_r[0], dk_r[0]
    m2_off = jax.vmap(lambda k: mean_square_activation(sigma, k, x, w))(k_root * offsets)
    f1 = jax.grad(sigma)
    f2 = jax.grad(f1)
    f3 = jax.grad(f2)
    z0 = jnp.zeros((), grid.dtype)
    taylor = jnp.stack([sigma(z0), f1(z0), f2(z0), f3(z0)])
    return gap, m2, dp, jnp.any(change), k_root, m2_root, dp_root, dk_root, m2_off, taylor


@lru_cache(maxsize=64)
def _analysis(sigma):
    with jax.enable_x64(True):
        x, w = _trapezoid_nodes(N_NODES)
        out = _analysis_jit(sigma, jnp.asarray(K_GRID), jnp.asarray(_OFFSETS), jnp.asarray(x), jnp.asarray(w))
        gap, m2, dp, has_root, k_root, m2_root, dp_root, dk_root, m2_off, taylor = (np.asarray(v) for v in out)
    ratio = m2 / K_GRID
    scale_invariant = bool(np.all(np.abs(ratio - ratio[0]) <= 1e-9 * abs(ratio[0])) and ratio[0] > 0)
    return {"gap": gap, "m2": m2, "dp": dp, "scale_invariant": scale_invariant, "has_root": bool(has_root),
            "k_root": float(k_root), "m2_root": float(m2_root), "dp_root": float(dp_root),
            "dk_root": float(dk_root), "m2_offsets": m2_off, "taylor": tuple(float(t) for t in taylor)}


@lru_cache(maxsize=64)
def universality_class(activation) -> str:
    """``"scale-invariant"``, ``"K*=0"``, ``"half-stable"`` (a non-trivial critical K*) or ``"none"``.

    Scale-invariant: ``⟨σ²⟩_K / K`` is constant (σ = a₊z for z > 0, a₋z for z < 0).
    K* = 0: see :func:`k0_class_constants`.  Half-stable: ``⟨σσ''⟩_K`` changes sign at
    some K* with ``C_b ≥ 0`` (SWISH, GELU).  None: no criticality (sigmoid, softplus).
    """
    sigma = activation_fn(activation)
    an = _analysis(sigma)
    if an["scale_invariant"]:
        return "scale-invariant"
    if k0_class_constants(sigma)["in_class"]:
        return "K*=0"
    try:
        _nontrivial(sigma)
    except NoCriticalPoint:
        return "none"
    return "half-stable"


def _nontrivial(sigma) -> CriticalPoint:
    an = _analysis(sigma)
    gap = an["gap"]
    if an["has_root"]:
        k = an["k_root"]
        c_w = 1.0 / an["dp_root"]
        c_b = k - c_w * an["m2_root"]
        if c_b >= -1e-12:
            return CriticalPoint(max(c_b, 0.0), c_w, k)
    sign = "negative" if np.all(gap < 0) else "positive" if np.all(gap > 0) else "of both signs"
    raise NoCriticalPoint(
        f"activation {_name(sigma)!r} has no critical point: ⟨σσ''⟩_K = (χ∥ − χ⊥)/C_W is {sign} for K in "
        f"[{K_GRID[0]:.0e}, {K_GRID[-1]:.0e}]"
        + (" so χ∥ and χ⊥ cannot both equal 1" if sign != "of both signs" else
           " but its first root needs C_b < 0")
        + ", and the K* = 0 class needs σ(0) = 0, σ'(0) ≠ 0 and a_1 < 0")


@lru_cache(maxsize=64)
def critical_point(activation) -> CriticalPoint:
    """Critical initialization ``(C_b, C_W, K*)``: ``χ∥(K*) = χ⊥(K*) = 1`` and ``K* = C_b + C_W⟨σ²⟩_{K*}``.

    * scale-invariant class (ReLU, linear, leaky ReLU): ``(0, 1/⟨σ'²⟩, nan)``, e.g. (0, 2) for
      ReLU (PDLT eq. 5.67); every K is a fixed point.
    * K* = 0 class (tanh, erf, sin): ``(0, 1/σ'(0)², 0)`` (PDLT §5.3.3).
    * SWISH and GELU: the non-trivial, half-stable root of ``⟨σσ''⟩_{K*} = 0`` (PDLT §5.3.4),
      found by bracketing on :data:`K_GRID` and refining the bracket on sub-grids, with
      ``C_W = 1/⟨σ'²⟩_{K*}``, ``C_b = K* − C_W⟨σ²⟩_{K*}`` (kept only if ``C_b ≥ 0``).
    * otherwise raises :class:`NoCriticalPoint` with the reason (sigmoid, softplus).
    """
    sigma = activation_fn(activation)
    an = _analysis(sigma)
    if an["scale_invariant"]:
        return CriticalPoint(0.0, float(1.0 / an["dp"][0]), math.nan)
    k0 = k0_class_constants(sigma)
    if k0["in_class"]:
        return CriticalPoint(0.0, k0["c_w"], 0.0)
    return _nontrivial(sigma)


def kernel_map_near_critical(activation) -> dict:
    """One layer's change ``F(K) − K = C_b + C_W⟨σ²⟩_K − K`` near a non-trivial critical point (SWISH, GELU),
    from the quadrature the root finder ran (no new computation after :func:`critical_point`).

    Evaluated at ``K = K*·(1 − δ), K*, K*·(1 + δ)`` (``δ`` = :data:`HALF_STABLE_DELTA`), then at 81 points
    from ``0.9 K*`` to ``1.1 K*``.  Returns a dict: ``point`` (:class:`CriticalPoint`), ``k`` and ``step``
    (arrays of shape ``(84,)``), ``chi_par`` and ``chi_perp`` at ``K*``.  Raises :class:`NoCriticalPoint`
    when the activation has no non-trivial critical point.
    """
    sigma = activation_fn(activation)
    cls = universality_class(sigma)
    if cls != "half-stable":
        raise NoCriticalPoint(f"activation {_name(sigma)!r} is in the class {cls!r}: no non-trivial critical point")
    cp = _nontrivial(sigma)
    an = _analysis(sigma)
    ks = cp.k_star * _OFFSETS
    return {"point": cp, "k": ks, "step": cp.c_b + cp.c_w * an["m2_offsets"] - ks,
            "chi_par": cp.c_w * an["dk_root"], "chi_perp": cp.c_w * an["dp_root"]}


def susceptibility_curves(activation, c_w: float | None = None) -> dict:
    """``χ∥(K)`` and ``χ⊥(K)`` on :data:`K_GRID` (10⁻³ … 10³) at weight variance ``c_w``, from the same
    cached quadrature the classifier uses (no new computation after :func:`universality_class`).

    ``c_w`` defaults to the critical ``C_W`` of :func:`critical_point`; for an activation without one
    (sigmoid, softplus) to ``1/⟨σ'²⟩_1`` (χ⊥ = 1 at K = 1).  Both susceptibilities are linear in
    ``C_W`` (PDLT eqs. 5.50–5.51), so their ratio does not depend on it.  Returns a dict with ``k``,
    ``chi_par``, ``chi_perp`` (float64, shape ``(len(K_GRID),)``), ``c_w``, ``k_star`` (NaN for
    the scale-invariant class, 0 for the K* = 0 class, None without a critical point) and ``cls``.
    """
    sigma = activation_fn(activation)
    an = _analysis(sigma)
    try:
        cp = critical_point(sigma)
        k_star = cp.k_star
        default = cp.c_w
    except NoCriticalPoint:
        k_star = None
        default = 1.0 / float(an["dp"][int(np.argmin(np.abs(np.log(K_GRID))))])
    c_w = default if c_w is None else check_real(c_w, "c_w", 0.0, low_open=True)
    dp = np.asarray(an["dp"])
    dk = np.asarray(an["gap"]) + dp            # gap = d⟨σ²⟩/dK − ⟨σ'²⟩
    return {"k": K_GRID.copy(), "chi_par": c_w * dk, "chi_perp": c_w * dp, "c_w": float(c_w), "k_star": k_star,
            "cls": universality_class(sigma)}


# ---------------------------------------------------------------------------
# Finite width: closed forms
# ---------------------------------------------------------------------------


def fourth_cumulant_theory(activation, c_b: float, c_w: float, k1: float, width: int, depth: int) -> np.ndarray:
    """Leading-order normalized fourth cumulant ``V^(l)/(n (K^(l))²)``, ``l = 1..depth`` (equal widths ``n``).

    Equals ``Cov(z_i², z_j²)/K²`` (``i ≠ j``) at order ``1/n``.  Shape ``(depth,)``.
    """
    width = check_int(width, "width", 1)
    k, v = vertex_flow(activation, c_b, c_w, k1, depth)
    return v / (width * k * k)


#: ``Cov(z_i², z_j²)/K²`` per layer of a product of independent factors, exact at any width.
_EXACT_NU = {"relu": 5.0, "linear": 2.0}


def exact_fourth_cumulant(activation: str, width: int, depth: int) -> np.ndarray:
    """Exact finite-width ``Cov(z_i², z_j²)/K² = (1 + ν/n)^{l−1} − 1`` at criticality, ``l = 1..depth``.

    For one input, zero bias and the critical ``C_W`` of a scale-invariant activation,
    ``z^(l) | z^(l−1) ~ N(0, G^(l−1))`` with ``G^(l) = G^(l−1)·(C_W/n)Σ_j σ(ξ_j)²``, a product
    of independent factors with ``E[((C_W/n)Σσ(ξ)²)²] = 1 + ν/n``: ``ν = 2`` for the deep
    linear network (PDLT §3.3, eq. 3.45) and ``ν = 5`` for ReLU (Hanin & Nica's product
    formula).  To first order in ``l/n`` this is the ``ν(l−1)/n`` of :func:`vertex_flow`.
    The excess kurtosis of one neuron is three times this.  Shape ``(depth,)``.
    """
    if activation not in _EXACT_NU:
        raise ValueError(f"activation must be one of {sorted(_EXACT_NU)} (exactly solvable); got {activation!r}")
    width = check_int(width, "width", 1)
    depth = check_int(depth, "depth", 1)
    l = np.arange(1, depth + 1)
    return (1.0 + _EXACT_NU[activation] / width) ** (l - 1) - 1.0


def exact_leading_coefficient(activation: str, width: int) -> float:
    """The leading coefficient the exact finite-width cumulant implies at width ``n``: ``n·ln(1 + ν/n)/ν``.

    :func:`exact_fourth_cumulant` is ``exp((l−1)·ln(1 + ν/n)) − 1``, whose slope in ``l`` at small
    ``l/n`` is ``ln(1 + ν/n)``; the leading order ``ν(l−1)/n`` has slope ``ν/n``.  The ratio
    ``a = n ln(1 + ν/n)/ν = 1 − ν/(2n) + O(1/n²)`` is what a fit of ``ε = aθ + bθ²`` should
    return on exact data (0.929 for ReLU and 0.970 for the linear network at ``n = 32``).
    """
    if activation not in _EXACT_NU:
        raise ValueError(f"activation must be one of {sorted(_EXACT_NU)} (exactly solvable); got {activation!r}")
    n = check_int(width, "width", 1)
    nu = _EXACT_NU[activation]
    return float(n * np.log1p(nu / n) / nu)


def leading_coefficient(eps, theory, weights) -> float:
    """Weighted least-squares ``a`` of ``ε ≈ a·θ + b·θ²`` (``θ``: leading-order prediction).

    ``eps``, ``theory``, ``weights``: 1-D arrays of one length >= 2 (the layers used); ``a = 1``
    when the leading order holds, ``b`` absorbs the ``(l/n)²`` terms.  Linear in ``eps`` for fixed
    ``theory`` and ``weights``, so it can be applied to each batch of networks (batch means).
    """
    e, t, w = (np.asarray(v, dtype=float).ravel() for v in (eps, theory, weights))
    if not (e.size == t.size == w.size) or e.size < 2:
        raise ValueError(f"eps, theory and weights must be 1-D of one length >= 2; got {e.size}, {t.size}, {w.size}")
    if np.any(~np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("weights must be positive and finite")
    A = np.stack([t, t ** 2], axis=1) * w[:, None]
    coef, *_ = np.linalg.lstsq(A, e * w, rcond=None)
    return float(coef[0])


def collapse_exponent(eps_small, se_small, eps_large, se_large, width_small: int, width_large: int) -> tuple:
    """Exponent ``p`` of ``ε ∝ n^{−p}`` between two widths at the same ``(l−1)/n``, with its standard error.

    ``p = −ln(ε_large/ε_small)/ln(n_large/n_small)``; the delta method for independent ensembles
    gives ``se_p = √((se_s/ε_s)² + (se_l/ε_l)²)/ln(n_large/n_small)``.  The book's statement that
    ``l/n`` controls the corrections means ``p ≈ 0`` at fixed ``l/n``; at fixed depth ``p = 1``.
    """
    n1 = check_int(width_small, "width_small", 1)
    n2 = check_int(width_large, "width_large", n1 + 1)
    for name, v in (("eps_small", eps_small), ("eps_large", eps_large)):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be > 0 and finite; got {v}")
    for name, v in (("se_small", se_small), ("se_large", se_large)):
        if not (np.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be >= 0 and finite; got {v}")
    lg = math.log(n2 / n1)
    p = -math.log(eps_large / eps_small) / lg
    se = math.sqrt((se_small / eps_small) ** 2 + (se_large / eps_large) ** 2) / lg
    return float(p), float(se)


def map_curvature(activation, c_b: float, c_w: float, k_star: float, delta: float = 1e-3) -> float:
    """``K*·F''(K*)`` by the centred second difference of ``F(K) = C_b + C_W⟨σ²⟩_K``.

    ``[F(K*(1+δ)) − 2F(K*) + F(K*(1−δ))]/(δ²K*)``.  At a critical point ``F'(K*) = χ∥ = 1``, so
    ``F(K) − K ≈ ½F''(K*)(K − K*)²``: the point is *half-stable* (attracting from one side,
    repelling on the other) exactly when ``F''(K*) ≠ 0``; its sign says which side (F'' > 0:
    stable from below).  Unlike the sign of ``F(K) − K`` at ``K*(1 ± δ)``, the second difference
    does not depend on how small the fixed-point residual is.  Rounding of the 4000-node quadrature
    (about 1e-14 relative) enters as about ``1e-14/δ²``: 1e-8 at δ = 1e-3.
    """
    k_star = check_real(k_star, "k_star", 0.0, low_open=True)
    delta = check_real(delta, "delta", 0.0, 0.5, low_open=True)
    f = flow_step(activation, c_b, c_w, np.array([k_star * (1 - delta), k_star, k_star * (1 + delta)]))
    return float((f[2] - 2 * f[1] + f[0]) / (delta ** 2 * k_star))


def second_fixed_point(activation, c_b: float, c_w: float, k_star: float, lo: float = 1.005,
                       hi: float = 1.2) -> float | None:
    """A fixed point ``F(K) = K`` in ``(lo·K*, hi·K*)`` (Brent's method on ``F(K) − K``), or None.

    At SWISH's critical initialization ``F(K) − K`` is positive just above K* and turns negative
    about 2% above it: a second fixed point, attracting from both sides, that the kernel flows to
    from anywhere above K* (review of the chapter; found by this function).
    """
    from scipy.optimize import brentq

    k_star = check_real(k_star, "k_star", 0.0, low_open=True)
    grid = k_star * np.linspace(lo, hi, 41)
    g = flow_step(activation, c_b, c_w, grid) - grid
    idx = np.nonzero(np.sign(g[:-1]) != np.sign(g[1:]))[0]
    if idx.size == 0:
        return None
    i = int(idx[0])
    return float(brentq(lambda k: float(flow_step(activation, c_b, c_w, np.array([k]))[0]) - k,
                        grid[i], grid[i + 1], xtol=1e-13, rtol=1e-14))


# ---------------------------------------------------------------------------
# The optimal aspect ratio (PDLT appendix A): information in nearly-Gaussian outputs
# ---------------------------------------------------------------------------


def _check_scales(scales, weights):
    s = np.asarray(scales, dtype=float)
    if s.ndim != 1 or s.size < 1:
        raise ValueError(f"scales must be a non-empty 1-D array; got shape {s.shape}")
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError("scales must be finite and > 0 (they are variances)")
    if weights is None:
        w = np.full(s.size, 1.0 / s.size)
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != s.shape:
            raise ValueError(f"weights must have the shape of scales {s.shape}; got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("weights must be finite, >= 0 and not all 0")
        w = w / w.sum()
    keep = w > 0
    return s[keep], w[keep]


#: Points of the trapezoidal rule in ``t = log|z|`` used by :func:`scale_mixture_entropy`.
N_RADIAL = 400


def scale_mixture_entropy(scales, weights=None, dim: int = 1, n_grid: int = N_RADIAL) -> float:
    """Differential entropy (nats) of ``z ∈ R^dim`` with ``z | s ~ N(0, s I)`` and ``s ~ Σ_i w_i δ_{s_i}``.

    ``p(z) = Σ_i w_i (2π s_i)^{−dim/2} exp(−|z|²/(2 s_i))`` depends on ``|z|`` only, so
    ``H = −∫ p log p dz`` is a one-dimensional integral; in ``t = log|z|``
    (``dz = S_{dim−1} e^{dim·t} dt``, ``S_{d−1} = 2π^{d/2}/Γ(d/2)``) the integrand is smooth and
    decays double-exponentially above and like ``e^{dim·t}`` below, so the trapezoidal rule
    on ``N_RADIAL`` points is spectrally accurate (≈1e-13 absolute against 30-digit
    ``mpmath`` quadrature for one and two dimensions).  ``log p`` by log-sum-exp.
    ``scales``: shape ``(m,)``, > 0; ``weights``: shape ``(m,)``, ≥ 0 (normalized here;
    uniform if omitted — pass Monte Carlo samples of ``s`` that way).
    """
    from scipy.special import gammaln, logsumexp

    s, w = _check_scales(scales, weights)
    dim = check_int(dim, "dim", 1)
    n_grid = check_int(n_grid, "n_grid", 100)
    t = np.linspace(0.5 * math.log(s.min()) - 40.0 / dim, 0.5 * math.log(s.max() * dim) + 3.5, n_grid)
    r2 = np.exp(2 * t)
    log_p = logsumexp(np.log(w) - 0.5 * dim * np.log(2 * np.pi * s) - r2[:, None] / (2 * s), axis=1)
    log_surface = math.log(2) + 0.5 * dim * math.log(math.pi) - gammaln(dim / 2)
    density_t = np.exp(log_surface + dim * t + log_p)
    return float(np.trapezoid(-density_t * log_p, t))


def output_mutual_information(scales, weights=None, n_a: int = 1, n_b: int = 1) -> float:
    """``I(z_A; z_B)`` in nats between two disjoint groups of ``n_a`` and ``n_b`` network outputs.

    The outputs are a Gaussian scale mixture (see :func:`sample_output_scales`), so
    ``I = H_{n_a} + H_{n_b} − H_{n_a+n_b}`` with :func:`scale_mixture_entropy`.  At infinite
    width ``s`` is a constant and ``I = 0``: the outputs are independent Gaussians; the
    information between them is a finite-width effect.
    """
    n_a = check_int(n_a, "n_a", 1)
    n_b = check_int(n_b, "n_b", 1)
    s, w = _check_scales(scales, weights)
    h = {k: scale_mixture_entropy(s, w, k) for k in {n_a, n_b, n_a + n_b}}
    return h[n_a] + h[n_b] - h[n_a + n_b]


def lognormal_scales(x: float, n_nodes: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite nodes and weights of a lognormal ``s`` with ``E s = 1`` and ``Var s = x``.

    ``log s ~ N(−σ²/2, σ²)`` with ``σ² = log(1 + x)``.  This is the law of the output scale
    of a scale-invariant network (ReLU, linear) in the scaling limit ``n, L → ∞`` at fixed
    ``L/n`` (the log of a product of many independent factors), with ``x = e^{νL/n} − 1``.
    Returns two arrays of shape ``(n_nodes,)``.
    """
    x = check_real(x, "x", 0.0)
    n_nodes = check_int(n_nodes, "n_nodes", 2)
    g, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    sig2 = math.log1p(x)
    return np.exp(math.sqrt(sig2) * g - sig2 / 2), w / w.sum()


def mutual_information_coefficients(n_a: int, n_b: int) -> tuple[float, float]:
    """``(c₂, c₃)`` of ``I(z_A; z_B) = c₂ x² + c₃ x³ + O(x⁴)`` for a Gaussian scale mixture.

    ``x = Var(s)/E[s]² = Cov(z_i², z_j²)/K²`` is the normalized four-point vertex
    ``V/(nK²)`` (PDLT's expansion parameter, ``≈ ν L/n`` for a network of depth ``L``)::

        c₂ = n_a n_b / 8,     c₃ = −n_a n_b (20 + 3 n_L) / 48,   n_L = n_a + n_b.

    Derivation (ours; it reproduces the book's estimate): with ``E s = 1``, ``ε = s − 1`` and
    ``u = |z|²/2``, ``p(z) = φ(z)[1 + δ(u)]``, ``δ = Σ_{j≥2} E[ε^j] h_j(u)/j!`` with
    ``h_j = ∂_s^j (s^{−k/2} e^{−u(1/s − 1)})|_{s=1}``.  Then ``H = H_φ + E_φ[δ u] −
    E_φ[(1+δ) log(1+δ)]``; the middle term is additive over groups and cancels in ``I``, and
    expanding ``(1+δ)log(1+δ) = δ + δ²/2 − δ³/6 + …`` with ``E_φ[u^j] = (k/2)_j`` (rising
    factorial) gives the coefficients above.  At order ``x³`` the terms in the third and fourth
    moments of ``s`` do not enter: ``E_φ[h_i h_j] = 0`` for ``i ≠ j`` (generating function
    ``(1 − εη)^{−k/2}``), so they are orthogonal, and the result holds for any mixing law.  Checked against
    :func:`output_mutual_information` in the tests and in the chapter.
    """
    n_a = check_int(n_a, "n_a", 1)
    n_b = check_int(n_b, "n_b", 1)
    return n_a * n_b / 8.0, -n_a * n_b * (20.0 + 3.0 * (n_a + n_b)) / 48.0


def optimal_vertex(n_out: int) -> float:
    """``x* = argmax_x (c₂ x² + c₃ x³) = −2c₂/(3c₃) = 4/(20 + 3 n_out)``.

    The normalized four-point vertex at which the mutual information between output groups,
    truncated at order ``x³`` (:func:`mutual_information_coefficients`), is largest; it does
    not depend on how the ``n_out ≥ 2`` outputs are split.
    """
    n_out = check_int(n_out, "n_out", 2)
    c2, c3 = mutual_information_coefficients(1, n_out - 1)
    return -2.0 * c2 / (3.0 * c3)


def vertex_slope(activation, depth: int = 1000) -> float:
    """``ν = d/dl [V^(l)/(K^(l))²]`` at ``l = depth``, at the critical point of ``activation``.

    ``V^(l)/(nK²) ≈ ν l/n`` at criticality: ``ν = 5`` for ReLU and ``2`` for the linear
    network exactly; ``ν → 2/3`` in the ``K* = 0`` class (tanh, sin, erf), approached as
    ``1/l``.  Half-stable activations (SWISH, GELU) and those without a critical point have
    no such constant: ``ValueError``.
    """
    depth = check_int(depth, "depth", 3)
    cls = universality_class(activation)
    if cls not in ("scale-invariant", "K*=0"):
        raise ValueError(f"the vertex grows linearly in depth only in the scale-invariant and K*=0 classes; "
                         f"{_name(activation)!r} is {cls!r}")
    cp = critical_point(activation)
    k, v = vertex_flow(activation, cp.c_b, cp.c_w, cp.c_b + cp.c_w, depth)
    ratio = v / (k * k)
    return float(ratio[-1] - ratio[-2])


def optimal_aspect_ratio(activation, n_out: int = 2, depth: int = 1000) -> float:
    """The book's optimal depth-to-width ratio ``r* = x*/ν = 4 / ((20 + 3 n_out) ν)`` (PDLT appendix A).

    ``x*`` from :func:`optimal_vertex`, ``ν`` measured on the vertex recursion
    (:func:`vertex_slope` at ``depth``).  ``n_out ≥ 2`` outputs (with one output there is no
    information between outputs to maximize).
    """
    return optimal_vertex(n_out) / vertex_slope(activation, depth)


# ---------------------------------------------------------------------------
# Two inputs
# ---------------------------------------------------------------------------


def _check_pair(k11, k22, k12):
    k11 = check_real(k11, "k11", 0.0, low_open=True)
    k22 = check_real(k22, "k22", 0.0, low_open=True)
    k12 = check_real(k12, "k12")
    if k12 * k12 > k11 * k22 * (1 + 1e-12):
        raise ValueError(f"need k12² <= k11·k22 (a covariance); got k11={k11}, k22={k22}, k12={k12}")
    return k11, k22, k12


def relu_arccos_kernel(k11: float, k22: float, k12: float) -> float:
    """``⟨relu(z_1) relu(z_2)⟩`` for ``(z_1, z_2) ~ N(0, [[k11, k12], [k12, k22]])``: the arc-cosine kernel

    ``√(k11 k22)/(2π) · (sin θ + (π − θ) cos θ)``, ``θ = arccos(k12/√(k11 k22))`` (Cho & Saul 2009, n = 1).
    """
    k11, k22, k12 = _check_pair(k11, k22, k12)
    s = math.sqrt(k11 * k22)
    th = math.acos(max(-1.0, min(1.0, k12 / s)))
    return s / (2 * math.pi) * (math.sin(th) + (math.pi - th) * math.cos(th))


def erf_arcsin_kernel(k11: float, k22: float, k12: float) -> float:
    """``⟨erf(z_1) erf(z_2)⟩ = (2/π) arcsin(2 k12 / √((1 + 2 k11)(1 + 2 k22)))`` (Williams 1997)."""
    k11, k22, k12 = _check_pair(k11, k22, k12)
    return 2 / math.pi * math.asin(2 * k12 / math.sqrt((1 + 2 * k11) * (1 + 2 * k22)))


#: Nodes per dimension of the tensor-product quadrature for two inputs.
N_NODES_2D = 400


def _pair_expectation(sigma, k11, k22, k12, n_nodes=N_NODES_2D):
    x, w = _trapezoid_nodes(n_nodes)
    X, Y = np.meshgrid(x, x, indexing="ij")
    W = np.outer(w, w)
    rho = k12 / math.sqrt(k11 * k22)
    z1 = math.sqrt(k11) * X
    z2 = math.sqrt(k22) * (rho * X + math.sqrt(max(0.0, 1 - rho * rho)) * Y)
    with jax.enable_x64(True):
        a1, a2 = sigma(jnp.asarray(z1)), sigma(jnp.asarray(z2))
        return (float(jnp.sum(W * a1 * a1)), float(jnp.sum(W * a2 * a2)), float(jnp.sum(W * a1 * a2)))


def two_input_flow(activation, c_b: float, c_w: float, k11: float, k22: float, k12: float, depth: int,
                   method: str = "auto") -> np.ndarray:
    """The 2×2 kernel of two inputs through ``depth`` layers (PDLT eq. 4.118)::

        K^(l+1)_{αβ} = C_b + C_W ⟨σ(z_α) σ(z_β)⟩_{K^(l)}.

    ``k11, k22, k12`` is ``K^(1)``.  ``method``: ``"closed"`` uses the arc-cosine (ReLU),
    arcsine (erf) or identity (linear) kernels; ``"quadrature"`` a tensor-product
    trapezoidal rule (400² nodes; spectrally accurate for smooth σ, only about 1e-4 relative
    for ReLU, whose kink does not lie on the grid); ``"auto"`` picks closed where available.  Returns shape
    ``(depth, 3)``: columns ``K11, K22, K12``; the correlation is ``K12/√(K11 K22)``.
    """
    sigma = activation_fn(activation)
    c_b = check_real(c_b, "c_b", 0.0)
    c_w = check_real(c_w, "c_w", 0.0, low_open=True)
    k11, k22, k12 = _check_pair(k11, k22, k12)
    depth = check_int(depth, "depth", 1)
    if method not in ("auto", "closed", "quadrature"):
        raise ValueError(f"method must be 'auto', 'closed' or 'quadrature'; got {method!r}")
    closed = {"relu": lambda a, b, c: (a / 2, b / 2, relu_arccos_kernel(a, b, c)),
              "erf": lambda a, b, c: (erf_arcsin_kernel(a, a, a), erf_arcsin_kernel(b, b, b), erf_arcsin_kernel(a, b, c)),
              "linear": lambda a, b, c: (a, b, c)}
    name = activation if isinstance(activation, str) else None
    if method == "closed" and name not in closed:
        raise ValueError(f"method='closed' needs activation in {sorted(closed)}; got {activation!r}")
    use_closed = name in closed and method != "quadrature"
    out = np.empty((depth, 3))
    a, b, c = k11, k22, k12
    for l in range(depth):
        out[l] = a, b, c
        m = closed[name](a, b, c) if use_closed else _pair_expectation(sigma, a, b, c)
        a, b, c = c_b + c_w * m[0], c_b + c_w * m[1], c_b + c_w * m[2]
        c = max(-math.sqrt(a * b), min(math.sqrt(a * b), c))
    return out


# ---------------------------------------------------------------------------
# Estimators from Monte Carlo statistics
# ---------------------------------------------------------------------------


def fourth_cumulant_estimate(stats: np.ndarray, width: int, n_batches: int = 20) -> dict:
    """Estimate ``K̂ = E z²`` and ``ε̂ = Cov(z_i², z_j²)/K̂²`` (``i ≠ j``) per layer from :func:`sample_layer_moments`.

    ``E[z_i² z_j²] = E[(Σz²)² − Σz⁴] / (n(n−1))``, pooled over networks; also the
    one-neuron excess kurtosis ``κ̂ = E z⁴/K̂² − 3``.  Standard errors by batch means
    over ``n_batches`` groups of networks (networks are independent).  Returns a dict of
    arrays of shape ``(depth,)``: ``k, eps, eps_se, kurt, kurt_se``, and ``eps_batches`` of shape
    ``(n_batches, depth)``: the estimate on each batch (for statistics that combine layers, whose
    errors are correlated because every layer is measured on the same networks).
    """
    stats = np.asarray(stats, dtype=float)
    if stats.ndim != 3 or stats.shape[-1] != 2:
        raise ValueError(f"stats must have shape (n_networks, depth, 2); got {stats.shape}")
    n = check_int(width, "width", 2)
    n_batches = check_int(n_batches, "n_batches", 2)
    if stats.shape[0] < 2 * n_batches:
        raise ValueError(f"need at least 2·n_batches networks; got {stats.shape[0]} for n_batches={n_batches}")

    def est(s):
        s2, s4 = s[..., 0], s[..., 1]
        k = s2.mean(0) / n
        pair = (s2 * s2 - s4).mean(0) / (n * (n - 1))
        return k, pair / k ** 2 - 1.0, s4.mean(0) / n / k ** 2 - 3.0

    k, eps, kurt = est(stats)
    m = stats.shape[0] // n_batches
    parts = [est(stats[i * m:(i + 1) * m]) for i in range(n_batches)]
    eps_se = np.std([p[1] for p in parts], axis=0, ddof=1) / math.sqrt(n_batches)
    kurt_se = np.std([p[2] for p in parts], axis=0, ddof=1) / math.sqrt(n_batches)
    return {"k": k, "eps": eps, "eps_se": eps_se, "kurt": kurt, "kurt_se": kurt_se,
            "eps_batches": np.array([p[1] for p in parts])}


# ---------------------------------------------------------------------------
# Selectable-activation KAN (S-KAN; Yang et al. 2024): candidate activation spaces and the layer
# ---------------------------------------------------------------------------

#: The candidate activation spaces an S-KAN node chooses among (each spanned by ``n_basis``
#: functions on (−1, 1)): cubic B-splines on a uniform grid (KAN), Gaussian radial basis functions
#: (FastKAN), Chebyshev polynomials (ChebyKAN) and a Fourier series.
SKAN_CANDIDATES = ("bspline", "rbf", "chebyshev", "fourier")


def skan_basis(u, candidate: str, n_basis: int = 8):
    """The ``n_basis`` functions spanning one candidate activation space, evaluated at ``u`` ∈ (−1, 1).

    * ``bspline``: uniform cubic B-splines B_m(u) = (1/6) Σ_{j=0}^{4} (−1)^j C(4, j) ((u − t_m)/h − j)_+^3
      on the knots t_m = −1 + (m − 3)h, h = 2/(n_basis − 3), m = 0 … n_basis − 1 (the truncated-power
      form of the Cox–de Boor recursion); they sum to 1 on [−1, 1] (KAN, Liu et al. 2024).
    * ``rbf``: exp(−((u − c_g)/h)²) with n_basis centres c_g evenly on [−1, 1], h = 2/(n_basis − 1)
      (FastKAN).
    * ``chebyshev``: T_0(u) … T_{n_basis−1}(u), T_k(cos θ) = cos kθ (ChebyKAN).
    * ``fourier``: cos(kπu), sin(kπu) for k = 1 … n_basis/2 (n_basis even).

    ``u``: a torch tensor of any shape; returns shape ``u.shape + (n_basis,)``.
    """
    import torch

    if candidate not in SKAN_CANDIDATES:
        raise ValueError(f"candidate must be one of {SKAN_CANDIDATES}; got {candidate!r}")
    n_basis = check_int(n_basis, "n_basis", 4)
    if not isinstance(u, torch.Tensor):
        raise TypeError(f"u must be a torch.Tensor; got {type(u).__name__}")
    if candidate == "bspline":
        # uniform cubic B-spline = (1/6) Σ_j (−1)^j C(4, j) (s − j)_+^3 in s = (u − t_m)/h
        h = 2.0 / (n_basis - 3)
        t = -1.0 + (torch.arange(n_basis, dtype=u.dtype, device=u.device) - 3) * h
        s = (u.unsqueeze(-1) - t) / h
        r = torch.relu
        return (r(s) ** 3 - 4 * r(s - 1) ** 3 + 6 * r(s - 2) ** 3 - 4 * r(s - 3) ** 3 + r(s - 4) ** 3) / 6.0
    if candidate == "rbf":
        c = torch.linspace(-1.0, 1.0, n_basis, dtype=u.dtype, device=u.device)
        return torch.exp(-(((u.unsqueeze(-1) - c) * ((n_basis - 1) / 2.0)) ** 2))
    if candidate == "chebyshev":
        out = [torch.ones_like(u), u]
        for _ in range(2, n_basis):
            out.append(2 * u * out[-1] - out[-2])
        return torch.stack(out[:n_basis], dim=-1)
    if n_basis % 2:
        raise ValueError(f"n_basis must be even for the fourier candidate; got {n_basis}")
    k = torch.arange(1, n_basis // 2 + 1, dtype=u.dtype, device=u.device) * math.pi
    ku = u.unsqueeze(-1) * k
    return torch.cat([torch.cos(ku), torch.sin(ku)], dim=-1)


def skan_features(x, candidates=SKAN_CANDIDATES, n_basis: int = 8):
    """Φ_{c,g}(tanh x) for every input and candidate space, flattened: ``x`` [K, B, n_in] ->
    [K, B, n_in·C·G] (index order i, c, g).  tanh squashes every layer's input into (−1, 1), the
    candidates' common domain."""
    import torch

    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ValueError(f"x must be a torch.Tensor of shape [K, B, n_in]; got {getattr(x, 'shape', type(x))}")
    u = torch.tanh(x)
    phi = torch.stack([skan_basis(u, c, n_basis) for c in candidates], dim=-2)   # [K, B, n_in, C, G]
    return phi.reshape(x.shape[0], x.shape[1], -1)


def _check_skan_shapes(phi, coef, weights) -> tuple:
    """(K, n_out, n_in, C, G) of an S-KAN layer, after checking that ``phi``, ``coef`` and ``weights`` agree."""
    if coef.dim() != 5:
        raise ValueError(f"coef must have shape [K, n_out, n_in, C, G]; got {tuple(coef.shape)}")
    k, n_out, n_in, c, g = coef.shape
    if phi.dim() != 3 or phi.shape[0] != k or phi.shape[2] != n_in * c * g:
        raise ValueError(f"phi must have shape [{k}, B, {n_in * c * g}]; got {tuple(phi.shape)}")
    if tuple(weights.shape) != (k, n_out, c):
        raise ValueError(f"weights must have shape {(k, n_out, c)}; got {tuple(weights.shape)}")
    return k, n_out, n_in, c, g


def skan_layer(phi, coef, weights, bias):
    """One S-KAN layer for K networks at once (Yang et al. 2024, the selectable KAN node).

    Output node j of member k sums learnable univariate functions of its inputs, each a mixture of
    the candidate activation spaces with the node's selection weights w_{k,j,c}:

        y_{k,b,j} = bias_{k,j} + Σ_i Σ_c w_{k,j,c} Σ_g coef_{k,j,i,c,g} Φ_{c,g}(tanh x_{k,b,i})

    During full training ``weights`` = softmax of learnable logits; after selection, the one-hot
    :func:`skan_select`.  Shapes: ``phi`` = :func:`skan_features` [K, B, n_in·C·G], ``coef``
    [K, n_out, n_in, C, G], ``weights`` [K, n_out, C], ``bias`` [K, n_out]; returns [K, B, n_out].
    """
    k, n_out, n_in, c, g = _check_skan_shapes(phi, coef, weights)
    eff = (coef * weights[:, :, None, :, None]).reshape(k, n_out, -1)
    return phi @ eff.transpose(1, 2) + bias.unsqueeze(1)


def skan_select(logits):
    """Hard selection after full training: the one-hot of the largest selection weight per node,
    ``logits`` [..., C] -> float mask [..., C] (ties go to the first candidate)."""
    import torch

    if not isinstance(logits, torch.Tensor) or logits.dim() < 1:
        raise TypeError("logits must be a torch.Tensor with a last axis of candidates")
    return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)


def skan_parameter_count(sizes, n_basis: int) -> int:
    """Parameters of a selected S-KAN (or a one-space KAN) with layer sizes ``sizes``:
    Σ_l (n_l · n_{l+1} · n_basis + n_{l+1}) (one coefficient vector per edge, a bias per node)."""
    n_basis = check_int(n_basis, "n_basis", 1)
    sizes = [check_int(s, "sizes[i]", 1) for s in sizes]
    if len(sizes) < 2:
        raise ValueError("sizes must hold at least an input and an output size")
    return sum(a * b * n_basis + b for a, b in zip(sizes[:-1], sizes[1:]))


def mlp_parameter_count(sizes) -> int:
    """Parameters of a dense MLP with layer sizes ``sizes``: Σ_l (n_l + 1) n_{l+1}."""
    sizes = [check_int(s, "sizes[i]", 1) for s in sizes]
    if len(sizes) < 2:
        raise ValueError("sizes must hold at least an input and an output size")
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))


def matched_mlp_width(n_params: int, n_in: int, n_out: int = 1, hidden_layers: int = 2) -> int:
    """The smallest hidden width h (equal hidden layers) whose MLP has at least ``n_params`` parameters."""
    n_params = check_int(n_params, "n_params", 1)
    hidden_layers = check_int(hidden_layers, "hidden_layers", 1)
    h = 1
    while mlp_parameter_count([n_in] + [h] * hidden_layers + [n_out]) < n_params:
        h += 1
    return h


# ---------------------------------------------------------------------------
# Pruning a (selected) S-KAN: the KAN paper's edge scores, sparsification penalty and node rule
# ---------------------------------------------------------------------------

def skan_edge_activations(phi, coef, weights):
    """The learned univariate function of every edge, evaluated on the batch:
    φ_{k,b,j,i} = Σ_c w_{k,j,c} Σ_g coef_{k,j,i,c,g} Φ_{c,g}(tanh x_{k,b,i}), so that
    :func:`skan_layer` = Σ_i φ_{k,b,j,i} + bias_{k,j}.

    Shapes as in :func:`skan_layer`: ``phi`` [K, B, n_in·C·G], ``coef`` [K, n_out, n_in, C, G],
    ``weights`` [K, n_out, C]; returns [K, B, n_out, n_in].
    """
    import torch

    k, n_out, n_in, c, g = _check_skan_shapes(phi, coef, weights)
    eff = (coef * weights[:, :, None, :, None]).reshape(k, n_out, n_in, c * g)
    return torch.einsum("kbic,kjic->kbji", phi.reshape(k, phi.shape[1], n_in, c * g), eff)


def kan_sparsity_penalty(scores, mu_1: float = 1.0, mu_2: float = 1.0):
    """The KAN paper's sparsification regulariser of one layer (Liu et al. 2024, §2.5.1), per member:

        μ₁ |Φ|₁ + μ₂ S(Φ),   |Φ|₁ = Σ_{j,i} |φ_ji|₁,   S(Φ) = −Σ_{j,i} (|φ_ji|₁/|Φ|₁) log(|φ_ji|₁/|Φ|₁),

    where |φ_ji|₁ is the mean magnitude of the edge's activation over the batch (``scores``, from
    :func:`skan_edge_activations`: ``abs().mean(1)``).  ``scores`` [K, n_out, n_in] ≥ 0; returns [K].
    """
    import torch

    mu_1 = check_real(mu_1, "mu_1", 0.0)
    mu_2 = check_real(mu_2, "mu_2", 0.0)
    if not isinstance(scores, torch.Tensor) or scores.dim() != 3:
        raise ValueError(f"scores must be a torch.Tensor of shape [K, n_out, n_in]; got {getattr(scores, 'shape', type(scores))}")
    total = scores.sum(dim=(1, 2))
    p = scores / total.clamp_min(torch.finfo(scores.dtype).tiny)[:, None, None]
    pos = p > 0                          # empty edges (masked, pruned) add nothing, and no NaN gradient
    entropy = -torch.where(pos, p * torch.log(torch.where(pos, p, torch.ones_like(p))), torch.zeros_like(p)).sum(dim=(1, 2))
    return mu_1 * total + mu_2 * entropy


def kan_prune_nodes(scores_in, scores_out, threshold: float = 1e-2):
    """The KAN paper's node pruning rule (Liu et al. 2024, §2.5.1): hidden node i is kept when both its
    incoming score max_k |φ_{i,k}|₁ and its outgoing score max_j |φ_{j,i}|₁ exceed ``threshold``
    (10⁻² by default, the paper's).

    ``scores_in`` [K, n_hidden, n_in] (edges into the hidden layer), ``scores_out`` [K, n_next, n_hidden]
    (edges out of it); returns a boolean keep mask [K, n_hidden].
    """
    import torch

    threshold = check_real(threshold, "threshold", 0.0)
    for name, s in (("scores_in", scores_in), ("scores_out", scores_out)):
        if not isinstance(s, torch.Tensor) or s.dim() != 3:
            raise ValueError(f"{name} must be a torch.Tensor of shape [K, n_out, n_in]; got {getattr(s, 'shape', type(s))}")
    if scores_in.shape[0] != scores_out.shape[0] or scores_in.shape[1] != scores_out.shape[2]:
        raise ValueError(f"scores_in {tuple(scores_in.shape)} and scores_out {tuple(scores_out.shape)} must share K "
                         "and the hidden layer (scores_in.shape[1] == scores_out.shape[2])")
    return (scores_in.amax(dim=2) > threshold) & (scores_out.amax(dim=1) > threshold)
