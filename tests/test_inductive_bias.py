"""Tests for sparsebook.inductive_bias: generalized χ² tails, the scaled-χ² fit, GP hypotheses, CKA, guidance."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from sparsebook import inductive_bias as ib
from sparsebook.inductive_bias.kernels import _nll

FAST = settings(max_examples=30, deadline=None)


def _log_chi2_cdf_series(y: float, k: int) -> float:
    """log P(χ²_k <= y) from the series of the lower incomplete gamma function (exact far in the tail)."""
    a, z = k / 2, y / 2
    terms, t, n = [], 1.0, 0
    while True:
        terms.append(t)
        n += 1
        t *= z / (a + n)
        if t < 1e-18 * sum(terms):
            break
    return a * math.log(z) - z - special.gammaln(a + 1) + math.log(sum(terms))


# ---------------------------------------------------------------------------
# generalized chi-squared tail
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, 3.0])
@pytest.mark.parametrize("x", [1e-10, 1e-6, 1e-3, 0.1, 1.0, 5.0])
def test_one_weight_is_a_scaled_noncentral_chi2(lam, x):
    w = 2.0
    got = ib.generalized_chi2_logcdf(x, [w], [lam])
    exact = stats.ncx2.logcdf(x / w, 1, lam) if lam > 0 else stats.chi2.logcdf(x / w, 1)
    # one term is the worst case of the saddlepoint: a few percent in probability
    assert abs(got - exact) <= 0.15


@pytest.mark.parametrize("k", [20, 100])
@pytest.mark.parametrize("y", [1e-8, 1e-3, 0.5, 5.0])
def test_equal_weights_match_chi2_far_into_the_tail(k, y):
    w = 0.3
    got = ib.generalized_chi2_logcdf(w * y, np.full(k, w), np.zeros(k))
    exact = _log_chi2_cdf_series(y, k)          # down to log P ~ −1000 (P ~ 1e-430)
    assert got == pytest.approx(exact, rel=2e-3)


@pytest.mark.parametrize("y", [1e-4, 1.0, 30.0])
def test_equal_weights_noncentral_far_tail_matches_poisson_mixture(y):
    # s·χ²_k(λ) = Poisson(λ/2) mixture of central χ²_{k+2j}: exact in log space far below underflow
    k, lam_each, w = 200, 0.01, 0.5
    lam = k * lam_each
    j = np.arange(200)
    terms = [-lam / 2 + i * math.log(lam / 2) - special.gammaln(i + 1) + _log_chi2_cdf_series(y, k + 2 * i) for i in j]
    exact = special.logsumexp(terms)
    got = ib.generalized_chi2_logcdf(w * y, np.full(k, w), np.full(k, lam_each))
    assert np.isfinite(got) and got == pytest.approx(exact, rel=2e-3)
    if y == 1e-4:
        assert got < -1000                                      # P < 1e-434: far below float underflow


def test_matches_monte_carlo_on_small_cases():
    rng = np.random.default_rng(1)
    for m in (3, 8):
        w = rng.uniform(0.2, 2.0, m)
        lam = rng.uniform(0.0, 3.0, m)
        samples = np.sort(ib.sample_generalized_chi2(w, lam, 400_000, rng))
        for q in (0.001, 0.01, 0.1, 0.5, 0.9):
            x = samples[int(q * len(samples))]
            p_mc = np.searchsorted(samples, x, side="right") / len(samples)
            se_log = math.sqrt((1 - p_mc) / (p_mc * len(samples)))
            got = ib.generalized_chi2_logcdf(x, w, lam)
            assert abs(got - math.log(p_mc)) <= 0.05 + 4 * se_log, (m, q, got, math.log(p_mc))


def test_cumulants_match_closed_form():
    w, lam = np.array([0.5, 2.0]), np.array([1.0, 0.0])
    k1, k2, k3 = ib.generalized_chi2_cumulants(w, lam)
    assert k1 == pytest.approx(0.5 * 2 + 2.0 * 1)
    assert k2 == pytest.approx(2 * (0.25 * 3 + 4.0 * 1))
    assert k3 == pytest.approx(8 * (0.125 * 4 + 8.0 * 1))


def test_hand_written_helpers_agree_with_their_library_oracles():
    """The library routes the review names, kept as oracles: our forms stay because the stored numbers
    were computed with them (and the k-statistics in centred form keep digits that raw power sums lose)."""
    from scipy import linalg, spatial
    from sparsebook.inductive_bias.kernels import _sample_cumulants

    rng = np.random.default_rng(3)
    x = 0.7 + 0.1 * rng.standard_normal(500)
    np.testing.assert_allclose(_sample_cumulants(x), [stats.kstat(x, n) for n in (1, 2, 3)], rtol=1e-8)
    pts = rng.standard_normal((40, 5))
    assert ib.median_lengthscale(pts) == pytest.approx(float(np.median(spatial.distance.pdist(pts))), rel=1e-12)
    xtr, xte, y = rng.standard_normal((20, 3)), rng.standard_normal((7, 3)), rng.standard_normal((20, 2))
    kx, kc, ks = ib.rbf_kernel(xtr, xtr, 1.5), ib.rbf_kernel(xte, xtr, 1.5), ib.rbf_kernel(xte, xte, 1.5)
    mean, cov = ib.gp_posterior(kx, kc, ks, y, jitter=0.0)
    cf = linalg.cho_factor(kx, lower=True)
    np.testing.assert_allclose(mean, kc @ linalg.cho_solve(cf, y), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(cov, ks - kc @ linalg.cho_solve(cf, kc.T), rtol=1e-8, atol=1e-10)


weights_st = st.lists(st.floats(0.05, 5.0), min_size=1, max_size=6)


@FAST
@given(weights_st, st.data())
def test_logcdf_is_a_log_cdf(w, data):
    lam = data.draw(st.lists(st.floats(0.0, 5.0), min_size=len(w), max_size=len(w)))
    mean = sum(a * (1 + b) for a, b in zip(w, lam))
    xs = np.array([0.01, 0.1, 0.5, 1.0, 2.0, 4.0]) * mean
    lp = ib.generalized_chi2_logcdf(xs, w, lam)
    assert np.all(lp <= 0)
    assert np.all(np.diff(lp) > 0)


@FAST
@given(weights_st, st.floats(0.01, 100.0), st.floats(0.1, 3.0), st.randoms(use_true_random=False))
def test_logcdf_is_scale_and_permutation_invariant(w, c, frac, rnd):
    lam = [0.5 * i for i in range(len(w))]
    x = frac * sum(w)
    base = ib.generalized_chi2_logcdf(x, w, lam)
    assert ib.generalized_chi2_logcdf(c * x, [c * a for a in w], lam) == pytest.approx(base, rel=1e-7, abs=1e-9)
    order = list(range(len(w)))
    rnd.shuffle(order)
    perm = ib.generalized_chi2_logcdf(x, [w[i] for i in order], [lam[i] for i in order])
    assert perm == pytest.approx(base, rel=1e-7, abs=1e-9)


def test_zero_weights_are_dropped():
    assert ib.generalized_chi2_logcdf(0.3, [1.0, 0.0], [0.5, 7.0]) == pytest.approx(
        ib.generalized_chi2_logcdf(0.3, [1.0], [0.5]))


@pytest.mark.parametrize("kwargs, err", [
    (dict(x=0.0, weights=[1.0], noncentralities=[0.0]), ValueError),
    (dict(x=-1.0, weights=[1.0], noncentralities=[0.0]), ValueError),
    (dict(x=1.0, weights=[1.0, 2.0], noncentralities=[0.0]), ValueError),
    (dict(x=1.0, weights=[], noncentralities=[]), ValueError),
    (dict(x=1.0, weights=[-1.0], noncentralities=[0.0]), ValueError),
    (dict(x=1.0, weights=[0.0], noncentralities=[0.0]), ValueError),
    (dict(x=1.0, weights=[1.0], noncentralities=[-0.1]), ValueError),
    (dict(x=1.0, weights=[np.nan], noncentralities=[0.0]), ValueError),
    (dict(x=1.0, weights=["a"], noncentralities=[0.0]), TypeError),
])
def test_generalized_chi2_bad_input(kwargs, err):
    with pytest.raises(err):
        ib.generalized_chi2_logcdf(**kwargs)


# ---------------------------------------------------------------------------
# scaled noncentral chi-squared fit
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("params", [(6.0, 4.0, 0.5), (30.0, 0.0, 2.0), (2.5, 40.0, 1e-3)])
def test_moment_formulas_recover_known_parameters_exactly(params):
    f = ib.ScaledNcx2(*params)
    g = ib.ncx2_from_cumulants(*f.cumulants())
    assert (g.df, g.nc, g.scale) == pytest.approx(params, rel=1e-8, abs=1e-8)


def test_moment_fit_recovers_parameters_from_samples():
    rng = np.random.default_rng(0)
    x = 0.5 * stats.ncx2.rvs(6, 4, size=1_000_000, random_state=rng)
    f = ib.ncx2_moment_fit(x)
    assert f.df == pytest.approx(6, rel=0.1)
    assert f.nc == pytest.approx(4, rel=0.15)
    assert f.scale == pytest.approx(0.5, rel=0.05)


def test_moment_fit_falls_back_to_central_outside_the_family():
    # a two-point sample is less skewed than any χ²: the central two-moment fit is returned
    x = np.array([1.0, 2.0] * 50 + [1.5])
    f = ib.ncx2_moment_fit(x)
    assert f.nc == 0.0 and f.method == "moments (central)"
    k1, k2, _ = f.cumulants()
    assert k1 == pytest.approx(x.mean()) and k2 == pytest.approx(x.var(ddof=1))


@pytest.mark.parametrize("params", [(5.0, 3.0, 0.5), (300.0, 0.0, 1e-4), (20.0, 40.0, 2.0)])
def test_mle_fit_does_not_fail_silently(params):
    df, nc, s = params
    rng = np.random.default_rng(3)
    x = s * (stats.ncx2.rvs(df, nc, size=800, random_state=rng) if nc else stats.chi2.rvs(df, size=800, random_state=rng))
    fit = ib.fit_scaled_ncx2(x)
    mom = ib.fit_scaled_ncx2(x, method="moments")
    assert _nll(fit, x) <= _nll(mom, x)                         # never worse than its start
    assert fit.cumulants()[0] == pytest.approx(x.mean(), rel=0.02)  # not a tiny, far-off distribution
    assert fit.cumulants()[1] == pytest.approx(x.var(), rel=0.15)
    true = ib.ScaledNcx2(df, nc, s)
    eps = float(np.quantile(x, 0.01))
    assert abs(fit.bits(eps) - true.bits(eps)) < 1.5


def test_scaled_ncx2_tail_continues_beyond_scipy():
    f = ib.ScaledNcx2(50.0, 2.0, 1.0)
    b = f.bits(np.array([1e-30, 1e-3, 5.0]))
    assert np.all(np.isfinite(b)) and np.all(np.diff(b) < 0) and b[0] > 2000


@pytest.mark.parametrize("bad", [[], [1.0, 2.0], [1.0, 1.0, 1.0], [1.0, -1.0, 2.0], [[1.0, 2.0, 3.0]], [1.0, np.inf, 2.0]])
def test_fit_bad_input(bad):
    with pytest.raises(ValueError):
        ib.fit_scaled_ncx2(bad)


def test_fit_bad_method():
    with pytest.raises(ValueError):
        ib.fit_scaled_ncx2([1.0, 2.0, 3.0], method="em")


# ---------------------------------------------------------------------------
# kernel hypothesis spaces
# ---------------------------------------------------------------------------


def _toy(seed=0, n=20, m=15, d=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n + m, d))
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1]
    return x[:n], y[:n], x[n:], y[n:]


def test_gp_posterior_interpolates_the_training_set():
    xtr, ytr, _, _ = _toy()
    k = ib.rbf_kernel(xtr, xtr, 1.5)
    mean, cov = ib.gp_posterior(k, k, k, ytr, jitter=1e-10)
    assert np.allclose(mean[:, 0], ytr, atol=1e-5)
    assert np.abs(cov).max() < 1e-5


def test_kernel_loss_matches_direct_gp_sampling():
    xtr, ytr, xte, yte = _toy(1)
    ell = ib.median_lengthscale(xtr)
    mean, cov = ib.gp_posterior(ib.rbf_kernel(xtr, xtr, ell), ib.rbf_kernel(xte, xtr, ell),
                                ib.rbf_kernel(xte, xte, ell), ytr)
    loss = ib.gaussian_test_loss(mean, cov, yte)
    rng = np.random.default_rng(2)
    f = rng.multivariate_normal(mean[:, 0], cov, size=200_000, method="eigh")
    e = np.mean((f - yte) ** 2, axis=1)
    k1, k2, _ = loss.cumulants()
    assert k1 == pytest.approx(e.mean(), rel=5e-3)
    assert k2 == pytest.approx(e.var(), rel=3e-2)
    for q in (0.01, 0.2, 0.6):
        eps = float(np.quantile(e, q))
        assert loss.logcdf(eps) == pytest.approx(math.log(q), abs=0.08)


def test_kernel_loss_multi_output_counts_each_output():
    xtr, ytr, xte, yte = _toy(2)
    y2tr, y2te = np.c_[ytr, -ytr], np.c_[yte, 2 * yte]
    loss = ib.kernel_test_loss(xtr, y2tr, xte, y2te)
    a = ib.kernel_test_loss(xtr, ytr, xte, yte)
    b = ib.kernel_test_loss(xtr, -ytr, xte, 2 * yte)
    assert loss.cumulants()[0] == pytest.approx((a.cumulants()[0] + b.cumulants()[0]) / 2)
    assert loss.weights.size == a.weights.size + b.weights.size


def test_kernel_bits_grow_as_eps_shrinks():
    xtr, ytr, xte, yte = _toy(3)
    loss = ib.kernel_test_loss(xtr, ytr, xte, yte)
    b = loss.bits(np.array([0.01, 0.05, 0.2, 1.0]) * loss.cumulants()[0])
    assert np.all(np.diff(b) < 0) and b[0] > 0


def test_not_psd_kernel_is_rejected():
    k = np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="positive semi-definite"):
        ib.gp_posterior(k, np.zeros((1, 2)), np.ones((1, 1)), [0.0, 1.0])


@pytest.mark.parametrize("case", ["cross_shape", "y_rows", "asym", "empty"])
def test_gp_posterior_bad_shapes(case):
    k = np.eye(3)
    args = dict(k_train=k, k_cross=np.zeros((2, 3)), k_test=np.eye(2), y_train=np.zeros(3))
    if case == "cross_shape":
        args["k_cross"] = np.zeros((3, 2))
    elif case == "y_rows":
        args["y_train"] = np.zeros(4)
    elif case == "asym":
        args["k_train"] = np.array([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]])
    else:
        args["y_train"] = np.zeros(0)
    with pytest.raises(ValueError):
        ib.gp_posterior(**args)


def test_kernel_loss_rejects_bad_eps_and_shapes():
    xtr, ytr, xte, yte = _toy(4)
    loss = ib.kernel_test_loss(xtr, ytr, xte, yte)
    for eps in (0.0, -1.0):
        with pytest.raises(ValueError):
            loss.bits(eps)
    with pytest.raises(ValueError):
        ib.kernel_test_loss(xtr, ytr, xte[:, :2], yte)
    with pytest.raises(ValueError):
        ib.gaussian_test_loss(np.zeros(3), np.eye(3), np.zeros(4))


# ---------------------------------------------------------------------------
# CKA and guidance
# ---------------------------------------------------------------------------


def _rand(seed, n, p):
    return np.random.default_rng(seed).standard_normal((n, p))


@pytest.mark.parametrize("n, p", [(50, 5), (10, 40)])
def test_cka_of_a_representation_with_itself_is_one(n, p):
    x = _rand(0, n, p)
    assert ib.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


@FAST
@given(st.integers(2, 30), st.integers(1, 12), st.integers(1, 12), st.integers(0, 10_000))
def test_cka_is_in_unit_interval_and_symmetric(n, p, q, seed):
    x, y = _rand(seed, n, p), _rand(seed + 1, n, q)
    c = ib.linear_cka(x, y)
    assert -1e-12 <= c <= 1 + 1e-12
    assert ib.linear_cka(y, x) == pytest.approx(c, rel=1e-9, abs=1e-12)


@FAST
@given(st.integers(3, 40), st.integers(1, 10), st.floats(1e-3, 1e3), st.integers(0, 10_000))
def test_cka_is_invariant_to_isotropic_scaling_and_orthogonal_maps(n, p, c, seed):
    x, y = _rand(seed, n, p), _rand(seed + 1, n, p + 2)
    q, _ = np.linalg.qr(_rand(seed + 2, p, p))
    base = ib.linear_cka(x, y)
    assert ib.linear_cka(c * x @ q, y) == pytest.approx(base, rel=1e-7, abs=1e-10)
    assert ib.linear_cka(x + 3.0, y) == pytest.approx(base, rel=1e-7, abs=1e-10)   # centring


def test_cka_is_not_invariant_to_anisotropic_scaling():
    x, y = _rand(0, 50, 4), _rand(1, 50, 4)
    y = y + x
    assert abs(ib.linear_cka(x * [1, 1, 1, 10], y) - ib.linear_cka(x, y)) > 0.05


def test_cka_gram_and_feature_forms_agree_and_torch_matches_numpy():
    for n, p, q in ((8, 30, 40), (60, 5, 7)):
        x, y = _rand(3, n, p), _rand(4, n, q)
        y[:, :2] += x[:, :2]
        a = ib.linear_cka(x, y)
        # the other form, computed directly
        xc, yc = x - x.mean(0), y - y.mean(0)
        kx, ky = xc @ xc.T, yc @ yc.T
        ref = np.sum(kx * ky) / np.sqrt(np.sum(kx * kx) * np.sum(ky * ky))
        assert a == pytest.approx(ref, rel=1e-10)
        t = ib.linear_cka(torch.as_tensor(x), torch.as_tensor(y))
        assert isinstance(t, torch.Tensor) and float(t) == pytest.approx(a, rel=1e-10)


def test_cka_flattens_conv_features_and_is_differentiable():
    x = torch.randn(6, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(6, 5, dtype=torch.float64)
    c = ib.linear_cka(x, y)
    c.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert float(c.detach()) == pytest.approx(ib.linear_cka(x.detach().numpy().reshape(6, -1), y.numpy()), rel=1e-10)


@pytest.mark.parametrize("x, y", [(np.zeros((5, 2)), np.zeros((4, 2))), (np.ones((1, 2)), np.ones((1, 2))),
                                  (np.ones(5), np.ones(5)), (np.ones((5, 2)), np.random.rand(5, 2))])
def test_cka_bad_input(x, y):
    with pytest.raises(ValueError):
        ib.linear_cka(x, y)


def test_layer_pairs_map_evenly():
    assert ib.layer_pairs(3, 3) == [(0, 0), (1, 1), (2, 2)]
    assert ib.layer_pairs(5, 3) == [(0, 0), (2, 1), (4, 2)]
    assert ib.layer_pairs(2, 5) == [(0, 0), (1, 4)]
    with pytest.raises(ValueError):
        ib.layer_pairs(0, 3)


def test_guidance_penalty_is_zero_when_aligned_and_pulls_towards_the_guide():
    g = [torch.randn(20, 4, dtype=torch.float64), torch.randn(20, 6, dtype=torch.float64)]
    assert float(ib.guidance_penalty([2 * g[0], g[1] @ torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))[0]], g)) \
        == pytest.approx(0.0, abs=1e-10)
    t = [torch.randn(20, 4, dtype=torch.float64, requires_grad=True)]
    opt = torch.optim.SGD(t, lr=0.5)
    before = float(ib.guidance_penalty(t, g[:1]).detach())
    for _ in range(30):
        opt.zero_grad()
        ib.guidance_penalty(t, g[:1], alpha=1.0).backward()
        opt.step()
    assert float(ib.guidance_penalty(t, g[:1]).detach()) < before
    with pytest.raises(ValueError):
        ib.guidance_penalty(t, g)
    with pytest.raises(ValueError):
        ib.guidance_penalty(t, g[:1], alpha=-1.0)


# ---------------------------------------------------------------------------
# networks, configs, runners
# ---------------------------------------------------------------------------


def test_ensemble_is_deterministic_and_matches_separate_training():
    rng = np.random.default_rng(0)
    x, xt = rng.standard_normal((30, 5)), rng.standard_normal((10, 5))
    y, yt = np.eye(3)[rng.integers(0, 3, 30)], np.eye(3)[rng.integers(0, 3, 10)]
    a = ib.train_mlp_ensemble(x, y, xt, yt, n_models=4, width=8, depth=2, steps=20, seed=1)
    b = ib.train_mlp_ensemble(x, y, xt, yt, n_models=4, width=8, depth=2, steps=20, seed=1)
    assert a.shape == (4,) and np.array_equal(a, b) and np.all(np.isfinite(a))
    assert len(set(np.round(a, 6))) == 4                       # different initializations
    c, tr = ib.train_mlp_ensemble(x, y, xt, yt, n_models=4, width=8, depth=2, steps=20, seed=1, with_train=True)
    assert np.array_equal(a, c) and tr.shape == (4,) and np.all(tr >= 0)
    with pytest.raises(TypeError, match="with_train"):
        ib.train_mlp_ensemble(x, y, xt, yt, n_models=2, width=4, depth=1, steps=1, with_train=1)
    with pytest.raises(ValueError):
        ib.train_mlp_ensemble(x, y, xt[:, :4], yt, n_models=2, width=4, depth=1, steps=1)
    with pytest.raises(ValueError):
        ib.train_mlp_ensemble(x, y, xt, yt, n_models=0, width=4, depth=1, steps=1)


@pytest.mark.parametrize("cls", [ib.EstimatorConfig, ib.DimensionConfig, ib.NetworkConfig, ib.GuidanceConfig,
                                 ib.MultiTaskConfig])
def test_presets(cls):
    ci, full = cls.preset("ci"), cls.preset("full")
    assert ci != full
    with pytest.raises(ValueError):
        cls.preset("huge")


@pytest.mark.parametrize("runner", [ib.run_estimator, ib.run_dimension, ib.run_network_bias, ib.run_guidance])
def test_runners_reject_wrong_config(runner):
    with pytest.raises(TypeError):
        runner({"steps": 1})


def test_dimension_runner_small():
    r = ib.run_dimension(ib.DimensionConfig(dims=(2, 32), n_train=16, n_test=16, tasks=2))
    assert r["bits"].shape == (2, 2)
    assert r["mean_bits"][1] > r["mean_bits"][0]
    assert r["mean_error"][1] > r["mean_error"][0]
    # the misspecified target: the bits of single_index_task's kernel loss, task by task
    assert r["bits_sine"].shape == (2, 2) and np.all(r["bits_sine"] >= 0)
    from sparsebook.inductive_bias.experiments import single_index_task

    x1, y1, x2, y2 = single_index_task(32, 16, 16, seed=1)
    assert r["bits_sine"][1, 1] == pytest.approx(float(ib.kernel_test_loss(x1, y1, x2, y2).bits(0.25)), rel=1e-12)
    e = ib.dimension_estimates(r)
    assert set(e["bits_sine"]) == {2, 32} and len(e["steps_sine"]) == 1


def test_estimator_runner_small():
    cfg = ib.EstimatorConfig(n_train=16, n_test=16, n_mc=20_000, n_fit=300, tail_bits=10.0, tail_levels=(10.0, 20.0),
                             check_bits=(3.0,), sample_sizes=(50, 200), repeats=20)
    r = ib.run_estimator(cfg)
    (c,) = r["mc_checks"]
    assert c["exact_bits"] == pytest.approx(3.0, abs=1e-6)
    assert abs(c["mc_bits"] - c["exact_bits"]) < 5 * c["se_bits"] + 0.03
    assert c["imhof_bits"] == pytest.approx(c["exact_bits"], abs=0.02)
    assert np.all(np.abs(r["saddle_minus_imhof"]) < 0.02) and r["saddle_minus_imhof"].shape == (4,)
    assert r["exact_tail_bits"] == pytest.approx(10.0, abs=1e-6)
    assert r["exact_level_bits"] == pytest.approx([10.0, 20.0], abs=1e-6)
    assert r["depth_rel_err"].shape == (20, 2) and r["sq_err"].shape == (2, 20)
    assert r["spread_bits"][1] < r["spread_bits"][0]
    e = ib.estimator_estimates(r)
    assert set(e["mc_minus_exact"]) == {3} and e["mc_minus_exact"][3].kind == "monte carlo"
    assert e["saddle_minus_imhof"].kind == "exact"
    assert len(e["rmse"]) == 2 and len(e["rmse_steps"]) == 1
    assert e["rmse"][0].value == pytest.approx(r["rmse_bits"][0])
    with pytest.raises(ValueError, match="convergence_method"):
        ib.run_estimator(ib.EstimatorConfig(convergence_method="bogus"))


def test_guidance_runner_small():
    cfg = ib.GuidanceConfig(n_train=60, n_test=60, width=16, depth=2, channels=2, steps=10, guide_steps=10,
                            batch_size=30, every=5)
    r = ib.run_guidance(cfg)
    assert set(r["runs"]) == {"none", "untrained", "trained"}
    for v in r["runs"].values():
        assert 0 <= v["test_acc"] <= 1 and 0 <= v["cka_untrained"] <= 1 and v["curve"].shape == (3, 3)
        assert v["rise"] >= 0 and v["min_test_loss"] <= v["test_loss"]
        assert v["rise"] == pytest.approx(v["test_loss"] - v["min_test_loss"])
        assert np.all((v["curve"][:, 2] >= 0) & (v["curve"][:, 2] <= 1))
    again = ib.run_guidance(cfg)
    assert again["runs"]["trained"]["test_loss"] == r["runs"]["trained"]["test_loss"]


def test_guidance_seeds_feed_paired_estimates():
    cfg = ib.GuidanceConfig(n_train=40, n_test=40, width=8, depth=2, channels=2, steps=4, guide_steps=4,
                            batch_size=20, every=2, seeds=2)
    res = ib.run_guidance_seeds(cfg, seed=3, workers=1)
    assert len(res) == 2
    one = ib.run_guidance(cfg, seed=4)
    assert res[1]["runs"]["none"]["test_loss"] == one["runs"]["none"]["test_loss"]
    e = ib.guidance_estimates(res)
    d = [r["runs"]["none"]["rise"] - r["runs"]["untrained"]["rise"] for r in res]
    assert e["rise_reduction"].kind == "seeds" and e["rise_reduction"].n == 2
    assert e["rise_reduction"].value == pytest.approx(np.mean(d))
    assert e["per_run"]["trained"]["test_acc"].samples == tuple(r["runs"]["trained"]["test_acc"] for r in res)
    with pytest.raises(ValueError):
        ib.guidance_estimates([])


def test_network_runner_small_and_estimates():
    cfg = ib.NetworkConfig(n_train=40, n_test=30, n_models=6, steps=5, base=(8, 1), archs=((8, 1),),
                           amplitudes=(0.1, 1.0), seeds=2, test_sizes=(10, 30))
    res = ib.run_network_bias_seeds(cfg, seed=0, workers=1)
    r = res[0]
    row = r["rows"][0]
    assert r["amplitude_bits"][1] == pytest.approx(row["kernel_bits"], rel=1e-9)
    assert row["train_mse"] > 0 and r["ml_amplitude"] > 0
    e = ib.network_estimates(res)
    gaps = [x["rows"][0]["kernel_bits"] - x["rows"][0]["network_bits"] for x in res]
    assert e["gap"].n == 2 and e["gap"].value == pytest.approx(np.mean(gaps))
    assert set(e["amplitude_gap"]) == {0.1, 1.0}
    # at the full test set the size sweep is the main gap; on a subset, a re-scored run of the same ensemble
    assert r["test_size_gap"][1] == pytest.approx(row["kernel_bits"] - row["network_bits"], rel=1e-12)
    assert set(e["test_size_gap"]) == {10, 30} and e["test_size_gap"][30].value == pytest.approx(e["gap"].value)
    with pytest.raises(ValueError, match="test_sizes"):
        ib.run_network_bias(ib.NetworkConfig(n_test=30, test_sizes=(40,)), seed=0)


def test_inconclusive_verdict_from_straddling_seeds():
    from sparsebook.claims import AtLeast, ClaimSet

    # per-seed results whose paired difference straddles the criterion: 5 seeds cannot decide
    res = [{"runs": {k: {"test_loss": 1.0, "min_test_loss": 0.5, "rise": r, "test_acc": acc,
                         "cka_untrained": 0.5, "cka_trained": 0.5} for k, r, acc in
                     (("none", 0.4, 0.80), ("untrained", 0.4 - dr, 0.80), ("trained", 0.3, 0.80 + da))},
            "guide_test_acc": 0.8}
           for dr, da in ((0.1, 0.02), (-0.05, -0.01), (0.2, 0.03), (-0.1, 0.0), (0.05, 0.01))]
    e = ib.guidance_estimates(res)
    cs = ClaimSet("inductive_bias")
    c = cs.add("x", paper="p", statement="s", quantity="q", paper_value="v", measured=e["rise_reduction"],
               criterion=AtLeast(0))
    assert c.verdict == "inconclusive"
    c2 = cs.add("y", paper="p", statement="s", quantity="q", paper_value="v", measured=e["acc_gain_trained"],
                criterion=AtLeast(0.01))
    assert c2.verdict == "inconclusive"


def test_ml_amplitude_closed_form_and_rescaled_loss():
    rng = np.random.default_rng(0)
    x, xt = rng.standard_normal((20, 3)), rng.standard_normal((15, 3))
    y, yt = rng.standard_normal((20, 2)), rng.standard_normal((15, 2))
    k1 = ib.rbf_kernel(x, x, 1.5)
    a = ib.ml_amplitude(k1, y)
    # the closed form maximises the Gaussian log marginal likelihood over the amplitude
    def loglik(s):
        kk = s * (k1 + 1e-8 * np.eye(20))
        sign, logdet = np.linalg.slogdet(kk)
        return -0.5 * np.sum(y * np.linalg.solve(kk, y)) - y.shape[1] / 2 * logdet
    assert loglik(a) >= max(loglik(0.9 * a), loglik(1.1 * a))
    # a GP draw of known amplitude: the estimate is near it
    big = rng.standard_normal((200, 2))
    kb = ib.rbf_kernel(big, big, 2.0)
    kb = kb + 1e-6 * np.eye(200)
    draws = np.linalg.cholesky(kb) @ rng.standard_normal((200, 3)) * np.sqrt(0.3)
    # tr(Yᵀ K⁻¹ Y)/(a·n·k) is χ²_{nk}/(nk): relative sd √(2/600) ≈ 0.06
    assert ib.ml_amplitude(kb, draws, jitter=0.0) == pytest.approx(0.3, rel=0.25)
    # rescaling the loss distribution equals recomputing it at that amplitude
    base = ib.kernel_test_loss(x, y, xt, yt, lengthscale=1.5)
    for s in (0.05, 0.3, 2.0):
        direct = ib.kernel_test_loss(x, y, xt, yt, lengthscale=1.5, amplitude=s)
        eps = 0.6 * direct.cumulants()[0]
        assert base.rescaled(s).bits(eps) == pytest.approx(direct.bits(eps), rel=1e-5, abs=1e-8)
    with pytest.raises(ValueError, match="factor"):
        base.rescaled(0.0)
    with pytest.raises(ValueError, match="y_train"):
        ib.ml_amplitude(k1, y[:5])


def test_monte_carlo_summaries():
    # RMS: delta-method se against the spread of the RMS over many independent replications
    rng = np.random.default_rng(1)
    reps = [ib.rms_estimate(rng.standard_normal(400) ** 2) for _ in range(400)]
    vals = np.array([r.value for r in reps])
    assert np.mean([r.se for r in reps]) == pytest.approx(vals.std(), rel=0.15)
    assert vals.mean() == pytest.approx(1.0, abs=0.01)
    d = ib.independent_difference(reps[0], reps[1])
    assert d.value == pytest.approx(reps[0].value - reps[1].value) and d.se == pytest.approx(np.hypot(reps[0].se, reps[1].se))
    # slope of the sd of a mean against n: -1/2, se matching its spread over replications
    ns = np.array([50, 100, 200, 400])
    slopes, ses = [], []
    for _ in range(100):
        sd = [np.std([rng.standard_normal(n).mean() for _ in range(60)], ddof=1) for n in ns]
        e = ib.log_slope_estimate(ns, sd, 60)
        slopes.append(e.value)
        ses.append(e.se)
    assert np.mean(slopes) == pytest.approx(-0.5, abs=0.03)
    assert np.mean(ses) == pytest.approx(np.std(slopes), rel=0.3)
    with pytest.raises(ValueError, match="sq_errors"):
        ib.rms_estimate([1.0])
    with pytest.raises(ValueError, match="spread"):
        ib.log_slope_estimate(ns, [1, 1, 0, 1], 10)
    with pytest.raises(TypeError):
        ib.independent_difference(reps[0], 1.0)


# ---------------------------------------------------------------------------
# Imhof's exact CDF against closed forms, the saddlepoint and sampling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("k,x", [(10, 0.5), (10, 2.0), (10, 10.0), (30, 15.0), (6, 1.0)])
def test_imhof_matches_chi2_closed_form(k, x):
    assert ib.generalized_chi2_cdf_imhof(x, np.ones(k), np.zeros(k)) == pytest.approx(stats.chi2.cdf(x, k), rel=1e-7)


@pytest.mark.parametrize("nc,x", [(2.0, 5.0), (8.0, 10.0), (0.5, 2.0)])
def test_imhof_matches_noncentral_chi2_with_equal_weights(nc, x):
    # k equal weights, noncentralities summing to nc: noncentral chi2_k(nc)
    k = 8
    lam = np.full(k, nc / k)
    got = ib.generalized_chi2_cdf_imhof(0.3 * x, np.full(k, 0.3), lam)
    assert got == pytest.approx(stats.ncx2.cdf(x, k, nc), rel=1e-7)


def test_saddlepoint_is_close_to_imhof_in_the_bulk_and_moderate_tail():
    rng = np.random.default_rng(0)
    w, lam = rng.uniform(0.1, 1, 48) / 48, rng.uniform(0, 2, 48)
    k1 = float(np.sum(w * (1 + lam)))
    x = k1 * np.array([0.4, 0.6, 0.8, 1.0, 1.2])
    p = ib.generalized_chi2_cdf_imhof(x, w, lam)
    s = np.exp(ib.generalized_chi2_logcdf(x, w, lam))
    assert np.all(np.abs(s / p - 1) < 0.01)
    assert np.all(np.diff(p) > 0)


def test_imhof_matches_sampling():
    rng = np.random.default_rng(1)
    w, lam = rng.uniform(0.1, 1, 12), rng.uniform(0, 3, 12)
    draws = ib.sample_generalized_chi2(w, lam, 400_000, np.random.default_rng(2))
    for q in (0.01, 0.2, 0.7):
        x = float(np.quantile(draws, q))
        p = ib.generalized_chi2_cdf_imhof(x, w, lam)
        se = np.sqrt(q * (1 - q) / draws.size)
        assert abs(p - np.mean(draws <= x)) < 5 * se


def test_imhof_bad_input():
    with pytest.raises(ValueError, match="x"):
        ib.generalized_chi2_cdf_imhof(-1.0, [1.0, 1.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="weights"):
        ib.generalized_chi2_cdf_imhof(1.0, [-1.0, 1.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="epsabs"):
        ib.generalized_chi2_cdf_imhof(1.0, [1.0, 1.0], [0.0, 0.0], epsabs=0.0)



# ---------------------------------------------------------------------------
# source-task selection by the Lasso
# ---------------------------------------------------------------------------


def test_allocate_samples_is_proportional_and_exact():
    n = ib.allocate_samples([3.0, -1.0, 0.0, 0.0], 100)
    assert n.tolist() == [75, 25, 0, 0]
    m = ib.allocate_samples([1.0, 1.0, 1.0], 10)
    assert m.sum() == 10 and m.max() - m.min() <= 1
    assert ib.allocate_samples([0.0, 0.0], 7).tolist() in ([4, 3], [3, 4])
    with pytest.raises(ValueError, match="budget"):
        ib.allocate_samples([1.0], -1)


def test_lasso_relevance_recovers_a_sparse_combination():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((40, 12))
    nu = np.zeros(12)
    nu[[2, 7]] = [1.0, -0.6]
    got = ib.lasso_relevance(w, w @ nu + 0.01 * rng.standard_normal(40), alpha=1e-3)
    assert set(np.flatnonzero(np.abs(got) > 0.05)) == {2, 7}
    assert got[[2, 7]] == pytest.approx([1.0, -0.6], abs=0.05)
    with pytest.raises(ValueError, match="target_params"):
        ib.lasso_relevance(w, np.ones(3), 0.1)
    with pytest.raises(ValueError, match="alpha"):
        ib.lasso_relevance(w, np.ones(40), 0.0)


def test_multitask_runner_and_estimates():
    cfg = ib.MultiTaskConfig(d=12, k=4, n_target=30, seeds=3)
    assert cfg.n_pilot == 96 and cfg.budget == 4 * 96
    res = ib.run_multitask_seeds(cfg, seed=2)
    assert len(res) == 3
    r = ib.run_multitask(cfg, 2)
    assert r["lasso"] == res[0]["lasso"] and r["uniform"] == res[0]["uniform"]
    for name in ("lasso", "uniform", "known"):
        assert r[name] > 0 and r[f"{name}_allocation"].sum() == cfg.budget
    assert r["known_allocation"][2:].sum() == 0          # the known relevance gives irrelevant sources nothing
    e = ib.multitask_estimates(res)
    lr = [np.log(x["uniform"]) - np.log(x["lasso"]) for x in res]
    assert e["log_ratio"].n == 3 and e["log_ratio"].value == pytest.approx(np.mean(lr))
    with pytest.raises(ValueError, match="relevance"):
        ib.run_multitask(ib.MultiTaskConfig(k=2, relevance=(1.0, 0.5, 0.2)))
    with pytest.raises(TypeError):
        ib.run_multitask({"d": 3})


# ---------------------------------------------------------------- explorable figure and try-your-own cell
def test_explorable_dimension_figure_holds_the_exact_bits_of_run_dimension():
    from sparsebook.inductive_bias.experiments import DimensionConfig

    cfg = DimensionConfig(dims=(4, 8), n_train=16, n_test=16, tasks=2)
    fig = ib.explore_dimension(cfg, seed=0)
    res = ib.run_dimension(cfg, seed=0)
    eps_line, t1, t2, mean = fig.frame(d=8)
    assert eps_line["x"] == [cfg.eps, cfg.eps] and mean["name"] == "mean over tasks"
    # the curves pass through the bits of run_dimension at the chapter's ε (interpolated on the log grid)
    x = np.log(fig.frames[0][0]["x"])
    for t, curve in enumerate((t1, t2)):
        at = np.exp(np.interp(np.log(cfg.eps), x, np.log(curve["y"])))
        assert at == pytest.approx(res["bits"][1, t], rel=0.05)
    assert all(a >= b for a, b in zip(mean["y"], mean["y"][1:]))  # bits fall as ε grows


def test_try_your_own_dimension(capsys):
    import matplotlib.pyplot as plt

    plt.close(ib.plot_try_dimension(4, 16, 0.25, 0))
    assert "bits at ε = 0.25" in capsys.readouterr().out
    assert ib.try_dimension().children


def test_hypotheses_figure_exact_curve_matches_its_draws():
    import matplotlib.pyplot as plt

    fig = ib.plot_hypotheses_1d(n_mc=4000, seed=1)
    a, b = fig.axes
    exact, sampled = (line.get_ydata() for line in b.get_lines()[:2])
    ok = sampled > 0.05                                 # where the draws have many hits
    assert ok.sum() > 10 and np.max(np.abs(np.log(sampled[ok] / exact[ok]))) < 0.2
    assert np.all(np.diff(exact) >= -1e-12)             # a CDF
    plt.close(fig)
