"""Experiments of the RG-flow chapter: Monte Carlo ensembles of real random networks (PyTorch,
float32, batched ``bmm``), the frozen config dataclasses with ``preset(scale)`` and the
``run_<experiment>(config, seed)`` runners.  The math they call is in :mod:`sparsebook.rg_flow.kernels`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

import jax
import jax.numpy as jnp

from sparsebook.rg_flow.kernels import (
    _EXACT_NU, NoCriticalPoint, _trapezoid_nodes, _lookup_activation, _moments, activation_fn, chi_parallel,
    chi_perp, collapse_exponent, critical_point, exact_fourth_cumulant, exact_leading_coefficient,
    fourth_cumulant_estimate, fourth_cumulant_theory, k0_class_constants, kernel_flow, kernel_map_near_critical, leading_coefficient,
    lognormal_scales, map_curvature, mean_square_activation, mutual_information_coefficients, output_mutual_information,
    second_fixed_point, vertex_slope,
)
from sparsebook.stats import Estimate, monte_carlo
from sparsebook.scales import check_scale
from sparsebook.seeding import seed_everything
from sparsebook.validate import check_int, check_real


# ---------------------------------------------------------------------------
# Monte Carlo: ensembles of real random networks
# ---------------------------------------------------------------------------


#: Torch versions of the named activations, for the Monte Carlo of real networks.
_TORCH_ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": torch.relu,
    "tanh": torch.tanh,
    "erf": torch.erf,
    "sin": torch.sin,
    "sigmoid": torch.sigmoid,
    "softplus": torch.nn.functional.softplus,
    "swish": torch.nn.functional.silu,
    "gelu": torch.nn.functional.gelu,
}


def _torch_activation(activation) -> Callable:
    """The PyTorch function for ``activation`` (a name in ``_TORCH_ACTIVATIONS`` or a callable)."""
    return _lookup_activation(activation, _TORCH_ACTIVATIONS)


def _torch_device(device) -> torch.device:
    """``device`` as a ``torch.device``; ``"cuda"`` must be available (the full-scale runs use it when it is)."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False")
    return dev


def full_scale_device() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``: the device of the ``SCALE = "full"`` Monte Carlo.

    The ``"ci"`` presets always use the CPU, whose float32 streams are what the stored notebook
    outputs were computed with; the GPU draws other random numbers (same seed, different generator).
    """
    return "cuda" if torch.cuda.is_available() else "cpu"


def _ensemble_preactivations(activation, c_b, c_w, width, depth, n_networks, seed, n_in, chunk, device="cpu"):
    """Yield ``(start, l, z)`` for ``n_networks`` independently initialized MLPs (PyTorch, float32).

    Networks come in chunks of ``chunk`` (batched ``bmm``); each has its own weights
    ``W ~ N(0, C_W/fan_in)`` and biases ``b ~ N(0, C_b)`` from one seeded generator, and is
    evaluated on ``x = (1, …, 1) ∈ R^{n_in}``.  ``z``: layer ``l``'s preactivations (0-based
    ``l``) of networks ``start .. start + m − 1``, shape ``(m, width)``.  One random stream,
    so every sampler built on this sees the same networks for the same seed (and ``device``).
    """
    sigma = _torch_activation(activation)
    c_b = check_real(c_b, "c_b", 0.0)
    c_w = check_real(c_w, "c_w", 0.0, low_open=True)
    width = check_int(width, "width", 2)
    depth = check_int(depth, "depth", 1)
    n_networks = check_int(n_networks, "n_networks", 2)
    n_in = width if n_in is None else check_int(n_in, "n_in", 1)
    chunk = check_int(chunk, "chunk", 1)
    dev = _torch_device(device)
    seed_everything(seed)
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    with torch.no_grad():
        for start in range(0, n_networks, chunk):
            m = min(chunk, n_networks - start)
            h = torch.ones(m, n_in, 1, device=dev)
            fan_in = n_in
            for l in range(depth):
                W = torch.randn(m, width, fan_in, generator=gen, device=dev) * math.sqrt(c_w / fan_in)
                b = torch.randn(m, width, 1, generator=gen, device=dev) * math.sqrt(c_b)
                z = torch.bmm(W, h) + b
                yield start, l, z.squeeze(-1)
                h = sigma(z)
                fan_in = width


def sample_layer_moments(activation, c_b: float, c_w: float, width: int, depth: int, n_networks: int,
                         seed: int = 0, n_in: int | None = None, chunk: int = 1000, device: str = "cpu") -> np.ndarray:
    """Monte Carlo over ``n_networks`` independently initialized MLPs of equal ``width`` (PyTorch).

    Each network gets its own weights ``W ~ N(0, C_W/fan_in)`` and biases ``b ~ N(0, C_b)``
    (float32, batched ``bmm`` over ``chunk`` networks at a time, one seeded generator) and is
    evaluated on one input ``x = (1, …, 1) ∈ R^{n_in}`` (``n_in = width`` by default), so
    ``K^(1) = C_b + C_W``.  ``activation``: a name in :data:`ACTIVATIONS` or a callable on
    torch tensors.  Returns float64 ``(n_networks, depth, 2)``: per network and layer
    ``Σ_i z_i²`` and ``Σ_i z_i⁴``.  ``device``: where the networks run (``"cpu"`` or ``"cuda"``).
    """
    return _sample_layers(activation, c_b, c_w, width, depth, n_networks, seed, n_in, chunk, device)[0]


def _sample_layers(activation, c_b, c_w, width, depth, n_networks, seed=0, n_in=None, chunk=1000, device="cpu",
                   keep: int = 0) -> tuple:
    """:func:`sample_layer_moments` and, from the same networks, the preactivations of the first ``keep``
    neurons of every layer: float32 ``(n_networks, depth, keep)`` (None when ``keep`` is 0)."""
    out = np.empty((check_int(n_networks, "n_networks", 2), check_int(depth, "depth", 1), 2))
    keep = min(check_int(keep, "keep", 0), check_int(width, "width", 2))
    kept = np.empty((n_networks, depth, keep), dtype=np.float32) if keep else None
    for start, l, z in _ensemble_preactivations(activation, c_b, c_w, width, depth, n_networks, seed, n_in, chunk,
                                                device):
        zz = z.double() ** 2
        out[start:start + len(z), l, 0] = zz.sum(-1).cpu().numpy()
        out[start:start + len(z), l, 1] = (zz * zz).sum(-1).cpu().numpy()
        if keep:
            kept[start:start + len(z), l] = z[:, :keep].cpu().numpy()
    return out, kept


def sample_output_scales(activation, c_b: float, c_w: float, width: int, depth: int, n_networks: int,
                         seed: int = 0, n_in: int | None = None, chunk: int = 1000, device: str = "cpu") -> np.ndarray:
    """The conditional variance of the next layer's preactivations, per network and layer (PyTorch MC).

    Given layer ``l``, the preactivations of a linear readout ``z^(l+1) = b + W σ(z^(l))`` are
    *exactly* i.i.d. Gaussian: ``z^(l+1) | z^(l) ~ N(0, s^(l) I)`` with

        s^(l) = C_b + (C_W / n) Σ_j σ(z_j^(l))².

    So the outputs of a random network are a Gaussian scale mixture whose mixing law is the
    law of ``s`` over networks, and ``Var(s)/E[s]² = Cov(z_i², z_j²)/K²`` at layer ``l + 1``.
    Same networks as :func:`sample_layer_moments` for the same arguments.  Returns float64
    ``(n_networks, depth)``.
    """
    sigma = _torch_activation(activation)
    c_b = check_real(c_b, "c_b", 0.0)
    c_w = check_real(c_w, "c_w", 0.0, low_open=True)
    out = np.empty((check_int(n_networks, "n_networks", 2), check_int(depth, "depth", 1)))
    for start, l, z in _ensemble_preactivations(activation, c_b, c_w, width, depth, n_networks, seed, n_in, chunk,
                                                device):
        a = sigma(z).double()
        out[start:start + len(z), l] = (c_b + c_w * (a * a).mean(-1)).cpu().numpy()
    return out




def gradient_norms(activation, c_b: float, c_w: float, width: int, depth: int, n_networks: int,
                   seed: int = 0, chunk: int = 128, device: str = "cpu") -> dict:
    """Backpropagated gradient norms on real random networks (PyTorch autograd, float32, batched).

    For each of ``n_networks`` MLPs (input ``x = 1 ∈ R^width``) computes ``‖∂z_1^(L)/∂z^(l)‖²``
    and ``‖z^(l)‖²/n`` for ``l = 1..L``; returns their means over networks (``grad2``, ``k``),
    the standard error of ``grad2`` and the per-network values (``grad2_all``).
    At infinite width ``E‖∂z_1^(L)/∂z^(l)‖² = Π_{l'=l}^{L−1} χ⊥(K^(l'))``: depth-independent
    at criticality, exponential in ``L − l`` off it.  Arrays of shape ``(depth,)``.
    """
    sigma = _torch_activation(activation)
    c_b = check_real(c_b, "c_b", 0.0)
    c_w = check_real(c_w, "c_w", 0.0, low_open=True)
    width = check_int(width, "width", 2)
    depth = check_int(depth, "depth", 2)
    n_networks = check_int(n_networks, "n_networks", 2)
    chunk = check_int(chunk, "chunk", 1)
    dev = _torch_device(device)
    seed_everything(seed)
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    g_all = np.empty((n_networks, depth))
    k_all = np.empty((n_networks, depth))
    for start in range(0, n_networks, chunk):
        m = min(chunk, n_networks - start)
        h = torch.ones(m, width, 1, device=dev)
        zs = []
        for l in range(depth):
            W = torch.randn(m, width, width, generator=gen, device=dev) * math.sqrt(c_w / width)
            b = torch.randn(m, width, 1, generator=gen, device=dev) * math.sqrt(c_b)
            eps = torch.zeros(m, width, 1, requires_grad=True, device=dev)  # ∂/∂eps = ∂/∂z^(l)
            z = torch.bmm(W, h) + b + eps
            zs.append((z, eps))
            h = sigma(z)
        zs[-1][0][:, 0, 0].sum().backward()
        with torch.no_grad():
            for l, (z, eps) in enumerate(zs):
                g_all[start:start + m, l] = (eps.grad.squeeze(-1).double() ** 2).sum(-1).cpu().numpy()
                k_all[start:start + m, l] = (z.squeeze(-1).double() ** 2).mean(-1).cpu().numpy()
    return {"grad2": g_all.mean(0), "grad2_se": g_all.std(0, ddof=1) / math.sqrt(n_networks),
            "k": k_all.mean(0), "grad2_all": g_all, "k_all": k_all}


# ---------------------------------------------------------------------------
# Experiments
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelFlowConfig:
    """Kernel flows of every class at and off criticality (no randomness)."""

    depth: int = 1000
    k1: float = 1.0
    off_critical: tuple = (0.9, 1.1)  # multiples of the critical C_W
    k0_activations: tuple = ("tanh", "erf", "sin")
    half_stable: tuple = ("swish", "gelu")
    no_critical: tuple = ("sigmoid", "softplus")

    @classmethod
    def preset(cls, scale: str = "ci") -> "KernelFlowConfig":
        check_scale(scale)
        return cls() if scale == "ci" else cls(depth=10000)


def run_kernel_flows(config: KernelFlowConfig, seed: int = 0) -> dict:
    """K^(l) for ReLU/linear (scale-invariant), tanh/erf/sin (K* = 0) at and off criticality,
    the SWISH/GELU critical points with their half-stability, and sigmoid/softplus's absence of one.

    Half-stability: with ``χ∥(K*) = 1`` the map ``F(K) = C_b + C_W⟨σ²⟩_K`` is tangent to the
    identity, so ``F(K) − K`` has the same sign on both sides of K* when ``F''(K*) ≠ 0``: the
    flow approaches K* from one side and leaves it on the other.  We evaluate ``F(K) − K`` at
    ``K*(1 ± HALF_STABLE_DELTA)``."""
    seed_everything(seed)
    L, k1 = config.depth, config.k1
    out: dict = {"depth": L, "l": np.arange(1, L + 1)}
    flows = {}
    for name in ("relu", "linear") + tuple(config.k0_activations):
        cp = critical_point(name)
        flows[name] = {f: kernel_flow(name, 0.0, f * cp.c_w, k1, L) for f in (1.0,) + tuple(config.off_critical)}
    out["flows"] = flows
    out["k0"] = {name: k0_class_constants(name) for name in config.k0_activations}
    out["critical"] = {name: critical_point(name) for name in ("relu", "linear") + tuple(config.k0_activations)}
    half = {}
    for name in config.half_stable:
        near = kernel_map_near_critical(name)   # F(K) − K at K*·(1 ± δ), K* and on ±10% of K*
        cp, ks, moved = near["point"], near["k"], near["step"]
        step = moved[:3]
        half[name] = {"point": cp, "chi_par": near["chi_par"], "chi_perp": near["chi_perp"],
                      "fixed_point_residual": abs(step[1]) / cp.k_star, "step_minus": step[0], "step_plus": step[2],
                      "half_stable": bool(step[0] * step[2] > 0),
                      "stable_side": "below" if step[0] > 0 else "above",
                      "k_grid": ks[3:], "map_minus_identity": moved[3:],
                      "curvature": map_curvature(name, cp.c_b, cp.c_w, cp.k_star)}
        k2 = second_fixed_point(name, cp.c_b, cp.c_w, cp.k_star)
        half[name]["second_fixed_point"] = None if k2 is None else k2 / cp.k_star
        half[name]["chi_par_second"] = None if k2 is None else float(chi_parallel(name, cp.c_w, np.array([k2]))[0])
    out["half_stable"] = half
    none = {}
    for name in config.no_critical:
        try:
            critical_point(name)
            none[name] = None
        except NoCriticalPoint as e:
            none[name] = str(e)
    out["no_critical"] = none
    return out


@dataclass(frozen=True)
class PhaseDiagramConfig:
    """Fixed point K* and χ⊥(K*) of tanh on a (C_b, C_W) grid, after ``iterations`` layers."""

    activation: str = "tanh"
    c_b_max: float = 0.5
    c_w_range: tuple = (0.5, 2.0)
    n_grid: int = 41
    iterations: int = 300
    k1: float = 1.0

    @classmethod
    def preset(cls, scale: str = "ci") -> "PhaseDiagramConfig":
        check_scale(scale)
        return cls() if scale == "ci" else cls(n_grid=161, iterations=3000)


def run_phase_diagram(config: PhaseDiagramConfig, seed: int = 0) -> dict:
    """χ⊥(K^(L)) and χ∥(K^(L)) with ``L = iterations`` over the (C_b, C_W) grid (vectorized in JAX)."""
    seed_everything(seed)
    sigma = activation_fn(config.activation)
    c_b = np.linspace(0.0, config.c_b_max, config.n_grid)
    c_w = np.linspace(*config.c_w_range, config.n_grid)
    CB, CW = np.meshgrid(c_b, c_w, indexing="ij")
    x, w = _trapezoid_nodes(200)
    with jax.enable_x64(True):
        xj, wj = jnp.asarray(x), jnp.asarray(w)

        def one(cb, cw):
            def body(_, k):
                return cb + cw * mean_square_activation(sigma, k, xj, wj)
            k = jax.lax.fori_loop(0, config.iterations, body, jnp.asarray(config.k1, jnp.float64))
            k = jnp.maximum(k, 1e-300)
            _, _, dk, dp = _moments(sigma, k, xj, wj)
            return k, cw * dk, cw * dp

        k, par, perp = jax.jit(jax.vmap(one))(jnp.asarray(CB.ravel()), jnp.asarray(CW.ravel()))
        shape = CB.shape
        return {"c_b": c_b, "c_w": c_w, "k": np.asarray(k).reshape(shape),
                "chi_par": np.asarray(par).reshape(shape), "chi_perp": np.asarray(perp).reshape(shape)}


@dataclass(frozen=True)
class CumulantConfig:
    """Fourth cumulant of the preactivations of real random networks against depth and width.

    ``activations`` at ``width``/``depth``: the leading-order coefficient.  ``collapse``: ReLU
    ensembles ``(width, depth)`` reaching the same ``(l−1)/n`` at several widths (the ``l/n``
    collapse); the first, deepest in ``l/n``, also measures the breakdown of the expansion at
    ``(l−1)/n = breakdown_ratio`` and keeps the preactivations of its first ``keep_neurons`` neurons
    (same networks, no extra sampling) for the distribution figure.
    """

    activations: tuple = ("relu", "linear", "tanh")
    width: int = 32
    depth: int = 9           # small-l/n range: l/n <= depth/width
    n_networks: int = 8000
    n_batches: int = 20
    collapse: tuple = ((16, 9), (32, 9), (64, 17))
    collapse_networks: int = 8000
    collapse_ratios: tuple = (0.125, 0.25)   # (l − 1)/n at which widths are compared
    breakdown_ratio: float = 0.5
    keep_neurons: int = 16    # preactivations of this many neurons per network kept from collapse[0] (distribution figure)
    device: str = "cpu"       # where the networks run; the full preset uses the GPU when there is one

    @classmethod
    def preset(cls, scale: str = "ci") -> "CumulantConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(width=128, depth=33, n_networks=40000, collapse=((16, 9), (64, 17), (256, 65)),
                   collapse_networks=40000, device=full_scale_device())


def _mc(value, se, n) -> Estimate:
    return monte_carlo(float(value), float(se), int(n))


def run_fourth_cumulant(config: CumulantConfig, seed: int = 0) -> dict:
    """MC estimates of ``Cov(z_i², z_j²)/K²`` per layer against :func:`fourth_cumulant_theory`
    (and :func:`exact_fourth_cumulant` for ReLU/linear), at criticality; the same for ReLU at
    several widths and fixed ``(l−1)/n`` (collapse and breakdown).

    Per activation: the leading coefficient ``a`` (:func:`leading_coefficient` on layers 2..L)
    as a Monte Carlo :class:`~sparsebook.stats.Estimate` whose standard error comes from fitting
    each batch of networks separately (all layers of a network are correlated, so the layers are
    not independent measurements); for ReLU/linear also the exact coefficient at this width
    (:func:`exact_leading_coefficient`) and ``exact_ratio``: the measured/exact cumulant averaged over
    layers 2..L, with its batch-means error.
    """
    seed_everything(seed)
    res = {"config": config, "per_activation": {}}
    B = config.n_batches
    for i, name in enumerate(config.activations):
        cp = critical_point(name)
        c_b, c_w = cp.c_b, cp.c_w
        stats = sample_layer_moments(name, c_b, c_w, config.width, config.depth, config.n_networks, seed=seed + i,
                                     device=config.device)
        est = fourth_cumulant_estimate(stats, config.width, n_batches=B)
        theory = fourth_cumulant_theory(name, c_b, c_w, c_b + c_w, config.width, config.depth)
        l = np.arange(1, config.depth + 1)
        sel = l >= 2
        wts = 1.0 / est["eps_se"][sel]
        a = leading_coefficient(est["eps"][sel], theory[sel], wts)
        a_b = np.array([leading_coefficient(eb[sel], theory[sel], wts) for eb in est["eps_batches"]])
        entry = {"l": l, "r": l / config.width, "est": est, "theory": theory, "slope": a,
                 "slope_se": float(a_b.std(ddof=1) / math.sqrt(B)),
                 "coefficient": _mc(a, a_b.std(ddof=1) / math.sqrt(B), config.n_networks)}
        if name in _EXACT_NU:
            ex = exact_fourth_cumulant(name, config.width, config.depth)
            entry["exact"] = ex
            entry["exact_coefficient"] = exact_leading_coefficient(name, config.width)
            r_b = (est["eps_batches"][:, sel] / ex[sel]).mean(1)
            entry["exact_ratio"] = _mc((est["eps"][sel] / ex[sel]).mean(), r_b.std(ddof=1) / math.sqrt(B),
                                       config.n_networks)
        res["per_activation"][name] = entry
    runs = {}
    for j, (n, L) in enumerate(config.collapse):
        stats, kept = _sample_layers("relu", 0.0, 2.0, n, L, config.collapse_networks, seed=seed + 100 + j,
                                     device=config.device, keep=config.keep_neurons if j == 0 else 0)
        est = fourth_cumulant_estimate(stats, n, n_batches=B)
        l = np.arange(1, L + 1)
        runs[n] = {"l": l, "x": (l - 1) / n, "est": est, "leading": 5.0 * (l - 1) / n,
                   "exact": exact_fourth_cumulant("relu", n, L), "width": n}
        if kept is not None:
            runs[n]["preactivations"] = kept
    res["collapse"] = runs
    widths = [n for n, _ in config.collapse]
    n_lo, n_hi = min(widths), max(widths)
    expo = {}
    for r in config.collapse_ratios:
        a, b = runs[n_lo], runs[n_hi]
        ia, ib = int(round(r * n_lo)), int(round(r * n_hi))   # index of layer l = r·n + 1
        p, se = collapse_exponent(a["est"]["eps"][ia], a["est"]["eps_se"][ia], b["est"]["eps"][ib],
                                  b["est"]["eps_se"][ib], n_lo, n_hi)
        pe = math.log(b["exact"][ib] / a["exact"][ia]) / -math.log(n_hi / n_lo)
        expo[r] = {"p": _mc(p, se, config.collapse_networks), "p_exact": pe, "widths": (n_lo, n_hi)}
    res["collapse_exponent"] = expo
    br = runs[n_lo]
    ib = int(round(config.breakdown_ratio * n_lo))
    if ib >= len(br["l"]):
        raise ValueError(f"collapse[0] must reach (l−1)/n = breakdown_ratio; depth {len(br['l'])} at width {n_lo}")
    res["breakdown"] = {"width": n_lo, "l": int(br["l"][ib]), "x": float(br["x"][ib]),
                        "ratio": _mc(br["est"]["eps"][ib] / br["leading"][ib], br["est"]["eps_se"][ib] / br["leading"][ib],
                                     config.collapse_networks),
                        "exact_ratio": float(br["exact"][ib] / br["leading"][ib])}
    return res


@dataclass(frozen=True)
class GradientConfig:
    """Gradient norms ‖∂z_1^(L)/∂z^(l)‖² on real ReLU networks at and off criticality."""

    activation: str = "relu"
    c_w_values: tuple = (1.6, 2.0, 2.4)
    width: int = 64
    depth: int = 24
    n_networks: int = 256
    n_batches: int = 8
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str = "ci") -> "GradientConfig":
        check_scale(scale)
        return cls() if scale == "ci" else cls(width=256, depth=64, n_networks=1024, device=full_scale_device())


def _log_rate(l, values) -> float:
    """Per-layer growth rate: slope of ``log(mean over networks)`` against ``l``."""
    return float(np.polyfit(l, np.log(np.asarray(values).mean(0)), 1)[0])


def run_gradients(config: GradientConfig, seed: int = 0) -> dict:
    """Per-layer mean ‖∂z_1^(L)/∂z^(l)‖² and ‖z^(l)‖²/n for each C_W (C_b = 0), with the
    infinite-width predictions ``Π χ⊥`` and ``K^(l)``.

    ``rate`` / ``k_rate``: the per-layer log-rates (the gradient's towards the input, ``−slope``, and
    the kernel's) as Monte Carlo estimates, with standard errors by batch means over
    ``n_batches`` groups of networks (the layers of one network are correlated)."""
    seed_everything(seed)
    out = {"config": config, "l": np.arange(1, config.depth + 1), "runs": {}}
    l, B = out["l"], config.n_batches
    for i, c_w in enumerate(config.c_w_values):
        m = gradient_norms(config.activation, 0.0, c_w, config.width, config.depth, config.n_networks, seed=seed + i,
                           device=config.device)
        k = kernel_flow(config.activation, 0.0, c_w, c_w, config.depth)
        perp = chi_perp(config.activation, c_w, k)
        pred = np.array([np.prod(perp[j:-1]) for j in range(config.depth)])  # Π_{l'=l}^{L-1} χ⊥
        g, kk = m["grad2_all"], m["k_all"]
        size = config.n_networks // B
        g_b = np.array([-_log_rate(l, g[j * size:(j + 1) * size]) for j in range(B)])
        k_b = np.array([_log_rate(l, kk[j * size:(j + 1) * size]) for j in range(B)])
        rate = _mc(-_log_rate(l, g), g_b.std(ddof=1) / math.sqrt(B), config.n_networks)
        k_rate = _mc(_log_rate(l, kk), k_b.std(ddof=1) / math.sqrt(B), config.n_networks)
        out["runs"][c_w] = {**m, "k_theory": k, "grad2_theory": pred, "rate": rate, "k_rate": k_rate,
                            "log_rate": rate.value, "k_log_rate": k_rate.value}
    return out


@dataclass(frozen=True)
class AspectRatioConfig:
    """The optimal aspect ratio: the information between network outputs against ``x = V/(nK²)``.

    ``networks``: ``(activation, width, depth)`` for the Monte Carlo of real networks, chosen
    so that the layers span ``x`` from 0 to about ``2x*`` (``x ≈ νl/n``).  ``splits``: output
    groups ``(n_a, n_b)`` whose series coefficients are measured by quadrature at the
    small ``x_fit`` values.
    """

    networks: tuple = (("relu", 128, 8), ("tanh", 32, 12))
    n_networks: int = 4000
    n_batches: int = 10
    splits: tuple = ((1, 1), (1, 3), (2, 2), (3, 5))
    x_fit: tuple = tuple(np.geomspace(0.002, 0.02, 8))
    x_curve_max: float = 0.6
    n_curve: int = 61
    vertex_depth: int = 1000
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str = "ci") -> "AspectRatioConfig":
        check_scale(scale)
        return cls() if scale == "ci" else cls(networks=(("relu", 256, 16), ("tanh", 64, 24)),
                                               n_networks=20000, vertex_depth=10000, device=full_scale_device())


def run_aspect_ratio(config: AspectRatioConfig, seed: int = 0) -> dict:
    """Measure the series ``I(x) = c₂x² + c₃x³ + …`` by quadrature, the book's ``r*`` for ReLU and
    tanh, the exact ``I(x)`` of the lognormal scaling limit, and ``I`` on real random networks.

    Series: ``I(x)/x²`` of lognormal mixtures at ``x_fit`` is fitted by a cubic in ``x``; its
    first two coefficients are the measured ``c₂, c₃`` and ``x̂* = −2ĉ₂/(3ĉ₃)``.  Real
    networks: :func:`sample_output_scales` at criticality; per layer ``x̂ = Var(s)/E[s]²``,
    ``Î`` for two single outputs (:func:`output_mutual_information` on the sampled ``s``) and
    ``Î/(c₂x̂² + c₃x̂³)``, which tends to 1 as ``x̂ → 0`` if the series holds (its corrections
    are ``O(x²)``); standard errors by batch means over ``n_batches`` groups of networks.
    """
    seed_everything(seed)
    x_fit = np.asarray(config.x_fit, dtype=float)
    series = {}
    for n_a, n_b in config.splits:
        info = np.array([output_mutual_information(*lognormal_scales(x), n_a, n_b) for x in x_fit])
        fit = np.polyfit(x_fit, info / x_fit ** 2, 3)
        c2, c3 = float(fit[-1]), float(fit[-2])
        series[(n_a, n_b)] = {"c2": c2, "c3": c3, "x_star": -2 * c2 / (3 * c3),
                              "c2_theory": mutual_information_coefficients(n_a, n_b)[0],
                              "c3_theory": mutual_information_coefficients(n_a, n_b)[1],
                              "x_star_book": 4.0 / (20.0 + 3.0 * (n_a + n_b))}
    x_star = series[(1, 1)]["x_star"]
    nu = {name: vertex_slope(name, config.vertex_depth) for name in ("relu", "tanh")}
    x_curve = np.linspace(0.0, config.x_curve_max, config.n_curve)
    exact = np.array([output_mutual_information(*lognormal_scales(x), 1, 1) for x in x_curve])
    real = {}
    for i, (name, width, depth) in enumerate(config.networks):
        cp = critical_point(name)
        s = sample_output_scales(name, cp.c_b, cp.c_w, width, depth, config.n_networks, seed=seed + i,
                                 device=config.device)
        c2, c3 = mutual_information_coefficients(1, 1)

        def measure(v):  # per layer: x̂, Î and Î over the universal series c₂x̂² + c₃x̂³
            x = v.var(axis=0) / v.mean(axis=0) ** 2
            info = np.array([output_mutual_information(v[:, l], None, 1, 1) for l in range(depth)])
            return x, info, info / (c2 * x ** 2 + c3 * x ** 3)

        x, info, ratio = measure(s)
        m = config.n_networks // config.n_batches
        parts = [measure(s[j * m:(j + 1) * m]) for j in range(config.n_batches)]
        info_se = np.std([p[1] for p in parts], axis=0, ddof=1) / math.sqrt(config.n_batches)
        ratio_se = np.std([p[2] for p in parts], axis=0, ddof=1) / math.sqrt(config.n_batches)
        l = np.arange(1, depth + 1)
        real[name] = {"width": width, "l": l, "r": l / width, "x": x, "info": info, "info_se": info_se,
                      "ratio": ratio, "ratio_se": ratio_se,
                      "ratio_first": _mc(ratio[0], ratio_se[0], config.n_networks),
                      "x_first": _mc(x[0], np.std([p[0][0] for p in parts], ddof=1) / math.sqrt(config.n_batches),
                                     config.n_networks),
                      "r_star": x_star / nu[name], "increasing": bool(np.all(np.diff(info) > 0))}
    return {"config": config, "series": series, "x_star": x_star, "nu": nu,
            "r_star": {name: x_star / v for name, v in nu.items()},
            "x_curve": x_curve, "exact": exact, "real": real}


# ---------------------------------------------------------------------------
# PolyCom (Zhuo et al. 2025): polynomial composition activations
# ---------------------------------------------------------------------------
class PolyReLU(torch.nn.Module):
    """PolyReLU of order ``r`` (Zhuo et al. 2025, PolyCom): ``σ(x) = a₀ + Σ_{i=1}^{r} a_i ReLU(x)^i``.

    The coefficients are learned (one set per layer), initialised at ``a₀ = 0`` and ``a_i = 1/r``.
    """

    def __init__(self, order: int = 3):
        super().__init__()
        self.order = check_int(order, "order", 1)
        self.weight = torch.nn.Parameter(torch.full((self.order,), 1.0 / self.order))
        self.bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        r = torch.relu(x)
        out = self.bias + self.weight[0] * r
        p = r
        for i in range(1, self.order):
            p = p * r
            out = out + self.weight[i] * p
        return out


def polyrelu_init(z, order: int = 3):
    """PolyReLU at its initialisation, ``(1/r) Σ_{i=1}^{r} ReLU(z)^i``, on JAX arrays (for the criticality classifier)."""
    r = jnp.maximum(z, 0.0)
    return sum(r ** i for i in range(1, order + 1)) / order


@dataclass(frozen=True)
class PolyComConfig:
    """PolyReLU against ReLU and GELU in the same MLP on the digits (training loss per step).

    ``sizes``: the MLP; Adam at ``lr`` for ``steps`` minibatch steps of ``batch_size``; one network
    per seed and activation, seeds trained as one batched computation (:func:`sparsebook.train.fit_seeds`).
    ``full``: hidden width 256 (4x), 10 seeds, 600 steps (3x ci).
    """

    activations: tuple = ("polyrelu", "relu", "gelu")
    sizes: tuple = (64, 64, 64, 10)
    steps: int = 200
    lr: float = 1e-3
    batch_size: int = 64
    seeds: tuple = (0, 1, 2, 3, 4)

    @classmethod
    def preset(cls, scale: str = "ci") -> "PolyComConfig":
        check_scale(scale)
        # full: 4x wider hidden layers and 10 seeds (batched: free), 3x the steps (the chapter's full steps <= 3x ci)
        return cls() if scale == "ci" else cls(sizes=(64, 256, 256, 10), steps=600, seeds=tuple(range(10)))


def _polycom_model(sizes, activation):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(PolyReLU() if activation == "polyrelu" else
                          {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU}[activation]())
    return torch.nn.Sequential(*layers)


def run_polycom(config: PolyComConfig, seed: int = 0) -> dict:
    """Training-loss curves ``[steps, K]`` per activation on the digits, and per seed the mean training
    loss over all steps (the area under the loss curve: lower means faster convergence) and over the
    last 10% of steps.  Seed ``k`` of every activation shares its batch order (paired comparison);
    the weights of the linear layers are the same too, since the activation's own parameters are
    created after them.  ``seed`` offsets ``config.seeds``."""
    from sparsebook.data import digits
    from sparsebook.train import fit_seeds

    for a in config.activations:
        if a not in ("polyrelu", "relu", "gelu"):
            raise ValueError(f"activations must be among 'polyrelu', 'relu', 'gelu'; got {a!r}")
    seed_everything(seed)
    d = digits(seed=0)
    x, y = torch.as_tensor(d["x_train"]), torch.as_tensor(d["y_train"])
    seeds = [seed + s for s in config.seeds]
    out = {"config": config, "curves": {}, "auc": {}, "final": {}}
    tail = max(1, config.steps // 10)
    for a in config.activations:
        r = fit_seeds(lambda: _polycom_model(config.sizes, a), x, y, seeds, steps=config.steps, lr=config.lr,
                      batch_size=config.batch_size)
        loss = np.asarray(r["loss"], dtype=float)            # [steps, K]
        out["curves"][a] = loss
        out["auc"][a] = loss.mean(0)
        out["final"][a] = loss[-tail:].mean(0)
    return out


# ---------------------------------------------------------------------------
# Selectable-activation KANs (S-KAN, Yang et al. 2024) against MLPs of equal parameter count
# ---------------------------------------------------------------------------
#: Function-fitting targets on [−1, 1]^d: (input dimension, f).  The symbolic toy functions of the KAN
#: paper (Liu et al. 2024, §3.1), the kind of task on which S-KAN is compared with MLPs.
SKAN_TASKS: dict = {
    "bessel": (1, lambda x: torch.special.bessel_j0(20.0 * x[..., 0])),
    "exp_sin": (2, lambda x: torch.exp(torch.sin(math.pi * x[..., 0]) + x[..., 1] ** 2)),
    "product": (2, lambda x: x[..., 0] * x[..., 1]),
    "exp4": (4, lambda x: torch.exp(0.5 * (torch.sin(math.pi * (x[..., 0] ** 2 + x[..., 1] ** 2))
                                           + torch.sin(math.pi * (x[..., 2] ** 2 + x[..., 3] ** 2))))),
}


@dataclass(frozen=True)
class SKANConfig:
    """S-KAN [d, hidden, 1] against a one-space (B-spline) KAN of the same shape and a two-hidden-layer
    SiLU MLP with at least as many parameters, on the targets ``tasks`` (keys of :data:`SKAN_TASKS`).

    S-KAN training (the paper's stages): ``full_steps`` of full training (every node mixes all
    candidate spaces with softmax selection weights), then selection (each node keeps its
    highest-weighted space) and ``select_steps`` of selective training.  The KAN and the MLP train
    for ``full_steps + select_steps`` steps.  Full-batch Adam at ``lr`` on the mean squared error;
    ``n_train`` training and ``n_test`` test points, uniform, drawn per seed and shared by the three
    models (paired); one batched computation over every task and seed per model (the S-KAN and the
    KAN; the MLPs, whose widths differ, one per task).

    The pruning stage (S-KAN's last) continues from the selected network: ``prune_steps`` of
    selective training with the KAN paper's sparsification penalty (``prune_lambda``), then the KAN
    node rule at ``prune_threshold``, then ``prune_steps // 2`` steps of training of the pruned network.

    Steps: the S-KANs train ``full + select + 3·prune`` steps (the pruning stage and its unpruned control),
    the KANs ``full + select``, the MLPs ``full + select`` per task (4 tasks): 2,100 steps at ``ci``, 6,300 at
    ``full`` (3x: 600 + 300 steps and 300 pruning steps, with 4x the training points and 10 seeds).
    """

    tasks: tuple = ("bessel", "exp_sin", "product", "exp4")
    hidden: int = 5
    n_basis: int = 8
    n_train: int = 256
    n_test: int = 1000
    full_steps: int = 200
    select_steps: int = 100
    lr: float = 1e-2
    seeds: tuple = (0, 1, 2, 3, 4)
    prune_steps: int = 100
    prune_lambda: float = 1e-2
    prune_threshold: float = 1e-2
    device: str = "cpu"

    @classmethod
    def preset(cls, scale: str = "ci") -> "SKANConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        # On a GPU each step is a few hundred kernel launches for all 40 members at once (launch-bound at
        # these sizes), so the steps, not the points or seeds, set the time: 3x the ci steps, 4x the
        # training points, 3x the test points, 10 seeds.
        return cls(n_train=1000, n_test=3000, full_steps=600, select_steps=300, prune_steps=300,
                   seeds=tuple(range(10)), device=full_scale_device())


def _skan_data(task: str, n: int, seed: int, device) -> tuple:
    d, f = SKAN_TASKS[task]
    g = torch.Generator().manual_seed(1_000_003 * (list(SKAN_TASKS).index(task) + 1) + seed)
    x = (2.0 * torch.rand(n, d, generator=g) - 1.0).to(device)
    return x, f(x).unsqueeze(-1)


def _skan_forward(layers, x, masks=None, phi0=None, scores=None):
    """The S-KAN on ``x``; ``phi0``: the first layer's features of ``x``, when precomputed.  A layer's
    ``edges`` mask [K, n_out, n_in] (absent inputs, pruned edges) multiplies its coefficients.  With a
    list ``scores``, each layer's edge scores |φ_ji|₁ (mean magnitude over the batch) are appended."""
    from sparsebook.rg_flow.kernels import skan_edge_activations, skan_features, skan_layer

    for i, p in enumerate(layers):
        w = torch.softmax(p["logits"], -1) if masks is None else masks[i]
        phi = phi0 if (i == 0 and phi0 is not None) else skan_features(x, p["candidates"], p["coef"].shape[-1])
        coef = p["coef"] if p["edges"] is None else p["coef"] * p["edges"][:, :, :, None, None]
        if scores is None:
            x = skan_layer(phi, coef, w, p["bias"])
        else:
            act = skan_edge_activations(phi, coef, w)                  # [K, B, n_out, n_in]
            scores.append(act.abs().mean(1))
            x = act.sum(-1) + p["bias"].unsqueeze(1)
    return x


def _mse_steps(params, forward, x, y, steps, lr):
    """Full-batch Adam on Σ_k mean((f_k(x_k) − y_k)²) (plus Σ_k of a per-member penalty when
    ``forward`` returns ``(prediction, penalty [K])``) through :func:`sparsebook.train.run_steps`."""
    from sparsebook.train import make_optimizer, run_steps

    opt = make_optimizer(params, "adam", lr)

    def objective(_):
        out = forward(x)
        pred, penalty = out if isinstance(out, tuple) else (out, None)
        per = ((pred - y) ** 2).mean(dim=(1, 2))
        return (per.sum() if penalty is None else per.sum() + penalty.sum()), per

    return run_steps(opt, objective, steps=steps)


def _rmse(pred, y) -> np.ndarray:
    return torch.sqrt(((pred - y) ** 2).mean(dim=(1, 2))).detach().double().cpu().numpy()


def _prune_skan(layers, masks, phi0, x, y, x_test, y_test, steps, lr, lam, threshold) -> dict:
    """S-KAN's pruning stage on the selected network ``layers`` (modified in place): ``steps`` of training
    with the KAN paper's penalty λ Σ_l (|Φ_l|₁ + S(Φ_l)), the KAN node rule at ``threshold`` on the
    training inputs' edge scores, then ``steps // 2`` steps of training of the pruned network.  The
    control (``rmse_unpruned``): a copy of the selected network trained for as many steps without
    penalty or pruning, so that pruned − unpruned measures what pruning costs, not the extra steps."""
    from sparsebook.rg_flow.kernels import kan_prune_nodes, kan_sparsity_penalty

    # the control: the same selected network, trained as many steps, neither penalised nor pruned
    control = [{**p, "coef": p["coef"].detach().clone().requires_grad_(), "bias": p["bias"].detach().clone().requires_grad_()}
               for p in layers]
    _mse_steps([t for p in control for t in (p["coef"], p["bias"])], lambda z: _skan_forward(control, z, masks, phi0),
               x, y, steps + max(1, steps // 2), lr)
    with torch.no_grad():
        rmse_control = _rmse(_skan_forward(control, x_test, masks), y_test)
    params = [t for p in layers for t in (p["coef"], p["bias"])]

    def penalised(z):
        sc = []
        out = _skan_forward(layers, z, masks, phi0, scores=sc)
        return out, lam * sum(kan_sparsity_penalty(s) for s in sc)

    loss_sparse = _mse_steps(params, penalised, x, y, steps, lr)
    with torch.no_grad():
        rmse_sparse = _rmse(_skan_forward(layers, x_test, masks), y_test)
        for p in layers:
            if p["edges"] is None:
                p["edges"] = torch.ones(p["coef"].shape[:3], device=x.device, dtype=x.dtype)
        edges_before = sum(p["edges"].sum(dim=(1, 2)) for p in layers)
        sc = []
        _skan_forward(layers, x, masks, phi0, scores=sc)
        keep = []
        for l in range(1, len(layers)):                               # hidden layer between layers l−1 and l
            k = kan_prune_nodes(sc[l - 1], sc[l], threshold).to(x.dtype)
            layers[l - 1]["edges"].mul_(k[:, :, None])
            layers[l]["edges"].mul_(k[:, None, :])
            keep.append(k)
        edges_after = sum(p["edges"].sum(dim=(1, 2)) for p in layers)
    loss_tune = _mse_steps(params, lambda z: _skan_forward(layers, z, masks, phi0), x, y, max(1, steps // 2), lr)
    with torch.no_grad():
        rmse_pruned = _rmse(_skan_forward(layers, x_test, masks), y_test)
    keep = torch.cat(keep, dim=1)
    return {"rmse_sparsified": rmse_sparse, "rmse_pruned": rmse_pruned, "rmse_unpruned": rmse_control,
            "nodes_kept": keep.mean(1).double().cpu().numpy(),
            "edges_kept": (edges_after / edges_before).double().cpu().numpy(),
            "node_masks": keep.cpu().numpy(), "loss_prune": np.concatenate([loss_sparse, loss_tune])}


def train_skan(x, y, x_test, y_test, sizes, seeds, *, candidates=None, n_basis: int = 8,
               full_steps: int = 300, select_steps: int = 200, lr: float = 1e-2, input_dims=None,
               prune_steps: int = 0, prune_lambda: float = 1e-2, prune_threshold: float = 1e-2) -> dict:
    """Train one S-KAN per member (leading axis of ``x`` [K, B, d]; ``seeds[k]`` seeds member k) in the
    paper's stages.

    Initialisation of member k (after ``seed_everything(seeds[k])``): coefficients N(0, 1/(n_in·G)),
    selection logits 0 (equal weights), biases 0.  After full training each node keeps the
    candidate with the largest weight; that weight is folded into its coefficients, the others are
    dropped, and the selected network trains on.  With one candidate this is a plain KAN.
    ``input_dims[k]``: member k uses only the first ``input_dims[k]`` inputs (the rest are padding, so
    that tasks of different dimension train as one batch); its other first-layer edges are masked.
    With ``prune_steps`` > 0 the pruning stage follows (:func:`_prune_skan`).
    Returns test RMSE per member before and after selection (and after pruning), the selection
    masks and the losses.
    """
    from sparsebook.rg_flow.kernels import SKAN_CANDIDATES, skan_features, skan_select

    candidates = tuple(candidates or SKAN_CANDIDATES)
    k = len(seeds)
    dev, dt = x.device, x.dtype
    d = sizes[0]
    dims = [d] * k if input_dims is None else [int(a) for a in input_dims]
    if len(dims) != k or not all(1 <= a <= d for a in dims):
        raise ValueError(f"input_dims must hold {k} integers in [1, {d}]; got {input_dims!r}")
    per_seed = []
    for s, a0 in zip(seeds, dims):
        seed_everything(s)
        first = torch.zeros(sizes[1], d, len(candidates), n_basis)
        first[:, :a0] = torch.randn(sizes[1], a0, len(candidates), n_basis) / math.sqrt(a0 * n_basis)
        per_seed.append([first] + [torch.randn(b, a, len(candidates), n_basis) / math.sqrt(a * n_basis)
                                   for a, b in zip(sizes[1:-1], sizes[2:])])
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        edges = None
        if i == 0 and min(dims) < d:
            edges = (torch.arange(d)[None, None, :] < torch.tensor(dims)[:, None, None]).expand(k, b, d).to(dev, dt)
        layers.append({"coef": torch.stack([p[i] for p in per_seed]).to(dev, dt).requires_grad_(),
                       "logits": torch.zeros(k, b, len(candidates), device=dev, dtype=dt, requires_grad=True),
                       "bias": torch.zeros(k, b, device=dev, dtype=dt, requires_grad=True),
                       "candidates": candidates, "edges": edges})
    tensors = [p[n] for p in layers for n in ("coef", "logits", "bias")]
    phi0 = skan_features(x, candidates, n_basis)        # the inputs are fixed: their features too
    loss_full = _mse_steps(tensors, lambda z: _skan_forward(layers, z, phi0=phi0), x, y, full_steps, lr)
    with torch.no_grad():
        rmse_full = _rmse(_skan_forward(layers, x_test), y_test)
        masks = [skan_select(p["logits"]) for p in layers]
        for p, m in zip(layers, masks):
            w = torch.softmax(p["logits"], -1) * m                     # [K, n_out, C]
            p["coef"].mul_(w[:, :, None, :, None])
    loss_sel = _mse_steps([t for p in layers for t in (p["coef"], p["bias"])],
                          lambda z: _skan_forward(layers, z, masks, phi0), x, y, select_steps, lr)
    with torch.no_grad():
        rmse = _rmse(_skan_forward(layers, x_test, masks), y_test)
    out = {"rmse": rmse, "rmse_before_selection": rmse_full, "masks": [m.cpu().numpy() for m in masks],
           "loss": np.concatenate([loss_full, loss_sel]), "candidates": candidates}
    if prune_steps > 0:
        out.update(_prune_skan(layers, masks, phi0, x, y, x_test, y_test, check_int(prune_steps, "prune_steps", 1),
                               lr, check_real(prune_lambda, "prune_lambda", 0.0),
                               check_real(prune_threshold, "prune_threshold", 0.0)))
    return out


def _member_slice(res: dict, sl: slice) -> dict:
    """The members ``sl`` of a :func:`train_skan` result (arrays: leading axis; losses: last axis)."""
    out = {}
    for key, v in res.items():
        if key == "masks":
            out[key] = [m[sl] for m in v]
        elif key in ("loss", "loss_prune"):
            out[key] = v[:, sl]
        elif isinstance(v, np.ndarray):
            out[key] = v[sl]
        else:
            out[key] = v
    return out


def train_mlp(x, y, x_test, y_test, sizes, seeds, *, steps: int, lr: float) -> dict:
    """One SiLU MLP per seed (leading axis of ``x``), trained as one batched computation by full-batch
    Adam; member k starts from PyTorch's default ``nn.Linear`` initialisation after ``seed_everything(seeds[k])``."""
    stacks = []
    for s in seeds:
        seed_everything(s)
        lins = [torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        stacks.append([t for lin in lins for t in (lin.weight.detach(), lin.bias.detach())])
    params = [torch.stack([st[j] for st in stacks]).to(x.device, x.dtype).requires_grad_()
              for j in range(len(stacks[0]))]

    def forward(z):
        for j in range(0, len(params), 2):
            z = torch.einsum("kbi,koi->kbo", z, params[j]) + params[j + 1].unsqueeze(1)
            if j + 2 < len(params):
                z = torch.nn.functional.silu(z)
        return z

    loss = _mse_steps(params, forward, x, y, steps, lr)
    with torch.no_grad():
        rmse = _rmse(forward(x_test), y_test)
    return {"rmse": rmse, "loss": loss}


def run_skan(config: SKANConfig, seed: int = 0) -> dict:
    """Per task: test RMSE per seed of the S-KAN (after selection, and after its pruning stage when
    ``config.prune_steps`` > 0), the one-space B-spline KAN and the matched MLP, the S-KAN's
    selections, the share of hidden nodes and edges that pruning keeps, and the parameter counts.
    The S-KANs of every task and seed train as one batch (inputs padded to the largest dimension,
    the padding masked), and so do the KANs.  ``seed`` offsets ``config.seeds``."""
    from sparsebook.rg_flow.kernels import matched_mlp_width, mlp_parameter_count, skan_parameter_count

    for t in config.tasks:
        if t not in SKAN_TASKS:
            raise ValueError(f"tasks must be among {sorted(SKAN_TASKS)}; got {t!r}")
    seed_everything(seed)
    dev = _torch_device(config.device)
    seeds = [seed + s for s in config.seeds]
    k = len(seeds)
    steps = config.full_steps + config.select_steps
    d_max = max(SKAN_TASKS[t][0] for t in config.tasks)
    out = {"config": config, "tasks": {}}
    xs, ys, xts, yts = [], [], [], []
    for t in config.tasks:
        data = [_skan_data(t, config.n_train + config.n_test, s, dev) for s in seeds]
        xs.append(torch.stack([xy[0][:config.n_train] for xy in data]))
        ys.append(torch.stack([xy[1][:config.n_train] for xy in data]))
        xts.append(torch.stack([xy[0][config.n_train:] for xy in data]))
        yts.append(torch.stack([xy[1][config.n_train:] for xy in data]))

    def pad(z):
        return torch.nn.functional.pad(z, (0, d_max - z.shape[-1]))

    x, y = torch.cat([pad(z) for z in xs]), torch.cat(ys)
    xt, yt = torch.cat([pad(z) for z in xts]), torch.cat(yts)
    dims = [SKAN_TASKS[t][0] for t in config.tasks for _ in seeds]
    kw = dict(n_basis=config.n_basis, full_steps=config.full_steps, select_steps=config.select_steps, lr=config.lr,
              input_dims=dims)
    sizes = (d_max, config.hidden, 1)
    sk = train_skan(x, y, xt, yt, sizes, seeds * len(config.tasks), prune_steps=config.prune_steps,
                    prune_lambda=config.prune_lambda, prune_threshold=config.prune_threshold, **kw)
    kan = train_skan(x, y, xt, yt, sizes, seeds * len(config.tasks), candidates=("bspline",), **kw)
    for i, t in enumerate(config.tasks):
        d = SKAN_TASKS[t][0]
        sl = slice(i * k, (i + 1) * k)
        n_kan = skan_parameter_count((d, config.hidden, 1), config.n_basis)
        h = matched_mlp_width(n_kan, d)
        mlp_sizes = (d, h, h, 1)
        mlp = train_mlp(xs[i], ys[i], xts[i], yts[i], mlp_sizes, seeds, steps=steps, lr=config.lr)
        out["tasks"][t] = {"skan": _member_slice(sk, sl), "kan": _member_slice(kan, sl), "mlp": mlp,
                           "sizes": (d, config.hidden, 1), "mlp_sizes": mlp_sizes,
                           "params": {"skan": n_kan, "kan": n_kan, "mlp": mlp_parameter_count(mlp_sizes)},
                           "y_std": float(torch.cat([ys[i], yts[i]], 1).std())}
    return out
