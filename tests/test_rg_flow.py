"""Tests of sparsebook.rg_flow: closed forms, the book's constants, properties, Monte Carlo, bad input."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy.integrate import quad
from scipy.special import erf as sp_erf, expit

import jax
import jax.numpy as jnp

from sparsebook import rg_flow as rg
from sparsebook.rg_flow.experiments import _TORCH_ACTIVATIONS


def quad_gauss(f, k):
    """⟨f(z)⟩_K by adaptive quadrature (an independent reference for Gauss–Hermite)."""
    s = math.sqrt(k)
    val, _ = quad(lambda x: f(s * x) * math.exp(-x * x / 2) / math.sqrt(2 * math.pi), -np.inf, np.inf,
                  epsabs=1e-14, epsrel=1e-13, limit=400)
    return val


# ---------------------------------------------------------------------------
# Gaussian expectations: closed forms
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1e-3, 0.3, 1.0, 7.0, 40.0])
def test_gaussian_expectation_closed_forms(k):
    assert rg.gaussian_expectation(lambda z: z ** 2, k) == pytest.approx(k, rel=1e-12)
    assert rg.gaussian_expectation(lambda z: z ** 4, k) == pytest.approx(3 * k * k, rel=1e-12)
    relu = rg.ACTIVATIONS["relu"]
    assert rg.gaussian_expectation(lambda z: relu(z) ** 2, k) == pytest.approx(k / 2, rel=1e-12)
    assert rg.gaussian_expectation(lambda z: relu(z) ** 4, k) == pytest.approx(1.5 * k * k, rel=1e-12)
    # erf's arcsine kernel (Williams 1997) and sin's exponential kernel
    assert rg.gaussian_expectation(lambda z: rg.ACTIVATIONS["erf"](z) ** 2, k) == pytest.approx(
        2 / math.pi * math.asin(2 * k / (1 + 2 * k)), rel=1e-10)
    if k <= 7:
        assert rg.gaussian_expectation(lambda z: rg.ACTIVATIONS["sin"](z) ** 2, k) == pytest.approx(
            (1 - math.exp(-2 * k)) / 2, rel=1e-10)


def test_gaussian_expectation_of_swish_matches_adaptive_quadrature_at_its_critical_kernel():
    k = 14.3
    dsw = lambda z: expit(z) * (1 + z * (1 - expit(z)))  # noqa: E731
    ref = quad_gauss(lambda z: dsw(z) ** 2, k)
    _, perp = rg.susceptibilities("swish", 1.0, k)
    assert float(perp) == pytest.approx(ref, rel=1e-9)


# ---------------------------------------------------------------------------
# Kernel flows
# ---------------------------------------------------------------------------
def test_relu_at_criticality_keeps_the_kernel_constant():
    k = rg.kernel_flow("relu", 0.0, 2.0, 1.7, 300)
    # exact up to float64 rounding of a 4000-term sum per layer (~1e-14 per layer)
    assert np.all(np.abs(k / 1.7 - 1) <= 2e-14 * np.arange(1, 301))


@pytest.mark.parametrize("c_w", [1.5, 2.5])
def test_relu_off_criticality_is_exponential(c_w):
    k = rg.kernel_flow("relu", 0.0, c_w, 1.0, 40)
    np.testing.assert_allclose(k, (c_w / 2) ** np.arange(40), rtol=1e-11)


def test_linear_network_kernel_accumulates_the_bias():
    k = rg.kernel_flow("linear", 0.3, 1.0, 2.0, 10)
    np.testing.assert_allclose(k, 2.0 + 0.3 * np.arange(10), rtol=1e-12)


def test_erf_flow_matches_the_arcsine_recursion():
    k = rg.kernel_flow("erf", 0.1, 1.3, 0.8, 30)
    ref = [0.8]
    for _ in range(29):
        ref.append(0.1 + 1.3 * 2 / math.pi * math.asin(2 * ref[-1] / (1 + 2 * ref[-1])))
    np.testing.assert_allclose(k, ref, rtol=1e-10)


@pytest.mark.parametrize("name,coef", [("tanh", 0.5), ("erf", 0.5), ("sin", 1.0)])
def test_k0_class_power_law_coefficient(name, coef):
    """At criticality K^(l) ≈ 1/(−a_1 l): tanh and erf a_1 = −2, sin a_1 = −1 (PDLT §5.3.3)."""
    c = rg.critical_point(name)
    k = rg.kernel_flow(name, c.c_b, c.c_w, 1.0, 5000)
    assert 5000 * k[-1] == pytest.approx(coef, rel=2e-3)
    assert -1 / rg.k0_class_constants(name)["a1"] == pytest.approx(coef, rel=1e-12)


def test_k0_class_constants_of_tanh():
    c = rg.k0_class_constants("tanh")
    assert (c["a1"], c["b1"], c["p_perp"], c["c_w"], c["in_class"]) == pytest.approx((-2.0, -2.0, 1.0, 1.0, True))
    assert rg.k0_class_constants("erf")["c_w"] == pytest.approx(math.pi / 4, rel=1e-12)


def test_off_critical_tanh_decays_or_settles_exponentially_fast():
    below = rg.kernel_flow("tanh", 0.0, 0.9, 1.0, 200)   # to K* = 0 exponentially (χ∥(0) = 0.9)
    assert below[-1] < 0.9 ** 150
    above = rg.kernel_flow("tanh", 0.0, 1.2, 1.0, 400)   # to a non-zero K*
    assert abs(above[-1] - above[-2]) < 1e-12 and above[-1] > 0.1


# ---------------------------------------------------------------------------
# Susceptibilities, criticality, universality classes
# ---------------------------------------------------------------------------
def test_relu_susceptibilities_are_half_of_c_w():
    par, perp = rg.susceptibilities("relu", 2.4, np.array([0.1, 1.0, 10.0]))
    np.testing.assert_allclose(par, 1.2, rtol=1e-12)
    np.testing.assert_allclose(perp, 1.2, rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(k=st.floats(0.05, 5.0), c_w=st.floats(0.2, 3.0), name=st.sampled_from(["tanh", "erf", "swish", "gelu", "softplus"]))
def test_chi_parallel_is_the_slope_of_the_kernel_map(k, c_w, name):
    """χ∥ = dF/dK with F(K) = C_b + C_W⟨σ²⟩_K (PDLT eq. 5.50), by central differences."""
    h = 1e-4 * k
    fd = (rg.flow_step(name, 0.0, c_w, k + h) - rg.flow_step(name, 0.0, c_w, k - h)) / (2 * h)
    assert float(rg.chi_parallel(name, c_w, k)) == pytest.approx(float(fd), rel=1e-6, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(k=st.floats(0.01, 20.0), name=st.sampled_from(sorted(rg.ACTIVATIONS)))
def test_susceptibilities_are_nonnegative_and_linear_in_c_w(k, name):
    p1, q1 = rg.susceptibilities(name, 1.0, k)
    p3, q3 = rg.susceptibilities(name, 3.0, k)
    assert q1 >= 0
    assert p3 == pytest.approx(3 * p1, rel=1e-12, abs=1e-15)
    assert q3 == pytest.approx(3 * q1, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name,cls", [("relu", "scale-invariant"), ("linear", "scale-invariant"),
                                      ("tanh", "K*=0"), ("erf", "K*=0"), ("sin", "K*=0"),
                                      ("swish", "half-stable"), ("gelu", "half-stable"),
                                      ("sigmoid", "none"), ("softplus", "none")])
def test_universality_classes(name, cls):
    assert rg.universality_class(name) == cls


def test_trivial_critical_points():
    assert rg.critical_point("relu")[:2] == pytest.approx((0.0, 2.0))
    assert rg.critical_point("linear")[:2] == pytest.approx((0.0, 1.0))
    assert tuple(rg.critical_point("tanh")) == pytest.approx((0.0, 1.0, 0.0))
    assert tuple(rg.critical_point("erf")) == pytest.approx((0.0, math.pi / 4, 0.0))
    leaky = lambda z: jnp.where(z > 0, z, 0.1 * z)  # noqa: E731
    assert rg.critical_point(leaky).c_w == pytest.approx(2 / 1.01, rel=1e-12)


@pytest.mark.parametrize("name", ["swish", "gelu"])
def test_nontrivial_critical_points_satisfy_their_defining_equations(name):
    """K* = C_b + C_W⟨σ²⟩, χ∥ = 1, χ⊥ = 1, checked with adaptive quadrature (independent of Gauss–Hermite)."""
    c_b, c_w, k = rg.critical_point(name)
    if name == "swish":
        s = lambda z: z * expit(z)  # noqa: E731
        ds = lambda z: expit(z) * (1 + z * (1 - expit(z)))  # noqa: E731
    else:
        s = lambda z: 0.5 * z * (1 + sp_erf(z / math.sqrt(2)))  # noqa: E731
        ds = lambda z: 0.5 * (1 + sp_erf(z / math.sqrt(2))) + z * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    assert c_b > 0 and 1.9 < c_w < 2.1
    assert c_b + c_w * quad_gauss(lambda z: s(z) ** 2, k) == pytest.approx(k, rel=1e-9)
    assert c_w * quad_gauss(lambda z: s(z) ** 2 * (z * z - k), k) / (2 * k * k) == pytest.approx(1.0, rel=1e-9)
    assert c_w * quad_gauss(lambda z: ds(z) ** 2, k) == pytest.approx(1.0, rel=1e-9)


def test_gelu_critical_kernel_is_three_plus_root_17_over_two():
    # ⟨σσ''⟩_K = 0 with σ = zΦ(z), σ'' = φ(z)(2 − z²): φ(z)N(z; 0, K) ∝ N(z; 0, s), s = K/(1+K), and
    # Stein's lemma give 2s² + s − 2 = 0, i.e. K* = (3 + √17)/2 (our derivation; a sharp check of the root finder)
    assert rg.critical_point("gelu").k_star == pytest.approx((3 + math.sqrt(17)) / 2, rel=1e-10)


def test_half_stable_points_are_stable_from_one_side_only():
    res = rg.run_kernel_flows(rg.KernelFlowConfig(depth=5, k0_activations=("tanh",)))
    for name in ("swish", "gelu"):
        h = res["half_stable"][name]
        assert h["half_stable"], name
        assert h["fixed_point_residual"] < 1e-10


@pytest.mark.parametrize("name", ["sigmoid", "softplus"])
def test_no_critical_point_is_a_clear_error(name):
    with pytest.raises(rg.NoCriticalPoint, match="no critical point"):
        rg.critical_point(name)


def test_k0_class_is_critical_in_the_small_k_limit():
    for name in ("tanh", "erf", "sin"):
        c = rg.critical_point(name)
        par, perp = rg.susceptibilities(name, c.c_w, 1e-7)
        assert float(par) == pytest.approx(1.0, abs=1e-5) and float(perp) == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------------------
# Four-point vertex, NTK
# ---------------------------------------------------------------------------
def test_relu_vertex_at_criticality_is_five_l_minus_one():
    k, v = rg.vertex_flow("relu", 0.0, 2.0, 1.3, 50)
    np.testing.assert_allclose(v / k ** 2, 5 * np.arange(50), rtol=1e-11, atol=1e-12)


def test_linear_vertex_is_two_l_minus_one():
    k, v = rg.vertex_flow("linear", 0.0, 1.0, 0.7, 30)
    np.testing.assert_allclose(v / k ** 2, 2 * np.arange(30), rtol=1e-11, atol=1e-12)


def test_k0_class_vertex_approaches_two_thirds_l():
    """V^(l)/(K^(l))² ≈ (2/3) l at criticality, for every member of the K* = 0 class."""
    for name in ("tanh", "sin"):
        c = rg.critical_point(name)
        k, v = rg.vertex_flow(name, c.c_b, c.c_w, 1.0, 5000)
        assert v[-1] / k[-1] ** 2 / 5000 == pytest.approx(2 / 3, rel=5e-3)


def test_exact_finite_width_agrees_with_leading_order_to_first_order():
    for name, nu in (("relu", 5.0), ("linear", 2.0)):
        n = 10_000
        exact = rg.exact_fourth_cumulant(name, n, 6)
        np.testing.assert_allclose(exact, nu * np.arange(6) / n, rtol=5 * nu * 6 / n, atol=1e-15)
        lead = rg.fourth_cumulant_theory(name, 0.0, rg.critical_point(name).c_w, 1.0, n, 6)
        np.testing.assert_allclose(lead, nu * np.arange(6) / n, rtol=1e-10, atol=1e-15)


def test_ntk_relu_at_criticality_grows_linearly():
    th = rg.ntk_flow("relu", 0.0, 2.0, 1.0, 40, lambda_b=0.0, lambda_w=1.0)
    np.testing.assert_allclose(th, 0.5 * np.arange(1, 41), rtol=1e-12)
    off = rg.ntk_flow("relu", 0.0, 2.4, 2.4, 40)   # Θ^(l+1) = 1.2^l + 1.2 Θ^(l), Θ^(1) = 1  ⇒  Θ^(l) = l·1.2^(l−1)
    np.testing.assert_allclose(off, np.arange(1, 41) * 1.2 ** np.arange(40), rtol=1e-11)


def test_ntk_tanh_at_criticality_approaches_a_constant():
    # Θ^(l+1) = λ_W⟨σ²⟩ + χ⊥Θ with ⟨σ²⟩ ≈ 1/(2l), χ⊥ ≈ 1 − 1/l  ⇒  Θ → λ_W/2
    th = rg.ntk_flow("tanh", 0.0, 1.0, 1.0, 5000)
    assert th[-1] == pytest.approx(0.5, rel=2e-3)


# ---------------------------------------------------------------------------
# Two inputs
# ---------------------------------------------------------------------------
def test_two_input_quadrature_matches_arccos_and_arcsin_kernels():
    for name, tol in (("relu", 2e-4), ("erf", 1e-9)):
        q = rg.two_input_flow(name, 0.05, 1.5, 1.0, 0.8, 0.5, 6, method="quadrature")
        c = rg.two_input_flow(name, 0.05, 1.5, 1.0, 0.8, 0.5, 6, method="closed")
        np.testing.assert_allclose(q, c, rtol=tol)


def test_relu_arccos_kernel_limits():
    assert rg.relu_arccos_kernel(2.0, 2.0, 2.0) == pytest.approx(1.0)        # θ = 0: ⟨relu²⟩ = K/2
    assert rg.relu_arccos_kernel(2.0, 2.0, 0.0) == pytest.approx(2.0 / (2 * math.pi))  # θ = π/2
    assert rg.relu_arccos_kernel(2.0, 2.0, -2.0) == pytest.approx(0.0, abs=1e-15)


def test_relu_angle_closes_as_three_pi_over_l():
    # θ' = θ − θ²/(3π) + … for the arc-cosine map at C_W = 2 ⇒ θ_l ≈ 3π/l (our expansion)
    out = rg.two_input_flow("relu", 0.0, 2.0, 1.0, 1.0, 0.0, 5000)
    theta = np.arccos(np.clip(out[:, 2] / np.sqrt(out[:, 0] * out[:, 1]), -1, 1))
    assert 5000 * theta[-1] / (3 * math.pi) == pytest.approx(1.0, rel=5e-3)


# ---------------------------------------------------------------------------
# Monte Carlo of real networks
# ---------------------------------------------------------------------------
def test_torch_and_jax_activations_agree():
    z = np.linspace(-6, 6, 241)
    for name, f in _TORCH_ACTIVATIONS.items():
        with jax.enable_x64(True):
            ref = np.asarray(rg.ACTIVATIONS[name](jnp.asarray(z)))
        got = f(torch.tensor(z)).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7, err_msg=name)


def test_monte_carlo_is_deterministic_and_seed_dependent():
    a = rg.sample_layer_moments("tanh", 0.1, 1.0, 8, 3, 40, seed=3)
    b = rg.sample_layer_moments("tanh", 0.1, 1.0, 8, 3, 40, seed=3)
    c = rg.sample_layer_moments("tanh", 0.1, 1.0, 8, 3, 40, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("name,c_w", [("linear", 1.0), ("relu", 2.0)])
def test_exact_finite_width_fourth_cumulant_matches_monte_carlo(name, c_w):
    """Linear (PDLT ch. 3) and ReLU: Cov(z_i², z_j²)/K² = (1 + ν/n)^{l−1} − 1 exactly, at width 6."""
    n, L = 6, 4
    est = rg.fourth_cumulant_estimate(rg.sample_layer_moments(name, 0.0, c_w, n, L, 20000, seed=1), n)
    exact = rg.exact_fourth_cumulant(name, n, L)
    z = np.abs(est["eps"] - exact) / np.maximum(est["eps_se"], 1e-3)
    assert np.all(z < 4), (est["eps"], est["eps_se"], exact)
    assert np.all(np.abs(est["k"] / c_w - 1) < 0.1)
    # and the leading order is visibly wrong at l/n = 0.5 (the exact value is 40% above it for ReLU)
    if name == "relu":
        assert est["eps"][-1] > 1.2 * 5 * (L - 1) / n


def test_gradient_norms_follow_chi_perp():
    r = rg.run_gradients(rg.GradientConfig(width=32, depth=12, n_networks=256))
    for c_w, run in r["runs"].items():
        assert run["log_rate"] == pytest.approx(math.log(c_w / 2), abs=0.04), c_w


# ---------------------------------------------------------------------------
# The optimal aspect ratio: information between outputs
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [1, 2, 5, 40])
def test_entropy_of_one_scale_is_the_gaussian_entropy(dim):
    for s in (0.01, 1.0, 30.0):
        assert rg.scale_mixture_entropy([s], None, dim) == pytest.approx(0.5 * dim * math.log(2 * math.pi * math.e * s),
                                                                         rel=1e-14, abs=1e-12)


def test_entropy_of_a_two_scale_mixture_matches_adaptive_quadrature():
    s, w = np.array([0.5, 3.0]), np.array([0.3, 0.7])

    def p(z):
        return float(np.sum(w * np.exp(-z * z / (2 * s)) / np.sqrt(2 * math.pi * s)))

    ref, _ = quad(lambda z: -2 * p(z) * math.log(p(z)), 0, 60, epsabs=1e-14, epsrel=1e-13, limit=400)
    assert rg.scale_mixture_entropy(s, w, 1) == pytest.approx(ref, abs=1e-11)


def test_information_vanishes_when_the_scale_is_fixed():
    assert abs(rg.output_mutual_information([2.0], None, 1, 3)) < 1e-12


@settings(max_examples=25, deadline=None)
@given(logs=st.lists(st.floats(-3, 3), min_size=2, max_size=6), c=st.floats(0.01, 100.0),
       n_a=st.integers(1, 3), n_b=st.integers(1, 3))
def test_information_is_nonnegative_symmetric_and_scale_invariant(logs, c, n_a, n_b):
    s = np.exp(np.asarray(logs))
    i_ab = rg.output_mutual_information(s, None, n_a, n_b)
    assert i_ab >= -1e-11
    assert rg.output_mutual_information(s, None, n_b, n_a) == pytest.approx(i_ab, abs=1e-11)
    assert rg.output_mutual_information(c * s, None, n_a, n_b) == pytest.approx(i_ab, abs=1e-10)


@pytest.mark.parametrize("n_a,n_b", [(1, 1), (2, 3)])
def test_series_coefficients_match_the_quadrature_of_lognormal_mixtures(n_a, n_b):
    """I(x) = c₂x² + c₃x³ + O(x⁴): fit I/x² at small x by a cubic."""
    x = np.geomspace(0.002, 0.02, 8)
    info = np.array([rg.output_mutual_information(*rg.lognormal_scales(v), n_a, n_b) for v in x])
    fit = np.polyfit(x, info / x ** 2, 3)
    c2, c3 = rg.mutual_information_coefficients(n_a, n_b)
    assert fit[-1] == pytest.approx(c2, rel=1e-4)
    assert fit[-2] == pytest.approx(c3, rel=5e-3)


def test_series_holds_for_a_non_lognormal_mixing_law():
    """At order x³ the third moment of s drops out: a symmetric two-point law has the same c₂, c₃."""
    x = np.geomspace(0.002, 0.02, 8)
    info = np.array([rg.output_mutual_information([1 - math.sqrt(v), 1 + math.sqrt(v)], None, 1, 1) for v in x])
    fit = np.polyfit(x, info / x ** 2, 3)
    assert fit[-1] == pytest.approx(1 / 8, rel=1e-4)
    assert fit[-2] == pytest.approx(-26 / 48, rel=2e-2)


def test_lognormal_scales_have_unit_mean_and_variance_x():
    s, w = rg.lognormal_scales(0.3)
    assert np.dot(w, s) == pytest.approx(1.0, rel=1e-12)
    assert np.dot(w, (s - 1) ** 2) == pytest.approx(0.3, rel=1e-10)


@pytest.mark.parametrize("n_out", [2, 3, 10, 100])
def test_optimal_vertex_is_the_books_four_over_twenty_plus_three_n(n_out):
    assert rg.optimal_vertex(n_out) == pytest.approx(4 / (20 + 3 * n_out), rel=1e-14)


def test_vertex_slopes_are_the_books_nu():
    assert rg.vertex_slope("relu") == pytest.approx(5.0, rel=1e-12)
    assert rg.vertex_slope("linear") == pytest.approx(2.0, rel=1e-9)
    assert rg.vertex_slope("tanh") == pytest.approx(2 / 3, rel=2e-3)
    assert rg.optimal_aspect_ratio("relu", 2) == pytest.approx(4 / (26 * 5), rel=1e-12)
    assert rg.optimal_aspect_ratio("tanh", 10) == pytest.approx(4 / (50 * 2 / 3), rel=2e-3)


def test_output_scales_are_the_next_layers_variance():
    """E[Σ_i (z_i^(l+1))²/n] = E[s^(l)]: same networks, same seed; ReLU keeps E s = K = 2 at criticality."""
    n, L, m = 16, 4, 4000
    s = rg.sample_output_scales("relu", 0.0, 2.0, n, L, m, seed=5)
    z2 = rg.sample_layer_moments("relu", 0.0, 2.0, n, L, m, seed=5)[:, :, 0] / n
    diff = z2[:, 1:] - s[:, :-1]
    assert np.all(np.abs(diff.mean(0)) < 4 * diff.std(0) / math.sqrt(m))
    assert np.all(np.abs(s.mean(0) / 2 - 1) < 0.05)
    # and Var(s)/E[s]² is the exact finite-width fourth cumulant of the next layer
    x = s.var(0) / s.mean(0) ** 2
    np.testing.assert_allclose(x, rg.exact_fourth_cumulant("relu", n, L + 1)[1:], rtol=0.1)


def test_aspect_ratio_bad_input():
    with pytest.raises(ValueError, match="n_out must be an int >= 2"):
        rg.optimal_vertex(1)
    with pytest.raises(ValueError, match="scales must be finite and > 0"):
        rg.output_mutual_information([1.0, -1.0])
    with pytest.raises(ValueError, match="weights must have the shape"):
        rg.scale_mixture_entropy([1.0, 2.0], [1.0], 1)
    with pytest.raises(ValueError, match="dim must be an int >= 1"):
        rg.scale_mixture_entropy([1.0], None, 0)
    with pytest.raises(ValueError, match="x must be >= 0"):
        rg.lognormal_scales(-0.1)
    with pytest.raises(ValueError, match="half-stable"):
        rg.vertex_slope("swish")
    with pytest.raises(ValueError, match="'none'"):
        rg.vertex_slope("sigmoid")


# ---------------------------------------------------------------------------
# Bad input, presets
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(activation="rellu"), ValueError, "activation must be one of"),
    (dict(activation=3), TypeError, "activation must be"),
    (dict(c_w=-1.0), ValueError, "c_w must be > 0"),
    (dict(c_w=0.0), ValueError, "c_w must be > 0"),
    (dict(c_b=-0.1), ValueError, "c_b must be >= 0"),
    (dict(depth=0), ValueError, "depth must be an int >= 1"),
    (dict(depth=2.0), TypeError, "depth must be an int"),
    (dict(k1=0.0), ValueError, "k1 must be > 0"),
    (dict(k1=-1.0), ValueError, "k1 must be > 0"),
    (dict(k1=float("nan")), ValueError, "k1 must be finite"),
])
def test_bad_input_raises_clear_errors(kwargs, exc, match):
    args = dict(activation="tanh", c_b=0.0, c_w=1.0, k1=1.0, depth=5)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        rg.kernel_flow(args["activation"], args["c_b"], args["c_w"], args["k1"], args["depth"])


def test_other_bad_inputs():
    with pytest.raises(ValueError, match="k12"):
        rg.two_input_flow("relu", 0.0, 2.0, 1.0, 1.0, 1.5, 3)
    with pytest.raises(ValueError, match="exactly solvable"):
        rg.exact_fourth_cumulant("tanh", 10, 3)
    with pytest.raises(ValueError, match="width"):
        rg.sample_layer_moments("relu", 0.0, 2.0, 1, 3, 10)
    with pytest.raises(ValueError, match="k must be"):
        rg.susceptibilities("relu", 2.0, -1.0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            rg.sample_output_scales("relu", 0.0, 2.0, 4, 2, 10, device="cuda")
    assert rg.CumulantConfig.preset("ci").device == "cpu"  # stored outputs come from the CPU stream


@pytest.mark.parametrize("cfg", [rg.KernelFlowConfig, rg.PhaseDiagramConfig, rg.CumulantConfig, rg.GradientConfig, rg.PolyComConfig,
                                 rg.AspectRatioConfig])
def test_presets(cfg):
    assert cfg.preset("ci") != cfg.preset("full")
    with pytest.raises(ValueError):
        cfg.preset("huge")


# ---------------------------------------------------------------------------
# issue 12: exact coefficients, collapse exponent, curvature, second fixed point, estimates
# ---------------------------------------------------------------------------
def test_exact_leading_coefficient_known_values():
    # n ln(1 + nu/n)/nu at n = 32: 0.929 (ReLU), 0.970 (linear); -> 1 - nu/(2n) for large n
    assert rg.exact_leading_coefficient("relu", 32) == pytest.approx(32 * math.log(1 + 5 / 32) / 5, rel=1e-14)
    assert rg.exact_leading_coefficient("relu", 32) == pytest.approx(0.92917, abs=1e-5)
    assert rg.exact_leading_coefficient("linear", 32) == pytest.approx(0.96999, abs=1e-5)
    assert rg.exact_leading_coefficient("relu", 10**6) == pytest.approx(1 - 5 / (2 * 10**6), abs=1e-10)
    with pytest.raises(ValueError, match="activation"):
        rg.exact_leading_coefficient("tanh", 32)


def test_leading_coefficient_recovers_exact_fit_and_the_exact_formula():
    t = np.linspace(0.05, 1.0, 8)
    assert rg.leading_coefficient(0.8 * t + 0.3 * t ** 2, t, np.ones(8)) == pytest.approx(0.8, abs=1e-12)
    # fitted on the exact product formula at small l/n, a is close to n ln(1+nu/n)/nu
    n, L = 256, 9
    ex = rg.exact_fourth_cumulant("relu", n, L)[1:]
    th = 5.0 * np.arange(1, L) / n
    assert rg.leading_coefficient(ex, th, np.ones(L - 1)) == pytest.approx(rg.exact_leading_coefficient("relu", n),
                                                                          abs=2e-3)
    with pytest.raises(ValueError, match="weights"):
        rg.leading_coefficient(t, t, -np.ones(8))
    with pytest.raises(ValueError, match="one length"):
        rg.leading_coefficient(t, t[:3], np.ones(8))


@given(st.floats(0.01, 10.0), st.floats(0.0, 0.5))
@settings(max_examples=30, deadline=None)
def test_collapse_exponent_of_power_laws(eps, p):
    # eps ∝ n^{-p} exactly -> recovers p; error by the delta method
    got, se = rg.collapse_exponent(eps, 0.0, eps * 4.0 ** -p, 0.0, 16, 64)
    assert got == pytest.approx(p, abs=1e-12) and se == 0.0
    _, se = rg.collapse_exponent(1.0, 0.1, 1.0, 0.1, 16, 64)
    assert se == pytest.approx(math.sqrt(0.02) / math.log(4), rel=1e-12)


def test_collapse_exponent_bad_input():
    with pytest.raises(ValueError, match="eps_small"):
        rg.collapse_exponent(0.0, 0.1, 1.0, 0.1, 16, 64)
    with pytest.raises(ValueError, match="se_large"):
        rg.collapse_exponent(1.0, 0.1, 1.0, -0.1, 16, 64)
    with pytest.raises(ValueError, match="width_large"):
        rg.collapse_exponent(1.0, 0.1, 1.0, 0.1, 64, 16)


def test_exact_collapse_exponent_is_near_zero_and_one_at_fixed_depth():
    # exact formula: at fixed (l-1)/n the exponent is small; at fixed depth it is about 1
    e16 = rg.exact_fourth_cumulant("relu", 16, 5)[-1]      # (l-1)/n = 1/4
    e64 = rg.exact_fourth_cumulant("relu", 64, 17)[-1]
    assert abs(rg.collapse_exponent(e16, 0, e64, 0, 16, 64)[0]) < 0.2
    f64 = rg.exact_fourth_cumulant("relu", 64, 5)[-1]       # same depth 5
    # 1 at leading order; more at n = 16, where the (l/n)² terms add to the narrow network's cumulant
    assert 0.9 < rg.collapse_exponent(e16, 0, f64, 0, 16, 64)[0] < 1.5


def test_map_curvature_of_a_quadratic_map_and_of_the_half_stable_points():
    # linear activation: F(K) = C_b + C_W K has zero curvature
    assert abs(rg.map_curvature("linear", 0.1, 1.0, 2.0)) < 1e-8
    sw, ge = rg.critical_point("swish"), rg.critical_point("gelu")
    c_sw = rg.map_curvature("swish", *sw)
    c_ge = rg.map_curvature("gelu", *ge)
    assert c_sw > 1e-6 and c_ge < -1e-6            # stable from below / above
    # a second difference, not noise: independent of delta to 1%
    assert rg.map_curvature("swish", *sw, delta=5e-4) == pytest.approx(c_sw, rel=1e-2)
    with pytest.raises(ValueError, match="delta"):
        rg.map_curvature("swish", *sw, delta=0.0)
    with pytest.raises(ValueError, match="k_star"):
        rg.map_curvature("swish", sw.c_b, sw.c_w, -1.0)


def test_swish_has_a_second_attracting_fixed_point_and_gelu_none():
    sw = rg.critical_point("swish")
    k2 = rg.second_fixed_point("swish", *sw)
    assert k2 / sw.k_star == pytest.approx(1.019, abs=2e-3)
    assert float(rg.flow_step("swish", sw.c_b, sw.c_w, k2)) == pytest.approx(k2, abs=1e-9)
    assert rg.chi_parallel("swish", sw.c_w, np.array([k2]))[0] < 1
    assert rg.second_fixed_point("gelu", *rg.critical_point("gelu")) is None


def test_swish_c_b_ten_times_smaller_is_not_a_fixed_point():
    sw = rg.critical_point("swish")
    assert float(rg.flow_step("swish", sw.c_b / 10, sw.c_w, sw.k_star)) - sw.k_star == pytest.approx(-0.4996, abs=1e-3)


def test_runners_return_monte_carlo_estimates_and_an_inconclusive_verdict():
    from sparsebook.claims import ClaimSet, Within
    from sparsebook.stats import Estimate

    cfg = rg.CumulantConfig(activations=("linear",), width=16, depth=5, n_networks=400, n_batches=10,
                            collapse=((8, 5), (16, 5)), collapse_networks=400, collapse_ratios=(0.25,),
                            breakdown_ratio=0.5)
    r = rg.run_fourth_cumulant(cfg, seed=3)
    e = r["per_activation"]["linear"]
    assert isinstance(e["coefficient"], Estimate) and e["coefficient"].kind == "monte carlo"
    assert e["coefficient"].se > 0 and e["coefficient"].n == 400
    assert isinstance(r["collapse_exponent"][0.25]["p"], Estimate)
    assert r["breakdown"]["x"] == 0.5 and r["breakdown"]["width"] == 8
    # 400 networks cannot decide a ±1/16 band around 1: the verdict must be inconclusive
    c = ClaimSet("t").add("x", paper="roberts2022", statement="s", quantity="q", paper_value="1",
                          measured=e["coefficient"], criterion=Within(1.0, atol=2 / 16))
    assert c.verdict == "inconclusive"
    g = rg.run_gradients(rg.GradientConfig(width=16, depth=6, n_networks=64, n_batches=4), seed=1)
    assert all(isinstance(run["rate"], Estimate) and run["rate"].se > 0 for run in g["runs"].values())


def test_polyrelu_known_values_and_classification():
    act = rg.PolyReLU(order=3)
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0])
    # (r + r² + r³)/3 at init: 0, 0, 1, 14/3
    assert torch.allclose(act(x), torch.tensor([0.0, 0.0, 1.0, 14 / 3]))
    z = jnp.array([-1.0, 0.5, 2.0])
    assert np.allclose(np.asarray(rg.polyrelu_init(z)), [0.0, (0.5 + 0.25 + 0.125) / 3, 14 / 3])
    assert rg.universality_class(rg.polyrelu_init) == "none"
    with pytest.raises(rg.NoCriticalPoint):
        rg.critical_point(rg.polyrelu_init)
    with pytest.raises(ValueError, match="order"):
        rg.PolyReLU(order=0)


def test_run_polycom_feeds_paired_differences():
    from sparsebook.stats import from_seeds, paired_difference

    cfg = rg.PolyComConfig(sizes=(64, 8, 10), steps=5, seeds=(0, 1, 2))
    r = rg.run_polycom(cfg, seed=0)
    assert r["curves"]["relu"].shape == (5, 3) and r["auc"]["gelu"].shape == (3,)
    assert from_seeds(r["auc"]["relu"]).n == 3
    d = paired_difference(r["auc"]["polyrelu"], r["auc"]["relu"])
    assert d.value == pytest.approx(float(np.mean(r["auc"]["polyrelu"] - r["auc"]["relu"])))
    with pytest.raises(ValueError, match="activations"):
        rg.run_polycom(rg.PolyComConfig(activations=("tanh",), steps=2), seed=0)


# ---------------------------------------------------------------- explorable figure and try-your-own cell
def test_explorable_kernel_flow_is_the_exact_recursion():
    from sparsebook.rg_flow.figures import EXPLORE_ACTIVATIONS, EXPLORE_CW_FACTORS, _layers

    res = {"depth": 100, "critical": {"relu": rg.critical_point("relu"), "tanh": rg.critical_point("tanh"),
                                      "sin": rg.critical_point("sin")},
           "half_stable": {"gelu": {"point": rg.critical_point("gelu")}, "swish": {"point": rg.critical_point("swish")}}}
    fig = rg.explore_kernel_flow(res)
    assert len(fig.frames) == len(EXPLORE_ACTIVATIONS) * len(EXPLORE_CW_FACTORS)
    crit, off = fig.frame(activation="tanh", cw_factor=1.1)
    layers = _layers(100)
    assert crit["x"] == [float(v) for v in layers]
    assert off["y"] == pytest.approx(rg.kernel_flow("tanh", 0.0, 1.1, 1.0, 100)[layers - 1], rel=1e-5)
    relu_crit, = fig.frame(activation="relu", cw_factor=1.0)
    assert relu_crit["y"] == pytest.approx([1.0] * len(layers), rel=1e-5)  # ReLU at C_W = 2 keeps its kernel


def test_try_your_own_kernel_flow(capsys):
    import matplotlib.pyplot as plt

    plt.close(rg.plot_try_kernel_flow("relu", 2.0, 0.0, 1.0, 10))
    assert "K^(10) = 1;" in capsys.readouterr().out
    plt.close(rg.plot_try_kernel_flow("tanh", 1.0, 0.0, 1.0, 30))
    assert "χ∥" in capsys.readouterr().out
    with pytest.raises(ValueError):
        rg.plot_try_kernel_flow("tanh", -1.0, 0.0, 1.0, 10)
    assert rg.try_kernel_flow().children


# ---------------------------------------------------------------------------
# Selectable-activation KAN (S-KAN)
# ---------------------------------------------------------------------------
def _cox_de_boor(u, n_basis):
    """Independent oracle: the Cox–de Boor recursion for cubic B-splines on the S-KAN knots."""
    order, h = 3, 2.0 / (n_basis - 3)
    t = -1.0 + (np.arange(n_basis + order + 1) - order) * h
    x = np.asarray(u, float)[..., None]
    b = ((x >= t[:-1]) & (x < t[1:])).astype(float)
    for p in range(1, order + 1):
        b = ((x - t[:-(p + 1)]) / (t[p:-1] - t[:-(p + 1)]) * b[..., :-1]
             + (t[p + 1:] - x) / (t[p + 1:] - t[1:-p]) * b[..., 1:])
    return b


def test_skan_basis_known_values():
    import torch
    u = torch.linspace(-1, 0.999, 41, dtype=torch.float64)
    assert np.allclose(rg.skan_basis(u, "bspline", 8).numpy(), _cox_de_boor(u.numpy(), 8), atol=1e-12)
    # cardinal cubic B-spline at a knot: 1/6, 2/3, 1/6
    b = rg.skan_basis(torch.tensor([-1.0], dtype=torch.float64), "bspline", 8).numpy()[0]
    assert np.allclose(b[:3], [1 / 6, 2 / 3, 1 / 6]) and np.allclose(b[3:], 0)
    th = torch.tensor([0.2, 1.3, 2.9], dtype=torch.float64)
    cheb = rg.skan_basis(torch.cos(th), "chebyshev", 6).numpy()
    assert np.allclose(cheb, np.cos(np.outer(th.numpy(), np.arange(6))))
    rbf = rg.skan_basis(torch.tensor([-1.0, 1.0], dtype=torch.float64), "rbf", 5).numpy()
    assert rbf[0, 0] == 1.0 and rbf[1, -1] == 1.0 and np.isclose(rbf[0, 1], np.exp(-1.0))
    four = rg.skan_basis(torch.tensor([0.5], dtype=torch.float64), "fourier", 4).numpy()[0]
    assert np.allclose(four, [np.cos(np.pi / 2), np.cos(np.pi), np.sin(np.pi / 2), np.sin(np.pi)])


@given(st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=20), st.integers(4, 12))
@settings(max_examples=40, deadline=None)
def test_skan_bspline_partition_of_unity(us, n_basis):
    import torch
    b = rg.skan_basis(torch.tensor(us, dtype=torch.float64), "bspline", n_basis).numpy()
    assert b.shape == (len(us), n_basis)
    assert np.allclose(b.sum(-1), 1.0, atol=1e-9) and (b >= -1e-12).all()


def test_skan_layer_matches_explicit_sum_and_selection():
    import torch
    g = torch.Generator().manual_seed(0)
    k, b, n_in, n_out, g_ = 2, 3, 2, 2, 4
    x = torch.randn(k, b, n_in, generator=g, dtype=torch.float64)
    coef = torch.randn(k, n_out, n_in, 4, g_, generator=g, dtype=torch.float64)
    logits = torch.randn(k, n_out, 4, generator=g, dtype=torch.float64)
    bias = torch.randn(k, n_out, generator=g, dtype=torch.float64)
    w = torch.softmax(logits, -1)
    y = rg.skan_layer(rg.skan_features(x, n_basis=g_), coef, w, bias).numpy()
    ref = np.zeros((k, b, n_out))
    for kk in range(k):
        for j in range(n_out):
            ref[kk, :, j] = bias[kk, j].item()
            for i in range(n_in):
                for c, cand in enumerate(rg.SKAN_CANDIDATES):
                    phi = rg.skan_basis(torch.tanh(x[kk, :, i]), cand, g_)
                    ref[kk, :, j] += w[kk, j, c].item() * (phi @ coef[kk, j, i, c]).numpy()
    assert np.allclose(y, ref)
    m = rg.skan_select(logits)
    assert np.array_equal(m.argmax(-1).numpy(), logits.argmax(-1).numpy()) and np.all(m.sum(-1).numpy() == 1)
    assert np.array_equal(rg.skan_select(torch.zeros(3)).numpy(), [1.0, 0.0, 0.0])   # ties: first


def test_skan_parameter_counts():
    assert rg.skan_parameter_count((2, 5, 1), 8) == 2 * 5 * 8 + 5 + 5 * 8 + 1 == 126
    assert rg.mlp_parameter_count((2, 9, 9, 1)) == 27 + 90 + 10 == 127
    assert rg.matched_mlp_width(126, 2) == 9 and rg.mlp_parameter_count((2, 8, 8, 1)) < 126
    assert rg.matched_mlp_width(86, 1) == 8


def test_skan_bad_input():
    import torch
    with pytest.raises(ValueError, match="candidate"):
        rg.skan_basis(torch.zeros(3), "spline", 8)
    with pytest.raises(ValueError, match="n_basis"):
        rg.skan_basis(torch.zeros(3), "fourier", 7)
    with pytest.raises(ValueError, match="n_basis"):
        rg.skan_basis(torch.zeros(3), "rbf", 2)
    with pytest.raises(TypeError, match="u must be"):
        rg.skan_basis(np.zeros(3), "rbf", 8)
    with pytest.raises(ValueError, match="weights"):
        rg.skan_layer(torch.zeros(1, 2, 32), torch.zeros(1, 3, 1, 4, 8), torch.zeros(1, 2, 4), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="tasks"):
        rg.run_skan(rg.SKANConfig(tasks=("nope",)))


def test_run_skan_tiny_deterministic_and_paired():
    import dataclasses
    cfg = dataclasses.replace(rg.SKANConfig.preset("ci"), tasks=("product",), n_train=32, n_test=64,
                              full_steps=6, select_steps=4, prune_steps=2, seeds=(0, 1))
    a, b = rg.run_skan(cfg, seed=0), rg.run_skan(cfg, seed=0)
    t = a["tasks"]["product"]
    assert t["params"] == {"skan": 126, "kan": 126, "mlp": 127}
    for m in ("skan", "kan", "mlp"):
        assert t[m]["rmse"].shape == (2,) and np.all(np.isfinite(t[m]["rmse"]))
        assert np.array_equal(t[m]["rmse"], b["tasks"]["product"][m]["rmse"])
    for mask in t["skan"]["masks"]:
        assert np.all(mask.sum(-1) == 1)
    assert t["kan"]["masks"][0].shape[-1] == 1
    assert t["skan"]["loss"].shape == (10, 2)
    rg.plot_skan(a)


def test_skan_full_preset_smoke_on_cpu():
    import dataclasses
    full = rg.SKANConfig.preset("full")
    assert full.full_steps > rg.SKANConfig.preset("ci").full_steps and len(full.seeds) >= 10
    assert full.prune_steps >= rg.SKANConfig.preset("ci").prune_steps
    cfg = dataclasses.replace(full, tasks=("bessel", "exp4"), n_train=16, n_test=16, full_steps=2, select_steps=1,
                              prune_steps=2, seeds=(0, 1), device="cpu")
    r = rg.run_skan(cfg)
    assert r["tasks"]["bessel"]["params"]["skan"] == 86
    assert np.all(np.isfinite(r["tasks"]["exp4"]["skan"]["rmse_pruned"]))


def test_skan_edge_activations_sum_to_layer():
    torch.manual_seed(0)
    k, b, n_in, n_out, g_ = 2, 7, 3, 4, 6
    x = torch.randn(k, b, n_in, dtype=torch.float64)
    coef = torch.randn(k, n_out, n_in, len(rg.SKAN_CANDIDATES), g_, dtype=torch.float64)
    w = torch.softmax(torch.randn(k, n_out, len(rg.SKAN_CANDIDATES), dtype=torch.float64), -1)
    bias = torch.randn(k, n_out, dtype=torch.float64)
    phi = rg.skan_features(x, n_basis=g_)
    act = rg.skan_edge_activations(phi, coef, w)
    assert act.shape == (k, b, n_out, n_in)
    assert torch.allclose(act.sum(-1) + bias[:, None, :], rg.skan_layer(phi, coef, w, bias), atol=1e-12)
    # one edge by hand: member 1, output 2, input 0
    hand = sum(w[1, 2, c] * (rg.skan_basis(torch.tanh(x[1, :, 0]), cand, g_) @ coef[1, 2, 0, c])
               for c, cand in enumerate(rg.SKAN_CANDIDATES))
    assert torch.allclose(act[1, :, 2, 0], hand, atol=1e-12)
    with pytest.raises(ValueError, match="weights"):
        rg.skan_edge_activations(phi, coef, w[:, :, :2])


def test_kan_sparsity_penalty_known_values():
    # two equal edges and two empty ones: |Φ|₁ = 2, entropy log 2; an empty edge adds nothing
    s = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]], dtype=torch.float64, requires_grad=True)
    pen = rg.kan_sparsity_penalty(s, mu_1=1.0, mu_2=1.0)
    assert torch.allclose(pen, torch.tensor([2.0 + math.log(2.0)], dtype=torch.float64))
    pen.sum().backward()
    assert torch.isfinite(s.grad).all()                          # empty edges: no NaN gradient
    assert float(rg.kan_sparsity_penalty(s.detach(), mu_1=0.0, mu_2=1.0)) == pytest.approx(math.log(2.0))
    # one edge only: entropy 0
    assert float(rg.kan_sparsity_penalty(torch.tensor([[[0.3]]]), mu_1=0.0)) == 0.0
    with pytest.raises(ValueError, match="mu_1"):
        rg.kan_sparsity_penalty(s.detach(), mu_1=-1.0)
    with pytest.raises(ValueError, match="scores"):
        rg.kan_sparsity_penalty(torch.zeros(3))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0, 10.0), min_size=2, max_size=12))
def test_kan_sparsity_entropy_bounds(vals):
    s = torch.tensor(vals, dtype=torch.float64).reshape(1, 1, -1)
    ent = float(rg.kan_sparsity_penalty(s, mu_1=0.0, mu_2=1.0))
    n_pos = int((s > 0).sum())
    assert -1e-12 <= ent <= math.log(max(n_pos, 1)) + 1e-9


def test_kan_prune_nodes_rule():
    # hidden node 0: strong in and out; node 1: strong in, weak out; node 2: weak in, strong out
    s_in = torch.tensor([[[0.5, 0.0], [0.02, 0.3], [0.001, 0.005]]])       # [1, 3 hidden, 2 inputs]
    s_out = torch.tensor([[[0.4, 0.009, 0.2]]])                             # [1, 1 output, 3 hidden]
    assert rg.kan_prune_nodes(s_in, s_out, 1e-2).tolist() == [[True, False, False]]
    assert rg.kan_prune_nodes(s_in, s_out, 1e-3).tolist() == [[True, True, True]]
    with pytest.raises(ValueError, match="hidden layer"):
        rg.kan_prune_nodes(s_in, s_out[:, :, :2])
    with pytest.raises(ValueError, match="threshold"):
        rg.kan_prune_nodes(s_in, s_out, -1.0)


def test_run_skan_tasks_batched_equal_one_at_a_time_and_pruning():
    import dataclasses
    cfg = dataclasses.replace(rg.SKANConfig.preset("ci"), tasks=("bessel", "product"), n_train=32, n_test=32,
                              full_steps=6, select_steps=4, prune_steps=4, seeds=(0, 1))
    both = rg.run_skan(cfg)
    for t in cfg.tasks:
        one = rg.run_skan(dataclasses.replace(cfg, tasks=(t,)))
        for m in ("skan", "kan", "mlp"):
            assert np.allclose(both["tasks"][t][m]["rmse"], one["tasks"][t][m]["rmse"], rtol=1e-6, atol=0)
        sk = both["tasks"][t]["skan"]
        for key in ("rmse_pruned", "rmse_unpruned", "rmse_sparsified"):
            assert sk[key].shape == (2,) and np.all(np.isfinite(sk[key]))
        assert np.all((sk["nodes_kept"] >= 0) & (sk["nodes_kept"] <= 1))
        # one output: a hidden node carries d incoming edges and one outgoing, so edges follow nodes
        assert np.allclose(sk["edges_kept"], sk["nodes_kept"])
        assert sk["node_masks"].shape == (2, cfg.hidden)
    rg.plot_skan_pruning(both)


def test_skan_pruning_removes_dead_nodes():
    # threshold above every score: every hidden node goes, and the pruned network predicts its bias
    import dataclasses
    cfg = dataclasses.replace(rg.SKANConfig.preset("ci"), tasks=("product",), n_train=16, n_test=16,
                              full_steps=2, select_steps=2, prune_steps=2, prune_threshold=1e6, seeds=(0, 1))
    sk = rg.run_skan(cfg)["tasks"]["product"]["skan"]
    assert np.all(sk["nodes_kept"] == 0) and np.all(sk["edges_kept"] == 0)
    assert np.all(np.isfinite(sk["rmse_pruned"]))


# ---------------------------------------------------------------------------
# issue 12 (continued): ⟨σ²⟩ in one place, susceptibility curves, kept preactivations, full-scale budget
# ---------------------------------------------------------------------------
def _m2(activation, k, n_nodes=rg.N_NODES):
    from sparsebook.rg_flow.kernels import _trapezoid_nodes

    x, w = _trapezoid_nodes(n_nodes)
    with jax.enable_x64(True):
        return np.asarray(rg.mean_square_activation(rg.activation_fn(activation), jnp.asarray(k, jnp.float64),
                                                    jnp.asarray(x), jnp.asarray(w)))


def test_mean_square_activation_closed_forms():
    k = np.array([1e-3, 0.3, 1.0, 7.0, 40.0])
    np.testing.assert_allclose(_m2("relu", k), k / 2, rtol=1e-12)
    np.testing.assert_allclose(_m2("linear", k), k, rtol=1e-12)
    # ⟨erf(z)²⟩_K = (2/π) arcsin(2K / (1 + 2K))  (Williams 1997)
    np.testing.assert_allclose(_m2("erf", k), 2 / np.pi * np.arcsin(2 * k / (1 + 2 * k)), rtol=1e-10)
    np.testing.assert_allclose(_m2("sin", k), (1 - np.exp(-2 * k)) / 2, rtol=1e-10, atol=1e-15)
    assert _m2("swish", 14.0).shape == ()


@settings(max_examples=25, deadline=None)
@given(st.floats(1e-2, 50.0), st.sampled_from(["tanh", "swish", "gelu", "softplus", "sigmoid"]))
def test_mean_square_activation_is_the_kernel_map_and_the_gaussian_expectation(k, name):
    m2 = float(_m2(name, k))
    assert m2 >= 0
    assert float(rg.flow_step(name, 0.0, 1.0, k)) == m2            # flow_step calls the same code
    sigma = rg.activation_fn(name)
    assert m2 == pytest.approx(float(rg.gaussian_expectation(lambda z: sigma(z) ** 2, k)), rel=1e-12)
    ref = {"tanh": np.tanh, "swish": lambda z: z * expit(z), "gelu": lambda z: z * (1 + sp_erf(z / math.sqrt(2))) / 2,
           "softplus": lambda z: np.logaddexp(0.0, z), "sigmoid": expit}[name]
    assert m2 == pytest.approx(quad_gauss(lambda z: ref(z) ** 2, k), rel=1e-8)


def test_susceptibility_curves_by_class():
    relu = rg.susceptibility_curves("relu")
    np.testing.assert_allclose(relu["chi_par"], 1.0, atol=1e-9)
    np.testing.assert_allclose(relu["chi_perp"], 1.0, atol=1e-9)
    assert relu["c_w"] == pytest.approx(2.0) and relu["cls"] == "scale-invariant" and math.isnan(relu["k_star"])
    tanh = rg.susceptibility_curves("tanh")
    assert tanh["k_star"] == 0.0 and abs(tanh["chi_perp"][0] - 1) < 1e-2 and np.all(tanh["chi_par"] <= tanh["chi_perp"] + 1e-12)
    gelu = rg.susceptibility_curves("gelu")
    gap = gelu["chi_par"] - gelu["chi_perp"]
    i = int(np.flatnonzero(np.sign(gap[:-1]) != np.sign(gap[1:]))[0])
    assert gelu["k"][i] <= (3 + math.sqrt(17)) / 2 <= gelu["k"][i + 1]        # they cross at K*
    assert abs(np.interp(gelu["k_star"], gelu["k"], gelu["chi_perp"]) - 1) < 1e-3
    sig = rg.susceptibility_curves("sigmoid")
    assert sig["k_star"] is None and sig["cls"] == "none"
    assert np.interp(1.0, sig["k"], sig["chi_perp"]) == pytest.approx(1.0, rel=1e-9)
    assert np.all(sig["chi_par"] < sig["chi_perp"])
    # linear in C_W; same numbers as susceptibilities()
    s2 = rg.susceptibility_curves("swish", c_w=2 * rg.critical_point("swish").c_w)
    np.testing.assert_allclose(s2["chi_perp"], 2 * rg.susceptibility_curves("swish")["chi_perp"], rtol=1e-12)
    par, perp = rg.susceptibilities("swish", 1.0, relu["k"][::40])
    np.testing.assert_allclose(rg.susceptibility_curves("swish", c_w=1.0)["chi_perp"][::40], perp, rtol=1e-12)
    np.testing.assert_allclose(rg.susceptibility_curves("swish", c_w=1.0)["chi_par"][::40], par, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="c_w"):
        rg.susceptibility_curves("relu", c_w=-1.0)
    fig = rg.plot_susceptibilities({n: rg.susceptibility_curves(n) for n in ("relu", "tanh", "gelu", "sigmoid")})
    assert len(fig.axes) == 4


def test_kept_preactivations_are_the_sampled_networks():
    from sparsebook.rg_flow.experiments import _sample_layers

    mom, z = _sample_layers("relu", 0.0, 2.0, 6, 4, 30, seed=2, keep=6)
    np.testing.assert_array_equal(mom, rg.sample_layer_moments("relu", 0.0, 2.0, 6, 4, 30, seed=2))
    assert z.shape == (30, 4, 6) and z.dtype == np.float32
    np.testing.assert_allclose((z.astype(float) ** 2).sum(-1), mom[..., 0], rtol=1e-6)
    assert _sample_layers("relu", 0.0, 2.0, 6, 4, 30, seed=2)[1] is None
    assert _sample_layers("relu", 0.0, 2.0, 6, 4, 30, seed=2, keep=99)[1].shape == (30, 4, 6)
    with pytest.raises(ValueError, match="keep"):
        _sample_layers("relu", 0.0, 2.0, 6, 4, 30, keep=-1)


def test_preactivation_distribution_figure_from_a_tiny_run():
    import dataclasses
    cfg = dataclasses.replace(rg.CumulantConfig.preset("ci"), activations=("relu",), width=8, depth=3, n_networks=80,
                              n_batches=4, collapse=((4, 5), (8, 9)), collapse_networks=80, keep_neurons=3)
    fc = rg.run_fourth_cumulant(cfg)
    assert fc["collapse"][4]["preactivations"].shape == (80, 5, 3) and "preactivations" not in fc["collapse"][8]
    assert len(rg.plot_preactivation_distribution(fc).axes) == 2


def _training_steps(scale: str) -> int:
    """Optimizer steps summed over the chapter's training loops at ``scale`` (PolyCom, S-KAN, KAN, MLPs)."""
    pc, sk = rg.PolyComConfig.preset(scale), rg.SKANConfig.preset(scale)
    base = sk.full_steps + sk.select_steps
    prune = (sk.prune_steps + sk.prune_steps // 2) + sk.prune_steps + sk.prune_steps // 2 if sk.prune_steps else 0
    return len(pc.activations) * pc.steps + (base + prune) + base + len(sk.tasks) * base


def test_full_scale_step_budget_and_gpu_memory_setting():
    import os
    assert _training_steps("ci") == 2700
    assert _training_steps("full") <= 3 * _training_steps("ci")        # launch-bound GPU steps: at most 3x ci
    assert os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE") == "false"  # set on import unless the user chose
    pc = rg.PolyComConfig.preset("full")
    assert pc.sizes[1] > rg.PolyComConfig.preset("ci").sizes[1] and len(pc.seeds) >= 10


def test_kernel_map_near_critical_is_tangent_at_k_star():
    g = rg.kernel_map_near_critical("gelu")
    cp = g["point"]
    assert g["k"].shape == g["step"].shape == (84,) and g["k"][1] == cp.k_star
    assert abs(g["step"][1]) / cp.k_star < 1e-8 and abs(g["chi_par"] - 1) < 1e-8 and abs(g["chi_perp"] - 1) < 1e-8
    assert g["step"][0] < 0 and g["step"][2] < 0                 # GELU: stable from above only
    np.testing.assert_allclose(g["step"][3:], rg.flow_step("gelu", cp.c_b, cp.c_w, g["k"][3:]) - g["k"][3:], atol=1e-12)
    for name in ("sigmoid", "relu"):
        with pytest.raises(rg.NoCriticalPoint):
            rg.kernel_map_near_critical(name)
